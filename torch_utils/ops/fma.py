"""Fused multiply-add: `fma(a, b, c) = a * b + c` with broadcasting."""

from __future__ import annotations

import torch

#----------------------------------------------------------------------------

def fma(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """`a * b + c` in one op (`torch.addcmul`), without the intermediate product.

    Args:
        a, b, c: tensors broadcastable to a common shape (e.g. `[N, C, H, W]`, `[N, C, 1, 1]`, `[1, C, 1, 1]`).

    Returns:
        Tensor of the broadcast shape. Gradients to each argument are summed over the axes it was
        broadcast along, as for the unfused expression, and are differentiable again.
    """
    return torch.addcmul(c, a, b)

#----------------------------------------------------------------------------
