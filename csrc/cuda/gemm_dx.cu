/* graft CUDA kernels: the backward product through a frozen quantized weight, dX += dY·W, W
 * dequantized on the fly (reference: graft_gemm_dx_<wfmt>_ref in csrc/cpu/quant_ref.c).
 *
 * graft_cu_gemm_dx_<wfmt>(n, w, w_stride, nrows, dy, lddy, m, dx, lddx):
 *   dx[i*lddx + k] += sum_{r<nrows} dy[i*lddy + r] * W[r][k]   for k < n, i < m
 * Launch: block GRAFT_CU_MM_THREADS (256), grid (ceil(n / 64), ceil(m / 64)) (matmul.cuh). */
#include "dequant.cuh"
#include "matmul.cuh"

#define GRAFT_CU_GEMM_DX(name, F)                                                                     \
    extern "C" __global__ void __launch_bounds__(GRAFT_CU_MM_THREADS) graft_cu_gemm_dx_##name(        \
        int64_t n, const void *w, size_t w_stride, int64_t nrows, const float *dy, int64_t lddy,      \
        int64_t m, float *dx, int64_t lddx) {                                                         \
        const GraftDense a = {dy, lddy, false};                                                       \
        const GraftW<F> b = {(const uint8_t *)w, w_stride};                                           \
        graft_cu_tile_mm(a, b, m, n, nrows, 1.0f, 1.0f, dx, lddx);                                    \
    }

GRAFT_CU_FOR_EACH_FORMAT(GRAFT_CU_GEMM_DX)
