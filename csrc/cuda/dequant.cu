/* graft CUDA kernels: rows of a weight matrix dequantized to f32, gathered by index: the token
 * embedding lookup, and the bit-exactness check of every format's decoder against the C reference
 * (graft_dequantize_row_<wfmt>_ref).
 *
 * graft_cu_get_rows_<wfmt>(n, w, w_stride, ids, m, y, ldy):
 *   y[i*ldy + k] = W[ids ? ids[i] : i][k]   for k < n, i < m
 * Launch: any block size, grid (any, m): blockIdx.y is the output row, x threads stride over k. */
#include "dequant.cuh"

#define GRAFT_CU_GET_ROWS(name, F)                                                                    \
    extern "C" __global__ void graft_cu_get_rows_##name(int64_t n, const void *w, size_t w_stride,   \
                                                        const int32_t *ids, int64_t m, float *y,      \
                                                        int64_t ldy) {                                \
        const int64_t i = blockIdx.y;                                                                 \
        if (i >= m) return;                                                                           \
        const int64_t r = ids ? (int64_t)ids[i] : i;                                                  \
        const uint8_t *row = (const uint8_t *)w + (size_t)r * w_stride;                               \
        GRAFT_CU_FOR(k, n) y[i * ldy + k] = F::at(row, k);                                            \
    }

GRAFT_CU_FOR_EACH_FORMAT(GRAFT_CU_GET_ROWS)
