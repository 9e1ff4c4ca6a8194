/* graft CUDA kernels: VeRA's training pass, the parts that are not plain products. References:
 * vera_forward / vera_backward in src/train/adapter_grad.rs. With u = Â·x ([m, r], from
 * graft_cu_adapter_down_f32) and w = B̂·(λ_d ⊙ u) ([m, n_out], graft_cu_adapter_up_f32 with
 * tscale = λ_d, s = 1 into a zeroed buffer), both kept for the backward pass:
 *
 * graft_cu_vera_out_f32(w, lambda_b, m, n_out, y):  y[i][o] += λ_b[o] * w[i][o]
 *   Launch: any block size, any grid.
 * graft_cu_vera_dlambda_b_f32(dy, w, m, n_out, dlambda_b):  dλ_b[o] += sum_i dy[i][o] * w[i][o]
 *   Launch: block 256, grid (ceil(n_out / 256)): one thread per column.
 * graft_cu_vera_dv_f32(dy, m, n_out, lambda_b, bt, ldb, r, dv):
 *   dv[i][j] = sum_o (λ_b[o] * dy[i][o]) * bt[j*ldb + o]   ([m, r], overwritten)
 *   Launch: block 256 (8 warps, one per output), grid (ceil(r / 8), m).
 * graft_cu_vera_dlambda_d_f32(dv, u, m, r, lambda_d, dlambda_d):
 *   dλ_d[j] += sum_i dv[i][j] * u[i][j], then dv[i][j] *= λ_d[j] in place, so that
 *   dx += dv·Â is graft_cu_sgemm_f32(0, 0, m, n_in, r, 1, dv, r, a, lda, 1, dx, n_in).
 *   Launch: block 256, grid (ceil(r / 256)): one thread per column. */
#include "common.cuh"

extern "C" __global__ void graft_cu_vera_out_f32(const float *w, const float *lambda_b, int64_t m, int64_t n_out,
                                                 float *y) {
    GRAFT_CU_FOR(e, m * n_out) y[e] += lambda_b[e % n_out] * w[e];
}

extern "C" __global__ void graft_cu_vera_dlambda_b_f32(const float *dy, const float *w, int64_t m, int64_t n_out,
                                                       float *dlambda_b) {
    const int64_t o = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (o >= n_out) return;
    float acc = 0.0f;
    for (int64_t i = 0; i < m; i++) acc += dy[i * n_out + o] * w[i * n_out + o];
    dlambda_b[o] += acc;
}

extern "C" __global__ void __launch_bounds__(256)
graft_cu_vera_dv_f32(const float *dy, int64_t m, int64_t n_out, const float *lambda_b, const float *bt, int64_t ldb,
                     int64_t r, float *dv) {
    const int lane = threadIdx.x % GRAFT_CU_WARP, warp = threadIdx.x / GRAFT_CU_WARP;
    const int64_t j = (int64_t)blockIdx.x * 8 + warp, i = blockIdx.y;
    if (j >= r || i >= m) return;
    const float *dyi = dy + i * n_out, *bj = bt + j * ldb;
    float acc = 0.0f;
    for (int64_t o = lane; o < n_out; o += GRAFT_CU_WARP) acc += (lambda_b[o] * dyi[o]) * bj[o];
    acc = graft_cu_warp_sum(acc);
    if (lane == 0) dv[i * r + j] = acc;
}

extern "C" __global__ void graft_cu_vera_dlambda_d_f32(float *dv, const float *u, int64_t m, int64_t r,
                                                       const float *lambda_d, float *dlambda_d) {
    const int64_t j = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= r) return;
    float acc = 0.0f;
    for (int64_t i = 0; i < m; i++) {
        acc += dv[i * r + j] * u[i * r + j];
        dv[i * r + j] *= lambda_d[j];
    }
    dlambda_d[j] += acc;
}
