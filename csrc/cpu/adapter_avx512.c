/* graft: AVX-512 entry points of the adapter kernels: each forwards to its AVX2 twin (AVX-512 CPUs
 * all have AVX2). At decode both products stream A or BT once from L2 or L3, and the AVX2 kernels
 * already run at that bandwidth: on the development VM's AMD EPYC core (which has AVX-512), a
 * 512-bit decode down-projection (1×4 tiles, two accumulator sets) measured within 5% of the AVX2
 * one (112 vs 107 GB/s at r = 256, n = 576; 87 vs 83 GB/s at n = 1536). A 512-bit variant enters
 * here when it beats that in benches/adapter_kernels.rs. */
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

/* The Q8_0 up-projection: AVX2's too. Its decode is bound by converting int8 quants to f32; a 512-bit
 * decode (16 quants per vpmovsxbd + vcvtdq2ps, four blocks per pass over j) measured the same as the
 * AVX2 one on the development VM's EPYC core (25.9 vs 25.4 GB/s of Q8_0 at r = 256, n = 1536; 26.1 vs
 * 26.3 at n = 576), which runs 512-bit operations as two 256-bit halves. */
void graft_adapter_up_q8_0_avx512(const float *t, int64_t ldt, int64_t m, int64_t r, const float *tscale,
                                  const void *bt, size_t bt_stride, int64_t c0, int64_t ncols, const float *oscale,
                                  float s, float *y, int64_t ldy) {
    graft_adapter_up_q8_0_avx2(t, ldt, m, r, tscale, bt, bt_stride, c0, ncols, oscale, s, y, ldy);
}
