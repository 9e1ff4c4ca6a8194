//! Quantized matrix kernels: activation quantization, dequantization, Y = X·Wᵀ and dX = dY·W.
