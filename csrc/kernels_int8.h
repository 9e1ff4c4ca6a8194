/* graft: 8-bit integer products for training's frozen base (src/train/packed.rs): the forward
 * Y = X·Wᵀ and the backward dX += dY·W with X, dY and W all rounded to int8 in blocks of 32 along
 * the summed dimension (the scheme of Q8_0, and of SwitchBack's int8 training of linear layers), so
 * one VNNI instruction does 64 multiply-adds where an f32 FMA does 16.
 *
 * Quantization of a vector block of 32 values x: s = max|x| / 127, q = round-to-nearest-even(x *
 * (127 / max|x|)), every q in [-127, 127]; an all-zero block has s = 0 and q = 0.
 *
 * Activations A (m rows of K = kb * 32 values): qa[i*lda + k] int8, scales sa[i*lds + b] and block
 * sums sums[i*lds + b] = sum of qa[i][32b .. 32b+31] (int32), for b < kb.
 *
 * Packed weights W (n columns, each a K-vector, K = kb*32), for 4-byte dot products: columns in
 * groups of 16; group g's block b is 512 bytes at pw + (g*kb_ld + b)*512 whose byte
 * [q*64 + l*4 + e] = qw[16g + l][32b + 4q + e] + 128 (as uint8), q < 8, l < 16, e < 4, and its 16
 * scales are sw[(g*kb_ld + b)*16 + l]. kb_ld >= kb is the number of blocks a group holds in storage:
 * a call may pack or multiply a range of blocks by offsetting pw by b0*512 and sw by b0*16. Columns
 * of the last group past n are zero with scale 0.
 *
 * The product, for i < m, j < n:
 *   acc = 0; for b < kb: acc += (float)(sum_{k in b} qa[i][k]*qw[j][k]) * (sa[i][b] * sw[j][b])
 *   c[i*ldc + j] = acc            (accumulate == 0)
 *   c[i*ldc + j] += acc           (accumulate != 0)
 * The integer block sums are exact; variants may fuse the multiply-add (one rounding fewer). */
#ifndef GRAFT_KERNELS_INT8_H
#define GRAFT_KERNELS_INT8_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define GRAFT_DECLARE_INT8(isa)                                                                       \
    /* Quantizes m rows of kb*32 floats (x[i*ldx + k]) into qa/sa/sums as above. */                   \
    void graft_int8_quantize_rows_##isa(const float *x, int64_t ldx, int64_t m, int64_t kb,          \
                                        int8_t *qa, int64_t lda, float *sa, int32_t *sums,            \
                                        int64_t lds);                                                 \
    /* Packs blocks 0..kb-1 of n columns of W, element (j, k) at w[j*ld_n + k*ld_k] (so W or its      \
     * transpose), into pw/sw as above (groups kb_ld blocks apart), padding the last group. */        \
    void graft_int8_pack_##isa(const float *w, int64_t ld_n, int64_t ld_k, int64_t n, int64_t kb,    \
                               uint8_t *pw, float *sw, int64_t kb_ld);                                \
    /* C (+)= A·Wᵀ over blocks 0..kb-1, as above. */                                                  \
    void graft_int8_gemm_##isa(const int8_t *qa, int64_t lda, const float *sa, const int32_t *sums,  \
                               int64_t lds, int64_t m, const uint8_t *pw, const float *sw,           \
                               int64_t kb_ld, int64_t n, int64_t kb, float *c, int64_t ldc,          \
                               int32_t accumulate);

GRAFT_DECLARE_INT8(ref)
/* Every ISA is declared on every target (so the bindings are the same everywhere); only the
 * target's own variants are compiled and referenced. */
GRAFT_DECLARE_INT8(avx2)
GRAFT_DECLARE_INT8(avx512)
GRAFT_DECLARE_INT8(neon)

#ifdef __cplusplus
}
#endif
#endif
