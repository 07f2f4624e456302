"""The CUDA kernels of `bias_act`, `upfirdn2d` and `filtered_lrelu`: plugin declarations and autograd.

The op modules import this module at their own import (cheap: it only declares the plugins) and,
for `impl='cuda'` on a CUDA tensor, ask `bias_act_impl(x, ref)` (likewise `upfirdn2d_impl`,
`filtered_lrelu_impl`) for the implementation to run. The answer has the signature of the op's
reference function `ref`; it is None when the plugin cannot be built here (one warning, from
`torch_utils.custom_ops`), cannot launch on this GPU (one warning: a build without code for it),
or the dtype has no kernel (float32 and float16 do), and it hands argument combinations the
kernels do not take (filters that need gradients, mixed dtypes) to `ref`.

Gradients:
- `bias_act`: first and second derivatives with respect to `x` and `b` (R1 and path-length
  regularisation differentiate the gradient once more); a third derivative raises.
- `upfirdn2d`: the backward pass is an upfirdn2d with up and down swapped and the filter flipped,
  so any order.
- `filtered_lrelu`: the forward pass stores, per upsampled sample, a 2-bit code (positive,
  negative or clamped). Given the codes the op is linear in `x`, and its backward pass is the
  same fused kernel run on the transposed configuration (up and down swapped, filters flipped,
  padding adjusted, codes read at an offset), itself differentiable again with respect to its input.

Each configuration's first call is also checked against the reference on a few samples (outputs and
gradients, `checked`): where a kernel differs, one warning, and the reference runs there.

The kernel sources are `*.cu` (plain CUDA, no torch headers) with their torch bindings `*_cuda.cpp`,
next to this file. Build settings: see `torch_utils.custom_ops`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import os
from typing import Any, Callable, Iterator

import torch
from torch.autograd.function import once_differentiable

from torch_utils import custom_ops

log = logging.getLogger(__name__)

_SRC = os.path.dirname(os.path.abspath(__file__))
_COMMON_HEADERS = ["cuda_common.h", "binding_common.h"]
_CUDA_FLAGS = ["-O3"]

bias_act_plugin = custom_ops.Plugin("bias_act_cuda", sources=["bias_act_cuda.cpp", "bias_act.cu"],
                                    headers=["bias_act.h"] + _COMMON_HEADERS, source_dir=_SRC, kind="cuda",
                                    extra_cuda_cflags=_CUDA_FLAGS)
upfirdn2d_plugin = custom_ops.Plugin("upfirdn2d_cuda", sources=["upfirdn2d_cuda.cpp", "upfirdn2d.cu"],
                                     headers=["upfirdn2d.h"] + _COMMON_HEADERS, source_dir=_SRC, kind="cuda",
                                     extra_cuda_cflags=_CUDA_FLAGS)
filtered_lrelu_plugin = custom_ops.Plugin("filtered_lrelu_cuda",
                                          sources=["filtered_lrelu_cuda.cpp", "filtered_lrelu.cu"],
                                          headers=["filtered_lrelu.h"] + _COMMON_HEADERS, source_dir=_SRC,
                                          kind="cuda", extra_cuda_cflags=_CUDA_FLAGS)

_KERNEL_DTYPES = (torch.float32, torch.float16)
_enabled = True


@contextlib.contextmanager
def kernels_enabled(enabled: bool) -> Iterator[None]:
    """Within the block, `impl='cuda'` runs the kernels (True) or the reference ops (False), e.g. to
    time both in one process (bench/ops_gpu.py). Not thread-safe: meant for scripts."""
    global _enabled
    previous, _enabled = _enabled, bool(enabled)
    try:
        yield
    finally:
        _enabled = previous


def _wants_kernel(x: torch.Tensor) -> bool:
    return _enabled and isinstance(x, torch.Tensor) and x.device.type == "cuda" and x.dtype in _KERNEL_DTYPES


_runs_on: dict[tuple[str, str], bool] = {}  # (plugin, device) -> whether a probe launch worked


def _runs(plugin: custom_ops.Plugin, mod: Any, device: torch.device, probe: Callable[[Any, torch.device], Any]) -> bool:
    """Whether the built plugin can launch on `device`: a build can succeed and still lack code for
    this GPU (TORCH_CUDA_ARCH_LIST without it). Probed once per device with a tiny launch; on
    failure one warning, and the reference from then on."""
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    key = (plugin.name, str(device))
    ok = _runs_on.get(key)
    if ok is None:
        try:
            probe(mod, device)
            ok = True
        except RuntimeError as e:
            lines = str(e).strip().splitlines()
            log.warning("Custom op '%s' cannot run on %s (%s); using the reference implementation.", plugin.name,
                        device, lines[-1] if lines else type(e).__name__)
            ok = False
        _runs_on[key] = ok
    return ok

#----------------------------------------------------------------------------
# bias_act

# Activation numbers in the kernel: `cuda_idx` of bias_act.activation_funcs (checked by the tests).
ACT_INDEX = {"linear": 1, "relu": 2, "lrelu": 3, "tanh": 4, "sigmoid": 5, "elu": 6, "selu": 7, "softplus": 8,
             "swish": 9}
_PIECEWISE_LINEAR = ("linear", "relu", "lrelu")  # zero second derivative; derivative readable from y


@dataclasses.dataclass(frozen=True)
class _BiasActConfig:
    mod: Any
    dim: int
    act: str
    alpha: float
    gain: float
    clamp: float          # < 0: none

    @property
    def index(self) -> int:
        return ACT_INDEX[self.act]

    @property
    def grad_from_y(self) -> bool:
        """The first derivative follows from the output (its sign and whether it is clamped)."""
        return self.act in _PIECEWISE_LINEAR and self.gain > 0 and (self.act != "lrelu" or self.alpha >= 0)

    def reduce_to_bias(self, t: torch.Tensor) -> torch.Tensor:
        return t.sum(dim=[i for i in range(t.ndim) if i != self.dim])


class _BiasAct(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, b, cfg: _BiasActConfig):
        y = cfg.mod.bias_act(x, b, None, 0, cfg.dim, cfg.index, cfg.alpha, cfg.gain, cfg.clamp, False)
        ctx.cfg = cfg
        ctx.has_b = b is not None
        if cfg.act == "linear" and cfg.clamp < 0:
            ctx.save_for_backward()          # constant derivative: nothing to keep
        elif cfg.grad_from_y:
            ctx.save_for_backward(y)
        else:
            ctx.save_for_backward(x, b)
        return y

    @staticmethod
    def backward(ctx, dy):
        cfg: _BiasActConfig = ctx.cfg
        saved = ctx.saved_tensors
        if not saved:
            dz = dy * cfg.gain if cfg.gain != 1 else dy
        elif len(saved) == 1:
            dz = _BiasActGrad.apply(dy, saved[0], None, cfg, True)
        else:
            dz = _BiasActGrad.apply(dy, saved[0], saved[1], cfg, False)
        dx = dz if ctx.needs_input_grad[0] else None
        db = cfg.reduce_to_bias(dz) if ctx.has_b and ctx.needs_input_grad[1] else None
        return dx, db, None


class _BiasActGrad(torch.autograd.Function):
    """dz = dy * f'(ref): linear in dy; its derivative with respect to x and b needs f''."""

    @staticmethod
    def forward(ctx, dy, ref, b, cfg: _BiasActConfig, ref_is_y: bool):
        dz = cfg.mod.bias_act(ref, b, dy, 1, cfg.dim, cfg.index, cfg.alpha, cfg.gain, cfg.clamp, ref_is_y)
        ctx.cfg = cfg
        ctx.ref_is_y = ref_is_y
        ctx.has_b = b is not None
        ctx.save_for_backward(dy, ref, b)
        return dz

    @staticmethod
    @once_differentiable
    def backward(ctx, ddz):
        cfg: _BiasActConfig = ctx.cfg
        dy, ref, b = ctx.saved_tensors
        d_dy = d_ref = d_b = None
        if ctx.needs_input_grad[0]:
            d_dy = cfg.mod.bias_act(ref, b, ddz, 1, cfg.dim, cfg.index, cfg.alpha, cfg.gain, cfg.clamp,
                                    ctx.ref_is_y)
        # With the derivative read from y, the activation is piecewise linear: f'' = 0.
        if not ctx.ref_is_y and cfg.act not in _PIECEWISE_LINEAR and (ctx.needs_input_grad[1] or
                                                                      ctx.needs_input_grad[2]):
            d2 = cfg.mod.bias_act(ref, b, ddz * dy, 2, cfg.dim, cfg.index, cfg.alpha, cfg.gain, cfg.clamp, False)
            d_ref = d2 if ctx.needs_input_grad[1] else None
            d_b = cfg.reduce_to_bias(d2) if ctx.has_b and ctx.needs_input_grad[2] else None
        return d_dy, d_ref, d_b, None, None


def _bias_act(mod: Any, ref: Callable, x: torch.Tensor, b: torch.Tensor | None, dim: int, act: str, alpha: float,
              gain: float, clamp: float) -> torch.Tensor:
    if act not in ACT_INDEX or (b is not None and (b.dtype != x.dtype or b.device != x.device)):
        return ref(x, b, dim, act, alpha, gain, clamp)
    cfg = _BiasActConfig(mod=mod, dim=dim, act=act, alpha=float(alpha), gain=float(gain), clamp=float(clamp))
    return _BiasAct.apply(x, b, cfg)


def bias_act_fn(mod: Any, ref: Callable) -> Callable[..., torch.Tensor]:
    """The kernel implementation on plugin module `mod` (signature of bias_act._bias_act_ref)."""
    return functools.partial(_bias_act, mod, ref)


def bias_act_impl(x: torch.Tensor, ref: Callable) -> Callable[..., torch.Tensor] | None:
    """The CUDA implementation for `x`, or None (not a CUDA float32/float16 tensor, or no kernel here)."""
    if not _wants_kernel(x):
        return None
    mod = bias_act_plugin.load()
    if mod is None or not _runs(bias_act_plugin, mod, x.device, _probe_bias_act):
        return None
    return checked("bias_act", bias_act_fn(mod, ref), ref, grad_args=(0, 1), second_order=True)


def _probe_bias_act(mod: Any, device: torch.device) -> None:
    mod.bias_act(torch.zeros([1], device=device), None, None, 0, 0, ACT_INDEX["lrelu"], 0.2, 1.0, -1.0, False)

#----------------------------------------------------------------------------
# upfirdn2d

def _filter_tensor(f: torch.Tensor | None, device: torch.device, ndim: int = 1) -> torch.Tensor:
    """Filter argument -> float32 contiguous taps on `device`; None is the 1-tap identity (of `ndim` dims)."""
    if f is None:
        return torch.ones([1] * ndim, dtype=torch.float32, device=device)
    return f.detach().to(device=device, dtype=torch.float32).contiguous()


def _filter_size(f: torch.Tensor) -> tuple[int, int]:
    """`(fw, fh)` of a 1-D (separable) or 2-D `[fh, fw]` filter."""
    return (int(f.shape[0]), int(f.shape[0])) if f.ndim == 1 else (int(f.shape[1]), int(f.shape[0]))


def _adjoint_padding(in_size: int, out_size: int, taps: int, up: int, down: int, pad0: int) -> tuple[int, int]:
    """Padding of the transposed resampling (up/down swapped, filter flipped) along one axis."""
    return taps - 1 - pad0, in_size * up + pad0 - out_size * down


@dataclasses.dataclass(frozen=True)
class _UpFirDnConfig:
    mod: Any
    up: tuple[int, int]
    down: tuple[int, int]
    pad: tuple[int, int, int, int]
    flip: bool
    gain: float


class _UpFirDn2d(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, f, cfg: _UpFirDnConfig):
        y = cfg.mod.upfirdn2d(x, f, cfg.up[0], cfg.up[1], cfg.down[0], cfg.down[1], *cfg.pad, cfg.flip, cfg.gain)
        ctx.save_for_backward(f)
        ctx.cfg = cfg
        ctx.sizes = (x.shape[3], x.shape[2], y.shape[3], y.shape[2])
        return y

    @staticmethod
    def backward(ctx, dy):
        (f,) = ctx.saved_tensors
        cfg: _UpFirDnConfig = ctx.cfg
        in_w, in_h, out_w, out_h = ctx.sizes
        fw, fh = _filter_size(f)
        px = _adjoint_padding(in_w, out_w, fw, cfg.up[0], cfg.down[0], cfg.pad[0])
        py = _adjoint_padding(in_h, out_h, fh, cfg.up[1], cfg.down[1], cfg.pad[2])
        tcfg = dataclasses.replace(cfg, up=cfg.down, down=cfg.up, pad=(*px, *py), flip=not cfg.flip)
        return _UpFirDn2d.apply(dy, f, tcfg), None, None


def _upfirdn2d(mod: Any, ref: Callable, x: torch.Tensor, f: torch.Tensor | None, up: tuple[int, int],
               down: tuple[int, int], pad: tuple[int, int, int, int], flip_filter: bool, gain: float) -> torch.Tensor:
    if f is not None and (f.requires_grad or f.ndim not in (1, 2)):
        return ref(x, f, up, down, pad, flip_filter, gain)  # the reference explains what is wrong
    cfg = _UpFirDnConfig(mod=mod, up=tuple(up), down=tuple(down), pad=tuple(pad), flip=bool(flip_filter),
                         gain=float(gain))
    return _UpFirDn2d.apply(x, _filter_tensor(f, x.device, ndim=2), cfg)  # 1x1 for None: a single pass


def upfirdn2d_fn(mod: Any, ref: Callable) -> Callable[..., torch.Tensor]:
    """The kernel implementation on plugin module `mod` (signature of upfirdn2d._upfirdn2d_ref)."""
    return functools.partial(_upfirdn2d, mod, ref)


def upfirdn2d_impl(x: torch.Tensor, ref: Callable) -> Callable[..., torch.Tensor] | None:
    """The CUDA implementation for `x`, or None."""
    if not _wants_kernel(x):
        return None
    mod = upfirdn2d_plugin.load()
    if mod is None or not _runs(upfirdn2d_plugin, mod, x.device, _probe_upfirdn2d):
        return None
    return checked("upfirdn2d", upfirdn2d_fn(mod, ref), ref, grad_args=(0,), second_order=True)


def _probe_upfirdn2d(mod: Any, device: torch.device) -> None:
    mod.upfirdn2d(torch.zeros([1, 1, 2, 2], device=device), torch.ones([2], device=device), 1, 1, 1, 1, 0, 0, 0, 0,
                  False, 1.0)

#----------------------------------------------------------------------------
# filtered_lrelu

@dataclasses.dataclass(frozen=True)
class _FLPass:
    """One pass `x -> down(act(up(x)))` on [N, C, H, W]; sizes per axis are (x, y) pairs.

    mode 0/1: act = clamp(lrelu(t) * gain) (1 also returns the codes of its intermediate);
    mode 2: act multiplies by the factor its code gives, codes read at (position + code_off)
    of a grid of `code_size` samples (outside it: zero). Mode 2 passes are linear, and
    `transposed()` gives the pass of their backward."""
    fl: Any                          # filtered_lrelu plugin module
    ufd: Any                         # upfirdn2d plugin module (generic path)
    up: int
    down: int
    fu_size: tuple[int, int]         # (fw, fh) of fu
    fd_size: tuple[int, int]
    pad: tuple[int, int, int, int]   # x0, x1, y0, y1 (after upsampling)
    up_gain: float
    down_gain: float
    gain: float
    slope: float
    clamp: float                     # < 0: none
    flip: bool
    in_size: tuple[int, int]
    code_size: tuple[int, int] = (0, 0)
    code_off: tuple[int, int] = (0, 0)

    def mid_size(self) -> tuple[int, int]:
        return tuple(self.in_size[a] * self.up + self.pad[2 * a] + self.pad[2 * a + 1] - self.fu_size[a] + 1
                     for a in range(2))

    def out_size(self) -> tuple[int, int]:
        return tuple((m - self.fd_size[a]) // self.down + 1 for a, m in enumerate(self.mid_size()))

    def transposed(self) -> _FLPass:
        """The backward pass of this (mode 2) pass: out -> in."""
        mid, out = self.mid_size(), self.out_size()
        pad, off = [], []
        for a in range(2):
            r0 = self.fu_size[a] - 1 - self.pad[2 * a]
            r1 = self.fu_size[a] - self.up - self.pad[2 * a + 1]
            pad += [self.fd_size[a] - 1 + r0, mid[a] - out[a] * self.down + r1]
            off.append(self.code_off[a] - r0)
        return dataclasses.replace(self, up=self.down, down=self.up, fu_size=self.fd_size, fd_size=self.fu_size,
                                   pad=tuple(pad), up_gain=self.down_gain, down_gain=self.up_gain,
                                   flip=not self.flip, in_size=out, code_off=tuple(off))

    def run(self, x: torch.Tensor, fu: torch.Tensor, fd: torch.Tensor, b: torch.Tensor | None, mode: int,
            codes: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """`(y, codes_out)`; fu and fd are this pass's filters (float32 on x's device)."""
        sw, sh = self.code_size
        ox, oy = self.code_off
        fused = self._fused_taps(fu, fd)
        if fused is not None:
            fu_taps, fd_taps = fused
            return self.fl.fused(x, fu, fd, b, codes, self.up, self.down, *self.pad, sw, sh, ox, oy, self.up_gain,
                                 self.down_gain, self.gain, self.slope, self.clamp, self.flip, mode)
        # Generic path: materialise the upsampled intermediate.
        if b is not None and mode != 2:
            x = x + b.to(x.dtype).reshape(1, -1, 1, 1)
        t = self.ufd.upfirdn2d(x, fu, self.up, self.up, 1, 1, *self.pad, self.flip, self.up_gain)
        v, codes_out = self.fl.act(t, codes, sw, sh, ox, oy, self.gain, self.slope, self.clamp, mode)
        y = self.ufd.upfirdn2d(v, fd, 1, 1, self.down, self.down, 0, 0, 0, 0, self.flip, self.down_gain)
        return y, codes_out

    def _fused_taps(self, fu: torch.Tensor, fd: torch.Tensor) -> tuple[int, int] | None:
        for f in (fu, fd):
            if f.ndim == 2 and f.shape[0] != f.shape[1]:
                return None
        fu_2d, fd_2d = fu.ndim == 2 and fu.numel() > 1, fd.ndim == 2 and fd.numel() > 1
        taps = int(fu.shape[0]), int(fd.shape[0])
        if not self.fl.fused_supported(self.up, self.down, taps[0], taps[1], fu_2d, fd_2d):
            return None
        return taps


class _FilteredLReLU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, b, fu, fd, cfg: _FLPass):
        want_codes = ctx.needs_input_grad[0] or ctx.needs_input_grad[1]
        y, codes = cfg.run(x, fu, fd, b, mode=1 if want_codes else 0)
        ctx.cfg = cfg
        ctx.has_b = b is not None
        ctx.save_for_backward(fu, fd, codes if want_codes else None)
        return y

    @staticmethod
    def backward(ctx, dy):
        fu, fd, codes = ctx.saved_tensors
        cfg: _FLPass = ctx.cfg
        linear = dataclasses.replace(cfg, code_size=cfg.mid_size(), code_off=(0, 0))
        dx = _FLLinear.apply(dy, codes, fd, fu, linear.transposed())
        db = dx.sum(dim=[0, 2, 3]) if ctx.has_b and ctx.needs_input_grad[1] else None
        return dx, db, None, None, None


class _FLLinear(torch.autograd.Function):
    """A mode-2 pass (linear in x given the codes); fu and fd are the filters of this pass."""

    @staticmethod
    def forward(ctx, x, codes, fu, fd, cfg: _FLPass):
        y, _ = cfg.run(x, fu, fd, None, mode=2, codes=codes)
        ctx.cfg = cfg
        ctx.save_for_backward(codes, fu, fd)
        return y

    @staticmethod
    def backward(ctx, dy):
        codes, fu, fd = ctx.saved_tensors
        return _FLLinear.apply(dy, codes, fd, fu, ctx.cfg.transposed()), None, None, None, None


def _filtered_lrelu(fl: Any, ufd: Any, ref: Callable, x: torch.Tensor, fu: torch.Tensor | None,
                    fd: torch.Tensor | None, b: torch.Tensor | None, up: int, down: int, pad: tuple[int, int, int, int],
                    gain: float, slope: float, clamp: float | None, flip_filter: bool) -> torch.Tensor:
    args = (x, fu, fd, b, up, down, pad, gain, slope, clamp, flip_filter)
    if any(f is not None and (f.requires_grad or f.ndim not in (1, 2)) for f in (fu, fd)):
        return ref(*args)  # the reference explains what is wrong
    if b is not None and (b.device != x.device or b.dtype not in _KERNEL_DTYPES):
        return ref(*args)
    fu_t, fd_t = _filter_tensor(fu, x.device), _filter_tensor(fd, x.device)
    cfg = _FLPass(fl=fl, ufd=ufd, up=int(up), down=int(down), fu_size=_filter_size(fu_t), fd_size=_filter_size(fd_t),
                  pad=tuple(int(p) for p in pad), up_gain=float(up * up), down_gain=1.0, gain=float(gain),
                  slope=float(slope), clamp=-1.0 if clamp is None else float(clamp), flip=bool(flip_filter),
                  in_size=(int(x.shape[3]), int(x.shape[2])))
    mid, out = cfg.mid_size(), cfg.out_size()
    if min(mid) < 1 or min(out) < 1:
        return ref(*args)  # the reference raises its error
    if b is not None:
        b = b.to(x.dtype)
    return _FilteredLReLU.apply(x, b, fu_t, fd_t, cfg)


def filtered_lrelu_fn(fl: Any, ufd: Any, ref: Callable) -> Callable[..., torch.Tensor]:
    """The kernel implementation on plugin modules `fl`, `ufd` (signature of
    filtered_lrelu._filtered_lrelu_ref)."""
    return functools.partial(_filtered_lrelu, fl, ufd, ref)


def filtered_lrelu_impl(x: torch.Tensor, ref: Callable) -> Callable[..., torch.Tensor] | None:
    """The CUDA implementation for `x`, or None."""
    if not _wants_kernel(x):
        return None
    fl = filtered_lrelu_plugin.load()
    ufd = upfirdn2d_plugin.load() if fl is not None else None
    if fl is None or ufd is None or not _runs(filtered_lrelu_plugin, fl, x.device, _probe_filtered_lrelu) or \
            not _runs(upfirdn2d_plugin, ufd, x.device, _probe_upfirdn2d):
        return None
    return checked("filtered_lrelu", filtered_lrelu_fn(fl, ufd, ref), ref, grad_args=(0, 3))


def _probe_filtered_lrelu(mod: Any, device: torch.device) -> None:
    one = torch.ones([1], device=device)
    mod.fused(torch.zeros([1, 1, 2, 2], device=device), one, one, None, None, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1.0, 1.0,
              1.0, 0.2, -1.0, False, 0)

#----------------------------------------------------------------------------
#----------------------------------------------------------------------------
# First-use check against the reference.
#
# The first call of each configuration (op, device, dtype, shape without the batch, the other
# arguments) also runs the kernel and the reference on up to two samples of its input, forward and
# backward, and compares them. A kernel that differs (a miscompile, a driver or architecture the
# kernels were never run on) then costs a warning, not a training run: that configuration uses the
# reference from then on. The check draws its random incoming gradient from a private generator, so
# the global random state, and with it a run's reproducibility, is untouched.

_CHECK_TOL = {torch.float32: 1e-3, torch.float16: 2e-2}  # relative L2 error allowed against a float32 reference
_CHECK_SAMPLES = 2
_checked: dict[tuple, bool] = {}       # configuration -> the kernel matched the reference there
_warned_ops: set[tuple[str, str]] = set()


def _config_key(op: str, args: tuple) -> tuple:
    x = args[0]
    channels_last = x.ndim == 4 and x.is_contiguous(memory_format=torch.channels_last)
    parts = [op, str(x.device), x.dtype, tuple(x.shape[1:]), x.is_contiguous(), channels_last]
    for a in args[1:]:
        parts.append((a.dtype, tuple(a.shape)) if isinstance(a, torch.Tensor) else tuple(a) if isinstance(a, list)
                     else a)
    return tuple(parts)


def _rel_l2(got: torch.Tensor, want: torch.Tensor) -> float:
    got, want = got.detach().float(), want.detach()
    return float(torch.linalg.vector_norm(got - want) / torch.linalg.vector_norm(want).clamp_min(1e-30))


def _compare(op: str, fn: Callable, ref: Callable, args: tuple, grad_args: tuple[int, ...],
             second_order: bool = False) -> tuple[bool | None, str]:
    """(False, why) when the kernel differs from the reference on a few samples of `args` (the
    output without and with autograd, the gradients of `grad_args`, with `second_order` their
    derivatives too); (True, "") when it matches; (None, "") when there is nothing to compare (the
    reference is not finite there)."""
    x = args[0]
    batch_dim_is_data = not (op == "bias_act" and args[2] == 0)  # bias_act along dim 0: keep every row
    xs = x.detach()[:_CHECK_SAMPLES] if batch_dim_is_data and x.ndim > 1 else x.detach()

    def leaves(as_float: bool, grad: bool) -> list:
        out = list(args)
        out[0] = xs
        for i, a in enumerate(out):
            if isinstance(a, torch.Tensor):
                a = a.detach().clone()
                if as_float and a.is_floating_point():
                    a = a.float()
                out[i] = a.requires_grad_(grad and i in grad_args and a.is_floating_point())
        return out

    gen = torch.Generator(device=x.device)

    def grads(y: torch.Tensor, leaves: list) -> list[torch.Tensor]:
        """The gradients of `grad_args` for a random incoming gradient; with `second_order` then also
        the gradients of (the first of those) . (a random tensor) with respect to the incoming gradient
        and `grad_args`: what R1 regularization takes through the op."""
        inputs = [leaves[i] for i in grad_args if isinstance(leaves[i], torch.Tensor)]
        dy = torch.randn(y.shape, generator=gen.manual_seed(0), device=x.device).to(y.dtype)
        dy.requires_grad_(second_order)
        out = torch.autograd.grad(y, inputs, dy, allow_unused=True, create_graph=second_order)
        first = [torch.zeros_like(t) if g is None else g for t, g in zip(inputs, out)]
        if not second_order:
            return first
        ddx = torch.randn(inputs[0].shape, generator=gen.manual_seed(1), device=x.device).to(first[0].dtype)
        out = torch.autograd.grad(first[0], [dy, *inputs], ddx, allow_unused=True) \
            if first[0].requires_grad else [None] * (1 + len(inputs))
        second = [torch.zeros_like(t) if g is None else g for t, g in zip([dy, *inputs], out)]
        return [g.detach() for g in first] + second

    with torch.inference_mode(False), torch.enable_grad():
        want_args = leaves(as_float=True, grad=True)
        want = ref(*want_args)
        want_grads = grads(want, want_args)
        if not all(bool(torch.isfinite(t).all()) for t in (want, *want_grads)):
            return None, ""
        try:
            with torch.no_grad():
                got_plain = fn(*leaves(as_float=False, grad=False))
            got_args = leaves(as_float=False, grad=True)
            got = fn(*got_args)
            if got.shape != want.shape or got_plain.shape != want.shape:
                return False, f"its output has shape {tuple(got.shape)}, not {tuple(want.shape)}"
            got_grads = grads(got, got_args)
        except RuntimeError as e:
            lines = str(e).strip().splitlines()
            return False, f"it failed: {lines[-1] if lines else type(e).__name__}"
    tol = _CHECK_TOL.get(x.dtype, 1e-3)
    tensor_args = [i for i in grad_args if isinstance(args[i], torch.Tensor)]
    names = ["output", "output under autograd"] + [f"gradient of argument {i}" for i in tensor_args]
    if second_order:
        names += ["second derivative through the incoming gradient"] + \
            [f"second derivative of argument {i}" for i in tensor_args]
    for name, g, w in zip(names, (got_plain, got, *got_grads), (want, want, *want_grads)):
        err = _rel_l2(g, w)
        if not err <= tol:
            return False, f"its {name} is off by {err:.3g} (relative L2 error; at most {tol:g} expected)"
    return True, ""


def checked(op: str, fn: Callable, ref: Callable, grad_args: tuple[int, ...],
            second_order: bool = False) -> Callable[..., torch.Tensor]:
    """`fn` (a kernel implementation with the signature of `ref`), checked against `ref` on the first
    call of each configuration (with `second_order` its second derivatives too); a configuration
    where it differs runs `ref` (one warning per op and device)."""
    def run(*args):
        key = _config_key(op, args)
        ok = _checked.get(key)
        if ok is None:
            ok, why = _compare(op, fn, ref, args, grad_args, second_order)
            if ok is None:  # undecided (values not finite): the kernel runs, the next call checks again
                return fn(*args)
            _checked[key] = ok
            if not ok and (op, key[1]) not in _warned_ops:
                _warned_ops.add((op, key[1]))
                log.warning("The CUDA kernel of %s differs from the reference implementation on %s for input %s "
                            "%s (%s); that configuration, and any other where it differs, uses the reference. "
                            "Please report it with the output of `python -m torch_utils.custom_ops --list`.",
                            op, key[1], tuple(args[0].shape), str(args[0].dtype).replace("torch.", ""), why)
        return fn(*args) if ok else ref(*args)
    return run
