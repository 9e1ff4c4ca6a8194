/* graft CUDA kernels: causal grouped-query attention with f32 K/V, forward (decode and prefill
 * against a KV cache; training over one sequence) and backward (training).
 * Query head h reads kv head h / (n_head / n_head_kv); scale is the caller's (1/sqrt(head_dim)).
 * head_dim <= GRAFT_CU_ATT_MAX_HD (256). References: attention_forward / attention_backward in
 * src/train/ops.rs (scores summed in f32, softmax sums in double).
 *
 * graft_cu_attention_f32(q, ldq, k, v, ldkv, pos, T, n_head, n_head_kv, hd, scale, probs, ldp, out, ldo):
 *   query row t (q + t*ldq, n_head heads of hd) at position pos[t] attends to key/value rows
 *   0..pos[t] (k + s*ldkv, v + s*ldkv: a KV cache holding every position up to the largest pos,
 *   the new tokens' rows included, or the sequence itself in training with pos[t] = t).
 *   probs[(h*T + t)*ldp + s] receives the softmax weights for s <= pos[t] and 0 for pos[t] < s < ldp
 *   (ldp > max pos; with ldp = T and pos[t] = t this is the [n_head, T, T] layout the backward reads).
 *   out[t*ldo + h*hd + d] = sum_s probs[s] * v[s][d] (overwritten).
 *   Launch: block 256, grid (n_head, T).
 *
 * Backward over one sequence (pos[t] = t; q, dout, dq: [T, n_head*hd]; k, v, dk, dv: [T, n_head_kv*hd];
 * probs, ds: [n_head, T, T]), in two kernels so that no output is written by two blocks:
 * graft_cu_attention_backward_dq_f32(dout, q, k, v, probs, T, n_head, n_head_kv, hd, scale, ds, dq):
 *   dp_s = dout_t·v_s; ds_s = p_s * (dp_s - sum_s' p_s' dp_s') * scale (written to ds, 0 above the
 *   diagonal); dq_t += sum_s ds_s k_s.  Launch: block 256, grid (n_head, T).
 * graft_cu_attention_backward_dkv_f32(dout, q, probs, ds, T, n_head, n_head_kv, hd, dk, dv):
 *   dk_s += sum_{h in group, t >= s} ds[h][t][s] q_t,h;  dv_s += sum_{h in group, t >= s} p[h][t][s] dout_t,h.
 *   Launch after the dq kernel (it reads ds): block 256, grid (n_head_kv, T). */
#include "common.cuh"

#define GRAFT_CU_ATT_THREADS 256
#define GRAFT_CU_ATT_WARPS (GRAFT_CU_ATT_THREADS / GRAFT_CU_WARP)
#define GRAFT_CU_ATT_MAX_HD 256
#define GRAFT_CU_ATT_PER_LANE (GRAFT_CU_ATT_MAX_HD / GRAFT_CU_WARP)

/* Sums red[w][d] over the warps into dst[d] (dst[d] += when accumulate). Synchronises first. */
static __device__ __forceinline__ void graft_cu_att_reduce(float (*red)[GRAFT_CU_ATT_MAX_HD], int64_t hd, float *dst,
                                                           bool accumulate) {
    __syncthreads();
    for (int64_t d = threadIdx.x; d < hd; d += blockDim.x) {
        float s = 0.0f;
        for (int w = 0; w < GRAFT_CU_ATT_WARPS; w++) s += red[w][d];
        dst[d] = accumulate ? dst[d] + s : s;
    }
}

extern "C" __global__ void __launch_bounds__(GRAFT_CU_ATT_THREADS)
graft_cu_attention_f32(const float *q, int64_t ldq, const float *k, const float *v, int64_t ldkv, const int32_t *pos,
                       int64_t T, int64_t n_head, int64_t n_head_kv, int64_t hd, float scale, float *probs, int64_t ldp,
                       float *out, int64_t ldo) {
    __shared__ float qs[GRAFT_CU_ATT_MAX_HD];
    __shared__ float red[GRAFT_CU_ATT_WARPS][GRAFT_CU_ATT_MAX_HD];
    __shared__ float fscratch[32];
    __shared__ double dscratch[32];
    const int64_t h = blockIdx.x, t = blockIdx.y;
    if (h >= n_head || t >= T || hd > GRAFT_CU_ATT_MAX_HD) return; /* block-uniform */
    const int lane = threadIdx.x % GRAFT_CU_WARP, warp = threadIdx.x / GRAFT_CU_WARP;
    const int64_t kvo = (h / (n_head / n_head_kv)) * hd, p = pos[t];
    float *prow = probs + (h * T + t) * ldp;
    for (int64_t d = threadIdx.x; d < hd; d += blockDim.x) qs[d] = q[t * ldq + h * hd + d];
    __syncthreads();
    /* Scores, one warp per key. */
    float mx = __int_as_float((int)0xff800000u);
    for (int64_t s = warp; s <= p; s += GRAFT_CU_ATT_WARPS) {
        const float *ks = k + s * ldkv + kvo;
        float dot = 0.0f;
        for (int64_t d = lane; d < hd; d += GRAFT_CU_WARP) dot += qs[d] * ks[d];
        const float sc = graft_cu_warp_sum(dot) * scale;
        if (lane == 0) prow[s] = sc;
        mx = fmaxf(mx, sc);
    }
    mx = graft_cu_block_max(mx, fscratch);
    /* Softmax (each thread rewrites the entries it reads). */
    double sum = 0.0;
    for (int64_t s = threadIdx.x; s <= p; s += blockDim.x) {
        const float e = expf(prow[s] - mx);
        prow[s] = e;
        sum += (double)e;
    }
    sum = graft_cu_block_sum_d(sum, dscratch);
    const float inv = (float)(1.0 / sum);
    for (int64_t s = threadIdx.x; s <= p; s += blockDim.x) prow[s] *= inv;
    for (int64_t s = p + 1 + threadIdx.x; s < ldp; s += blockDim.x) prow[s] = 0.0f;
    __syncthreads();
    /* out = P·V: warps split the keys, lanes the dimensions. */
    float acc[GRAFT_CU_ATT_PER_LANE];
#pragma unroll
    for (int j = 0; j < GRAFT_CU_ATT_PER_LANE; j++) acc[j] = 0.0f;
    for (int64_t s = warp; s <= p; s += GRAFT_CU_ATT_WARPS) {
        const float ps = prow[s];
        const float *vs = v + s * ldkv + kvo;
#pragma unroll
        for (int j = 0; j < GRAFT_CU_ATT_PER_LANE; j++) {
            const int64_t d = lane + GRAFT_CU_WARP * j;
            if (d < hd) acc[j] += ps * vs[d];
        }
    }
#pragma unroll
    for (int j = 0; j < GRAFT_CU_ATT_PER_LANE; j++) {
        const int64_t d = lane + GRAFT_CU_WARP * j;
        if (d < hd) red[warp][d] = acc[j];
    }
    graft_cu_att_reduce(red, hd, out + t * ldo + h * hd, false);
}

extern "C" __global__ void __launch_bounds__(GRAFT_CU_ATT_THREADS)
graft_cu_attention_backward_dq_f32(const float *dout, const float *q, const float *k, const float *v,
                                   const float *probs, int64_t T, int64_t n_head, int64_t n_head_kv, int64_t hd,
                                   float scale, float *ds, float *dq) {
    (void)q;
    __shared__ float go[GRAFT_CU_ATT_MAX_HD];
    __shared__ float red[GRAFT_CU_ATT_WARPS][GRAFT_CU_ATT_MAX_HD];
    __shared__ double dscratch[32];
    const int64_t h = blockIdx.x, t = blockIdx.y;
    if (h >= n_head || t >= T || hd > GRAFT_CU_ATT_MAX_HD) return;
    const int lane = threadIdx.x % GRAFT_CU_WARP, warp = threadIdx.x / GRAFT_CU_WARP;
    const int64_t qd = n_head * hd, kvd = n_head_kv * hd, kvo = (h / (n_head / n_head_kv)) * hd;
    const float *prow = probs + (h * T + t) * T;
    float *dsrow = ds + (h * T + t) * T;
    for (int64_t d = threadIdx.x; d < hd; d += blockDim.x) go[d] = dout[t * qd + h * hd + d];
    __syncthreads();
    /* dp_s = dout·v_s (kept in ds for now), and sum_s p_s dp_s. */
    double pdp = 0.0;
    for (int64_t s = warp; s <= t; s += GRAFT_CU_ATT_WARPS) {
        const float *vs = v + s * kvd + kvo;
        float dot = 0.0f;
        for (int64_t d = lane; d < hd; d += GRAFT_CU_WARP) dot += go[d] * vs[d];
        dot = graft_cu_warp_sum(dot);
        if (lane == 0) {
            dsrow[s] = dot;
            pdp += (double)(prow[s] * dot);
        }
    }
    pdp = graft_cu_block_sum_d(pdp, dscratch);
    const float pdpf = (float)pdp;
    for (int64_t s = threadIdx.x; s <= t; s += blockDim.x) dsrow[s] = prow[s] * (dsrow[s] - pdpf) * scale;
    for (int64_t s = t + 1 + threadIdx.x; s < T; s += blockDim.x) dsrow[s] = 0.0f;
    __syncthreads();
    /* dq_t += sum_s ds_s k_s. */
    float acc[GRAFT_CU_ATT_PER_LANE];
#pragma unroll
    for (int j = 0; j < GRAFT_CU_ATT_PER_LANE; j++) acc[j] = 0.0f;
    for (int64_t s = warp; s <= t; s += GRAFT_CU_ATT_WARPS) {
        const float dss = dsrow[s];
        const float *ks = k + s * kvd + kvo;
#pragma unroll
        for (int j = 0; j < GRAFT_CU_ATT_PER_LANE; j++) {
            const int64_t d = lane + GRAFT_CU_WARP * j;
            if (d < hd) acc[j] += dss * ks[d];
        }
    }
#pragma unroll
    for (int j = 0; j < GRAFT_CU_ATT_PER_LANE; j++) {
        const int64_t d = lane + GRAFT_CU_WARP * j;
        if (d < hd) red[warp][d] = acc[j];
    }
    graft_cu_att_reduce(red, hd, dq + t * qd + h * hd, true);
}

extern "C" __global__ void __launch_bounds__(GRAFT_CU_ATT_THREADS)
graft_cu_attention_backward_dkv_f32(const float *dout, const float *q, const float *probs, const float *ds, int64_t T,
                                    int64_t n_head, int64_t n_head_kv, int64_t hd, float *dk, float *dv) {
    __shared__ float red[GRAFT_CU_ATT_WARPS][GRAFT_CU_ATT_MAX_HD];
    const int64_t kvh = blockIdx.x, s = blockIdx.y;
    if (kvh >= n_head_kv || s >= T || hd > GRAFT_CU_ATT_MAX_HD) return;
    const int lane = threadIdx.x % GRAFT_CU_WARP, warp = threadIdx.x / GRAFT_CU_WARP;
    const int64_t group = n_head / n_head_kv, qd = n_head * hd, kvd = n_head_kv * hd;
    float ak[GRAFT_CU_ATT_PER_LANE], av[GRAFT_CU_ATT_PER_LANE];
#pragma unroll
    for (int j = 0; j < GRAFT_CU_ATT_PER_LANE; j++) ak[j] = av[j] = 0.0f;
    /* Every (head of the group, query t >= s) pair, split among warps. */
    for (int64_t e = warp; e < group * (T - s); e += GRAFT_CU_ATT_WARPS) {
        const int64_t h = kvh * group + e % group, t = s + e / group;
        const float dss = ds[(h * T + t) * T + s], ps = probs[(h * T + t) * T + s];
        const float *qt = q + t * qd + h * hd, *gt = dout + t * qd + h * hd;
#pragma unroll
        for (int j = 0; j < GRAFT_CU_ATT_PER_LANE; j++) {
            const int64_t d = lane + GRAFT_CU_WARP * j;
            if (d < hd) {
                ak[j] += dss * qt[d];
                av[j] += ps * gt[d];
            }
        }
    }
#pragma unroll
    for (int j = 0; j < GRAFT_CU_ATT_PER_LANE; j++) {
        const int64_t d = lane + GRAFT_CU_WARP * j;
        if (d < hd) red[warp][d] = ak[j];
    }
    graft_cu_att_reduce(red, hd, dk + s * kvd + kvh * hd, true);
    __syncthreads(); /* red is reused */
#pragma unroll
    for (int j = 0; j < GRAFT_CU_ATT_PER_LANE; j++) {
        const int64_t d = lane + GRAFT_CU_WARP * j;
        if (d < hd) red[warp][d] = av[j];
    }
    graft_cu_att_reduce(red, hd, dv + s * kvd + kvh * hd, true);
}
