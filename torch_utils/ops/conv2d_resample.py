"""Convolution fused with FIR up/downsampling: `conv2d_resample`.

Definition (per axis, `fw` filter taps):

    z = upfirdn2d(x, f if up > 1 else None, up=up, padding=p, gain=up**2)   # upsample, pad, filter
    z = conv2d(z, w)                                                         # "valid" convolution
    y = upfirdn2d(z, f, down=down) if down > 1 else z                        # filter, downsample

where `p` is the user padding plus the amounts that centre the filter, as in `upsample2d`
(`(fw + up - 1) // 2`, `(fw - up) // 2`) and `downsample2d` (`(fw - down + 1) // 2`,
`(fw - down) // 2`). The implementation picks the cheapest equivalent order: 1x1 convolutions
run on the low-resolution side, downsampling filters before a strided convolution, and
upsampling is a strided transposed convolution followed by the filter, so no convolution ever
runs on a zero-stuffed image.
"""

from __future__ import annotations

import torch

from . import conv2d_gradfix, upfirdn2d
from .upfirdn2d import PadArg

#----------------------------------------------------------------------------
# Helpers.

def _conv(x: torch.Tensor, w: torch.Tensor, stride: int = 1, padding: int | list[int] = 0, groups: int = 1,
          transpose: bool = False, flip_weight: bool = True) -> torch.Tensor:
    """conv2d (or conv_transpose2d) through conv2d_gradfix; `flip_weight=False` turns the
    correlation into a true convolution."""
    if not flip_weight and (w.shape[2] > 1 or w.shape[3] > 1):
        w = w.flip([2, 3])
    if transpose:
        return conv2d_gradfix.conv_transpose2d(x, w, stride=stride, padding=padding, groups=groups)
    return conv2d_gradfix.conv2d(x, w, stride=stride, padding=padding, groups=groups)


def _transpose_weight(w: torch.Tensor, groups: int) -> torch.Tensor:
    """`[out, in / groups, kh, kw]` (conv2d layout) -> `[in, out / groups, kh, kw]` (conv_transpose2d layout)."""
    out_ch, in_per_group, kh, kw = w.shape
    w = w.reshape(groups, out_ch // groups, in_per_group, kh, kw).transpose(1, 2)
    return w.reshape(groups * in_per_group, out_ch // groups, kh, kw)

#----------------------------------------------------------------------------
# Public op.

def conv2d_resample(x: torch.Tensor, w: torch.Tensor, f: torch.Tensor | None = None, up: int = 1, down: int = 1,
                    padding: PadArg = 0, groups: int = 1, flip_weight: bool = True,
                    flip_filter: bool = False) -> torch.Tensor:
    """2-D convolution with optional FIR upsampling before it and downsampling after it.

    Args:
        x: `[N, C_in, H, W]`.
        w: `[C_out, C_in / groups, kh, kw]`.
        f: low-pass filter for the resampling (`upfirdn2d.setup_filter`), `[taps]` or `[fh, fw]`;
            None: no filtering.
        up: integer upsampling factor.
        down: integer downsampling factor.
        padding: `int`, `[x, y]` or `[x0, x1, y0, y1]`, on the upsampled grid (negative crops).
        groups: convolution groups.
        flip_weight: True: correlation (like `torch.nn.functional.conv2d`); False: true convolution.
        flip_filter: correlate with `f` instead of convolving.

    Returns:
        `[N, C_out, H', W']`; for a 3x3 kernel with padding 1 and a 4-tap filter (StyleGAN2),
        `W' = W * up // down`.
    """
    if not (isinstance(x, torch.Tensor) and x.ndim == 4 and isinstance(w, torch.Tensor) and w.ndim == 4):
        raise ValueError("conv2d_resample needs x [N, C, H, W] and w [C_out, C_in / groups, kh, kw]")
    if w.dtype != x.dtype:
        raise ValueError(f"x and w must have the same dtype, got {x.dtype} and {w.dtype}")
    if groups < 1 or x.shape[1] != w.shape[1] * groups or w.shape[0] % groups:
        raise ValueError(f"channels do not match: x {tuple(x.shape)}, w {tuple(w.shape)}, groups {groups}")
    for name, v in (("up", up), ("down", down)):
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise ValueError(f"{name} must be an int >= 1, got {v!r}")
    kh, kw = w.shape[2:]
    fw, fh = upfirdn2d._get_filter_size(f)
    px0, px1, py0, py1 = upfirdn2d._parse_padding(padding)

    # Centre the filter on the resampled grid.
    if up > 1:
        px0, px1, py0, py1 = px0 + (fw + up - 1) // 2, px1 + (fw - up) // 2, py0 + (fh + up - 1) // 2, py1 + (fh - up) // 2
    if down > 1:
        px0, px1 = px0 + (fw - down + 1) // 2, px1 + (fw - down) // 2
        py0, py1 = py0 + (fh - down + 1) // 2, py1 + (fh - down) // 2
    pad = [px0, px1, py0, py1]

    # 1x1 convolution: resample on the side with the smaller image.
    if kw == 1 and kh == 1 and up == 1 and down > 1:
        x = upfirdn2d.upfirdn2d(x, f, down=down, padding=pad, flip_filter=flip_filter)
        return _conv(x, w, groups=groups, flip_weight=flip_weight)
    if kw == 1 and kh == 1 and up > 1 and down == 1:
        x = _conv(x, w, groups=groups, flip_weight=flip_weight)
        return upfirdn2d.upfirdn2d(x, f, up=up, padding=pad, gain=up ** 2, flip_filter=flip_filter)

    # Downsampling: filter at full rate, then a strided convolution.
    if up == 1 and down > 1:
        x = upfirdn2d.upfirdn2d(x, f, padding=pad, flip_filter=flip_filter)
        return _conv(x, w, stride=down, groups=groups, flip_weight=flip_weight)

    # Upsampling: strided transposed convolution (the zero-stuffed image padded by kw - 1 before and
    # kw - up after), then the filter with the rest of the padding; crops both sides can share go
    # into the transposed convolution's own padding.
    if up > 1:
        px0, px1, py0, py1 = px0 - (kw - 1), px1 - (kw - up), py0 - (kh - 1), py1 - (kh - up)
        pxt, pyt = max(min(-px0, -px1), 0), max(min(-py0, -py1), 0)
        x = _conv(x, _transpose_weight(w, groups), stride=up, padding=[pyt, pxt], groups=groups, transpose=True,
                  flip_weight=not flip_weight)
        x = upfirdn2d.upfirdn2d(x, f, padding=[px0 + pxt, px1 + pxt, py0 + pyt, py1 + pyt], gain=up ** 2,
                                flip_filter=flip_filter)
        if down > 1:
            x = upfirdn2d.upfirdn2d(x, f, down=down, flip_filter=flip_filter)
        return x

    # No resampling: the convolution's own padding when symmetric and non-negative.
    if px0 == px1 and py0 == py1 and px0 >= 0 and py0 >= 0:
        return _conv(x, w, padding=[py0, px0], groups=groups, flip_weight=flip_weight)
    x = upfirdn2d.upfirdn2d(x, None, padding=pad)
    return _conv(x, w, groups=groups, flip_weight=flip_weight)

#----------------------------------------------------------------------------
