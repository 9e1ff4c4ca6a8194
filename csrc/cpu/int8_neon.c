/* graft: neon entry points of the 8-bit integer products (kernels_int8.h): the reference's.
 * Training uses these products only where the CPU multiplies bytes fast (AVX-512 VNNI:
 * src/kernels/int8.rs `Int8Kernels::fast`); elsewhere it keeps the f32 path, so no neon variant
 * is written yet. */
#include "kernels.h"

void graft_int8_quantize_rows_neon(const float *x, int64_t ldx, int64_t m, int64_t kb, int8_t *qa, int64_t lda,
                                  float *sa, int32_t *sums, int64_t lds) {
    graft_int8_quantize_rows_ref(x, ldx, m, kb, qa, lda, sa, sums, lds);
}
void graft_int8_pack_neon(const float *w, int64_t ld_n, int64_t ld_k, int64_t n, int64_t kb, uint8_t *pw, float *sw,
                         int64_t kb_ld) {
    graft_int8_pack_ref(w, ld_n, ld_k, n, kb, pw, sw, kb_ld);
}
void graft_int8_gemm_neon(const int8_t *qa, int64_t lda, const float *sa, const int32_t *sums, int64_t lds, int64_t m,
                         const uint8_t *pw, const float *sw, int64_t kb_ld, int64_t n, int64_t kb, float *c,
                         int64_t ldc, int32_t accumulate) {
    graft_int8_gemm_ref(qa, lda, sa, sums, lds, m, pw, sw, kb_ld, n, kb, c, ldc, accumulate);
}
