//! The frozen base weights of a llama-family model: views into the memory-mapped GGUF file, never
//! copied or mutated (norm vectors, a few KB each, are converted to f32 once).
use super::config::Config;
use crate::format::gguf::{Gguf, TensorInfo};
use crate::quant::QuantType;
use crate::{Error, Result};
use std::ops::Range;

/// Which projection of a block a linear layer is (also how adapters name their targets).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LinearKind {
    /// Query projection `attn_q`.
    Q,
    /// Key projection `attn_k`.
    K,
    /// Value projection `attn_v`.
    V,
    /// Attention output projection `attn_output`.
    O,
    /// Feed-forward gate `ffn_gate`.
    Gate,
    /// Feed-forward up projection `ffn_up`.
    Up,
    /// Feed-forward down projection `ffn_down`.
    Down,
}

impl LinearKind {
    /// All seven, in block order.
    pub const ALL: [LinearKind; 7] = [LinearKind::Q, LinearKind::K, LinearKind::V, LinearKind::O, LinearKind::Gate, LinearKind::Up, LinearKind::Down];

    /// The GGUF tensor name stem (`attn_q`, ...).
    pub fn gguf_name(self) -> &'static str {
        match self {
            LinearKind::Q => "attn_q",
            LinearKind::K => "attn_k",
            LinearKind::V => "attn_v",
            LinearKind::O => "attn_output",
            LinearKind::Gate => "ffn_gate",
            LinearKind::Up => "ffn_up",
            LinearKind::Down => "ffn_down",
        }
    }
}

/// A weight matrix of `n_out` rows of `n_in` elements, stored in `ty` inside the mapped file.
#[derive(Clone, Debug)]
pub struct Linear {
    /// Storage format.
    pub ty: QuantType,
    /// Input width (row length).
    pub n_in: usize,
    /// Output width (rows).
    pub n_out: usize,
    /// Byte range of the matrix in the file.
    pub range: Range<usize>,
}

impl Linear {
    /// Bytes of one row.
    pub fn row_bytes(&self) -> usize {
        self.ty.row_bytes(self.n_in).expect("validated at load")
    }
}

/// One transformer block's weights.
#[derive(Clone, Debug)]
pub struct Block {
    /// RMSNorm weight before attention, `[n_embd]`.
    pub attn_norm: Vec<f32>,
    /// Projections in [`LinearKind::ALL`] order.
    pub linears: [Linear; 7],
    /// RMSNorm weight before the feed-forward, `[n_embd]`.
    pub ffn_norm: Vec<f32>,
}

impl Block {
    /// The projection of the given kind.
    pub fn linear(&self, kind: LinearKind) -> &Linear {
        &self.linears[kind as usize]
    }
}

/// All weights of the model.
#[derive(Clone, Debug)]
pub struct Weights {
    /// Token embedding `[n_vocab, n_embd]`.
    pub token_embd: Linear,
    /// The blocks.
    pub blocks: Vec<Block>,
    /// Final RMSNorm weight.
    pub output_norm: Vec<f32>,
    /// Output projection; the token embedding when the model ties them.
    pub output: Linear,
    /// Whether `output` is the token embedding.
    pub tied: bool,
}

fn linear(g: &Gguf, name: &str, n_in: usize, n_out: usize) -> Result<Linear> {
    let t = g.tensor(name).ok_or_else(|| Error::model(g.file_name(), name, "missing tensor"))?;
    check_shape(g, t, &[n_in, n_out])?;
    if !crate::quant::WEIGHT_TYPES.contains(&t.ty) {
        return Err(Error::model(g.file_name(), name, format!("{} is not a weight format graft runs", t.ty)));
    }
    let start = t.offset as usize;
    Ok(Linear { ty: t.ty, n_in, n_out, range: start..start + t.n_bytes })
}

fn check_shape(g: &Gguf, t: &TensorInfo, want: &[usize]) -> Result<()> {
    let dims: Vec<usize> = t.dims.iter().map(|d| *d as usize).collect();
    if dims != want {
        return Err(Error::model(g.file_name(), &t.name, format!("shape {dims:?}, expected {want:?}")));
    }
    Ok(())
}

fn vector(g: &Gguf, name: &str, n: usize) -> Result<Vec<f32>> {
    let t = g.tensor(name).ok_or_else(|| Error::model(g.file_name(), name, "missing tensor"))?;
    check_shape(g, t, &[n])?;
    let bytes = g.tensor_data(t);
    let mut out = vec![0f32; n];
    crate::kernels::quant::selected().dequantize_row(t.ty, bytes, &mut out)?;
    Ok(out)
}

impl Weights {
    /// Finds and checks every tensor of a llama-family model in `g`.
    pub fn from_gguf(g: &Gguf, cfg: &Config) -> Result<Weights> {
        let d = cfg.n_embd;
        let token_embd = linear(g, "token_embd.weight", d, cfg.n_vocab)?;
        let mut blocks = Vec::with_capacity(cfg.n_layer);
        for i in 0..cfg.n_layer {
            let name = |s: &str| format!("blk.{i}.{s}.weight");
            let shape = |k: LinearKind| match k {
                LinearKind::Q => (d, cfg.q_dim()),
                LinearKind::K | LinearKind::V => (d, cfg.kv_dim()),
                LinearKind::O => (cfg.q_dim(), d),
                LinearKind::Gate | LinearKind::Up => (d, cfg.n_ff),
                LinearKind::Down => (cfg.n_ff, d),
            };
            let mut ls = Vec::with_capacity(7);
            for k in LinearKind::ALL {
                let (n_in, n_out) = shape(k);
                ls.push(linear(g, &name(k.gguf_name()), n_in, n_out)?);
            }
            blocks.push(Block {
                attn_norm: vector(g, &name("attn_norm"), d)?,
                linears: ls.try_into().expect("seven projections"),
                ffn_norm: vector(g, &name("ffn_norm"), d)?,
            });
        }
        let (output, tied) = match g.tensor("output.weight") {
            Some(_) => (linear(g, "output.weight", d, cfg.n_vocab)?, false),
            None => (token_embd.clone(), true),
        };
        Ok(Weights { token_embd, blocks, output_norm: vector(g, "output_norm.weight", d)?, output, tied })
    }
}
