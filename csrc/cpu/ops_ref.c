/* graft: scalar reference of the element-wise and attention kernels (see kernels_ops.h).
 * The arithmetic follows ggml's CPU reference where graft matches llama.cpp: RMSNorm sums squares
 * in double, softmax sums in double, RoPE advances theta by repeated multiplication. */
#include <math.h>
#include <string.h>
#include "kernels.h"
#include "common.h"

void graft_rmsnorm_f32_ref(const float *x, const float *w, float *y, int64_t n, float eps) {
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++) sum += (double)(x[i] * x[i]);
    const float mean = (float)(sum / (double)n);
    const float scale = 1.0f / sqrtf(mean + eps);
    for (int64_t i = 0; i < n; i++) y[i] = w ? (x[i] * scale) * w[i] : x[i] * scale;
}

void graft_silu_gate_f32_ref(const float *gate, const float *up, float *y, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        const float g = gate[i];
        y[i] = (g / (1.0f + expf(-g))) * up[i];
    }
}

void graft_softmax_f32_ref(float *x, int64_t n) {
    if (n <= 0) return;
    float max = -INFINITY;
    for (int64_t i = 0; i < n; i++) max = x[i] > max ? x[i] : max;
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++) {
        const float e = expf(x[i] - max);
        x[i] = e;
        sum += (double)e;
    }
    const float inv = (float)(1.0 / sum);
    for (int64_t i = 0; i < n; i++) x[i] *= inv;
}

float graft_dot_f16_ref(const graft_f16 *a, const graft_f16 *b, int64_t n) {
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++) sum += (double)(graft_h2f(a[i]) * graft_h2f(b[i]));
    return (float)sum;
}

void graft_axpy_f16_ref(float a, const graft_f16 *x, float *y, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] += a * graft_h2f(x[i]);
}

void graft_f32_to_f16_ref(const float *x, graft_f16 *y, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] = graft_f2h(x[i]);
}

void graft_f16_to_f32_ref(const graft_f16 *x, float *y, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] = graft_h2f(x[i]);
}

void graft_rope_f32_ref(float *x, int64_t n_heads, int64_t head_dim, int64_t n_rot, int64_t pos,
                        float freq_base, int32_t mode, int32_t inverse) {
    const float theta_scale = powf(freq_base, -2.0f / (float)n_rot);
    const float sign = inverse ? -1.0f : 1.0f;
    const int64_t half = n_rot / 2;
    float theta = (float)pos;
    for (int64_t i = 0; i < half; i++) {
        const float c = cosf(theta);
        const float s = sign * sinf(theta);
        for (int64_t h = 0; h < n_heads; h++) {
            float *v = x + h * head_dim;
            const int64_t a = mode == 2 ? i : 2 * i;
            const int64_t b = mode == 2 ? i + half : 2 * i + 1;
            const float x0 = v[a], x1 = v[b];
            v[a] = x0 * c - x1 * s;
            v[b] = x0 * s + x1 * c;
        }
        theta *= theta_scale;
    }
}
