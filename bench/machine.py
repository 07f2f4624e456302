"""What every benchmark says about the machine it ran on (timings mean little without it)."""

from __future__ import annotations

import datetime
import os
import platform

import torch

from torch_utils.ops.cpu_kernels import cpu_flags

_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def describe_machine(device: torch.device | str | None = None) -> str:
    """One line: the GPU (when `device` is CUDA) or the CPU with its vector units, then torch, the
    threads it uses, Python and today's date."""
    device = torch.device(device) if device is not None else torch.device("cpu")
    if device.type == "cuda":
        p = torch.cuda.get_device_properties(device)
        where = f"{p.name} ({p.total_memory / 2**30:.0f} GiB, sm_{p.major}{p.minor}), CUDA {torch.version.cuda}"
    else:
        flags = [f for f in _FLAGS if f in cpu_flags()]
        where = f"{cpu_model()}, {os.cpu_count()} logical CPUs ({', '.join(flags) or 'no AVX2'})"
    return (f"{where}; torch {torch.__version__}, {torch.get_num_threads()} threads; "
            f"Python {platform.python_version()}; {datetime.date.today().isoformat()}")


def load_average() -> float:
    """The 1-minute load average (nan where unknown): other work on a shared machine inflates timings."""
    try:
        return os.getloadavg()[0]
    except (OSError, AttributeError):
        return float("nan")
