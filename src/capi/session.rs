//! Sessions: one sequence of a shared model, with its own KV cache, sampler, thread pool and adapter
//! set. Create, free, set adapters, evaluate, read logits, sample, rewind.
use super::handle::Table;
use super::model::{check_token, graft_model, session_bytes, ModelHandle, MODELS};
use super::{arg_slice, arg_slice_mut, arg_str, ffi, CResult, Failure, GraftStatus, Out};
use crate::model::generate::prefill;
use crate::model::sampler::Sampler;
use crate::model::{KvCache, Runner};
use std::ffi::c_char;
use std::sync::{Arc, Mutex};

/// A session (opaque): one sequence on a shared model, with its own KV cache, sampler, threads and
/// adapter set. Created by `graft_session_new`, released by `graft_session_free`.
pub struct graft_session {
    _opaque: [u8; 0],
}

/// Options of `graft_session_new`. Fill with `graft_session_options_default` first, then change
/// fields.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct graft_session_options {
    /// Threads this session computes on (0: the model's `threads` option).
    pub threads: u32,
    /// Positions the session's KV cache may hold (0: the model's `n_ctx`; at most that).
    pub n_ctx: u32,
    /// Sampling temperature (0: greedy, the most likely token). Default 0.8.
    pub temperature: f32,
    /// Nucleus sampling mass kept, in (0, 1]. Default 0.95.
    pub top_p: f32,
    /// Sampling seed. Default 42.
    pub seed: u64,
}

impl Default for graft_session_options {
    fn default() -> Self {
        graft_session_options { threads: 0, n_ctx: 0, temperature: 0.8, top_p: 0.95, seed: 42 }
    }
}

/// A session handle's object.
pub(crate) struct Session {
    /// The model handle's object (kept alive by the session).
    pub(crate) model: Arc<ModelHandle>,
    pub(crate) runner: Runner,
    pub(crate) cache: KvCache,
    pub(crate) sampler: Sampler,
    /// Positions the cache may hold.
    pub(crate) n_ctx: usize,
    /// Logits of the last evaluated position; empty when there is none.
    pub(crate) logits: Vec<f32>,
    /// Bytes reserved in the model's memory budget.
    reserved: u64,
}

impl Drop for Session {
    fn drop(&mut self) {
        self.model.release_session(self.reserved);
    }
}

impl Session {
    /// Appends `tokens` to the sequence and keeps the logits of the last one. On error the session
    /// is unchanged.
    pub(crate) fn eval(&mut self, tokens: &[u32]) -> CResult<()> {
        if tokens.is_empty() {
            return Err(Failure::invalid("no tokens to evaluate"));
        }
        for &t in tokens {
            check_token(&self.model.model, t)?;
        }
        let held = self.cache.len();
        if held + tokens.len() > self.n_ctx {
            return Err(Failure::new(
                GraftStatus::ErrContextFull,
                format!("{held} positions held + {} new tokens exceed the session's context of {}", tokens.len(), self.n_ctx),
            ));
        }
        match prefill(&mut self.runner, &mut self.cache, tokens) {
            Ok(l) => {
                self.logits = l;
                Ok(())
            }
            Err(e) => {
                self.cache.truncate(held);
                Err(e.into())
            }
        }
    }

    /// The logits of the last evaluated position.
    pub(crate) fn last_logits(&self) -> CResult<&[f32]> {
        if self.logits.is_empty() {
            return Err(Failure::invalid("the session has no logits: evaluate tokens first"));
        }
        Ok(&self.logits)
    }
}

pub(crate) static SESSIONS: Table<Mutex<Session>> = Table::new("graft_session");

/// Runs `f` on the session behind `h`, one call at a time: a concurrent or re-entrant call is
/// `GRAFT_STATUS_ERR_BUSY`, and a session poisoned by an internal error is refused.
pub(crate) fn with_session<R>(h: *const graft_session, f: impl FnOnce(&mut Session) -> CResult<R>) -> CResult<R> {
    SESSIONS.with_locked(h, "session", f)
}

/// Fills `options` with the defaults: the model's threads and context, temperature 0.8, top-p
/// 0.95, seed 42.
///
/// Ownership: `options` is the caller's; graft only writes it.
/// Thread safety: callable from any thread.
///
/// # Safety
/// `options` is NULL or points to writable memory for one `graft_session_options`.
#[no_mangle]
pub unsafe extern "C" fn graft_session_options_default(options: *mut graft_session_options) -> GraftStatus {
    ffi("graft_session_options_default", || {
        // SAFETY: the caller guarantees NULL or writable memory.
        let out = unsafe { Out::new(options, "options") }?;
        out.write(graft_session_options::default());
        Ok(())
    })
}

fn check_sampler(temperature: f32, top_p: f32) -> CResult<()> {
    if !(temperature.is_finite() && temperature >= 0.0) {
        return Err(Failure::invalid(format!("temperature {temperature} is not a finite value >= 0")));
    }
    if !(top_p > 0.0 && top_p <= 1.0) {
        return Err(Failure::invalid(format!("top_p {top_p} is not in (0, 1]")));
    }
    Ok(())
}

/// Creates a session on `model` and writes its handle to `*out_session`. `options` may be NULL for
/// the defaults. The session starts empty, with no adapters. Fails with
/// `GRAFT_STATUS_ERR_MEMORY_BUDGET` when the model's live sessions and this one would exceed the
/// model's memory budget, `GRAFT_STATUS_ERR_INVALID_ARGUMENT` for bad options (an `n_ctx` above
/// the model's).
///
/// Ownership: `options` is borrowed for the call only. The handle written to `*out_session` is
/// owned by the caller, who releases it with `graft_session_free`; on failure `*out_session` is
/// left unchanged. The session keeps the model alive: `graft_model_free` may come first.
/// Thread safety: callable from any thread, concurrently. Each session computes on its own
/// threads; different sessions may run at the same time on different threads.
///
/// # Safety
/// `options` is NULL or points to an initialized `graft_session_options`; `out_session` is NULL or
/// points to writable memory for one pointer.
#[no_mangle]
pub unsafe extern "C" fn graft_session_new(model: *mut graft_model, options: *const graft_session_options, out_session: *mut *mut graft_session) -> GraftStatus {
    ffi("graft_session_new", || {
        let m = MODELS.get(model)?;
        // SAFETY: the caller guarantees NULL or writable memory for one pointer.
        let out = unsafe { Out::new(out_session, "out_session") }?;
        let opts = if options.is_null() {
            graft_session_options::default()
        } else {
            if !options.is_aligned() {
                return Err(Failure::invalid("options is not aligned"));
            }
            // SAFETY: non-NULL and aligned; the caller guarantees an initialized struct of plain
            // numbers, for which every bit pattern is valid.
            unsafe { options.read() }
        };
        check_sampler(opts.temperature, opts.top_p)?;
        let n_ctx = match opts.n_ctx as usize {
            0 => m.n_ctx,
            n if n > m.n_ctx => return Err(Failure::invalid(format!("n_ctx {n} is above the model's n_ctx option ({})", m.n_ctx))),
            n => n,
        };
        let threads = if opts.threads == 0 { m.threads } else { opts.threads as usize };
        let bytes = session_bytes(&m.model.config, m.numerics, n_ctx);
        m.reserve_session(bytes, &format!("the live sessions and a new one at n_ctx {n_ctx}"))?;
        let runner = Runner::with_numerics(m.model.clone(), threads, m.numerics);
        let s = Session {
            cache: runner.new_cache(),
            runner,
            sampler: Sampler::new(opts.temperature, opts.top_p, opts.seed),
            n_ctx,
            logits: Vec::new(),
            reserved: bytes,
            model: m,
        };
        out.write(SESSIONS.insert(Mutex::new(s)));
        Ok(())
    })
}

/// Releases a session (its KV cache, threads and adapter references). NULL is accepted and does
/// nothing; a handle already freed is `GRAFT_STATUS_ERR_INVALID_HANDLE`.
///
/// Ownership: takes the caller's handle; it is invalid afterwards.
/// Thread safety: callable from any thread, also while another thread is inside a call on the
/// session: that call finishes normally and the session goes after it.
#[no_mangle]
pub extern "C" fn graft_session_free(session: *mut graft_session) -> GraftStatus {
    ffi("graft_session_free", || SESSIONS.free(session))
}

/// Sets the session's adapters: `names[i]` (loaded on the session's model with
/// `graft_adapter_load`) at session scale `scales[i]` (times the adapter's model-wide scale), for
/// `i < n`. `scales` may be NULL for all 1. `n == 0` removes every adapter. Takes effect from the
/// next evaluated token; positions already in the KV cache keep what they were computed with.
/// Other sessions are not affected. An unknown name or a non-finite scale is
/// `GRAFT_STATUS_ERR_INVALID_ARGUMENT`, and the set is unchanged.
///
/// Ownership: `names` (and each string) and `scales` are borrowed for the call only; the session
/// holds the adapters themselves, so unloading one later does not change the session.
/// Thread safety: one call at a time per session (`GRAFT_STATUS_ERR_BUSY` otherwise).
///
/// # Safety
/// When `n > 0`: `names` is NULL or points to `n` pointers, each NULL or a NUL-terminated string;
/// `scales` is NULL or points to `n` floats.
#[no_mangle]
pub unsafe extern "C" fn graft_session_set_adapters(session: *mut graft_session, names: *const *const c_char, scales: *const f32, n: usize) -> GraftStatus {
    ffi("graft_session_set_adapters", || {
        // SAFETY: the caller guarantees `n` readable pointers when not NULL.
        let names = unsafe { arg_slice(names, n, "names") }?;
        // SAFETY: the caller guarantees `n` readable floats when not NULL.
        let scales = if scales.is_null() { vec![1.0; n] } else { unsafe { arg_slice(scales, n, "scales") }?.to_vec() };
        let mut pairs = Vec::with_capacity(n);
        for (i, (&p, &sc)) in names.iter().zip(&scales).enumerate() {
            // SAFETY: the caller guarantees each entry is NULL or a NUL-terminated string.
            let name = unsafe { arg_str(p, &format!("names[{i}]")) }?;
            if !sc.is_finite() {
                return Err(Failure::invalid(format!("scales[{i}] = {sc} is not finite")));
            }
            pairs.push((name, sc));
        }
        with_session(session, |s| {
            let set = s.model.registry.set(&pairs)?;
            s.runner.set_default_adapters(set.clone());
            s.cache.set_adapters(set);
            Ok(())
        })
    })
}

/// Sets the session's sampler: `temperature` (0: greedy; finite, >= 0), nucleus mass `top_p` in
/// (0, 1], and `seed` (restarts the random sequence).
///
/// Thread safety: one call at a time per session (`GRAFT_STATUS_ERR_BUSY` otherwise).
#[no_mangle]
pub extern "C" fn graft_session_set_sampler(session: *mut graft_session, temperature: f32, top_p: f32, seed: u64) -> GraftStatus {
    ffi("graft_session_set_sampler", || {
        check_sampler(temperature, top_p)?;
        with_session(session, |s| {
            s.sampler = Sampler::new(temperature, top_p, seed);
            Ok(())
        })
    })
}

/// Evaluates `n_tokens` tokens after the session's current positions (a prompt in one call, or
/// one token at a time), adding them to its KV cache; afterwards `graft_session_logits` gives the
/// logits that follow the last of them. `n_tokens == 0`, or a token outside the vocabulary, is
/// `GRAFT_STATUS_ERR_INVALID_ARGUMENT`; tokens that do not fit in the session's context are
/// `GRAFT_STATUS_ERR_CONTEXT_FULL`. On error the session is unchanged.
///
/// Ownership: `tokens` is borrowed for the call only.
/// Thread safety: one call at a time per session (`GRAFT_STATUS_ERR_BUSY` otherwise).
///
/// # Safety
/// `tokens` is NULL or points to `n_tokens` readable `uint32_t`.
#[no_mangle]
pub unsafe extern "C" fn graft_session_eval(session: *mut graft_session, tokens: *const u32, n_tokens: usize) -> GraftStatus {
    ffi("graft_session_eval", || {
        // SAFETY: the caller guarantees `n_tokens` readable ids when not NULL.
        let tokens = unsafe { arg_slice(tokens, n_tokens, "tokens") }?;
        with_session(session, |s| s.eval(tokens))
    })
}

/// Copies the logits that follow the session's last evaluated position (one float per vocabulary
/// token, `n_vocab` of them) into `logits`, and writes `n_vocab` to `*out_n`. A `capacity` below
/// `n_vocab` is `GRAFT_STATUS_ERR_BUFFER_TOO_SMALL` (with `*out_n` written: call with NULL and 0 to
/// ask the size); a session with nothing evaluated is `GRAFT_STATUS_ERR_INVALID_ARGUMENT`.
///
/// Ownership: `logits` and `out_n` are the caller's; graft writes them.
/// Thread safety: one call at a time per session (`GRAFT_STATUS_ERR_BUSY` otherwise).
///
/// # Safety
/// `logits` is NULL or points to `capacity` writable floats; `out_n` is NULL or points to writable
/// memory for one `size_t`.
#[no_mangle]
pub unsafe extern "C" fn graft_session_logits(session: *mut graft_session, logits: *mut f32, capacity: usize, out_n: *mut usize) -> GraftStatus {
    ffi("graft_session_logits", || {
        // SAFETY: the caller guarantees NULL or writable memory for one size_t.
        let out_n = unsafe { Out::new(out_n, "out_n") }?;
        // SAFETY: the caller guarantees `capacity` writable floats when not NULL.
        let buf = unsafe { arg_slice_mut(logits, capacity, "logits") }?;
        with_session(session, |s| {
            let l = s.last_logits()?;
            out_n.write(l.len());
            if buf.len() < l.len() {
                return Err(Failure::new(GraftStatus::ErrBufferTooSmall, format!("capacity {} is below n_vocab {}", buf.len(), l.len())));
            }
            buf[..l.len()].copy_from_slice(l);
            Ok(())
        })
    })
}

/// Draws the next token from the session's logits with its sampler and writes it to
/// `*out_token`, without evaluating it (pass it to `graft_session_eval` to go on). A session with
/// nothing evaluated is `GRAFT_STATUS_ERR_INVALID_ARGUMENT`.
///
/// Thread safety: one call at a time per session (`GRAFT_STATUS_ERR_BUSY` otherwise).
///
/// # Safety
/// `out_token` is NULL or points to writable memory for one `uint32_t`.
#[no_mangle]
pub unsafe extern "C" fn graft_session_sample(session: *mut graft_session, out_token: *mut u32) -> GraftStatus {
    ffi("graft_session_sample", || {
        // SAFETY: the caller guarantees NULL or writable memory for one uint32_t.
        let out = unsafe { Out::new(out_token, "out_token") }?;
        with_session(session, |s| {
            let Session { logits, sampler, .. } = s;
            if logits.is_empty() {
                return Err(Failure::invalid("the session has no logits: evaluate tokens first"));
            }
            out.write(sampler.sample(logits));
            Ok(())
        })
    })
}

/// Writes the number of positions in the session's KV cache to `*out_n_past`, and, when
/// `out_n_ctx` is not NULL, the session's context length to `*out_n_ctx`.
///
/// Thread safety: one call at a time per session (`GRAFT_STATUS_ERR_BUSY` otherwise).
///
/// # Safety
/// `out_n_past` is NULL or points to writable memory for one `size_t`; so is `out_n_ctx`.
#[no_mangle]
pub unsafe extern "C" fn graft_session_n_past(session: *mut graft_session, out_n_past: *mut usize, out_n_ctx: *mut usize) -> GraftStatus {
    ffi("graft_session_n_past", || {
        // SAFETY: the caller guarantees NULL or writable memory for one size_t, for both.
        let (out, out_ctx) = unsafe { (Out::new(out_n_past, "out_n_past")?, Out::optional(out_n_ctx, "out_n_ctx")?) };
        with_session(session, |s| {
            out.write(s.cache.len());
            if let Some(o) = out_ctx {
                o.write(s.n_ctx);
            }
            Ok(())
        })
    })
}

/// Keeps the first `n_keep` positions of the session's KV cache and forgets the rest (0: start
/// over; at least the current length: nothing changes). After forgetting positions the session
/// has no logits until the next `graft_session_eval`.
///
/// Thread safety: one call at a time per session (`GRAFT_STATUS_ERR_BUSY` otherwise).
#[no_mangle]
pub extern "C" fn graft_session_truncate(session: *mut graft_session, n_keep: usize) -> GraftStatus {
    ffi("graft_session_truncate", || {
        with_session(session, |s| {
            if n_keep < s.cache.len() {
                s.cache.truncate(n_keep);
                s.logits.clear();
            }
            Ok(())
        })
    })
}
