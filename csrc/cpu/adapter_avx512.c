/* graft: AVX-512 entry points of the adapter kernels. For now each forwards to its AVX2 twin
 * (AVX-512 CPUs all have AVX2); a 512-bit variant has to beat it in benches/adapter_kernels.rs first. */
#include "kernels.h"

void graft_adapter_down_f32_avx512(const float *x, int64_t ldx, int64_t m, const float *a, int64_t lda,
                                   int64_t r, int64_t n, float *t, int64_t ldt) {
    graft_adapter_down_f32_avx2(x, ldx, m, a, lda, r, n, t, ldt);
}

void graft_adapter_up_f32_avx512(const float *t, int64_t ldt, int64_t m, int64_t r, const float *tscale,
                                 const float *bt, int64_t ldb, int64_t ncols, const float *oscale, float s,
                                 float *y, int64_t ldy) {
    graft_adapter_up_f32_avx2(t, ldt, m, r, tscale, bt, ldb, ncols, oscale, s, y, ldy);
}
