/* graft CUDA kernels: rotary position embedding, forward (in place) and backward (accumulating),
 * both pair layouts of the CPU kernel graft_rope_f32_ref (csrc/cpu/ops_ref.c):
 *   mode 0 (llama): pairs (2i, 2i+1);  mode 2 (NeoX): pairs (i, i + n_rot/2);  i < n_rot/2.
 *   theta_i = pos * base^(-2i/n_rot), computed as the CPU does: theta_scale = powf(base, -2/n_rot),
 *   theta_0 = pos, theta_{i+1} = theta_i * theta_scale (the same f32 products, so the same angles
 *   up to powf's last bit).
 * Dimensions n_rot..head_dim of each head are left alone.
 *
 * graft_cu_rope_f32(x, ldx, T, n_heads, head_dim, n_rot, pos, freq_base, mode, inverse):
 *   row t of x (ldx floats apart, n_heads heads of head_dim) rotated by theta(pos[t]);
 *   inverse != 0 rotates by -theta.
 * graft_cu_rope_backward_f32(dy, dx, ld, T, n_heads, head_dim, n_rot, pos, freq_base, mode):
 *   dx[t] += R(pos[t])ᵀ dy[t] (the inverse rotation of dy; reference rope_backward in
 *   src/train/ops.rs); dx and dy may not alias.
 * Launch: block 128 threads (any), grid (T): one block per row, threads over (head, pair). */
#include "common.cuh"

static __device__ __forceinline__ void graft_cu_rope_angle(int64_t pos, int64_t i, int64_t n_rot, float freq_base,
                                                           float *c, float *s) {
    const float theta_scale = powf(freq_base, -2.0f / (float)n_rot);
    float theta = (float)pos;
    for (int64_t j = 0; j < i; j++) theta = __fmul_rn(theta, theta_scale);
    sincosf(theta, s, c);
}

extern "C" __global__ void graft_cu_rope_f32(float *x, int64_t ldx, int64_t T, int64_t n_heads, int64_t head_dim,
                                             int64_t n_rot, const int32_t *pos, float freq_base, int32_t mode,
                                             int32_t inverse) {
    const int64_t t = blockIdx.x, half = n_rot / 2;
    if (t >= T) return;
    for (int64_t e = threadIdx.x; e < n_heads * half; e += blockDim.x) {
        const int64_t h = e / half, i = e % half;
        float c, s;
        graft_cu_rope_angle(pos[t], i, n_rot, freq_base, &c, &s);
        if (inverse) s = -s;
        float *v = x + t * ldx + h * head_dim;
        const int64_t a = mode == 2 ? i : 2 * i, b = mode == 2 ? i + half : 2 * i + 1;
        const float x0 = v[a], x1 = v[b];
        v[a] = __fsub_rn(__fmul_rn(x0, c), __fmul_rn(x1, s));
        v[b] = __fadd_rn(__fmul_rn(x0, s), __fmul_rn(x1, c));
    }
}

extern "C" __global__ void graft_cu_rope_backward_f32(const float *dy, float *dx, int64_t ld, int64_t T,
                                                      int64_t n_heads, int64_t head_dim, int64_t n_rot,
                                                      const int32_t *pos, float freq_base, int32_t mode) {
    const int64_t t = blockIdx.x, half = n_rot / 2;
    if (t >= T) return;
    /* Rotated pairs. */
    for (int64_t e = threadIdx.x; e < n_heads * half; e += blockDim.x) {
        const int64_t h = e / half, i = e % half;
        float c, s;
        graft_cu_rope_angle(pos[t], i, n_rot, freq_base, &c, &s);
        s = -s;
        const float *g = dy + t * ld + h * head_dim;
        float *o = dx + t * ld + h * head_dim;
        const int64_t a = mode == 2 ? i : 2 * i, b = mode == 2 ? i + half : 2 * i + 1;
        const float g0 = g[a], g1 = g[b];
        o[a] += g0 * c - g1 * s;
        o[b] += g0 * s + g1 * c;
    }
    /* Dimensions past n_rot pass through. */
    const int64_t rest = head_dim - n_rot;
    for (int64_t e = threadIdx.x; e < n_heads * rest; e += blockDim.x) {
        const int64_t h = e / rest, k = n_rot + e % rest;
        dx[t * ld + h * head_dim + k] += dy[t * ld + h * head_dim + k];
    }
}
