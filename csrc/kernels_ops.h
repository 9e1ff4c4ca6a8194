/* graft: element-wise and attention kernels (RMSNorm, RoPE, softmax, SiLU-gate, f16 helpers). */
#ifndef GRAFT_KERNELS_OPS_H
#define GRAFT_KERNELS_OPS_H

#include <stddef.h>
#include <stdint.h>
#include "blocks.h"

#ifdef __cplusplus
extern "C" {
#endif

#define GRAFT_DECLARE_OPS(isa)                                                                       \
    /* y = x / sqrt(mean(x^2) + eps) * w  (w may be NULL: no weight). The sum is kept in double. */  \
    void graft_rmsnorm_f32_##isa(const float *x, const float *w, float *y, int64_t n, float eps);     \
    /* y = silu(gate) * up, silu(g) = g / (1 + exp(-g)). y may alias gate or up. */                   \
    void graft_silu_gate_f32_##isa(const float *gate, const float *up, float *y, int64_t n);         \
    /* In place: x = exp(x - max(x)) / sum. */                                                        \
    void graft_softmax_f32_##isa(float *x, int64_t n);                                                \
    /* sum_i a[i] * b[i], both f16, accumulated in f32. */                                            \
    float graft_dot_f16_##isa(const graft_f16 *a, const graft_f16 *b, int64_t n);                     \
    /* y[i] += a * x[i], x in f16. */                                                                 \
    void graft_axpy_f16_##isa(float a, const graft_f16 *x, float *y, int64_t n);                      \
    /* Round-to-nearest-even conversions between f32 and IEEE f16. */                                 \
    void graft_f32_to_f16_##isa(const float *x, graft_f16 *y, int64_t n);                             \
    void graft_f16_to_f32_##isa(const graft_f16 *x, float *y, int64_t n);                            \
    /* RoPE in place on n_heads vectors of head_dim floats at position pos, rotating the first n_rot  \
     * dimensions. mode 0: pairs (2i, 2i+1), as llama.cpp applies it for `llama`; mode 2: pairs       \
     * (i, i + n_rot/2) (NeoX). theta_i = pos * base^(-2i/n_rot), computed by repeated multiplication \
     * as ggml does. inverse != 0 rotates by -theta (the backward pass). */                           \
    void graft_rope_f32_##isa(float *x, int64_t n_heads, int64_t head_dim, int64_t n_rot,            \
                              int64_t pos, float freq_base, int32_t mode, int32_t inverse);

GRAFT_DECLARE_OPS(ref)
/* Every ISA is declared on every target (so the bindings are the same everywhere); only the
 * target's own variants are compiled and referenced. */
GRAFT_DECLARE_OPS(avx2)
GRAFT_DECLARE_OPS(avx512)
GRAFT_DECLARE_OPS(neon)

#ifdef __cplusplus
}
#endif
#endif
