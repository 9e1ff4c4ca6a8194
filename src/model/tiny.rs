//! Tiny llama models with random F32 weights, written as GGUF: the small, fully known bases that
//! tests (adapter merging, gradients, golden comparisons) run on. Deterministic for a seed.
use crate::format::gguf::{Array, Value};
use crate::format::gguf_write::GgufWriter;
use crate::quant::QuantType;
use crate::Result;
use std::path::Path;

/// Shape of a tiny llama.
#[derive(Clone, Copy, Debug)]
pub struct TinySpec {
    /// Blocks.
    pub n_layer: usize,
    /// Model width.
    pub n_embd: usize,
    /// Query heads.
    pub n_head: usize,
    /// Key/value heads.
    pub n_head_kv: usize,
    /// Feed-forward width.
    pub n_ff: usize,
    /// Tied output (no `output.weight`).
    pub tied: bool,
}

impl Default for TinySpec {
    fn default() -> Self {
        TinySpec { n_layer: 2, n_embd: 64, n_head: 4, n_head_kv: 2, n_ff: 96, tied: true }
    }
}

/// Vocabulary size of tiny models: the 256 byte tokens of a GPT-2 byte-level BPE with no merges.
pub const TINY_VOCAB: usize = 256;

/// A deterministic normal stream (xorshift64* + Box–Muller).
pub struct Normal(u64);

impl Normal {
    /// A stream for `seed`.
    pub fn new(seed: u64) -> Normal {
        Normal(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn uniform(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        ((self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }
    /// The next N(0, 1) value.
    pub fn sample(&mut self) -> f32 {
        let (u, v) = (self.uniform(), self.uniform());
        ((-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()) as f32
    }
    /// `n` values of N(0, std²).
    pub fn vec(&mut self, n: usize, std: f32) -> Vec<f32> {
        (0..n).map(|_| self.sample() * std).collect()
    }
}

/// GPT-2's byte-to-unicode map: printable bytes stand for themselves, the rest shift above 255.
fn byte_token(b: u8) -> String {
    let printable = (b'!'..=b'~').contains(&b) || (0xA1..=0xAC).contains(&b) || (0xAE..=0xFF).contains(&b);
    if printable {
        char::from(b).to_string()
    } else {
        let mut n = 0u32;
        for c in 0..=255u8 {
            let p = (b'!'..=b'~').contains(&c) || (0xA1..=0xAC).contains(&c) || (0xAE..=0xFF).contains(&c);
            if !p {
                if c == b {
                    break;
                }
                n += 1;
            }
        }
        char::from_u32(256 + n).unwrap().to_string()
    }
}

/// Writes a tiny llama GGUF with F32 weights drawn from N(0, 0.02..0.1) for `seed`.
pub fn write_tiny_llama(path: &Path, spec: TinySpec, seed: u64) -> Result<()> {
    let mut w = GgufWriter::new();
    let (d, hd) = (spec.n_embd, spec.n_embd / spec.n_head);
    let kvd = spec.n_head_kv * hd;
    let u32v = |v: usize| Value::U32(v as u32);
    w.add_kv("general.architecture", Value::Str("llama".into()));
    w.add_kv("general.name", Value::Str(format!("tiny-llama-{seed}")));
    w.add_kv("llama.block_count", u32v(spec.n_layer));
    w.add_kv("llama.embedding_length", u32v(d));
    w.add_kv("llama.feed_forward_length", u32v(spec.n_ff));
    w.add_kv("llama.attention.head_count", u32v(spec.n_head));
    w.add_kv("llama.attention.head_count_kv", u32v(spec.n_head_kv));
    w.add_kv("llama.rope.freq_base", Value::F32(10000.0));
    w.add_kv("llama.attention.layer_norm_rms_epsilon", Value::F32(1e-5));
    w.add_kv("llama.context_length", u32v(512));
    w.add_kv("tokenizer.ggml.model", Value::Str("gpt2".into()));
    w.add_kv("tokenizer.ggml.pre", Value::Str("gpt-2".into()));
    w.add_kv("tokenizer.ggml.tokens", Value::Array(Array::Str((0..=255u8).map(byte_token).collect())));
    w.add_kv("tokenizer.ggml.token_type", Value::Array(Array::I32(vec![1; TINY_VOCAB])));
    w.add_kv("tokenizer.ggml.merges", Value::Array(Array::Str(Vec::new())));
    w.add_kv("tokenizer.ggml.bos_token_id", u32v(1));
    w.add_kv("tokenizer.ggml.eos_token_id", u32v(2));
    let mut rng = Normal::new(seed);
    let f32b = |v: Vec<f32>| v.into_iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    let add = |w: &mut GgufWriter, name: &str, n_in: usize, n_out: usize, std: f32, rng: &mut Normal| -> Result<()> {
        let dims: Vec<u64> = if n_out == 1 { vec![n_in as u64] } else { vec![n_in as u64, n_out as u64] };
        let v = if std < 0.0 { (0..n_in * n_out).map(|_| 1.0 + 0.1 * rng.sample()).collect() } else { rng.vec(n_in * n_out, std) };
        w.add_tensor(name, &dims, QuantType::F32, f32b(v))?;
        Ok(())
    };
    add(&mut w, "token_embd.weight", d, TINY_VOCAB, 0.5, &mut rng)?;
    for l in 0..spec.n_layer {
        let n = |s: &str| format!("blk.{l}.{s}.weight");
        add(&mut w, &n("attn_norm"), d, 1, -1.0, &mut rng)?;
        add(&mut w, &n("attn_q"), d, d, 0.1, &mut rng)?;
        add(&mut w, &n("attn_k"), d, kvd, 0.1, &mut rng)?;
        add(&mut w, &n("attn_v"), d, kvd, 0.1, &mut rng)?;
        add(&mut w, &n("attn_output"), d, d, 0.1, &mut rng)?;
        add(&mut w, &n("ffn_norm"), d, 1, -1.0, &mut rng)?;
        add(&mut w, &n("ffn_gate"), d, spec.n_ff, 0.1, &mut rng)?;
        add(&mut w, &n("ffn_up"), d, spec.n_ff, 0.1, &mut rng)?;
        add(&mut w, &n("ffn_down"), spec.n_ff, d, 0.1, &mut rng)?;
    }
    add(&mut w, "output_norm.weight", d, 1, -1.0, &mut rng)?;
    if !spec.tied {
        add(&mut w, "output.weight", d, TINY_VOCAB, 0.1, &mut rng)?;
    }
    w.write_to(path)
}
