/* graft CUDA kernels: helpers shared by every csrc/cuda/*.cu file (each file is its own module, so
 * everything here is static inline device code).
 *
 * Conventions of every kernel (as csrc/kernels.h for the CPU): sizes are int64_t element counts,
 * strides of quantized rows are bytes (size_t), strides of f32 matrices are elements. Entry points
 * are `extern "C" __global__ graft_cu_<op>_<operands>`; the launch shape each expects is stated
 * beside it (a kernel checks its bounds, so a larger grid is harmless, a smaller one is not). */
#ifndef GRAFT_CUDA_COMMON_CUH
#define GRAFT_CUDA_COMMON_CUH

#include <stddef.h>
#include <stdint.h>
#include "blocks.h"

#ifndef __CUDA_ARCH__
#include <string.h>
#include "cpu/common.h" /* host pass: the C reference's conversions */
#endif

#define GRAFT_CU_WARP 32

/* Helpers marked GRAFT_CU_HD also compile for the host, so that tests/c/cuda_dequant_check.cu can
 * hold the decoders of dequant.cuh to the C reference without a GPU (same index arithmetic; the
 * arithmetic itself is the C reference's on the host, the round-to-nearest intrinsics on the GPU). */
#define GRAFT_CU_HD static __host__ __device__ __forceinline__
#ifdef __CUDA_ARCH__
#define GRAFT_CU_FMUL(a, b) __fmul_rn(a, b)
#define GRAFT_CU_FADD(a, b) __fadd_rn(a, b)
#define GRAFT_CU_FSUB(a, b) __fsub_rn(a, b)
#else
#define GRAFT_CU_FMUL(a, b) ((a) * (b))
#define GRAFT_CU_FADD(a, b) ((a) + (b))
#define GRAFT_CU_FSUB(a, b) ((a) - (b))
#endif

/* IEEE half -> float, exact (subnormals included): the PTX conversion. */
GRAFT_CU_HD float graft_cu_h2f(uint16_t h) {
#ifdef __CUDA_ARCH__
    float f;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h));
    return f;
#else
    return graft_h2f(h);
#endif
}

/* float -> IEEE half, round to nearest even (as graft_f2h in csrc/cpu/common.h). */
static __device__ __forceinline__ uint16_t graft_cu_f2h(float f) {
    uint16_t h;
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(f));
    return h;
}

GRAFT_CU_HD float graft_cu_bf2f(uint16_t h) {
#ifdef __CUDA_ARCH__
    return __uint_as_float((uint32_t)h << 16);
#else
    return graft_bf2f(h);
#endif
}

/* Little-endian loads from byte pointers with no alignment assumed (block fields sit at odd
 * offsets: a Q5_0 block's qh starts 2 bytes into a 22-byte block). */
GRAFT_CU_HD uint16_t graft_cu_ld16(const uint8_t *p) {
    return (uint16_t)(p[0] | ((uint16_t)p[1] << 8));
}
GRAFT_CU_HD uint32_t graft_cu_ld32(const uint8_t *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static __device__ __forceinline__ float graft_cu_warp_sum(float v) {
#pragma unroll
    for (int o = GRAFT_CU_WARP / 2; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
static __device__ __forceinline__ double graft_cu_warp_sum_d(double v) {
#pragma unroll
    for (int o = GRAFT_CU_WARP / 2; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
static __device__ __forceinline__ float graft_cu_warp_max(float v) {
#pragma unroll
    for (int o = GRAFT_CU_WARP / 2; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

/* Block-wide reductions for blockDim.x a multiple of 32, at most 1024. Every thread of the block
 * must call them (they synchronise); every thread gets the result. `scratch` holds 32 values. */
static __device__ __forceinline__ double graft_cu_block_sum_d(double v, double *scratch) {
    const int lane = threadIdx.x % GRAFT_CU_WARP, warp = threadIdx.x / GRAFT_CU_WARP;
    const int nwarps = blockDim.x / GRAFT_CU_WARP;
    v = graft_cu_warp_sum_d(v);
    __syncthreads(); /* scratch may still be read by a previous reduction */
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    v = lane < nwarps ? scratch[lane] : 0.0;
    return graft_cu_warp_sum_d(v);
}
static __device__ __forceinline__ float graft_cu_block_max(float v, float *scratch) {
    const int lane = threadIdx.x % GRAFT_CU_WARP, warp = threadIdx.x / GRAFT_CU_WARP;
    const int nwarps = blockDim.x / GRAFT_CU_WARP;
    v = graft_cu_warp_max(v);
    __syncthreads();
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    v = lane < nwarps ? scratch[lane] : __int_as_float((int)0xff800000u);
    return graft_cu_warp_max(v);
}

/* Grid-stride loop over [0, n). */
#define GRAFT_CU_FOR(i, n) \
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += (int64_t)gridDim.x * blockDim.x)

#endif
