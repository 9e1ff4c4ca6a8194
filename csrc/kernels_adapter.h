/* graft: the adapter (LoRA family, VeRA, ...) hot-path kernels: the down-projection T = X·Aᵀ and the
 * up-projection Y += s·diag(oscale)·(T·diag(tscale))·Bᵀ with B stored transposed (BT, r×ncols), as
 * f32 or as Q8_0 rows (blocks of 32 along the output columns, 3.8× fewer bytes to stream at decode).
 *
 * f32 matrices are row-major with strides in elements, Q8_0 rows have strides in bytes; no alignment
 * is assumed (callers split the columns of the up-projection among threads, so bt, oscale and y may
 * start at any column; a Q8_0 bt instead takes the first column c0). Sums are
 * kept in f32 with FMA in the SIMD variants; the reference sums in plain sequential order:
 *   down: t = 0; for k < n: t += x[k] * a[k]
 *   up:   acc = 0; for j < r: acc += (tscale[j] * t[j]) * bt[j][c];  y[c] += (s * oscale[c]) * acc
 * A variant may split the sum over j into chunks added to y one after another. */
#ifndef GRAFT_KERNELS_ADAPTER_H
#define GRAFT_KERNELS_ADAPTER_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define GRAFT_DECLARE_ADAPTER(isa)                                                                    \
    /* Down-projection T = X·Aᵀ: t[i*ldt + j] = sum_{k<n} x[i*ldx + k] * a[j*lda + k] for i < m,      \
     * j < r. n == 0 writes zeros without reading x or a; m == 0 or r == 0 touches nothing. */        \
    void graft_adapter_down_f32_##isa(const float *x, int64_t ldx, int64_t m, const float *a,         \
                                      int64_t lda, int64_t r, int64_t n, float *t, int64_t ldt);      \
    /* Up-projection with B transposed: y[i*ldy + c] += s * (oscale ? oscale[c] : 1) *                \
     * sum_{j<r} (tscale ? tscale[j] : 1) * t[i*ldt + j] * bt[j*ldb + c] for i < m, c < ncols.        \
     * tscale and oscale may be NULL; y does not alias any input. m, r or ncols == 0 touches nothing. */ \
    void graft_adapter_up_f32_##isa(const float *t, int64_t ldt, int64_t m, int64_t r,               \
                                    const float *tscale, const float *bt, int64_t ldb, int64_t ncols, \
                                    const float *oscale, float s, float *y, int64_t ldy);             \
    /* Up-projection with B transposed and stored as Q8_0 rows: bt holds r rows of n_out/32 Q8_0      \
     * blocks, row j starting at (const char *)bt + j*bt_stride. For i < m, c < ncols:                \
     *   y[i*ldy + c] += s * (oscale ? oscale[c] : 1) *                                               \
     *                   sum_{j<r} (tscale ? tscale[j] : 1) * t[i*ldt + j] * deq(bt row j)[c0 + c]    \
     * c0 (the first column) may be any value, not a multiple of 32 (threads split columns); oscale   \
     * points at column c0's scale already. tscale, oscale may be NULL. Only the blocks holding       \
     * columns c0 .. c0+ncols-1 are read; bt and bt_stride need no alignment. Each output is computed \
     * the same whatever c0 and ncols: threads splitting the columns get the bits of one call (rows   \
     * split differently may not: m = 1 and m > 1 may round differently). The reference sums          \
     *   acc = 0; for j < r: acc += (tscale[j] * t[j]) * (d_jb * q_jc);  y[c] += (s * oscale[c]) * acc \
     * (d_jb * q_jc is exact in f32). m, r or ncols == 0 touches nothing. */                           \
    void graft_adapter_up_q8_0_##isa(const float *t, int64_t ldt, int64_t m, int64_t r,              \
                                     const float *tscale, const void *bt, size_t bt_stride,           \
                                     int64_t c0, int64_t ncols, const float *oscale, float s,          \
                                     float *y, int64_t ldy);

GRAFT_DECLARE_ADAPTER(ref)
/* Every ISA is declared on every target (so the bindings are the same everywhere); only the
 * target's own variants are compiled and referenced. */
GRAFT_DECLARE_ADAPTER(avx2)
GRAFT_DECLARE_ADAPTER(avx512)
GRAFT_DECLARE_ADAPTER(neon)

#ifdef __cplusplus
}
#endif
#endif
