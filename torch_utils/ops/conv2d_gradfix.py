"""2-D convolutions with an explicit gradient: `conv2d`, `conv_transpose2d`, `no_weight_gradients`.

Drop-in replacements for `torch.nn.functional.conv2d` / `conv_transpose2d`. With the module flag
`enabled` set (the training loop sets it), they run as a custom autograd op whose backward pass
is made of the same ops again, so gradients of any order exist (R1 regularisation differentiates
the discriminator's input gradient once more), and whose weight gradient can be switched off with
`no_weight_gradients()` (path-length regularisation needs only input gradients). With `enabled`
off, or for arguments the op does not cover (string padding, non-4-D input), they are exactly the
`torch.nn.functional` calls.
"""

from __future__ import annotations

import contextlib
import dataclasses
from typing import Iterator, Sequence, Union

import torch
import torch.nn.functional as F

IntPair = Union[int, Sequence[int]]

enabled: bool = False  # use the custom op (set by the training loop)
_weight_gradients_disabled: bool = False

#----------------------------------------------------------------------------
# Public API.

@contextlib.contextmanager
def no_weight_gradients(disable: bool = True) -> Iterator[None]:
    """Inside this context, backward passes through `conv2d` / `conv_transpose2d` (when `enabled`)
    compute no weight gradients (weights get none). `disable=False` makes it a no-op."""
    global _weight_gradients_disabled
    old = _weight_gradients_disabled
    if disable:
        _weight_gradients_disabled = True
    try:
        yield
    finally:
        _weight_gradients_disabled = old


def conv2d(input: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None, stride: IntPair = 1,
           padding: IntPair = 0, dilation: IntPair = 1, groups: int = 1) -> torch.Tensor:
    """`torch.nn.functional.conv2d`: input `[N, C_in, H, W]`, weight `[C_out, C_in / groups, kh, kw]`,
    bias `[C_out]` -> `[N, C_out, H', W']`."""
    if _use_custom(input, padding):
        spec = _ConvSpec(False, _pair(stride), _pair(padding), _pair(dilation), int(groups), (0, 0))
        return _Conv2d.apply(input, weight, bias, spec)
    return F.conv2d(input, weight, bias, stride=stride, padding=padding, dilation=dilation, groups=groups)


def conv_transpose2d(input: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
                     stride: IntPair = 1, padding: IntPair = 0, output_padding: IntPair = 0, groups: int = 1,
                     dilation: IntPair = 1) -> torch.Tensor:
    """`torch.nn.functional.conv_transpose2d`: input `[N, C_in, H, W]`, weight
    `[C_in, C_out / groups, kh, kw]`, bias `[C_out]` -> `[N, C_out, H', W']`."""
    if _use_custom(input, padding):
        spec = _ConvSpec(True, _pair(stride), _pair(padding), _pair(dilation), int(groups), _pair(output_padding))
        return _Conv2d.apply(input, weight, bias, spec)
    return F.conv_transpose2d(input, weight, bias, stride=stride, padding=padding, output_padding=output_padding,
                              groups=groups, dilation=dilation)

#----------------------------------------------------------------------------
# Custom op.

def _pair(v: IntPair) -> tuple[int, int]:
    if isinstance(v, int):
        return v, v
    a, b = v
    return int(a), int(b)


def _use_custom(input: torch.Tensor, padding) -> bool:
    return enabled and isinstance(input, torch.Tensor) and input.ndim == 4 and not isinstance(padding, str)


@dataclasses.dataclass(frozen=True)
class _ConvSpec:
    """Everything but the tensors of one convolution call."""
    transposed: bool
    stride: tuple[int, int]
    padding: tuple[int, int]
    dilation: tuple[int, int]
    groups: int
    output_padding: tuple[int, int]

    def run(self, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None = None) -> torch.Tensor:
        if self.transposed:
            return F.conv_transpose2d(x, w, b, self.stride, self.padding, self.output_padding, self.groups,
                                      self.dilation)
        return F.conv2d(x, w, b, self.stride, self.padding, self.dilation, self.groups)

    def adjoint(self, x_shape: torch.Size, w_shape: torch.Size, y_shape: torch.Size) -> _ConvSpec:
        """The convolution that maps a gradient of the output back to the input (same weight)."""
        if self.transposed:
            return _ConvSpec(False, self.stride, self.padding, self.dilation, self.groups, (0, 0))
        # A transposed convolution, with the output padding that restores the input size exactly.
        opad = tuple(x_shape[2 + a] - ((y_shape[2 + a] - 1) * self.stride[a] - 2 * self.padding[a]
                                       + self.dilation[a] * (w_shape[2 + a] - 1) + 1) for a in range(2))
        return _ConvSpec(True, self.stride, self.padding, self.dilation, self.groups, opad)

    def weight_grad(self, dy: torch.Tensor, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """Gradient with respect to the weight of `w` given the output gradient `dy` and input `x`."""
        return torch.ops.aten.convolution_backward(dy, x, w, None, list(self.stride), list(self.padding),
                                                   list(self.dilation), self.transposed, list(self.output_padding),
                                                   self.groups, [False, True, False])[1]


class _Conv2d(torch.autograd.Function):
    """y = conv(x, w) + b whose backward pass is differentiable again."""

    @staticmethod
    def forward(ctx, x, w, b, spec):
        y = spec.run(x, w, b)
        ctx.save_for_backward(x, w)
        ctx.spec = spec
        ctx.y_shape = y.shape
        return y

    @staticmethod
    def backward(ctx, dy):
        x, w = ctx.saved_tensors
        spec = ctx.spec
        dx = dw = db = None
        if ctx.needs_input_grad[0]:
            dx = _Conv2d.apply(dy, w, None, spec.adjoint(x.shape, w.shape, ctx.y_shape))
        if ctx.needs_input_grad[1] and not _weight_gradients_disabled:
            dw = _Conv2dWeightGrad.apply(dy, x, w, spec)
        if ctx.needs_input_grad[2]:
            db = dy.sum(dim=[0, 2, 3])
        return dx, dw, db, None


class _Conv2dWeightGrad(torch.autograd.Function):
    """dw = weight gradient of conv(x, .) for output gradient dy; bilinear in (dy, x)."""

    @staticmethod
    def forward(ctx, dy, x, w, spec):
        ctx.save_for_backward(dy, x, w)
        ctx.spec = spec
        return spec.weight_grad(dy, x, w)

    @staticmethod
    def backward(ctx, ddw):
        dy, x, w = ctx.saved_tensors
        spec = ctx.spec
        d_dy = d_x = None
        if ctx.needs_input_grad[0]:
            d_dy = _Conv2d.apply(x, ddw, None, spec)
        if ctx.needs_input_grad[1]:
            d_x = _Conv2d.apply(dy, ddw, None, spec.adjoint(x.shape, w.shape, dy.shape))
        return d_dy, d_x, None, None

#----------------------------------------------------------------------------
