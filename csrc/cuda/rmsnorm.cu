/* graft CUDA kernels: RMSNorm forward and backward over rows of n floats (one block per row).
 * References: rmsnorm_forward / rmsnorm_backward in src/train/ops.rs (sums of squares and the
 * backward dot product in double, rstd computed in double and rounded to f32).
 *
 * graft_cu_rmsnorm_f32(x, ldx, w, y, ldy, rstd, n, rows, eps):
 *   rstd_t = 1 / sqrt(sum_k x[t][k]^2 / n + eps);  y[t][k] = (x[t][k] * rstd_t) * (w ? w[k] : 1)
 *   rstd (may be NULL) receives rstd_t for the backward pass. y may alias x (in place).
 * graft_cu_rmsnorm_backward_f32(dy, x, w, rstd, dx, n, rows)   (rows n apart, contiguous):
 *   dx[t][k] += rstd_t * w[k] * dy[t][k] - x[t][k] * (rstd_t^3 / n * sum_j dy[t][j] * w[j] * x[t][j])
 *   (the weight is frozen: no dw). w may be NULL (1).
 * Launch: block 256 threads (any multiple of 32 up to 1024), grid (rows). */
#include "common.cuh"

extern "C" __global__ void graft_cu_rmsnorm_f32(const float *x, int64_t ldx, const float *w, float *y, int64_t ldy,
                                                float *rstd, int64_t n, int64_t rows, float eps) {
    __shared__ double scratch[32];
    const int64_t t = blockIdx.x;
    if (t >= rows) return; /* block-uniform */
    const float *xr = x + t * ldx;
    double ss = 0.0;
    for (int64_t k = threadIdx.x; k < n; k += blockDim.x) ss += (double)xr[k] * (double)xr[k];
    ss = graft_cu_block_sum_d(ss, scratch);
    const float rs = (float)(1.0 / sqrt(ss / (double)n + (double)eps));
    if (rstd && threadIdx.x == 0) rstd[t] = rs;
    float *yr = y + t * ldy;
    for (int64_t k = threadIdx.x; k < n; k += blockDim.x) {
        const float v = __fmul_rn(xr[k], rs);
        yr[k] = w ? __fmul_rn(v, w[k]) : v;
    }
}

extern "C" __global__ void graft_cu_rmsnorm_backward_f32(const float *dy, const float *x, const float *w,
                                                         const float *rstd, float *dx, int64_t n, int64_t rows) {
    __shared__ double scratch[32];
    const int64_t t = blockIdx.x;
    if (t >= rows) return;
    const float *dyr = dy + t * n, *xr = x + t * n;
    float *dxr = dx + t * n;
    double dot = 0.0;
    for (int64_t k = threadIdx.x; k < n; k += blockDim.x)
        dot += (double)dyr[k] * (double)(w ? w[k] : 1.0f) * (double)xr[k];
    dot = graft_cu_block_sum_d(dot, scratch);
    const float rs = rstd[t];
    const float kk = (float)(dot * ((double)rs * (double)rs * (double)rs) / (double)n);
    for (int64_t k = threadIdx.x; k < n; k += blockDim.x) {
        const float wk = w ? w[k] : 1.0f;
        dxr[k] += rs * wk * dyr[k] - xr[k] * kk;
    }
}
