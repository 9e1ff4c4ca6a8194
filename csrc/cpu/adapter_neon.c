/* graft: NEON variants of the adapter kernels (aarch64 only); each computes what its `_ref` twin in
 * adapter_ref.c computes, in another summation order. The tiling is adapter_avx2.c's on 4-lane
 * vectors, with AArch64's 32 registers: down takes 1×4 tiles with two accumulator sets at decode and
 * 4×4 tiles at prefill; up takes 32 columns a row at decode and 4 rows × 16 columns at prefill. Tails
 * (k % 4 in down, ncols % 4 in up) are scalar. up_q8_0 (BT in Q8_0 rows): see its section at the end. */
#include <arm_neon.h>
#include "kernels.h"

#define ALWAYS_INLINE static inline __attribute__((always_inline))
enum { ADAPTER_JC = 256 };

/* ---- down ---------------------------------------------------------------------------------- */

ALWAYS_INLINE void down_tile(const float *x, int64_t ldx, const float *a, int64_t lda, int64_t n,
                             float *t, int64_t ldt, const int MR, const int NR, const int KU) {
    float32x4_t acc[2][4][4];
    for (int u = 0; u < KU; u++)
        for (int p = 0; p < MR; p++)
            for (int q = 0; q < NR; q++) acc[u][p][q] = vdupq_n_f32(0.0f);
    int64_t k = 0;
    for (; k + 4 * KU <= n; k += 4 * KU) {
        for (int u = 0; u < KU; u++) {
            float32x4_t av[4];
            for (int q = 0; q < NR; q++) av[q] = vld1q_f32(a + q * lda + k + 4 * u);
            for (int p = 0; p < MR; p++) {
                const float32x4_t xv = vld1q_f32(x + p * ldx + k + 4 * u);
                for (int q = 0; q < NR; q++) acc[u][p][q] = vfmaq_f32(acc[u][p][q], xv, av[q]);
            }
        }
    }
    for (; k + 4 <= n; k += 4) {
        float32x4_t av[4];
        for (int q = 0; q < NR; q++) av[q] = vld1q_f32(a + q * lda + k);
        for (int p = 0; p < MR; p++) {
            const float32x4_t xv = vld1q_f32(x + p * ldx + k);
            for (int q = 0; q < NR; q++) acc[0][p][q] = vfmaq_f32(acc[0][p][q], xv, av[q]);
        }
    }
    for (int u = 1; u < KU; u++)
        for (int p = 0; p < MR; p++)
            for (int q = 0; q < NR; q++) acc[0][p][q] = vaddq_f32(acc[0][p][q], acc[u][p][q]);
    const float32x4_t z = vdupq_n_f32(0.0f);
    for (int p = 0; p < MR; p++) {
        /* [Σacc0, Σacc1, Σacc2, Σacc3] */
        const float32x4_t s = vpaddq_f32(vpaddq_f32(acc[0][p][0], NR > 1 ? acc[0][p][1] : z),
                                         vpaddq_f32(NR > 2 ? acc[0][p][2] : z, NR > 3 ? acc[0][p][3] : z));
        float tmp[4];
        vst1q_f32(tmp, s);
        for (int q = 0; q < NR; q++) {
            float v = tmp[q];
            for (int64_t kk = k; kk < n; kk++) v += x[p * ldx + kk] * a[q * lda + kk];
            t[p * ldt + q] = v;
        }
    }
}

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
    case 16 + 4: down_tile(x, ldx, a, lda, n, t, ldt, 2, 4, 1); break;
    case 24 + 1: down_tile(x, ldx, a, lda, n, t, ldt, 3, 1, 1); break;
    case 24 + 2: down_tile(x, ldx, a, lda, n, t, ldt, 3, 2, 1); break;
    case 24 + 3: down_tile(x, ldx, a, lda, n, t, ldt, 3, 3, 1); break;
    case 24 + 4: down_tile(x, ldx, a, lda, n, t, ldt, 3, 4, 1); break;
    case 32 + 1: down_tile(x, ldx, a, lda, n, t, ldt, 4, 1, 1); break;
    case 32 + 2: down_tile(x, ldx, a, lda, n, t, ldt, 4, 2, 1); break;
    case 32 + 3: down_tile(x, ldx, a, lda, n, t, ldt, 4, 3, 1); break;
    case 32 + 4: down_tile(x, ldx, a, lda, n, t, ldt, 4, 4, 1); break;
    default: __builtin_unreachable();
    }
}

void graft_adapter_down_f32_neon(const float *x, int64_t ldx, int64_t m, const float *a, int64_t lda,
                                 int64_t r, int64_t n, float *t, int64_t ldt) {
    for (int64_t j = 0; j < r; j += 4) {
        const int jb = (int)(r - j < 4 ? r - j : 4);
        for (int64_t i = 0; i < m; i += 4) {
            const int ib = (int)(m - i < 4 ? m - i : 4);
            down_block(x + i * ldx, ldx, ib, a + j * lda, lda, jb, n, t + i * ldt + j, ldt);
        }
    }
}

/* ---- up ------------------------------------------------------------------------------------ */

static inline const float *at(const float *p, int64_t c) { return p ? p + c : NULL; }

/* y[c] += g[c]·acc[c] over NV vectors of 4 columns, g = s·oscale (or s). */
ALWAYS_INLINE void up_store(float *y, const float *osc, float s, const float32x4_t *acc, const int NV) {
    for (int v = 0; v < NV; v++) {
        const float32x4_t g = osc ? vmulq_n_f32(vld1q_f32(osc + 4 * v), s) : vdupq_n_f32(s);
        vst1q_f32(y + 4 * v, vfmaq_f32(vld1q_f32(y + 4 * v), g, acc[v]));
    }
}

/* One row, 4·NV columns, KU accumulator sets over j. */
ALWAYS_INLINE void up_row(const float *u, int64_t jn, const float *b, int64_t ldb, const float *osc, float s,
                          float *y, const int NV, const int KU) {
    float32x4_t acc[4][8];
    for (int q = 0; q < KU; q++)
        for (int v = 0; v < NV; v++) acc[q][v] = vdupq_n_f32(0.0f);
    int64_t j = 0;
    for (; j + KU <= jn; j += KU) {
        for (int q = 0; q < KU; q++) {
            const float uj = u[j + q];
            const float *p = b + (j + q) * ldb;
            for (int v = 0; v < NV; v++) acc[q][v] = vfmaq_n_f32(acc[q][v], vld1q_f32(p + 4 * v), uj);
        }
    }
    for (; j < jn; j++)
        for (int v = 0; v < NV; v++) acc[0][v] = vfmaq_n_f32(acc[0][v], vld1q_f32(b + j * ldb + 4 * v), u[j]);
    for (int q = 1; q < KU; q++)
        for (int v = 0; v < NV; v++) acc[0][v] = vaddq_f32(acc[0][v], acc[q][v]);
    up_store(y, osc, s, acc[0], NV);
}

/* Four rows × 4·NV columns. */
ALWAYS_INLINE void up_tile4(const float *t, int64_t ldt, int64_t jn, const float *b, int64_t ldb,
                            const float *osc, float s, float *y, int64_t ldy, const int NV) {
    float32x4_t acc[4][4];
    for (int p = 0; p < 4; p++)
        for (int v = 0; v < NV; v++) acc[p][v] = vdupq_n_f32(0.0f);
    for (int64_t j = 0; j < jn; j++) {
        float32x4_t bv[4];
        for (int v = 0; v < NV; v++) bv[v] = vld1q_f32(b + j * ldb + 4 * v);
        for (int p = 0; p < 4; p++) {
            const float tj = t[p * ldt + j];
            for (int v = 0; v < NV; v++) acc[p][v] = vfmaq_n_f32(acc[p][v], bv[v], tj);
        }
    }
    for (int p = 0; p < 4; p++) up_store(y + p * ldy, osc, s, acc[p], NV);
}

ALWAYS_INLINE void up_rows4_cols(const float *t, int64_t ldt, int64_t m4, int64_t r, const float *tscale,
                                 const float *bt, int64_t ldb, const float *osc, float s, float *y,
                                 int64_t ldy, const int NV) {
    float panel[ADAPTER_JC * 16];
    const int64_t jc = tscale ? ADAPTER_JC : r;
    for (int64_t j0 = 0; j0 < r; j0 += jc) {
        const int64_t jn = r - j0 < jc ? r - j0 : jc;
        const float *b = bt + j0 * ldb;
        int64_t ldw = ldb;
        if (tscale) {
            for (int64_t j = 0; j < jn; j++)
                for (int v = 0; v < NV; v++)
                    vst1q_f32(panel + j * 16 + 4 * v, vmulq_n_f32(vld1q_f32(b + j * ldb + 4 * v), tscale[j0 + j]));
            b = panel;
            ldw = 16;
        }
        for (int64_t i = 0; i < m4; i += 4)
            up_tile4(t + i * ldt + j0, ldt, jn, b, ldw, osc, s, y + i * ldy, ldy, NV);
    }
}

void graft_adapter_up_f32_neon(const float *t, int64_t ldt, int64_t m, int64_t r, const float *tscale,
                               const float *bt, int64_t ldb, int64_t ncols, const float *oscale, float s,
                               float *y, int64_t ldy) {
    if (m <= 0 || r <= 0 || ncols <= 0) return;
    const int64_t m4 = m & ~(int64_t)3, c4 = ncols & ~(int64_t)3;
    int64_t c = 0;
    if (m4) {
        for (; c + 16 <= c4; c += 16) up_rows4_cols(t, ldt, m4, r, tscale, bt + c, ldb, at(oscale, c), s, y + c, ldy, 4);
        for (; c < c4; c += 4) up_rows4_cols(t, ldt, m4, r, tscale, bt + c, ldb, at(oscale, c), s, y + c, ldy, 1);
    }
    for (int64_t i = m4; i < m; i++) {
        float ubuf[ADAPTER_JC];
        const int64_t jc = tscale ? ADAPTER_JC : r;
        float *yi = y + i * ldy;
        for (int64_t j0 = 0; j0 < r; j0 += jc) {
            const int64_t jn = r - j0 < jc ? r - j0 : jc;
            const float *u = t + i * ldt + j0;
            if (tscale) {
                for (int64_t j = 0; j < jn; j++) ubuf[j] = tscale[j0 + j] * u[j];
                u = ubuf;
            }
            const float *b = bt + j0 * ldb;
            c = 0;
            for (; c + 32 <= c4; c += 32) up_row(u, jn, b + c, ldb, at(oscale, c), s, yi + c, 8, 1);
            if (c + 16 <= c4) {
                up_row(u, jn, b + c, ldb, at(oscale, c), s, yi + c, 4, 2);
                c += 16;
            }
            if (c + 8 <= c4) {
                up_row(u, jn, b + c, ldb, at(oscale, c), s, yi + c, 2, 2);
                c += 8;
            }
            if (c < c4) up_row(u, jn, b + c, ldb, at(oscale, c), s, yi + c, 1, 4);
        }
    }
    /* The last ncols % 4 columns of every row, as the reference computes them. */
    if (c4 < ncols)
        graft_adapter_up_f32_ref(t, ldt, m, r, tscale, bt + c4, ldb, ncols - c4, at(oscale, c4), s, y + c4, ldy);
}

/* ---- up over Q8_0 rows of BT ------------------------------------------------------------------ */

/* adapter_avx2.c's scheme on 4-lane vectors: blocks of BT that hold columns c0 .. c0+ncols-1, lanes
 * [lo, hi) of each in range, outputs addressed from lane lo; decode takes one block (8 accumulators)
 * per pass over j with w = u_j·d_jb; row tiles of 2 to 4 rows × 16 columns run over
 * an f32 panel of half a block's columns, converted once (scaled by tscale_j·d_j) for all rows. */
enum { Q8_SIZE = (int)sizeof(graft_block_q8_0), Q8_QS = (int)offsetof(graft_block_q8_0, qs) };

static inline float q8_d(const unsigned char *p) {
    __fp16 d;
    __builtin_memcpy(&d, p, sizeof d);
    return (float)d;
}

/* The 16 int8 quants at p as four vectors of floats. */
static inline void q8_cvt16(const unsigned char *p, float32x4_t *f) {
    const int8x16_t q = vld1q_s8((const int8_t *)p);
    const int16x8_t lo = vmovl_s8(vget_low_s8(q)), hi = vmovl_high_s8(q);
    f[0] = vcvtq_f32_s32(vmovl_s16(vget_low_s16(lo)));
    f[1] = vcvtq_f32_s32(vmovl_high_s16(lo));
    f[2] = vcvtq_f32_s32(vmovl_s16(vget_low_s16(hi)));
    f[3] = vcvtq_f32_s32(vmovl_high_s16(hi));
}

/* up_store over the lanes lo <= c < hi of 4·NV columns (a cut block), y and osc addressed from
 * lane lo, through copies of y and osc so that it rounds as a whole block. */
ALWAYS_INLINE void q8_store_cut(float *y, const float *osc, float s, const float32x4_t *acc, const int NV, int lo, int hi) {
    float yb[64], ob[64];
    for (int c = 0; c < 4 * NV; c++) {
        const int in = c >= lo && c < hi;
        yb[c] = in ? y[c - lo] : 0.0f;
        ob[c] = in && osc ? osc[c - lo] : 0.0f;
    }
    up_store(yb, osc ? ob : NULL, s, acc, NV);
    for (int c = lo; c < hi && c < 4 * NV; c++) y[c - lo] = yb[c];
}

/* One row over NB whole blocks at q: acc = Σ_{j<jn} (u[j]·d_jb)·q_jb, y += g·acc over lanes [lo, hi). */
ALWAYS_INLINE void q8_row(const float *u, int64_t jn, const unsigned char *q, size_t bs, const float *osc,
                          float s, float *y, int lo, int hi, const int NB) {
    float32x4_t acc[16];
    for (int v = 0; v < 8 * NB; v++) acc[v] = vdupq_n_f32(0.0f);
    for (int64_t j = 0; j < jn; j++, q += bs) {
        for (int b = 0; b < NB; b++) {
            const unsigned char *blk = q + b * Q8_SIZE;
            const float w = u[j] * q8_d(blk);
            for (int h = 0; h < 2; h++) {
                float32x4_t f[4];
                q8_cvt16(blk + Q8_QS + 16 * h, f);
                for (int v = 0; v < 4; v++) acc[8 * b + 4 * h + v] = vfmaq_n_f32(acc[8 * b + 4 * h + v], f[v], w);
            }
        }
    }
    if (lo == 0 && hi == 32 * NB)
        up_store(y, osc, s, acc, 8 * NB);
    else
        q8_store_cut(y, osc, s, acc, 8 * NB, lo, hi);
}

static void q8_up_row1(const float *t, int64_t r, const float *tscale, const unsigned char *bt, size_t bs,
                       int64_t c0, int64_t ncols, const float *oscale, float s, float *y) {
    float ubuf[ADAPTER_JC];
    const int64_t jc = tscale ? ADAPTER_JC : r, cend = c0 + ncols, bend = (cend - 1) / 32 + 1;
    for (int64_t j0 = 0; j0 < r; j0 += jc) {
        const int64_t jn = r - j0 < jc ? r - j0 : jc;
        const float *u = t + j0;
        if (tscale) {
            for (int64_t j = 0; j < jn; j++) ubuf[j] = tscale[j0 + j] * t[j0 + j];
            u = ubuf;
        }
        const unsigned char *q = bt + (size_t)j0 * bs;
        for (int64_t b = c0 / 32; b < bend; b++) {
            const int64_t cs = 32 * b, lo = cs < c0 ? c0 - cs : 0, hi = cs + 32 > cend ? cend - cs : 32;
            const int64_t c = cs + lo - c0;
            /* One block (8 accumulators) at a time: two (16, with their conversion temporaries)
             * made GCC 12 spill accumulators in the loop. */
            q8_row(u, jn, q + b * Q8_SIZE, bs, at(oscale, c), s, y + c, (int)lo, (int)hi, 1);
        }
    }
}

/* MR rows × 16 columns over a dequantized panel (row j at panel + 16j), lanes [lo, hi) stored. */
ALWAYS_INLINE void q8_tile(const float *t, int64_t ldt, int64_t jn, const float *panel, const float *osc, float s,
                           float *y, int64_t ldy, int lo, int hi, const int MR) {
    /* (Named accumulators: GCC 12 kept an acc[4][4] array in memory here, storing it every j.) */
    const float32x4_t z = vdupq_n_f32(0.0f);
    float32x4_t a00 = z, a01 = z, a02 = z, a03 = z, a10 = z, a11 = z, a12 = z, a13 = z;
    float32x4_t a20 = z, a21 = z, a22 = z, a23 = z, a30 = z, a31 = z, a32 = z, a33 = z;
#define Q8_TILE_ROW(p)                                                                               \
    do {                                                                                             \
        const float tj = t[(p) * ldt + j];                                                           \
        a##p##0 = vfmaq_n_f32(a##p##0, f0, tj);                                                      \
        a##p##1 = vfmaq_n_f32(a##p##1, f1, tj);                                                      \
        a##p##2 = vfmaq_n_f32(a##p##2, f2, tj);                                                      \
        a##p##3 = vfmaq_n_f32(a##p##3, f3, tj);                                                      \
    } while (0)
    for (int64_t j = 0; j < jn; j++) {
        const float32x4_t f0 = vld1q_f32(panel + 16 * j), f1 = vld1q_f32(panel + 16 * j + 4);
        const float32x4_t f2 = vld1q_f32(panel + 16 * j + 8), f3 = vld1q_f32(panel + 16 * j + 12);
        Q8_TILE_ROW(0);
        if (MR > 1) Q8_TILE_ROW(1);
        if (MR > 2) Q8_TILE_ROW(2);
        if (MR > 3) Q8_TILE_ROW(3);
    }
#undef Q8_TILE_ROW
    const float32x4_t acc[4][4] = {{a00, a01, a02, a03}, {a10, a11, a12, a13}, {a20, a21, a22, a23}, {a30, a31, a32, a33}};
    if (lo == 0 && hi == 16) {
        for (int p = 0; p < MR; p++) up_store(y + p * ldy, osc, s, acc[p], 4);
    } else {
        for (int p = 0; p < MR; p++) q8_store_cut(y + p * ldy, osc, s, acc[p], 4, lo, hi);
    }
}

/* Rows [0, mt) in tiles of up to 4 rows (a last tile of one row is left to the caller), over an f32
 * panel of each half block (16 columns) × ADAPTER_JC rows of BT, scaled by tscale_j·d_j. */
static void q8_up_rows(const float *t, int64_t ldt, int64_t mt, int64_t r, const float *tscale, const unsigned char *bt,
                       size_t bs, int64_t c0, int64_t ncols, const float *oscale, float s, float *y, int64_t ldy) {
    float panel[ADAPTER_JC * 16];
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
                const float w = tscale ? tscale[j0 + j] * d : d;
                float32x4_t f[4];
                q8_cvt16(q + Q8_QS + 16 * (hb & 1), f);
                for (int v = 0; v < 4; v++) vst1q_f32(panel + 16 * j + 4 * v, vmulq_n_f32(f[v], w));
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

void graft_adapter_up_q8_0_neon(const float *t, int64_t ldt, int64_t m, int64_t r, const float *tscale,
                                const void *bt, size_t bt_stride, int64_t c0, int64_t ncols, const float *oscale,
                                float s, float *y, int64_t ldy) {
    if (m <= 0 || r <= 0 || ncols <= 0) return;
    const int64_t mt = m % 4 == 1 ? m - 1 : m;
    if (mt) q8_up_rows(t, ldt, mt, r, tscale, bt, bt_stride, c0, ncols, oscale, s, y, ldy);
    if (mt < m) q8_up_row1(t + mt * ldt, r, tscale, bt, bt_stride, c0, ncols, oscale, s, y + mt * ldy);
}
