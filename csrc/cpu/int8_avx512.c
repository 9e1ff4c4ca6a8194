/* graft: AVX-512 VNNI variants of the 8-bit integer products (kernels_int8.h).
 *
 * The product keeps a 4-row × 32-column tile of C in registers: per block of 32 along K, 16
 * `vpdpbusd` (each 16 columns × 4 bytes) accumulate exact int32 dot products, which one convert
 * and one fused multiply-add by the two scales fold into f32 accumulators. The packed weights of
 * the tile's 32 columns (K bytes) stay in L1/L2 while every row of A passes them. */
#include <immintrin.h>
#include "kernels.h"

/* One block of 32 floats -> 32 int8 (as the reference: x * (127/amax), rounded to nearest even). */
static inline float quantize_block32(const float *x, int8_t *q, int32_t *sum) {
    const __m512 x0 = _mm512_loadu_ps(x), x1 = _mm512_loadu_ps(x + 16);
    const float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(x0), _mm512_abs_ps(x1)));
    if (amax == 0.0f) {
        _mm256_storeu_si256((__m256i *)q, _mm256_setzero_si256());
        *sum = 0;
        return 0.0f;
    }
    const __m512 id = _mm512_set1_ps(127.0f / amax);
    const __m512i q0 = _mm512_cvt_roundps_epi32(_mm512_mul_ps(x0, id), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    const __m512i q1 = _mm512_cvt_roundps_epi32(_mm512_mul_ps(x1, id), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    _mm_storeu_si128((__m128i *)q, _mm512_cvtepi32_epi8(q0));
    _mm_storeu_si128((__m128i *)(q + 16), _mm512_cvtepi32_epi8(q1));
    *sum = _mm512_reduce_add_epi32(_mm512_add_epi32(q0, q1));
    return amax / 127.0f;
}

void graft_int8_quantize_rows_avx512(const float *x, int64_t ldx, int64_t m, int64_t kb, int8_t *qa, int64_t lda,
                                     float *sa, int32_t *sums, int64_t lds) {
    for (int64_t i = 0; i < m; i++)
        for (int64_t b = 0; b < kb; b++)
            sa[i * lds + b] = quantize_block32(x + i * ldx + b * 32, qa + i * lda + b * 32, sums + i * lds + b);
}

/* Packing, bit for bit the reference's. Rows along K (ld_k == 1, the forward copy): each column's
 * block quantized as an activation block, its eight 4-byte words stored 64 bytes apart. Columns
 * side by side (ld_n == 1, the transposed copy): 16 columns per vector, the block's 32 values one
 * vector each; the scale per lane, and four consecutive values of a lane packed into one 32-bit
 * word, so each 64-byte store writes one [l][e] slab. Other strides: the reference. */
void graft_int8_pack_avx512(const float *w, int64_t ld_n, int64_t ld_k, int64_t n, int64_t kb, uint8_t *pw, float *sw,
                            int64_t kb_ld) {
    const int64_t groups = (n + 15) / 16;
    if (ld_k == 1) {
        for (int64_t g = 0; g < groups; g++)
            for (int64_t b = 0; b < kb; b++) {
                uint8_t *p = pw + (g * kb_ld + b) * 512;
                float *s = sw + (g * kb_ld + b) * 16;
                for (int l = 0; l < 16; l++) {
                    const int64_t j = g * 16 + l;
                    int8_t q[32] = {0};
                    int32_t unused;
                    s[l] = j < n ? quantize_block32(w + j * ld_n + b * 32, q, &unused) : 0.0f;
                    for (int qq = 0; qq < 8; qq++) {
                        uint32_t word;
                        __builtin_memcpy(&word, q + 4 * qq, 4);
                        word ^= 0x80808080u; /* q + 128 as unsigned bytes */
                        __builtin_memcpy(p + qq * 64 + l * 4, &word, 4);
                    }
                }
            }
        return;
    }
    if (ld_n != 1) {
        graft_int8_pack_ref(w, ld_n, ld_k, n, kb, pw, sw, kb_ld);
        return;
    }
    for (int64_t g = 0; g < groups; g++) {
        const int64_t cols = n - g * 16 < 16 ? n - g * 16 : 16;
        const __mmask16 mk = cols >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << cols) - 1u);
        for (int64_t b = 0; b < kb; b++) {
            const float *src = w + g * 16 + b * 32 * ld_k;
            __m512 v[32];
            __m512 amax = _mm512_setzero_ps();
            for (int e = 0; e < 32; e++) {
                v[e] = _mm512_maskz_loadu_ps(mk, src + e * ld_k);
                amax = _mm512_max_ps(amax, _mm512_abs_ps(v[e]));
            }
            const __mmask16 nz = _mm512_cmp_ps_mask(amax, _mm512_setzero_ps(), _CMP_NEQ_OQ);
            /* Zero blocks (and absent columns): id 0, so q = 0; scale 0/127 = 0. */
            const __m512 id = _mm512_maskz_div_ps(nz, _mm512_set1_ps(127.0f), amax);
            _mm512_storeu_ps(sw + (g * kb_ld + b) * 16, _mm512_div_ps(amax, _mm512_set1_ps(127.0f)));
            uint8_t *p = pw + (g * kb_ld + b) * 512;
            for (int qq = 0; qq < 8; qq++) {
                __m512i word = _mm512_setzero_si512();
                for (int e = 0; e < 4; e++) {
                    const __m512i qv = _mm512_cvt_roundps_epi32(_mm512_mul_ps(v[4 * qq + e], id), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
                    word = _mm512_or_si512(word, _mm512_slli_epi32(_mm512_and_si512(qv, _mm512_set1_epi32(0xff)), 8 * e));
                }
                _mm512_storeu_si512(p + qq * 64, _mm512_xor_si512(word, _mm512_set1_epi32((int)0x80808080u)));
            }
        }
    }
}

/* R rows (1..4) × G groups of 16 columns (1..4; R*G <= 8 keeps the accumulators in registers);
 * the last group's columns past `live` are not stored (live = columns of the tile that exist,
 * 1..16*G). Each group's int32 sums form one chain of `vpdpbusd`, so a lone row needs several
 * groups to keep the multiplier busy. */
static inline __attribute__((always_inline)) void tile(const int R, const int G, const int8_t *qa, int64_t lda,
                                                       const float *sa, const int32_t *sums, int64_t lds,
                                                       const uint8_t *pw, const float *sw, int64_t kb_ld, int64_t kb,
                                                       float *c, int64_t ldc, int32_t accumulate, int64_t live) {
    __m512 f[4][4];
    for (int r = 0; r < R; r++)
        for (int g = 0; g < G; g++) f[r][g] = _mm512_setzero_ps();
    for (int64_t b = 0; b < kb; b++) {
        __m512i acc[4][4];
        for (int r = 0; r < R; r++) {
            /* The stored weights are qw + 128: start from -128 * sum(qa) so the sum comes out exact. */
            const __m512i corr = _mm512_set1_epi32(-128 * sums[r * lds + b]);
            for (int g = 0; g < G; g++) acc[r][g] = corr;
        }
        const uint8_t *p = pw + b * 512;
        for (int q = 0; q < 8; q++) {
            __m512i wv[4];
            for (int g = 0; g < G; g++) wv[g] = _mm512_loadu_si512(p + g * kb_ld * 512 + q * 64);
            for (int r = 0; r < R; r++) {
                int32_t a4;
                __builtin_memcpy(&a4, qa + r * lda + b * 32 + q * 4, 4);
                const __m512i av = _mm512_set1_epi32(a4);
                for (int g = 0; g < G; g++) acc[r][g] = _mm512_dpbusd_epi32(acc[r][g], wv[g], av);
            }
        }
        __m512 ws[4];
        for (int g = 0; g < G; g++) ws[g] = _mm512_loadu_ps(sw + (g * kb_ld + b) * 16);
        for (int r = 0; r < R; r++) {
            const __m512 s = _mm512_set1_ps(sa[r * lds + b]);
            for (int g = 0; g < G; g++)
                f[r][g] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc[r][g]), _mm512_mul_ps(ws[g], s), f[r][g]);
        }
    }
    for (int g = 0; g < G; g++) {
        const int64_t cols = live - 16 * g;
        const __mmask16 mk = cols >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << cols) - 1u);
        for (int r = 0; r < R; r++) {
            float *cp = c + r * ldc + 16 * g;
            __m512 v = f[r][g];
            if (accumulate) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(mk, cp));
            _mm512_mask_storeu_ps(cp, mk, v);
        }
    }
}

#define TILE(R, G)                                                                                             \
    tile(R, G, qa + i * lda, lda, sa + i * lds, sums + i * lds, lds, pw + (j / 16) * kb_ld * 512, \
         sw + (j / 16) * kb_ld * 16, kb_ld, kb, c + i * ldc + j, ldc, accumulate, live)

void graft_int8_gemm_avx512(const int8_t *qa, int64_t lda, const float *sa, const int32_t *sums, int64_t lds, int64_t m,
                            const uint8_t *pw, const float *sw, int64_t kb_ld, int64_t n, int64_t kb, float *c,
                            int64_t ldc, int32_t accumulate) {
    /* Rows in fours against 32 columns at a time. */
    const int64_t m4 = m - m % 4;
    for (int64_t j = 0; j < n && m4 > 0; j += 32) {
        const int64_t live = n - j < 32 ? n - j : 32;
        for (int64_t i = 0; i < m4; i += 4) {
            if (live > 16) TILE(4, 2);
            else TILE(4, 1);
        }
    }
    /* Two or three rows left (VeRA's projections sharing B̂ at decode): together, so each packed
     * block is loaded once for them. */
    if (m - m4 == 2 || m - m4 == 3) {
        const int64_t i = m4;
        const int64_t step = m - m4 == 2 ? 64 : 32;
        for (int64_t j = 0; j < n; j += step) {
            const int64_t live = n - j < step ? n - j : step;
            if (m - m4 == 3) {
                if (live > 16) TILE(3, 2);
                else TILE(3, 1);
            } else if (live > 48) TILE(2, 4);
            else if (live > 32) TILE(2, 3);
            else if (live > 16) TILE(2, 2);
            else TILE(2, 1);
        }
        return;
    }
    /* The remaining row (decode: the only one) against 64 columns: four chains. */
    for (int64_t i = m4; i < m; i++) {
        for (int64_t j = 0; j < n; j += 64) {
            const int64_t live = n - j < 64 ? n - j : 64;
            if (live > 48) TILE(1, 4);
            else if (live > 32) TILE(1, 3);
            else if (live > 16) TILE(1, 2);
            else TILE(1, 1);
        }
    }
}
