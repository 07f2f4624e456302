// bias_act: one elementwise pass (see bias_act.h for the definition of the three orders).

#include "bias_act.h"
#include "cuda_common.h"

#include <cmath>

namespace {

using namespace ops_cuda;

constexpr float kSeluScale = 1.0507009873554804934f;
constexpr float kSeluAlpha = 1.6732632423543772848f;
constexpr float kSoftplusThreshold = 20.0f;  // torch.nn.functional.softplus default (beta 1)

__device__ __forceinline__ float sigmoid(float z) { return 1.0f / (1.0f + expf(-z)); }

// act(z) for one of the BiasActKind values.
__device__ __forceinline__ float act_value(int act, float z, float alpha) {
    switch (act) {
        case kBiasActRelu: return z > 0.0f ? z : 0.0f;
        case kBiasActLrelu: return z > 0.0f ? z : z * alpha;
        case kBiasActTanh: return tanhf(z);
        case kBiasActSigmoid: return sigmoid(z);
        case kBiasActElu: return z > 0.0f ? z : expm1f(z);
        case kBiasActSelu: return z > 0.0f ? kSeluScale * z : kSeluScale * kSeluAlpha * expm1f(z);
        case kBiasActSoftplus: return z > kSoftplusThreshold ? z : log1pf(expf(z));
        case kBiasActSwish: return z * sigmoid(z);
        default: return z;  // linear
    }
}

// d act / dz. At z == 0 the piecewise functions take the derivative of their negative side, as
// PyTorch's relu / leaky_relu / elu / selu backward passes do.
__device__ __forceinline__ float act_d1(int act, float z, float alpha) {
    switch (act) {
        case kBiasActRelu: return z > 0.0f ? 1.0f : 0.0f;
        case kBiasActLrelu: return z > 0.0f ? 1.0f : alpha;
        case kBiasActTanh: { float t = tanhf(z); return 1.0f - t * t; }
        case kBiasActSigmoid: { float s = sigmoid(z); return s * (1.0f - s); }
        case kBiasActElu: return z > 0.0f ? 1.0f : expf(z);
        case kBiasActSelu: return z > 0.0f ? kSeluScale : kSeluScale * kSeluAlpha * expf(z);
        case kBiasActSoftplus: return z > kSoftplusThreshold ? 1.0f : sigmoid(z);
        case kBiasActSwish: { float s = sigmoid(z); return s * (1.0f + z * (1.0f - s)); }
        default: return 1.0f;  // linear
    }
}

// d2 act / dz2 (zero for the piecewise linear activations).
__device__ __forceinline__ float act_d2(int act, float z, float alpha) {
    switch (act) {
        case kBiasActTanh: { float t = tanhf(z); return -2.0f * t * (1.0f - t * t); }
        case kBiasActSigmoid: { float s = sigmoid(z); return s * (1.0f - s) * (1.0f - 2.0f * s); }
        case kBiasActElu: return z > 0.0f ? 0.0f : expf(z);
        case kBiasActSelu: return z > 0.0f ? 0.0f : kSeluScale * kSeluAlpha * expf(z);
        case kBiasActSoftplus: { if (z > kSoftplusThreshold) return 0.0f; float s = sigmoid(z); return s * (1.0f - s); }
        case kBiasActSwish: { float s = sigmoid(z); return s * (1.0f - s) * (2.0f + z * (1.0f - 2.0f * s)); }
        default: return 0.0f;  // linear, relu, lrelu
    }
}

// I: index type, uint32_t when numel < 2^31 (64-bit division costs tens of instructions per element).
template <typename T, typename I>
__global__ void __launch_bounds__(256) bias_act_kernel(BiasActParams p) {
    const T* ref = static_cast<const T*>(p.ref);
    const T* b = static_cast<const T*>(p.b);
    const T* dy = static_cast<const T*>(p.dy);
    T* out = static_cast<T*>(p.out);
    const I numel = static_cast<I>(p.numel);
    const I bias_stride = static_cast<I>(p.bias_stride), channels = static_cast<I>(p.channels);
    const I step = static_cast<I>(gridDim.x) * blockDim.x;
    for (I i = static_cast<I>(blockIdx.x) * blockDim.x + threadIdx.x; i < numel; i += step) {
        float r = load(ref[i]);
        float res;
        if (p.order == 1 && p.ref_is_y) {
            // r is the output y: its sign is the sign of z, |y| == clamp means clamped.
            float d = (p.act == kBiasActLinear || r > 0.0f) ? 1.0f : (p.act == kBiasActLrelu ? p.alpha : 0.0f);
            bool pass = p.clamp < 0.0f || fabsf(r) < p.clamp;
            res = pass ? load(dy[i]) * d * p.gain : 0.0f;
        } else {
            float z = r;
            if (b != nullptr) z += load(b[(i / bias_stride) % channels]);
            float s = act_value(p.act, z, p.alpha) * p.gain;
            if (p.order == 0) {
                if (p.clamp >= 0.0f) s = s > p.clamp ? p.clamp : (s < -p.clamp ? -p.clamp : s);  // NaN stays NaN
                res = s;
            } else {
                // torch.clamp passes the gradient where -clamp <= s <= clamp.
                bool pass = p.clamp < 0.0f || fabsf(s) <= p.clamp;
                float d = p.order == 1 ? act_d1(p.act, z, p.alpha) : act_d2(p.act, z, p.alpha);
                res = pass ? load(dy[i]) * d * p.gain : 0.0f;
            }
        }
        out[i] = store<T>(res);
    }
}

} // namespace

cudaError_t bias_act_launch(const BiasActParams& p, bool half, cudaStream_t stream) {
    if (p.numel <= 0) return cudaSuccess;
    if (p.ref == nullptr || p.out == nullptr || p.order < 0 || p.order > 2 || (p.order > 0 && p.dy == nullptr) ||
        (p.b != nullptr && (p.channels < 1 || p.bias_stride < 1)))
        return cudaErrorInvalidValue;
    const int threads = 256;
    dim3 grid(grid_for(p.numel, threads)), block(threads);
    BiasActParams q = p;
    void* args[] = {&q};
    const bool small = p.numel < (int64_t(1) << 31);  // then i + step < 2^32: no overflow in 32 bits
    cudaError_t err;
    if (half) err = small ? cudaLaunchKernel(bias_act_kernel<c10::Half, uint32_t>, grid, block, args, 0, stream)
                          : cudaLaunchKernel(bias_act_kernel<c10::Half, int64_t>, grid, block, args, 0, stream);
    else err = small ? cudaLaunchKernel(bias_act_kernel<float, uint32_t>, grid, block, args, 0, stream)
                     : cudaLaunchKernel(bias_act_kernel<float, int64_t>, grid, block, args, 0, stream);
    return err != cudaSuccess ? err : cudaGetLastError();
}
