//! graft: a runtime that runs a quantized language model from a GGUF file on hand-written SIMD
//! kernels, with hot-swappable adapters and on-device adapter training.
//!
//! Layers, lowest first: [`error`], [`format`](mod@format) (GGUF and safetensors parsing), [`quant`] (block
//! formats), [`kernels`] (the C kernels behind a run-time ISA table), [`model`] (the llama
//! forward pass, tokenizer, sampler), [`adapter`] (adapter methods, files and registry), [`train`]
//! (adapter training: backward pass, methods, trainer), [`cuda`] (the CUDA backend: compiled with
//! the `cuda` feature, a stub that says so without it), and [`capi`] (the C API behind
//! `include/graft.h`).
#![warn(missing_docs)]

pub mod adapter;
pub mod capi;
pub mod cuda;
pub mod error;
pub mod format;
pub mod kernels;
pub mod model;
pub mod pool;
pub mod quant;
pub mod requant;
pub mod train;

pub use error::{Error, Result};
