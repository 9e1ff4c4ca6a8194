/* graft: holds the CUDA decoders of csrc/cuda/dequant.cuh (compiled here for the host, without a
 * GPU) to the C reference graft_dequantize_row_*_ref, bit for bit, over random blocks: a check of
 * their index arithmetic (which nibble, which high bit, which sub-block scale). The GPU's own
 * arithmetic (round-to-nearest intrinsics, the PTX f16 conversion) is checked only by
 * tests/cuda.rs on a GPU. scripts/test.sh builds it with nvcc and runs it. Exit status 0 when every
 * element matches. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <vector>
#include "kernels.h"
#include "cuda/dequant.cuh"

static uint64_t rng = 88172645463325252ull;
static uint8_t rbyte() {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint8_t)(rng >> 32);
}

typedef void (*RefFn)(const void *, float *, int64_t);

template <class F>
static int check(const char *name, RefFn ref, int block_bytes, int elem_per_block) {
    const int nblocks = 64;
    const int64_t n = (int64_t)nblocks * elem_per_block;
    std::vector<uint8_t> w((size_t)nblocks * block_bytes);
    for (auto &b : w) b = rbyte();
    /* Keep every 16-bit scale a finite f16 of moderate size (random bits may be NaN / infinite and
     * NaN payloads are not what is checked): f16 fields sit at even offsets of each block. */
    if (block_bytes > 4) {
        for (int b = 0; b < nblocks; b++) {
            uint8_t *blk = w.data() + (size_t)b * block_bytes;
            const int off[3] = {0, 2, block_bytes - 2};
            for (int i = 0; i < 3; i++) blk[off[i] + 1] &= 0x3b; /* exponent below 31 */
        }
    } else {
        for (size_t i = 1; i < w.size(); i += 2) w[i] &= 0x3b;
    }
    std::vector<float> want((size_t)n);
    ref(w.data(), want.data(), n);
    for (int64_t k = 0; k < n; k++) {
        const float got = F::at(w.data(), k);
        uint32_t a, b;
        memcpy(&a, &got, 4);
        memcpy(&b, &want[(size_t)k], 4);
        if (a != b) {
            printf("FAIL %s element %lld: CUDA decoder %g vs C reference %g\n", name, (long long)k, got, want[(size_t)k]);
            return 1;
        }
    }
    printf("ok   %s: %lld elements bit-exact\n", name, (long long)n);
    return 0;
}

int main(void) {
    int fails = 0;
    fails += check<GraftF16>("f16", graft_dequantize_row_f16_ref, 2, 1);
    fails += check<GraftBF16>("bf16", graft_dequantize_row_bf16_ref, 2, 1);
    fails += check<GraftQ4_0>("q4_0", graft_dequantize_row_q4_0_ref, sizeof(graft_block_q4_0), GRAFT_QK4_0);
    fails += check<GraftQ4_1>("q4_1", graft_dequantize_row_q4_1_ref, sizeof(graft_block_q4_1), GRAFT_QK4_1);
    fails += check<GraftQ5_0>("q5_0", graft_dequantize_row_q5_0_ref, sizeof(graft_block_q5_0), GRAFT_QK5_0);
    fails += check<GraftQ5_1>("q5_1", graft_dequantize_row_q5_1_ref, sizeof(graft_block_q5_1), GRAFT_QK5_1);
    fails += check<GraftQ8_0>("q8_0", graft_dequantize_row_q8_0_ref, sizeof(graft_block_q8_0), GRAFT_QK8_0);
    fails += check<GraftQ4_K>("q4_K", graft_dequantize_row_q4_K_ref, sizeof(graft_block_q4_K), GRAFT_QK_K);
    fails += check<GraftQ5_K>("q5_K", graft_dequantize_row_q5_K_ref, sizeof(graft_block_q5_K), GRAFT_QK_K);
    fails += check<GraftQ6_K>("q6_K", graft_dequantize_row_q6_K_ref, sizeof(graft_block_q6_K), GRAFT_QK_K);
    printf("%d passed, %d failed\n", 10 - fails, fails);
    return fails ? 1 : 0;
}
