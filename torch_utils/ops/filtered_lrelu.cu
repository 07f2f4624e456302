// filtered_lrelu: the fused kernel (one pass through shared memory) for the configurations that
// StyleGAN3 uses, and the activation step of the generic path. Definitions in filtered_lrelu.h.
//
// Fused kernel, one block per (plane, output tile of TOX x TOY samples):
//   1. load the input samples the tile needs (plus bias; zero outside the image)       -> buffer I
//   2. separable up filter: filter the rows at the intermediate rate                   -> buffer H
//   3. filter the columns (or the 2-D up filter from I), activation, codes             -> buffer M
//   4. separable down filter: rows at the output rate                                  -> buffer G
//      then columns to the output (or the 2-D down filter straight from M)
// Buffers are reused once dead: I and M share one array, H and G the other (with a 2-D up
// filter, I lives in the second array, since M is computed from it directly).
//
// Shared-memory banks: the loops that walk down columns (step 3) give consecutive threads
// consecutive rows, and the rows of I, H and M have odd strides, so a warp touches 32 different
// banks. M keeps each row split by column phase (column j at (j % DOWN) * QW + j / DOWN), so the
// decimating reads of step 4 (every DOWN-th column) are unit-stride across a warp too.
//
// Codes: each block writes the codes of the intermediate rows and columns it owns, a partition of
// the grid into tile-sized stripes, so no two blocks write the same byte.

#include "filtered_lrelu.h"
#include "cuda_common.h"

namespace {

using namespace ops_cuda;

constexpr int kThreads = 256;
constexpr int kMaxStaticSmem = 48 * 1024;

// Leaky ReLU, gain and clamp of one intermediate sample (modes 0 and 1): the value and its code.
__device__ __forceinline__ float activate(float t, float gain, float slope, float clamp, unsigned int& code) {
    float v = (t > 0.0f ? t : t * slope) * gain;
    code = t > 0.0f ? 0u : 1u;
    if (clamp >= 0.0f && fabsf(v) > clamp) {
        v = v > 0.0f ? clamp : -clamp;
        code |= 2u;
    }
    return v;
}

// Derivative factor stored by a code (mode 2); positions outside the code grid give zero.
__device__ __forceinline__ float code_factor(const uint8_t* __restrict__ plane_codes, int s_w, int s_h, int row_bytes,
                                             int sy, int sx, float gain, float slope) {
    if (sy < 0 || sy >= s_h || sx < 0 || sx >= s_w) return 0.0f;
    unsigned int code = (plane_codes[int64_t(sy) * row_bytes + (sx >> 2)] >> ((sx & 3) * 2)) & 3u;
    return (code & 2u) ? 0.0f : ((code & 1u) ? gain * slope : gain);
}

template <int UP, int DOWN, int FU, int FD, bool FU2D, bool FD2D, int TOX, int TOY>
struct FusedShape {
    static constexpr int MSX = (TOX - 1) * DOWN + FD;       // intermediate samples of a tile
    static constexpr int MSY = (TOY - 1) * DOWN + FD;
    static constexpr int ISX = (MSX + FU - 1 + UP - 1) / UP;  // input samples of a tile
    static constexpr int ISY = (MSY + FU - 1 + UP - 1) / UP;
    static constexpr int NTU = (FU + UP - 1) / UP;            // up-filter taps per intermediate sample
    static constexpr int IS = ISX | 1;                        // odd row strides (see the top)
    static constexpr int HS = MSX | 1;
    static constexpr int QW = (MSX + DOWN - 1) / DOWN;        // columns of one phase of an M row
    static constexpr int MS = (DOWN * QW) | 1;
    static constexpr int IN = ISY * IS, MID = MSY * MS, H = ISY * HS, G = MSY * TOX;
    static constexpr int A = FU2D ? MID : cmax(IN, MID);
    static constexpr int B = cmax(FU2D ? IN : H, FD2D ? 1 : G);
    static constexpr int FU_N = FU2D ? FU * FU : FU;
    static constexpr int FD_N = FD2D ? FD * FD : FD;
    static constexpr int SMEM = (A + B + FU_N + FD_N) * 4;
    static_assert((TOX * DOWN) % 4 == 0, "tile stripes must start at whole code bytes");
    static_assert(SMEM <= kMaxStaticSmem, "tile too large for static shared memory");

    // Multiply-adds of one tile: the cost model that picks the tile size.
    static constexpr int64_t tile_cost() {
        return int64_t(FU2D ? 0 : H * NTU) + int64_t(MID) * (FU2D ? NTU * NTU : NTU) +
               (FD2D ? int64_t(TOX) * TOY * FD * FD : int64_t(G) * FD + int64_t(TOX) * TOY * FD) + 4096;
    }
};

template <typename T, int UP, int DOWN, int FU, int FD, bool FU2D, bool FD2D, int TOX, int TOY>
__global__ void __launch_bounds__(kThreads) filtered_lrelu_fused_kernel(FilteredLReluParams p) {
    using S = FusedShape<UP, DOWN, FU, FD, FU2D, FD2D, TOX, TOY>;
    constexpr int MSX = S::MSX, MSY = S::MSY, ISX = S::ISX, NTU = S::NTU;
    constexpr int IS = S::IS, HS = S::HS, QW = S::QW, MS = S::MS;
    __shared__ float s_fu[S::FU_N];
    __shared__ float s_fd[S::FD_N];
    __shared__ float s_a[S::A];
    __shared__ float s_b[S::B];

    const T* __restrict__ x = static_cast<const T*>(p.x);
    T* __restrict__ y = static_cast<T*>(p.y);
    const T* __restrict__ bias = static_cast<const T*>(p.b);
    const int tid = threadIdx.x;

    // Filters in convolution order (reversing the flattened array flips both axes of a 2-D filter).
    for (int i = tid; i < S::FU_N; i += kThreads) s_fu[i] = p.fu[p.flip ? i : S::FU_N - 1 - i];
    for (int i = tid; i < S::FD_N; i += kThreads) s_fd[i] = p.fd[p.flip ? i : S::FD_N - 1 - i];
    __syncthreads();

    float* s_in = FU2D ? s_b : s_a;
    float* s_h = s_b;   // separable up filter only
    float* s_mid = s_a;
    float* s_g = s_b;   // separable down filter only

    const int tiles_x = ceil_div(p.out_w, TOX), tiles_y = ceil_div(p.out_h, TOY);
    const int64_t tiles = int64_t(tiles_x) * tiles_y;
    const int64_t total = p.planes * tiles;
    const int64_t in_plane = int64_t(p.in_h) * p.in_w;
    const int64_t out_plane = int64_t(p.out_h) * p.out_w;
    const int so_row = (p.t_w + 3) >> 2;
    const int si_row = (p.s_w + 3) >> 2;

    for (int64_t blk = blockIdx.x; blk < total; blk += gridDim.x) {
        const int64_t plane = blk / tiles;
        const int tile = static_cast<int>(blk - plane * tiles);
        const int ty = tile / tiles_x, tx = tile - ty * tiles_x;
        const int ox0 = tx * TOX, oy0 = ty * TOY;
        const int m0x = ox0 * DOWN, m0y = oy0 * DOWN;  // first intermediate sample of the tile
        // First input sample at or after the tile's first padded position, and its offset there.
        const int i0x = ceil_div(m0x - p.pad_x0, UP), i0y = ceil_div(m0y - p.pad_y0, UP);
        const int offx = i0x * UP - (m0x - p.pad_x0), offy = i0y * UP - (m0y - p.pad_y0);  // in [0, UP)

        // 1. Input tile (+ bias), zero outside the image.
        {
            const float bv = (bias != nullptr && p.mode != 2) ? load(bias[plane % p.channels]) : 0.0f;
            const T* xp = x + plane * in_plane;
            for (int i = tid; i < S::ISY * ISX; i += kThreads) {
                const int r = i / ISX, c = i - r * ISX;
                const int gy = i0y + r, gx = i0x + c;
                float v = 0.0f;
                if (gy >= 0 && gy < p.in_h && gx >= 0 && gx < p.in_w) v = load(xp[int64_t(gy) * p.in_w + gx]) + bv;
                s_in[r * IS + c] = v;
            }
        }
        __syncthreads();

        // 2. Separable up filter along x: H[r][jx] = sum_s I[r][c0 + s] * gu[a0 + s * UP].
        if (!FU2D) {
            for (int i = tid; i < S::ISY * MSX; i += kThreads) {
                const int r = i / MSX, jx = i - r * MSX;
                const int a0 = pos_mod(offx - jx, UP);
                const int c0 = (jx + a0 - offx) / UP;
                const float* row = s_in + r * IS + c0;
                float acc = 0.0f;
#pragma unroll
                for (int s = 0; s < NTU; s++) {
                    const int a = a0 + s * UP;
                    if (FU % UP != 0 && a >= FU) break;
                    acc += row[s] * s_fu[a];
                }
                s_h[r * HS + jx] = acc;
            }
            __syncthreads();
        }

        // 3. Up filter along y (or 2-D), activation and codes, four samples of a row at a time.
        {
            constexpr int GX = (MSX + 3) / 4;
            const bool last_tx = tx == tiles_x - 1, last_ty = ty == tiles_y - 1;
            const uint8_t* si_plane = p.mode == 2 ? p.signs_in + plane * int64_t(p.s_h) * si_row : nullptr;
            for (int i = tid; i < MSY * GX; i += kThreads) {
                const int g = i / MSY, jy = i - g * MSY;  // consecutive threads: consecutive rows
                const int ay0 = pos_mod(offy - jy, UP);
                const int r0 = (jy + ay0 - offy) / UP;
                unsigned int byte = 0;
#pragma unroll
                for (int k = 0; k < 4; k++) {
                    const int jx = g * 4 + k;
                    if (jx >= MSX) break;
                    float t = 0.0f;
                    if (!FU2D) {
#pragma unroll
                        for (int s = 0; s < NTU; s++) {
                            const int a = ay0 + s * UP;
                            if (FU % UP != 0 && a >= FU) break;
                            t += s_h[(r0 + s) * HS + jx] * s_fu[a];
                        }
                    } else {
                        const int ax0 = pos_mod(offx - jx, UP);
                        const int c0 = (jx + ax0 - offx) / UP;
#pragma unroll
                        for (int sy = 0; sy < NTU; sy++) {
                            const int ay = ay0 + sy * UP;
                            if (FU % UP != 0 && ay >= FU) break;
                            const float* row = s_in + (r0 + sy) * IS + c0;
                            const float* frow = s_fu + ay * FU;
#pragma unroll
                            for (int sx = 0; sx < NTU; sx++) {
                                const int ax = ax0 + sx * UP;
                                if (FU % UP != 0 && ax >= FU) break;
                                t += row[sx] * frow[ax];
                            }
                        }
                    }
                    t *= p.up_gain;
                    float v;
                    if (p.mode == 2) {
                        v = t * code_factor(si_plane, p.s_w, p.s_h, si_row, m0y + jy + p.s_off_y,
                                            m0x + jx + p.s_off_x, p.gain, p.slope);
                    } else {
                        unsigned int code;
                        v = activate(t, p.gain, p.slope, p.clamp, code);
                        byte |= code << (2 * k);
                    }
                    s_mid[jy * MS + (jx % DOWN) * QW + jx / DOWN] = v;
                }
                if (p.mode == 1) {
                    const int gy = m0y + jy, gx = m0x + g * 4;
                    const bool owned = (jy < TOY * DOWN || last_ty) && (g * 4 < TOX * DOWN || last_tx);
                    if (owned && gy < p.t_h && gx < p.t_w)
                        p.signs_out[(plane * p.t_h + gy) * so_row + (gx >> 2)] = static_cast<uint8_t>(byte);
                }
            }
        }
        __syncthreads();

        // 4. Down filter and decimation.
        T* yp = y + plane * out_plane;
        if (!FD2D) {
            for (int i = tid; i < S::G; i += kThreads) {
                const int jy = i / TOX, ox = i - jy * TOX;
                const float* row = s_mid + jy * MS + ox;  // column ox * DOWN + a: phase a % DOWN, a / DOWN on
                float acc = 0.0f;
#pragma unroll
                for (int a = 0; a < FD; a++) acc += row[(a % DOWN) * QW + a / DOWN] * s_fd[a];
                s_g[i] = acc;
            }
            __syncthreads();
            for (int i = tid; i < TOX * TOY; i += kThreads) {
                const int oy = i / TOX, ox = i - oy * TOX;
                const int gy = oy0 + oy, gx = ox0 + ox;
                if (gy >= p.out_h || gx >= p.out_w) continue;
                const float* col = s_g + oy * DOWN * TOX + ox;
                float acc = 0.0f;
#pragma unroll
                for (int a = 0; a < FD; a++) acc += col[a * TOX] * s_fd[a];
                yp[int64_t(gy) * p.out_w + gx] = store<T>(acc * p.down_gain);
            }
        } else {
            for (int i = tid; i < TOX * TOY; i += kThreads) {
                const int oy = i / TOX, ox = i - oy * TOX;
                const int gy = oy0 + oy, gx = ox0 + ox;
                if (gy >= p.out_h || gx >= p.out_w) continue;
                float acc = 0.0f;
#pragma unroll 1
                for (int a = 0; a < FD; a++) {  // rolled: unrolling both loops costs ~180 registers
                    const float* row = s_mid + (oy * DOWN + a) * MS + ox;
                    const float* frow = s_fd + a * FD;
#pragma unroll
                    for (int c = 0; c < FD; c++) acc += row[(c % DOWN) * QW + c / DOWN] * frow[c];
                }
                yp[int64_t(gy) * p.out_w + gx] = store<T>(acc * p.down_gain);
            }
        }
        __syncthreads();  // the next tile overwrites the buffers
    }
}

template <typename T, int UP, int DOWN, int FU, int FD, bool FU2D, bool FD2D, int TOX, int TOY>
struct Variant {
    using S = FusedShape<UP, DOWN, FU, FD, FU2D, FD2D, TOX, TOY>;
    static int64_t tiles(const FilteredLReluParams& p) {
        return int64_t(ceil_div(p.out_w, TOX)) * ceil_div(p.out_h, TOY);
    }
    static int64_t cost(const FilteredLReluParams& p) { return tiles(p) * S::tile_cost(); }
    static cudaError_t launch(const FilteredLReluParams& p, cudaStream_t stream) {
        const int64_t total = p.planes * tiles(p);
        dim3 grid(grid_for(total, 1, int64_t(1) << 30)), block(kThreads);
        FilteredLReluParams q = p;
        void* args[] = {&q};
        return cudaLaunchKernel(filtered_lrelu_fused_kernel<T, UP, DOWN, FU, FD, FU2D, FD2D, TOX, TOY>, grid, block,
                                args, 0, stream);
    }
};

// A configuration with a large and a small tile; the cheaper for the output size runs.
template <typename T, int UP, int DOWN, int FU, int FD, bool FU2D, bool FD2D>
cudaError_t launch_config(const FilteredLReluParams& p, cudaStream_t stream) {
    using Small = Variant<T, UP, DOWN, FU, FD, FU2D, FD2D, 16, 16>;
    if constexpr (DOWN >= 4) {  // a 32 x 32 tile would not fit
        return Small::launch(p, stream);
    } else {
        using Big = Variant<T, UP, DOWN, FU, FD, FU2D, FD2D, 32, 32>;
        return Big::cost(p) <= Small::cost(p) ? Big::launch(p, stream) : Small::launch(p, stream);
    }
}

// The configurations of StyleGAN3 layers (filter_size 6): up/down 2/2 and 4/2 with separable up
// filters and separable or radial (2-D) down filters, their backward passes (2/2 and 2/4 with the
// filters swapped), and the 1x1 case of ToRGB.
#define FLRELU_CONFIGS(X)                  \
    X(1, 1, 1, 1, false, false)            \
    X(2, 2, 12, 12, false, false)          \
    X(2, 2, 12, 12, false, true)           \
    X(2, 2, 12, 12, true, false)           \
    X(4, 2, 24, 12, false, false)          \
    X(4, 2, 24, 12, false, true)           \
    X(2, 4, 12, 24, false, false)          \
    X(2, 4, 12, 24, true, false)

template <typename T>
cudaError_t dispatch(const FilteredLReluParams& p, int up, int down, int fu_taps, int fd_taps, bool fu_2d,
                     bool fd_2d, cudaStream_t stream) {
#define FLRELU_CASE(U, D, FUT, FDT, FU2, FD2)                                                              \
    if (up == U && down == D && fu_taps == FUT && fd_taps == FDT && fu_2d == FU2 && fd_2d == FD2)         \
        return launch_config<T, U, D, FUT, FDT, FU2, FD2>(p, stream);
    FLRELU_CONFIGS(FLRELU_CASE)
#undef FLRELU_CASE
    return cudaErrorNotSupported;
}

template <typename T>
__global__ void __launch_bounds__(256) filtered_lrelu_act_kernel(FilteredLReluActParams p) {
    const T* __restrict__ x = static_cast<const T*>(p.x);
    T* __restrict__ y = static_cast<T*>(p.y);
    const int gx_n = (p.w + 3) >> 2;
    const int si_row = (p.s_w + 3) >> 2;
    const int64_t rows = p.planes * p.h;
    const int64_t total = rows * gx_n;
    const int64_t step = int64_t(gridDim.x) * blockDim.x;
    for (int64_t idx = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; idx < total; idx += step) {
        const int64_t row = idx / gx_n;  // plane * h + jy
        const int g = static_cast<int>(idx - row * gx_n);
        const int64_t plane = row / p.h;
        const int jy = static_cast<int>(row - plane * p.h);
        const uint8_t* si_plane = p.mode == 2 ? p.signs_in + plane * int64_t(p.s_h) * si_row : nullptr;
        unsigned int byte = 0;
        for (int k = 0; k < 4; k++) {
            const int jx = g * 4 + k;
            if (jx >= p.w) break;
            const int64_t off = row * p.w + jx;
            const float t = load(x[off]);
            float v;
            if (p.mode == 2) {
                v = t * code_factor(si_plane, p.s_w, p.s_h, si_row, jy + p.s_off_y, jx + p.s_off_x, p.gain, p.slope);
            } else {
                unsigned int code;
                v = activate(t, p.gain, p.slope, p.clamp, code);
                byte |= code << (2 * k);
            }
            y[off] = store<T>(v);
        }
        if (p.mode == 1) p.signs_out[idx] = static_cast<uint8_t>(byte);
    }
}

} // namespace

bool filtered_lrelu_fused_supported(int up, int down, int fu_taps, int fd_taps, bool fu_2d, bool fd_2d) {
#define FLRELU_MATCH(U, D, FUT, FDT, FU2, FD2) \
    if (up == U && down == D && fu_taps == FUT && fd_taps == FDT && fu_2d == FU2 && fd_2d == FD2) return true;
    FLRELU_CONFIGS(FLRELU_MATCH)
#undef FLRELU_MATCH
    return false;
}

cudaError_t filtered_lrelu_fused_launch(const FilteredLReluParams& p, int up, int down, int fu_taps, int fd_taps,
                                        bool fu_2d, bool fd_2d, bool half, cudaStream_t stream) {
    if (!filtered_lrelu_fused_supported(up, down, fu_taps, fd_taps, fu_2d, fd_2d)) return cudaErrorNotSupported;
    if (p.planes <= 0 || p.out_w <= 0 || p.out_h <= 0) return cudaSuccess;
    if (p.x == nullptr || p.y == nullptr || p.fu == nullptr || p.fd == nullptr || p.in_w < 1 || p.in_h < 1 ||
        p.mode < 0 || p.mode > 2 || (p.b != nullptr && p.channels < 1) ||
        (p.mode == 1 && (p.signs_out == nullptr || p.t_w < 1 || p.t_h < 1)) ||
        (p.mode == 2 && (p.signs_in == nullptr || p.s_w < 1 || p.s_h < 1)))
        return cudaErrorInvalidValue;
    cudaError_t err = half ? dispatch<c10::Half>(p, up, down, fu_taps, fd_taps, fu_2d, fd_2d, stream)
                           : dispatch<float>(p, up, down, fu_taps, fd_taps, fu_2d, fd_2d, stream);
    return err != cudaSuccess ? err : cudaGetLastError();
}

cudaError_t filtered_lrelu_act_launch(const FilteredLReluActParams& p, bool half, cudaStream_t stream) {
    const int64_t total = p.planes * p.h * int64_t((p.w + 3) >> 2);
    if (p.planes <= 0 || p.w <= 0 || p.h <= 0) return cudaSuccess;
    if (p.x == nullptr || p.y == nullptr || p.mode < 0 || p.mode > 2 || (p.mode == 1 && p.signs_out == nullptr) ||
        (p.mode == 2 && (p.signs_in == nullptr || p.s_w < 1 || p.s_h < 1)))
        return cudaErrorInvalidValue;
    const int threads = 256;
    dim3 grid(grid_for(total, threads)), block(threads);
    FilteredLReluActParams q = p;
    void* args[] = {&q};
    cudaError_t err = half ? cudaLaunchKernel(filtered_lrelu_act_kernel<c10::Half>, grid, block, args, 0, stream)
                           : cudaLaunchKernel(filtered_lrelu_act_kernel<float>, grid, block, args, 0, stream);
    return err != cudaSuccess ? err : cudaGetLastError();
}
