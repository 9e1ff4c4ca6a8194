//! File formats: GGUF and safetensors readers (pure parsing over bytes, every length checked).
pub mod gguf;
pub mod gguf_write;
pub mod inspect;
pub mod safetensors;
