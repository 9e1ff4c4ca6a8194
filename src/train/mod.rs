//! On-device training of adapters over the frozen quantized base.
//!
//! [`trainer`] is the loop (batches over threads, AdamW, eval loss, atomic checkpoints, exact
//! resume, memory planning); [`trainable`] holds what a method trains and maps term gradients onto
//! it (VeRA, LoLDU, LoRA-XS, LoRA-SB, LoRA, FFA-LoRA, ALLoRA's scaling).
//! [`backprop`] is the loss and adapter gradients of a sequence through the whole model (optional
//! activation checkpointing); [`matmul`] the frozen base's products over dequantized panels (f32
//! numerics); [`packed`] the base and VeRA's shared projections packed for int8 products (int8
//! numerics, the default on AVX-512 VNNI);
//! [`adapter_grad`] the forward/backward of the trainable adapter terms (low-rank, VeRA).
//! [`data`] reads and packs training records (text, JSONL, chat).
//! [`optim`] is AdamW with warm-up, cosine decay and clipping.
//! [`ops`] holds the per-op forward/backward pairs on f32 row-major buffers (in the style of
//! llm.c): every backward *adds* into its input gradients, so gradients of a value used twice
//! (a residual stream, a shared key/value head) sum without extra buffers; callers zero the
//! gradient buffers once per step.
pub mod adapter_grad;
pub mod backprop;
pub mod data;
pub mod matmul;
pub mod ops;
pub mod optim;
pub mod packed;
pub mod trainable;
pub mod trainer;
