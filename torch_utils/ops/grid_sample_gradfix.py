"""Bilinear `grid_sample` for the augmentation pipeline, differentiable twice.

`grid_sample(input, grid)` is `torch.nn.functional.grid_sample` with bilinear interpolation,
zero padding and `align_corners=False`, the setting the ADA pipeline uses. The published code
needed a custom op here because PyTorch's `grid_sample` once lacked a second derivative, which
R1 regularisation through the augmentations requires. PyTorch's own op now has it (both with
respect to the input and the grid; `tests/test_ops.py` checks this with gradgradcheck), so the
function always runs the native op. The module flag `enabled` is kept because the published
training code sets it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

enabled: bool = False  # set by the training loop; both settings run the native, twice-differentiable op

#----------------------------------------------------------------------------

def grid_sample(input: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """Sample `input` `[N, C, H, W]` at `grid` `[N, H_out, W_out, 2]` (x, y in [-1, 1], pixel-centre
    convention) with bilinear interpolation, zeros outside -> `[N, C, H_out, W_out]`."""
    return F.grid_sample(input, grid, mode="bilinear", padding_mode="zeros", align_corners=False)

#----------------------------------------------------------------------------
