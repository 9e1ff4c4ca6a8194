/* graft: helpers shared by the CPU kernel files (scalar f16/bf16 conversion, K-quant scales). */
#ifndef GRAFT_CPU_COMMON_H
#define GRAFT_CPU_COMMON_H
#include <math.h>
#include <stdint.h>
#include <string.h>
#include "blocks.h"

static inline float graft_h2f(graft_f16 h) {
    const uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    const uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t man = h & 0x3ffu, bits;
    if (exp == 0) {
        if (man == 0) {
            bits = sign;
        } else {
            int e = -1;
            do { man <<= 1; e++; } while (!(man & 0x400u));
            bits = sign | ((uint32_t)(112 - e) << 23) | ((man & 0x3ffu) << 13);
        }
    } else if (exp == 31) {
        bits = sign | 0x7f800000u | (man << 13);
    } else {
        bits = sign | ((exp + 112) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

static inline graft_f16 graft_f2h(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    const uint32_t sign = (x >> 16) & 0x8000u, absx = x & 0x7fffffffu;
    if (absx >= 0x7f800000u) return (graft_f16)(sign | 0x7c00u | (absx > 0x7f800000u ? 0x200u : 0));
    if (absx >= 0x477ff000u) return (graft_f16)(sign | 0x7c00u);
    if (absx < 0x38800000u) {
        if (absx < 0x33000000u) return (graft_f16)sign;
        const uint32_t e = absx >> 23, m = (absx & 0x7fffffu) | 0x800000u, shift = 126 - e;
        uint32_t q = m >> shift;
        const uint32_t rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (q & 1))) q++;
        return (graft_f16)(sign | q);
    }
    uint32_t q = (((absx >> 23) - 112) << 10) | ((absx & 0x7fffffu) >> 13);
    const uint32_t rem = absx & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (q & 1))) q++;
    return (graft_f16)(sign | q);
}

static inline float graft_bf2f(graft_bf16 h) {
    const uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

/* The j-th 6-bit scale and min of a Q4_K / Q5_K super-block. */
static inline void graft_scale_min_k4(int j, const uint8_t *q, uint8_t *d, uint8_t *m) {
    if (j < 4) {
        *d = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *d = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
        *m = (q[j + 4] >> 4) | ((q[j - 0] >> 6) << 4);
    }
}
/* Bytes ahead of the current weight row that the SIMD products prefetch (graft_set_weight_prefetch). */
extern int64_t graft_weight_prefetch;

/* Prefetches the `len` bytes that lie graft_weight_prefetch bytes after `row`, stopping at `end`
 * (the end of the call's rows): hardware prefetchers stop at 4 KiB pages, so without this a
 * decode's weight stream waits on memory at every page. */
static inline void graft_prefetch_ahead(const void *row, size_t len, const void *end) {
    const int64_t d = graft_weight_prefetch;
    if (d <= 0) return;
    const char *p = (const char *)row + d, *e = (const char *)end;
    for (size_t o = 0; o < len && p + o < e; o += 64) __builtin_prefetch(p + o, 0, 3);
}
#endif
