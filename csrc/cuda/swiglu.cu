/* graft CUDA kernels: the SwiGLU gate, forward and backward, element-wise.
 * References: graft_silu_gate_f32_ref (csrc/cpu/ops_ref.c), swiglu_backward (src/train/ops.rs).
 *
 * graft_cu_silu_gate_f32(gate, up, y, n):  y = (g / (1 + exp(-g))) * up;  y may alias gate or up.
 * graft_cu_silu_gate_backward_f32(dy, gate, up, dgate, dup, n), with s = sigmoid(g):
 *   dgate += dy * up * s * (1 + g * (1 - s));  dup += dy * g * s
 * Launch: any block size, any grid (grid-stride loop). */
#include "common.cuh"

extern "C" __global__ void graft_cu_silu_gate_f32(const float *gate, const float *up, float *y, int64_t n) {
    GRAFT_CU_FOR(i, n) {
        const float g = gate[i];
        y[i] = __fmul_rn(__fdiv_rn(g, __fadd_rn(1.0f, expf(-g))), up[i]);
    }
}

extern "C" __global__ void graft_cu_silu_gate_backward_f32(const float *dy, const float *gate, const float *up,
                                                           float *dgate, float *dup, int64_t n) {
    GRAFT_CU_FOR(i, n) {
        const float g = gate[i], u = up[i], d = dy[i];
        const float s = 1.0f / (1.0f + expf(-g));
        dgate[i] += d * u * s * (1.0f + g * (1.0f - s));
        dup[i] += d * g * s;
    }
}
