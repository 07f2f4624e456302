// filtered_lrelu kernels: upsample -> (bias), leaky ReLU, gain, clamp -> downsample on [planes, H, W].
//
// Per axis (see upfirdn2d.h for the resampling convention), with T = in * up + pad0 + pad1 - fu_taps + 1
// intermediate samples and out = (T - fd_taps) // down + 1 outputs:
//
//   t[j] = up_gain * sum_a p[j + a] * gu[a]         p: input + bias, zero-stuffed by `up`, padded
//   v[j] = act(t[j])                                 mode 0/1: clamp(lrelu(t, slope) * gain)
//                                                    mode 2:   t * (gain, gain * slope or 0 from a stored code)
//   y[i] = down_gain * sum_a v[i * down + a] * gd[a]
//
// Codes (2 bits per intermediate sample, 4 samples per byte, sample k of a byte in bits 2k..2k+1):
// 0 positive side, 1 negative side (t <= 0), bit 1 set: clamped (zero derivative). Mode 1 writes them
// for the op's own intermediate grid [planes, T_h, ceil(T_w / 4)]; mode 2 reads them at
// (j_y + s_off_y, j_x + s_off_x) of a grid of s_h x s_w samples, and anything outside counts as
// clamped. Mode 2 is linear in x: it is the backward pass (up/down and filters swapped) and the
// derivative of the backward pass.

#pragma once

#include <cuda_runtime.h>

#include <cstdint>

struct FilteredLReluParams {
    const void* x;              // [planes, in_h, in_w] contiguous
    void* y;                    // [planes, out_h, out_w] contiguous
    const void* b;              // [channels] bias of x's dtype (added to input samples), or nullptr
    const float* fu;            // [fu_taps] (separable) or [fu_taps, fu_taps], float32
    const float* fd;            // [fd_taps] or [fd_taps, fd_taps]
    uint8_t* signs_out;         // mode 1: [planes, t_h, ceil(t_w / 4)], zero-filled by the caller
    const uint8_t* signs_in;    // mode 2: [planes, s_h, ceil(s_w / 4)]
    int64_t planes;             // N * C; channel of plane k is k % channels
    int channels;
    int in_w, in_h;
    int out_w, out_h;
    int t_w, t_h;               // intermediate size of this op
    int pad_x0, pad_y0;
    int s_w, s_h;               // mode 2: size of the code grid
    int s_off_x, s_off_y;       // mode 2: code position = intermediate position + offset
    float up_gain, down_gain;
    float gain, slope, clamp;   // clamp < 0: none
    int flip;                   // 1: correlate with the filters; 0: convolve
    int mode;                   // 0: activation; 1: activation, write codes; 2: read codes
};

// Whether a fused kernel exists for this configuration (the StyleGAN3 ones; see filtered_lrelu.cu).
bool filtered_lrelu_fused_supported(int up, int down, int fu_taps, int fd_taps, bool fu_2d, bool fd_2d);

// One fused pass. Returns cudaErrorNotSupported for configurations without a fused kernel.
cudaError_t filtered_lrelu_fused_launch(const FilteredLReluParams& p, int up, int down, int fu_taps, int fd_taps,
                                        bool fu_2d, bool fd_2d, bool half, cudaStream_t stream);

// The activation step alone, on a materialised intermediate (the generic path for other
// configurations, between two upfirdn2d calls).
struct FilteredLReluActParams {
    const void* x;              // [planes, h, w] contiguous
    void* y;                    // [planes, h, w]
    uint8_t* signs_out;         // mode 1: [planes, h, ceil(w / 4)]
    const uint8_t* signs_in;    // mode 2: [planes, s_h, ceil(s_w / 4)]
    int64_t planes;
    int w, h;
    int s_w, s_h;
    int s_off_x, s_off_y;
    float gain, slope, clamp;
    int mode;
};

cudaError_t filtered_lrelu_act_launch(const FilteredLReluActParams& p, bool half, cudaStream_t stream);
