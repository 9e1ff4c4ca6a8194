/* graft: holds the NEON kernels to their scalar reference twins over odd sizes, for AArch64 builds
 * (scripts/test.sh cross-compiles it and runs it under qemu-aarch64 when the tools are there).
 * Tolerances as in tests/ops_kernels.rs. Exit status 0 when every check passes. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "kernels.h"

static int failures = 0;
static uint64_t rng = 88172645463325252ull;
static float frand(void) {
    rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
    return (float)((rng >> 40) & 0xffffff) / 16777216.0f * 2.0f - 1.0f;
}

static void close_to(const float *a, const float *b, int64_t n, float tol, const char *what) {
    for (int64_t i = 0; i < n; i++) {
        const float err = fabsf(a[i] - b[i]) / fmaxf(1.0f, fabsf(b[i]));
        if (!(err <= tol)) {
            printf("FAIL %s n=%lld [%lld]: %g vs %g\n", what, (long long)n, (long long)i, a[i], b[i]);
            failures++;
            return;
        }
    }
}

/* The adapter kernels: every output within 2e-5 of the sum of its terms' magnitudes of the reference
 * (TOL_VS_REF of tests/adapter_kernels.rs), and nothing written outside the outputs. */
#define GUARD 1234.5f
static int adapter_checks(void) {
    static const int64_t ms[] = {1, 2, 3, 5, 17}, rs[] = {1, 3, 8, 16, 33, 256, 300};
    static const int64_t ns[] = {1, 7, 31, 576, 1537}, ncs[] = {1, 5, 31, 192, 1000};
    const size_t big = 17 * 1600 + 300 * 1600;
    float *x = malloc(big * sizeof *x), *a = malloc(big * sizeof *a), *ts = malloc(big * sizeof *ts);
    float *ta = malloc(big * sizeof *ta), *tb = malloc(big * sizeof *tb);
    int checks = 0;
    for (size_t i = 0; i < big; i++) { x[i] = frand() * 2; a[i] = frand() * 0.5f; ts[i] = frand() * 1.5f; }
    for (size_t im = 0; im < 5; im++)
        for (size_t ir = 0; ir < 7; ir++)
            for (size_t in = 0; in < 5; in++) {
                const int64_t m = ms[im], r = rs[ir], n = ns[in], pad = (int64_t)((im + ir + in) % 3) * 5;
                const int64_t ldx = n + pad, lda = n + 2 * pad, ldt = r + pad;
                for (int64_t i = 0; i < m * ldt + 3; i++) ta[i] = tb[i] = GUARD;
                graft_adapter_down_f32_ref(x, ldx, m, a, lda, r, n, ta, ldt);
                graft_adapter_down_f32_neon(x, ldx, m, a, lda, r, n, tb, ldt);
                int bad = 0;
                for (int64_t i = 0; i < m * ldt + 3 && !bad; i++) {
                    const int64_t row = i / ldt, j = i % ldt;
                    if (row >= m || j >= r) { bad = tb[i] != GUARD; continue; }
                    double bound = 0;
                    for (int64_t k = 0; k < n; k++) bound += fabs((double)x[row * ldx + k] * a[j * lda + k]);
                    bad = !(fabs((double)tb[i] - ta[i]) <= 2e-5 * bound);
                }
                if (bad) { printf("FAIL adapter down m=%lld r=%lld n=%lld\n", (long long)m, (long long)r, (long long)n); failures++; }
                checks++;
            }
    for (size_t im = 0; im < 5; im++)
        for (size_t ir = 0; ir < 7; ir++)
            for (size_t ic = 0; ic < 5; ic++)
                for (int sc = 0; sc < 4; sc++) {
                    const int64_t m = ms[im], r = rs[ir], nc = ncs[ic], v = (int64_t)(im + ir + ic + sc);
                    const int64_t off = (int64_t[]){0, 1, 3, 13}[v % 4], pad = (v % 3) * 4;
                    const int64_t ldt = r + pad, ldb = off + nc + pad, ldy = off + nc + 2 * pad;
                    const float *tsc = sc & 1 ? ts : NULL, *osc = sc & 2 ? ts + 7 : NULL;
                    for (int64_t i = 0; i < m * ldy + 5; i++) {
                        const int64_t row = i / ldy, c = i % ldy - off;
                        ta[i] = tb[i] = row < m && c >= 0 && c < nc ? frand() * 4 : GUARD;
                    }
                    graft_adapter_up_f32_ref(x, ldt, m, r, tsc, a + off, ldb, nc, osc ? osc + off : NULL, 0.75f, ta + off, ldy);
                    graft_adapter_up_f32_neon(x, ldt, m, r, tsc, a + off, ldb, nc, osc ? osc + off : NULL, 0.75f, tb + off, ldy);
                    int bad = 0;
                    for (int64_t i = 0; i < m * ldy + 5 && !bad; i++) {
                        const int64_t row = i / ldy, c = i % ldy - off;
                        if (row >= m || c < 0 || c >= nc) { bad = tb[i] != GUARD; continue; }
                        double bound = 0;
                        for (int64_t j = 0; j < r; j++)
                            bound += fabs((double)(tsc ? tsc[j] : 1) * x[row * ldt + j] * a[j * ldb + off + c]);
                        bound = fabs((double)ta[i]) + 0.75 * (osc ? fabs((double)osc[off + c]) : 1) * bound;
                        bad = !(fabs((double)tb[i] - ta[i]) <= 2e-5 * bound);
                    }
                    if (bad) { printf("FAIL adapter up m=%lld r=%lld ncols=%lld scales=%d\n", (long long)m, (long long)r, (long long)nc, sc); failures++; }
                    checks++;
                }
    free(x); free(a); free(ts); free(ta); free(tb);
    return checks;
}

/* The Q8_0 up-projection: NEON against the reference over odd sizes, first columns c0 inside blocks,
 * ranges that end mid-block, padded strides, with and without the scales; every output within 2e-5
 * of the sum of its terms' magnitudes, nothing written outside the outputs, and a NaN scale on every
 * block outside the range (reading one would show). */
static int adapter_q8_checks(void) {
    static const int64_t ms[] = {1, 2, 3, 5, 9}, rs[] = {1, 3, 16, 33, 256, 300}, ns[] = {32, 64, 576};
    static const int64_t c0s[] = {0, 1, 17, 31, 32, 45};
    const size_t big = 300 * 700;
    float *t = malloc(big * sizeof *t), *ts = malloc(big * sizeof *ts), *bf = malloc(big * sizeof *bf);
    float *ya = malloc(big * sizeof *ya), *yb = malloc(big * sizeof *yb);
    unsigned char *bt = malloc(300 * (576 / 32 * 34 + 40));
    int checks = 0;
    for (size_t i = 0; i < big; i++) { t[i] = frand() * 3; ts[i] = frand() * 1.5f; bf[i] = frand() * 0.5f; }
    for (size_t im = 0; im < 5; im++)
        for (size_t ir = 0; ir < 6; ir++)
            for (size_t in = 0; in < 3; in++)
                for (size_t ic = 0; ic < 6; ic++)
                    for (int mid = 0; mid < 2; mid++) {
                        const int64_t m = ms[im], r = rs[ir], n = ns[in], c0 = c0s[ic], v = (int64_t)(im + ir + in + ic + mid);
                        if (c0 >= n) continue;
                        int64_t nc = n - c0;
                        if (mid) { nc = 1 + (n - c0 - 1) * 2 / 3; if ((c0 + nc) % 32 == 0) nc--; if (nc < 1) continue; }
                        const int sc = (int)(v % 4);
                        const int64_t pad = (v % 3) * 3, ldt = r + pad, ldy = nc + 2 * pad;
                        const size_t row = (size_t)n / 32 * 34, bs = row + (size_t)(v % 3) * 19;
                        const int64_t bfirst = c0 / 32, blast = (c0 + nc - 1) / 32;
                        for (int64_t j = 0; j < r; j++) {
                            graft_quantize_row_q8_0_ref(bf + j * n, bt + j * bs, n);
                            for (size_t k = row; k < bs; k++) bt[j * bs + k] = 0xff;
                            for (int64_t b = 0; b < n / 32; b++)
                                if (b < bfirst || b > blast) { bt[j * bs + b * 34] = 0xff; bt[j * bs + b * 34 + 1] = 0x7f; }
                        }
                        const float *tsc = sc & 1 ? ts : NULL, *osc = sc & 2 ? ts + 11 : NULL;
                        for (int64_t i = 0; i < m * ldy + 5; i++) {
                            const int64_t rw = i / ldy, c = i % ldy;
                            ya[i] = yb[i] = rw < m && c < nc ? frand() * 4 : GUARD;
                        }
                        graft_adapter_up_q8_0_ref(t, ldt, m, r, tsc, bt, bs, c0, nc, osc, 0.75f, ya, ldy);
                        graft_adapter_up_q8_0_neon(t, ldt, m, r, tsc, bt, bs, c0, nc, osc, 0.75f, yb, ldy);
                        int bad = 0;
                        for (int64_t i = 0; i < m * ldy + 5 && !bad; i++) {
                            const int64_t rw = i / ldy, c = i % ldy;
                            if (rw >= m || c >= nc) { bad = yb[i] != GUARD; continue; }
                            double bound = 0;
                            for (int64_t j = 0; j < r; j++) {
                                const unsigned char *blk = bt + j * bs + (c0 + c) / 32 * 34;
                                __fp16 d;
                                memcpy(&d, blk, 2);
                                const double w = (double)d * (int8_t)blk[2 + (c0 + c) % 32];
                                bound += fabs((double)(tsc ? tsc[j] : 1) * t[rw * ldt + j] * w);
                            }
                            bound = fabs((double)ya[i]) + 0.75 * (osc ? fabs((double)osc[c]) : 1) * bound;
                            bad = !(fabs((double)yb[i] - ya[i]) <= 2e-5 * bound);
                        }
                        if (bad) {
                            printf("FAIL adapter up_q8_0 m=%lld r=%lld n=%lld c0=%lld ncols=%lld scales=%d\n", (long long)m,
                                   (long long)r, (long long)n, (long long)c0, (long long)nc, sc);
                            failures++;
                        }
                        checks++;
                    }
    free(t); free(ts); free(bf); free(ya); free(yb); free(bt);
    return checks;
}

/* The 8-bit products: quantization bit for bit with the reference; products within 1e-5 of the
 * sum of the block terms' magnitudes of the reference (tests/int8_kernels.rs), over odd row and
 * column counts, block ranges and accumulation, nothing written past the columns. */
static int int8_checks(void) {
    static const int64_t ms[] = {1, 3, 4, 5, 9}, ns[] = {1, 15, 16, 17, 33, 70}, kbs[] = {1, 2, 18};
    int checks = 0;
    for (size_t im = 0; im < 5; im++)
        for (size_t in = 0; in < 6; in++)
            for (size_t ik = 0; ik < 3; ik++) {
                const int64_t m = ms[im], n = ns[in], kb = kbs[ik], k = kb * 32, ldc = n + 3;
                float *x = malloc(m * k * sizeof *x), *w = malloc(n * k * sizeof *w);
                for (int64_t i = 0; i < m * k; i++) x[i] = frand() * (1 + i % 5);
                for (int64_t i = 0; i < n * k; i++) w[i] = frand();
                if (kb > 1) for (int64_t i = 32; i < 64 && i < k; i++) x[i] = 0.0f; /* an all-zero block */
                int8_t *q1 = malloc(m * k), *q2 = malloc(m * k);
                float *s1 = malloc(m * kb * sizeof *s1), *s2 = malloc(m * kb * sizeof *s2);
                int32_t *u1 = malloc(m * kb * sizeof *u1), *u2 = malloc(m * kb * sizeof *u2);
                graft_int8_quantize_rows_ref(x, k, m, kb, q1, k, s1, u1, kb);
                graft_int8_quantize_rows_neon(x, k, m, kb, q2, k, s2, u2, kb);
                if (memcmp(q1, q2, m * k) || memcmp(s1, s2, m * kb * sizeof *s1) || memcmp(u1, u2, m * kb * sizeof *u1)) {
                    printf("FAIL int8 quantize m=%lld kb=%lld\n", (long long)m, (long long)kb);
                    failures++;
                }
                checks++;
                const int64_t groups = (n + 15) / 16;
                uint8_t *pw = malloc(groups * kb * 512);
                float *sw = malloc(groups * kb * 16 * sizeof *sw);
                graft_int8_pack_neon(w, k, 1, n, kb, pw, sw, kb);
                float *ca = malloc(m * ldc * sizeof *ca), *cb = malloc(m * ldc * sizeof *cb);
                for (int acc = 0; acc < 2; acc++) {
                    const int64_t b0 = kb / 2, nb = kb - kb / 2;
                    for (int64_t i = 0; i < m * ldc; i++) ca[i] = cb[i] = 0.25f;
                    graft_int8_gemm_ref(q1 + b0 * 32, k, s1 + b0, u1 + b0, kb, m, pw + b0 * 512, sw + b0 * 16, kb, n, nb, ca, ldc, acc);
                    graft_int8_gemm_neon(q1 + b0 * 32, k, s1 + b0, u1 + b0, kb, m, pw + b0 * 512, sw + b0 * 16, kb, n, nb, cb, ldc, acc);
                    int bad = 0;
                    for (int64_t i = 0; i < m && !bad; i++) {
                        for (int64_t j = 0; j < n; j++) {
                            double bound = 0;
                            for (int64_t b = b0; b < kb; b++) {
                                int64_t dot = 0;
                                for (int e = 0; e < 32; e++) {
                                    const int64_t kk = b * 32 + e;
                                    dot += (int64_t)q1[i * k + kk] * ((int)pw[((j / 16) * kb + b) * 512 + (e / 4) * 64 + (j % 16) * 4 + e % 4] - 128);
                                }
                                bound += fabs((double)dot * s1[i * kb + b] * sw[((j / 16) * kb + b) * 16 + j % 16]);
                            }
                            if (fabs((double)cb[i * ldc + j] - ca[i * ldc + j]) > 2e-5 * bound + 1e-6) bad = 1;
                        }
                        for (int64_t j = n; j < ldc; j++) if (cb[i * ldc + j] != 0.25f) bad = 1;
                    }
                    if (bad) { printf("FAIL int8 gemm m=%lld n=%lld kb=%lld acc=%d\n", (long long)m, (long long)n, (long long)kb, acc); failures++; }
                    checks++;
                }
                free(x); free(w); free(q1); free(q2); free(s1); free(s2); free(u1); free(u2); free(pw); free(sw); free(ca); free(cb);
            }
    return checks;
}

int main(void) {
    const int64_t sizes[] = {1, 3, 7, 8, 17, 33, 64, 129, 576, 1537};
    static float x[2048], w[2048], a[2048], b[2048];
    static graft_f16 h1[2048], h2[2048];
    int checks = 0;
    for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++) {
        const int64_t n = sizes[s];
        for (int64_t i = 0; i < n; i++) { x[i] = frand() * 4; w[i] = frand(); }
        graft_rmsnorm_f32_ref(x, w, a, n, 1e-5f);
        graft_rmsnorm_f32_neon(x, w, b, n, 1e-5f);
        close_to(b, a, n, 2e-6f, "rmsnorm"); checks++;
        graft_f32_to_f16_ref(x, h1, n);
        graft_f32_to_f16_neon(x, h2, n);
        for (int64_t i = 0; i < n; i++) if (h1[i] != h2[i]) { printf("FAIL f32_to_f16 [%lld]\n", (long long)i); failures++; break; }
        checks++;
        graft_f16_to_f32_ref(h1, a, n);
        graft_f16_to_f32_neon(h1, b, n);
        close_to(b, a, n, 0.0f, "f16_to_f32"); checks++;
        graft_f32_to_f16_ref(w, h2, n);
        const float d0 = graft_dot_f16_ref(h1, h2, n), d1 = graft_dot_f16_neon(h1, h2, n);
        if (fabsf(d0 - d1) > 4e-5f * sqrtf((float)n) + 1e-6f) { printf("FAIL dot_f16 n=%lld: %g vs %g\n", (long long)n, d1, d0); failures++; }
        checks++;
        for (int64_t i = 0; i < n; i++) a[i] = b[i] = w[i];
        graft_axpy_f16_ref(0.37f, h1, a, n);
        graft_axpy_f16_neon(0.37f, h1, b, n);
        close_to(b, a, n, 1e-6f, "axpy_f16"); checks++;
        for (int64_t i = 0; i < n; i++) a[i] = b[i] = x[i] * 8;
        graft_softmax_f32_ref(a, n);
        graft_softmax_f32_neon(b, n);
        close_to(b, a, n, 4e-6f, "softmax"); checks++;
        for (int64_t i = 0; i < n; i++) a[i] = b[i] = x[i] * 8;
        graft_silu_gate_f32_ref(a, w, a, n);
        graft_silu_gate_f32_neon(b, w, b, n);
        close_to(b, a, n, 4e-6f, "silu_gate"); checks++;
    }
    for (int64_t i = 0; i < 9 * 64; i++) a[i] = b[i] = frand();
    graft_rope_f32_ref(a, 9, 64, 64, 300, 1e5f, 0, 0);
    graft_rope_f32_neon(b, 9, 64, 64, 300, 1e5f, 0, 0);
    close_to(b, a, 9 * 64, 2e-6f, "rope"); checks++;
    /* Quantized products against the reference on the same activations (from the reference quantizer),
     * and the NEON quantizers within one quantization step of the reference. */
    {
        enum { N = 32 * 18, ROWS = 7, M = 3 };
        static uint8_t wq[ROWS * (N / 32) * 34];
        static uint8_t xq[M * (N / 32) * 36], xq2[M * (N / 32) * 36];
        static float xf[M * N], ya[M * ROWS], yb[M * ROWS];
        for (int64_t i = 0; i < M * N; i++) xf[i] = frand() * 3;
        struct { const char *name; size_t wsz, xsz; int act1; void (*ref)(int64_t, const void *, size_t, int64_t, const void *, size_t, int64_t, float *, int64_t); void (*neon)(int64_t, const void *, size_t, int64_t, const void *, size_t, int64_t, float *, int64_t); } t[] = {
            {"q4_0", sizeof(graft_block_q4_0), sizeof(graft_block_q8_0), 0, graft_gemm_q4_0_q8_0_ref, graft_gemm_q4_0_q8_0_neon},
            {"q4_1", sizeof(graft_block_q4_1), sizeof(graft_block_q8_1), 1, graft_gemm_q4_1_q8_1_ref, graft_gemm_q4_1_q8_1_neon},
            {"q8_0", sizeof(graft_block_q8_0), sizeof(graft_block_q8_0), 0, graft_gemm_q8_0_q8_0_ref, graft_gemm_q8_0_q8_0_neon},
            /* (act1 also writes a second f16 over the first two quants of each q8_0 weight block.) */
            {"q8_0_q8_1", sizeof(graft_block_q8_0), sizeof(graft_block_q8_1), 1, graft_gemm_q8_0_q8_1_ref, graft_gemm_q8_0_q8_1_neon},
        };
        for (int f = 0; f < (int)(sizeof t / sizeof t[0]); f++) {
            const size_t wrb = (N / 32) * t[f].wsz, xrb = (N / 32) * t[f].xsz;
            for (size_t i = 0; i < ROWS * wrb; i++) { rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17; wq[i] = (uint8_t)rng; }
            for (int64_t b = 0; b < ROWS * (N / 32); b++) {
                graft_f16 d = 0x2000 | (graft_f16)(b & 0xff); /* small positive scales */
                __builtin_memcpy(wq + b * t[f].wsz, &d, 2);
                if (t[f].act1) __builtin_memcpy(wq + b * t[f].wsz + 2, &d, 2);
            }
            for (int i = 0; i < M; i++) {
                if (t[f].act1) {
                    graft_quantize_row_q8_1_ref(xf + i * N, xq + i * xrb, N);
                    graft_quantize_row_q8_1_neon(xf + i * N, xq2 + i * xrb, N);
                } else {
                    graft_quantize_row_q8_0_ref(xf + i * N, xq + i * xrb, N);
                    graft_quantize_row_q8_0_neon(xf + i * N, xq2 + i * xrb, N);
                }
            }
            int qdiff = 0;
            for (int64_t b = 0; b < M * (N / 32); b++)
                for (int j = 0; j < 32; j++) {
                    const int8_t p = (int8_t)xq[b * t[f].xsz + t[f].xsz - 32 + j], q = (int8_t)xq2[b * t[f].xsz + t[f].xsz - 32 + j];
                    if (abs(p - q) > 1) { printf("FAIL quantize %s block %lld\n", t[f].name, (long long)b); failures++; b = M * N; break; }
                    qdiff += p != q;
                }
            if (qdiff * 50 > M * N) { printf("FAIL quantize %s: %d quants differ\n", t[f].name, qdiff); failures++; }
            checks++;
            t[f].ref(N, wq, wrb, ROWS, xq, xrb, M, ya, ROWS);
            t[f].neon(N, wq, wrb, ROWS, xq, xrb, M, yb, ROWS);
            close_to(yb, ya, M * ROWS, 1e-4f, t[f].name);
            checks++;
        }
    }
    checks += adapter_checks();
    checks += adapter_q8_checks();
    checks += int8_checks();
    printf("%d passed, %d failed\n", checks - failures, failures);
    return failures != 0;
}
