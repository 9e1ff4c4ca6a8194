/* graft: AVX2 + FMA + F16C quantized kernels. Each computes what its `_ref` twin in quant_ref.c
 * computes: the integer block dots are exact, only the float accumulation order differs.
 *
 * Products tile the batch: each unpacked weight block is reused against up to 4 activation rows
 * (prefill), and every (weight row, activation row) pair keeps its own accumulator with the same
 * operation sequence whatever the tile, so a row's result does not depend on the batch it is in. */
#include <immintrin.h>
#include "kernels.h"
#include "common.h"

static inline float hsum_ps(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static inline float h2f(graft_f16 h) { return _cvtsh_ss(h); }

/* 32 nibbles -> 32 bytes: low nibbles (elements 0..15) then high nibbles (16..31). */
static inline __m256i unpack_nibbles(const uint8_t *p) {
    const __m128i t = _mm_loadu_si128((const __m128i *)p);
    const __m256i b = _mm256_insertf128_si256(_mm256_castsi128_si256(t), _mm_srli_epi16(t, 4), 1);
    return _mm256_and_si256(b, _mm256_set1_epi8(0x0F));
}

/* Sum of u8 x s8 products of 32 pairs, as 8 int32 lanes converted to float. */
static inline __m256 dot_u8s8(__m256i u, __m256i s) {
    const __m256i p16 = _mm256_maddubs_epi16(u, s);
    return _mm256_cvtepi32_ps(_mm256_madd_epi16(p16, _mm256_set1_epi16(1)));
}

/* Sum of s8 x s8 products of 32 pairs (sign moved onto the second operand). */
static inline __m256 dot_s8s8(__m256i a, __m256i b) {
    return dot_u8s8(_mm256_sign_epi8(a, a), _mm256_sign_epi8(b, a));
}

/* ---------------------------------------------------------------- activation quantization */

static inline void quant_block_q8(const float *x, int8_t *qs, float *d_out, int *sum_out) {
    __m256 v0 = _mm256_loadu_ps(x), v1 = _mm256_loadu_ps(x + 8), v2 = _mm256_loadu_ps(x + 16), v3 = _mm256_loadu_ps(x + 24);
    const __m256 sign = _mm256_set1_ps(-0.0f); /* abs mask */
    __m256 m = _mm256_andnot_ps(sign, v0);
    m = _mm256_max_ps(m, _mm256_andnot_ps(sign, v1));
    m = _mm256_max_ps(m, _mm256_andnot_ps(sign, v2));
    m = _mm256_max_ps(m, _mm256_andnot_ps(sign, v3));
    __m128 m4 = _mm_max_ps(_mm256_extractf128_ps(m, 1), _mm256_castps256_ps128(m));
    m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
    m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
    const float amax = _mm_cvtss_f32(m4);
    /* As llama.cpp's AVX2 path (the numerics of its reference figures): id = 127 / amax and
     * round-to-nearest-even, where the scalar reference uses 1 / d and roundf; the two differ by one
     * step on rare elements whose scaled value sits at a tie. */
    const float d = amax / 127.0f, id = amax != 0.0f ? 127.0f / amax : 0.0f;
    *d_out = d;
    const __m256 mul = _mm256_set1_ps(id);
    const int rnd = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;
    const __m256 s0 = _mm256_round_ps(_mm256_mul_ps(v0, mul), rnd), s1 = _mm256_round_ps(_mm256_mul_ps(v1, mul), rnd);
    const __m256 s2 = _mm256_round_ps(_mm256_mul_ps(v2, mul), rnd), s3 = _mm256_round_ps(_mm256_mul_ps(v3, mul), rnd);
    __m256i i0 = _mm256_cvtps_epi32(s0), i1 = _mm256_cvtps_epi32(s1), i2 = _mm256_cvtps_epi32(s2), i3 = _mm256_cvtps_epi32(s3);
    if (sum_out) {
        const __m256i s = _mm256_add_epi32(_mm256_add_epi32(i0, i1), _mm256_add_epi32(i2, i3));
        __m128i t = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
        t = _mm_hadd_epi32(t, t);
        t = _mm_hadd_epi32(t, t);
        *sum_out = _mm_cvtsi128_si32(t);
    }
    i0 = _mm256_packs_epi32(i0, i1);
    i2 = _mm256_packs_epi32(i2, i3);
    i0 = _mm256_packs_epi16(i0, i2);
    /* packs interleave 128-bit lanes: restore element order. */
    i0 = _mm256_permutevar8x32_epi32(i0, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    _mm256_storeu_si256((__m256i *)qs, i0);
}

void graft_quantize_row_q8_0_avx2(const float *x, void *vy, int64_t n) {
    graft_block_q8_0 *y = vy;
    for (int64_t b = 0; b < n / 32; b++) {
        float d;
        quant_block_q8(x + b * 32, y[b].qs, &d, NULL);
        y[b].d = _cvtss_sh(d, _MM_FROUND_TO_NEAREST_INT);
    }
}

void graft_quantize_row_q8_1_avx2(const float *x, void *vy, int64_t n) {
    graft_block_q8_1 *y = vy;
    for (int64_t b = 0; b < n / 32; b++) {
        float d;
        int sum;
        quant_block_q8(x + b * 32, y[b].qs, &d, &sum);
        y[b].d = _cvtss_sh(d, _MM_FROUND_TO_NEAREST_INT);
        y[b].s = _cvtss_sh(sum * d, _MM_FROUND_TO_NEAREST_INT);
    }
}

/* ---------------------------------------------------------------- products */

/* One kernel body per format: WEIGHT(b) loads the unpacked weight block b of row w into `wq`
 * (and its scales), DOT(xb) gives the float lanes of the block dot with activation block xb, SCALE
 * its scale, and MIN_TERM the per-block additive term (0 for symmetric formats). */
#define TILE 4

/* Scales of one weight block against one activation block: lanes (dw, mw) * (dx, sx). Lane 1 is
 * garbage for formats without a min (never read then). */
static inline __m128 pair_scales(const void *wb, const float *xs) {
    return _mm_mul_ps(_mm_cvtph_ps(_mm_loadu_si32(wb)), _mm_castpd_ps(_mm_load_sd((const double *)xs)));
}

/* Most blocks per row for which activation scales are converted up front (n <= 32768); longer rows
 * take the plain path (same arithmetic, scales converted per use). */
#define MAX_NB 1024

#define GEMM_AVX2(NAME, WBLOCK, XBLOCK, LOAD_W, DOT, XSCALE, HAS_MIN, XSUM)                              \
    static void NAME##_plain(int64_t nb, const void *w, size_t w_stride, int64_t nrows, const XBLOCK *x0, \
                             float *y, int64_t ldy_unused) {                                             \
        (void)ldy_unused;                                                                                \
        for (int64_t r = 0; r < nrows; r++) {                                                            \
            const WBLOCK *wr = (const WBLOCK *)((const char *)w + r * w_stride);                         \
            graft_prefetch_ahead(wr, w_stride, (const char *)w + nrows * w_stride);                      \
            __m256 a0 = _mm256_setzero_ps();                                                             \
            __m128 mm = _mm_setzero_ps();                                                                \
            for (int64_t b = 0; b < nb; b++) {                                                           \
                const WBLOCK *wb = wr + b;                                                               \
                LOAD_W;                                                                                  \
                const float xs[2] = {XSCALE(x0 + b), HAS_MIN ? XSUM(x0 + b) : 0.0f};                     \
                const __m128 sc = pair_scales(wb, xs);                                                   \
                a0 = _mm256_fmadd_ps(DOT(x0 + b), _mm256_broadcastss_ps(sc), a0);                       \
                if (HAS_MIN) mm = _mm_add_ps(mm, sc);                                                    \
            }                                                                                            \
            y[r] = hsum_ps(a0) + (HAS_MIN ? _mm_cvtss_f32(_mm_movehdup_ps(mm)) : 0.0f);                 \
        }                                                                                                \
    }                                                                                                    \
    void NAME(int64_t n, const void *w, size_t w_stride, int64_t nrows, const void *x, size_t x_stride,  \
              int64_t m, float *y, int64_t ldy) {                                                        \
        const int64_t nb = n / 32;                                                                       \
        const int64_t mt = m - m % TILE;                                                                 \
        float xsc[TILE][2 * MAX_NB];                                                                     \
        if (nb > MAX_NB) {                                                                               \
            float *col = y;                                                                              \
            for (int64_t i = 0; i < m; i++) {                                                            \
                /* rows of y are ldy apart: compute into y row i directly */                             \
                col = y + i * ldy;                                                                       \
                NAME##_plain(nb, w, w_stride, nrows, (const XBLOCK *)((const char *)x + i * x_stride), col, ldy); \
            }                                                                                            \
            return;                                                                                      \
        }                                                                                                \
        /* Prefill: TILE activation rows against each weight row; each unpacked weight block is used \
         * TILE times. */                                                                                \
        for (int64_t i = 0; i < mt; i += TILE) {                                                         \
            const XBLOCK *xr[TILE];                                                                      \
            for (int c = 0; c < TILE; c++) {                                                             \
                xr[c] = (const XBLOCK *)((const char *)x + (i + c) * x_stride);                          \
                for (int64_t b = 0; b < nb; b++) {                                                       \
                    xsc[c][2 * b] = XSCALE(xr[c] + b);                                                   \
                    xsc[c][2 * b + 1] = HAS_MIN ? XSUM(xr[c] + b) : 0.0f;                                \
                }                                                                                        \
            }                                                                                            \
            for (int64_t r = 0; r < nrows; r++) {                                                        \
                const WBLOCK *wr = (const WBLOCK *)((const char *)w + r * w_stride);                     \
                graft_prefetch_ahead(wr, w_stride, (const char *)w + nrows * w_stride);                  \
                __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;                              \
                __m128 m0 = _mm_setzero_ps(), m1 = m0, m2 = m0, m3 = m0;                                 \
                for (int64_t b = 0; b < nb; b++) {                                                       \
                    const WBLOCK *wb = wr + b;                                                           \
                    LOAD_W;                                                                              \
                    const __m128 s0 = pair_scales(wb, xsc[0] + 2 * b), s1 = pair_scales(wb, xsc[1] + 2 * b); \
                    const __m128 s2 = pair_scales(wb, xsc[2] + 2 * b), s3 = pair_scales(wb, xsc[3] + 2 * b); \
                    a0 = _mm256_fmadd_ps(DOT(xr[0] + b), _mm256_broadcastss_ps(s0), a0);                \
                    a1 = _mm256_fmadd_ps(DOT(xr[1] + b), _mm256_broadcastss_ps(s1), a1);                \
                    a2 = _mm256_fmadd_ps(DOT(xr[2] + b), _mm256_broadcastss_ps(s2), a2);                \
                    a3 = _mm256_fmadd_ps(DOT(xr[3] + b), _mm256_broadcastss_ps(s3), a3);                \
                    if (HAS_MIN) {                                                                       \
                        m0 = _mm_add_ps(m0, s0);                                                         \
                        m1 = _mm_add_ps(m1, s1);                                                         \
                        m2 = _mm_add_ps(m2, s2);                                                         \
                        m3 = _mm_add_ps(m3, s3);                                                         \
                    }                                                                                    \
                }                                                                                        \
                y[(i + 0) * ldy + r] = hsum_ps(a0) + (HAS_MIN ? _mm_cvtss_f32(_mm_movehdup_ps(m0)) : 0.0f); \
                y[(i + 1) * ldy + r] = hsum_ps(a1) + (HAS_MIN ? _mm_cvtss_f32(_mm_movehdup_ps(m1)) : 0.0f); \
                y[(i + 2) * ldy + r] = hsum_ps(a2) + (HAS_MIN ? _mm_cvtss_f32(_mm_movehdup_ps(m2)) : 0.0f); \
                y[(i + 3) * ldy + r] = hsum_ps(a3) + (HAS_MIN ? _mm_cvtss_f32(_mm_movehdup_ps(m3)) : 0.0f); \
            }                                                                                            \
        }                                                                                                \
        /* Rows left over (decode: the only one): one activation row against every weight row, with   \
         * the same per-pair arithmetic as the tiles, so a row's result does not depend on its batch. */ \
        for (int64_t i = mt; i < m; i++) {                                                               \
            const XBLOCK *x0 = (const XBLOCK *)((const char *)x + i * x_stride);                         \
            for (int64_t b = 0; b < nb; b++) {                                                           \
                xsc[0][2 * b] = XSCALE(x0 + b);                                                          \
                xsc[0][2 * b + 1] = HAS_MIN ? XSUM(x0 + b) : 0.0f;                                       \
            }                                                                                            \
            float *yi = y + i * ldy;                                                                     \
            for (int64_t r = 0; r < nrows; r++) {                                                        \
                const WBLOCK *wr = (const WBLOCK *)((const char *)w + r * w_stride);                     \
                graft_prefetch_ahead(wr, w_stride, (const char *)w + nrows * w_stride);                  \
                __m256 a0 = _mm256_setzero_ps();                                                         \
                __m128 mm = _mm_setzero_ps();                                                            \
                for (int64_t b = 0; b < nb; b++) {                                                       \
                    const WBLOCK *wb = wr + b;                                                           \
                    LOAD_W;                                                                              \
                    const __m128 sc = pair_scales(wb, xsc[0] + 2 * b);                                   \
                    a0 = _mm256_fmadd_ps(DOT(x0 + b), _mm256_broadcastss_ps(sc), a0);                   \
                    if (HAS_MIN) mm = _mm_add_ps(mm, sc);                                                \
                }                                                                                        \
                yi[r] = hsum_ps(a0) + (HAS_MIN ? _mm_cvtss_f32(_mm_movehdup_ps(mm)) : 0.0f);            \
            }                                                                                            \
        }                                                                                                \
    }

#define D16(p) h2f((p)->d)
#define M16(p) h2f((p)->m)
#define S16(p) h2f((p)->s)
#define ZERO(p) 0.0f
#define LOADX(p) _mm256_loadu_si256((const __m256i *)(p)->qs)

/* Q4_1 x Q8_1: unsigned nibbles times signed activations, plus m * s. */
#define LOAD_Q4_1 const __m256i wq = unpack_nibbles(wb->qs)
#define DOT_Q4_1(xb) dot_u8s8(wq, LOADX(xb))
GEMM_AVX2(graft_gemm_q4_1_q8_1_avx2, graft_block_q4_1, graft_block_q8_1, LOAD_Q4_1, DOT_Q4_1, D16, 1, S16)

/* Q4_0 x Q8_0: nibbles - 8, signed times signed. */
#define LOAD_Q4_0 const __m256i wq = _mm256_sub_epi8(unpack_nibbles(wb->qs), _mm256_set1_epi8(8))
#define DOT_S8(xb) dot_s8s8(wq, LOADX(xb))
GEMM_AVX2(graft_gemm_q4_0_q8_0_avx2, graft_block_q4_0, graft_block_q8_0, LOAD_Q4_0, DOT_S8, D16, 0, ZERO)

/* Q8_0 x Q8_0. */
#define LOAD_Q8_0 const __m256i wq = LOADX(wb)
GEMM_AVX2(graft_gemm_q8_0_q8_0_avx2, graft_block_q8_0, graft_block_q8_0, LOAD_Q8_0, DOT_S8, D16, 0, ZERO)
/* Q8_0 x Q8_1: the same, reading the activations' d and qs (their s unused). */
GEMM_AVX2(graft_gemm_q8_0_q8_1_avx2, graft_block_q8_0, graft_block_q8_1, LOAD_Q8_0, DOT_S8, D16, 0, ZERO)

/* Q5_0 / Q5_1: the fifth bits (one per element, in qh) become 0x10 in each byte. */
static inline __m256i bits_to_bytes(const uint8_t *qh4) {
    uint32_t qh;
    memcpy(&qh, qh4, 4);
    const __m256i shuf = _mm256_setr_epi64x(0x0000000000000000, 0x0101010101010101, 0x0202020202020202, 0x0303030303030303);
    __m256i v = _mm256_shuffle_epi8(_mm256_set1_epi32((int)qh), shuf);
    const __m256i bit = _mm256_set1_epi64x(0x7fbfdfeff7fbfdfe);
    v = _mm256_or_si256(v, bit);
    return _mm256_and_si256(_mm256_cmpeq_epi8(v, _mm256_set1_epi64x(-1)), _mm256_set1_epi8(0x10));
}
#define LOAD_Q5_0 const __m256i wq = _mm256_sub_epi8(_mm256_or_si256(unpack_nibbles(wb->qs), bits_to_bytes(wb->qh)), _mm256_set1_epi8(16))
GEMM_AVX2(graft_gemm_q5_0_q8_0_avx2, graft_block_q5_0, graft_block_q8_0, LOAD_Q5_0, DOT_S8, D16, 0, ZERO)
#define LOAD_Q5_1 const __m256i wq = _mm256_or_si256(unpack_nibbles(wb->qs), bits_to_bytes(wb->qh))
GEMM_AVX2(graft_gemm_q5_1_q8_1_avx2, graft_block_q5_1, graft_block_q8_1, LOAD_Q5_1, DOT_Q4_1, D16, 1, S16)

/* ---------------------------------------------------------------- f32-activation products */

/* Quantized weights x f32 activations (graft's fp32 numerics): each weight block is dequantized
 * once into four vectors (w = q * d + m) and reused against up to 4 activation rows. */
#define GEMM_F32_AVX2(NAME, WBLOCK, LOAD_W, WSCALE, WMIN)                                                \
    void NAME(int64_t n, const void *w, size_t w_stride, int64_t nrows, const void *x, size_t x_stride,  \
              int64_t m, float *y, int64_t ldy) {                                                        \
        const int64_t nb = n / 32;                                                                       \
        for (int64_t r = 0; r < nrows; r++) {                                                            \
            const WBLOCK *wr = (const WBLOCK *)((const char *)w + r * w_stride);                         \
            graft_prefetch_ahead(wr, w_stride, (const char *)w + nrows * w_stride);                      \
            for (int64_t i0 = 0; i0 < m; i0 += TILE) {                                                   \
                const int64_t t = m - i0 < TILE ? m - i0 : TILE;                                         \
                const float *xs[TILE];                                                                   \
                __m256 acc[TILE];                                                                        \
                for (int64_t j = 0; j < TILE; j++) {                                                     \
                    xs[j] = (const float *)((const char *)x + (i0 + (j < t ? j : 0)) * x_stride);       \
                    acc[j] = _mm256_setzero_ps();                                                        \
                }                                                                                        \
                for (int64_t b = 0; b < nb; b++) {                                                       \
                    const WBLOCK *wb = wr + b;                                                           \
                    LOAD_W;                                                                              \
                    const __m256 d = _mm256_set1_ps(WSCALE(wb)), mn = _mm256_set1_ps(WMIN(wb));          \
                    const __m128i lo = _mm256_castsi256_si128(wq), hi = _mm256_extracti128_si256(wq, 1); \
                    const __m256 w0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(lo)), d, mn); \
                    const __m256 w1 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(lo, 8))), d, mn); \
                    const __m256 w2 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(hi)), d, mn); \
                    const __m256 w3 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(hi, 8))), d, mn); \
                    for (int64_t j = 0; j < TILE; j++) {                                                 \
                        const float *xb = xs[j] + b * 32;                                                \
                        __m256 a = _mm256_fmadd_ps(w0, _mm256_loadu_ps(xb), acc[j]);                     \
                        a = _mm256_fmadd_ps(w1, _mm256_loadu_ps(xb + 8), a);                             \
                        a = _mm256_fmadd_ps(w2, _mm256_loadu_ps(xb + 16), a);                            \
                        acc[j] = _mm256_fmadd_ps(w3, _mm256_loadu_ps(xb + 24), a);                       \
                    }                                                                                    \
                }                                                                                        \
                for (int64_t j = 0; j < t; j++) y[(i0 + j) * ldy + r] = hsum_ps(acc[j]);                 \
            }                                                                                            \
        }                                                                                                \
    }

GEMM_F32_AVX2(graft_gemm_q4_1_f32_avx2, graft_block_q4_1, LOAD_Q4_1, D16, M16)
GEMM_F32_AVX2(graft_gemm_q4_0_f32_avx2, graft_block_q4_0, LOAD_Q4_0, D16, ZERO)
GEMM_F32_AVX2(graft_gemm_q5_0_f32_avx2, graft_block_q5_0, LOAD_Q5_0, D16, ZERO)
GEMM_F32_AVX2(graft_gemm_q5_1_f32_avx2, graft_block_q5_1, LOAD_Q5_1, D16, M16)
GEMM_F32_AVX2(graft_gemm_q8_0_f32_avx2, graft_block_q8_0, LOAD_Q8_0, D16, ZERO)

/* ---------------------------------------------------------------- dense weights (f32 activations) */

static inline __m256 load8_f32(const void *p) { return _mm256_loadu_ps((const float *)p); }
static inline __m256 load8_f16(const void *p) { return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p)); }
static inline __m256 load8_bf16(const void *p) {
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p)), 16));
}
static inline float tail_f32(const void *p, int64_t k) { return ((const float *)p)[k]; }
static inline float tail_f16(const void *p, int64_t k) { return _cvtsh_ss(((const graft_f16 *)p)[k]); }
static inline float tail_bf16(const void *p, int64_t k) { return graft_bf2f(((const graft_bf16 *)p)[k]); }

/* Dense rows against up to TILE activation rows at once; the tail of n (not a multiple of 8) in scalar. */
#define GEMM_DENSE_AVX2(NAME, LOAD8, TAIL, ESZ)                                                                 \
    void NAME(int64_t n, const void *w, size_t w_stride, int64_t nrows, const void *x, size_t x_stride,  \
              int64_t m, float *y, int64_t ldy) {                                                        \
        const int64_t n8 = n - n % 8;                                                                    \
        for (int64_t r = 0; r < nrows; r++) {                                                            \
            const char *wr = (const char *)w + r * w_stride;                                             \
            graft_prefetch_ahead(wr, w_stride, (const char *)w + nrows * w_stride);                      \
            for (int64_t i0 = 0; i0 < m; i0 += TILE) {                                                   \
                const int64_t t = m - i0 < TILE ? m - i0 : TILE;                                         \
                const float *xs[TILE];                                                                   \
                __m256 acc[TILE];                                                                        \
                for (int64_t j = 0; j < TILE; j++) {                                                     \
                    xs[j] = (const float *)((const char *)x + (i0 + (j < t ? j : 0)) * x_stride);       \
                    acc[j] = _mm256_setzero_ps();                                                        \
                }                                                                                        \
                for (int64_t k = 0; k < n8; k += 8) {                                                    \
                    const __m256 wv = LOAD8(wr + k * (ESZ));                                               \
                    for (int64_t j = 0; j < TILE; j++) acc[j] = _mm256_fmadd_ps(wv, _mm256_loadu_ps(xs[j] + k), acc[j]); \
                }                                                                                        \
                for (int64_t j = 0; j < t; j++) {                                                        \
                    float s = hsum_ps(acc[j]);                                                           \
                    for (int64_t k = n8; k < n; k++) s += TAIL(wr, k) * xs[j][k];                        \
                    y[(i0 + j) * ldy + r] = s;                                                           \
                }                                                                                        \
            }                                                                                            \
        }                                                                                                \
    }

GEMM_DENSE_AVX2(graft_gemm_f32_f32_avx2, load8_f32, tail_f32, 4)
GEMM_DENSE_AVX2(graft_gemm_f16_f32_avx2, load8_f16, tail_f16, 2)
GEMM_DENSE_AVX2(graft_gemm_bf16_f32_avx2, load8_bf16, tail_bf16, 2)

/* ---------------------------------------------------------------- dX += dY·W */

/* One weight block (or 256-element chunk of a dense row) is dequantized with the reference (exact
 * arithmetic, so identical values) and added, scaled by dY, into every row of dX with FMAs. */
static inline void axpy_avx2(float a, const float *x, float *y, int64_t n) {
    const __m256 va = _mm256_set1_ps(a);
    int64_t k = 0;
    for (; k + 8 <= n; k += 8) _mm256_storeu_ps(y + k, _mm256_fmadd_ps(va, _mm256_loadu_ps(x + k), _mm256_loadu_ps(y + k)));
    for (; k < n; k++) y[k] += a * x[k];
}

#define GEMM_DX_AVX2(wfmt, bs, ts)                                                                       \
    void graft_gemm_dx_##wfmt##_avx2(int64_t n, const void *w, size_t w_stride, int64_t nrows,          \
                                     const float *dy, int64_t lddy, int64_t m, float *dx, int64_t lddx) { \
        float buf[256];                                                                                  \
        for (int64_t r = 0; r < nrows; r++) {                                                            \
            const char *row = (const char *)w + r * w_stride;                                           \
            for (int64_t k0 = 0; k0 < n; k0 += (bs)) {                                                   \
                const int64_t len = n - k0 < (bs) ? n - k0 : (bs);                                       \
                graft_dequantize_row_##wfmt##_ref(row + (k0 / (bs)) * (ts), buf, len);                   \
                for (int64_t i = 0; i < m; i++) axpy_avx2(dy[i * lddy + r], buf, dx + i * lddx + k0, len); \
            }                                                                                            \
        }                                                                                                \
    }

/* Dense rows are taken in 256-element chunks (ts = the chunk's bytes). */
GEMM_DX_AVX2(f32, 256, 1024)
GEMM_DX_AVX2(f16, 256, 512)
GEMM_DX_AVX2(bf16, 256, 512)
GEMM_DX_AVX2(q4_0, 32, sizeof(graft_block_q4_0))
GEMM_DX_AVX2(q4_1, 32, sizeof(graft_block_q4_1))
GEMM_DX_AVX2(q5_0, 32, sizeof(graft_block_q5_0))
GEMM_DX_AVX2(q5_1, 32, sizeof(graft_block_q5_1))
GEMM_DX_AVX2(q8_0, 32, sizeof(graft_block_q8_0))
GEMM_DX_AVX2(q4_K, 256, sizeof(graft_block_q4_K))
GEMM_DX_AVX2(q5_K, 256, sizeof(graft_block_q5_K))
GEMM_DX_AVX2(q6_K, 256, sizeof(graft_block_q6_K))

/* ---------------------------------------------------------------- K-quants x Q8_K */

/* Integer sums over a whole 256-element super-block (sub-block scales applied with madd in int32),
 * one float FMA per super-block; the min / offset term from the activation's 16-element sums. */
static inline int32_t hsum_epi32(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4E));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xB1));
    return _mm_cvtsi128_si32(s);
}

static inline float dot_q4_K_block(const graft_block_q4_K *w, const graft_block_q8_K *x) {
    uint8_t sc[8], mn[8];
    for (int j = 0; j < 8; j++) graft_scale_min_k4(j, w->scales, &sc[j], &mn[j]);
    int summ = 0;
    for (int j = 0; j < 8; j++) summ += mn[j] * (x->bsums[2 * j] + x->bsums[2 * j + 1]);
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    __m256i sumi = _mm256_setzero_si256();
    for (int c = 0; c < 4; c++) {
        const __m256i q = _mm256_loadu_si256((const __m256i *)(w->qs + 32 * c));
        const __m256i lo = _mm256_and_si256(q, m4), hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
        const __m256i xl = _mm256_loadu_si256((const __m256i *)(x->qs + 64 * c));
        const __m256i xh = _mm256_loadu_si256((const __m256i *)(x->qs + 64 * c + 32));
        sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(_mm256_maddubs_epi16(lo, xl), _mm256_set1_epi16(sc[2 * c])));
        sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(_mm256_maddubs_epi16(hi, xh), _mm256_set1_epi16(sc[2 * c + 1])));
    }
    return h2f(w->d) * x->d * (float)hsum_epi32(sumi) - h2f(w->dmin) * x->d * (float)summ;
}

static inline float dot_q5_K_block(const graft_block_q5_K *w, const graft_block_q8_K *x) {
    uint8_t sc[8], mn[8];
    for (int j = 0; j < 8; j++) graft_scale_min_k4(j, w->scales, &sc[j], &mn[j]);
    int summ = 0;
    for (int j = 0; j < 8; j++) summ += mn[j] * (x->bsums[2 * j] + x->bsums[2 * j + 1]);
    const __m256i m4 = _mm256_set1_epi8(0x0F), one = _mm256_set1_epi8(1);
    const __m256i qh = _mm256_loadu_si256((const __m256i *)w->qh);
    __m256i sumi = _mm256_setzero_si256();
    for (int c = 0; c < 4; c++) {
        const __m256i q = _mm256_loadu_si256((const __m256i *)(w->qs + 32 * c));
        const __m256i hl = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2 * c), one), 4);
        const __m256i hh = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2 * c + 1), one), 4);
        const __m256i lo = _mm256_or_si256(_mm256_and_si256(q, m4), hl);
        const __m256i hi = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(q, 4), m4), hh);
        const __m256i xl = _mm256_loadu_si256((const __m256i *)(x->qs + 64 * c));
        const __m256i xh = _mm256_loadu_si256((const __m256i *)(x->qs + 64 * c + 32));
        sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(_mm256_maddubs_epi16(lo, xl), _mm256_set1_epi16(sc[2 * c])));
        sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(_mm256_maddubs_epi16(hi, xh), _mm256_set1_epi16(sc[2 * c + 1])));
    }
    return h2f(w->d) * x->d * (float)hsum_epi32(sumi) - h2f(w->dmin) * x->d * (float)summ;
}

static inline __m256i scale_pair(int8_t a, int8_t b) {
    return _mm256_set_m128i(_mm_set1_epi16(b), _mm_set1_epi16(a));
}

static inline float dot_q6_K_block(const graft_block_q6_K *w, const graft_block_q8_K *x) {
    const __m256i m4 = _mm256_set1_epi8(0x0F), m2 = _mm256_set1_epi8(3);
    __m256i sumi = _mm256_setzero_si256();
    int corr = 0; /* sum of sc * bsum: the quants are stored +32 */
    for (int s = 0; s < 16; s++) corr += w->scales[s] * x->bsums[s];
    for (int h = 0; h < 2; h++) {
        const __m256i ql0 = _mm256_loadu_si256((const __m256i *)(w->ql + 64 * h));
        const __m256i ql1 = _mm256_loadu_si256((const __m256i *)(w->ql + 64 * h + 32));
        const __m256i qh = _mm256_loadu_si256((const __m256i *)(w->qh + 32 * h));
        const __m256i q1 = _mm256_or_si256(_mm256_and_si256(ql0, m4), _mm256_slli_epi16(_mm256_and_si256(qh, m2), 4));
        const __m256i q2 = _mm256_or_si256(_mm256_and_si256(ql1, m4), _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2), m2), 4));
        const __m256i q3 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), m4), _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 4), m2), 4));
        const __m256i q4 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), m4), _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 6), m2), 4));
        const int8_t *sc = w->scales + 8 * h;
        const int8_t *xq = x->qs + 128 * h;
        sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(_mm256_maddubs_epi16(q1, _mm256_loadu_si256((const __m256i *)(xq + 0))), scale_pair(sc[0], sc[1])));
        sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(_mm256_maddubs_epi16(q2, _mm256_loadu_si256((const __m256i *)(xq + 32))), scale_pair(sc[2], sc[3])));
        sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(_mm256_maddubs_epi16(q3, _mm256_loadu_si256((const __m256i *)(xq + 64))), scale_pair(sc[4], sc[5])));
        sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(_mm256_maddubs_epi16(q4, _mm256_loadu_si256((const __m256i *)(xq + 96))), scale_pair(sc[6], sc[7])));
    }
    return h2f(w->d) * x->d * (float)(hsum_epi32(sumi) - 32 * corr);
}

#define GEMM_K_AVX2(NAME, WBLOCK, DOTB)                                                                  \
    void NAME(int64_t n, const void *w, size_t w_stride, int64_t nrows, const void *x, size_t x_stride,  \
              int64_t m, float *y, int64_t ldy) {                                                        \
        const int64_t nb = n / GRAFT_QK_K;                                                               \
        for (int64_t i = 0; i < m; i++) {                                                                \
            const graft_block_q8_K *xi = (const graft_block_q8_K *)((const char *)x + i * x_stride);     \
            for (int64_t r = 0; r < nrows; r++) {                                                        \
                const WBLOCK *wr = (const WBLOCK *)((const char *)w + r * w_stride);                     \
                graft_prefetch_ahead(wr, w_stride, (const char *)w + nrows * w_stride);                  \
                float s = 0;                                                                             \
                for (int64_t b = 0; b < nb; b++) s += DOTB(wr + b, xi + b);                              \
                y[i * ldy + r] = s;                                                                      \
            }                                                                                            \
        }                                                                                                \
    }

GEMM_K_AVX2(graft_gemm_q4_K_q8_K_avx2, graft_block_q4_K, dot_q4_K_block)
GEMM_K_AVX2(graft_gemm_q5_K_q8_K_avx2, graft_block_q5_K, dot_q5_K_block)
GEMM_K_AVX2(graft_gemm_q6_K_q8_K_avx2, graft_block_q6_K, dot_q6_K_block)

/* K-quants x f32 activations: each 256-element super-block is dequantized once (reference
 * arithmetic, so the same values) into a buffer and dotted against up to TILE activation rows. */
#define GEMM_F32_DEQ_AVX2(wfmt, WBLOCK)                                                                  \
    void graft_gemm_##wfmt##_f32_avx2(int64_t n, const void *w, size_t w_stride, int64_t nrows,         \
                                      const void *x, size_t x_stride, int64_t m, float *y, int64_t ldy) { \
        const int64_t nb = n / GRAFT_QK_K;                                                               \
        float buf[GRAFT_QK_K];                                                                           \
        for (int64_t r = 0; r < nrows; r++) {                                                            \
            const WBLOCK *wr = (const WBLOCK *)((const char *)w + r * w_stride);                         \
            graft_prefetch_ahead(wr, w_stride, (const char *)w + nrows * w_stride);                      \
            for (int64_t i0 = 0; i0 < m; i0 += TILE) {                                                   \
                const int64_t t = m - i0 < TILE ? m - i0 : TILE;                                         \
                __m256 acc[TILE];                                                                        \
                for (int64_t j = 0; j < TILE; j++) acc[j] = _mm256_setzero_ps();                         \
                for (int64_t b = 0; b < nb; b++) {                                                       \
                    graft_dequantize_row_##wfmt##_ref(wr + b, buf, GRAFT_QK_K);                          \
                    for (int64_t j = 0; j < t; j++) {                                                    \
                        const float *xb = (const float *)((const char *)x + (i0 + j) * x_stride) + b * GRAFT_QK_K; \
                        __m256 a = acc[j];                                                               \
                        for (int k = 0; k < GRAFT_QK_K; k += 8)                                          \
                            a = _mm256_fmadd_ps(_mm256_loadu_ps(buf + k), _mm256_loadu_ps(xb + k), a);   \
                        acc[j] = a;                                                                      \
                    }                                                                                    \
                }                                                                                        \
                for (int64_t j = 0; j < t; j++) y[(i0 + j) * ldy + r] = hsum_ps(acc[j]);                 \
            }                                                                                            \
        }                                                                                                \
    }

GEMM_F32_DEQ_AVX2(q4_K, graft_block_q4_K)
GEMM_F32_DEQ_AVX2(q5_K, graft_block_q5_K)
GEMM_F32_DEQ_AVX2(q6_K, graft_block_q6_K)

/* ---- dequantization (bit-exact with quant_ref.c: float(q) * d, then + m, never fused) ---------- */

/* The 32 values of a 4-bit block as 4 vectors of 8 int32 (low nibbles of qs[0..16], then high). */
static inline void nibbles_i32(const uint8_t *qs, __m256i out[4]) {
    const __m128i q = _mm_loadu_si128((const __m128i *)qs);
    const __m128i m4 = _mm_set1_epi8(0x0F);
    const __m128i lo = _mm_and_si128(q, m4), hi = _mm_and_si128(_mm_srli_epi16(q, 4), m4);
    out[0] = _mm256_cvtepu8_epi32(lo);
    out[1] = _mm256_cvtepu8_epi32(_mm_srli_si128(lo, 8));
    out[2] = _mm256_cvtepu8_epi32(hi);
    out[3] = _mm256_cvtepu8_epi32(_mm_srli_si128(hi, 8));
}

void graft_dequantize_row_q4_0_avx2(const void *vx, float *y, int64_t n) {
    const graft_block_q4_0 *x = vx;
    const __m256i eight = _mm256_set1_epi32(8);
    for (int64_t b = 0; b < n / GRAFT_QK4_0; b++, y += GRAFT_QK4_0) {
        const __m256 d = _mm256_set1_ps(h2f(x[b].d));
        __m256i v[4];
        nibbles_i32(x[b].qs, v);
        for (int i = 0; i < 4; i++) _mm256_storeu_ps(y + 8 * i, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(v[i], eight)), d));
    }
}

void graft_dequantize_row_q4_1_avx2(const void *vx, float *y, int64_t n) {
    const graft_block_q4_1 *x = vx;
    for (int64_t b = 0; b < n / GRAFT_QK4_1; b++, y += GRAFT_QK4_1) {
        const __m256 d = _mm256_set1_ps(h2f(x[b].d)), m = _mm256_set1_ps(h2f(x[b].m));
        __m256i v[4];
        nibbles_i32(x[b].qs, v);
        for (int i = 0; i < 4; i++) _mm256_storeu_ps(y + 8 * i, _mm256_add_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(v[i]), d), m));
    }
}

void graft_dequantize_row_q8_0_avx2(const void *vx, float *y, int64_t n) {
    const graft_block_q8_0 *x = vx;
    for (int64_t b = 0; b < n / GRAFT_QK8_0; b++, y += GRAFT_QK8_0) {
        const __m256 d = _mm256_set1_ps(h2f(x[b].d));
        for (int i = 0; i < 4; i++) {
            const __m256i q = _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(x[b].qs + 8 * i)));
            _mm256_storeu_ps(y + 8 * i, _mm256_mul_ps(_mm256_cvtepi32_ps(q), d));
        }
    }
}
