/* graft: NEON (ARMv8.2 dot-product) quantized kernels for the 32-element block formats with 8-bit
 * activations (Q4_0, Q4_1, Q8_0) and the Q8_0 / Q8_1 activation quantizers. The other formats run
 * the reference on AArch64 (src/kernels/quant.rs says which). Each computes what its `_ref` twin
 * computes: integer block dots exactly, float accumulation in another order. */
#include <arm_neon.h>
#include "kernels.h"
#include "common.h"

static inline float h2f(graft_f16 h) {
    __fp16 v;
    __builtin_memcpy(&v, &h, 2);
    return (float)v;
}

static inline graft_f16 f2h(float f) {
    __fp16 v = (__fp16)f;
    graft_f16 h;
    __builtin_memcpy(&h, &v, 2);
    return h;
}

/* One block of 32 floats -> 32 int8 with d = amax / 127, rounded to nearest (ties to even). */
static inline void quant_block_q8(const float *x, int8_t *qs, float *d_out, int *sum_out) {
    float32x4_t v[8], amax = vdupq_n_f32(0.0f);
    for (int j = 0; j < 8; j++) {
        v[j] = vld1q_f32(x + 4 * j);
        amax = vmaxq_f32(amax, vabsq_f32(v[j]));
    }
    const float m = vmaxvq_f32(amax);
    const float d = m / 127.0f, id = d ? 1.0f / d : 0.0f;
    *d_out = d;
    int32x4_t sum = vdupq_n_s32(0);
    for (int j = 0; j < 8; j++) {
        const int32x4_t q = vcvtnq_s32_f32(vmulq_n_f32(v[j], id));
        sum = vaddq_s32(sum, q);
        qs[4 * j + 0] = (int8_t)vgetq_lane_s32(q, 0);
        qs[4 * j + 1] = (int8_t)vgetq_lane_s32(q, 1);
        qs[4 * j + 2] = (int8_t)vgetq_lane_s32(q, 2);
        qs[4 * j + 3] = (int8_t)vgetq_lane_s32(q, 3);
    }
    if (sum_out) *sum_out = vaddvq_s32(sum);
}

void graft_quantize_row_q8_0_neon(const float *x, void *vy, int64_t n) {
    graft_block_q8_0 *y = vy;
    for (int64_t b = 0; b < n / 32; b++) {
        float d;
        quant_block_q8(x + 32 * b, y[b].qs, &d, NULL);
        y[b].d = f2h(d);
    }
}

void graft_quantize_row_q8_1_neon(const float *x, void *vy, int64_t n) {
    graft_block_q8_1 *y = vy;
    for (int64_t b = 0; b < n / 32; b++) {
        float d;
        int sum;
        quant_block_q8(x + 32 * b, y[b].qs, &d, &sum);
        y[b].d = f2h(d);
        y[b].s = f2h(sum * d);
    }
}

/* Block dots: int32x4 partial sums of 32 products via two SDOT instructions. */
static inline int32x4_t dot32(int8x16_t w0, int8x16_t w1, const int8_t *x) {
    return vdotq_s32(vdotq_s32(vdupq_n_s32(0), w0, vld1q_s8(x)), w1, vld1q_s8(x + 16));
}

#define GEMM_NEON(NAME, WBLOCK, XBLOCK, UNPACK, MINF)                                                    \
    void NAME(int64_t n, const void *w, size_t w_stride, int64_t nrows, const void *x, size_t x_stride,  \
              int64_t m, float *y, int64_t ldy) {                                                        \
        const int64_t nb = n / 32;                                                                       \
        for (int64_t i = 0; i < m; i++) {                                                                \
            const XBLOCK *xi = (const XBLOCK *)((const char *)x + i * x_stride);                         \
            for (int64_t r = 0; r < nrows; r++) {                                                        \
                const WBLOCK *wr = (const WBLOCK *)((const char *)w + r * w_stride);                     \
                float32x4_t acc = vdupq_n_f32(0.0f);                                                     \
                float mt = 0.0f;                                                                         \
                for (int64_t b = 0; b < nb; b++) {                                                       \
                    int8x16_t w0, w1;                                                                    \
                    UNPACK(wr + b, w0, w1);                                                              \
                    const float sc = h2f(wr[b].d) * h2f(xi[b].d);                                        \
                    acc = vfmaq_n_f32(acc, vcvtq_f32_s32(dot32(w0, w1, xi[b].qs)), sc);                  \
                    mt += MINF(wr + b, xi + b);                                                          \
                }                                                                                        \
                y[i * ldy + r] = vaddvq_f32(acc) + mt;                                                   \
            }                                                                                            \
        }                                                                                                \
    }

#define UNPACK_Q4_0(wb, w0, w1)                                                                          \
    do {                                                                                                 \
        const uint8x16_t q = vld1q_u8((wb)->qs);                                                         \
        w0 = vsubq_s8(vreinterpretq_s8_u8(vandq_u8(q, vdupq_n_u8(0x0F))), vdupq_n_s8(8));               \
        w1 = vsubq_s8(vreinterpretq_s8_u8(vshrq_n_u8(q, 4)), vdupq_n_s8(8));                            \
    } while (0)
#define UNPACK_Q4_1(wb, w0, w1)                                                                          \
    do {                                                                                                 \
        const uint8x16_t q = vld1q_u8((wb)->qs);                                                         \
        w0 = vreinterpretq_s8_u8(vandq_u8(q, vdupq_n_u8(0x0F)));                                        \
        w1 = vreinterpretq_s8_u8(vshrq_n_u8(q, 4));                                                      \
    } while (0)
#define UNPACK_Q8_0(wb, w0, w1)                                                                          \
    do {                                                                                                 \
        w0 = vld1q_s8((wb)->qs);                                                                         \
        w1 = vld1q_s8((wb)->qs + 16);                                                                    \
    } while (0)
#define NO_MIN(wb, xb) 0.0f
#define MIN_TERM(wb, xb) (h2f((wb)->m) * h2f((xb)->s))

GEMM_NEON(graft_gemm_q4_0_q8_0_neon, graft_block_q4_0, graft_block_q8_0, UNPACK_Q4_0, NO_MIN)
GEMM_NEON(graft_gemm_q8_0_q8_0_neon, graft_block_q8_0, graft_block_q8_0, UNPACK_Q8_0, NO_MIN)
GEMM_NEON(graft_gemm_q8_0_q8_1_neon, graft_block_q8_0, graft_block_q8_1, UNPACK_Q8_0, NO_MIN)
GEMM_NEON(graft_gemm_q4_1_q8_1_neon, graft_block_q4_1, graft_block_q8_1, UNPACK_Q4_1, MIN_TERM)
