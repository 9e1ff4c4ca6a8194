/* graft CUDA kernels: gathered multi-adapter products (BGMV, as Punica / S-LoRA): one launch
 * applies a different adapter to each row of a batch, rows of many sequences decoded together.
 * ads: device array of graft_cu_adapter descriptors (bgmv.h); idx[i] is row i's adapter, < 0 for
 * none. A sequence with several adapters takes one launch per adapter slot (idx per slot).
 *
 * graft_cu_bgmv_down_f32(x, ldx, m, n, ads, idx, t, ldt, rmax):
 *   t[i*ldt + j] = sum_{k<n} x[i*ldx + k] * A_idx[i][j][k]   for j < r of row i's adapter
 *   (entries j >= r, up to rmax, are left alone; rows with no adapter are not written).
 *   Launch: block 256 (8 warps, one per output), grid (ceil(rmax / 8), m).
 * graft_cu_bgmv_up_f32(t, ldt, m, ads, idx, ncols, y, ldy):
 *   y[i*ldy + c] += s * (oscale ? oscale[c] : 1) * sum_{j<r} (tscale ? tscale[j] : 1) * t[i*ldt + j] * Bᵀ[j][c]
 *   for c < ncols (the layer's output width). Launch: block 256, grid (ceil(ncols / 256), m). */
#include "common.cuh"
#include "bgmv.h"

#define GRAFT_CU_BGMV_WARPS 8

extern "C" __global__ void __launch_bounds__(256)
graft_cu_bgmv_down_f32(const float *x, int64_t ldx, int64_t m, int64_t n, const graft_cu_adapter *ads,
                       const int32_t *idx, float *t, int64_t ldt, int64_t rmax) {
    const int lane = threadIdx.x % GRAFT_CU_WARP, warp = threadIdx.x / GRAFT_CU_WARP;
    const int64_t j = (int64_t)blockIdx.x * GRAFT_CU_BGMV_WARPS + warp, i = blockIdx.y;
    if (j >= rmax || i >= m) return;
    const int32_t a = idx[i];
    if (a < 0) return;
    const graft_cu_adapter ad = ads[a];
    if (j >= ad.r) return; /* warp-uniform: j is the warp's */
    const float *xi = x + i * ldx, *aj = ad.a + j * ad.lda;
    float acc = 0.0f;
    for (int64_t k = lane; k < n; k += GRAFT_CU_WARP) acc += xi[k] * aj[k];
    acc = graft_cu_warp_sum(acc);
    if (lane == 0) t[i * ldt + j] = acc;
}

extern "C" __global__ void __launch_bounds__(256)
graft_cu_bgmv_up_f32(const float *t, int64_t ldt, int64_t m, const graft_cu_adapter *ads, const int32_t *idx,
                     int64_t ncols, float *y, int64_t ldy) {
    const int64_t c = (int64_t)blockIdx.x * blockDim.x + threadIdx.x, i = blockIdx.y;
    if (c >= ncols || i >= m) return;
    const int32_t a = idx[i];
    if (a < 0) return;
    const graft_cu_adapter ad = ads[a];
    const float *ti = t + i * ldt;
    float acc = 0.0f;
    for (int64_t j = 0; j < ad.r; j++) {
        const float u = ad.tscale ? ad.tscale[j] * ti[j] : ti[j];
        acc += u * ad.bt[j * ad.ldb + c];
    }
    y[i * ldy + c] += (ad.oscale ? ad.s * ad.oscale[c] : ad.s) * acc;
}
