// Shared helpers of the torch bindings (*_cuda.cpp) of the CUDA kernels.
//
// OPS_HOST_EMULATION is defined only by the tests (tests/cuda_emu): they compile the kernels for
// the host against a stand-in CUDA runtime and call them through these same bindings on CPU
// tensors. Normal builds use the CUDA device, its current stream and a device guard.

#pragma once

#include <torch/extension.h>

#include <cuda_runtime.h>

#include <optional>

#ifdef OPS_HOST_EMULATION
#define OPS_CHECK_DEVICE(t) TORCH_CHECK((t).device().is_cpu(), #t " must be a CPU tensor (host emulation build)")
#define OPS_DEVICE_GUARD(t) ((void)0)
#define OPS_STREAM() (static_cast<cudaStream_t>(nullptr))
#else
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#define OPS_CHECK_DEVICE(t) TORCH_CHECK((t).is_cuda(), #t " must be a CUDA tensor")
#define OPS_DEVICE_GUARD(t) const c10::cuda::OptionalCUDAGuard ops_device_guard_((t).device())
#define OPS_STREAM() (c10::cuda::getCurrentCUDAStream().stream())
#endif

#define OPS_CHECK_LAUNCH(err, what) \
    TORCH_CHECK((err) == cudaSuccess, what ": kernel launch failed: ", cudaGetErrorString(err))

namespace ops_binding {

// float32 or float16 (the kernels' element types); returns true for float16.
inline bool is_half(const torch::Tensor& t, const char* what) {
    TORCH_CHECK(t.scalar_type() == torch::kFloat || t.scalar_type() == torch::kHalf, what,
                ": the CUDA kernel takes float32 or float16 tensors, got ", t.scalar_type());
    return t.scalar_type() == torch::kHalf;
}

// A float32 filter on the device of `x`: 1-D (separable) or 2-D, contiguous.
inline torch::Tensor filter_arg(const torch::Tensor& f, const torch::Tensor& x, const char* what) {
    TORCH_CHECK(f.device() == x.device(), what, " must be on the device of x");
    TORCH_CHECK(f.dim() == 1 || f.dim() == 2, what, " must be 1-D or 2-D");
    TORCH_CHECK(f.numel() > 0, what, " must not be empty");
    return f.to(torch::kFloat).contiguous();
}

inline int64_t floor_div(int64_t a, int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }

inline int checked_int(int64_t v, const char* what) {
    TORCH_CHECK(v >= INT32_MIN / 2 && v <= INT32_MAX / 2, what, " is out of range: ", v);
    return static_cast<int>(v);
}

} // namespace ops_binding
