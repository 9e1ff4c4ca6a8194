/* graft: AVX2 + FMA + F16C variants of the element-wise and attention kernels.
 * Each computes what its `_ref` twin in ops_ref.c computes; the tests name the tolerance. */
#include <immintrin.h>
#include <math.h>
#include "kernels.h"

static inline float hsum256(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static inline double hsum256d(__m256d v) {
    __m128d s = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
    s = _mm_add_sd(s, _mm_unpackhi_pd(s, s));
    return _mm_cvtsd_f64(s);
}

/* e^x, Cephes' single-precision polynomial (about 1 ulp on the clamped range [-87, 88]). */
static inline __m256 exp256(__m256 x) {
    x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.0f)), _mm256_set1_ps(88.0f));
    const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.9875691500e-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
    const __m256 r2 = _mm256_mul_ps(r, r);
    p = _mm256_fmadd_ps(p, r2, _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

void graft_rmsnorm_f32_avx2(const float *x, const float *w, float *y, int64_t n, float eps) {
    __m256d acc0 = _mm256_setzero_pd(), acc1 = _mm256_setzero_pd();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 v = _mm256_loadu_ps(x + i);
        const __m256 sq = _mm256_mul_ps(v, v);
        acc0 = _mm256_add_pd(acc0, _mm256_cvtps_pd(_mm256_castps256_ps128(sq)));
        acc1 = _mm256_add_pd(acc1, _mm256_cvtps_pd(_mm256_extractf128_ps(sq, 1)));
    }
    double sum = hsum256d(_mm256_add_pd(acc0, acc1));
    for (; i < n; i++) sum += (double)(x[i] * x[i]);
    const float mean = (float)(sum / (double)n);
    const float scale = 1.0f / sqrtf(mean + eps);
    const __m256 vs = _mm256_set1_ps(scale);
    i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_mul_ps(_mm256_loadu_ps(x + i), vs);
        if (w) v = _mm256_mul_ps(v, _mm256_loadu_ps(w + i));
        _mm256_storeu_ps(y + i, v);
    }
    for (; i < n; i++) y[i] = w ? (x[i] * scale) * w[i] : x[i] * scale;
}

void graft_silu_gate_f32_avx2(const float *gate, const float *up, float *y, int64_t n) {
    const __m256 one = _mm256_set1_ps(1.0f);
    const __m256 zero = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 g = _mm256_loadu_ps(gate + i);
        const __m256 u = _mm256_loadu_ps(up + i);
        const __m256 s = _mm256_div_ps(g, _mm256_add_ps(one, exp256(_mm256_sub_ps(zero, g))));
        _mm256_storeu_ps(y + i, _mm256_mul_ps(s, u));
    }
    for (; i < n; i++) {
        const float g = gate[i];
        y[i] = (g / (1.0f + expf(-g))) * up[i];
    }
}

void graft_softmax_f32_avx2(float *x, int64_t n) {
    if (n <= 0) return;
    float max = -INFINITY;
    int64_t i = 0;
    if (n >= 8) {
        __m256 vm = _mm256_loadu_ps(x);
        for (i = 8; i + 8 <= n; i += 8) vm = _mm256_max_ps(vm, _mm256_loadu_ps(x + i));
        __m128 m = _mm_max_ps(_mm256_castps256_ps128(vm), _mm256_extractf128_ps(vm, 1));
        m = _mm_max_ps(m, _mm_movehl_ps(m, m));
        m = _mm_max_ss(m, _mm_movehdup_ps(m));
        max = _mm_cvtss_f32(m);
    }
    for (; i < n; i++) max = x[i] > max ? x[i] : max;
    const __m256 vmax = _mm256_set1_ps(max);
    __m256d acc0 = _mm256_setzero_pd(), acc1 = _mm256_setzero_pd();
    i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 e = exp256(_mm256_sub_ps(_mm256_loadu_ps(x + i), vmax));
        _mm256_storeu_ps(x + i, e);
        acc0 = _mm256_add_pd(acc0, _mm256_cvtps_pd(_mm256_castps256_ps128(e)));
        acc1 = _mm256_add_pd(acc1, _mm256_cvtps_pd(_mm256_extractf128_ps(e, 1)));
    }
    double sum = hsum256d(_mm256_add_pd(acc0, acc1));
    for (; i < n; i++) {
        const float e = expf(x[i] - max);
        x[i] = e;
        sum += (double)e;
    }
    const float inv = (float)(1.0 / sum);
    const __m256 vinv = _mm256_set1_ps(inv);
    i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, _mm256_mul_ps(_mm256_loadu_ps(x + i), vinv));
    for (; i < n; i++) x[i] *= inv;
}

static inline __m256 load_f16x8(const graft_f16 *p) {
    return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p));
}

float graft_dot_f16_avx2(const graft_f16 *a, const graft_f16 *b, int64_t n) {
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        acc0 = _mm256_fmadd_ps(load_f16x8(a + i), load_f16x8(b + i), acc0);
        acc1 = _mm256_fmadd_ps(load_f16x8(a + i + 8), load_f16x8(b + i + 8), acc1);
    }
    for (; i + 8 <= n; i += 8) acc0 = _mm256_fmadd_ps(load_f16x8(a + i), load_f16x8(b + i), acc0);
    float sum = hsum256(_mm256_add_ps(acc0, acc1));
    for (; i < n; i++) sum += _cvtsh_ss(a[i]) * _cvtsh_ss(b[i]);
    return sum;
}

void graft_axpy_f16_avx2(float a, const graft_f16 *x, float *y, int64_t n) {
    const __m256 va = _mm256_set1_ps(a);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, load_f16x8(x + i), _mm256_loadu_ps(y + i)));
    for (; i < n; i++) y[i] += a * _cvtsh_ss(x[i]);
}

void graft_f32_to_f16_avx2(const float *x, graft_f16 *y, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(y + i), _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT));
    for (; i < n; i++) y[i] = _cvtss_sh(x[i], _MM_FROUND_TO_NEAREST_INT);
}

void graft_f16_to_f32_avx2(const graft_f16 *x, float *y, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, load_f16x8(x + i));
    for (; i < n; i++) y[i] = _cvtsh_ss(x[i]);
}

/* The cosines and sines are computed once per call (scalar, as the reference does); the rotation of
 * every head is vectorised. Mode 0 pairs are adjacent: fmaddsub(x, cos, swap(x) * sin). */
void graft_rope_f32_avx2(float *x, int64_t n_heads, int64_t head_dim, int64_t n_rot, int64_t pos,
                         float freq_base, int32_t mode, int32_t inverse) {
    enum { MAX_ROT = 1024 };
    if (n_rot > MAX_ROT || (n_rot % 16) != 0) {
        graft_rope_f32_ref(x, n_heads, head_dim, n_rot, pos, freq_base, mode, inverse);
        return;
    }
    float cs[MAX_ROT], sn[MAX_ROT]; /* mode 0: duplicated per pair; mode 2: per half */
    const float theta_scale = powf(freq_base, -2.0f / (float)n_rot);
    const float sign = inverse ? -1.0f : 1.0f;
    const int64_t half = n_rot / 2;
    float theta = (float)pos;
    for (int64_t i = 0; i < half; i++) {
        const float c = cosf(theta), s = sign * sinf(theta);
        if (mode == 2) {
            cs[i] = c;
            sn[i] = s;
        } else {
            cs[2 * i] = cs[2 * i + 1] = c;
            sn[2 * i] = sn[2 * i + 1] = s;
        }
        theta *= theta_scale;
    }
    for (int64_t h = 0; h < n_heads; h++) {
        float *v = x + h * head_dim;
        if (mode == 2) {
            for (int64_t i = 0; i < half; i += 8) {
                const __m256 x0 = _mm256_loadu_ps(v + i), x1 = _mm256_loadu_ps(v + i + half);
                const __m256 c = _mm256_loadu_ps(cs + i), s = _mm256_loadu_ps(sn + i);
                _mm256_storeu_ps(v + i, _mm256_fmsub_ps(x0, c, _mm256_mul_ps(x1, s)));
                _mm256_storeu_ps(v + i + half, _mm256_fmadd_ps(x0, s, _mm256_mul_ps(x1, c)));
            }
        } else {
            for (int64_t i = 0; i < n_rot; i += 8) {
                const __m256 xv = _mm256_loadu_ps(v + i);
                const __m256 sw = _mm256_permute_ps(xv, 0xB1); /* (x1, x0, x3, x2, ...) */
                const __m256 t = _mm256_mul_ps(sw, _mm256_loadu_ps(sn + i));
                _mm256_storeu_ps(v + i, _mm256_fmaddsub_ps(xv, _mm256_loadu_ps(cs + i), t));
            }
        }
    }
}
