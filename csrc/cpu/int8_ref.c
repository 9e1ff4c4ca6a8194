/* graft: scalar reference of the 8-bit integer products (kernels_int8.h). */
#include <math.h>
#include "kernels.h"

/* One block of 32 values, element e at x[e*stride]: the scale, and q[e] in [-127, 127]. */
static float quantize_block(const float *x, int64_t stride, int8_t *q) {
    float amax = 0.0f;
    for (int e = 0; e < 32; e++) {
        float a = fabsf(x[e * stride]);
        amax = a > amax ? a : amax;
    }
    if (amax == 0.0f) {
        for (int e = 0; e < 32; e++) q[e] = 0;
        return 0.0f;
    }
    const float id = 127.0f / amax;
    for (int e = 0; e < 32; e++) q[e] = (int8_t)nearbyintf(x[e * stride] * id);
    return amax / 127.0f;
}

void graft_int8_quantize_rows_ref(const float *x, int64_t ldx, int64_t m, int64_t kb, int8_t *qa, int64_t lda,
                                  float *sa, int32_t *sums, int64_t lds) {
    for (int64_t i = 0; i < m; i++) {
        for (int64_t b = 0; b < kb; b++) {
            int8_t *q = qa + i * lda + b * 32;
            sa[i * lds + b] = quantize_block(x + i * ldx + b * 32, 1, q);
            int32_t s = 0;
            for (int e = 0; e < 32; e++) s += q[e];
            sums[i * lds + b] = s;
        }
    }
}

void graft_int8_pack_ref(const float *w, int64_t ld_n, int64_t ld_k, int64_t n, int64_t kb, uint8_t *pw, float *sw,
                         int64_t kb_ld) {
    const int64_t groups = (n + 15) / 16;
    for (int64_t g = 0; g < groups; g++) {
        for (int64_t b = 0; b < kb; b++) {
            uint8_t *p = pw + (g * kb_ld + b) * 512;
            float *s = sw + (g * kb_ld + b) * 16;
            for (int l = 0; l < 16; l++) {
                const int64_t j = g * 16 + l;
                int8_t q[32] = {0};
                s[l] = j < n ? quantize_block(w + j * ld_n + b * 32 * ld_k, ld_k, q) : 0.0f;
                for (int e = 0; e < 32; e++) p[(e / 4) * 64 + l * 4 + (e % 4)] = (uint8_t)(q[e] + 128);
            }
        }
    }
}

void graft_int8_gemm_ref(const int8_t *qa, int64_t lda, const float *sa, const int32_t *sums, int64_t lds, int64_t m,
                         const uint8_t *pw, const float *sw, int64_t kb_ld, int64_t n, int64_t kb, float *c,
                         int64_t ldc, int32_t accumulate) {
    for (int64_t i = 0; i < m; i++) {
        for (int64_t j = 0; j < n; j++) {
            const int64_t g = j / 16, l = j % 16;
            float acc = 0.0f;
            for (int64_t b = 0; b < kb; b++) {
                const uint8_t *p = pw + (g * kb_ld + b) * 512;
                const int8_t *q = qa + i * lda + b * 32;
                int32_t dot = 0;
                for (int e = 0; e < 32; e++) dot += (int32_t)p[(e / 4) * 64 + l * 4 + (e % 4)] * q[e];
                dot -= 128 * sums[i * lds + b]; /* the +128 of the stored weights */
                acc += (float)dot * (sa[i * lds + b] * sw[(g * kb_ld + b) * 16 + l]);
            }
            if (accumulate) c[i * ldc + j] += acc;
            else c[i * ldc + j] = acc;
        }
    }
}
