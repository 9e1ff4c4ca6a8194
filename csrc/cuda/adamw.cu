/* graft CUDA kernels: AdamW (decoupled weight decay) with global gradient-norm clipping, fused
 * into one pass per tensor after one reduction pass. Reference: AdamW::step in src/train/optim.rs.
 *
 * Per step, for gradients summed over `accum` micro-batches (inv = 1/accum):
 *  1. graft_cu_sumsq_f32(g, n, inv, sumsq) for every tensor: *sumsq += sum (g*inv)^2 (double; the
 *     host zeroes *sumsq first). Launch: block 256, any grid (each block adds its partial sum).
 *  2. graft_cu_adamw_f32(p, g, m, v, n, sumsq, inv, clip_norm, lr, b1, b2, eps, wd, bc1, bc2) for
 *     every tensor: norm = sqrt(*sumsq); if norm is not finite nothing is touched (the host reads
 *     *sumsq and reports the error); clip = clip_norm > 0 && norm > clip_norm ? clip_norm / norm : 1;
 *     gi = g * (float)(inv * clip); m = b1 m + (1-b1) gi; v = b2 v + (1-b2) gi^2 (f32);
 *     p -= lr * ((m/bc1) / (sqrt(v/bc2) + eps) + wd p) in double, bc1 = 1 - b1^step, bc2 = 1 - b2^step
 *     (step counted from 1, computed on the host). Launch: any block size, any grid. */
#include "common.cuh"

extern "C" __global__ void graft_cu_sumsq_f32(const float *g, int64_t n, double inv, double *sumsq) {
    __shared__ double scratch[32];
    double s = 0.0;
    GRAFT_CU_FOR(i, n) {
        const double x = (double)g[i] * inv;
        s += x * x;
    }
    s = graft_cu_block_sum_d(s, scratch);
    if (threadIdx.x == 0 && s != 0.0) atomicAdd(sumsq, s);
}

extern "C" __global__ void graft_cu_adamw_f32(float *p, const float *g, float *m, float *v, int64_t n,
                                              const double *sumsq, double inv, float clip_norm, float lr, float b1,
                                              float b2, float eps, float wd, double bc1, double bc2) {
    const double norm = sqrt(*sumsq);
    if (!isfinite(norm)) return;
    const double clip = clip_norm > 0.0f && norm > (double)clip_norm ? (double)clip_norm / norm : 1.0;
    const float scale = (float)(inv * clip);
    GRAFT_CU_FOR(i, n) {
        const float gi = g[i] * scale;
        const float mi = __fadd_rn(__fmul_rn(b1, m[i]), __fmul_rn(1.0f - b1, gi));
        const float vi = __fadd_rn(__fmul_rn(b2, v[i]), __fmul_rn(__fmul_rn(1.0f - b2, gi), gi));
        m[i] = mi;
        v[i] = vi;
        const double mh = (double)mi / bc1, vh = (double)vi / bc2;
        const double upd = mh / (sqrt(vh) + (double)eps) + (double)wd * (double)p[i];
        p[i] = (float)((double)p[i] - (double)lr * upd);
    }
}
