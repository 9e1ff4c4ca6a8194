//! Text generation and perplexity on top of [`Runner`].
use super::forward::{Logits, Runner, SeqInput};
use super::kv_cache::KvCache;
use super::sampler::Sampler;
use crate::{Error, Result};
use std::time::Instant;

/// Tokens per forward call while reading a prompt.
pub const PREFILL_BATCH: usize = 512;

/// Timings of one generation.
#[derive(Clone, Copy, Debug, Default)]
pub struct GenStats {
    /// Prompt tokens read.
    pub prompt_tokens: usize,
    /// Seconds spent reading the prompt.
    pub prefill_s: f64,
    /// Tokens generated.
    pub gen_tokens: usize,
    /// Seconds spent generating (sampling included).
    pub decode_s: f64,
}

/// Reads `prompt` into `cache` and returns the logits of its last token.
pub fn prefill(runner: &mut Runner, cache: &mut KvCache, prompt: &[u32]) -> Result<Vec<f32>> {
    if prompt.is_empty() {
        return Err(Error::invalid("prefill", "empty prompt"));
    }
    let mut last = Vec::new();
    for (i, chunk) in prompt.chunks(PREFILL_BATCH).enumerate() {
        let is_last = (i + 1) * PREFILL_BATCH >= prompt.len();
        let logits = if is_last { Logits::Last } else { Logits::None };
        let out = runner.forward(&mut [SeqInput { tokens: chunk, cache, logits }])?;
        if is_last {
            last = out.to_vec();
        }
    }
    Ok(last)
}

/// Reads `prompt`, then samples up to `n` tokens, calling `on_token` with each; generation stops
/// early at an end-of-generation token (not passed to `on_token`) or when `on_token` returns false.
pub fn generate(runner: &mut Runner, cache: &mut KvCache, prompt: &[u32], n: usize, sampler: &mut Sampler, mut on_token: impl FnMut(u32) -> bool) -> Result<GenStats> {
    let model = runner.model().clone();
    cache.reserve(prompt.len() + n);
    let t0 = Instant::now();
    let mut logits = prefill(runner, cache, prompt)?;
    let mut st = GenStats { prompt_tokens: prompt.len(), prefill_s: t0.elapsed().as_secs_f64(), ..Default::default() };
    let t1 = Instant::now();
    for i in 0..n {
        let tok = sampler.sample(&logits);
        if model.tokenizer.is_eog(tok) || !on_token(tok) {
            break;
        }
        st.gen_tokens += 1;
        if i + 1 == n {
            break;
        }
        logits = runner.forward(&mut [SeqInput { tokens: &[tok], cache, logits: Logits::Last }])?.to_vec();
    }
    st.decode_s = t1.elapsed().as_secs_f64();
    Ok(st)
}

/// Result of a perplexity run.
#[derive(Clone, Copy, Debug)]
pub struct Perplexity {
    /// exp(mean negative log-likelihood).
    pub ppl: f64,
    /// Its standard error, as llama.cpp's `llama-perplexity` estimates it.
    pub err: f64,
    /// Tokens scored.
    pub scored: usize,
    /// Chunks evaluated.
    pub chunks: usize,
}

/// `-log softmax(logits)[tok]`, with the sum of exponentials in double as llama.cpp does.
pub fn nll(logits: &[f32], tok: u32) -> f64 {
    let max = logits.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
    let sum: f64 = logits.iter().map(|&l| ((l - max) as f64).exp()).sum();
    sum.ln() + max as f64 - logits[tok as usize] as f64
}

/// Perplexity with llama.cpp's `llama-perplexity` protocol: the tokens are cut into chunks of `ctx`
/// (the remainder dropped), each chunk is evaluated from an empty cache (its first token replaced by
/// BOS when the model adds one), and the second half of each chunk is scored. `on_chunk(i, n, ppl)`
/// reports progress.
pub fn perplexity(runner: &mut Runner, tokens: &[u32], ctx: usize, mut on_chunk: impl FnMut(usize, usize, f64)) -> Result<Perplexity> {
    let model = runner.model().clone();
    if ctx < 4 {
        return Err(Error::invalid("perplexity", format!("context {ctx} is too small")));
    }
    let n_chunks = tokens.len() / ctx;
    if n_chunks == 0 {
        return Err(Error::invalid("perplexity", format!("{} tokens: need at least 2 * ctx = {}", tokens.len(), 2 * ctx)));
    }
    let first = ctx / 2;
    let nv = model.config.n_vocab;
    let bos = if model.tokenizer.add_bos() { model.tokenizer.bos() } else { None };
    let (mut sum, mut sum2, mut count) = (0f64, 0f64, 0usize);
    let mut cache = runner.new_cache();
    cache.reserve(ctx);
    let mut chunk = vec![0u32; ctx];
    for c in 0..n_chunks {
        chunk.copy_from_slice(&tokens[c * ctx..(c + 1) * ctx]);
        if let Some(b) = bos {
            chunk[0] = b;
        }
        cache.clear();
        let tail = ctx - first;
        let logits = runner.forward(&mut [SeqInput { tokens: &chunk, cache: &mut cache, logits: Logits::Tail(tail) }])?;
        // Row r of `logits` is position first + r, predicting token first + r + 1.
        for j in first..ctx - 1 {
            let row = &logits[(j - first) * nv..(j - first + 1) * nv];
            let v = nll(row, tokens[c * ctx + j + 1]);
            sum += v;
            sum2 += v * v;
            count += 1;
        }
        on_chunk(c, n_chunks, (sum / count as f64).exp());
    }
    let mean = sum / count as f64;
    let var = sum2 / count as f64 - mean * mean;
    let ppl = mean.exp();
    let err = if var > 0.0 && count > 1 { (var / (count - 1) as f64).sqrt() * ppl } else { 0.0 };
    Ok(Perplexity { ppl, err, scored: count, chunks: n_chunks })
}
