/* graft CUDA kernels: dense f32 GEMM with optional transposes, the building block of the LoRA
 * parameter gradients (with g = s·dy·B: dBᵀ += s·axᵀ·dy, g = s·dy·(Bᵀ)ᵀ, dA += gᵀ·x, dx += g·A;
 * reference: lowrank_backward in src/train/adapter_grad.rs).
 *
 * graft_cu_sgemm_f32(transa, transb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc):
 *   C[i*ldc + j] = alpha * sum_{t<k} op(A)[i][t] * op(B)[t][j] + beta * C[i*ldc + j]
 * row-major; op(A)[i][t] = transa ? a[t*lda + i] : a[i*lda + t], op(B)[t][j] = transb ? b[j*ldb + t]
 * : b[t*ldb + j]. beta == 0 does not read C. C does not alias A or B.
 * Launch: block GRAFT_CU_MM_THREADS (256), grid (ceil(n / 64), ceil(m / 64)) (matmul.cuh). */
#include "matmul.cuh"

/* op(B)(t, j) as a loader: B(t, c). */
struct GraftDenseB {
    const float *p;
    int64_t ld;
    bool trans;
    __device__ __forceinline__ float at(int64_t t, int64_t c) const { return trans ? p[c * ld + t] : p[t * ld + c]; }
    __device__ __forceinline__ bool t_fast() const { return trans; }
};

extern "C" __global__ void __launch_bounds__(GRAFT_CU_MM_THREADS)
graft_cu_sgemm_f32(int32_t transa, int32_t transb, int64_t m, int64_t n, int64_t k, float alpha, const float *a,
                   int64_t lda, const float *b, int64_t ldb, float beta, float *c, int64_t ldc) {
    const GraftDense la = {a, lda, transa != 0};
    const GraftDenseB lb = {b, ldb, transb != 0};
    graft_cu_tile_mm(la, lb, m, n, k, alpha, beta, c, ldc);
}
