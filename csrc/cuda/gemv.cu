/* graft CUDA kernels: the decode product y = W·x for every weight format, weights dequantized on
 * the fly against f32 activations (graft's fp32 numerics; reference: graft_gemm_<wfmt>_f32_ref in
 * csrc/cpu/quant_ref.c, which sums in double: expect f32-summation differences).
 *
 * graft_cu_gemv_<wfmt>_f32(n, w, w_stride, nrows, x, ldx, m, y, ldy):
 *   y[i*ldy + r] = sum_{k<n} W[r][k] * x[i*ldx + k]   for r < nrows, i < m
 * W: nrows rows of n elements, w_stride bytes apart (n a multiple of the format's block size).
 * One warp per output; lanes walk k 32 apart (so a 32-wide block is read by one warp at once).
 * Launch: block 256 threads (8 warps), grid (ceil(nrows / 8), m). Meant for small m (decode); the
 * tiled graft_cu_gemm_* is for prefill. */
#include "dequant.cuh"

#define GRAFT_CU_GEMV_WARPS 8

template <class F>
static __device__ __forceinline__ void graft_cu_gemv(int64_t n, const uint8_t *w, size_t w_stride, int64_t nrows,
                                                     const float *x, int64_t ldx, int64_t m, float *y, int64_t ldy) {
    const int lane = threadIdx.x % GRAFT_CU_WARP, warp = threadIdx.x / GRAFT_CU_WARP;
    const int64_t r = (int64_t)blockIdx.x * GRAFT_CU_GEMV_WARPS + warp, i = blockIdx.y;
    if (r >= nrows || i >= m) return; /* whole warps leave together: r and i are warp-uniform */
    const uint8_t *row = w + (size_t)r * w_stride;
    const float *xi = x + i * ldx;
    float acc = 0.0f;
    for (int64_t k = lane; k < n; k += GRAFT_CU_WARP) acc += F::at(row, k) * xi[k];
    acc = graft_cu_warp_sum(acc);
    if (lane == 0) y[i * ldy + r] = acc;
}

#define GRAFT_CU_GEMV(name, F)                                                                          \
    extern "C" __global__ void __launch_bounds__(256) graft_cu_gemv_##name##_f32(                       \
        int64_t n, const void *w, size_t w_stride, int64_t nrows, const float *x, int64_t ldx, int64_t m, \
        float *y, int64_t ldy) {                                                                        \
        graft_cu_gemv<F>(n, (const uint8_t *)w, w_stride, nrows, x, ldx, m, y, ldy);                    \
    }

GRAFT_CU_FOR_EACH_FORMAT(GRAFT_CU_GEMV)
