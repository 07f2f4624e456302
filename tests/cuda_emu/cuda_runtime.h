// Test-only stand-in for the CUDA runtime: compiles the kernels of torch_utils/ops for the host and
// runs their launches on the CPU, so that machines without a GPU check the kernels' indexing,
// bounds and results against the reference ops (tests/test_ops_cuda.py).
//
// A launch runs its blocks one after another. The threads of a block are cooperative fibers
// (ucontext) that run one at a time until their next __syncthreads(), which makes a barrier a
// round over all threads; `__shared__` variables become function statics, shared by the fibers.
// Every other block runs its threads in reverse order, so a missing barrier (a thread reading what
// another writes in the same round) shows up as a wrong result. Threads of a block that reach
// different numbers of barriers abort the launch with cudaErrorLaunchFailure. A kernel that met no
// barrier on its first launch runs its later launches without fibers (thread after thread).
//
// Only what the kernels use is provided: no dynamic shared memory, atomics, warp functions or streams.

#pragma once

#include <ucontext.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstdio>
#include <functional>
#include <map>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __shared__ static
#define __launch_bounds__(...)

struct dim3 {
    unsigned int x, y, z;
    constexpr dim3(unsigned int x_ = 1, unsigned int y_ = 1, unsigned int z_ = 1) : x(x_), y(y_), z(z_) {}
};
struct uint3 {
    unsigned int x, y, z;
};

struct CUstream_st;
typedef CUstream_st* cudaStream_t;

enum cudaError_t {
    cudaSuccess = 0,
    cudaErrorInvalidValue = 1,
    cudaErrorLaunchFailure = 719,
    cudaErrorNotSupported = 801,
};

inline const char* cudaGetErrorString(cudaError_t err) {
    switch (err) {
        case cudaSuccess: return "no error";
        case cudaErrorInvalidValue: return "invalid argument";
        case cudaErrorLaunchFailure: return "unspecified launch failure (emulation: barrier mismatch)";
        case cudaErrorNotSupported: return "operation not supported";
    }
    return "unknown error";
}

inline cudaError_t cudaGetLastError() { return cudaSuccess; }

namespace cuda_emu {

inline uint3 thread_idx{0, 0, 0};
inline uint3 block_idx{0, 0, 0};
inline dim3 block_dim;
inline dim3 grid_dim;

struct Fiber {
    ucontext_t ctx;
    std::vector<char> stack;
    uint3 tid;
    bool done;
};

inline ucontext_t scheduler_ctx;
inline std::vector<Fiber>* fibers = nullptr;
inline int current = -1;
inline const std::function<void()>* body = nullptr;
inline bool barrier_seen = false;
inline std::vector<Fiber> fiber_pool;               // reused by every launch
inline std::map<const void*, bool> uses_barriers;   // per kernel, learned on its first launch

inline void fiber_entry() {
    (*body)();
    (*fibers)[current].done = true;
    // Returning resumes uc_link, the scheduler.
}

// Yield to the scheduler until every thread of the block has arrived.
inline void syncthreads() {
    if (current < 0) {  // outside a fiber: a kernel that skipped barriers on its first launch
        std::fprintf(stderr, "cuda_emu: __syncthreads() in a launch run without fibers\n");
        std::abort();
    }
    barrier_seen = true;
    swapcontext(&(*fibers)[current].ctx, &scheduler_ctx);
}

// Run all threads of the current block; false if they disagree on the number of barriers.
inline bool run_block(std::vector<Fiber>& pool, unsigned long long threads, const std::function<void()>& fn,
                      bool reverse) {
    fibers = &pool;
    body = &fn;
    const int n = static_cast<int>(threads);
    for (int i = 0; i < n; i++) {
        Fiber& f = pool[i];
        getcontext(&f.ctx);
        f.ctx.uc_stack.ss_sp = f.stack.data();
        f.ctx.uc_stack.ss_size = f.stack.size();
        f.ctx.uc_link = &scheduler_ctx;
        f.done = false;
        makecontext(&f.ctx, fiber_entry, 0);
    }
    std::vector<Fiber>& fs = pool;
    bool ok = true;
    for (;;) {
        for (int k = 0; k < n; k++) {
            const int i = reverse ? n - 1 - k : k;
            if (fs[i].done) continue;
            current = i;
            thread_idx = fs[i].tid;
            swapcontext(&scheduler_ctx, &fs[i].ctx);
        }
        int finished = 0;
        for (int i = 0; i < n; i++) finished += fs[i].done ? 1 : 0;
        if (finished == n) break;
        if (finished != 0) {  // some threads exited while others wait at a barrier
            ok = false;
            break;
        }
    }
    current = -1;
    fibers = nullptr;
    body = nullptr;
    return ok;
}

template <typename... A, std::size_t... I>
std::tuple<std::decay_t<A>...> unpack(void** args, std::index_sequence<I...>) {
    return std::tuple<std::decay_t<A>...>(*static_cast<std::decay_t<A>*>(args[I])...);
}

} // namespace cuda_emu

#define threadIdx (cuda_emu::thread_idx)
#define blockIdx (cuda_emu::block_idx)
#define blockDim (cuda_emu::block_dim)
#define gridDim (cuda_emu::grid_dim)

inline void __syncthreads() { cuda_emu::syncthreads(); }

template <typename... A>
cudaError_t cudaLaunchKernel(void (*kernel)(A...), dim3 grid, dim3 block, void** args, std::size_t shared_mem,
                             cudaStream_t stream) {
    (void)stream;
    const unsigned long long threads = 1ull * block.x * block.y * block.z;
    if (shared_mem != 0 || threads == 0 || threads > 1024 || grid.x == 0 || grid.y == 0 || grid.z == 0)
        return cudaErrorInvalidValue;
    auto values = cuda_emu::unpack<A...>(args, std::index_sequence_for<A...>{});
    const std::function<void()> fn = [&]() { std::apply(kernel, values); };
    cuda_emu::block_dim = block;
    cuda_emu::grid_dim = grid;
    std::vector<uint3> tids;
    for (unsigned int z = 0; z < block.z; z++)
        for (unsigned int y = 0; y < block.y; y++)
            for (unsigned int x = 0; x < block.x; x++) tids.push_back(uint3{x, y, z});
    const void* key = reinterpret_cast<const void*>(kernel);
    auto known = cuda_emu::uses_barriers.find(key);
    const bool direct = known != cuda_emu::uses_barriers.end() && !known->second;
    std::vector<cuda_emu::Fiber>& fs = cuda_emu::fiber_pool;
    if (!direct) {
        if (fs.size() < threads) fs.resize(threads);
        for (auto& f : fs)
            if (f.stack.empty()) f.stack.resize(64 * 1024);
    }
    cuda_emu::barrier_seen = false;
    unsigned long long b = 0;
    for (unsigned int z = 0; z < grid.z; z++)
        for (unsigned int y = 0; y < grid.y; y++)
            for (unsigned int x = 0; x < grid.x; x++, b++) {
                cuda_emu::block_idx = uint3{x, y, z};
                if (direct) {  // no barriers: the threads can simply run one after another
                    for (const uint3& t : tids) {
                        cuda_emu::thread_idx = t;
                        fn();
                    }
                    continue;
                }
                for (unsigned long long k = 0; k < threads; k++) fs[k].tid = tids[k];
                if (!cuda_emu::run_block(fs, threads, fn, (b & 1) != 0)) return cudaErrorLaunchFailure;
            }
    if (!direct) cuda_emu::uses_barriers[key] = cuda_emu::barrier_seen;
    return cudaSuccess;
}
