// upfirdn2d kernel: upsample (insert zeros), pad, FIR-filter, downsample, on [planes, H, W] images.
//
// Per axis, output i is  sum_a p[i * down + a] * g[a],  a in [0, taps), where p is the input with
// up - 1 zeros inserted after every sample, padded with pad0 zeros in front (negative: cropped),
// and g is the filter in convolution order (g[a] = f[taps - 1 - a], or f[a] when `flip`).
// A separable filter runs as two calls, one per axis (a filter of height or width 1).

#pragma once

#include <cuda_runtime.h>

#include <cstdint>

struct UpFirDn2dParams {
    const void* x;       // [planes, in_h, in_w] contiguous
    void* y;             // [planes, out_h, out_w] contiguous
    const float* f;      // [f_h, f_w] float32 taps, row-major (y is the first axis)
    int64_t planes;
    int in_w, in_h;
    int out_w, out_h;    // out = (in * up + pad0 + pad1 - taps) // down + 1 per axis
    int up_x, up_y;
    int down_x, down_y;
    int pad_x0, pad_y0;  // the far padding only enters through out_w / out_h
    int f_w, f_h;
    int flip;            // 1: correlate with f (use it as is); 0: convolve
    float gain;
};

// Element types of x and y: 0 float32, 1 float16 (the separable passes keep a float32 intermediate).
cudaError_t upfirdn2d_launch(const UpFirDn2dParams& p, int x_type, int y_type, cudaStream_t stream);
