/* graft: NEON variants of the element-wise and attention kernels (aarch64 only).
 * The f16 helpers and RMSNorm use NEON; softmax, SiLU-gate and RoPE forward to the reference, their
 * cost being dominated by exp/sin/cos that the reference's libm calls already compute. */
#include <arm_neon.h>
#include <math.h>
#include "kernels.h"

void graft_rmsnorm_f32_neon(const float *x, const float *w, float *y, int64_t n, float eps) {
    float64x2_t acc = vdupq_n_f64(0.0);
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) {
        const float32x4_t v = vld1q_f32(x + i);
        const float32x4_t sq = vmulq_f32(v, v);
        acc = vaddq_f64(acc, vcvt_f64_f32(vget_low_f32(sq)));
        acc = vaddq_f64(acc, vcvt_high_f64_f32(sq));
    }
    double sum = vaddvq_f64(acc);
    for (; i < n; i++) sum += (double)(x[i] * x[i]);
    const float mean = (float)(sum / (double)n);
    const float scale = 1.0f / sqrtf(mean + eps);
    i = 0;
    for (; i + 4 <= n; i += 4) {
        float32x4_t v = vmulq_n_f32(vld1q_f32(x + i), scale);
        if (w) v = vmulq_f32(v, vld1q_f32(w + i));
        vst1q_f32(y + i, v);
    }
    for (; i < n; i++) y[i] = w ? (x[i] * scale) * w[i] : x[i] * scale;
}

void graft_silu_gate_f32_neon(const float *gate, const float *up, float *y, int64_t n) {
    graft_silu_gate_f32_ref(gate, up, y, n);
}

void graft_softmax_f32_neon(float *x, int64_t n) { graft_softmax_f32_ref(x, n); }

float graft_dot_f16_neon(const graft_f16 *a, const graft_f16 *b, int64_t n) {
    float32x4_t acc0 = vdupq_n_f32(0.0f), acc1 = vdupq_n_f32(0.0f);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const float16x8_t va = vreinterpretq_f16_u16(vld1q_u16(a + i));
        const float16x8_t vb = vreinterpretq_f16_u16(vld1q_u16(b + i));
        acc0 = vfmaq_f32(acc0, vcvt_f32_f16(vget_low_f16(va)), vcvt_f32_f16(vget_low_f16(vb)));
        acc1 = vfmaq_f32(acc1, vcvt_high_f32_f16(va), vcvt_high_f32_f16(vb));
    }
    float sum = vaddvq_f32(vaddq_f32(acc0, acc1));
    for (; i < n; i++) {
        __fp16 ha, hb;
        __builtin_memcpy(&ha, a + i, 2);
        __builtin_memcpy(&hb, b + i, 2);
        sum += (float)ha * (float)hb;
    }
    return sum;
}

void graft_axpy_f16_neon(float a, const graft_f16 *x, float *y, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const float16x8_t vx = vreinterpretq_f16_u16(vld1q_u16(x + i));
        vst1q_f32(y + i, vfmaq_n_f32(vld1q_f32(y + i), vcvt_f32_f16(vget_low_f16(vx)), a));
        vst1q_f32(y + i + 4, vfmaq_n_f32(vld1q_f32(y + i + 4), vcvt_high_f32_f16(vx), a));
    }
    for (; i < n; i++) {
        __fp16 h;
        __builtin_memcpy(&h, x + i, 2);
        y[i] += a * (float)h;
    }
}

void graft_f32_to_f16_neon(const float *x, graft_f16 *y, int64_t n) {
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) vst1_u16(y + i, vreinterpret_u16_f16(vcvt_f16_f32(vld1q_f32(x + i))));
    for (; i < n; i++) {
        __fp16 h = (__fp16)x[i];
        __builtin_memcpy(y + i, &h, 2);
    }
}

void graft_f16_to_f32_neon(const graft_f16 *x, float *y, int64_t n) {
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) vst1q_f32(y + i, vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(x + i))));
    for (; i < n; i++) {
        __fp16 h;
        __builtin_memcpy(&h, x + i, 2);
        y[i] = (float)h;
    }
}

void graft_rope_f32_neon(float *x, int64_t n_heads, int64_t head_dim, int64_t n_rot, int64_t pos,
                         float freq_base, int32_t mode, int32_t inverse) {
    graft_rope_f32_ref(x, n_heads, head_dim, n_rot, pos, freq_base, mode, inverse);
}
