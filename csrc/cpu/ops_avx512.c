/* graft: AVX-512 entry points of the element-wise and attention kernels.
 * These ops touch a few KB per call (d = 576 for the default model) and are far from any bound that
 * 512-bit vectors would lift, so each forwards to its AVX2 twin (AVX-512 CPUs all have AVX2). The
 * AVX-512 work lives in the quantized products (quant_avx512.c), where it pays. */
#include "kernels.h"

void graft_rmsnorm_f32_avx512(const float *x, const float *w, float *y, int64_t n, float eps) {
    graft_rmsnorm_f32_avx2(x, w, y, n, eps);
}
void graft_silu_gate_f32_avx512(const float *gate, const float *up, float *y, int64_t n) {
    graft_silu_gate_f32_avx2(gate, up, y, n);
}
void graft_softmax_f32_avx512(float *x, int64_t n) { graft_softmax_f32_avx2(x, n); }
float graft_dot_f16_avx512(const graft_f16 *a, const graft_f16 *b, int64_t n) { return graft_dot_f16_avx2(a, b, n); }
void graft_axpy_f16_avx512(float a, const graft_f16 *x, float *y, int64_t n) { graft_axpy_f16_avx2(a, x, y, n); }
void graft_f32_to_f16_avx512(const float *x, graft_f16 *y, int64_t n) { graft_f32_to_f16_avx2(x, y, n); }
void graft_f16_to_f32_avx512(const graft_f16 *x, float *y, int64_t n) { graft_f16_to_f32_avx2(x, y, n); }
void graft_rope_f32_avx512(float *x, int64_t n_heads, int64_t head_dim, int64_t n_rot, int64_t pos,
                           float freq_base, int32_t mode, int32_t inverse) {
    graft_rope_f32_avx2(x, n_heads, head_dim, n_rot, pos, freq_base, mode, inverse);
}
