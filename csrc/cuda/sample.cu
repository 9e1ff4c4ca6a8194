/* graft CUDA kernels: helpers of token sampling on the logits, one block per row.
 *
 * graft_cu_argmax_f32(logits, ld, n, rows, out): out[t] = index of the largest of logits[t*ld ..
 *   t*ld + n), the first one on ties (as graft::model::sampler::argmax; NaNs are never picked
 *   unless every value is NaN, then 0).
 * graft_cu_softmax_f32(x, ld, n, rows, inv_temp): in place, x = exp((x - max) * inv_temp) / sum
 *   (sum in double), the probabilities a temperature sampler draws from on the host.
 * Launch: block 256 (a multiple of 32, at most 1024), grid (rows). */
#include "common.cuh"

extern "C" __global__ void graft_cu_argmax_f32(const float *logits, int64_t ld, int64_t n, int64_t rows, int32_t *out) {
    __shared__ float sv[32];
    __shared__ int64_t si[32];
    const int64_t t = blockIdx.x;
    if (t >= rows) return;
    const float *x = logits + t * ld;
    float bv = __int_as_float((int)0xff800000u);
    int64_t bi = -1;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
        const float v = x[i];
        if (bi < 0 ? !isnan(v) : v > bv) { /* indices rise within a thread: first one kept on ties */
            bv = v;
            bi = i;
        }
    }
    /* (value, index) pairs: larger value wins, then the smaller index; no index (-1) loses. */
    for (int o = GRAFT_CU_WARP / 2; o > 0; o >>= 1) {
        const float ov = __shfl_xor_sync(0xffffffffu, bv, o);
        const int64_t oi = __shfl_xor_sync(0xffffffffu, bi, o);
        if (oi >= 0 && (bi < 0 || ov > bv || (ov == bv && oi < bi))) {
            bv = ov;
            bi = oi;
        }
    }
    const int lane = threadIdx.x % GRAFT_CU_WARP, warp = threadIdx.x / GRAFT_CU_WARP;
    if (lane == 0) {
        sv[warp] = bv;
        si[warp] = bi;
    }
    __syncthreads();
    if (threadIdx.x == 0) {
        for (int w = 1; w < (int)(blockDim.x / GRAFT_CU_WARP); w++) {
            if (si[w] >= 0 && (bi < 0 || sv[w] > bv || (sv[w] == bv && si[w] < bi))) {
                bv = sv[w];
                bi = si[w];
            }
        }
        out[t] = (int32_t)(bi < 0 ? 0 : bi);
    }
}

extern "C" __global__ void graft_cu_softmax_f32(float *x, int64_t ld, int64_t n, int64_t rows, float inv_temp) {
    __shared__ float fscratch[32];
    __shared__ double dscratch[32];
    const int64_t t = blockIdx.x;
    if (t >= rows) return;
    float *r = x + t * ld;
    float mx = __int_as_float((int)0xff800000u);
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) mx = fmaxf(mx, r[i]);
    mx = graft_cu_block_max(mx, fscratch);
    double sum = 0.0;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
        const float e = expf((r[i] - mx) * inv_temp);
        r[i] = e;
        sum += (double)e;
    }
    sum = graft_cu_block_sum_d(sum, dscratch);
    const float inv = (float)(1.0 / sum);
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) r[i] *= inv;
}
