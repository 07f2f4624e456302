// Small helpers shared by the CUDA kernels of torch_utils/ops.
//
// The .cu files include only the CUDA runtime and c10/util/Half.h (no ATen, no torch), so that
// `nvcc -c` can check them on a machine without a GPU, and so that tests can compile them for the
// host (tests/cuda_emu) and run them on the CPU. Kernels are launched with `cudaLaunchKernel` and
// take one parameter struct by value.

#pragma once

#include <cuda_runtime.h>
#include <c10/util/Half.h>

#include <cstdint>

namespace ops_cuda {

// Element types: float and c10::Half in memory, float in registers.
__device__ __forceinline__ float load(float v) { return v; }
__device__ __forceinline__ float load(c10::Half v) { return static_cast<float>(v); }

template <typename T> __device__ __forceinline__ T store(float v);
template <> __device__ __forceinline__ float store<float>(float v) { return v; }
template <> __device__ __forceinline__ c10::Half store<c10::Half>(float v) { return c10::Half(v); }

// Integer division rounding toward minus / plus infinity, for any sign of `a` and `b` > 0.
__host__ __device__ __forceinline__ int floor_div(int a, int b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }
__host__ __device__ __forceinline__ int ceil_div(int a, int b) { return -floor_div(-a, b); }
__host__ __device__ __forceinline__ int64_t ceil_div64(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Remainder in [0, b) for any sign of `a` and `b` > 0.
__host__ __device__ __forceinline__ int pos_mod(int a, int b) { int r = a % b; return r < 0 ? r + b : r; }

template <typename T> __host__ __device__ constexpr T cmax(T a, T b) { return a > b ? a : b; }
template <typename T> __host__ __device__ constexpr T cmin(T a, T b) { return a < b ? a : b; }

// Grid of a grid-stride loop over `work` items with `threads` per block (at least one block).
inline unsigned int grid_for(int64_t work, int threads, int64_t max_blocks = int64_t(1) << 20) {
    int64_t blocks = ceil_div64(work, threads);
    if (blocks < 1) blocks = 1;
    if (blocks > max_blocks) blocks = max_blocks;
    return static_cast<unsigned int>(blocks);
}

} // namespace ops_cuda
