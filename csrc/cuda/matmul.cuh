/* graft CUDA kernels: one tiled product, C = alpha * A·B + beta * C, that the quantized GEMM
 * (prefill), the quantized dX (backward) and the dense f32 GEMM (adapter gradients) share; they
 * differ only in how an element of A or B is fetched (a "loader").
 *
 *   C[i*ldc + c] = alpha * sum_{t<K} A(i, t) * B(t, c) + beta * C[i*ldc + c]   for i < M, c < N
 *
 * beta == 0 writes C without reading it. One block of GRAFT_CU_MM_THREADS threads computes a
 * TM x TN tile of C (4 x 4 outputs per thread), walking K in steps of TK through shared memory;
 * grid = (ceil(N / TN), ceil(M / TM)). Every fetch is bounds-checked (out-of-range elements are 0),
 * so M, N and K need not divide the tile. Accumulation is f32 in order t = 0, 1, ... per output.
 *
 * A loader has `float at(int64_t i, int64_t t)` (or (t, c) for B) and `bool t_fast()`: whether
 * neighbouring threads should walk t (memory is contiguous along t) rather than i (or c). */
#ifndef GRAFT_CUDA_MATMUL_CUH
#define GRAFT_CUDA_MATMUL_CUH

#include "common.cuh"

#define GRAFT_CU_MM_TM 64
#define GRAFT_CU_MM_TN 64
#define GRAFT_CU_MM_TK 32
#define GRAFT_CU_MM_THREADS 256

template <class LA, class LB>
static __device__ __forceinline__ void graft_cu_tile_mm(const LA &la, const LB &lb, int64_t M, int64_t N, int64_t K,
                                                        float alpha, float beta, float *C, int64_t ldc) {
    __shared__ float As[GRAFT_CU_MM_TK][GRAFT_CU_MM_TM + 1];
    __shared__ float Bs[GRAFT_CU_MM_TK][GRAFT_CU_MM_TN + 1];
    const int tid = threadIdx.x, tx = tid % 16, ty = tid / 16;
    const int64_t c0 = (int64_t)blockIdx.x * GRAFT_CU_MM_TN, i0 = (int64_t)blockIdx.y * GRAFT_CU_MM_TM;
    float acc[4][4];
#pragma unroll
    for (int b = 0; b < 4; b++)
#pragma unroll
        for (int a = 0; a < 4; a++) acc[b][a] = 0.0f;
    const bool at_fast = la.t_fast(), bt_fast = lb.t_fast();
    for (int64_t t0 = 0; t0 < K; t0 += GRAFT_CU_MM_TK) {
        for (int e = tid; e < GRAFT_CU_MM_TM * GRAFT_CU_MM_TK; e += GRAFT_CU_MM_THREADS) {
            const int tl = at_fast ? e % GRAFT_CU_MM_TK : e / GRAFT_CU_MM_TM;
            const int il = at_fast ? e / GRAFT_CU_MM_TK : e % GRAFT_CU_MM_TM;
            const int64_t i = i0 + il, t = t0 + tl;
            As[tl][il] = (i < M && t < K) ? la.at(i, t) : 0.0f;
        }
        for (int e = tid; e < GRAFT_CU_MM_TN * GRAFT_CU_MM_TK; e += GRAFT_CU_MM_THREADS) {
            const int tl = bt_fast ? e % GRAFT_CU_MM_TK : e / GRAFT_CU_MM_TN;
            const int cl = bt_fast ? e / GRAFT_CU_MM_TK : e % GRAFT_CU_MM_TN;
            const int64_t c = c0 + cl, t = t0 + tl;
            Bs[tl][cl] = (c < N && t < K) ? lb.at(t, c) : 0.0f;
        }
        __syncthreads();
#pragma unroll 8
        for (int tl = 0; tl < GRAFT_CU_MM_TK; tl++) {
            float av[4], bv[4];
#pragma unroll
            for (int b = 0; b < 4; b++) av[b] = As[tl][ty + 16 * b];
#pragma unroll
            for (int a = 0; a < 4; a++) bv[a] = Bs[tl][tx + 16 * a];
#pragma unroll
            for (int b = 0; b < 4; b++)
#pragma unroll
                for (int a = 0; a < 4; a++) acc[b][a] += av[b] * bv[a];
        }
        __syncthreads();
    }
#pragma unroll
    for (int b = 0; b < 4; b++) {
        const int64_t i = i0 + ty + 16 * b;
        if (i >= M) continue;
#pragma unroll
        for (int a = 0; a < 4; a++) {
            const int64_t c = c0 + tx + 16 * a;
            if (c >= N) continue;
            float *o = C + i * ldc + c;
            *o = beta == 0.0f ? alpha * acc[b][a] : alpha * acc[b][a] + beta * *o;
        }
    }
}

/* Row-major f32 matrix, optionally transposed: at(i, t) = trans ? p[t*ld + i] : p[i*ld + t]. */
struct GraftDense {
    const float *p;
    int64_t ld;
    bool trans;
    __device__ __forceinline__ float at(int64_t i, int64_t t) const { return trans ? p[t * ld + i] : p[i * ld + t]; }
    __device__ __forceinline__ bool t_fast() const { return !trans; }
};

/* B(t, c) = W[c][t], W a quantized matrix with rows `stride` bytes apart (Y = X·Wᵀ: t walks the
 * row, contiguous). */
template <class F>
struct GraftWT {
    const uint8_t *w;
    size_t stride;
    __device__ __forceinline__ float at(int64_t t, int64_t c) const { return F::at(w + (size_t)c * stride, t); }
    __device__ __forceinline__ bool t_fast() const { return true; }
};

/* B(t, c) = W[t][c] (dX = dY·W: c walks the row). */
template <class F>
struct GraftW {
    const uint8_t *w;
    size_t stride;
    __device__ __forceinline__ float at(int64_t t, int64_t c) const { return F::at(w + (size_t)t * stride, c); }
    __device__ __forceinline__ bool t_fast() const { return false; }
};

#endif
