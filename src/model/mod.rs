//! The llama forward pass, tokenizer and sampler.
