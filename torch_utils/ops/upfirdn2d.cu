// upfirdn2d: one thread per output sample, reading only the input samples that meet non-zero
// taps (the polyphase component of the filter for its phase). The common StyleGAN2 cases (4x4
// filters, up or down by 2) are compiled with constant sizes so the tap loops unroll.

#include "upfirdn2d.h"
#include "cuda_common.h"

namespace {

using namespace ops_cuda;

// UP_X ... FH: compile-time values, or 0 to read them from the parameters. I: index type of the
// output loop, uint32_t when there are fewer than 2^31 outputs (64-bit division is slow on GPUs).
template <typename TIn, typename TOut, typename I, int UP_X, int UP_Y, int DOWN_X, int DOWN_Y, int FW, int FH>
__global__ void __launch_bounds__(256) upfirdn2d_kernel(UpFirDn2dParams p) {
    const TIn* __restrict__ x = static_cast<const TIn*>(p.x);
    TOut* __restrict__ y = static_cast<TOut*>(p.y);
    const float* __restrict__ f = p.f;
    const int up_x = UP_X > 0 ? UP_X : p.up_x, up_y = UP_Y > 0 ? UP_Y : p.up_y;
    const int down_x = DOWN_X > 0 ? DOWN_X : p.down_x, down_y = DOWN_Y > 0 ? DOWN_Y : p.down_y;
    const int fw = FW > 0 ? FW : p.f_w, fh = FH > 0 ? FH : p.f_h;
    // Most taps any output meets along each axis.
    const int nt_x = (FW > 0 && UP_X > 0) ? (FW + UP_X - 1) / UP_X : ceil_div(fw, up_x);
    const int nt_y = (FH > 0 && UP_Y > 0) ? (FH + UP_Y - 1) / UP_Y : ceil_div(fh, up_y);

    const I plane_out = static_cast<I>(p.out_h) * static_cast<I>(p.out_w);
    const int64_t plane_in = int64_t(p.in_h) * p.in_w;
    const I total = static_cast<I>(p.planes) * plane_out;
    const I step = static_cast<I>(gridDim.x) * blockDim.x;
    for (I idx = static_cast<I>(blockIdx.x) * blockDim.x + threadIdx.x; idx < total; idx += step) {
        const I plane = idx / plane_out;
        const int rem = static_cast<int>(idx - plane * plane_out);
        const int oy = rem / p.out_w, ox = rem - oy * p.out_w;
        // Zero-stuffed (unpadded) coordinate of the first tap: input n meets tap a = n * up - k0.
        const int kx = ox * down_x - p.pad_x0, ky = oy * down_y - p.pad_y0;
        const int nx0 = ceil_div(kx, up_x), ny0 = ceil_div(ky, up_y);
        const int ax0 = nx0 * up_x - kx, ay0 = ny0 * up_y - ky;  // in [0, up)
        const TIn* xp = x + int64_t(plane) * plane_in;
        float acc = 0.0f;
#pragma unroll
        for (int sy = 0; sy < nt_y; sy++) {
            const int ay = ay0 + sy * up_y;
            const int ny = ny0 + sy;
            if (ay >= fh) break;
            if (ny < 0 || ny >= p.in_h) continue;
            const float* frow = f + (p.flip ? ay : fh - 1 - ay) * fw;
            const TIn* xrow = xp + int64_t(ny) * p.in_w;
#pragma unroll
            for (int sx = 0; sx < nt_x; sx++) {
                const int ax = ax0 + sx * up_x;
                const int nx = nx0 + sx;
                if (ax >= fw) break;
                if (nx < 0 || nx >= p.in_w) continue;
                acc += load(xrow[nx]) * frow[p.flip ? ax : fw - 1 - ax];
            }
        }
        y[idx] = store<TOut>(acc * p.gain);
    }
}

template <typename TIn, typename TOut, int UP_X, int UP_Y, int DOWN_X, int DOWN_Y, int FW, int FH>
cudaError_t launch(const UpFirDn2dParams& p, cudaStream_t stream) {
    const int threads = 256;
    const int64_t total = p.planes * p.out_h * int64_t(p.out_w);
    dim3 grid(grid_for(total, threads)), block(threads);
    UpFirDn2dParams q = p;
    void* args[] = {&q};
    if (total < (int64_t(1) << 31))  // then idx + step < 2^32: no overflow in 32 bits
        return cudaLaunchKernel(upfirdn2d_kernel<TIn, TOut, uint32_t, UP_X, UP_Y, DOWN_X, DOWN_Y, FW, FH>, grid,
                                block, args, 0, stream);
    return cudaLaunchKernel(upfirdn2d_kernel<TIn, TOut, int64_t, UP_X, UP_Y, DOWN_X, DOWN_Y, FW, FH>, grid, block,
                            args, 0, stream);
}

template <typename TIn, typename TOut>
cudaError_t dispatch(const UpFirDn2dParams& p, cudaStream_t stream) {
    const bool square4 = p.f_w == 4 && p.f_h == 4;
    if (square4 && p.up_x == 1 && p.up_y == 1 && p.down_x == 1 && p.down_y == 1)
        return launch<TIn, TOut, 1, 1, 1, 1, 4, 4>(p, stream);
    if (square4 && p.up_x == 2 && p.up_y == 2 && p.down_x == 1 && p.down_y == 1)
        return launch<TIn, TOut, 2, 2, 1, 1, 4, 4>(p, stream);
    if (square4 && p.up_x == 1 && p.up_y == 1 && p.down_x == 2 && p.down_y == 2)
        return launch<TIn, TOut, 1, 1, 2, 2, 4, 4>(p, stream);
    return launch<TIn, TOut, 0, 0, 0, 0, 0, 0>(p, stream);
}

} // namespace

cudaError_t upfirdn2d_launch(const UpFirDn2dParams& p, int x_type, int y_type, cudaStream_t stream) {
    if (p.planes <= 0 || p.out_w <= 0 || p.out_h <= 0) return cudaSuccess;
    if (p.x == nullptr || p.y == nullptr || p.f == nullptr || p.in_w < 1 || p.in_h < 1 || p.up_x < 1 ||
        p.up_y < 1 || p.down_x < 1 || p.down_y < 1 || p.f_w < 1 || p.f_h < 1)
        return cudaErrorInvalidValue;
    cudaError_t err;
    if (x_type == 0 && y_type == 0) err = dispatch<float, float>(p, stream);
    else if (x_type == 1 && y_type == 1) err = dispatch<c10::Half, c10::Half>(p, stream);
    else if (x_type == 1 && y_type == 0) err = launch<c10::Half, float, 0, 0, 0, 0, 0, 0>(p, stream);
    else if (x_type == 0 && y_type == 1) err = launch<float, c10::Half, 0, 0, 0, 0, 0, 0>(p, stream);
    else return cudaErrorInvalidValue;
    return err != cudaSuccess ? err : cudaGetLastError();
}
