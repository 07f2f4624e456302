"""Process-group set-up for one or many processes, on one or many machines.

Two ways in:
- `torchrun` (one machine or many): `init()` reads RANK / WORLD_SIZE / LOCAL_RANK / MASTER_ADDR
  from the environment (env:// rendezvous).
- `--gpus=N` on one machine: the script spawns N processes and each calls
  `init(rank=r, world_size=N, init_file=...)` (file:// rendezvous in the run's temp folder).
NCCL is used for CUDA, gloo for CPU. Rank logic stays here: model code asks `get_rank()`.
"""

from __future__ import annotations

import datetime
import logging
import os

import torch

log = logging.getLogger(__name__)

#----------------------------------------------------------------------------

def init(rank: int | None = None, world_size: int | None = None, init_file: str | None = None,
         backend: str | None = None, timeout_minutes: float = 30) -> None:
    """Join the process group if there is more than one process; a no-op otherwise.

    Without arguments the environment set by torchrun is used. Sets the current CUDA device to
    the local rank when CUDA is available."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return
    if world_size is None:
        world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if rank is None:
        rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", rank if init_file is not None else 0))
    if torch.cuda.is_available():
        torch.cuda.set_device(local_rank % torch.cuda.device_count())
    if world_size <= 1:
        return
    if backend is None:
        backend = default_backend("cuda" if torch.cuda.is_available() else "cpu")
    if init_file is not None:
        init_method = "file://" + os.path.abspath(init_file)
    else:
        init_method = "env://"
    torch.distributed.init_process_group(backend=backend, init_method=init_method, rank=rank, world_size=world_size,
                                         timeout=datetime.timedelta(minutes=timeout_minutes))


def default_backend(device_type: str) -> str:
    """The process-group backend for tensors on `device_type`: NCCL for CUDA where torch has it (not on
    Windows), else gloo."""
    if device_type == "cuda" and torch.distributed.is_nccl_available():
        return "nccl"
    return "gloo"


def deinit() -> None:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


def is_initialized() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def get_rank() -> int:
    return torch.distributed.get_rank() if is_initialized() else 0


def get_world_size() -> int:
    return torch.distributed.get_world_size() if is_initialized() else 1


def get_local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", get_rank()))


def is_main() -> bool:
    return get_rank() == 0


def barrier() -> None:
    if is_initialized():
        torch.distributed.barrier()


def device_for_rank() -> torch.device:
    """The device this process should compute on: its GPU, else the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def print0(*args, **kwargs) -> None:
    """`print` on rank 0 only (for CLI progress lines; libraries use logging)."""
    if get_rank() == 0:
        print(*args, **kwargs)
