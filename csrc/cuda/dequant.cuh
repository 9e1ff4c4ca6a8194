/* graft CUDA kernels: random access to one element of a weight row, for every weight format.
 *
 * `Fmt::at(row, k)` returns element k of the row starting at `row`, dequantized with exactly the
 * operations of graft_dequantize_row_<fmt>_ref (csrc/cpu/quant_ref.c), explicit round-to-nearest
 * intrinsics keeping nvcc from fusing a multiply-add the C reference does not fuse, so the value is
 * bit-identical (on the host, tests/c/cuda_dequant_check.cu checks the index arithmetic against the C
 * decoders). Quantized rows need no alignment (bytes are read one by one); F32 rows must be
 * 4-byte aligned, F16 / BF16 rows 2-byte aligned.
 *
 * Simple by design: each access decodes its block header again. Products reach one block with 32
 * consecutive lanes, so the header loads hit the same cache lines. */
#ifndef GRAFT_CUDA_DEQUANT_CUH
#define GRAFT_CUDA_DEQUANT_CUH

#include "common.cuh"

struct GraftF32 {
    static constexpr int QK = 1;
    GRAFT_CU_HD float at(const uint8_t *row, int64_t k) { return ((const float *)row)[k]; }
};

struct GraftF16 {
    static constexpr int QK = 1;
    GRAFT_CU_HD float at(const uint8_t *row, int64_t k) {
        return graft_cu_h2f(((const uint16_t *)row)[k]);
    }
};

struct GraftBF16 {
    static constexpr int QK = 1;
    GRAFT_CU_HD float at(const uint8_t *row, int64_t k) {
        return graft_cu_bf2f(((const uint16_t *)row)[k]);
    }
};

/* x = d * (q - 8); q[j] in the low nibble of qs[j], q[j+16] in the high nibble. */
struct GraftQ4_0 {
    static constexpr int QK = GRAFT_QK4_0;
    GRAFT_CU_HD float at(const uint8_t *row, int64_t k) {
        const uint8_t *b = row + (k / QK) * sizeof(graft_block_q4_0);
        const int j = (int)(k % QK);
        const float d = graft_cu_h2f(graft_cu_ld16(b));
        const uint8_t *qs = b + offsetof(graft_block_q4_0, qs);
        const int q = j < 16 ? (qs[j] & 0x0F) : (qs[j - 16] >> 4);
        return GRAFT_CU_FMUL((float)(q - 8), d);
    }
};

/* x = d * q + m. */
struct GraftQ4_1 {
    static constexpr int QK = GRAFT_QK4_1;
    GRAFT_CU_HD float at(const uint8_t *row, int64_t k) {
        const uint8_t *b = row + (k / QK) * sizeof(graft_block_q4_1);
        const int j = (int)(k % QK);
        const float d = graft_cu_h2f(graft_cu_ld16(b)), m = graft_cu_h2f(graft_cu_ld16(b + 2));
        const uint8_t *qs = b + offsetof(graft_block_q4_1, qs);
        const int q = j < 16 ? (qs[j] & 0x0F) : (qs[j - 16] >> 4);
        return GRAFT_CU_FADD(GRAFT_CU_FMUL((float)q, d), m);
    }
};

/* x = d * (q - 16); the fifth bit of q[j] is bit j of qh (little-endian u32). */
struct GraftQ5_0 {
    static constexpr int QK = GRAFT_QK5_0;
    GRAFT_CU_HD float at(const uint8_t *row, int64_t k) {
        const uint8_t *b = row + (k / QK) * sizeof(graft_block_q5_0);
        const int j = (int)(k % QK);
        const float d = graft_cu_h2f(graft_cu_ld16(b));
        const uint32_t qh = graft_cu_ld32(b + offsetof(graft_block_q5_0, qh));
        const uint8_t *qs = b + offsetof(graft_block_q5_0, qs);
        const int lo = j < 16 ? (qs[j] & 0x0F) : (qs[j - 16] >> 4);
        const int q = lo | (int)(((qh >> j) & 1u) << 4);
        return GRAFT_CU_FMUL((float)(q - 16), d);
    }
};

/* x = d * q + m. */
struct GraftQ5_1 {
    static constexpr int QK = GRAFT_QK5_1;
    GRAFT_CU_HD float at(const uint8_t *row, int64_t k) {
        const uint8_t *b = row + (k / QK) * sizeof(graft_block_q5_1);
        const int j = (int)(k % QK);
        const float d = graft_cu_h2f(graft_cu_ld16(b)), m = graft_cu_h2f(graft_cu_ld16(b + 2));
        const uint32_t qh = graft_cu_ld32(b + offsetof(graft_block_q5_1, qh));
        const uint8_t *qs = b + offsetof(graft_block_q5_1, qs);
        const int lo = j < 16 ? (qs[j] & 0x0F) : (qs[j - 16] >> 4);
        const int q = lo | (int)(((qh >> j) & 1u) << 4);
        return GRAFT_CU_FADD(GRAFT_CU_FMUL((float)q, d), m);
    }
};

/* x = d * q. */
struct GraftQ8_0 {
    static constexpr int QK = GRAFT_QK8_0;
    GRAFT_CU_HD float at(const uint8_t *row, int64_t k) {
        const uint8_t *b = row + (k / QK) * sizeof(graft_block_q8_0);
        const int j = (int)(k % QK);
        const float d = graft_cu_h2f(graft_cu_ld16(b));
        const int q = (int8_t)b[offsetof(graft_block_q8_0, qs) + j];
        return GRAFT_CU_FMUL((float)q, d);
    }
};

/* The j-th 6-bit scale and min of a Q4_K / Q5_K super-block (graft_scale_min_k4). */
GRAFT_CU_HD void graft_cu_scale_min_k4(int j, const uint8_t *q, int *d, int *m) {
    if (j < 4) {
        *d = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *d = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
        *m = (q[j + 4] >> 4) | ((q[j - 0] >> 6) << 4);
    }
}

/* Super-block of 256 in 4 groups of 64; group g: sub-blocks 2g (low nibbles of qs[32g..32g+32])
 * and 2g+1 (high nibbles); x = (d * sc) * q - dmin * m. */
struct GraftQ4_K {
    static constexpr int QK = GRAFT_QK_K;
    GRAFT_CU_HD float at(const uint8_t *row, int64_t k) {
        const uint8_t *b = row + (k / QK) * sizeof(graft_block_q4_K);
        const int j = (int)(k % QK), g = j / 64, hi = (j % 64) >= 32, l = j % 32;
        const float d = graft_cu_h2f(graft_cu_ld16(b)), dmin = graft_cu_h2f(graft_cu_ld16(b + 2));
        int sc, m;
        graft_cu_scale_min_k4(2 * g + hi, b + offsetof(graft_block_q4_K, scales), &sc, &m);
        const uint8_t byte = b[offsetof(graft_block_q4_K, qs) + 32 * g + l];
        const int q = hi ? (byte >> 4) : (byte & 0xF);
        return GRAFT_CU_FSUB(GRAFT_CU_FMUL(GRAFT_CU_FMUL(d, (float)sc), (float)q), GRAFT_CU_FMUL(dmin, (float)m));
    }
};

/* As Q4_K, plus a fifth bit: bit 2g (low nibbles) or 2g+1 (high nibbles) of qh[l] adds 16. */
struct GraftQ5_K {
    static constexpr int QK = GRAFT_QK_K;
    GRAFT_CU_HD float at(const uint8_t *row, int64_t k) {
        const uint8_t *b = row + (k / QK) * sizeof(graft_block_q5_K);
        const int j = (int)(k % QK), g = j / 64, hi = (j % 64) >= 32, l = j % 32;
        const float d = graft_cu_h2f(graft_cu_ld16(b)), dmin = graft_cu_h2f(graft_cu_ld16(b + 2));
        int sc, m;
        graft_cu_scale_min_k4(2 * g + hi, b + offsetof(graft_block_q5_K, scales), &sc, &m);
        const uint8_t byte = b[offsetof(graft_block_q5_K, qs) + 32 * g + l];
        const uint8_t h = b[offsetof(graft_block_q5_K, qh) + l];
        const int q = (hi ? (byte >> 4) : (byte & 0xF)) + (((h >> (2 * g + hi)) & 1) ? 16 : 0);
        return GRAFT_CU_FSUB(GRAFT_CU_FMUL(GRAFT_CU_FMUL(d, (float)sc), (float)q), GRAFT_CU_FMUL(dmin, (float)m));
    }
};

/* Two halves of 128; in half h, quarter qd (32 values, l < 32): low 4 bits from ql[64h + l] (qd 0, 2)
 * or ql[64h + 32 + l] (qd 1, 3), low nibble for qd 0, 1 and high for 2, 3; high 2 bits from
 * qh[32h + l] at bit 2qd; scale scales[8h + l/16 + 2qd]; x = (d * sc) * (q - 32). */
struct GraftQ6_K {
    static constexpr int QK = GRAFT_QK_K;
    GRAFT_CU_HD float at(const uint8_t *row, int64_t k) {
        const uint8_t *b = row + (k / QK) * sizeof(graft_block_q6_K);
        const int j = (int)(k % QK), h = j / 128, r = j % 128, qd = r / 32, l = r % 32;
        const float d = graft_cu_h2f(graft_cu_ld16(b + offsetof(graft_block_q6_K, d)));
        const uint8_t lo = b[offsetof(graft_block_q6_K, ql) + 64 * h + (qd & 1) * 32 + l];
        const uint8_t hb = b[offsetof(graft_block_q6_K, qh) + 32 * h + l];
        const int sc = (int8_t)b[offsetof(graft_block_q6_K, scales) + 8 * h + l / 16 + 2 * qd];
        const int q = (((qd & 2) ? (lo >> 4) : (lo & 0xF)) | (((hb >> (2 * qd)) & 3) << 4)) - 32;
        return GRAFT_CU_FMUL(GRAFT_CU_FMUL(d, (float)sc), (float)q);
    }
};

/* Instantiates MACRO(name, Fmt) for every weight format. */
#define GRAFT_CU_FOR_EACH_FORMAT(MACRO) \
    MACRO(f32, GraftF32)                \
    MACRO(f16, GraftF16)                \
    MACRO(bf16, GraftBF16)              \
    MACRO(q4_0, GraftQ4_0)              \
    MACRO(q4_1, GraftQ4_1)              \
    MACRO(q5_0, GraftQ5_0)              \
    MACRO(q5_1, GraftQ5_1)              \
    MACRO(q8_0, GraftQ8_0)              \
    MACRO(q4_K, GraftQ4_K)              \
    MACRO(q5_K, GraftQ5_K)              \
    MACRO(q6_K, GraftQ6_K)

#endif
