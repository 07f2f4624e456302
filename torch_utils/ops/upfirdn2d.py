"""Upsample, FIR-filter and downsample 2-D images: `upfirdn2d` and its helpers.

`upfirdn2d(x, f, up, down, padding)` does, per channel and per axis:

1. upsample by inserting `up - 1` zeros after every input sample (length `in * up`);
2. pad with zeros (`padding` entries may be negative, which crops);
3. convolve with the FIR filter `f` ("valid" mode; a true convolution unless `flip_filter`);
4. keep every `down`-th sample, starting with the first.

Output length per axis: `(in * up + pad0 + pad1 - taps) // down + 1`.

The reference path never materialises the zero-stuffed image and never multiplies by its
zeros. Each output phase is a depthwise convolution of the input with one polyphase component
of the filter, taken with the stride that the downsampling allows: pure upsampling runs as one
strided transposed convolution (the polyphase bank, interleaved in place), downsampling as one
strided convolution, mixed ratios as one convolution per phase. Separable filters (1-D, or 2-D
filters of rank one such as [1,3,3,1]) run as two 1-D passes. The gradient of `upfirdn2d` is
again an `upfirdn2d` (up and down swapped, filter flipped), so the op is differentiable any
number of times at the cost of the forward pass and saves nothing for the backward pass.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Callable, NamedTuple, Sequence, Union

import torch
import torch.nn.functional as F

from . import cpu_kernels as _cpu_kernels
from . import cuda_kernels as _cuda_kernels

ScaleArg = Union[int, Sequence[int]]
PadArg = Union[int, Sequence[int]]
FilterArg = Union[None, torch.Tensor, float, Sequence[float], Sequence[Sequence[float]]]

#----------------------------------------------------------------------------
# Argument parsing shared by the ops of this package.

def _parse_scaling(scaling: ScaleArg, name: str = "up/down") -> tuple[int, int]:
    """`int` or `[x, y]` -> `(sx, sy)`, each an int >= 1."""
    if isinstance(scaling, (int, torch.SymInt)) and not isinstance(scaling, bool):
        sx = sy = int(scaling)
    else:
        try:
            sx, sy = (int(v) for v in scaling)
        except (TypeError, ValueError):
            raise ValueError(f"{name} must be an int or [x, y], got {scaling!r}") from None
    if sx < 1 or sy < 1:
        raise ValueError(f"{name} factors must be >= 1, got {scaling!r}")
    return sx, sy


def _parse_padding(padding: PadArg) -> tuple[int, int, int, int]:
    """`int`, `[x, y]` or `[x0, x1, y0, y1]` -> `(x0, x1, y0, y1)`; negative values crop."""
    if isinstance(padding, (int, torch.SymInt)) and not isinstance(padding, bool):
        p = int(padding)
        return p, p, p, p
    try:
        vals = [int(v) for v in padding]
    except (TypeError, ValueError):
        raise ValueError(f"padding must be an int, [x, y] or [x0, x1, y0, y1], got {padding!r}") from None
    if len(vals) == 2:
        px, py = vals
        return px, px, py, py
    if len(vals) == 4:
        return vals[0], vals[1], vals[2], vals[3]
    raise ValueError(f"padding must be an int, [x, y] or [x0, x1, y0, y1], got {padding!r}")


def _get_filter_size(f: torch.Tensor | None) -> tuple[int, int]:
    """Filter width and height `(fw, fh)`; `None` counts as a 1x1 filter."""
    if f is None:
        return 1, 1
    if not isinstance(f, torch.Tensor) or f.ndim not in (1, 2):
        raise ValueError("filter must be None or a 1-D (separable) or 2-D torch.Tensor")
    fw = f.shape[-1]
    fh = f.shape[0]
    return int(fw), int(fh)

#----------------------------------------------------------------------------
# Filter construction.

def setup_filter(f: FilterArg, device: torch.device | str = torch.device("cpu"), normalize: bool = True,
                 flip_filter: bool = False, gain: float = 1, separable: bool | None = None) -> torch.Tensor:
    """Turn filter taps into the tensor that `upfirdn2d` expects.

    Args:
        f: taps: `None` (the 1-tap identity), a scalar, 1-D `[taps]` or 2-D `[fh, fw]`.
        device: where the result lives.
        normalize: divide by the sum of the taps so the filter has unit DC gain.
        flip_filter: flip the taps (all axes).
        gain: overall gain; a 2-D filter is multiplied by `gain`, a separable one by `sqrt(gain)`
            (it is applied once per axis).
        separable: return a 1-D filter applied per axis (`True`) or a 2-D filter (`False`).
            `None`: 1-D input with at least 8 taps stays separable, shorter 1-D input becomes
            its outer product.

    Returns:
        float32 tensor `[taps]` (separable) or `[fh, fw]`.
    """
    if f is None:
        f = 1
    f = torch.as_tensor(f, dtype=torch.float32)
    if f.ndim not in (0, 1, 2) or f.numel() == 0:
        raise ValueError(f"filter taps must be a non-empty scalar, 1-D or 2-D array, got shape {tuple(f.shape)}")
    if f.ndim == 0:
        f = f.reshape(1)
    if separable is None:
        separable = f.ndim == 1 and f.numel() >= 8
    if f.ndim == 1 and not separable:
        f = torch.outer(f, f)
    if f.ndim != (1 if separable else 2):
        raise ValueError("a 2-D filter cannot be made separable; pass 1-D taps or separable=False")
    if normalize:
        f = f / f.sum()
    if flip_filter:
        f = f.flip(list(range(f.ndim)))
    f = f * (gain ** (f.ndim / 2))
    return f.to(device=device)

#----------------------------------------------------------------------------
# Per-axis plan.
#
# In "full convolution" coordinates n (index into the true convolution of the zero-stuffed
# input with the filter), output i reads n_i = (taps - 1 - pad0) + i * down, and
#     out[i] = sum_s x[n_i // up - s] * f[up * s + n_i % up].
# Outputs whose n_i share the residue mod `up` form one phase; consecutive outputs cycle
# through `phases = up / gcd(up, down)` residues, and within a phase the input position
# advances by `stride = down / gcd(up, down)`. Each phase is therefore a strided correlation
# of the input with one polyphase component of the filter. Three ways to run a plan:
#   - one phase (no upsampling, or up == down): a single strided depthwise convolution;
#   - no downsampling: a depthwise transposed convolution with stride `up`, which is the
#     polyphase filter bank with the interleaving done in place;
#   - otherwise: one strided depthwise convolution per phase, interleaved afterwards.

@dataclasses.dataclass(frozen=True)
class _AxisPlan:
    in_len: int
    up: int
    down: int
    pad0: int             # user padding (after upsampling)
    pad1: int
    ntaps: int
    out_len: int          # output samples
    phases: int           # interleaved phases
    stride: int           # input stride within a phase
    window: int           # taps of every phase's correlation window
    taps: torch.Tensor    # [phases, window] long: filter index per window position, -1 = zero
    xpad0: int            # zero padding (negative: crop) of the input before the first window
    xpad1: int            # ... and after the last one
    groups: int           # outputs per phase
    skip: int             # leading interleaved outputs to drop


@functools.lru_cache(maxsize=4096)
def _plan_axis(in_len: int, up: int, down: int, pad0: int, pad1: int, ntaps: int) -> _AxisPlan:
    out_len = (in_len * up + pad0 + pad1 - ntaps) // down + 1
    if out_len < 1:
        raise ValueError(f"upfirdn2d output would be empty: input {in_len}, up {up}, padding ({pad0}, {pad1}), "
                         f"{ntaps} taps, down {down}")
    base = ntaps - 1 - pad0
    g = math.gcd(up, down)
    phases, stride = up // g, down // g
    # Start the interleaving at the output (at most phases-1 before output 0) with the smallest
    # residue, so that all phases of a group start at the same input sample where possible.
    first = min(range(-phases + 1, 1), key=lambda i: (base + i * down) % up)
    starts, lens, residues = [], [], []
    for j in range(phases):
        n = base + (first + j) * down
        starts.append(n // up)
        residues.append(n % up)
        lens.append(max(0, -(-(ntaps - n % up) // up)))
    live = [j for j in range(phases) if lens[j] > 0]
    if live:
        lo = min(starts[j] - lens[j] + 1 for j in live)
        hi = max(starts[j] for j in live)
    else:
        lo = hi = 0
    window = hi - lo + 1
    taps = torch.full([phases, window], -1, dtype=torch.long)
    for j in live:
        for s in range(lens[j]):
            taps[j, starts[j] - s - lo] = up * s + residues[j]
    groups = -(-(out_len - first) // phases)
    last = lo + stride * (groups - 1) + window - 1
    return _AxisPlan(in_len=in_len, up=up, down=down, pad0=pad0, pad1=pad1, ntaps=ntaps, out_len=out_len,
                     phases=phases, stride=stride, window=window, taps=taps, xpad0=-lo, xpad1=last - (in_len - 1),
                     groups=groups, skip=-first)


def _pad2d(x: torch.Tensor, px0: int, px1: int, py0: int, py1: int) -> torch.Tensor:
    """Zero-pad `x` `[N, C, H, W]` on the last two axes; negative amounts crop, also past the far edge."""
    if not (px0 or px1 or py0 or py1):
        return x
    N, C, H, W = x.shape
    cx0, cx1, cy0, cy1 = max(0, -px0), max(0, -px1), max(0, -py0), max(0, -py1)
    if cx0 + cx1 >= W or cy0 + cy1 >= H:
        return x.new_zeros([N, C, H + py0 + py1, W + px0 + px1])
    x = x[:, :, cy0:H - cy1, cx0:W - cx1]
    if px0 > 0 or px1 > 0 or py0 > 0 or py1 > 0:
        x = F.pad(x, [max(0, px0), max(0, px1), max(0, py0), max(0, py1)])
    return x


def _depthwise(f: torch.Tensor, channels: int) -> torch.Tensor:
    """`[kh, kw]` -> `[channels, 1, kh, kw]` weight of a depthwise convolution."""
    return f[None, None].expand(channels, 1, f.shape[0], f.shape[1])


def _phase_weights(f: torch.Tensor, py: _AxisPlan, px: _AxisPlan) -> torch.Tensor:
    """Correlation weights `[Py, Px, window_y, window_x]` of every (y-phase, x-phase) pair."""
    fz = F.pad(f, [0, 1, 0, 1])  # tap index -1 picks the appended zero
    ty, tx = py.taps.to(f.device), px.taps.to(f.device)
    return fz[ty[:, None, :, None], tx[None, :, None, :]]


def _run_transposed(x: torch.Tensor, f: torch.Tensor, py: _AxisPlan, px: _AxisPlan) -> torch.Tensor:
    """Plans without downsampling: transposed convolution with stride `up`, then crop/pad."""
    # The transposed convolution yields full-convolution samples [0, (in - 1) * up + taps);
    # the output needs [taps - 1 - pad0, in * up + pad1).
    lo = (py.ntaps - 1 - py.pad0, px.ntaps - 1 - px.pad0)
    hi = (py.ntaps - py.up - py.pad1, px.ntaps - px.up - px.pad1)
    crop = (max(0, min(lo[0], hi[0])), max(0, min(lo[1], hi[1])))
    y = F.conv_transpose2d(x, _depthwise(f, x.shape[1]), stride=(py.up, px.up), padding=crop, groups=x.shape[1])
    return _pad2d(y, crop[1] - lo[1], crop[1] - hi[1], crop[0] - lo[0], crop[0] - hi[0])


def _run_phases(x: torch.Tensor, f: torch.Tensor, py: _AxisPlan, px: _AxisPlan) -> torch.Tensor:
    """General plans: one strided depthwise convolution per phase, interleaved."""
    N, C = x.shape[:2]
    x = _pad2d(x, px.xpad0, px.xpad1, py.xpad0, py.xpad1)
    w = _phase_weights(f, py, px)
    live = ((py.taps >= 0)[:, None, :, None] & (px.taps >= 0)[None, :, None, :]).flatten(2).any(dim=2).tolist()
    rows = []
    for jy in range(py.phases):
        cols = []
        for jx in range(px.phases):
            if not live[jy][jx]:
                cols.append(x.new_zeros([N, C, py.groups, px.groups]))
            elif py.window == 1 and px.window == 1:
                cols.append(x[:, :, ::py.stride, ::px.stride][:, :, :py.groups, :px.groups] * w[jy, jx, 0, 0])
            else:
                cols.append(F.conv2d(x, _depthwise(w[jy, jx], C), stride=(py.stride, px.stride), groups=C))
        rows.append(cols[0] if px.phases == 1 else torch.stack(cols, dim=-1).flatten(-2))
    y = rows[0] if py.phases == 1 else torch.stack(rows, dim=-2).flatten(-3, -2)
    if py.skip or px.skip or y.shape[2] != py.out_len or y.shape[3] != px.out_len:
        y = y[:, :, py.skip:py.skip + py.out_len, px.skip:px.skip + px.out_len]
    return y


def _conv_padding(p: _AxisPlan) -> tuple[int, int, int] | None:
    """For a one-phase plan: `(conv padding, leading outputs to drop, leading input samples to
    crop)` that let the convolution's own (symmetric) zero padding replace an explicit padded
    copy of the input; None when the grid would not line up."""
    crop = max(0, -p.xpad0)
    before, after = p.xpad0 + crop, p.xpad1
    if crop >= p.in_len:
        return None
    if after <= before:
        return before, 0, crop
    if (after - before) % p.stride == 0:
        return after, (after - before) // p.stride, crop
    return None


def _run(x: torch.Tensor, f: torch.Tensor, py: _AxisPlan, px: _AxisPlan) -> torch.Tensor:
    """Apply the true-convolution filter `f` `[fh, fw]` to `x` `[N, C, H, W]` as planned."""
    x = x.contiguous(memory_format=torch.channels_last)
    if py.phases == 1 and px.phases == 1 and py.window * px.window > 1:
        cy, cx = _conv_padding(py), _conv_padding(px)
        if cy is not None and cx is not None:
            w = _phase_weights(f, py, px)[0, 0]
            y = F.conv2d(x[:, :, cy[2]:, cx[2]:], _depthwise(w, x.shape[1]), stride=(py.stride, px.stride),
                         padding=(cy[0], cx[0]), groups=x.shape[1])
            return y[:, :, cy[1]:cy[1] + py.out_len, cx[1]:cx[1] + px.out_len]
    if (py.phases > 1 or px.phases > 1) and py.down == 1 and px.down == 1:
        return _run_transposed(x, f, py, px)
    return _run_phases(x, f, py, px)

#----------------------------------------------------------------------------
# Reference kernel on prepared filters.

class _Filters(NamedTuple):
    """A prepared filter: either `f2` `[fh, fw]`, or the separable pair `fy` `[fh]`, `fx` `[fw]`.
    True-convolution orientation (already flipped when `flip_filter`), gain folded in."""
    f2: torch.Tensor | None
    fy: torch.Tensor | None
    fx: torch.Tensor | None

    @property
    def size(self) -> tuple[int, int]:
        """`(fw, fh)`."""
        if self.f2 is not None:
            return self.f2.shape[1], self.f2.shape[0]
        return self.fx.shape[0], self.fy.shape[0]

    def flipped(self) -> _Filters:
        if self.f2 is not None:
            return _Filters(self.f2.flip([0, 1]), None, None)
        return _Filters(None, self.fy.flip([0]), self.fx.flip([0]))


def _split_rank1(f: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
    """`(fy, fx)` with `outer(fy, fx) == f` when the 2-D filter `f` has rank one, else None."""
    if f.shape[0] == 1:
        return f.new_ones([1]), f[0, :]
    if f.shape[1] == 1:
        return f[:, 0], f.new_ones([1])
    iy, ix = divmod(int(f.abs().argmax()), f.shape[1])
    pivot = f[iy, ix]
    if pivot == 0:
        return None
    fy, fx = f[:, ix] / pivot, f[iy, :]
    # Accept only factorisations exact to a few ulps of the filter's own precision.
    tol = 4 * torch.finfo(f.dtype).eps * f.abs().max()
    if (torch.outer(fy, fx) - f).abs().max() > tol:
        return None
    return fy, fx


def _prepare(f: torch.Tensor | None, flip_filter: bool, gain: float, dtype: torch.dtype,
             device: torch.device) -> _Filters:
    """Public filter argument (see `upfirdn2d`) -> `_Filters` for `x` of `dtype` on `device`."""
    if f is None:
        return _Filters(torch.full([1, 1], float(gain), dtype=dtype, device=device), None, None)
    if f.requires_grad:
        raise ValueError("the resampling ops compute no gradient for filters; pass them with requires_grad=False")
    f = f.to(dtype=dtype, device=device)
    if flip_filter:
        f = f.flip(list(range(f.ndim)))
    if f.ndim == 1:
        s = gain ** 0.5
        return _Filters(None, f * s, f * s)
    split = _split_rank1(f) if f.numel() > 1 else None
    if split is not None:
        return _Filters(None, split[0] * gain, split[1])
    return _Filters(f * gain, None, None)


def _resample(x: torch.Tensor, filt: _Filters, up: tuple[int, int], down: tuple[int, int],
              pad: tuple[int, int, int, int], out_format: torch.memory_format | None = None) -> torch.Tensor:
    """The reference kernel (no autograd bookkeeping): `x` `[N, C, H, W]` -> `[N, C, outH, outW]`.
    `up`, `down` are (x, y) pairs, `pad` is (x0, x1, y0, y1). The passes run channels-last (the
    layout in which the CPU's depthwise kernels are fast); the result is returned in `out_format`,
    by default the layout of `x`."""
    if out_format is None:
        out_format = torch.channels_last if _is_channels_last(x) else torch.contiguous_format
    H, W = x.shape[2:]
    fw, fh = filt.size
    px = _plan_axis(W, up[0], down[0], pad[0], pad[1], fw)
    py = _plan_axis(H, up[1], down[1], pad[2], pad[3], fh)
    if filt.f2 is not None:
        y = _run(x, filt.f2, py, px)
    else:
        y = _run(x, filt.fx[None, :], _plan_axis(H, 1, 1, 0, 0, 1), px)
        y = _run(y, filt.fy[:, None], py, _plan_axis(px.out_len, 1, 1, 0, 0, 1))
    return y.contiguous(memory_format=out_format)


def _is_channels_last(x: torch.Tensor) -> bool:
    return x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()


def _adjoint_padding(in_size: tuple[int, int], out_size: tuple[int, int], taps: tuple[int, int],
                     up: tuple[int, int], down: tuple[int, int], pad: tuple[int, int, int, int]
                     ) -> tuple[int, int, int, int]:
    """Padding of the transposed op (up and down swapped, filter flipped) that maps a gradient
    of the output back onto the input grid. Sizes, taps, up and down are (x, y) pairs."""
    res = []
    for a in range(2):
        p0 = pad[2 * a]
        res += [taps[a] - 1 - p0, in_size[a] * up[a] + p0 - out_size[a] * down[a]]
    return res[0], res[1], res[2], res[3]


class _UpFirDn2d(torch.autograd.Function):
    """Differentiable wrapper of `_resample`; the backward pass is the transposed resampling,
    itself differentiable, so gradients of any order are available."""

    @staticmethod
    def forward(ctx, x, filt, up, down, pad):
        y = _resample(x, filt, up, down, pad)
        ctx.filt = filt
        ctx.config = ((x.shape[3], x.shape[2]), (y.shape[3], y.shape[2]), up, down, pad)
        return y

    @staticmethod
    def backward(ctx, dy):
        in_size, out_size, up, down, pad = ctx.config
        apad = _adjoint_padding(in_size, out_size, ctx.filt.size, up, down, pad)
        return _resample_autograd(dy, ctx.filt.flipped(), down, up, apad), None, None, None, None


def _resample_autograd(x: torch.Tensor, filt: _Filters, up: tuple[int, int], down: tuple[int, int],
                       pad: tuple[int, int, int, int]) -> torch.Tensor:
    """`_resample` with gradients to `x` (any order)."""
    return _UpFirDn2d.apply(x, filt, tuple(up), tuple(down), tuple(pad))

#----------------------------------------------------------------------------
# Implementation choice (seam for fused kernels).

def _check_impl(impl: str) -> None:
    if impl not in ("ref", "cuda"):
        raise ValueError(f"impl must be 'ref' or 'cuda', got {impl!r}")


def _upfirdn2d_ref(x: torch.Tensor, f: torch.Tensor | None, up: tuple[int, int], down: tuple[int, int],
                   pad: tuple[int, int, int, int], flip_filter: bool, gain: float) -> torch.Tensor:
    return _resample_autograd(x, _prepare(f, flip_filter, gain, x.dtype, x.device), up, down, pad)


def _fast_impl(x: torch.Tensor, impl: str) -> Callable[..., torch.Tensor]:
    """The implementation to run for `x`: a fused kernel when one exists for its device, else the
    reference. Fused kernels plug in here with the signature of `_upfirdn2d_ref`, e.g. the CUDA
    plugin (`torch_utils.custom_ops.get_plugin`, loaded lazily on first use) when
    `impl == 'cuda' and x.device.type == 'cuda'`."""
    _check_impl(impl)
    if impl == "cuda" and x.device.type == "cuda":
        fn = _cuda_kernels.upfirdn2d_impl(x, _upfirdn2d_ref)  # None: no kernel here (warned once)
        if fn is not None:
            return fn
    if impl == "cuda" and x.device.type == "cpu":
        fn = _cpu_kernels.upfirdn2d_impl(x, _upfirdn2d_ref)  # None unless enabled (cpu_kernels.kernels_enabled)
        if fn is not None:
            return fn
    return _upfirdn2d_ref

#----------------------------------------------------------------------------
# Public ops.

def _check_input(x: torch.Tensor, f: torch.Tensor | None) -> None:
    if not isinstance(x, torch.Tensor) or x.ndim != 4:
        raise ValueError(f"x must be a 4-D tensor [N, C, H, W], got {getattr(x, 'shape', type(x))}")
    if f is not None and (not isinstance(f, torch.Tensor) or f.ndim not in (1, 2) or f.numel() == 0):
        raise ValueError("f must be None or a non-empty 1-D or 2-D tensor (see setup_filter)")


def upfirdn2d(x: torch.Tensor, f: torch.Tensor | None, up: ScaleArg = 1, down: ScaleArg = 1, padding: PadArg = 0,
              flip_filter: bool = False, gain: float = 1, impl: str = "cuda") -> torch.Tensor:
    """Upsample, pad, FIR-filter and downsample a batch of images.

    Args:
        x: `[N, C, H, W]`.
        f: `[fh, fw]` (2-D), `[taps]` (separable, applied along x then y) or `None` (identity);
            usually made by `setup_filter`. No gradient flows to `f`.
        up: upsampling factor, `int` or `[x, y]`.
        down: downsampling factor, `int` or `[x, y]`.
        padding: `int`, `[x, y]` or `[x0, x1, y0, y1]`, applied after upsampling; negative crops.
        flip_filter: correlate with `f` instead of convolving (i.e. flip it).
        gain: overall gain (a 1-D filter gets `sqrt(gain)` per axis).
        impl: `'cuda'` (fused kernel when available for `x`'s device, else the reference) or `'ref'`.

    Returns:
        `[N, C, (H * up_y + y0 + y1 - fh) // down_y + 1, (W * up_x + x0 + x1 - fw) // down_x + 1]`.
    """
    _check_input(x, f)
    upx, upy = _parse_scaling(up, "up")
    downx, downy = _parse_scaling(down, "down")
    pad = _parse_padding(padding)
    fn = _fast_impl(x, impl)
    return fn(x, f, (upx, upy), (downx, downy), pad, bool(flip_filter), float(gain))


def filter2d(x: torch.Tensor, f: torch.Tensor | None, padding: PadArg = 0, flip_filter: bool = False,
             gain: float = 1, impl: str = "cuda") -> torch.Tensor:
    """Filter `x` `[N, C, H, W]` with `f`, keeping the size (plus `padding`): `[N, C, H + y0 + y1, W + x0 + x1]`."""
    _check_input(x, f)
    px0, px1, py0, py1 = _parse_padding(padding)
    fw, fh = _get_filter_size(f)
    pad = [px0 + fw // 2, px1 + (fw - 1) // 2, py0 + fh // 2, py1 + (fh - 1) // 2]
    return upfirdn2d(x, f, padding=pad, flip_filter=flip_filter, gain=gain, impl=impl)


def upsample2d(x: torch.Tensor, f: torch.Tensor | None, up: ScaleArg = 2, padding: PadArg = 0,
               flip_filter: bool = False, gain: float = 1, impl: str = "cuda") -> torch.Tensor:
    """Upsample `x` `[N, C, H, W]` by `up` with the interpolation filter `f` (DC gain preserved):
    `[N, C, H * up_y + y0 + y1, W * up_x + x0 + x1]`."""
    _check_input(x, f)
    upx, upy = _parse_scaling(up, "up")
    px0, px1, py0, py1 = _parse_padding(padding)
    fw, fh = _get_filter_size(f)
    pad = [px0 + (fw + upx - 1) // 2, px1 + (fw - upx) // 2, py0 + (fh + upy - 1) // 2, py1 + (fh - upy) // 2]
    return upfirdn2d(x, f, up=(upx, upy), padding=pad, flip_filter=flip_filter, gain=gain * upx * upy, impl=impl)


def downsample2d(x: torch.Tensor, f: torch.Tensor | None, down: ScaleArg = 2, padding: PadArg = 0,
                 flip_filter: bool = False, gain: float = 1, impl: str = "cuda") -> torch.Tensor:
    """Low-pass filter `x` `[N, C, H, W]` with `f` and keep every `down`-th sample:
    `[N, C, (H + y0 + y1) // down_y, (W + x0 + x1) // down_x]`."""
    _check_input(x, f)
    downx, downy = _parse_scaling(down, "down")
    px0, px1, py0, py1 = _parse_padding(padding)
    fw, fh = _get_filter_size(f)
    pad = [px0 + (fw - downx + 1) // 2, px1 + (fw - downx) // 2, py0 + (fh - downy + 1) // 2, py1 + (fh - downy) // 2]
    return upfirdn2d(x, f, down=(downx, downy), padding=pad, flip_filter=flip_filter, gain=gain, impl=impl)

#----------------------------------------------------------------------------
