/* graft: scalar reference of the element-wise and attention kernels (see kernels_ops.h).
 * The arithmetic follows ggml's CPU reference where graft matches llama.cpp: RMSNorm sums squares
 * in double, softmax sums in double, RoPE advances theta by repeated multiplication. */
#include <math.h>
#include <string.h>
#include "kernels.h"

static float f16_to_f32(graft_f16 h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t man = h & 0x3ffu;
    uint32_t bits;
    if (exp == 0) {
        if (man == 0) {
            bits = sign;
        } else { /* subnormal: normalise */
            int e = -1;
            do { man <<= 1; e++; } while (!(man & 0x400u));
            bits = sign | ((uint32_t)(112 - e) << 23) | ((man & 0x3ffu) << 13);
        }
    } else if (exp == 31) {
        bits = sign | 0x7f800000u | (man << 13);
    } else {
        bits = sign | ((exp + 112) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

static graft_f16 f32_to_f16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000u;
    uint32_t absx = x & 0x7fffffffu;
    if (absx >= 0x7f800000u) { /* inf or nan (keep nan quiet) */
        return (graft_f16)(sign | 0x7c00u | (absx > 0x7f800000u ? 0x200u | ((absx >> 13) & 0x3ffu) : 0));
    }
    if (absx >= 0x477ff000u) { /* rounds to >= 65520: overflow to inf */
        return (graft_f16)(sign | 0x7c00u);
    }
    if (absx < 0x38800000u) { /* below the smallest normal half: subnormal or zero */
        if (absx < 0x33000000u) return (graft_f16)sign; /* < 2^-25: rounds to zero */
        uint32_t e = absx >> 23;
        uint32_t m = (absx & 0x7fffffu) | 0x800000u;
        uint32_t shift = 126 - e; /* 14..24 */
        uint32_t q = m >> shift;
        uint32_t rem = m & ((1u << shift) - 1);
        uint32_t half = 1u << (shift - 1);
        if (rem > half || (rem == half && (q & 1))) q++;
        return (graft_f16)(sign | q);
    }
    uint32_t e = (absx >> 23) - 112;
    uint32_t m = absx & 0x7fffffu;
    uint32_t q = (e << 10) | (m >> 13);
    uint32_t rem = m & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (q & 1))) q++; /* carries into the exponent correctly */
    return (graft_f16)(sign | q);
}

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
    for (int64_t i = 0; i < n; i++) sum += (double)(f16_to_f32(a[i]) * f16_to_f32(b[i]));
    return (float)sum;
}

void graft_axpy_f16_ref(float a, const graft_f16 *x, float *y, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] += a * f16_to_f32(x[i]);
}

void graft_f32_to_f16_ref(const float *x, graft_f16 *y, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] = f32_to_f16(x[i]);
}

void graft_f16_to_f32_ref(const graft_f16 *x, float *y, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] = f16_to_f32(x[i]);
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
