/* graft: quantization block layouts, the one definition shared by the C kernels, the CUDA kernels and
 * (mirrored and size-checked) the Rust `quant` module. Layouts are those of GGUF files (ggml's). */
#ifndef GRAFT_BLOCKS_H
#define GRAFT_BLOCKS_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* IEEE half and bfloat16 are stored as raw 16-bit words. */
typedef uint16_t graft_f16;
typedef uint16_t graft_bf16;

#define GRAFT_QK4_0 32
#define GRAFT_QK4_1 32
#define GRAFT_QK5_0 32
#define GRAFT_QK5_1 32
#define GRAFT_QK8_0 32
#define GRAFT_QK8_1 32
#define GRAFT_QK_K 256
#define GRAFT_K_SCALE_SIZE 12

/* x = d * (q - 8); q[j] in low nibble of qs[j], q[j+16] in the high nibble. */
typedef struct { graft_f16 d; uint8_t qs[GRAFT_QK4_0 / 2]; } graft_block_q4_0;
/* x = d * q + m. */
typedef struct { graft_f16 d; graft_f16 m; uint8_t qs[GRAFT_QK4_1 / 2]; } graft_block_q4_1;
/* x = d * (q - 16); the fifth bit of q[j] is bit j of qh (little-endian u32). */
typedef struct { graft_f16 d; uint8_t qh[4]; uint8_t qs[GRAFT_QK5_0 / 2]; } graft_block_q5_0;
/* x = d * q + m. */
typedef struct { graft_f16 d; graft_f16 m; uint8_t qh[4]; uint8_t qs[GRAFT_QK5_1 / 2]; } graft_block_q5_1;
/* x = d * q. */
typedef struct { graft_f16 d; int8_t qs[GRAFT_QK8_0]; } graft_block_q8_0;
/* Activation format for Q4_1 / Q5_1: x = d * q, s = d * sum(q). */
typedef struct { graft_f16 d; graft_f16 s; int8_t qs[GRAFT_QK8_1]; } graft_block_q8_1;
/* 256-element super-block: 8 sub-blocks of 32, 6-bit scales and mins packed in `scales`. */
typedef struct { graft_f16 d; graft_f16 dmin; uint8_t scales[GRAFT_K_SCALE_SIZE]; uint8_t qs[GRAFT_QK_K / 2]; } graft_block_q4_K;
typedef struct { graft_f16 d; graft_f16 dmin; uint8_t scales[GRAFT_K_SCALE_SIZE]; uint8_t qh[GRAFT_QK_K / 8]; uint8_t qs[GRAFT_QK_K / 2]; } graft_block_q5_K;
/* 16 sub-blocks of 16 with int8 scales; 6-bit quants: low 4 bits in ql, high 2 bits in qh. */
typedef struct { uint8_t ql[GRAFT_QK_K / 2]; uint8_t qh[GRAFT_QK_K / 4]; int8_t scales[GRAFT_QK_K / 16]; graft_f16 d; } graft_block_q6_K;
/* Activation format for the K-quants: f32 scale, int8 quants, sums of each group of 16. */
typedef struct { float d; int8_t qs[GRAFT_QK_K]; int16_t bsums[GRAFT_QK_K / 16]; } graft_block_q8_K;

#if defined(__cplusplus)
#define GRAFT_STATIC_ASSERT static_assert
#else
#define GRAFT_STATIC_ASSERT _Static_assert
#endif
GRAFT_STATIC_ASSERT(sizeof(graft_block_q4_0) == 18, "q4_0 size");
GRAFT_STATIC_ASSERT(sizeof(graft_block_q4_1) == 20, "q4_1 size");
GRAFT_STATIC_ASSERT(sizeof(graft_block_q5_0) == 22, "q5_0 size");
GRAFT_STATIC_ASSERT(sizeof(graft_block_q5_1) == 24, "q5_1 size");
GRAFT_STATIC_ASSERT(sizeof(graft_block_q8_0) == 34, "q8_0 size");
GRAFT_STATIC_ASSERT(sizeof(graft_block_q8_1) == 36, "q8_1 size");
GRAFT_STATIC_ASSERT(sizeof(graft_block_q4_K) == 144, "q4_K size");
GRAFT_STATIC_ASSERT(sizeof(graft_block_q5_K) == 176, "q5_K size");
GRAFT_STATIC_ASSERT(sizeof(graft_block_q6_K) == 210, "q6_K size");
GRAFT_STATIC_ASSERT(sizeof(graft_block_q8_K) == 292, "q8_K size");

#ifdef __cplusplus
}
#endif
#endif
