/* graft: NEON (dot-product extension) variants of the 8-bit integer products (kernels_int8.h).
 *
 * `sdot` multiplies signed bytes, so each packed weight byte (qw + 128) is flipped back to qw by
 * an XOR with 0x80 as it is loaded, and the block sums need no correction. A 4-row × 16-column tile
 * keeps 16 int32 accumulators of 4 lanes; per block of 32 along K, 8 steps of 4 loads and 16 `sdot`
 * (one 16-byte load = 4 columns × 4 bytes), then one convert and fused multiply-add by the scales.
 * Training uses these products by default only where `Int8Kernels::fast` says they beat f32, which
 * has not been measured on an AArch64 machine yet (`--train-numerics int8` selects them). Packing
 * is the reference's (once per weight). */
#include <arm_neon.h>
#include "kernels.h"

/* One block of 32 floats -> 32 int8 (as the reference: x * (127/amax), rounded to nearest even). */
static inline float quantize_block32(const float *x, int8_t *q, int32_t *sum) {
    float32x4_t v[8];
    float32x4_t m = vdupq_n_f32(0.0f);
    for (int i = 0; i < 8; i++) {
        v[i] = vld1q_f32(x + 4 * i);
        m = vmaxq_f32(m, vabsq_f32(v[i]));
    }
    const float amax = vmaxvq_f32(m);
    if (amax == 0.0f) {
        vst1q_s8(q, vdupq_n_s8(0));
        vst1q_s8(q + 16, vdupq_n_s8(0));
        *sum = 0;
        return 0.0f;
    }
    const float32x4_t id = vdupq_n_f32(127.0f / amax);
    int32x4_t s = vdupq_n_s32(0);
    int32x4_t iv[8];
    for (int i = 0; i < 8; i++) {
        iv[i] = vcvtnq_s32_f32(vmulq_f32(v[i], id)); /* round to nearest, ties to even */
        s = vaddq_s32(s, iv[i]);
    }
    for (int h = 0; h < 2; h++) {
        const int16x8_t a = vcombine_s16(vmovn_s32(iv[4 * h + 0]), vmovn_s32(iv[4 * h + 1]));
        const int16x8_t b = vcombine_s16(vmovn_s32(iv[4 * h + 2]), vmovn_s32(iv[4 * h + 3]));
        vst1q_s8(q + 16 * h, vcombine_s8(vmovn_s16(a), vmovn_s16(b)));
    }
    *sum = vaddvq_s32(s);
    return amax / 127.0f;
}

void graft_int8_quantize_rows_neon(const float *x, int64_t ldx, int64_t m, int64_t kb, int8_t *qa, int64_t lda,
                                   float *sa, int32_t *sums, int64_t lds) {
    for (int64_t i = 0; i < m; i++)
        for (int64_t b = 0; b < kb; b++)
            sa[i * lds + b] = quantize_block32(x + i * ldx + b * 32, qa + i * lda + b * 32, sums + i * lds + b);
}

void graft_int8_pack_neon(const float *w, int64_t ld_n, int64_t ld_k, int64_t n, int64_t kb, uint8_t *pw, float *sw,
                          int64_t kb_ld) {
    graft_int8_pack_ref(w, ld_n, ld_k, n, kb, pw, sw, kb_ld);
}

/* R rows (1..4) × one group of 16 columns; columns past `live` (1..16) are not stored. */
static inline __attribute__((always_inline)) void tile(const int R, const int8_t *qa, int64_t lda, const float *sa,
                                                       int64_t lds, const uint8_t *pw, const float *sw, int64_t kb,
                                                       float *c, int64_t ldc, int32_t accumulate, int64_t live) {
    float32x4_t f[4][4];
    for (int r = 0; r < R; r++)
        for (int g = 0; g < 4; g++) f[r][g] = vdupq_n_f32(0.0f);
    const uint8x16_t flip = vdupq_n_u8(0x80);
    for (int64_t b = 0; b < kb; b++) {
        int32x4_t acc[4][4];
        for (int r = 0; r < R; r++)
            for (int g = 0; g < 4; g++) acc[r][g] = vdupq_n_s32(0);
        const uint8_t *p = pw + b * 512;
        for (int q = 0; q < 8; q++) {
            int8x16_t wv[4];
            for (int g = 0; g < 4; g++) wv[g] = vreinterpretq_s8_u8(veorq_u8(vld1q_u8(p + q * 64 + g * 16), flip));
            for (int r = 0; r < R; r++) {
                int32_t a4;
                __builtin_memcpy(&a4, qa + r * lda + b * 32 + q * 4, 4);
                const int8x16_t av = vreinterpretq_s8_s32(vdupq_n_s32(a4));
                for (int g = 0; g < 4; g++) acc[r][g] = vdotq_s32(acc[r][g], wv[g], av);
            }
        }
        float32x4_t ws[4];
        for (int g = 0; g < 4; g++) ws[g] = vld1q_f32(sw + b * 16 + 4 * g);
        for (int r = 0; r < R; r++) {
            const float s = sa[r * lds + b];
            for (int g = 0; g < 4; g++) f[r][g] = vfmaq_f32(f[r][g], vcvtq_f32_s32(acc[r][g]), vmulq_n_f32(ws[g], s));
        }
    }
    for (int r = 0; r < R; r++) {
        float out[16];
        for (int g = 0; g < 4; g++) vst1q_f32(out + 4 * g, f[r][g]);
        float *cp = c + r * ldc;
        for (int64_t j = 0; j < live; j++) cp[j] = accumulate ? cp[j] + out[j] : out[j];
    }
}

void graft_int8_gemm_neon(const int8_t *qa, int64_t lda, const float *sa, const int32_t *sums, int64_t lds, int64_t m,
                          const uint8_t *pw, const float *sw, int64_t kb_ld, int64_t n, int64_t kb, float *c,
                          int64_t ldc, int32_t accumulate) {
    (void)sums; /* sdot takes signed weights: no correction for the stored +128 */
    for (int64_t j = 0; j < n; j += 16) {
        const int64_t live = n - j < 16 ? n - j : 16;
        const uint8_t *p = pw + (j / 16) * kb_ld * 512;
        const float *s = sw + (j / 16) * kb_ld * 16;
        int64_t i = 0;
        for (; i + 4 <= m; i += 4) tile(4, qa + i * lda, lda, sa + i * lds, lds, p, s, kb, c + i * ldc + j, ldc, accumulate, live);
        for (; i < m; i++) tile(1, qa + i * lda, lda, sa + i * lds, lds, p, s, kb, c + i * ldc + j, ldc, accumulate, live);
    }
}
