"""Miscellaneous torch helpers used by the networks, the training loop and published pickles."""

from __future__ import annotations

import contextlib
import re
import warnings
from typing import Any, Iterable, Iterator, Sequence

import numpy as np
import torch

import dnnlib

#----------------------------------------------------------------------------
# Cached constant tensors: avoids re-creating (and re-uploading) small tensors every call.

_constant_cache: dict[tuple, torch.Tensor] = {}


def constant(value: Any, shape: Sequence[int] | None = None, dtype: torch.dtype | None = None,
             device: torch.device | str | None = None, memory_format: torch.memory_format | None = None) -> torch.Tensor:
    """A tensor holding `value` (broadcast to `shape`), cached by its value and properties."""
    value = np.asarray(value)
    if shape is not None:
        shape = tuple(shape)
    if dtype is None:
        dtype = torch.get_default_dtype()
    if device is None:
        device = torch.device("cpu")
    if memory_format is None:
        memory_format = torch.contiguous_format
    key = (value.shape, value.dtype, value.tobytes(), shape, dtype, str(torch.device(device)), memory_format)
    tensor = _constant_cache.get(key)
    if tensor is None:
        tensor = torch.as_tensor(value.copy(), dtype=dtype, device=device)
        if shape is not None:
            tensor, _ = torch.broadcast_tensors(tensor, torch.empty(shape))
        tensor = tensor.contiguous(memory_format=memory_format)
        _constant_cache[key] = tensor
    return tensor


def nan_to_num(input: torch.Tensor, nan: float = 0.0, posinf: float | None = None, neginf: float | None = None,
               *, out: torch.Tensor | None = None) -> torch.Tensor:
    """`torch.nan_to_num` (kept under this name: published code calls `misc.nan_to_num`)."""
    return torch.nan_to_num(input, nan=nan, posinf=posinf, neginf=neginf, out=out)

#----------------------------------------------------------------------------
# Shape assertions that work under tracing.

@contextlib.contextmanager
def suppress_tracer_warnings() -> Iterator[None]:
    """Silence `torch.jit.TracerWarning` (shape checks on traced tensors are intentional)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        yield


def assert_shape(tensor: torch.Tensor, ref_shape: Sequence[int | torch.Tensor | None]) -> None:
    """Assert `tensor.shape` matches `ref_shape`; `None` entries match any size."""
    if tensor.ndim != len(ref_shape):
        raise AssertionError(f"Wrong number of dimensions: got {tensor.ndim}, expected {len(ref_shape)}")
    for idx, (size, ref_size) in enumerate(zip(tensor.shape, ref_shape)):
        if ref_size is None:
            continue
        if isinstance(ref_size, torch.Tensor):
            with suppress_tracer_warnings():
                torch._assert(torch.equal(torch.as_tensor(size), ref_size), f"Wrong size for dimension {idx}")
        elif isinstance(size, torch.Tensor):
            with suppress_tracer_warnings():
                torch._assert(torch.equal(size, torch.as_tensor(ref_size)), f"Wrong size for dimension {idx}: expected {ref_size}")
        elif size != ref_size:
            raise AssertionError(f"Wrong size for dimension {idx}: got {size}, expected {ref_size}")

#----------------------------------------------------------------------------
# Profiling.

def profiled_function(fn):
    """Decorator: the function shows up under its own name in `torch.profiler` traces."""
    def decorator(*args, **kwargs):
        with torch.autograd.profiler.record_function(fn.__name__):
            return fn(*args, **kwargs)
    decorator.__name__ = fn.__name__
    decorator.__qualname__ = getattr(fn, "__qualname__", fn.__name__)
    decorator.__doc__ = fn.__doc__
    return decorator

#----------------------------------------------------------------------------
# Sampler.

class InfiniteSampler(torch.utils.data.Sampler):
    """Endless stream of dataset indices for one rank.

    With `shuffle`, the order starts as a random permutation and keeps changing: after each index
    is used, it is swapped with a random earlier position within a window of
    `window_size * len(dataset)` items. Ranks take every `num_replicas`-th index of the one stream,
    so together they see the same sequence as a single process would. `start` skips the first
    `start` indices of the stream (all ranks together), which lets a resumed run continue the
    exact data order."""

    def __init__(self, dataset, rank: int = 0, num_replicas: int = 1, shuffle: bool = True, seed: int = 0,
                 window_size: float = 0.5, start: int = 0):
        assert len(dataset) > 0
        assert num_replicas > 0
        assert 0 <= rank < num_replicas
        assert 0 <= window_size <= 1
        super().__init__()
        self.dataset = dataset
        self.rank = rank
        self.num_replicas = num_replicas
        self.shuffle = shuffle
        self.seed = seed
        self.window_size = window_size
        self.start = start

    def __iter__(self) -> Iterator[int]:
        n = len(self.dataset)
        order = np.arange(n)
        rnd = None
        window = 0
        if self.shuffle:
            rnd = np.random.RandomState(self.seed)
            rnd.shuffle(order)
            window = int(np.rint(n * self.window_size))
        order = order.tolist()  # Python ints: faster to index and swap one at a time than numpy scalars
        if window >= 2 and self.start > 0:
            _advance(order, rnd, window, self.start)
        idx = self.start
        while True:
            i = idx % n
            if idx % self.num_replicas == self.rank:
                yield order[i]
            if window >= 2:
                j = (i - rnd.randint(window)) % n
                order[i], order[j] = order[j], order[i]
            idx += 1


def _advance(order: list[int], rnd: np.random.RandomState, window: int, count: int, chunk: int = 1 << 16) -> None:
    """Apply the first `count` swaps of the stream to `order` in place, as iterating would. The
    random draws are made in blocks: RandomState gives the same numbers in one call of size k as in
    k calls, and one call per draw is what costs (20x slower for 1M swaps, 2-core EPYC)."""
    n = len(order)
    i = 0
    done = 0
    while done < count:
        for r in rnd.randint(window, size=min(chunk, count - done)).tolist():
            j = i - r
            if j < 0:
                j += n
            order[i], order[j] = order[j], order[i]
            i += 1
            if i == n:
                i = 0
        done += min(chunk, count - done)

#----------------------------------------------------------------------------
# Parameters and buffers.

def params_and_buffers(module: torch.nn.Module) -> list[torch.Tensor]:
    assert isinstance(module, torch.nn.Module)
    return list(module.parameters()) + list(module.buffers())


def named_params_and_buffers(module: torch.nn.Module) -> list[tuple[str, torch.Tensor]]:
    assert isinstance(module, torch.nn.Module)
    return list(module.named_parameters()) + list(module.named_buffers())


@torch.no_grad()
def copy_params_and_buffers(src_module: torch.nn.Module, dst_module: torch.nn.Module, require_all: bool = False) -> None:
    """Copy every parameter and buffer of `dst_module` that `src_module` has under the same name.

    With `require_all`, a name missing from the source is an error. Shapes must agree."""
    assert isinstance(src_module, torch.nn.Module)
    assert isinstance(dst_module, torch.nn.Module)
    src_tensors = dict(named_params_and_buffers(src_module))
    for name, tensor in named_params_and_buffers(dst_module):
        if name not in src_tensors:
            if require_all:
                raise KeyError(f"copy_params_and_buffers: '{name}' missing from the source module")
            continue
        src = src_tensors[name]
        if src.shape != tensor.shape:
            raise ValueError(f"copy_params_and_buffers: shape of '{name}' differs: {tuple(src.shape)} vs {tuple(tensor.shape)}")
        tensor.copy_(src.detach()).requires_grad_(tensor.requires_grad)

#----------------------------------------------------------------------------
# DistributedDataParallel helpers.

@contextlib.contextmanager
def ddp_sync(module: torch.nn.Module, sync: bool) -> Iterator[None]:
    """Skip DDP's gradient all-reduce inside the context when `sync` is False."""
    assert isinstance(module, torch.nn.Module)
    if sync or not isinstance(module, torch.nn.parallel.DistributedDataParallel):
        yield
    else:
        with module.no_sync():
            yield


def check_ddp_consistency(module: torch.nn.Module, ignore_regex: str | None = None) -> None:
    """Assert every parameter and buffer equals rank 0's copy (NaNs compare equal)."""
    assert isinstance(module, torch.nn.Module)
    for name, tensor in named_params_and_buffers(module):
        fullname = type(module).__name__ + "." + name
        if ignore_regex is not None and re.fullmatch(ignore_regex, fullname):
            continue
        tensor = tensor.detach()
        if tensor.is_floating_point():
            tensor = nan_to_num(tensor)
        other = tensor.clone()
        torch.distributed.broadcast(tensor=other, src=0)
        if not (tensor == other).all():
            raise AssertionError(f"{fullname} differs between ranks")

#----------------------------------------------------------------------------
# Module summary.

def print_module_summary(module: torch.nn.Module, inputs: Sequence[Any], max_nesting: int = 3,
                         skip_redundant: bool = True) -> Any:
    """Run `module(*inputs)` and print a table of submodules with their parameter and buffer counts
    and output shapes/dtypes. Returns the module's outputs."""
    assert isinstance(module, torch.nn.Module)
    assert not isinstance(module, torch.jit.ScriptModule)
    assert isinstance(inputs, (tuple, list))

    entries: list[dnnlib.EasyDict] = []
    nesting = [0]

    def pre_hook(_mod, _inputs):
        nesting[0] += 1

    def post_hook(mod, _inputs, outputs):
        nesting[0] -= 1
        if nesting[0] <= max_nesting:
            outputs = list(outputs) if isinstance(outputs, (tuple, list)) else [outputs]
            outputs = [t for t in outputs if isinstance(t, torch.Tensor)]
            entries.append(dnnlib.EasyDict(mod=mod, outputs=outputs))

    hooks = [m.register_forward_pre_hook(pre_hook) for m in module.modules()]
    hooks += [m.register_forward_hook(post_hook) for m in module.modules()]
    try:
        outputs = module(*inputs)
    finally:
        for hook in hooks:
            hook.remove()

    # Count unique tensors per entry so that shared/child tensors are not counted twice.
    seen: set[int] = set()
    for e in entries:
        e.unique_params = [t for t in e.mod.parameters() if id(t) not in seen]
        e.unique_buffers = [t for t in e.mod.buffers() if id(t) not in seen]
        e.unique_outputs = [t for t in e.outputs if id(t) not in seen]
        seen |= {id(t) for t in e.unique_params + e.unique_buffers + e.unique_outputs}
    if skip_redundant:
        entries = [e for e in entries if len(e.unique_params) or len(e.unique_buffers) or len(e.unique_outputs)]

    names = {mod: name for name, mod in module.named_modules()}
    rows = [[type(module).__name__, "Parameters", "Buffers", "Output shape", "Datatype"]]
    rows += [["---"] * len(rows[0])]
    param_total = buffer_total = 0
    for e in entries:
        name = "<top-level>" if e.mod is module else names[e.mod]
        param_size = sum(t.numel() for t in e.unique_params)
        buffer_size = sum(t.numel() for t in e.unique_buffers)
        output_shapes = [str(list(t.shape)) for t in e.outputs]
        output_dtypes = [str(t.dtype).split(".")[-1] for t in e.outputs]
        rows.append([name + (":0" if len(e.outputs) >= 2 else ""),
                     str(param_size) if param_size else "-",
                     str(buffer_size) if buffer_size else "-",
                     (output_shapes + ["-"])[0],
                     (output_dtypes + ["-"])[0]])
        for idx in range(1, len(e.outputs)):
            rows.append([name + f":{idx}", "-", "-", output_shapes[idx], output_dtypes[idx]])
        param_total += param_size
        buffer_total += buffer_size
    rows += [["---"] * len(rows[0])]
    rows += [["Total", str(param_total), str(buffer_total), "-", "-"]]

    widths = [max(len(cell) for cell in column) for column in zip(*rows)]
    print()
    for row in rows:
        print("  ".join(cell + " " * (width - len(cell)) for cell, width in zip(row, widths)))
    print()
    return outputs

#----------------------------------------------------------------------------
# Device selection (one way, used by every script).

def get_device(name: str = "auto") -> torch.device:
    """'auto' -> CUDA when available, else CPU; 'cpu'; 'cuda' or 'cuda:N' (UserError if absent)."""
    name = (name or "auto").lower()
    if name == "auto":
        return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise dnnlib.UserError(f"--device={name} asked for, but this machine has no CUDA GPU "
                                   "(use --device=cpu or auto)")
        return torch.device(name)
    raise dnnlib.UserError(f"Unknown device '{name}' (use auto, cpu, cuda or cuda:N)")


def iter_chunks(seq: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    """Consecutive slices of `seq` of at most `size` items."""
    for i in range(0, len(seq), size):
        yield seq[i:i + size]
