/* graft: scalar reference of the quantized kernels (see kernels_quant.h).
 * Dequantization follows ggml's reference operation by operation (bit-exact with gguf-py);
 * the dot products are ggml's integer block dots, so graft's numerics are llama.cpp's. */
#include "kernels.h"
#include "common.h"

int64_t graft_weight_prefetch = 0;

void graft_set_weight_prefetch(int64_t bytes) { graft_weight_prefetch = bytes > 0 ? bytes : 0; }

/* ---------------------------------------------------------------- dequantization */

void graft_dequantize_row_f32_ref(const void *vx, float *y, int64_t n) { memcpy(y, vx, (size_t)n * 4); }

void graft_dequantize_row_f16_ref(const void *vx, float *y, int64_t n) {
    const graft_f16 *x = vx;
    for (int64_t i = 0; i < n; i++) y[i] = graft_h2f(x[i]);
}

void graft_dequantize_row_bf16_ref(const void *vx, float *y, int64_t n) {
    const graft_bf16 *x = vx;
    for (int64_t i = 0; i < n; i++) y[i] = graft_bf2f(x[i]);
}

void graft_dequantize_row_q4_0_ref(const void *vx, float *y, int64_t n) {
    const graft_block_q4_0 *x = vx;
    for (int64_t b = 0; b < n / GRAFT_QK4_0; b++, y += GRAFT_QK4_0) {
        const float d = graft_h2f(x[b].d);
        for (int j = 0; j < 16; j++) {
            y[j] = ((x[b].qs[j] & 0x0F) - 8) * d;
            y[j + 16] = ((x[b].qs[j] >> 4) - 8) * d;
        }
    }
}

void graft_dequantize_row_q4_1_ref(const void *vx, float *y, int64_t n) {
    const graft_block_q4_1 *x = vx;
    for (int64_t b = 0; b < n / GRAFT_QK4_1; b++, y += GRAFT_QK4_1) {
        const float d = graft_h2f(x[b].d), m = graft_h2f(x[b].m);
        for (int j = 0; j < 16; j++) {
            y[j] = (x[b].qs[j] & 0x0F) * d + m;
            y[j + 16] = (x[b].qs[j] >> 4) * d + m;
        }
    }
}

void graft_dequantize_row_q5_0_ref(const void *vx, float *y, int64_t n) {
    const graft_block_q5_0 *x = vx;
    for (int64_t b = 0; b < n / GRAFT_QK5_0; b++, y += GRAFT_QK5_0) {
        const float d = graft_h2f(x[b].d);
        uint32_t qh;
        memcpy(&qh, x[b].qh, 4);
        for (int j = 0; j < 16; j++) {
            const uint8_t h0 = ((qh >> j) << 4) & 0x10, h1 = (qh >> (j + 12)) & 0x10;
            y[j] = (((x[b].qs[j] & 0x0F) | h0) - 16) * d;
            y[j + 16] = (((x[b].qs[j] >> 4) | h1) - 16) * d;
        }
    }
}

void graft_dequantize_row_q5_1_ref(const void *vx, float *y, int64_t n) {
    const graft_block_q5_1 *x = vx;
    for (int64_t b = 0; b < n / GRAFT_QK5_1; b++, y += GRAFT_QK5_1) {
        const float d = graft_h2f(x[b].d), m = graft_h2f(x[b].m);
        uint32_t qh;
        memcpy(&qh, x[b].qh, 4);
        for (int j = 0; j < 16; j++) {
            const uint8_t h0 = ((qh >> j) << 4) & 0x10, h1 = (qh >> (j + 12)) & 0x10;
            y[j] = ((x[b].qs[j] & 0x0F) | h0) * d + m;
            y[j + 16] = ((x[b].qs[j] >> 4) | h1) * d + m;
        }
    }
}

void graft_dequantize_row_q8_0_ref(const void *vx, float *y, int64_t n) {
    const graft_block_q8_0 *x = vx;
    for (int64_t b = 0; b < n / GRAFT_QK8_0; b++, y += GRAFT_QK8_0) {
        const float d = graft_h2f(x[b].d);
        for (int j = 0; j < 32; j++) y[j] = x[b].qs[j] * d;
    }
}

void graft_dequantize_row_q4_K_ref(const void *vx, float *y, int64_t n) {
    const graft_block_q4_K *x = vx;
    for (int64_t b = 0; b < n / GRAFT_QK_K; b++) {
        const uint8_t *q = x[b].qs;
        const float d = graft_h2f(x[b].d), min = graft_h2f(x[b].dmin);
        int is = 0;
        uint8_t sc, m;
        for (int j = 0; j < GRAFT_QK_K; j += 64) {
            graft_scale_min_k4(is + 0, x[b].scales, &sc, &m);
            const float d1 = d * sc, m1 = min * m;
            graft_scale_min_k4(is + 1, x[b].scales, &sc, &m);
            const float d2 = d * sc, m2 = min * m;
            for (int l = 0; l < 32; ++l) *y++ = d1 * (q[l] & 0xF) - m1;
            for (int l = 0; l < 32; ++l) *y++ = d2 * (q[l] >> 4) - m2;
            q += 32;
            is += 2;
        }
    }
}

void graft_dequantize_row_q5_K_ref(const void *vx, float *y, int64_t n) {
    const graft_block_q5_K *x = vx;
    for (int64_t b = 0; b < n / GRAFT_QK_K; b++) {
        const uint8_t *ql = x[b].qs, *qh = x[b].qh;
        const float d = graft_h2f(x[b].d), min = graft_h2f(x[b].dmin);
        int is = 0;
        uint8_t sc, m, u1 = 1, u2 = 2;
        for (int j = 0; j < GRAFT_QK_K; j += 64) {
            graft_scale_min_k4(is + 0, x[b].scales, &sc, &m);
            const float d1 = d * sc, m1 = min * m;
            graft_scale_min_k4(is + 1, x[b].scales, &sc, &m);
            const float d2 = d * sc, m2 = min * m;
            for (int l = 0; l < 32; ++l) *y++ = d1 * ((ql[l] & 0xF) + (qh[l] & u1 ? 16 : 0)) - m1;
            for (int l = 0; l < 32; ++l) *y++ = d2 * ((ql[l] >> 4) + (qh[l] & u2 ? 16 : 0)) - m2;
            ql += 32;
            is += 2;
            u1 <<= 2;
            u2 <<= 2;
        }
    }
}

void graft_dequantize_row_q6_K_ref(const void *vx, float *y, int64_t n) {
    const graft_block_q6_K *x = vx;
    for (int64_t b = 0; b < n / GRAFT_QK_K; b++) {
        const float d = graft_h2f(x[b].d);
        const uint8_t *ql = x[b].ql, *qh = x[b].qh;
        const int8_t *sc = x[b].scales;
        for (int k = 0; k < GRAFT_QK_K; k += 128) {
            for (int l = 0; l < 32; ++l) {
                const int is = l / 16;
                const int8_t q1 = (int8_t)((ql[l + 0] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
                const int8_t q2 = (int8_t)((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
                const int8_t q3 = (int8_t)((ql[l + 0] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
                const int8_t q4 = (int8_t)((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
                y[l + 0] = d * sc[is + 0] * q1;
                y[l + 32] = d * sc[is + 2] * q2;
                y[l + 64] = d * sc[is + 4] * q3;
                y[l + 96] = d * sc[is + 6] * q4;
            }
            y += 128;
            ql += 64;
            qh += 32;
            sc += 8;
        }
    }
}

/* ---------------------------------------------------------------- activation quantization */

void graft_quantize_row_q8_0_ref(const float *x, void *vy, int64_t n) {
    graft_block_q8_0 *y = vy;
    for (int64_t b = 0; b < n / GRAFT_QK8_0; b++, x += GRAFT_QK8_0) {
        float amax = 0.0f;
        for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(x[j]));
        const float d = amax / 127.0f, id = d ? 1.0f / d : 0.0f;
        y[b].d = graft_f2h(d);
        for (int j = 0; j < 32; j++) y[b].qs[j] = (int8_t)roundf(x[j] * id);
    }
}

void graft_quantize_row_q8_1_ref(const float *x, void *vy, int64_t n) {
    graft_block_q8_1 *y = vy;
    for (int64_t b = 0; b < n / GRAFT_QK8_1; b++, x += GRAFT_QK8_1) {
        float amax = 0.0f;
        for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(x[j]));
        const float d = amax / 127.0f, id = d ? 1.0f / d : 0.0f;
        y[b].d = graft_f2h(d);
        int sum = 0;
        for (int j = 0; j < 32; j++) {
            y[b].qs[j] = (int8_t)roundf(x[j] * id);
            sum += y[b].qs[j];
        }
        y[b].s = graft_f2h(sum * d);
    }
}

static inline int nearest_int(float fval) {
    float val = fval + 12582912.f;
    int i;
    memcpy(&i, &val, sizeof(int));
    return (i & 0x007fffff) - 0x00400000;
}

void graft_quantize_row_q8_K_ref(const float *x, void *vy, int64_t n) {
    graft_block_q8_K *y = vy;
    for (int64_t b = 0; b < n / GRAFT_QK_K; b++, x += GRAFT_QK_K) {
        float max = 0, amax = 0;
        for (int j = 0; j < GRAFT_QK_K; ++j) {
            const float ax = fabsf(x[j]);
            if (ax > amax) { amax = ax; max = x[j]; }
        }
        if (!amax) {
            y[b].d = 0;
            memset(y[b].qs, 0, GRAFT_QK_K);
            memset(y[b].bsums, 0, sizeof(y[b].bsums));
            continue;
        }
        const float iscale = -127.f / max;
        for (int j = 0; j < GRAFT_QK_K; ++j) {
            const int v = nearest_int(iscale * x[j]);
            y[b].qs[j] = (int8_t)(v < 127 ? v : 127);
        }
        for (int j = 0; j < GRAFT_QK_K / 16; ++j) {
            int sum = 0;
            for (int ii = 0; ii < 16; ++ii) sum += y[b].qs[j * 16 + ii];
            y[b].bsums[j] = (int16_t)sum;
        }
        y[b].d = 1 / iscale;
    }
}

/* ---------------------------------------------------------------- block dot products */

static float dot_f32(int64_t n, const void *vw, const void *vx) {
    const float *w = vw, *x = vx;
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += (double)(w[i] * x[i]);
    return (float)s;
}

static float dot_f16(int64_t n, const void *vw, const void *vx) {
    const graft_f16 *w = vw;
    const float *x = vx;
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += (double)(graft_h2f(w[i]) * x[i]);
    return (float)s;
}

static float dot_bf16(int64_t n, const void *vw, const void *vx) {
    const graft_bf16 *w = vw;
    const float *x = vx;
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += (double)(graft_bf2f(w[i]) * x[i]);
    return (float)s;
}

static float dot_q4_0(int64_t n, const void *vw, const void *vx) {
    const graft_block_q4_0 *w = vw;
    const graft_block_q8_0 *x = vx;
    float s = 0;
    for (int64_t b = 0; b < n / 32; b++) {
        int sumi = 0;
        for (int j = 0; j < 16; j++)
            sumi += ((w[b].qs[j] & 0x0F) - 8) * x[b].qs[j] + ((w[b].qs[j] >> 4) - 8) * x[b].qs[j + 16];
        s += sumi * graft_h2f(w[b].d) * graft_h2f(x[b].d);
    }
    return s;
}

static float dot_q4_1(int64_t n, const void *vw, const void *vx) {
    const graft_block_q4_1 *w = vw;
    const graft_block_q8_1 *x = vx;
    float s = 0;
    for (int64_t b = 0; b < n / 32; b++) {
        int sumi = 0;
        for (int j = 0; j < 16; j++) sumi += (w[b].qs[j] & 0x0F) * x[b].qs[j] + (w[b].qs[j] >> 4) * x[b].qs[j + 16];
        s += (graft_h2f(w[b].d) * graft_h2f(x[b].d)) * sumi + graft_h2f(w[b].m) * graft_h2f(x[b].s);
    }
    return s;
}

static float dot_q5_0(int64_t n, const void *vw, const void *vx) {
    const graft_block_q5_0 *w = vw;
    const graft_block_q8_0 *x = vx;
    float s = 0;
    for (int64_t b = 0; b < n / 32; b++) {
        uint32_t qh;
        memcpy(&qh, w[b].qh, 4);
        int sumi = 0;
        for (int j = 0; j < 16; j++) {
            const uint8_t h0 = ((qh >> j) << 4) & 0x10, h1 = (qh >> (j + 12)) & 0x10;
            sumi += (((w[b].qs[j] & 0x0F) | h0) - 16) * x[b].qs[j] + (((w[b].qs[j] >> 4) | h1) - 16) * x[b].qs[j + 16];
        }
        s += (graft_h2f(w[b].d) * graft_h2f(x[b].d)) * sumi;
    }
    return s;
}

static float dot_q5_1(int64_t n, const void *vw, const void *vx) {
    const graft_block_q5_1 *w = vw;
    const graft_block_q8_1 *x = vx;
    float s = 0;
    for (int64_t b = 0; b < n / 32; b++) {
        uint32_t qh;
        memcpy(&qh, w[b].qh, 4);
        int sumi = 0;
        for (int j = 0; j < 16; j++) {
            const uint8_t h0 = ((qh >> j) << 4) & 0x10, h1 = (qh >> (j + 12)) & 0x10;
            sumi += ((w[b].qs[j] & 0x0F) | h0) * x[b].qs[j] + ((w[b].qs[j] >> 4) | h1) * x[b].qs[j + 16];
        }
        s += (graft_h2f(w[b].d) * graft_h2f(x[b].d)) * sumi + graft_h2f(w[b].m) * graft_h2f(x[b].s);
    }
    return s;
}

/* Q8_0 weights against activation blocks of xsize bytes that start with their f16 scale d and hold
 * their 32 int8 quants at qoff: Q8_0's layout, and Q8_1's (whose s goes unused). */
static float dot_q8_0_blocks(int64_t n, const void *vw, const void *vx, size_t xsize, size_t qoff) {
    const graft_block_q8_0 *w = vw;
    float s = 0;
    for (int64_t b = 0; b < n / 32; b++) {
        const unsigned char *xb = (const unsigned char *)vx + (size_t)b * xsize;
        graft_f16 xd;
        memcpy(&xd, xb, sizeof xd);
        const int8_t *xq = (const int8_t *)(xb + qoff);
        int sumi = 0;
        for (int j = 0; j < 32; j++) sumi += w[b].qs[j] * xq[j];
        s += sumi * (graft_h2f(w[b].d) * graft_h2f(xd));
    }
    return s;
}

static float dot_q8_0(int64_t n, const void *vw, const void *vx) {
    return dot_q8_0_blocks(n, vw, vx, sizeof(graft_block_q8_0), offsetof(graft_block_q8_0, qs));
}

static float dot_q8_0_q8_1(int64_t n, const void *vw, const void *vx) {
    return dot_q8_0_blocks(n, vw, vx, sizeof(graft_block_q8_1), offsetof(graft_block_q8_1, qs));
}

/* K-quants: integer sums per sub-block, scaled by the sub-block scales; the min term uses the
 * activation block's 16-element sums. */
static float dot_q4_K(int64_t n, const void *vw, const void *vx) {
    const graft_block_q4_K *w = vw;
    const graft_block_q8_K *x = vx;
    float s = 0;
    for (int64_t b = 0; b < n / GRAFT_QK_K; b++) {
        int sumi = 0, summ = 0;
        for (int j = 0; j < 8; j++) {
            uint8_t sc, m;
            graft_scale_min_k4(j, w[b].scales, &sc, &m);
            const uint8_t *q = w[b].qs + (j / 2) * 32;
            const int8_t *a = x[b].qs + j * 32;
            int si = 0;
            for (int l = 0; l < 32; l++) si += ((j & 1) ? (q[l] >> 4) : (q[l] & 0xF)) * a[l];
            sumi += sc * si;
            summ += m * (x[b].bsums[2 * j] + x[b].bsums[2 * j + 1]);
        }
        s += graft_h2f(w[b].d) * x[b].d * sumi - graft_h2f(w[b].dmin) * x[b].d * summ;
    }
    return s;
}

static float dot_q5_K(int64_t n, const void *vw, const void *vx) {
    const graft_block_q5_K *w = vw;
    const graft_block_q8_K *x = vx;
    float s = 0;
    for (int64_t b = 0; b < n / GRAFT_QK_K; b++) {
        int sumi = 0, summ = 0;
        for (int j = 0; j < 8; j++) {
            uint8_t sc, m;
            graft_scale_min_k4(j, w[b].scales, &sc, &m);
            const uint8_t *q = w[b].qs + (j / 2) * 32;
            const int8_t *a = x[b].qs + j * 32;
            int si = 0;
            for (int l = 0; l < 32; l++) {
                const int lo = (j & 1) ? (q[l] >> 4) : (q[l] & 0xF);
                const int hi = (w[b].qh[l] >> j) & 1;
                si += (lo + 16 * hi) * a[l];
            }
            sumi += sc * si;
            summ += m * (x[b].bsums[2 * j] + x[b].bsums[2 * j + 1]);
        }
        s += graft_h2f(w[b].d) * x[b].d * sumi - graft_h2f(w[b].dmin) * x[b].d * summ;
    }
    return s;
}

static float dot_q6_K(int64_t n, const void *vw, const void *vx) {
    const graft_block_q6_K *w = vw;
    const graft_block_q8_K *x = vx;
    float s = 0;
    for (int64_t b = 0; b < n / GRAFT_QK_K; b++) {
        int sumi = 0;
        for (int half = 0; half < 2; half++) {
            const uint8_t *ql = w[b].ql + 64 * half, *qh = w[b].qh + 32 * half;
            const int8_t *sc = w[b].scales + 8 * half;
            const int8_t *a = x[b].qs + 128 * half;
            for (int l = 0; l < 32; l++) {
                const int is = l / 16;
                const int q1 = ((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
                const int q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
                const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
                const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
                sumi += sc[is + 0] * q1 * a[l] + sc[is + 2] * q2 * a[l + 32] + sc[is + 4] * q3 * a[l + 64] +
                        sc[is + 6] * q4 * a[l + 96];
            }
        }
        s += graft_h2f(w[b].d) * x[b].d * sumi;
    }
    return s;
}

/* ---------------------------------------------------------------- products */

#define GRAFT_GEMM_REF_DOT(wfmt, afmt, dot)                                                             \
    void graft_gemm_##wfmt##_##afmt##_ref(int64_t n, const void *w, size_t w_stride, int64_t nrows,     \
                                          const void *x, size_t x_stride, int64_t m, float *y,          \
                                          int64_t ldy) {                                                \
        for (int64_t i = 0; i < m; i++)                                                                 \
            for (int64_t r = 0; r < nrows; r++)                                                         \
                y[i * ldy + r] = dot(n, (const char *)w + r * w_stride, (const char *)x + i * x_stride); \
    }
#define GRAFT_GEMM_REF(wfmt, afmt) GRAFT_GEMM_REF_DOT(wfmt, afmt, dot_##wfmt)

GRAFT_GEMM_REF(f32, f32)
GRAFT_GEMM_REF(f16, f32)
GRAFT_GEMM_REF(bf16, f32)
GRAFT_GEMM_REF(q4_0, q8_0)
GRAFT_GEMM_REF(q4_1, q8_1)
GRAFT_GEMM_REF(q5_0, q8_0)
GRAFT_GEMM_REF(q5_1, q8_1)
GRAFT_GEMM_REF(q8_0, q8_0)
GRAFT_GEMM_REF_DOT(q8_0, q8_1, dot_q8_0_q8_1)
GRAFT_GEMM_REF(q4_K, q8_K)
GRAFT_GEMM_REF(q5_K, q8_K)
GRAFT_GEMM_REF(q6_K, q8_K)

/* dX += dY·W, one weight block dequantized at a time (no buffer beyond one block). */
#define GRAFT_GEMM_DX_REF(wfmt, bs, ts)                                                                  \
    void graft_gemm_dx_##wfmt##_ref(int64_t n, const void *w, size_t w_stride, int64_t nrows,           \
                                    const float *dy, int64_t lddy, int64_t m, float *dx, int64_t lddx) { \
        float buf[256];                                                                                  \
        for (int64_t r = 0; r < nrows; r++) {                                                            \
            const char *row = (const char *)w + r * w_stride;                                           \
            for (int64_t b = 0; b < n / (bs); b++) {                                                     \
                graft_dequantize_row_##wfmt##_ref(row + b * (ts), buf, (bs));                            \
                for (int64_t i = 0; i < m; i++) {                                                        \
                    const float a = dy[i * lddy + r];                                                    \
                    float *o = dx + i * lddx + b * (bs);                                                 \
                    for (int k = 0; k < (bs); k++) o[k] += a * buf[k];                                   \
                }                                                                                        \
            }                                                                                            \
        }                                                                                                \
    }

/* Dense formats are processed in chunks of 256 elements (the tail handled by the last chunk). */
#define GRAFT_GEMM_DX_DENSE_REF(wfmt, esize)                                                             \
    void graft_gemm_dx_##wfmt##_ref(int64_t n, const void *w, size_t w_stride, int64_t nrows,           \
                                    const float *dy, int64_t lddy, int64_t m, float *dx, int64_t lddx) { \
        float buf[256];                                                                                  \
        for (int64_t r = 0; r < nrows; r++) {                                                            \
            const char *row = (const char *)w + r * w_stride;                                           \
            for (int64_t k0 = 0; k0 < n; k0 += 256) {                                                    \
                const int64_t len = n - k0 < 256 ? n - k0 : 256;                                         \
                graft_dequantize_row_##wfmt##_ref(row + k0 * (esize), buf, len);                         \
                for (int64_t i = 0; i < m; i++) {                                                        \
                    const float a = dy[i * lddy + r];                                                    \
                    float *o = dx + i * lddx + k0;                                                       \
                    for (int64_t k = 0; k < len; k++) o[k] += a * buf[k];                                \
                }                                                                                        \
            }                                                                                            \
        }                                                                                                \
    }

GRAFT_GEMM_DX_DENSE_REF(f32, 4)
GRAFT_GEMM_DX_DENSE_REF(f16, 2)
GRAFT_GEMM_DX_DENSE_REF(bf16, 2)
GRAFT_GEMM_DX_REF(q4_0, 32, sizeof(graft_block_q4_0))
GRAFT_GEMM_DX_REF(q4_1, 32, sizeof(graft_block_q4_1))
GRAFT_GEMM_DX_REF(q5_0, 32, sizeof(graft_block_q5_0))
GRAFT_GEMM_DX_REF(q5_1, 32, sizeof(graft_block_q5_1))
GRAFT_GEMM_DX_REF(q8_0, 32, sizeof(graft_block_q8_0))
GRAFT_GEMM_DX_REF(q4_K, 256, sizeof(graft_block_q4_K))
GRAFT_GEMM_DX_REF(q5_K, 256, sizeof(graft_block_q5_K))
GRAFT_GEMM_DX_REF(q6_K, 256, sizeof(graft_block_q6_K))

/* Quantized weights x f32 activations (fp32 numerics): one weight block dequantized at a time, the
 * dot accumulated in double. */
#define GRAFT_GEMM_F32_REF(wfmt, bs, ts)                                                                 \
    void graft_gemm_##wfmt##_f32_ref(int64_t n, const void *w, size_t w_stride, int64_t nrows,          \
                                     const void *x, size_t x_stride, int64_t m, float *y, int64_t ldy) { \
        float buf[256];                                                                                  \
        for (int64_t i = 0; i < m; i++) {                                                                \
            const float *xi = (const float *)((const char *)x + i * x_stride);                           \
            for (int64_t r = 0; r < nrows; r++) {                                                        \
                const char *row = (const char *)w + r * w_stride;                                       \
                double s = 0;                                                                            \
                for (int64_t b = 0; b < n / (bs); b++) {                                                 \
                    graft_dequantize_row_##wfmt##_ref(row + b * (ts), buf, (bs));                        \
                    for (int k = 0; k < (bs); k++) s += (double)(buf[k] * xi[b * (bs) + k]);            \
                }                                                                                        \
                y[i * ldy + r] = (float)s;                                                               \
            }                                                                                            \
        }                                                                                                \
    }

GRAFT_GEMM_F32_REF(q4_0, 32, sizeof(graft_block_q4_0))
GRAFT_GEMM_F32_REF(q4_1, 32, sizeof(graft_block_q4_1))
GRAFT_GEMM_F32_REF(q5_0, 32, sizeof(graft_block_q5_0))
GRAFT_GEMM_F32_REF(q5_1, 32, sizeof(graft_block_q5_1))
GRAFT_GEMM_F32_REF(q8_0, 32, sizeof(graft_block_q8_0))
GRAFT_GEMM_F32_REF(q4_K, 256, sizeof(graft_block_q4_K))
GRAFT_GEMM_F32_REF(q5_K, 256, sizeof(graft_block_q5_K))
GRAFT_GEMM_F32_REF(q6_K, 256, sizeof(graft_block_q6_K))
