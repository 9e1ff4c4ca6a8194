//! Element-wise and attention kernels (RMSNorm, RoPE, softmax, SiLU-gate, f16 helpers).
