/* graft CUDA kernels: the prefill product Y = X·Wᵀ for every weight format, weights dequantized on
 * the fly into shared memory, f32 activations (reference: graft_gemm_<wfmt>_f32_ref).
 *
 * graft_cu_gemm_<wfmt>_f32(n, w, w_stride, nrows, x, ldx, m, y, ldy):
 *   y[i*ldy + r] = sum_{k<n} X[i*ldx + k] * W[r][k]   for r < nrows, i < m   (y overwritten)
 * Launch: block GRAFT_CU_MM_THREADS (256), grid (ceil(nrows / 64), ceil(m / 64)) (matmul.cuh). */
#include "dequant.cuh"
#include "matmul.cuh"

#define GRAFT_CU_GEMM(name, F)                                                                          \
    extern "C" __global__ void __launch_bounds__(GRAFT_CU_MM_THREADS) graft_cu_gemm_##name##_f32(       \
        int64_t n, const void *w, size_t w_stride, int64_t nrows, const float *x, int64_t ldx, int64_t m, \
        float *y, int64_t ldy) {                                                                        \
        const GraftDense a = {x, ldx, false};                                                           \
        const GraftWT<F> b = {(const uint8_t *)w, w_stride};                                            \
        graft_cu_tile_mm(a, b, m, nrows, n, 1.0f, 0.0f, y, ldy);                                        \
    }

GRAFT_CU_FOR_EACH_FORMAT(GRAFT_CU_GEMM)
