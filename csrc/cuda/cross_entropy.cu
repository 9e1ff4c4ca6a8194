/* graft CUDA kernels: masked cross-entropy of the logits against next-token targets, forward and
 * backward, one block per row. References: cross_entropy_forward / cross_entropy_backward in
 * src/train/ops.rs (max-subtracted, sums of exponentials in double).
 *
 * targets[t] < 0 masks row t (no loss, no gradient); a target >= V is the caller's error, checked
 * on the host before upload (here it gives a NaN loss and no gradient rather than a stray read).
 * graft_cu_cross_entropy_forward_f32(logits, V, T, targets, losses):
 *   losses[t] = logsumexp(logits[t]) - logits[t][targets[t]], 0 for masked rows. The mean over the
 *   unmasked rows is the host's sum of losses / their count.
 * graft_cu_cross_entropy_backward_f32(logits, V, T, targets, inv_n, dlogits):
 *   dlogits[t] += (softmax(logits[t]) - onehot(targets[t])) * inv_n, inv_n = 1 / unmasked rows.
 * Launch: block 256 (a multiple of 32, at most 1024), grid (T). */
#include "common.cuh"

/* max and sum(exp(x - max)) of one row; every thread of the block gets them. */
static __device__ __forceinline__ void graft_cu_ce_stats(const float *row, int64_t V, float *mx, double *se) {
    __shared__ float fscratch[32];
    __shared__ double dscratch[32];
    float m = __int_as_float((int)0xff800000u);
    for (int64_t i = threadIdx.x; i < V; i += blockDim.x) m = fmaxf(m, row[i]);
    m = graft_cu_block_max(m, fscratch);
    double s = 0.0;
    for (int64_t i = threadIdx.x; i < V; i += blockDim.x) s += exp((double)(row[i] - m));
    *se = graft_cu_block_sum_d(s, dscratch);
    *mx = m;
}

extern "C" __global__ void graft_cu_cross_entropy_forward_f32(const float *logits, int64_t V, int64_t T,
                                                              const int32_t *targets, float *losses) {
    const int64_t t = blockIdx.x;
    if (t >= T) return;
    const int64_t tg = targets[t];
    if (tg < 0 || tg >= V) {
        if (threadIdx.x == 0) losses[t] = tg < 0 ? 0.0f : __int_as_float(0x7fc00000);
        return;
    }
    const float *row = logits + t * V;
    float mx;
    double se;
    graft_cu_ce_stats(row, V, &mx, &se);
    if (threadIdx.x == 0) losses[t] = (float)(log(se) + (double)mx - (double)row[tg]);
}

extern "C" __global__ void graft_cu_cross_entropy_backward_f32(const float *logits, int64_t V, int64_t T,
                                                               const int32_t *targets, double inv_n, float *dlogits) {
    const int64_t t = blockIdx.x;
    if (t >= T) return;
    const int64_t tg = targets[t];
    if (tg < 0 || tg >= V) return;
    const float *row = logits + t * V;
    float mx;
    double se;
    graft_cu_ce_stats(row, V, &mx, &se);
    const double k = inv_n / se;
    float *d = dlogits + t * V;
    for (int64_t i = threadIdx.x; i < V; i += blockDim.x) {
        double g = exp((double)(row[i] - mx)) * k;
        if (i == tg) g -= inv_n;
        d[i] += (float)g;
    }
}
