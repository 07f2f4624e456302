"""Neural-network ops with the StyleGAN2/3 interface: a reference path in PyTorch for each, and a
seam (`_fast_impl` in each module) where fused kernels plug in.

Modules (imported by name, as the published network pickles do; nothing is imported or built here):
`upfirdn2d` (FIR resampling, `setup_filter`), `bias_act`, `filtered_lrelu`, `conv2d_gradfix`,
`conv2d_resample`, `fma`, `grid_sample_gradfix`.
"""
