//! File formats: GGUF and safetensors readers (pure parsing over bytes, every length checked).
