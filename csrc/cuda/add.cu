/* graft CUDA kernels: element-wise helpers of the forward pass (residual connections).
 *
 * graft_cu_add_f32(y, x, n):           y[i] += x[i]
 * graft_cu_scale_f32(y, a, n):         y[i] *= a
 * Launch: any block size, any grid (grid-stride loop). */
#include "common.cuh"

extern "C" __global__ void graft_cu_add_f32(float *y, const float *x, int64_t n) {
    GRAFT_CU_FOR(i, n) y[i] += x[i];
}

extern "C" __global__ void graft_cu_scale_f32(float *y, float a, int64_t n) {
    GRAFT_CU_FOR(i, n) y[i] *= a;
}
