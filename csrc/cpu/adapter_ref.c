/* graft: scalar reference of the adapter kernels (see kernels_adapter.h): plain sequential f32 sums,
 * in the order the header states. (Whether a compiler contracts a*b + c into an FMA here is left to
 * it: GCC in -std=c11 mode does not; the tests' tolerance covers either.) */
#include "kernels.h"

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
