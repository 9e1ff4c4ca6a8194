//! The llama forward pass, tokenizer and sampler.
pub mod pretokenize;
pub mod tokenizer;
