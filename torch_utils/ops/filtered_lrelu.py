"""Alias-suppressed leaky ReLU (StyleGAN3): `filtered_lrelu`.

`filtered_lrelu(x, fu, fd, b, up, down, padding, gain, slope, clamp)` computes, per channel,

    z = upfirdn2d(x + b, fu, up=up, padding=padding, gain=up**2)       # upsample
    z = clamp(leaky_relu(z, slope) * gain, -clamp, clamp)              # nonlinearity at the high rate
    y = upfirdn2d(z, fd, down=down)                                    # low-pass and downsample

The reference path runs on blocks of channels (channels-last, where the CPU's depthwise kernels
are fast) so the upsampled intermediate (up**2 times the input) only ever exists for one block,
computes only the part of it that the down filter reads, and keeps one byte per intermediate
sample (the slope chosen, or "clamped") for the backward pass instead of the float intermediate.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence, Union

import torch
import torch.nn.functional as F

from . import cpu_kernels as _cpu_kernels
from . import cuda_kernels as _cuda_kernels
from . import upfirdn2d as _ufd

PadArg = Union[int, Sequence[int]]

# Upsampled intermediate per block of channels (bytes). Small enough to stay in the last-level
# cache and to be reused from the allocator's free lists (fresh large buffers cost a page fault
# per 4 KiB on first touch), large enough that the per-op overhead of a block stays small.
_BLOCK_BYTES = 8 << 20

#----------------------------------------------------------------------------
# Reference implementation.

def _block_size(channels: int, height: int, width: int, itemsize: int) -> int:
    return max(1, min(channels, _BLOCK_BYTES // max(1, height * width * itemsize)))


def _act_(z: torch.Tensor, gain: float, slope: float, clamp: float | None, want_code: bool) -> torch.Tensor | None:
    """In place: z <- clamp(leaky_relu(z, slope) * gain). Returns the derivative code (uint8: 0 clamped,
    1 negative side, 2 positive side) when asked."""
    pos = (z > 0) if want_code else None
    F.leaky_relu_(z, slope)
    if gain != 1:
        z.mul_(gain)
    code = None
    if want_code:
        code = pos.view(torch.uint8).add_(1)  # bool and uint8 share the byte layout
        if clamp is not None:
            code.mul_((z.abs() <= clamp).view(torch.uint8))
    if clamp is not None:
        z.clamp_(-clamp, clamp)
    return code


def _code_to_slope(code: torch.Tensor, gain: float, slope: float, dtype: torch.dtype) -> torch.Tensor:
    """Derivative of the nonlinearity from its code (a table lookup, in the code's memory layout).
    index_select on the flat codes is about twice as fast on the CPU as indexing the table with the
    code tensor, and exact (arithmetic on the code is not)."""
    table = torch.tensor([0.0, gain * slope, gain], dtype=dtype, device=code.device)
    flat = code
    if code.dim() == 4 and not code.is_contiguous() and code.is_contiguous(memory_format=torch.channels_last):
        flat = code.permute(0, 2, 3, 1)  # channels-last codes: a contiguous view, no copy
    out = table.index_select(0, flat.reshape(-1).to(torch.int32)).view(flat.shape)
    return out.permute(0, 3, 1, 2) if flat is not code else out


class _FilteredLReLU(torch.autograd.Function):
    """Forward block by block; backward through the transposed resamplings (first derivative,
    and second derivatives with respect to the incoming gradient)."""

    @staticmethod
    def forward(ctx, x, b, fu, fd, up, down, pad, gain, slope, clamp):
        N, C, H, W = x.shape
        NC = N * C
        xf = x.reshape(1, NC, H, W)
        bf = None if b is None else b.to(x.dtype).repeat(N).reshape(1, NC, 1, 1)
        want_code = any(ctx.needs_input_grad[:2])
        fuw, fuh = fu.size
        zH, zW = H * up + pad[2] + pad[3] - fuh + 1, W * up + pad[0] + pad[1] - fuw + 1
        step = _block_size(NC, zH, zW, x.element_size())
        y, codes = None, []
        for c0 in range(0, NC, step):
            # Blocks run channels-last (fast depthwise kernels); the bias is added while converting.
            xs = xf[:, c0:c0 + step]
            xc = torch.empty_like(xs, memory_format=torch.channels_last)
            if bf is not None:
                torch.add(xs, bf[:, c0:c0 + step], out=xc)
            else:
                xc.copy_(xs)
            z = _ufd._resample(xc, fu, (up, up), (1, 1), pad, out_format=torch.channels_last)
            codes.append(_act_(z, gain, slope, clamp, want_code))
            yc = _ufd._resample(z, fd, (1, 1), (down, down), (0, 0, 0, 0), out_format=torch.channels_last)
            if y is None:
                y = x.new_empty([1, NC, yc.shape[2], yc.shape[3]])
            y[:, c0:c0 + step] = yc
        ctx.codes = codes if want_code else None  # per block, uint8, channels-last
        ctx.config = (x.shape, b is not None, fu, fd, up, down, pad, gain, slope, step, (zH, zW))
        return y.reshape(N, C, y.shape[2], y.shape[3])

    @staticmethod
    def backward(ctx, dy):
        (N, C, H, W), has_b, fu, fd, up, down, pad, gain, slope, step, (zH, zW) = ctx.config
        NC = N * C
        oH, oW = dy.shape[2:]
        pad_d = _ufd._adjoint_padding((zW, zH), (oW, oH), fd.size, (1, 1), (down, down), (0, 0, 0, 0))
        pad_u = _ufd._adjoint_padding((W, H), (zW, zH), fu.size, (up, up), (1, 1), pad)
        fd_t, fu_t = fd.flipped(), fu.flipped()
        dyf = dy.reshape(1, NC, oH, oW)
        if torch.is_grad_enabled():  # double backward requested: stay on differentiable ops
            code = torch.cat(ctx.codes, dim=1)
            dz = _ufd._resample_autograd(dyf, fd_t, (down, down), (1, 1), pad_d)
            dz = dz * _code_to_slope(code, gain, slope, dz.dtype)
            dx = _ufd._resample_autograd(dz, fu_t, (1, 1), (up, up), pad_u)
        else:
            dx = dy.new_empty([1, NC, H, W])
            for k, c0 in enumerate(range(0, NC, step)):
                cl = torch.channels_last
                dz = _ufd._resample(dyf[:, c0:c0 + step], fd_t, (down, down), (1, 1), pad_d, out_format=cl)
                dz.mul_(_code_to_slope(ctx.codes[k], gain, slope, dz.dtype))
                dx[:, c0:c0 + step] = _ufd._resample(dz, fu_t, (1, 1), (up, up), pad_u, out_format=cl)
        dx = dx.reshape(N, C, H, W)
        db = dx.sum(dim=[0, 2, 3]) if has_b and ctx.needs_input_grad[1] else None
        return dx, db, None, None, None, None, None, None, None, None


def _filtered_lrelu_ref(x: torch.Tensor, fu: torch.Tensor | None, fd: torch.Tensor | None, b: torch.Tensor | None,
                        up: int, down: int, pad: tuple[int, int, int, int], gain: float, slope: float,
                        clamp: float | None, flip_filter: bool) -> torch.Tensor:
    # A positive gain commutes with the leaky ReLU: apply it with the upsampling filter, saving a pass.
    act_gain = 1.0 if gain > 0 else gain
    filt_u = _ufd._prepare(fu, flip_filter, up ** 2 * (gain if gain > 0 else 1), x.dtype, x.device)
    filt_d = _ufd._prepare(fd, flip_filter, 1, x.dtype, x.device)
    trimmed = trim_padding((x.shape[2], x.shape[3]), up, down, pad, filt_u.size, filt_d.size)
    return _FilteredLReLU.apply(x, b, filt_u, filt_d, up, down, trimmed, act_gain, slope, clamp)


def trim_padding(in_size: tuple[int, int], up: int, down: int, pad: Sequence[int], fu_size: tuple[int, int],
                 fd_size: tuple[int, int]) -> tuple[int, int, int, int]:
    """The padding `(x0, x1, y0, y1)` with its far sides trimmed so that the upsampled intermediate ends
    where the down filter stops reading (the reference and the CPU kernel share this geometry).
    `in_size` is `(H, W)`, filter sizes `(width, height)`. Raises ValueError for an empty output."""
    trimmed = list(pad)
    for axis, size in enumerate((in_size[1], in_size[0])):
        z = size * up + pad[2 * axis] + pad[2 * axis + 1] - fu_size[axis] + 1
        out = (z - fd_size[axis]) // down + 1
        if z < 1 or out < 1:
            raise ValueError(f"filtered_lrelu output would be empty: input {tuple(in_size)}, up {up}, "
                             f"padding {list(pad)}, filters {tuple(fu_size)} / {tuple(fd_size)}, down {down}")
        trimmed[2 * axis + 1] -= z - ((out - 1) * down + fd_size[axis])
    return (trimmed[0], trimmed[1], trimmed[2], trimmed[3])


def _fast_impl(x: torch.Tensor, impl: str) -> Callable[..., torch.Tensor]:
    """The implementation to run for `x`: a fused kernel when one exists for its device, else the
    reference. Fused kernels plug in here with the signature of `_filtered_lrelu_ref`, e.g. the
    CUDA plugin (`torch_utils.custom_ops.get_plugin`, loaded lazily on first use) when
    `impl == 'cuda' and x.device.type == 'cuda'`."""
    if impl not in ("ref", "cuda"):
        raise ValueError(f"impl must be 'ref' or 'cuda', got {impl!r}")
    if impl == "cuda" and x.device.type == "cuda":
        fn = _cuda_kernels.filtered_lrelu_impl(x, _filtered_lrelu_ref)  # None: no kernel here (warned once)
        if fn is not None:
            return fn
    if impl == "cuda" and x.device.type == "cpu":
        fn = _cpu_kernels.filtered_lrelu_impl(x, _filtered_lrelu_ref)  # None unless enabled (cpu_kernels.kernels_enabled)
        if fn is not None:
            return fn
    return _filtered_lrelu_ref

#----------------------------------------------------------------------------
# Public op.

def filtered_lrelu(x: torch.Tensor, fu: torch.Tensor | None = None, fd: torch.Tensor | None = None,
                   b: torch.Tensor | None = None, up: int = 1, down: int = 1, padding: PadArg = 0,
                   gain: float = math.sqrt(2), slope: float = 0.2, clamp: float | None = None,
                   flip_filter: bool = False, impl: str = "cuda") -> torch.Tensor:
    """Bias, upsample, leaky ReLU, downsample: the StyleGAN3 nonlinearity.

    Args:
        x: `[N, C, H, W]`.
        fu: upsampling filter `[taps]` (separable) or `[fh, fw]`, from `upfirdn2d.setup_filter`; None: 1 tap.
        fd: downsampling filter, likewise.
        b: bias `[C]`, added before upsampling; None: no bias.
        up: integer upsampling factor (the upsampling filter gets gain `up**2`).
        down: integer downsampling factor.
        padding: `int`, `[x, y]` or `[x0, x1, y0, y1]`, applied after upsampling (negative crops).
        gain: scale after the leaky ReLU.
        slope: slope of the leaky ReLU for negative inputs.
        clamp: clamp the scaled activation to `[-clamp, clamp]`; None: no clamping.
        flip_filter: correlate with the filters instead of convolving.
        impl: `'cuda'` (fused kernel when available for `x`'s device, else the reference) or `'ref'`.

    Returns:
        `[N, C, outH, outW]` with `outW = (W * up + x0 + x1 - fu_w - fd_w + 2 - 1) // down + 1`
        (likewise `outH`). Gradients flow to `x` and `b` (first order), not to the filters.
    """
    if not isinstance(x, torch.Tensor) or x.ndim != 4:
        raise ValueError(f"x must be a 4-D tensor [N, C, H, W], got {getattr(x, 'shape', type(x))}")
    for name, f in (("fu", fu), ("fd", fd)):
        if f is not None and (not isinstance(f, torch.Tensor) or f.ndim not in (1, 2) or f.numel() == 0):
            raise ValueError(f"{name} must be None or a non-empty 1-D or 2-D tensor (see upfirdn2d.setup_filter)")
    if b is not None and (b.ndim != 1 or b.shape[0] != x.shape[1]):
        raise ValueError(f"bias must have shape [{x.shape[1]}] (channels of x), got {tuple(b.shape)}")
    for name, v in (("up", up), ("down", down)):
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise ValueError(f"{name} must be an int >= 1, got {v!r}")
    if clamp is not None and not clamp >= 0:
        raise ValueError(f"clamp must be None or >= 0, got {clamp!r}")
    pad = _ufd._parse_padding(padding)
    fn = _fast_impl(x, impl)
    return fn(x, fu, fd, b, up, down, pad, float(gain), float(slope), None if clamp is None else float(clamp),
              bool(flip_filter))

#----------------------------------------------------------------------------
