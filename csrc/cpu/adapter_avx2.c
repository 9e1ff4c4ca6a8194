/* graft: AVX2 + FMA variants of the adapter kernels; each computes what its `_ref` twin in
 * adapter_ref.c computes (kernels_adapter.h states the sums), in another summation order.
 *
 * down (T = X·Aᵀ): register tiles of MR rows of X × NR rows of A, k in steps of 8 with a masked
 * tail. Decode (m = 1) takes 1×4 tiles with two accumulator sets (8 FMA chains); prefill takes 4×3
 * tiles (12 accumulators, each loaded vector used 3 or 4 times), rows of A outermost so the NR rows
 * of A stay in L1 while X streams past them.
 * up (Y += s·diag(oscale)·T·diag(tscale)·BT): decode walks each row of BT once per 64 columns
 * (8 accumulators), with tscale folded into t beforehand; prefill takes 4 rows × 16 columns tiles,
 * columns outermost so the r×16 panel of BT stays in L1 across the row tiles, with tscale folded into
 * that panel. Folding goes through a stack buffer of ADAPTER_JC rows of j, so for r > ADAPTER_JC
 * the sum over j reaches y in chunks.
 * up_q8_0 (BT in Q8_0 rows): see its section at the end. */
#include <immintrin.h>
#include "kernels.h"

#define ALWAYS_INLINE static inline __attribute__((always_inline))
enum { ADAPTER_JC = 256 };

/* The first rem (1..8) lanes, for maskload / maskstore. */
static inline __m256i lanes(int64_t rem) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)rem), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

/* [Σa, Σb, Σc, Σd] */
static inline __m128 hsum4(__m256 a, __m256 b, __m256 c, __m256 d) {
    const __m256 h = _mm256_hadd_ps(_mm256_hadd_ps(a, b), _mm256_hadd_ps(c, d));
    return _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
}

/* ---- down ---------------------------------------------------------------------------------- */

/* t[p*ldt + q] = Σ_k x[p*ldx + k]·a[q*lda + k] for p < MR, q < NR, with KU accumulator sets over k.
 * MR, NR, KU are constants at every call, so the arrays below live in registers. */
ALWAYS_INLINE void down_tile(const float *x, int64_t ldx, const float *a, int64_t lda, int64_t n,
                             float *t, int64_t ldt, const int MR, const int NR, const int KU) {
    __m256 acc[2][4][4];
    for (int u = 0; u < KU; u++)
        for (int p = 0; p < MR; p++)
            for (int q = 0; q < NR; q++) acc[u][p][q] = _mm256_setzero_ps();
    int64_t k = 0;
    for (; k + 8 * KU <= n; k += 8 * KU) {
        for (int u = 0; u < KU; u++) {
            __m256 av[4];
            for (int q = 0; q < NR; q++) av[q] = _mm256_loadu_ps(a + q * lda + k + 8 * u);
            for (int p = 0; p < MR; p++) {
                const __m256 xv = _mm256_loadu_ps(x + p * ldx + k + 8 * u);
                for (int q = 0; q < NR; q++) acc[u][p][q] = _mm256_fmadd_ps(xv, av[q], acc[u][p][q]);
            }
        }
    }
    for (; k + 8 <= n; k += 8) {
        __m256 av[4];
        for (int q = 0; q < NR; q++) av[q] = _mm256_loadu_ps(a + q * lda + k);
        for (int p = 0; p < MR; p++) {
            const __m256 xv = _mm256_loadu_ps(x + p * ldx + k);
            for (int q = 0; q < NR; q++) acc[0][p][q] = _mm256_fmadd_ps(xv, av[q], acc[0][p][q]);
        }
    }
    if (k < n) {
        const __m256i mk = lanes(n - k);
        __m256 av[4];
        for (int q = 0; q < NR; q++) av[q] = _mm256_maskload_ps(a + q * lda + k, mk);
        for (int p = 0; p < MR; p++) {
            const __m256 xv = _mm256_maskload_ps(x + p * ldx + k, mk);
            for (int q = 0; q < NR; q++) acc[0][p][q] = _mm256_fmadd_ps(xv, av[q], acc[0][p][q]);
        }
    }
    for (int u = 1; u < KU; u++)
        for (int p = 0; p < MR; p++)
            for (int q = 0; q < NR; q++) acc[0][p][q] = _mm256_add_ps(acc[0][p][q], acc[u][p][q]);
    const __m256 z = _mm256_setzero_ps();
    for (int p = 0; p < MR; p++) {
        const __m128 s = hsum4(acc[0][p][0], NR > 1 ? acc[0][p][1] : z, NR > 2 ? acc[0][p][2] : z,
                               NR > 3 ? acc[0][p][3] : z);
        if (NR == 4) {
            _mm_storeu_ps(t + p * ldt, s);
        } else {
            float tmp[4];
            _mm_storeu_ps(tmp, s);
            for (int q = 0; q < NR; q++) t[p * ldt + q] = tmp[q];
        }
    }
}

/* One tile of mr (1..4) rows of X × nr rows of A: decode tiles (mr = 1, nr <= 4) take two
 * accumulator sets, prefill tiles (nr <= 3) one. */
static void down_block(const float *x, int64_t ldx, int mr, const float *a, int64_t lda, int nr,
                       int64_t n, float *t, int64_t ldt) {
    switch (mr * 8 + nr) {
    case 8 + 1: down_tile(x, ldx, a, lda, n, t, ldt, 1, 1, 2); break;
    case 8 + 2: down_tile(x, ldx, a, lda, n, t, ldt, 1, 2, 2); break;
    case 8 + 3: down_tile(x, ldx, a, lda, n, t, ldt, 1, 3, 2); break;
    case 8 + 4: down_tile(x, ldx, a, lda, n, t, ldt, 1, 4, 2); break;
    case 16 + 1: down_tile(x, ldx, a, lda, n, t, ldt, 2, 1, 1); break;
    case 16 + 2: down_tile(x, ldx, a, lda, n, t, ldt, 2, 2, 1); break;
    case 16 + 3: down_tile(x, ldx, a, lda, n, t, ldt, 2, 3, 1); break;
    case 24 + 1: down_tile(x, ldx, a, lda, n, t, ldt, 3, 1, 1); break;
    case 24 + 2: down_tile(x, ldx, a, lda, n, t, ldt, 3, 2, 1); break;
    case 24 + 3: down_tile(x, ldx, a, lda, n, t, ldt, 3, 3, 1); break;
    case 32 + 1: down_tile(x, ldx, a, lda, n, t, ldt, 4, 1, 1); break;
    case 32 + 2: down_tile(x, ldx, a, lda, n, t, ldt, 4, 2, 1); break;
    case 32 + 3: down_tile(x, ldx, a, lda, n, t, ldt, 4, 3, 1); break;
    default: __builtin_unreachable();
    }
}

void graft_adapter_down_f32_avx2(const float *x, int64_t ldx, int64_t m, const float *a, int64_t lda,
                                 int64_t r, int64_t n, float *t, int64_t ldt) {
    const int64_t nr = m == 1 ? 4 : 3;
    for (int64_t j = 0; j < r; j += nr) {
        const int jb = (int)(r - j < nr ? r - j : nr);
        for (int64_t i = 0; i < m; i += 4) {
            const int ib = (int)(m - i < 4 ? m - i : 4);
            down_block(x + i * ldx, ldx, ib, a + j * lda, lda, jb, n, t + i * ldt + j, ldt);
        }
    }
}

/* ---- up ------------------------------------------------------------------------------------ */

/* y[c] += g[c]·acc[c] over NV vectors of 8 columns, g = s·oscale (or s); the last vector takes only
 * the lanes of mask when MASKED. */
ALWAYS_INLINE void up_store(float *y, const float *osc, __m256 vs, const __m256 *acc, const int NV,
                            const int MASKED, __m256i mask) {
    for (int v = 0; v < NV; v++) {
        const int msk = MASKED && v == NV - 1;
        __m256 g = vs;
        if (osc) g = _mm256_mul_ps(vs, msk ? _mm256_maskload_ps(osc + 8 * v, mask) : _mm256_loadu_ps(osc + 8 * v));
        if (msk) {
            _mm256_maskstore_ps(y + 8 * v, mask, _mm256_fmadd_ps(g, acc[v], _mm256_maskload_ps(y + 8 * v, mask)));
        } else {
            _mm256_storeu_ps(y + 8 * v, _mm256_fmadd_ps(g, acc[v], _mm256_loadu_ps(y + 8 * v)));
        }
    }
}

/* p + c, or NULL for an absent scale. */
static inline const float *at(const float *p, int64_t c) { return p ? p + c : NULL; }

ALWAYS_INLINE __m256 load_b(const float *p, const int msk, __m256i mask) {
    return msk ? _mm256_maskload_ps(p, mask) : _mm256_loadu_ps(p);
}

/* One row: y[c] += g[c]·Σ_{j<jn} u[j]·b[j*ldb + c] for the 8·NV columns at b and y, with KU
 * accumulator sets over j (to keep 4 or more FMA chains when NV is small). */
ALWAYS_INLINE void up_row(const float *u, int64_t jn, const float *b, int64_t ldb, const float *osc,
                          __m256 vs, float *y, const int NV, const int KU, const int MASKED, __m256i mask) {
    __m256 acc[4][8];
    for (int q = 0; q < KU; q++)
        for (int v = 0; v < NV; v++) acc[q][v] = _mm256_setzero_ps();
    int64_t j = 0;
    for (; j + KU <= jn; j += KU) {
        for (int q = 0; q < KU; q++) {
            const __m256 uv = _mm256_broadcast_ss(u + j + q);
            const float *p = b + (j + q) * ldb;
            for (int v = 0; v < NV; v++)
                acc[q][v] = _mm256_fmadd_ps(uv, load_b(p + 8 * v, MASKED && v == NV - 1, mask), acc[q][v]);
        }
    }
    for (; j < jn; j++) {
        const __m256 uv = _mm256_broadcast_ss(u + j);
        for (int v = 0; v < NV; v++)
            acc[0][v] = _mm256_fmadd_ps(uv, load_b(b + j * ldb + 8 * v, MASKED && v == NV - 1, mask), acc[0][v]);
    }
    for (int q = 1; q < KU; q++)
        for (int v = 0; v < NV; v++) acc[0][v] = _mm256_add_ps(acc[0][v], acc[q][v]);
    up_store(y, osc, vs, acc[0], NV, MASKED, mask);
}

/* Four rows: y[p*ldy + c] += g[c]·Σ_{j<jn} t[p*ldt + j]·b[j*ldb + c], p < 4, over 8·NV columns. */
ALWAYS_INLINE void up_tile4(const float *t, int64_t ldt, int64_t jn, const float *b, int64_t ldb,
                            const float *osc, __m256 vs, float *y, int64_t ldy, const int NV,
                            const int MASKED, __m256i mask) {
    __m256 acc[4][2];
    for (int p = 0; p < 4; p++)
        for (int v = 0; v < NV; v++) acc[p][v] = _mm256_setzero_ps();
    for (int64_t j = 0; j < jn; j++) {
        __m256 bv[2];
        for (int v = 0; v < NV; v++) bv[v] = load_b(b + j * ldb + 8 * v, MASKED && v == NV - 1, mask);
        for (int p = 0; p < 4; p++) {
            const __m256 tv = _mm256_broadcast_ss(t + p * ldt + j);
            for (int v = 0; v < NV; v++) acc[p][v] = _mm256_fmadd_ps(tv, bv[v], acc[p][v]);
        }
    }
    for (int p = 0; p < 4; p++) up_store(y + p * ldy, osc, vs, acc[p], NV, MASKED, mask);
}

/* Rows [0, m4) (m4 a multiple of 4), one column block of 8·NV columns at c. */
ALWAYS_INLINE void up_rows4_cols(const float *t, int64_t ldt, int64_t m4, int64_t r, const float *tscale,
                                 const float *bt, int64_t ldb, const float *osc, __m256 vs, float *y,
                                 int64_t ldy, const int NV, const int MASKED, __m256i mask) {
    _Alignas(32) float panel[ADAPTER_JC * 16];
    const int64_t jc = tscale ? ADAPTER_JC : r;
    for (int64_t j0 = 0; j0 < r; j0 += jc) {
        const int64_t jn = r - j0 < jc ? r - j0 : jc;
        const float *b = bt + j0 * ldb;
        int64_t ldw = ldb;
        if (tscale) {
            for (int64_t j = 0; j < jn; j++) {
                const __m256 ts = _mm256_broadcast_ss(tscale + j0 + j);
                for (int v = 0; v < NV; v++)
                    _mm256_store_ps(panel + j * 16 + 8 * v,
                                    _mm256_mul_ps(ts, load_b(b + j * ldb + 8 * v, MASKED && v == NV - 1, mask)));
            }
            b = panel;
            ldw = 16;
        }
        for (int64_t i = 0; i < m4; i += 4)
            up_tile4(t + i * ldt + j0, ldt, jn, b, ldw, osc, vs, y + i * ldy, ldy, NV, MASKED, mask);
    }
}

static void up_rows4(const float *t, int64_t ldt, int64_t m4, int64_t r, const float *tscale, const float *bt,
                     int64_t ldb, int64_t ncols, const float *oscale, float s, float *y, int64_t ldy) {
    const __m256 vs = _mm256_set1_ps(s);
    const __m256i all = _mm256_set1_epi32(-1);
    int64_t c = 0;
    for (; c + 16 <= ncols; c += 16) up_rows4_cols(t, ldt, m4, r, tscale, bt + c, ldb, at(oscale, c), vs, y + c, ldy, 2, 0, all);
    if (c + 8 <= ncols) {
        up_rows4_cols(t, ldt, m4, r, tscale, bt + c, ldb, at(oscale, c), vs, y + c, ldy, 1, 0, all);
        c += 8;
    }
    if (c < ncols) up_rows4_cols(t, ldt, m4, r, tscale, bt + c, ldb, at(oscale, c), vs, y + c, ldy, 1, 1, lanes(ncols - c));
}

static void up_row1(const float *t, int64_t r, const float *tscale, const float *bt, int64_t ldb, int64_t ncols,
                    const float *oscale, float s, float *y) {
    _Alignas(32) float ubuf[ADAPTER_JC];
    const __m256 vs = _mm256_set1_ps(s);
    const __m256i all = _mm256_set1_epi32(-1);
    const int64_t jc = tscale ? ADAPTER_JC : r;
    for (int64_t j0 = 0; j0 < r; j0 += jc) {
        const int64_t jn = r - j0 < jc ? r - j0 : jc;
        const float *u = t + j0;
        if (tscale) {
            int64_t j = 0;
            for (; j + 8 <= jn; j += 8)
                _mm256_store_ps(ubuf + j, _mm256_mul_ps(_mm256_loadu_ps(tscale + j0 + j), _mm256_loadu_ps(t + j0 + j)));
            for (; j < jn; j++) ubuf[j] = tscale[j0 + j] * t[j0 + j];
            u = ubuf;
        }
        const float *b = bt + j0 * ldb;
        int64_t c = 0;
        for (; c + 64 <= ncols; c += 64) up_row(u, jn, b + c, ldb, at(oscale, c), vs, y + c, 8, 1, 0, all);
        if (c + 32 <= ncols) {
            up_row(u, jn, b + c, ldb, at(oscale, c), vs, y + c, 4, 2, 0, all);
            c += 32;
        }
        if (c + 16 <= ncols) {
            up_row(u, jn, b + c, ldb, at(oscale, c), vs, y + c, 2, 2, 0, all);
            c += 16;
        }
        if (c + 8 <= ncols) {
            up_row(u, jn, b + c, ldb, at(oscale, c), vs, y + c, 1, 4, 0, all);
            c += 8;
        }
        if (c < ncols) up_row(u, jn, b + c, ldb, at(oscale, c), vs, y + c, 1, 4, 1, lanes(ncols - c));
    }
}

void graft_adapter_up_f32_avx2(const float *t, int64_t ldt, int64_t m, int64_t r, const float *tscale,
                               const float *bt, int64_t ldb, int64_t ncols, const float *oscale, float s,
                               float *y, int64_t ldy) {
    if (m <= 0 || r <= 0 || ncols <= 0) return;
    const int64_t m4 = m & ~(int64_t)3;
    if (m4) up_rows4(t, ldt, m4, r, tscale, bt, ldb, ncols, oscale, s, y, ldy);
    for (int64_t i = m4; i < m; i++) up_row1(t + i * ldt, r, tscale, bt, ldb, ncols, oscale, s, y + i * ldy);
}

/* ---- up over Q8_0 rows of BT ------------------------------------------------------------------ */

/* Walks the blocks of BT that hold columns c0 .. c0+ncols-1: block b spans the absolute columns
 * [32b, 32b + 32), of which lanes [lo, hi) are in range (only the first and the last block may be
 * cut). y, oscale and the output columns are addressed from lane lo, so no pointer ever leaves
 * [0, ncols); a cut block is stored through copies (q8_store). Decode (one row) is bound by
 * converting the quants (vpmovsxbd + vcvtdq2ps per 8), not by bandwidth: it takes two whole blocks
 * (8 accumulators) per pass over j, each 8 quants converted once and FMAed with w = u_j·d_jb
 * broadcast (u_j = tscale_j·t_j folded beforehand, both blocks' w made in one vector). Prefill
 * converts each half block (16 columns) × ADAPTER_JC rows of BT once into an f32 panel (scaled by
 * tscale_j·d_j) in L1 and runs every row tile of 2 to 4 rows over it: at m = 128 that is 1.6× faster
 * than converting per tile of 4 rows, and as fast as the f32 kernel. */
enum { Q8_SIZE = (int)sizeof(graft_block_q8_0), Q8_QS = (int)offsetof(graft_block_q8_0, qs) };

/* The f16 scale of the block at p (any alignment). */
static inline float q8_d(const unsigned char *p) {
    graft_f16 d;
    __builtin_memcpy(&d, p, sizeof d);
    return _cvtsh_ss(d);
}

/* The 8 int8 quants at p as floats. */
static inline __m256 q8_cvt8(const unsigned char *p) {
    return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)p)));
}

/* up_store over the lanes lo <= c < hi of 8·NV columns, y and osc addressed from lane lo. A cut
 * block (lo > 0 or hi < 8·NV) goes through copies of y and osc, so that it rounds as a whole one. One
 * call of up_store either way, indexing acc by constants only (so it stays in registers). */
ALWAYS_INLINE void q8_store(float *y, const float *osc, __m256 vs, const __m256 *acc, const int NV, int lo, int hi) {
    const int cut = lo != 0 || hi != 8 * NV;
    _Alignas(32) float yb[64], ob[64];
    float *yd = y;
    const float *od = osc;
    if (cut) {
        for (int c = 0; c < 8 * NV; c++) {
            const int in = c >= lo && c < hi;
            yb[c] = in ? y[c - lo] : 0.0f;
            ob[c] = in && osc ? osc[c - lo] : 0.0f;
        }
        yd = yb;
        od = osc ? ob : NULL;
    }
    up_store(yd, od, vs, acc, NV, 0, _mm256_set1_epi32(-1));
    if (cut)
        for (int c = lo; c < hi && c < 8 * NV; c++) y[c - lo] = yb[c];
}

/* One row: acc[4b + v] = Σ_{j<jn} (u[j]·d_jb)·q_jb[8v .. 8v+8) over the NB (1 or 2) blocks at q (row j's
 * at q + j·bs), then y += g·acc over those blocks' lanes [lo, hi) of all 32·NB (lo = 0, hi = 32·NB
 * when whole). */
ALWAYS_INLINE void q8_row(const float *u, int64_t jn, const unsigned char *q, size_t bs, const float *osc,
                          float s, float *y, int lo, int hi, const int NB) {
    __m256 acc[8];
    for (int v = 0; v < 4 * NB; v++) acc[v] = _mm256_setzero_ps();
    for (int64_t j = 0; j < jn; j++, q += bs) {
        /* [u_j·d_j0, u_j·d_j1]: both scales converted and scaled at once (12% faster than one by one). */
        graft_f16 d0, d1 = 0;
        __builtin_memcpy(&d0, q, sizeof d0);
        if (NB > 1) __builtin_memcpy(&d1, q + Q8_SIZE, sizeof d1);
        const __m128 wv = _mm_mul_ps(_mm_cvtph_ps(_mm_cvtsi32_si128((int)((uint32_t)d0 | (uint32_t)d1 << 16))),
                                     _mm_broadcast_ss(u + j));
        for (int b = 0; b < NB; b++) {
            const unsigned char *blk = q + b * Q8_SIZE;
            const __m256 w = b == 0 ? _mm256_broadcastss_ps(wv)
                                    : _mm256_permutevar8x32_ps(_mm256_castps128_ps256(wv), _mm256_set1_epi32(1));
            for (int v = 0; v < 4; v++) acc[4 * b + v] = _mm256_fmadd_ps(w, q8_cvt8(blk + Q8_QS + 8 * v), acc[4 * b + v]);
        }
    }
    q8_store(y, osc, _mm256_set1_ps(s), acc, 4 * NB, lo, hi);
}

static void q8_up_row1(const float *t, int64_t r, const float *tscale, const unsigned char *bt, size_t bs,
                       int64_t c0, int64_t ncols, const float *oscale, float s, float *y) {
    _Alignas(32) float ubuf[ADAPTER_JC];
    const int64_t jc = tscale ? ADAPTER_JC : r, cend = c0 + ncols, bend = (cend - 1) / 32 + 1;
    for (int64_t j0 = 0; j0 < r; j0 += jc) {
        const int64_t jn = r - j0 < jc ? r - j0 : jc;
        const float *u = t + j0;
        if (tscale) {
            int64_t j = 0;
            for (; j + 8 <= jn; j += 8)
                _mm256_store_ps(ubuf + j, _mm256_mul_ps(_mm256_loadu_ps(tscale + j0 + j), _mm256_loadu_ps(t + j0 + j)));
            for (; j < jn; j++) ubuf[j] = tscale[j0 + j] * t[j0 + j];
            u = ubuf;
        }
        const unsigned char *q = bt + (size_t)j0 * bs;
        for (int64_t b = c0 / 32; b < bend;) {
            const int64_t cs = 32 * b, lo = cs < c0 ? c0 - cs : 0, hi = cs + 32 > cend ? cend - cs : 32;
            const int64_t c = cs + lo - c0; /* output column of lane lo */
            if (lo == 0 && cs + 64 <= cend) {
                q8_row(u, jn, q + b * Q8_SIZE, bs, at(oscale, c), s, y + c, 0, 64, 2);
                b += 2;
            } else {
                q8_row(u, jn, q + b * Q8_SIZE, bs, at(oscale, c), s, y + c, (int)lo, (int)hi, 1);
                b++;
            }
        }
    }
}

/* MR rows × 16 columns over a dequantized panel (row j at panel + 16j): acc[p][v] = Σ_{j<jn}
 * t[p*ldt + j]·panel[16j + 8v ..], then y[p*ldy + ·] += g·acc over lanes [lo, hi) of the 16. */
ALWAYS_INLINE void q8_tile(const float *t, int64_t ldt, int64_t jn, const float *panel, const float *osc, float s,
                           float *y, int64_t ldy, int lo, int hi, const int MR) {
    /* (Named accumulators: GCC 12 kept an acc[4][2] array in memory here, storing it every j.) */
    __m256 a00 = _mm256_setzero_ps(), a01 = a00, a10 = a00, a11 = a00, a20 = a00, a21 = a00, a30 = a00, a31 = a00;
    for (int64_t j = 0; j < jn; j++) {
        const __m256 b0 = _mm256_load_ps(panel + 16 * j), b1 = _mm256_load_ps(panel + 16 * j + 8);
        __m256 tv = _mm256_broadcast_ss(t + j);
        a00 = _mm256_fmadd_ps(tv, b0, a00);
        a01 = _mm256_fmadd_ps(tv, b1, a01);
        if (MR > 1) {
            tv = _mm256_broadcast_ss(t + ldt + j);
            a10 = _mm256_fmadd_ps(tv, b0, a10);
            a11 = _mm256_fmadd_ps(tv, b1, a11);
        }
        if (MR > 2) {
            tv = _mm256_broadcast_ss(t + 2 * ldt + j);
            a20 = _mm256_fmadd_ps(tv, b0, a20);
            a21 = _mm256_fmadd_ps(tv, b1, a21);
        }
        if (MR > 3) {
            tv = _mm256_broadcast_ss(t + 3 * ldt + j);
            a30 = _mm256_fmadd_ps(tv, b0, a30);
            a31 = _mm256_fmadd_ps(tv, b1, a31);
        }
    }
    const __m256 acc[4][2] = {{a00, a01}, {a10, a11}, {a20, a21}, {a30, a31}};
    const __m256 vs = _mm256_set1_ps(s);
    if (lo == 0 && hi == 16) {
        for (int p = 0; p < MR; p++) up_store(y + p * ldy, osc, vs, acc[p], 2, 0, _mm256_set1_epi32(-1));
    } else {
        for (int p = 0; p < MR; p++) q8_store(y + p * ldy, osc, vs, acc[p], 2, lo, hi);
    }
}

/* Rows [0, mt) in tiles of up to 4 rows (a last tile of one row is left to the caller): per half
 * block of 16 columns and chunk of ADAPTER_JC rows of BT, the quants are converted once into an f32
 * panel (scaled by tscale_j·d_j, exact d·q when tscale is absent) that stays in L1 while every row
 * tile runs over it. */
static void q8_up_rows(const float *t, int64_t ldt, int64_t mt, int64_t r, const float *tscale, const unsigned char *bt,
                       size_t bs, int64_t c0, int64_t ncols, const float *oscale, float s, float *y, int64_t ldy) {
    _Alignas(32) float panel[ADAPTER_JC * 16];
    const int64_t cend = c0 + ncols, hend = (cend - 1) / 16 + 1;
    for (int64_t hb = c0 / 16; hb < hend; hb++) {
        const int64_t cs = 16 * hb, lo = cs < c0 ? c0 - cs : 0, hi = cs + 16 > cend ? cend - cs : 16;
        const int64_t c = cs + lo - c0;
        const float *osc = at(oscale, c);
        for (int64_t j0 = 0; j0 < r; j0 += ADAPTER_JC) {
            const int64_t jn = r - j0 < ADAPTER_JC ? r - j0 : ADAPTER_JC;
            const unsigned char *q = bt + (size_t)j0 * bs + (hb / 2) * Q8_SIZE;
            for (int64_t j = 0; j < jn; j++, q += bs) {
                const float d = q8_d(q);
                const __m256 w = _mm256_set1_ps(tscale ? tscale[j0 + j] * d : d);
                const unsigned char *qs = q + Q8_QS + 16 * (hb & 1);
                _mm256_store_ps(panel + 16 * j, _mm256_mul_ps(w, q8_cvt8(qs)));
                _mm256_store_ps(panel + 16 * j + 8, _mm256_mul_ps(w, q8_cvt8(qs + 8)));
            }
            for (int64_t i = 0; i < mt; i += 4) {
                const int64_t mr = mt - i < 4 ? mt - i : 4;
                const float *ti = t + i * ldt + j0;
                float *yi = y + i * ldy + c;
                if (mr == 4) q8_tile(ti, ldt, jn, panel, osc, s, yi, ldy, (int)lo, (int)hi, 4);
                else if (mr == 3) q8_tile(ti, ldt, jn, panel, osc, s, yi, ldy, (int)lo, (int)hi, 3);
                else q8_tile(ti, ldt, jn, panel, osc, s, yi, ldy, (int)lo, (int)hi, 2);
            }
        }
    }
}

void graft_adapter_up_q8_0_avx2(const float *t, int64_t ldt, int64_t m, int64_t r, const float *tscale,
                                const void *bt, size_t bt_stride, int64_t c0, int64_t ncols, const float *oscale,
                                float s, float *y, int64_t ldy) {
    if (m <= 0 || r <= 0 || ncols <= 0) return;
    /* Rows in tiles of 4 (the last tile of 2 or 3 rows included); a lone last row, or m = 1, goes
     * through the decode path. */
    const int64_t mt = m % 4 == 1 ? m - 1 : m;
    if (mt) q8_up_rows(t, ldt, mt, r, tscale, bt, bt_stride, c0, ncols, oscale, s, y, ldy);
    if (mt < m) q8_up_row1(t + mt * ldt, r, tscale, bt, bt_stride, c0, ncols, oscale, s, y + mt * ldy);
}
