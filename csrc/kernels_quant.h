/* graft: quantized matrix kernels: activation quantization, dequantization, and the products
 * Y = X·Wᵀ (forward, prefill and decode) and dX = dY·W (backward) for every weight format.
 *
 * Each weight format's dot product consumes one activation format (ggml's `vec_dot_type`):
 *   f32, f16, bf16      -> f32 activations (X rows are plain float)
 *   q4_0, q5_0, q8_0    -> q8_0 activations
 *   q4_1, q5_1          -> q8_1 activations
 *   q4_K, q5_K, q6_K    -> q8_K activations
 * Every quantized format also has a product with f32 activations (`graft_gemm_<wfmt>_f32_*`): the
 * weights dequantized on the fly, no activation rounding, for graft's fp32 numerics.
 * q8_0 weights also have a product with q8_1 activations (`graft_gemm_q8_0_q8_1_*`): a q8_1 block's
 * d and qs are the q8_0 block of the same values (its s goes unused), so an adapter's Q8_0 factors
 * read the activations a q4_1 or q5_1 base already quantized, with the bits of a q8_0 product.
 * A row of n elements of format T takes n / block_size(T) blocks; n is a multiple of the block size. */
#ifndef GRAFT_KERNELS_QUANT_H
#define GRAFT_KERNELS_QUANT_H

#include <stddef.h>
#include <stdint.h>
#include "blocks.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Y = X·Wᵀ: y[i*ldy + r] = dot(row r of W, row i of X) for r < nrows, i < m.
 * W: nrows rows of n elements, w_stride bytes apart. X: m rows in the activation format, x_stride
 * bytes apart. */
#define GRAFT_DECLARE_GEMM(wfmt, afmt, isa)                                                           \
    void graft_gemm_##wfmt##_##afmt##_##isa(int64_t n, const void *w, size_t w_stride, int64_t nrows, \
                                            const void *x, size_t x_stride, int64_t m, float *y,      \
                                            int64_t ldy);

/* dX += dY·W: dx[i*lddx + k] += sum_r dy[i*lddy + r] * W[r][k] for k < n, i < m, r < nrows.
 * W is dequantized on the fly, never materialised. */
#define GRAFT_DECLARE_GEMM_DX(wfmt, isa)                                                              \
    void graft_gemm_dx_##wfmt##_##isa(int64_t n, const void *w, size_t w_stride, int64_t nrows,       \
                                      const float *dy, int64_t lddy, int64_t m, float *dx,            \
                                      int64_t lddx);

/* One row of n elements of format wfmt -> n floats. */
#define GRAFT_DECLARE_DEQUANT(wfmt, isa) \
    void graft_dequantize_row_##wfmt##_##isa(const void *x, float *y, int64_t n);

/* One row of n floats -> activation format afmt (n a multiple of its block size). */
#define GRAFT_DECLARE_QUANTIZE(afmt, isa) \
    void graft_quantize_row_##afmt##_##isa(const float *x, void *y, int64_t n);

#define GRAFT_DECLARE_QUANT_ISA(isa)                                                                  \
    GRAFT_DECLARE_QUANTIZE(q8_0, isa)                                                                 \
    GRAFT_DECLARE_QUANTIZE(q8_1, isa)                                                                 \
    GRAFT_DECLARE_QUANTIZE(q8_K, isa)                                                                 \
    GRAFT_DECLARE_GEMM(f32, f32, isa)                                                                 \
    GRAFT_DECLARE_GEMM(f16, f32, isa)                                                                 \
    GRAFT_DECLARE_GEMM(bf16, f32, isa)                                                                \
    GRAFT_DECLARE_GEMM(q4_0, q8_0, isa)                                                               \
    GRAFT_DECLARE_GEMM(q4_1, q8_1, isa)                                                               \
    GRAFT_DECLARE_GEMM(q5_0, q8_0, isa)                                                               \
    GRAFT_DECLARE_GEMM(q5_1, q8_1, isa)                                                               \
    GRAFT_DECLARE_GEMM(q8_0, q8_0, isa)                                                               \
    GRAFT_DECLARE_GEMM(q8_0, q8_1, isa)                                                               \
    GRAFT_DECLARE_GEMM(q4_K, q8_K, isa)                                                               \
    GRAFT_DECLARE_GEMM(q5_K, q8_K, isa)                                                               \
    GRAFT_DECLARE_GEMM(q6_K, q8_K, isa)                                                               \
    GRAFT_DECLARE_GEMM(q4_0, f32, isa)                                                                \
    GRAFT_DECLARE_GEMM(q4_1, f32, isa)                                                                \
    GRAFT_DECLARE_GEMM(q5_0, f32, isa)                                                                \
    GRAFT_DECLARE_GEMM(q5_1, f32, isa)                                                                \
    GRAFT_DECLARE_GEMM(q8_0, f32, isa)                                                                \
    GRAFT_DECLARE_GEMM(q4_K, f32, isa)                                                                \
    GRAFT_DECLARE_GEMM(q5_K, f32, isa)                                                                \
    GRAFT_DECLARE_GEMM(q6_K, f32, isa)                                                                \
    GRAFT_DECLARE_GEMM_DX(f32, isa)                                                                   \
    GRAFT_DECLARE_GEMM_DX(f16, isa)                                                                   \
    GRAFT_DECLARE_GEMM_DX(bf16, isa)                                                                  \
    GRAFT_DECLARE_GEMM_DX(q4_0, isa)                                                                  \
    GRAFT_DECLARE_GEMM_DX(q4_1, isa)                                                                  \
    GRAFT_DECLARE_GEMM_DX(q5_0, isa)                                                                  \
    GRAFT_DECLARE_GEMM_DX(q5_1, isa)                                                                  \
    GRAFT_DECLARE_GEMM_DX(q8_0, isa)                                                                  \
    GRAFT_DECLARE_GEMM_DX(q4_K, isa)                                                                  \
    GRAFT_DECLARE_GEMM_DX(q5_K, isa)                                                                  \
    GRAFT_DECLARE_GEMM_DX(q6_K, isa)

/* Dequantization: a reference for every format; AVX2 variants (bit-exact with it: the same
 * multiply then add, no fused multiply-add) for the formats whose rows training dequantizes in bulk
 * (src/train/matmul.rs). */
GRAFT_DECLARE_DEQUANT(q4_0, avx2)
GRAFT_DECLARE_DEQUANT(q4_1, avx2)
GRAFT_DECLARE_DEQUANT(q8_0, avx2)
GRAFT_DECLARE_DEQUANT(f32, ref)
GRAFT_DECLARE_DEQUANT(f16, ref)
GRAFT_DECLARE_DEQUANT(bf16, ref)
GRAFT_DECLARE_DEQUANT(q4_0, ref)
GRAFT_DECLARE_DEQUANT(q4_1, ref)
GRAFT_DECLARE_DEQUANT(q5_0, ref)
GRAFT_DECLARE_DEQUANT(q5_1, ref)
GRAFT_DECLARE_DEQUANT(q8_0, ref)
GRAFT_DECLARE_DEQUANT(q4_K, ref)
GRAFT_DECLARE_DEQUANT(q5_K, ref)
GRAFT_DECLARE_DEQUANT(q6_K, ref)

GRAFT_DECLARE_QUANT_ISA(ref)

/* Software prefetch of the weight stream: the SIMD products Y = X·Wᵀ prefetch, while they work on
 * a weight row, the bytes `bytes` ahead of it (within the rows of the call); 0 turns it off. One
 * process-wide setting, made before products run (the runtime sets it once, from GRAFT_PREFETCH or
 * its default); it never changes a result. */
void graft_set_weight_prefetch(int64_t bytes);

/* Every ISA is declared on every target (so the bindings are the same everywhere); only the
 * target's own variants are compiled and referenced. */
GRAFT_DECLARE_QUANT_ISA(avx2)
GRAFT_DECLARE_QUANT_ISA(avx512)
GRAFT_DECLARE_QUANT_ISA(neon)

#ifdef __cplusplus
}
#endif
#endif
