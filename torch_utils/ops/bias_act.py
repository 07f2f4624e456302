"""Bias, activation, gain and clamp in one call: `bias_act`.

`bias_act(x, b, dim, act, alpha, gain, clamp)` computes

    y = clamp(act(x + b, alpha) * gain, -clamp, clamp)

with `b` broadcast along axis `dim` of `x`. `activation_funcs` describes the supported
activations; networks read `activation_funcs[name].def_gain` to scale their layers.
The reference path is plain PyTorch autograd, differentiable to any order.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F

from dnnlib import EasyDict

from . import cuda_kernels as _cuda_kernels

#----------------------------------------------------------------------------
# Activation records.
#
# Each record has: `func(x, alpha)`, the default `alpha` and `gain` (`def_alpha`, `def_gain`;
# the gain keeps the signal magnitude of a ReLU-like unit), `cuda_idx` (the activation's
# number in the fused kernels), `ref` ('y' if the derivative can be computed from the output,
# 'x' if it needs the input) and `has_2nd_grad` (whether the second derivative is non-zero).

def _record(func: Callable, def_alpha: float, def_gain: float, cuda_idx: int, ref: str,
            has_2nd_grad: bool) -> EasyDict:
    return EasyDict(func=func, def_alpha=def_alpha, def_gain=def_gain, cuda_idx=cuda_idx, ref=ref,
                    has_2nd_grad=has_2nd_grad)


activation_funcs: dict[str, EasyDict] = {
    "linear":   _record(lambda x, alpha: x, 0, 1, 1, "", False),
    "relu":     _record(lambda x, alpha: F.relu(x), 0, math.sqrt(2), 2, "y", False),
    "lrelu":    _record(lambda x, alpha: F.leaky_relu(x, alpha), 0.2, math.sqrt(2), 3, "y", False),
    "tanh":     _record(lambda x, alpha: torch.tanh(x), 0, 1, 4, "y", True),
    "sigmoid":  _record(lambda x, alpha: torch.sigmoid(x), 0, 1, 5, "y", True),
    "elu":      _record(lambda x, alpha: F.elu(x), 0, 1, 6, "y", True),
    "selu":     _record(lambda x, alpha: F.selu(x), 0, 1, 7, "y", True),
    "softplus": _record(lambda x, alpha: F.softplus(x), 0, 1, 8, "y", True),
    "swish":    _record(lambda x, alpha: torch.sigmoid(x) * x, 0, math.sqrt(2), 9, "x", True),
}

#----------------------------------------------------------------------------
# Reference implementation.

def _bias_act_ref(x: torch.Tensor, b: torch.Tensor | None, dim: int, act: str, alpha: float, gain: float,
                  clamp: float) -> torch.Tensor:
    if b is not None:
        x = x + b.reshape([-1 if i == dim else 1 for i in range(x.ndim)])
    if act != "linear":
        x = activation_funcs[act].func(x, alpha)
    if gain != 1:
        x = x * gain
    if clamp >= 0:
        x = x.clamp(-clamp, clamp)
    return x


def _fast_impl(x: torch.Tensor, impl: str) -> Callable[..., torch.Tensor]:
    """The implementation to run for `x`: a fused kernel when one exists for its device, else the
    reference. Fused kernels plug in here with the signature of `_bias_act_ref`, e.g. the CUDA
    plugin (`torch_utils.custom_ops.get_plugin`, loaded lazily on first use) when
    `impl == 'cuda' and x.device.type == 'cuda'`."""
    if impl not in ("ref", "cuda"):
        raise ValueError(f"impl must be 'ref' or 'cuda', got {impl!r}")
    if impl == "cuda" and x.device.type == "cuda":
        fn = _cuda_kernels.bias_act_impl(x, _bias_act_ref)  # None: no kernel here (warned once)
        if fn is not None:
            return fn
    return _bias_act_ref

#----------------------------------------------------------------------------
# Public op.

def bias_act(x: torch.Tensor, b: torch.Tensor | None = None, dim: int = 1, act: str = "linear",
             alpha: float | None = None, gain: float | None = None, clamp: float | None = None,
             impl: str = "cuda") -> torch.Tensor:
    """Add a bias, apply an activation, scale and clamp.

    Args:
        x: input of any shape, e.g. `[N, C]` or `[N, C, H, W]`.
        b: bias `[x.shape[dim]]`, or None.
        dim: the axis of `x` that `b` runs along.
        act: a name in `activation_funcs` ('linear', 'relu', 'lrelu', 'tanh', 'sigmoid', 'elu',
            'selu', 'softplus', 'swish').
        alpha: shape parameter of the activation (the negative slope of 'lrelu'); None: its default.
        gain: output scale; None: the activation's `def_gain`.
        clamp: clamp the output to `[-clamp, clamp]`; None (or negative): no clamping.
        impl: `'cuda'` (fused kernel when available for `x`'s device, else the reference) or `'ref'`.

    Returns:
        Tensor of the shape and dtype of `x`.
    """
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"x must be a tensor, got {type(x).__name__}")
    if act not in activation_funcs:
        raise ValueError(f"unknown activation {act!r}; expected one of {', '.join(activation_funcs)}")
    if b is not None:
        if not (0 <= dim < x.ndim):
            raise ValueError(f"dim {dim} is out of range for x of shape {tuple(x.shape)}")
        if b.ndim != 1 or b.shape[0] != x.shape[dim]:
            raise ValueError(f"bias must have shape [{x.shape[dim]}] (x.shape[{dim}]), got {tuple(b.shape)}")
    spec = activation_funcs[act]
    alpha = float(spec.def_alpha if alpha is None else alpha)
    gain = float(spec.def_gain if gain is None else gain)
    clamp = float(-1 if clamp is None else clamp)
    fn = _fast_impl(x, impl)
    return fn(x, b, dim, act, alpha, gain, clamp)

#----------------------------------------------------------------------------
