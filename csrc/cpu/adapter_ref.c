/* graft: scalar reference of the adapter kernels (see kernels_adapter.h): plain sequential f32 sums,
 * in the order the header states. (Whether a compiler contracts a*b + c into an FMA here is left to
 * it: GCC in -std=c11 mode does not; the tests' tolerance covers either.) */
#include "kernels.h"
#include "common.h"

void graft_adapter_down_f32_ref(const float *x, int64_t ldx, int64_t m, const float *a, int64_t lda,
                                int64_t r, int64_t n, float *t, int64_t ldt) {
    for (int64_t i = 0; i < m; i++) {
        for (int64_t j = 0; j < r; j++) {
            float acc = 0.0f;
            for (int64_t k = 0; k < n; k++) acc += x[i * ldx + k] * a[j * lda + k];
            t[i * ldt + j] = acc;
        }
    }
}

void graft_adapter_up_f32_ref(const float *t, int64_t ldt, int64_t m, int64_t r, const float *tscale,
                              const float *bt, int64_t ldb, int64_t ncols, const float *oscale, float s,
                              float *y, int64_t ldy) {
    if (r <= 0) return;
    for (int64_t i = 0; i < m; i++) {
        for (int64_t c = 0; c < ncols; c++) {
            float acc = 0.0f;
            for (int64_t j = 0; j < r; j++) {
                const float u = tscale ? tscale[j] * t[i * ldt + j] : t[i * ldt + j];
                acc += u * bt[j * ldb + c];
            }
            y[i * ldy + c] += (oscale ? s * oscale[c] : s) * acc;
        }
    }
}

void graft_adapter_up_q8_0_ref(const float *t, int64_t ldt, int64_t m, int64_t r, const float *tscale,
                               const void *bt, size_t bt_stride, int64_t c0, int64_t ncols, const float *oscale,
                               float s, float *y, int64_t ldy) {
    if (r <= 0) return;
    const size_t bsz = sizeof(graft_block_q8_0), qoff = offsetof(graft_block_q8_0, qs);
    for (int64_t i = 0; i < m; i++) {
        for (int64_t c = 0; c < ncols; c++) {
            const int64_t col = c0 + c;
            /* Column col of row j: quant col % 32 of block col / 32. */
            const unsigned char *blk = (const unsigned char *)bt + (size_t)(col / GRAFT_QK8_0) * bsz;
            const int64_t k = col % GRAFT_QK8_0;
            float acc = 0.0f;
            for (int64_t j = 0; j < r; j++, blk += bt_stride) {
                graft_f16 d;
                memcpy(&d, blk, sizeof d);
                const float w = graft_h2f(d) * (float)(int8_t)blk[qoff + (size_t)k];
                const float u = tscale ? tscale[j] * t[i * ldt + j] : t[i * ldt + j];
                acc += u * w;
            }
            y[i * ldy + c] += (oscale ? s * oscale[c] : s) * acc;
        }
    }
}
