"""The C++ CPU kernel of `filtered_lrelu` (also serving `upfirdn2d`): plugin declaration and dispatch.

The kernel (`filtered_lrelu_cpu.cpp`) is forward-only and meant for inference: per channel plane it
upsamples, applies the leaky ReLU and downsamples in one pass through the cache, vectorised and
spread over torch's intra-op threads. It takes float32 or bfloat16 input and writes float32 or
bfloat16; inside it computes in float32. `upfirdn2d` is the same kernel with an identity
activation and a one-tap down filter.

Two ways in:
- The op modules ask `filtered_lrelu_impl(x, ref)` / `upfirdn2d_impl(x, ref)` for `impl='cuda'` on
  a CPU tensor. That answer is the kernel only inside `kernels_enabled(True)` (off by default, so
  the networks keep their reference path unless a caller opts in, e.g. `training.inference`), when
  the plugin builds here and the dtype is float32 or bfloat16; the returned function still hands
  calls that need gradients (and argument forms the kernel does not take) to the reference, so
  training never runs on it.
- `training.inference` calls `run_filtered_lrelu` directly with filters prepared once
  (`prepare_filtered_lrelu`), adding the extras the fast generator path fuses into the kernel: a
  per-(sample, channel) input scale (demodulation) and output scale (the next layer's style), a
  bias and noise added after the up filter (StyleGAN2), bfloat16 output, and a reusable output buffer.

Build: lazily on first use through `torch_utils.custom_ops` with `-O3 -march=native -fopenmp`: the
code is compiled for the CPU it runs on (AVX-512 where present, AVX2 otherwise...), and the build
folder's hash includes a fingerprint of that CPU (its model and feature flags), so a shared
`TORCH_EXTENSIONS_DIR` never hands one machine's build to a CPU that lacks its instructions. A
compiler that refuses those flags (Apple clang has no -fopenmp) gets a portable build: baseline SIMD,
threads of the kernel's own. Without
a C++ compiler (or with `SIGNSTYLEGAN_NO_CUSTOM_OPS=1`) the plugin is unavailable and everything
runs the reference ops (one warning).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import os
import platform
from typing import Callable, Iterator

import torch

from torch_utils import custom_ops

_SRC = os.path.dirname(os.path.abspath(__file__))
_KERNEL_DTYPES = (torch.float32, torch.bfloat16)

#----------------------------------------------------------------------------
# The plugin.

# torch's names (from the cpuinfo library, on every OS) that differ from the Linux kernel's.
_LINUX_NAMES = {"avx512_f": "avx512f", "avx512_cd": "avx512cd", "avx512_dq": "avx512dq", "avx512_bw": "avx512bw",
                "avx512_vl": "avx512vl", "avx512_ifma": "avx512ifma", "avx512_vbmi": "avx512vbmi", "fma3": "fma",
                "neon": "asimd"}


@functools.lru_cache(None)
def cpu_flags() -> frozenset[str]:
    """Feature flags of this CPU in the Linux kernel's names (`avx512f`, `avx512_bf16`, `asimd`, ...):
    what torch detects on any OS (`torch.cpu.get_capabilities`, torch 2.9 and later) and, on Linux,
    what /proc/cpuinfo lists."""
    flags = set()
    capabilities = getattr(torch.cpu, "get_capabilities", None)
    if capabilities is not None:
        try:
            flags |= {_LINUX_NAMES.get(name, name) for name, value in capabilities().items() if value is True}
        except (RuntimeError, AttributeError):  # a torch built without cpuinfo
            pass
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(("flags", "Features")):
                    flags |= set(line.split(":", 1)[1].split())
                    break
    except OSError:
        pass
    return frozenset(flags)


def cpu_fingerprint() -> str:
    """A short hash of the CPU model and feature flags: the build targets exactly this CPU."""
    model = platform.machine() + platform.processor()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(("model name", "CPU part")):
                    model += line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return hashlib.sha256((model + " " + " ".join(sorted(cpu_flags()))).encode()).hexdigest()[:12]


_FINGERPRINT = f"-DSIGNSTYLEGAN_CPU={cpu_fingerprint()}"
# The fallback, for compilers without OpenMP or -march=native (Apple clang): the baseline SIMD of the
# target (NEON on arm64, SSE2 on x86-64) and the kernel's own threads.
plugin = custom_ops.Plugin("filtered_lrelu_cpu", sources=["filtered_lrelu_cpu.cpp"], source_dir=_SRC, kind="cpu",
                           extra_cflags=["-O3", "-march=native", "-ffp-contract=fast", "-fopenmp", _FINGERPRINT],
                           extra_ldflags=["-fopenmp"],
                           fallback_kwargs=dict(extra_cflags=["-O3", "-ffp-contract=fast", _FINGERPRINT]))


def load():
    """The compiled kernel module, or None when it cannot be built here (one warning)."""
    return plugin.load()


def isa() -> str:
    """The widest SIMD this CPU offers the kernel, for log lines: 'AVX-512', 'AVX2', ... or 'SIMD'."""
    flags = cpu_flags()
    for flag, name in (("avx512f", "AVX-512"), ("avx2", "AVX2"), ("asimd", "NEON"), ("sse4_2", "SSE4.2")):
        if flag in flags:
            return name
    return "SIMD"

#----------------------------------------------------------------------------
# Opting in for the op modules.

_enabled = False


@contextlib.contextmanager
def kernels_enabled(enabled: bool = True) -> Iterator[None]:
    """Within the block, `impl='cuda'` on CPU tensors runs the CPU kernel where it applies (forward
    passes without gradients). Not thread-safe: meant for scripts and for `training.inference`."""
    global _enabled
    previous, _enabled = _enabled, bool(enabled)
    try:
        yield
    finally:
        _enabled = previous


def _wants_kernel(x: torch.Tensor) -> bool:
    return _enabled and isinstance(x, torch.Tensor) and x.device.type == "cpu" and x.dtype in _KERNEL_DTYPES


def _needs_grad(*tensors: torch.Tensor | None) -> bool:
    return torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)

#----------------------------------------------------------------------------
# Filters for the kernel.

@dataclasses.dataclass(frozen=True)
class KernelFilters:
    """One filter as the kernel takes it: correlation orientation, gain folded in; separable (`fx`,
    `fy`) or 2-D (`f2`); the unused form is an empty tensor."""
    fx: torch.Tensor
    fy: torch.Tensor
    f2: torch.Tensor

    @property
    def size(self) -> tuple[int, int]:
        """`(fw, fh)`."""
        if self.f2.numel():
            return int(self.f2.shape[1]), int(self.f2.shape[0])
        return int(self.fx.shape[0]), int(self.fy.shape[0])


def _kernel_filters(f: torch.Tensor | None, flip_filter: bool, gain: float) -> KernelFilters:
    from . import upfirdn2d as _ufd
    filt = _ufd._prepare(f, flip_filter, gain, torch.float32, torch.device("cpu"))
    empty = torch.empty(0)
    if filt.f2 is not None and filt.f2.numel() == 1:  # one tap: the (cheaper) separable form
        return KernelFilters(filt.f2.reshape(1).contiguous(), torch.ones(1), empty)
    if filt.f2 is not None:
        return KernelFilters(empty, empty, filt.f2.flip([0, 1]).contiguous())
    return KernelFilters(filt.fx.flip([0]).contiguous(), filt.fy.flip([0]).contiguous(), empty)


@dataclasses.dataclass(frozen=True)
class FilteredLReLUPlan:
    """Everything about one filtered_lrelu configuration except the data: filters, factors, the
    padding (far sides trimmed to what the down filter reads) and the activation."""
    fu: KernelFilters
    fd: KernelFilters
    up: int
    down: int
    pad: tuple[int, int, int, int]
    gain: float
    slope: float
    clamp: float      # < 0: none

    def out_size(self, height: int, width: int) -> tuple[int, int]:
        (fuw, fuh), (fdw, fdh) = self.fu.size, self.fd.size
        zw = width * self.up + self.pad[0] + self.pad[1] - fuw + 1
        zh = height * self.up + self.pad[2] + self.pad[3] - fuh + 1
        return (zh - fdh) // self.down + 1, (zw - fdw) // self.down + 1


def prepare_filtered_lrelu(fu: torch.Tensor | None, fd: torch.Tensor | None, up: int, down: int,
                           padding: tuple[int, int, int, int], gain: float, slope: float, clamp: float | None,
                           flip_filter: bool, in_size: tuple[int, int]) -> FilteredLReLUPlan:
    """The kernel's view of `filtered_lrelu.filtered_lrelu(x, fu, fd, ..., padding=(x0, x1, y0, y1))` for
    inputs of spatial size `in_size = (H, W)`. Raises ValueError for an empty output."""
    from .filtered_lrelu import trim_padding  # not at the top: filtered_lrelu imports this module
    kfu = _kernel_filters(fu, flip_filter, up ** 2)
    kfd = _kernel_filters(fd, flip_filter, 1)
    pad = trim_padding(in_size, up, down, padding, kfu.size, kfd.size)
    return FilteredLReLUPlan(kfu, kfd, int(up), int(down), pad, float(gain),
                             float(slope), -1.0 if clamp is None else float(clamp))


def run_filtered_lrelu(mod, x: torch.Tensor, plan: FilteredLReLUPlan, b: torch.Tensor | None = None,
                       in_scale: torch.Tensor | None = None, out_scale: torch.Tensor | None = None,
                       b_post: torch.Tensor | None = None, noise: torch.Tensor | None = None,
                       out_dtype: torch.dtype = torch.float32, out: torch.Tensor | None = None) -> torch.Tensor:
    """The kernel on `x` `[N, C, H, W]` (float32 or bfloat16, CPU): no autograd.

    in_scale, out_scale: `[N, C]` float32 factors applied to the input (before the bias) and to the
    output; b_post: `[C]` and noise: `[1 or N, zH, zW]` (only with down == 1) added after the up filter,
    before the activation; out: a contiguous `[N, C, outH, outW]` buffer of `out_dtype` to write into."""
    e = torch.empty(0)
    return mod.filtered_lrelu(x, e if b is None else b.detach(), e if in_scale is None else in_scale,
                              e if out_scale is None else out_scale, plan.fu.fx, plan.fu.fy, plan.fu.f2,
                              plan.fd.fx, plan.fd.fy, plan.fd.f2, plan.up, plan.down, *plan.pad, plan.gain,
                              plan.slope, plan.clamp, out_dtype == torch.bfloat16, e if out is None else out,
                              e if b_post is None else b_post.detach(), e if noise is None else noise)

#----------------------------------------------------------------------------
# Seams of the op modules.

def _filtered_lrelu(mod, ref: Callable, x, fu, fd, b, up, down, pad, gain, slope, clamp, flip_filter):
    if _needs_grad(x, b) or (b is not None and b.device.type != "cpu"):
        return ref(x, fu, fd, b, up, down, pad, gain, slope, clamp, flip_filter)
    plan = prepare_filtered_lrelu(fu, fd, up, down, pad, gain, slope, clamp, flip_filter, tuple(x.shape[2:]))
    return run_filtered_lrelu(mod, x, plan, b=b, out_dtype=x.dtype)


def _upfirdn2d(mod, ref: Callable, x, f, up, down, pad, flip_filter, gain):
    if _needs_grad(x) or up[0] != up[1] or down[0] != down[1]:
        return ref(x, f, up, down, pad, flip_filter, gain)
    kf = _kernel_filters(f, flip_filter, gain)
    plan = FilteredLReLUPlan(kf, _kernel_filters(None, False, 1), int(up[0]), int(down[0]), tuple(pad), 1.0, 1.0,
                             -1.0)
    return run_filtered_lrelu(mod, x, plan, out_dtype=x.dtype)


def filtered_lrelu_impl(x: torch.Tensor, ref: Callable) -> Callable | None:
    """The CPU kernel with the signature of `filtered_lrelu._filtered_lrelu_ref`, or None when it does
    not apply (not enabled, not a CPU tensor of a kernel dtype, no build here)."""
    if not _wants_kernel(x):
        return None
    mod = load()
    return None if mod is None else functools.partial(_filtered_lrelu, mod, ref)


def upfirdn2d_impl(x: torch.Tensor, ref: Callable) -> Callable | None:
    """Likewise for `upfirdn2d._upfirdn2d_ref`."""
    if not _wants_kernel(x):
        return None
    mod = load()
    return None if mod is None else functools.partial(_upfirdn2d, mod, ref)

#----------------------------------------------------------------------------
