/* graft CUDA kernels: the descriptor of one adapter term for the gathered multi-adapter kernels
 * (bgmv.cu), shared by the .cu file and (mirrored, size-checked) src/cuda/mod.rs.
 *
 * The term added to a row x of a layer's output: y += s * (oscale ? oscale : 1) ⊙ (Bᵀ)ᵀ ·
 * ((tscale ? tscale : 1) ⊙ (A·x)): the LoRA family (tscale = oscale = NULL) and VeRA
 * (A = Â, Bᵀ = B̂ᵀ slices, tscale = λ_d, oscale = λ_b, s = 1). Pointers are device addresses. */
#ifndef GRAFT_CUDA_BGMV_H
#define GRAFT_CUDA_BGMV_H

#include <stdint.h>

typedef struct {
    const float *a;      /* r rows of the layer's input width, lda floats apart */
    const float *bt;     /* Bᵀ: r rows of the layer's output width, ldb floats apart */
    const float *tscale; /* r floats, or NULL */
    const float *oscale; /* output-width floats, or NULL */
    int64_t lda;
    int64_t ldb;
    int64_t r;
    float s;
    int32_t reserved; /* 0 */
} graft_cu_adapter;

#if defined(__cplusplus)
static_assert(sizeof(graft_cu_adapter) == 64, "graft_cu_adapter size");
#else
_Static_assert(sizeof(graft_cu_adapter) == 64, "graft_cu_adapter size");
#endif

#endif
