/* graft CUDA kernels: the adapter (LoRA family, VeRA) hot path of one adapter on a batch of rows,
 * the same three products as the CPU kernels of csrc/kernels_adapter.h (references
 * graft_adapter_*_ref in csrc/cpu/adapter_ref.c; the contract is copied here).
 *
 * graft_cu_adapter_down_f32(x, ldx, m, a, lda, r, n, t, ldt):
 *   t[i*ldt + j] = sum_{k<n} x[i*ldx + k] * a[j*lda + k]   for i < m, j < r
 *   Launch: block 256 (8 warps, one per output), grid (ceil(r / 8), m).
 * graft_cu_adapter_up_f32(t, ldt, m, r, tscale, bt, ldb, ncols, oscale, s, y, ldy):
 *   y[i*ldy + c] += s * (oscale ? oscale[c] : 1) * sum_{j<r} (tscale ? tscale[j] : 1) * t[i*ldt + j] * bt[j*ldb + c]
 *   VeRA is this with tscale = λ_d and oscale = λ_b. Launch: block 256 (one thread per column), grid
 *   (ceil(ncols / 256), m).
 * graft_cu_adapter_up_q8_0(t, ldt, m, r, tscale, bt, bt_stride, c0, ncols, oscale, s, y, ldy):
 *   as up_f32 with Bᵀ stored as r rows of Q8_0 blocks (row j at bt + j*bt_stride bytes) and the
 *   first column c0; oscale points at column c0's scale. Same launch. */
#include "common.cuh"

#define GRAFT_CU_AD_WARPS 8

extern "C" __global__ void __launch_bounds__(256)
graft_cu_adapter_down_f32(const float *x, int64_t ldx, int64_t m, const float *a, int64_t lda, int64_t r, int64_t n,
                          float *t, int64_t ldt) {
    const int lane = threadIdx.x % GRAFT_CU_WARP, warp = threadIdx.x / GRAFT_CU_WARP;
    const int64_t j = (int64_t)blockIdx.x * GRAFT_CU_AD_WARPS + warp, i = blockIdx.y;
    if (j >= r || i >= m) return; /* warp-uniform */
    const float *xi = x + i * ldx, *aj = a + j * lda;
    float acc = 0.0f;
    for (int64_t k = lane; k < n; k += GRAFT_CU_WARP) acc += xi[k] * aj[k];
    acc = graft_cu_warp_sum(acc);
    if (lane == 0) t[i * ldt + j] = acc;
}

extern "C" __global__ void __launch_bounds__(256)
graft_cu_adapter_up_f32(const float *t, int64_t ldt, int64_t m, int64_t r, const float *tscale, const float *bt,
                        int64_t ldb, int64_t ncols, const float *oscale, float s, float *y, int64_t ldy) {
    const int64_t c = (int64_t)blockIdx.x * blockDim.x + threadIdx.x, i = blockIdx.y;
    if (c >= ncols || i >= m || r <= 0) return;
    const float *ti = t + i * ldt;
    float acc = 0.0f;
    for (int64_t j = 0; j < r; j++) {
        const float u = tscale ? tscale[j] * ti[j] : ti[j];
        acc += u * bt[j * ldb + c];
    }
    y[i * ldy + c] += (oscale ? s * oscale[c] : s) * acc;
}

extern "C" __global__ void __launch_bounds__(256)
graft_cu_adapter_up_q8_0(const float *t, int64_t ldt, int64_t m, int64_t r, const float *tscale, const void *bt,
                         size_t bt_stride, int64_t c0, int64_t ncols, const float *oscale, float s, float *y,
                         int64_t ldy) {
    const int64_t c = (int64_t)blockIdx.x * blockDim.x + threadIdx.x, i = blockIdx.y;
    if (c >= ncols || i >= m || r <= 0) return;
    const int64_t col = c0 + c;
    const uint8_t *blk = (const uint8_t *)bt + (size_t)(col / GRAFT_QK8_0) * sizeof(graft_block_q8_0);
    const int k = (int)(col % GRAFT_QK8_0);
    const float *ti = t + i * ldt;
    float acc = 0.0f;
    for (int64_t j = 0; j < r; j++, blk += bt_stride) {
        const float w = __fmul_rn(graft_cu_h2f(graft_cu_ld16(blk)), (float)(int8_t)blk[offsetof(graft_block_q8_0, qs) + k]);
        const float u = tscale ? tscale[j] * ti[j] : ti[j];
        acc += u * w;
    }
    y[i * ldy + c] += (oscale ? s * oscale[c] : s) * acc;
}
