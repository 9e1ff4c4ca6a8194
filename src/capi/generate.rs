//! Generation with a token callback that can stop it, and perplexity, on a session.
use super::session::{graft_session, with_session};
use super::{arg_slice, ffi, Failure, GraftStatus, Out};
use crate::model::generate::perplexity;
use std::ffi::{c_char, c_void};
use std::time::Instant;

/// Called by `graft_generate` with each generated token: `token` is its id and `piece` its
/// `piece_len` bytes of text (NUL-terminated after them; possibly part of a UTF-8 character, which
/// the next pieces complete; empty for control tokens). Return true to go on, false to stop after
/// this token. `piece` is valid only during the call. The callback must not unwind (throw,
/// longjmp) into graft; it may call graft functions, except on the session it is generating for
/// (those get `GRAFT_STATUS_ERR_BUSY`); setting an adapter's scale from it is the way to change
/// adapters mid-generation.
pub type graft_token_callback = Option<unsafe extern "C" fn(user_data: *mut c_void, token: u32, piece: *const c_char, piece_len: usize) -> bool>;

/// Why `graft_generate` stopped.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GraftStopReason {
    /// `max_tokens` tokens were generated.
    MaxTokens = 0,
    /// The model produced an end-of-generation token (not passed to the callback, not added to
    /// the session).
    EndOfGeneration = 1,
    /// The callback returned false.
    Callback = 2,
    /// The session's context is full.
    ContextFull = 3,
}

/// What `graft_generate` reports.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct graft_generate_result {
    /// Prompt tokens evaluated.
    pub n_prompt: u64,
    /// Tokens generated (each was passed to the callback and added to the session).
    pub n_generated: u64,
    /// Why generation stopped.
    pub stop_reason: GraftStopReason,
    /// Seconds spent evaluating the prompt.
    pub prefill_seconds: f64,
    /// Seconds spent generating (sampling and callbacks included).
    pub decode_seconds: f64,
}

/// What `graft_perplexity` reports.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct graft_perplexity_result {
    /// exp(mean negative log-likelihood of the scored tokens).
    pub ppl: f64,
    /// Its standard error (as llama.cpp's llama-perplexity estimates it).
    pub err: f64,
    /// Tokens scored.
    pub n_scored: u64,
    /// Chunks evaluated.
    pub n_chunks: u64,
}

/// Evaluates the `n_prompt` tokens of `prompt` after the session's current positions (none: go on
/// from the session's last logits), then samples up to `max_tokens` tokens with the session's
/// sampler and adapters, passing each to `callback` (may be NULL) and adding it to the session.
/// Stops early at an end-of-generation token, when the callback returns false, or when the
/// context is full; `*out_result` (may be NULL) says which and how long it took. Afterwards the
/// session holds the prompt and every generated token, and its logits follow the last one, so a
/// next call (or `graft_session_eval`) continues the text. Prompt errors are those of
/// `graft_session_eval`; an empty prompt on a session with nothing evaluated is
/// `GRAFT_STATUS_ERR_INVALID_ARGUMENT`.
///
/// Ownership: `prompt` is borrowed for the call only; `user_data` is passed to `callback`
/// untouched; `out_result` is the caller's.
/// Thread safety: one call at a time per session (`GRAFT_STATUS_ERR_BUSY` otherwise); the
/// callback runs on the calling thread.
///
/// # Safety
/// `prompt` is NULL or points to `n_prompt` readable `uint32_t`; `callback` is NULL or a function
/// with the `graft_token_callback` contract; `out_result` is NULL or points to writable memory for
/// one `graft_generate_result`.
#[no_mangle]
pub unsafe extern "C" fn graft_generate(
    session: *mut graft_session,
    prompt: *const u32,
    n_prompt: usize,
    max_tokens: usize,
    callback: graft_token_callback,
    user_data: *mut c_void,
    out_result: *mut graft_generate_result,
) -> GraftStatus {
    ffi("graft_generate", || {
        // SAFETY: the caller guarantees `n_prompt` readable ids when not NULL.
        let prompt = unsafe { arg_slice(prompt, n_prompt, "prompt") }?;
        // SAFETY: the caller guarantees NULL or writable memory for one result.
        let out = unsafe { Out::optional(out_result, "out_result") }?;
        with_session(session, |s| {
            let t0 = Instant::now();
            if !prompt.is_empty() {
                s.eval(prompt)?;
            } else if s.logits.is_empty() {
                return Err(Failure::invalid("the prompt is empty and the session has nothing evaluated to go on from"));
            }
            let prefill_seconds = t0.elapsed().as_secs_f64();
            let t1 = Instant::now();
            let model = s.model.model.clone();
            let mut piece = Vec::new();
            let mut n_generated = 0u64;
            let mut stop_reason = GraftStopReason::MaxTokens;
            for _ in 0..max_tokens {
                if s.cache.len() >= s.n_ctx {
                    stop_reason = GraftStopReason::ContextFull;
                    break;
                }
                let tok = s.sampler.sample(&s.logits);
                if model.tokenizer.is_eog(tok) {
                    stop_reason = GraftStopReason::EndOfGeneration;
                    break;
                }
                let go_on = match callback {
                    Some(cb) => {
                        piece.clear();
                        piece.extend_from_slice(model.tokenizer.token_bytes(tok));
                        piece.push(0);
                        // SAFETY: the caller guarantees `cb` follows the graft_token_callback
                        // contract; `piece` holds `len - 1` bytes and a NUL and outlives the call.
                        unsafe { cb(user_data, tok, piece.as_ptr().cast(), piece.len() - 1) }
                    }
                    None => true,
                };
                s.eval(&[tok])?;
                n_generated += 1;
                if !go_on {
                    stop_reason = GraftStopReason::Callback;
                    break;
                }
            }
            if let Some(out) = out {
                out.write(graft_generate_result {
                    n_prompt: prompt.len() as u64,
                    n_generated,
                    stop_reason,
                    prefill_seconds,
                    decode_seconds: t1.elapsed().as_secs_f64(),
                });
            }
            Ok(())
        })
    })
}

/// Perplexity of the `n_tokens` tokens at `tokens` with the session's adapters, by llama.cpp's
/// llama-perplexity protocol: the tokens are cut into chunks of `n_ctx` (the rest dropped), each
/// is evaluated from an empty cache (its first token replaced by BOS when the model adds one), and
/// the second half of each chunk is scored. Needs at least `n_ctx` tokens; `n_ctx` is at least 4
/// and at most the session's context. Uses a cache of its own: the session's positions and logits
/// are unchanged. Its extra memory (a chunk's KV cache and the logits of half a chunk) is checked
/// against the model's memory budget.
///
/// Ownership: `tokens` is borrowed for the call only; `out_result` is the caller's.
/// Thread safety: one call at a time per session (`GRAFT_STATUS_ERR_BUSY` otherwise).
///
/// # Safety
/// `tokens` is NULL or points to `n_tokens` readable `uint32_t`; `out_result` is NULL or points to
/// writable memory for one `graft_perplexity_result`.
#[no_mangle]
pub unsafe extern "C" fn graft_perplexity(session: *mut graft_session, tokens: *const u32, n_tokens: usize, n_ctx: usize, out_result: *mut graft_perplexity_result) -> GraftStatus {
    ffi("graft_perplexity", || {
        // SAFETY: the caller guarantees `n_tokens` readable ids when not NULL.
        let tokens = unsafe { arg_slice(tokens, n_tokens, "tokens") }?;
        // SAFETY: the caller guarantees NULL or writable memory for one result.
        let out = unsafe { Out::new(out_result, "out_result") }?;
        with_session(session, |s| {
            if n_ctx > s.n_ctx {
                return Err(Failure::invalid(format!("n_ctx {n_ctx} is above the session's context ({})", s.n_ctx)));
            }
            let cfg = &s.model.model.config;
            let extra = super::model::session_bytes(cfg, s.model.numerics, n_ctx) + ((n_ctx - n_ctx / 2) * cfg.n_vocab * 4) as u64;
            s.model.reserve_session(extra, &format!("the live sessions and a perplexity run at n_ctx {n_ctx}"))?;
            let r = perplexity(&mut s.runner, tokens, n_ctx, |_, _, _| {});
            s.model.release_session(extra);
            let r = r?;
            out.write(graft_perplexity_result { ppl: r.ppl, err: r.err, n_scored: r.scored as u64, n_chunks: r.chunks as u64 });
            Ok(())
        })
    })
}
