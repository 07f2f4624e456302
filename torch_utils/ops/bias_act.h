// bias_act kernel: bias, activation, gain and clamp, and its first and second derivatives.
//
//   order 0:  out = clamp(act(ref + b) * gain)                      (ref = x, the forward pass)
//   order 1:  out = dy * d/dz [clamp(act(z) * gain)] at z = ref + b
//   order 2:  out = dy * d2/dz2 [clamp(act(z) * gain)] at z = ref + b (the clamp counts as a mask)
//
// With `ref_is_y`, order 1 reads the derivative from the forward output y instead of the input
// (only for linear / relu / lrelu with gain > 0 and alpha >= 0, where the sign of y is the sign of z).

#pragma once

#include <cuda_runtime.h>

#include <cstdint>

// Activation numbers: `cuda_idx` of torch_utils.ops.bias_act.activation_funcs.
enum BiasActKind : int {
    kBiasActLinear = 1, kBiasActRelu = 2, kBiasActLrelu = 3, kBiasActTanh = 4, kBiasActSigmoid = 5,
    kBiasActElu = 6, kBiasActSelu = 7, kBiasActSoftplus = 8, kBiasActSwish = 9,
};

struct BiasActParams {
    const void* ref;    // [numel] x (order 0, 1, 2) or y (order 1 with ref_is_y); dense, any layout
    const void* b;      // [channels] bias, same dtype, or nullptr
    const void* dy;     // [numel] incoming gradient, same layout as ref (orders 1, 2); nullptr for order 0
    void* out;          // [numel] same layout as ref
    int64_t numel;
    int64_t bias_stride;  // memory stride of the bias axis in elements (bias index = (i / stride) % channels)
    int64_t channels;     // size of the bias axis
    int act;            // BiasActKind
    int order;          // 0, 1 or 2
    int ref_is_y;       // order 1 only
    float alpha;        // lrelu slope
    float gain;
    float clamp;        // < 0: no clamping
};

// Launches on `stream`; returns cudaSuccess or the launch error. `half`: tensors are float16, else float32.
cudaError_t bias_act_launch(const BiasActParams& p, bool half, cudaStream_t stream);
