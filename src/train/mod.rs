//! On-device training: the building blocks of a training pass over the frozen base.
//!
//! [`backprop`] is the loss and adapter gradients of a sequence through the whole model.
//! [`adapter_grad`] holds the forward/backward of the trainable adapter terms (low-rank, VeRA).
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
pub mod trainable;
pub mod trainer;
