// filtered_lrelu on the CPU, forward only (inference). Per channel plane, in one pass through the cache:
//
//     t = upfirdn2d(x * in_scale + b, fu, up, pad)            (zero-stuffed upsampling, padding, FIR)
//     v = clamp(lrelu(t, slope) * gain, -clamp, clamp)
//     y = upfirdn2d(v, fd, down) * out_scale                 (FIR, keep every down-th sample)
//
// Filters arrive in correlation orientation (the Python side flips the true-convolution taps and folds
// the gains in), separable (one taps vector per axis) or 2-D. Per axis, with U = up, D = down, p0 = the
// padding before and K taps: intermediate sample t reads input sample (t + k - p0) / U with tap k when
// t + k - p0 is a multiple of U, so it only touches taps k0 + U*j with k0 = (p0 - t) mod U (polyphase:
// no zero of the stuffed input is ever multiplied).
//
// Work per plane, all in per-thread scratch that stays in L1/L2:
//   1. A[p][h][q]  every input row upsampled along x, stored by column phase p = t mod D (t = D*q + p),
//                  so that the down filter reads unit-stride vectors: intermediate column D*c + k is
//                  plane k mod D, column c + k / D. When D divides U each up-phase is a unit-stride
//                  correlation of the row (phases interleaved with vector shuffles); otherwise scalar.
//   2. Z rows      A combined along y and activated, produced a few rows at a time into a ring buffer.
//   3. output      the down filter over the ring: 2-D directly, separable as an x pass into a second ring
//                  followed by a y pass.
// Row combinations (steps 2 and 3) are register-blocked: a block of output rows is accumulated in
// registers while each input row is loaded once and applied to every output row of the block that reads
// it (a banded matrix of row weights).
//
// Vectors are GCC vector extensions of 16 floats, which the compiler lowers to the widest SIMD of the
// build machine (AVX-512, AVX2, NEON...): the same source is correct wherever it compiles, and the build
// (lazy, on the user's machine, with -march=native) targets that machine only. Channel planes are spread
// over threads with at::parallel_for; a build without OpenMP (the portable fallback for compilers that
// lack it, such as Apple clang) spreads them over std::threads instead, at::parallel_for being serial there.

#include <torch/extension.h>
#include <ATen/Parallel.h>
#include <c10/util/BFloat16.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <thread>
#include <vector>

#define SSG_INLINE __attribute__((always_inline)) inline

namespace {

//----------------------------------------------------------------------------
// Vectors and small helpers.

constexpr int VL = 16;  // floats per vector
typedef float vec __attribute__((vector_size(VL * sizeof(float))));
typedef float vec_u __attribute__((vector_size(VL * sizeof(float)), aligned(sizeof(float)), may_alias));
typedef int32_t ivec __attribute__((vector_size(VL * sizeof(int32_t))));

// The lanes of e and o interleaved: e0 o0 e1 o1 ... (lo: lanes 0-7 of each; hi: lanes 8-15).
// clang has no __builtin_shuffle (GCC's); __builtin_shufflevector takes the indices as constants.
#ifdef __clang__
SSG_INLINE vec interleave_lo(vec e, vec o) {
    return __builtin_shufflevector(e, o, 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
}
SSG_INLINE vec interleave_hi(vec e, vec o) {
    return __builtin_shufflevector(e, o, 8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
}
#else
const ivec kInterleaveLo = {0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23};
const ivec kInterleaveHi = {8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31};
SSG_INLINE vec interleave_lo(vec e, vec o) { return __builtin_shuffle(e, o, kInterleaveLo); }
SSG_INLINE vec interleave_hi(vec e, vec o) { return __builtin_shuffle(e, o, kInterleaveHi); }
#endif

SSG_INLINE vec vload(const float* p) { return *reinterpret_cast<const vec_u*>(p); }
SSG_INLINE void vstore(float* p, vec v) { *reinterpret_cast<vec_u*>(p) = v; }
SSG_INLINE vec vsplat(float a) { return vec{} + a; }

inline int64_t round_up(int64_t n, int64_t m) { return (n + m - 1) / m * m; }
inline int floor_div(int a, int b) { return (a >= 0) ? a / b : -((-a + b - 1) / b); }
inline int pos_mod(int a, int b) { int r = a % b; return r < 0 ? r + b : r; }

template <typename T> inline float to_float(T v) { return static_cast<float>(v); }
template <typename T> inline T from_float(float v) { return static_cast<T>(v); }

// Store VL floats (only the first n when n < VL) as T: float, or bfloat16 rounded to nearest even.
typedef uint32_t uvec __attribute__((vector_size(VL * sizeof(uint32_t))));
typedef uint16_t hvec __attribute__((vector_size(VL * sizeof(uint16_t))));
typedef uint16_t hvec_u __attribute__((vector_size(VL * sizeof(uint16_t)), aligned(2), may_alias));

SSG_INLINE void store_as(float* dst, vec v, int n) {
    if (n >= VL) {
        vstore(dst, v);
    } else {
        float tmp[VL];
        vstore(tmp, v);
        std::memcpy(dst, tmp, sizeof(float) * n);
    }
}

SSG_INLINE void store_as(c10::BFloat16* dst, vec v, int n) {
    uvec bits;
    std::memcpy(&bits, &v, sizeof(bits));
    const uvec nan = (bits & 0x7fffffffu) > 0x7f800000u;
    bits = (bits + (0x7fffu + ((bits >> 16) & 1u))) >> 16;
    bits = nan ? uvec{} + 0x7fc0u : bits;
    const hvec h = __builtin_convertvector(bits, hvec);
    if (n >= VL) {
        *reinterpret_cast<hvec_u*>(dst) = h;
    } else {
        uint16_t tmp[VL];
        *reinterpret_cast<hvec_u*>(tmp) = h;
        std::memcpy(dst, tmp, sizeof(uint16_t) * n);
    }
}

//----------------------------------------------------------------------------
// What happens to a finished vector: nothing, the activation, or a scale.

struct Identity { SSG_INLINE vec operator()(vec v) const { return v; } };

struct Scale {
    float s;
    SSG_INLINE vec operator()(vec v) const { return v * s; }
};

struct LReLU {
    float gain, neg_gain;
    SSG_INLINE vec operator()(vec z) const { return z > vec{} ? z * gain : z * neg_gain; }
};

struct LReLUClamp {
    float gain, neg_gain, clamp;
    SSG_INLINE vec operator()(vec z) const {
        z = z > vec{} ? z * gain : z * neg_gain;
        const vec hi = vsplat(clamp), lo = vsplat(-clamp);
        z = z > hi ? hi : z;
        return z < lo ? lo : z;
    }
};

//----------------------------------------------------------------------------
// One output row from several input rows: dst[0, n) = post(sum_j w[j] * src[j][0, n)), n a multiple of
// VL. Four independent accumulators at a time, then single vectors.

constexpr int VB = 4 * VL;

template <typename Post>
void combine_rows(float* dst, const float* const* src, const float* w, int count, int n, Post post) {
    int i = 0;
    for (; i + VB <= n; i += VB) {
        vec a0 = vec{}, a1 = vec{}, a2 = vec{}, a3 = vec{};
        for (int j = 0; j < count; j++) {
            const float* s = src[j] + i;
            const float wj = w[j];
            a0 += wj * vload(s);
            a1 += wj * vload(s + VL);
            a2 += wj * vload(s + 2 * VL);
            a3 += wj * vload(s + 3 * VL);
        }
        vstore(dst + i, post(a0));
        vstore(dst + i + VL, post(a1));
        vstore(dst + i + 2 * VL, post(a2));
        vstore(dst + i + 3 * VL, post(a3));
    }
    for (; i < n; i += VL) {
        vec a0 = vec{};
        for (int j = 0; j < count; j++)
            a0 += w[j] * vload(src[j] + i);
        vstore(dst + i, post(a0));
    }
}

//----------------------------------------------------------------------------
// A block of output rows from a band of input rows (register-blocked):
//
//     out[ib][c] = post(sum_{rr, k} w[rr][ib][k] * in[rr][k][c]),   ib < R,
//
// where in[rr][k] are row pointers (K per input row: the column shifts of a 2-D filter, or K = 1) and
// input row rr only feeds output rows lo[rr]..hi[rr]. For each (lo, hi) there is a fully unrolled
// specialisation, so the R x V accumulators stay in registers across the whole band.

// Input k of row rr, or with SYM (taps symmetric in k: w[..][k] == w[..][K-1-k]) the sum of inputs k and
// K-1-k for k < (K+1)/2 (the middle one alone), which halves the multiplications.
template <int V, bool SYM>
SSG_INLINE void band_load(vec (&v)[V], const float* const* in, int K, int k, int c0) {
    const float* p = in[k] + c0;
#pragma GCC unroll 4
    for (int u = 0; u < V; u++)
        v[u] = vload(p + u * VL);
    if (SYM && k != K - 1 - k) {
        const float* q = in[K - 1 - k] + c0;
#pragma GCC unroll 4
        for (int u = 0; u < V; u++)
            v[u] += vload(q + u * VL);
    }
}

template <int R, int V, bool SYM, int LO, int HI>
SSG_INLINE void band_row(vec (&acc)[R][V], const float* const* in, const float* w, int K, int c0) {
    constexpr int NR = HI - LO + 1;
    const int KK = SYM ? (K + 1) / 2 : K;
    if constexpr (NR * V >= 8) {  // enough independent accumulators to hide the FMA latency
        for (int k = 0; k < KK; k++) {
            vec v[V];
            band_load<V, SYM>(v, in, K, k, c0);
#pragma GCC unroll 8
            for (int ib = LO; ib <= HI; ib++) {
                const float g = w[ib * K + k];
#pragma GCC unroll 4
                for (int u = 0; u < V; u++)
                    acc[ib][u] += g * v[u];
            }
        }
    } else {  // few rows: split the taps over two sets of accumulators
        vec t0[NR][V] = {}, t1[NR][V] = {};
        int k = 0;
        for (; k + 1 < KK; k += 2) {
            vec v0[V], v1[V];
            band_load<V, SYM>(v0, in, K, k, c0);
            band_load<V, SYM>(v1, in, K, k + 1, c0);
#pragma GCC unroll 8
            for (int ib = 0; ib < NR; ib++) {
                const float g0 = w[(LO + ib) * K + k], g1 = w[(LO + ib) * K + k + 1];
#pragma GCC unroll 4
                for (int u = 0; u < V; u++) {
                    t0[ib][u] += g0 * v0[u];
                    t1[ib][u] += g1 * v1[u];
                }
            }
        }
        if (k < KK) {
            vec v0[V];
            band_load<V, SYM>(v0, in, K, k, c0);
#pragma GCC unroll 8
            for (int ib = 0; ib < NR; ib++) {
                const float g0 = w[(LO + ib) * K + k];
#pragma GCC unroll 4
                for (int u = 0; u < V; u++)
                    t0[ib][u] += g0 * v0[u];
            }
        }
#pragma GCC unroll 8
        for (int ib = 0; ib < NR; ib++)
#pragma GCC unroll 4
            for (int u = 0; u < V; u++)
                acc[LO + ib][u] += t0[ib][u] + t1[ib][u];
    }
}

template <int R, int V, bool SYM>
SSG_INLINE void band_dispatch(vec (&acc)[R][V], int lo, int hi, const float* const* in, const float* w, int K,
                              int c0) {
    static_assert(R <= 8, "at most 8 rows per block");
#define SSG_C(L, H) \
    case (L) * 8 + (H): if constexpr ((L) <= (H) && (H) < R) band_row<R, V, SYM, L, H>(acc, in, w, K, c0); break;
#define SSG_C8(L) SSG_C(L, 0) SSG_C(L, 1) SSG_C(L, 2) SSG_C(L, 3) SSG_C(L, 4) SSG_C(L, 5) SSG_C(L, 6) SSG_C(L, 7)
    switch (lo * 8 + hi) {
        SSG_C8(0) SSG_C8(1) SSG_C8(2) SSG_C8(3) SSG_C8(4) SSG_C8(5) SSG_C8(6) SSG_C8(7)
        default: break;
    }
#undef SSG_C8
#undef SSG_C
}

// Columns [0, ncols) (a multiple of V*VL) of nout <= R output rows from nin input rows.
// in: [nin][K] row pointers; w: [nin][R][K] weights; lo, hi: [nin]. store(ib, c, v) receives the result
// vector of output row ib at columns [c, c + VL).
template <int R, int V, bool SYM, typename Store>
void band_block(int nout, int nin, const float* const* in, const float* w, const int* lo, const int* hi, int K,
                int ncols, Store store) {
    for (int c0 = 0; c0 < ncols; c0 += V * VL) {
        vec acc[R][V] = {};
        for (int rr = 0; rr < nin; rr++)
            if (lo[rr] <= hi[rr])
                band_dispatch<R, V, SYM>(acc, lo[rr], hi[rr], in + (size_t)rr * K, w + (size_t)rr * R * K, K, c0);
#pragma GCC unroll 8
        for (int ib = 0; ib < R; ib++)
            if (ib < nout) {
#pragma GCC unroll 4
                for (int u = 0; u < V; u++)
                    store(ib, c0 + u * VL, acc[ib][u]);
            }
    }
}

//----------------------------------------------------------------------------
// Polyphase taps of one upsampling axis: output t reads inputs m_first.. with taps k_first, +U, ...

struct UpTap {
    int m_first;  // first input sample read
    int count;    // number of (input, tap) pairs, all inside the input
    int k_first;  // tap of the first pair; later pairs step by U in taps and by 1 in input
};

std::vector<UpTap> up_plan(int out_len, int in_len, int up, int pad0, int taps) {
    std::vector<UpTap> plan(out_len);
    for (int t = 0; t < out_len; t++) {
        const int k0 = pos_mod(pad0 - t, up);
        const int m0 = (t + k0 - pad0) / up;  // exact
        const int j_lo = std::max(0, -m0);
        const int j_hi = std::min(k0 < taps ? (taps - 1 - k0) / up + 1 : 0, in_len - m0);
        UpTap u;
        u.count = std::max(0, j_hi - j_lo);
        u.m_first = m0 + j_lo;
        u.k_first = k0 + up * j_lo;
        plan[t] = u;
    }
    return plan;
}

//----------------------------------------------------------------------------
// Problem description.

struct Params {
    int64_t planes;      // N * C
    int channels;
    int H, W;            // input
    int U, D;
    int px0, py0;
    int zH, zW;          // intermediate (trimmed by the caller to what the down filter reads)
    int oH, oW;          // output
    // Up filter: separable (gux [KUx], guy [KUy]) or 2-D (gu2 [KUy][KUx]).
    const float* gux; const float* guy; const float* gu2; int KUx, KUy;
    // Down filter likewise.
    const float* gdx; const float* gdy; const float* gd2; int KDx, KDy;
    float gain, slope, clamp;  // clamp < 0: none
    const float* bias;         // [C] or null
    const float* in_scale;     // [N*C] or null
    const float* out_scale;    // [N*C] or null
    const float* bias_post;    // [C] or null: added after the up filter, before the activation
    const float* noise;        // [noise_n][zH][noise_stride] or null: added like bias_post (D == 1 only)
    int noise_n, noise_stride;
};

//----------------------------------------------------------------------------
// The kernel for one chunk of planes.

template <typename Tin, typename Tout>
void run_planes(const Params& P, const Tin* x, Tout* y, int64_t plane_begin, int64_t plane_end) {
    const int H = P.H, W = P.W, U = P.U, D = P.D;
    const int zH = P.zH, zW = P.zW, oH = P.oH, oW = P.oW;
    const bool up2d = P.gu2 != nullptr, down2d = P.gd2 != nullptr;
    const int KR = up2d ? P.KUy : 1;                  // filter rows of the x pass (2-D up filter: each row)
    constexpr int R = 8;                              // output rows per block
    constexpr int RZ = 8;                             // intermediate rows produced per step
    constexpr int VZ = 2;                             // vectors per column block of the y pass
    const int Wq = (zW + D - 1) / D;                  // columns of a phase plane
    const int oWv = (int)round_up(oW, 2 * VL);        // output columns computed (whole vector pairs)
    const int ZS = (int)round_up(std::max(Wq, oWv + (P.KDx - 1) / D), VL) + VB;  // phase-plane row stride
    const int RB = D * (R - 1) + P.KDy;               // ring rows: what one output block reads

    // x-upsampling phases (when D divides U): output t = U*k + s, k < n_s, reads input k + c_s + j
    // with taps k0_s + U*j; phase s goes to plane s mod D, interleaved with F = U / D phases.
    const std::vector<UpTap> planx = up_plan(zW, W, U, P.px0, P.KUx);
    const std::vector<UpTap> plany = up_plan(zH, H, U, P.py0, P.KUy);
    const int F = (U % D == 0) ? U / D : 0;
    struct XPhase { int k0, c, taps, n; };
    std::vector<XPhase> xphase(U);
    int mlo = 0, mhi = W, nmax = 0;
    for (int s = 0; s < U; s++) {
        XPhase ph;
        ph.k0 = pos_mod(P.px0 - s, U);
        ph.c = (s + ph.k0 - P.px0) / U;
        ph.taps = ph.k0 < P.KUx ? (P.KUx - 1 - ph.k0) / U + 1 : 0;
        ph.n = (int)round_up(s < zW ? (zW - s + U - 1) / U : 0, VL);
        nmax = std::max(nmax, ph.n);
        mlo = std::min(mlo, ph.c);
        mhi = std::max(mhi, ph.c + ph.n + ph.taps);
        xphase[s] = ph;
    }
    for (const UpTap& u : planx) {
        mlo = std::min(mlo, u.m_first);
        mhi = std::max(mhi, u.m_first + u.count);
    }
    const int TMPS = nmax + VB;
    const int AS = (int)round_up(std::max(ZS, 2 * nmax + VB), VL);  // A row stride
    const int nqv = (int)round_up(Wq, VZ * VL);                       // columns of the y pass

    // Schedule, the same for every plane: output blocks of R rows; before each, the y-pass steps that
    // produce the intermediate rows it reads (RZ at a time), with their band weights.
    struct ZStep { int r0, r1, m0, nin; size_t w; };  // rows [r0, r1) from A rows [m0, m0 + nin)
    struct Block { int i0, nr, r_lo, nin, z_begin, z_end; size_t w; };
    std::vector<ZStep> zsteps;
    std::vector<Block> blocks;
    std::vector<float> zw, dw;   // band weights: y pass [nin][RZ], down pass [nin][R][K]
    std::vector<int> zlh, dlh;   // band (lo, hi) pairs, same offsets / (R * K) or / RZ
    const int KD = down2d ? P.KDx : 1;
    size_t dw_full = SIZE_MAX, dw_last = SIZE_MAX;
    for (int i0 = 0, next = 0; i0 < oH; i0 += R) {
        Block bk;
        bk.i0 = i0;
        bk.nr = std::min(R, oH - i0);
        bk.r_lo = D * i0;
        const int r_hi = std::min(zH, D * (i0 + bk.nr - 1) + P.KDy);
        bk.nin = r_hi - bk.r_lo;
        bk.z_begin = (int)zsteps.size();
        for (; next < r_hi; next = std::min(r_hi, next + RZ)) {
            ZStep st;
            st.r0 = next;
            st.r1 = std::min(r_hi, next + RZ);
            int m0 = H, m1 = 0;
            for (int r = st.r0; r < st.r1; r++)
                if (plany[r].count > 0) {
                    m0 = std::min(m0, plany[r].m_first);
                    m1 = std::max(m1, plany[r].m_first + plany[r].count);
                }
            st.m0 = m0;
            st.nin = std::max(0, m1 - m0);
            st.w = zw.size();
            zw.resize(st.w + (size_t)st.nin * RZ, 0.f);
            zlh.resize((st.w + (size_t)st.nin * RZ) / RZ * 2, 0);
            for (int rr = 0; rr < st.nin; rr++) {
                zlh[(st.w / RZ + rr) * 2] = RZ;
                zlh[(st.w / RZ + rr) * 2 + 1] = -1;
            }
            if (!up2d)
                for (int r = st.r0; r < st.r1; r++) {
                    const UpTap& u = plany[r];
                    for (int j = 0; j < u.count; j++) {
                        const int rr = u.m_first + j - m0, ib = r - st.r0;
                        zw[st.w + (size_t)rr * RZ + ib] = P.guy[u.k_first + U * j];
                        int& lo = zlh[(st.w / RZ + rr) * 2];
                        int& hi = zlh[(st.w / RZ + rr) * 2 + 1];
                        lo = std::min(lo, ib);
                        hi = std::max(hi, ib);
                    }
                }
            zsteps.push_back(st);
        }
        bk.z_end = (int)zsteps.size();
        size_t& cached = (bk.nr == R && bk.nin == RB) ? dw_full : dw_last;
        if (cached == SIZE_MAX || (&cached == &dw_last)) {
            const size_t off = dw.size();
            dw.resize(off + (size_t)bk.nin * R * KD, 0.f);
            dlh.resize((off / ((size_t)R * KD) + bk.nin) * 2, 0);
            for (int rr = 0; rr < bk.nin; rr++) {
                int lo = R, hi = -1;
                for (int ib = 0; ib < bk.nr; ib++) {
                    const int k = rr - D * ib;
                    if (k < 0 || k >= P.KDy)
                        continue;
                    lo = std::min(lo, ib);
                    hi = std::max(hi, ib);
                    for (int kk = 0; kk < KD; kk++)
                        dw[off + ((size_t)rr * R + ib) * KD + kk] = down2d ? P.gd2[(size_t)k * KD + kk] : P.gdy[k];
                }
                dlh[(off / ((size_t)R * KD) + rr) * 2] = lo;
                dlh[(off / ((size_t)R * KD) + rr) * 2 + 1] = hi;
            }
            cached = off;
        }
        bk.w = cached;
        blocks.push_back(bk);
    }
    // (lo, hi) pairs split into the arrays band_block reads.
    auto split_lh = [](const std::vector<int>& lh, std::vector<int>& lo, std::vector<int>& hi) {
        lo.resize(lh.size() / 2);
        hi.resize(lh.size() / 2);
        for (size_t i = 0; i < lo.size(); i++) {
            lo[i] = lh[2 * i];
            hi[i] = lh[2 * i + 1];
        }
    };
    std::vector<int> zlo, zhi, dlo, dhi;
    split_lh(zlh, zlo, zhi);
    split_lh(dlh, dlo, dhi);

    // Down filter symmetric along x (every row of a 2-D filter): add mirrored inputs before multiplying.
    bool sym_x = down2d;
    for (int ky = 0; sym_x && ky < P.KDy; ky++)
        for (int kx = 0; kx < P.KDx; kx++)
            sym_x = sym_x && P.gd2[ky * P.KDx + kx] == P.gd2[ky * P.KDx + P.KDx - 1 - kx];

    // Scratch.
    const int KUmax = std::max({P.KUx, P.KUy, P.KDx, P.KDy}) + 1;
    const int NIN = std::max(RZ + P.KUy + 1, RB);    // input rows of one band
    std::vector<float> xrow((size_t)(mhi - mlo) + VB, 0.f);
    std::vector<float> tmp((size_t)U * TMPS, 0.f);
    std::vector<float> A((size_t)KR * D * H * AS, 0.f);
    std::vector<float> ring((size_t)RB * D * ZS, 0.f);                   // Z rows (2-D) or T rows (separable)
    std::vector<float> zbuf(down2d ? 0 : (size_t)RZ * D * ZS, 0.f);      // Z rows before the x pass
    std::vector<const float*> src((size_t)std::max(KUmax, NIN * KD));
    std::vector<float> wts((size_t)KUmax);
    std::vector<int> koff((size_t)P.KDx);
    for (int kx = 0; kx < P.KDx; kx++)
        koff[kx] = (kx % D) * ZS + kx / D;
    const LReLU act{P.gain, P.gain * P.slope};
    const LReLUClamp act_clamp{P.gain, P.gain * P.slope, P.clamp};

    for (int64_t plane = plane_begin; plane < plane_end; plane++) {
        const int ch = (int)(plane % P.channels);
        const float sc = P.in_scale ? P.in_scale[plane] : 1.f;
        const float b = P.bias ? P.bias[ch] : 0.f;
        const float osc = P.out_scale ? P.out_scale[plane] : 1.f;
        const Tin* xp = x + plane * H * W;
        Tout* yp = y + plane * (int64_t)oH * oW;

        // 1. Upsample every input row along x into the phase planes A[kr][p][h][q].
        for (int h = 0; h < H; h++) {
            float* xr = xrow.data();  // the row, scaled and biased, inside zeros (the padding)
            const Tin* xs = xp + (size_t)h * W;
            for (int w = 0; w < W; w++)
                xr[w - mlo] = to_float(xs[w]) * sc + b;
            for (int kr = 0; kr < KR; kr++) {
                const float* g = up2d ? P.gu2 + (size_t)kr * P.KUx : P.gux;
                float* a = A.data() + (size_t)kr * D * H * AS + (size_t)h * AS;  // plane p at + p * H * AS
                if (F == 1 || F == 2) {
                    for (int s = 0; s < U; s++) {
                        const XPhase& ph = xphase[s];
                        for (int j = 0; j < ph.taps; j++) {
                            src[j] = xr + (ph.c - mlo) + j;
                            wts[j] = g[ph.k0 + U * j];
                        }
                        const int p = s % D;
                        if (F == 1) {
                            combine_rows(a + (size_t)p * H * AS, src.data(), wts.data(), ph.taps, ph.n, Identity());
                            continue;
                        }
                        combine_rows(tmp.data() + (size_t)s * TMPS, src.data(), wts.data(), ph.taps, ph.n, Identity());
                        if (s >= D) {  // plane p: q = 2k from phase p, q = 2k + 1 from phase p + D
                            float* dst = a + (size_t)p * H * AS;
                            const float* te = tmp.data() + (size_t)p * TMPS;
                            const float* to = tmp.data() + (size_t)s * TMPS;
                            const int n = std::max(xphase[p].n, ph.n);
                            for (int k = 0; k < n; k += VL) {
                                const vec e = vload(te + k), o = vload(to + k);
                                vstore(dst + 2 * k, interleave_lo(e, o));
                                vstore(dst + 2 * k + VL, interleave_hi(e, o));
                            }
                        }
                    }
                } else {
                    for (int t = 0; t < zW; t++) {  // other up/down ratios: scalar polyphase
                        const UpTap& u = planx[t];
                        float acc = 0.f;
                        for (int j = 0; j < u.count; j++)
                            acc += g[u.k_first + U * j] * xr[u.m_first + j - mlo];
                        a[(size_t)(t % D) * H * AS + t / D] = acc;
                    }
                }
            }
        }

        // 2. One y-pass step: intermediate rows [r0, r1) into dst(r) (D phase planes of stride ZS), with the
        //    post-filter bias and noise added, activated.
        const float b2 = P.bias_post ? P.bias_post[ch] : 0.f;
        const float* noise = P.noise ? P.noise + (plane / P.channels % P.noise_n) * (size_t)zH * P.noise_stride : nullptr;
        auto finish = [&](vec v, int r, int c) {
            v += b2;
            if (noise)
                v += vload(noise + (size_t)r * P.noise_stride + c);
            return P.clamp >= 0 ? act_clamp(v) : act(v);
        };
        auto run_zstep = [&](const ZStep& st, auto dst) {
            for (int p = 0; p < D; p++) {
                if (up2d) {  // 2-D up filter: each intermediate row on its own
                    const int nq = (int)round_up((zW - p + D - 1) / D, VL);
                    for (int r = st.r0; r < st.r1; r++) {
                        const UpTap& u = plany[r];
                        for (int j = 0; j < u.count; j++) {
                            const int k = u.k_first + U * j;
                            src[j] = A.data() + (((size_t)k * D + p) * H + (u.m_first + j)) * AS;
                            wts[j] = 1.f;
                        }
                        float* out = dst(r) + (size_t)p * ZS;
                        combine_rows(out, src.data(), wts.data(), u.count, nq, Identity());
                        for (int c = 0; c < nq; c += VL)
                            vstore(out + c, finish(vload(out + c), r, c));
                    }
                    continue;
                }
                for (int rr = 0; rr < st.nin; rr++)
                    src[rr] = A.data() + ((size_t)p * H + (st.m0 + rr)) * AS;
                float* rows[RZ];
                for (int r = st.r0; r < st.r1; r++)
                    rows[r - st.r0] = dst(r) + (size_t)p * ZS;
                const int* lo = zlo.data() + st.w / RZ;
                const int* hi = zhi.data() + st.w / RZ;
                band_block<RZ, VZ, false>(st.r1 - st.r0, st.nin, src.data(), zw.data() + st.w, lo, hi, 1, nqv,
                                          [&](int ib, int c, vec v) { vstore(rows[ib] + c, finish(v, st.r0 + ib, c)); });
            }
        };

        // 3. Down filter, R output rows at a time, written straight into the output.
        auto store_out = [&](int i0) {
            return [yp, oW, osc, i0](int ib, int c, vec v) {
                if (c < oW)
                    store_as(yp + (size_t)(i0 + ib) * oW + c, v * osc, oW - c);
            };
        };
        for (const Block& bk : blocks) {
            const float* w = dw.data() + bk.w;
            const int* lo = dlo.data() + bk.w / ((size_t)R * KD);
            const int* hi = dhi.data() + bk.w / ((size_t)R * KD);
            if (down2d) {
                for (int z = bk.z_begin; z < bk.z_end; z++)
                    run_zstep(zsteps[z], [&](int r) { return ring.data() + (size_t)(r % RB) * D * ZS; });
                for (int rr = 0; rr < bk.nin; rr++) {
                    const float* zr = ring.data() + (size_t)((bk.r_lo + rr) % RB) * D * ZS;
                    for (int kx = 0; kx < P.KDx; kx++)
                        src[(size_t)rr * P.KDx + kx] = zr + koff[kx];
                }
                if (sym_x)
                    band_block<R, 2, true>(bk.nr, bk.nin, src.data(), w, lo, hi, P.KDx, oWv, store_out(bk.i0));
                else
                    band_block<R, 2, false>(bk.nr, bk.nin, src.data(), w, lo, hi, P.KDx, oWv, store_out(bk.i0));
            } else {
                for (int z = bk.z_begin; z < bk.z_end; z++) {  // intermediate rows -> x pass -> T rows in the ring
                    const ZStep& st = zsteps[z];
                    run_zstep(st, [&](int r) { return zbuf.data() + (size_t)(r % RZ) * D * ZS; });
                    for (int r = st.r0; r < st.r1; r++) {
                        const float* zr = zbuf.data() + (size_t)(r % RZ) * D * ZS;
                        for (int kx = 0; kx < P.KDx; kx++)
                            src[kx] = zr + koff[kx];
                        combine_rows(ring.data() + (size_t)(r % RB) * ZS, src.data(), P.gdx, P.KDx, oWv, Identity());
                    }
                }
                for (int rr = 0; rr < bk.nin; rr++)
                    src[rr] = ring.data() + (size_t)((bk.r_lo + rr) % RB) * ZS;
                band_block<R, 2, false>(bk.nr, bk.nin, src.data(), w, lo, hi, 1, oWv, store_out(bk.i0));
            }
        }
    }
}

//----------------------------------------------------------------------------
// Entry point.

// Planes [0, n) in contiguous ranges over torch's intra-op threads.
template <typename F>
void parallel_planes(int64_t n, const F& f) {
#ifdef _OPENMP
    at::parallel_for(0, n, 1, f);
#else
    const int64_t T = std::min<int64_t>(std::max(1, at::get_num_threads()), n);
    if (T <= 1 || at::in_parallel_region()) {
        f(0, n);
        return;
    }
    std::vector<std::thread> workers;
    for (int64_t t = 1; t < T; ++t)
        workers.emplace_back([&f, n, T, t] { f(n * t / T, n * (t + 1) / T); });
    f(0, n / T);
    for (auto& w : workers)
        w.join();
#endif
}

const float* opt_ptr(const torch::Tensor& t) { return t.numel() ? t.data_ptr<float>() : nullptr; }

torch::Tensor check_filter(const torch::Tensor& f, int64_t ndim, const char* name) {
    TORCH_CHECK(f.numel() == 0 || (f.dim() == ndim && f.scalar_type() == torch::kFloat32 && f.device().is_cpu()),
                name, " must be empty or a float32 CPU tensor with ", ndim, " dimensions");
    return f.contiguous();
}

}  // namespace

// x: [N, C, H, W] float32 or bfloat16 (CPU). Filters: gux/guy (1-D) or gu2 (2-D, [KUy, KUx]), likewise
// gdx/gdy/gd2; pass empty tensors for the unused form; correlation orientation, gains folded in.
// b: [C] or empty; in_scale, out_scale: [N, C] or empty (float32). pad: (x0, x1, y0, y1), trimmed so
// the intermediate ends where the down filter stops reading. clamp < 0: none. b_post: [C] or empty, and
// noise: [1 or N, zH, zW] or empty (down == 1 only), added after the up filter, before the activation.
// Returns [N, C, outH, outW], bfloat16 if out_bf16 else float32, written into `out` when that is not empty
// (it must then have that shape and dtype and be contiguous; reusing it avoids page faults on fresh memory).
torch::Tensor filtered_lrelu_cpu(torch::Tensor x, torch::Tensor b, torch::Tensor in_scale, torch::Tensor out_scale,
                                 torch::Tensor gux, torch::Tensor guy, torch::Tensor gu2,
                                 torch::Tensor gdx, torch::Tensor gdy, torch::Tensor gd2,
                                 int64_t up, int64_t down, int64_t px0, int64_t px1, int64_t py0, int64_t py1,
                                 double gain, double slope, double clamp, bool out_bf16,
                                 torch::Tensor out, torch::Tensor b_post, torch::Tensor noise) {
    const at::ScalarType out_dtype = out_bf16 ? torch::kBFloat16 : torch::kFloat32;
    TORCH_CHECK(x.device().is_cpu() && x.dim() == 4, "x must be a 4-D CPU tensor");
    TORCH_CHECK(x.scalar_type() == torch::kFloat32 || x.scalar_type() == torch::kBFloat16,
                "x must be float32 or bfloat16");
    TORCH_CHECK(up >= 1 && down >= 1, "up and down must be >= 1");
    x = x.contiguous();
    gux = check_filter(gux, 1, "gux"); guy = check_filter(guy, 1, "guy"); gu2 = check_filter(gu2, 2, "gu2");
    gdx = check_filter(gdx, 1, "gdx"); gdy = check_filter(gdy, 1, "gdy"); gd2 = check_filter(gd2, 2, "gd2");
    TORCH_CHECK((gu2.numel() > 0) != (gux.numel() > 0 && guy.numel() > 0), "give gu2 or both gux and guy");
    TORCH_CHECK((gd2.numel() > 0) != (gdx.numel() > 0 && gdy.numel() > 0), "give gd2 or both gdx and gdy");

    const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
    Params P{};
    P.planes = N * C; P.channels = (int)C; P.H = (int)H; P.W = (int)W;
    P.U = (int)up; P.D = (int)down; P.px0 = (int)px0; P.py0 = (int)py0;
    P.gux = opt_ptr(gux); P.guy = opt_ptr(guy); P.gu2 = opt_ptr(gu2);
    P.KUx = (int)(gu2.numel() ? gu2.size(1) : gux.size(0)); P.KUy = (int)(gu2.numel() ? gu2.size(0) : guy.size(0));
    P.gdx = opt_ptr(gdx); P.gdy = opt_ptr(gdy); P.gd2 = opt_ptr(gd2);
    P.KDx = (int)(gd2.numel() ? gd2.size(1) : gdx.size(0)); P.KDy = (int)(gd2.numel() ? gd2.size(0) : gdy.size(0));
    P.zW = (int)(W * up + px0 + px1 - P.KUx + 1);
    P.zH = (int)(H * up + py0 + py1 - P.KUy + 1);
    TORCH_CHECK(P.zW >= P.KDx && P.zH >= P.KDy, "filtered_lrelu_cpu: empty output");
    P.oW = (P.zW - P.KDx) / P.D + 1;
    P.oH = (P.zH - P.KDy) / P.D + 1;
    P.gain = (float)gain; P.slope = (float)slope; P.clamp = (float)clamp;

    if (b.numel()) {
        TORCH_CHECK(b.numel() == C, "bias must have C elements");
        b = b.to(torch::kFloat32).contiguous();
    }
    if (in_scale.numel()) {
        TORCH_CHECK(in_scale.numel() == N * C, "in_scale must have N*C elements");
        in_scale = in_scale.to(torch::kFloat32).contiguous();
    }
    if (out_scale.numel()) {
        TORCH_CHECK(out_scale.numel() == N * C, "out_scale must have N*C elements");
        out_scale = out_scale.to(torch::kFloat32).contiguous();
    }
    P.bias = opt_ptr(b); P.in_scale = opt_ptr(in_scale); P.out_scale = opt_ptr(out_scale);
    if (b_post.numel()) {
        TORCH_CHECK(b_post.numel() == C, "b_post must have C elements");
        b_post = b_post.to(torch::kFloat32).contiguous();
    }
    P.bias_post = opt_ptr(b_post);
    torch::Tensor noise_pad;
    if (noise.numel()) {
        TORCH_CHECK(down == 1, "noise needs down == 1");
        TORCH_CHECK(noise.dim() == 3 && (noise.size(0) == 1 || noise.size(0) == N) && noise.size(1) == P.zH &&
                    noise.size(2) == P.zW, "noise must be [1 or N, ", P.zH, ", ", P.zW, "]");
        const int64_t stride = round_up(P.zW, 2 * VL) + VB;  // whole vectors can be read past the row end
        noise_pad = torch::zeros({noise.size(0), P.zH, stride}, x.options().dtype(torch::kFloat32));
        noise_pad.narrow(2, 0, P.zW).copy_(noise);
        P.noise = noise_pad.data_ptr<float>();
        P.noise_n = (int)noise.size(0);
        P.noise_stride = (int)stride;
    }

    torch::Tensor y = out;
    if (out.numel() == 0) {
        y = torch::empty({N, C, P.oH, P.oW}, x.options().dtype(out_dtype));
    } else {
        TORCH_CHECK(out.device().is_cpu() && out.scalar_type() == out_dtype && out.is_contiguous() &&
                    out.sizes() == torch::IntArrayRef({N, C, P.oH, P.oW}), "out must be a contiguous CPU tensor of shape ",
                    torch::IntArrayRef({N, C, P.oH, P.oW}), " and dtype ", out_dtype);
    }
    if (y.numel() == 0)
        return y;
    parallel_planes(P.planes, [&](int64_t begin, int64_t end) {
        if (x.scalar_type() == torch::kFloat32) {
            if (out_dtype == torch::kFloat32)
                run_planes<float, float>(P, x.data_ptr<float>(), y.data_ptr<float>(), begin, end);
            else
                run_planes<float, c10::BFloat16>(P, x.data_ptr<float>(), y.data_ptr<c10::BFloat16>(), begin, end);
        } else {
            if (out_dtype == torch::kFloat32)
                run_planes<c10::BFloat16, float>(P, x.data_ptr<c10::BFloat16>(), y.data_ptr<float>(), begin, end);
            else
                run_planes<c10::BFloat16, c10::BFloat16>(P, x.data_ptr<c10::BFloat16>(), y.data_ptr<c10::BFloat16>(),
                                                         begin, end);
        }
    });
    return y;
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
    m.def("filtered_lrelu", &filtered_lrelu_cpu, "filtered_lrelu forward on the CPU (see filtered_lrelu_cpu.cpp)");
}
