//! Model handles: load with options (threads, device, memory budget, context, numerics), info,
//! free. A model handle holds the shared, immutable [`Model`] and the adapter [`Registry`] that
//! every session of it draws from.
use super::handle::Table;
use super::{arg_opt_str, arg_str, ffi, CResult, Failure, GraftStatus, Out};
use crate::adapter::Registry;
use crate::model::generate::PREFILL_BATCH;
use crate::model::{Config, Model, Numerics};
use std::ffi::c_char;
use std::sync::{Arc, Mutex};

/// A loaded model and its adapter registry (opaque). Created by `graft_model_load`, released by
/// `graft_model_free`; sessions created from it keep what they need alive after it is freed.
pub struct graft_model {
    _opaque: [u8; 0],
}

/// `numerics` option: llama.cpp's 8-bit activations and f16 KV cache (fast; the default).
pub const GRAFT_NUMERICS_Q8: u32 = 0;
/// `numerics` option: f32 activations against dequantized weights, f32 KV cache.
pub const GRAFT_NUMERICS_F32: u32 = 1;

/// Options of `graft_model_load`. Fill with `graft_model_options_default` first, then change
/// fields, so that code keeps compiling with the same meaning when fields are added.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct graft_model_options {
    /// Threads each session computes on (0: one per core). A session may override it.
    pub threads: u32,
    /// Device to run on: NULL or "cpu" (this build has no other device; others are refused with
    /// `GRAFT_STATUS_ERR_UNSUPPORTED`). Only read during `graft_model_load`.
    pub device: *const c_char,
    /// Bytes the model file, its sessions' KV caches and working buffers may take together
    /// (0: no limit). Loading refuses a model that cannot fit with one session, and creating a
    /// session refuses one that would not fit, with `GRAFT_STATUS_ERR_MEMORY_BUDGET` and the
    /// estimate in the message. Adapters are not counted.
    pub memory_budget: u64,
    /// Positions a session's KV cache may hold (0: the model's training context). Sessions may
    /// ask for less.
    pub n_ctx: u32,
    /// `GRAFT_NUMERICS_Q8` (default) or `GRAFT_NUMERICS_F32`.
    pub numerics: u32,
}

impl Default for graft_model_options {
    fn default() -> Self {
        graft_model_options { threads: 0, device: std::ptr::null(), memory_budget: 0, n_ctx: 0, numerics: GRAFT_NUMERICS_Q8 }
    }
}

/// What `graft_model_get_info` reports.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct graft_model_info {
    /// Tokens in the vocabulary (the length of a row of logits).
    pub n_vocab: u32,
    /// Transformer blocks.
    pub n_layer: u32,
    /// Embedding width.
    pub n_embd: u32,
    /// The context length the model was trained with.
    pub n_ctx_train: u32,
    /// The context length sessions get by default (the `n_ctx` option, resolved).
    pub n_ctx: u32,
    /// Threads sessions compute on by default (resolved: never 0).
    pub threads: u32,
    /// Beginning-of-sequence token, or -1 when the vocabulary has none.
    pub bos: i32,
    /// End-of-sequence token, or -1 when the vocabulary has none.
    pub eos: i32,
    /// Bytes of the model file (memory-mapped).
    pub file_bytes: u64,
    /// Estimated bytes of one session at the default context (KV cache and working buffers).
    pub session_bytes: u64,
    /// The memory budget (0: none).
    pub memory_budget: u64,
}

/// A model handle's object.
pub(crate) struct ModelHandle {
    /// The base model, shared by every session.
    pub(crate) model: Arc<Model>,
    /// Adapters loaded on this model.
    pub(crate) registry: Registry,
    /// Default threads per session (resolved, at least 1).
    pub(crate) threads: usize,
    /// Largest context a session may have.
    pub(crate) n_ctx: usize,
    /// Numerics of every session.
    pub(crate) numerics: Numerics,
    /// Memory budget in bytes (0: none).
    pub(crate) budget: u64,
    /// Estimated bytes of the live sessions, for the budget.
    pub(crate) session_bytes_live: Mutex<u64>,
}

pub(crate) static MODELS: Table<ModelHandle> = Table::new("graft_model");

const MIB: f64 = (1 << 20) as f64;

/// Estimated bytes of one session with a context of `n_ctx` positions: the KV cache full, the
/// forward pass's working buffers for a prompt batch, and a few rows of logits.
pub(crate) fn session_bytes(cfg: &Config, numerics: Numerics, n_ctx: usize) -> u64 {
    let kv_elt = match numerics {
        Numerics::Q8 => 2,
        Numerics::F32 => 4,
    };
    let kv = (cfg.n_layer * 2 * cfg.kv_dim() * n_ctx * kv_elt) as u64;
    let rows = PREFILL_BATCH.min(n_ctx.max(1));
    // x, h, att, q (d and q-width), k, v, gate, up in f32, the new keys and values in f16, and the
    // quantized activations (about a byte per value).
    let per_row = 4 * (2 * cfg.n_embd + 2 * cfg.q_dim() + 2 * cfg.kv_dim() + 2 * cfg.n_ff) + 2 * 2 * cfg.kv_dim() + cfg.n_ff.max(cfg.n_embd);
    // The runner's logits, the session's copy, the sampler's (probability, id) pairs.
    let logits = 4 * cfg.n_vocab * 4;
    kv + (rows * per_row + logits) as u64
}

impl ModelHandle {
    /// Reserves the budget for one more session of `bytes`, or explains why it does not fit.
    pub(crate) fn reserve_session(&self, bytes: u64, what: &str) -> CResult<()> {
        let mut live = self.session_bytes_live.lock().unwrap_or_else(|e| e.into_inner());
        self.check_budget(*live + bytes, what)?;
        *live += bytes;
        Ok(())
    }

    /// Gives back a session's reservation.
    pub(crate) fn release_session(&self, bytes: u64) {
        let mut live = self.session_bytes_live.lock().unwrap_or_else(|e| e.into_inner());
        *live = live.saturating_sub(bytes);
    }

    /// Checks that the model file plus `extra` bytes fit in the budget.
    pub(crate) fn check_budget(&self, extra: u64, what: &str) -> CResult<()> {
        check_budget(self.budget, self.model.file_bytes() as u64, extra, what)
    }
}

fn check_budget(budget: u64, model_bytes: u64, extra: u64, what: &str) -> CResult<()> {
    let total = model_bytes.saturating_add(extra);
    if budget != 0 && model_bytes > budget {
        return Err(Failure::new(
            GraftStatus::ErrMemoryBudget,
            format!("the model file alone ({:.1} MiB) exceeds the memory budget of {:.1} MiB", model_bytes as f64 / MIB, budget as f64 / MIB),
        ));
    }
    if budget != 0 && total > budget {
        return Err(Failure::new(
            GraftStatus::ErrMemoryBudget,
            format!(
                "estimated {:.1} MiB (model {:.1} MiB + {what} {:.1} MiB) exceeds the memory budget of {:.1} MiB",
                total as f64 / MIB,
                model_bytes as f64 / MIB,
                extra as f64 / MIB,
                budget as f64 / MIB
            ),
        ));
    }
    Ok(())
}

/// Checks the device option: "cpu" (or none) is the only device of this build.
fn check_device(device: Option<&str>) -> CResult<()> {
    match device {
        None | Some("") | Some("cpu") => Ok(()),
        Some(d) if d.starts_with("cuda") || d.starts_with("gpu") => {
            Err(Failure::new(GraftStatus::ErrUnsupported, format!("device {d:?}: graft was built without CUDA (this build runs on \"cpu\" only)")))
        }
        Some(d) => Err(Failure::new(GraftStatus::ErrUnsupported, format!("unknown device {d:?} (this build runs on \"cpu\" only)"))),
    }
}

/// Fills `options` with the defaults: every core, "cpu", no memory budget, the model's training
/// context, `GRAFT_NUMERICS_Q8`.
///
/// Ownership: `options` is the caller's; graft only writes it.
/// Thread safety: callable from any thread.
///
/// # Safety
/// `options` is NULL or points to writable memory for one `graft_model_options`.
#[no_mangle]
pub unsafe extern "C" fn graft_model_options_default(options: *mut graft_model_options) -> GraftStatus {
    ffi("graft_model_options_default", || {
        // SAFETY: the caller guarantees `options` is NULL or writable.
        let out = unsafe { Out::new(options, "options") }?;
        out.write(graft_model_options::default());
        Ok(())
    })
}

/// Loads (memory-maps and checks) the llama-family GGUF model at `path` and writes a new handle to
/// `*out_model`. `options` may be NULL for the defaults. Fails with `GRAFT_STATUS_ERR_IO` (the
/// file cannot be read), `GRAFT_STATUS_ERR_FORMAT` / `GRAFT_STATUS_ERR_MODEL` (not a model graft
/// runs), `GRAFT_STATUS_ERR_UNSUPPORTED` (device), `GRAFT_STATUS_ERR_MEMORY_BUDGET` (the model and
/// one session at `n_ctx` do not fit), `GRAFT_STATUS_ERR_INVALID_ARGUMENT` (other options).
///
/// Ownership: `path` and `options` (and `options->device`) are borrowed for the call only. The
/// handle written to `*out_model` is owned by the caller, who releases it with `graft_model_free`.
/// On failure `*out_model` is left unchanged.
/// Thread safety: callable from any thread; loads may run concurrently.
///
/// # Safety
/// `path` is NULL or a NUL-terminated string; `options` is NULL or points to an initialized
/// `graft_model_options` whose `device` is NULL or a NUL-terminated string; `out_model` is NULL or
/// points to writable memory for one pointer.
#[no_mangle]
pub unsafe extern "C" fn graft_model_load(path: *const c_char, options: *const graft_model_options, out_model: *mut *mut graft_model) -> GraftStatus {
    ffi("graft_model_load", || {
        // SAFETY: the caller guarantees the pointer contracts stated above.
        let path = unsafe { arg_str(path, "path") }?;
        // SAFETY: as above.
        let out = unsafe { Out::new(out_model, "out_model") }?;
        let opts = if options.is_null() {
            graft_model_options::default()
        } else {
            if !options.is_aligned() {
                return Err(Failure::invalid("options is not aligned"));
            }
            // SAFETY: non-NULL and aligned; the caller guarantees an initialized struct. It is
            // plain data (integers and a pointer), so every bit pattern is valid.
            unsafe { options.read() }
        };
        // SAFETY: the caller guarantees `device` is NULL or NUL-terminated.
        let device = unsafe { arg_opt_str(opts.device, "options->device") }?;
        check_device(device)?;
        let numerics = match opts.numerics {
            GRAFT_NUMERICS_Q8 => Numerics::Q8,
            GRAFT_NUMERICS_F32 => Numerics::F32,
            n => return Err(Failure::invalid(format!("options->numerics {n} is neither GRAFT_NUMERICS_Q8 nor GRAFT_NUMERICS_F32"))),
        };
        if opts.memory_budget != 0 {
            // The file alone may already be over: say so before mapping and parsing it.
            if let Ok(meta) = std::fs::metadata(path) {
                check_budget(opts.memory_budget, meta.len(), 0, "")?;
            }
        }
        let model = Arc::new(Model::load(path)?);
        let n_ctx = if opts.n_ctx == 0 { model.config.n_ctx_train } else { opts.n_ctx as usize };
        let threads = if opts.threads == 0 { std::thread::available_parallelism().map_or(1, |n| n.get()) } else { opts.threads as usize };
        check_budget(opts.memory_budget, model.file_bytes() as u64, session_bytes(&model.config, numerics, n_ctx), &format!("one session at n_ctx {n_ctx}"))?;
        let h = ModelHandle {
            registry: Registry::new(model.clone()),
            model,
            threads,
            n_ctx,
            numerics,
            budget: opts.memory_budget,
            session_bytes_live: Mutex::new(0),
        };
        out.write(MODELS.insert(h));
        Ok(())
    })
}

/// Releases a model handle. Sessions created from it stay usable (they keep the model and its
/// adapters alive) until they are freed; the memory goes when the last of them goes. NULL is
/// accepted and does nothing; a handle already freed is `GRAFT_STATUS_ERR_INVALID_HANDLE`.
///
/// Ownership: takes the caller's handle; it is invalid afterwards.
/// Thread safety: callable from any thread, also while other threads use the handle: their calls
/// finish normally, later calls get `GRAFT_STATUS_ERR_INVALID_HANDLE`.
#[no_mangle]
pub extern "C" fn graft_model_free(model: *mut graft_model) -> GraftStatus {
    ffi("graft_model_free", || MODELS.free(model))
}

/// Writes the model's shape, special tokens, sizes and resolved options to `*out_info`.
///
/// Ownership: `out_info` is the caller's; graft only writes it.
/// Thread safety: callable from any thread, concurrently.
///
/// # Safety
/// `out_info` is NULL or points to writable memory for one `graft_model_info`.
#[no_mangle]
pub unsafe extern "C" fn graft_model_get_info(model: *const graft_model, out_info: *mut graft_model_info) -> GraftStatus {
    ffi("graft_model_get_info", || {
        let m = MODELS.get(model)?;
        // SAFETY: the caller guarantees `out_info` is NULL or writable.
        let out = unsafe { Out::new(out_info, "out_info") }?;
        let cfg = &m.model.config;
        let tk = &m.model.tokenizer;
        let n = |v: usize| u32::try_from(v).unwrap_or(u32::MAX);
        out.write(graft_model_info {
            n_vocab: n(cfg.n_vocab),
            n_layer: n(cfg.n_layer),
            n_embd: n(cfg.n_embd),
            n_ctx_train: n(cfg.n_ctx_train),
            n_ctx: n(m.n_ctx),
            threads: n(m.threads),
            bos: tk.bos().map_or(-1, |t| t as i32),
            eos: tk.eos().map_or(-1, |t| t as i32),
            file_bytes: m.model.file_bytes() as u64,
            session_bytes: session_bytes(cfg, m.numerics, m.n_ctx),
            memory_budget: m.budget,
        });
        Ok(())
    })
}

/// Whether `token` ends generation for this model (end of sequence, end of turn...): writes 1 or
/// 0 to `*out_is_eog`. Ids outside the vocabulary are `GRAFT_STATUS_ERR_INVALID_ARGUMENT`.
///
/// Thread safety: callable from any thread, concurrently.
///
/// # Safety
/// `out_is_eog` is NULL or points to writable memory for one `bool`.
#[no_mangle]
pub unsafe extern "C" fn graft_token_is_eog(model: *const graft_model, token: u32, out_is_eog: *mut bool) -> GraftStatus {
    ffi("graft_token_is_eog", || {
        let m = MODELS.get(model)?;
        // SAFETY: the caller guarantees `out_is_eog` is NULL or writable.
        let out = unsafe { Out::new(out_is_eog, "out_is_eog") }?;
        check_token(&m.model, token)?;
        out.write(m.model.tokenizer.is_eog(token));
        Ok(())
    })
}

/// Refuses a token id outside the vocabulary.
pub(crate) fn check_token(model: &Model, token: u32) -> CResult<()> {
    if token as usize >= model.config.n_vocab {
        return Err(Failure::invalid(format!("token {token} is outside the vocabulary ({} tokens)", model.config.n_vocab)));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_other_than_cpu_are_refused() {
        assert!(check_device(None).is_ok() && check_device(Some("cpu")).is_ok());
        let e = check_device(Some("cuda:0")).unwrap_err();
        assert_eq!(e.status, GraftStatus::ErrUnsupported);
        assert!(e.msg.contains("built without CUDA"), "{}", e.msg);
        assert_eq!(check_device(Some("tpu")).unwrap_err().status, GraftStatus::ErrUnsupported);
    }

    #[test]
    fn budget_message_gives_the_estimate() {
        assert!(check_budget(0, 1 << 30, 1 << 30, "x").is_ok());
        let e = check_budget(100 << 20, 80 << 20, 40 << 20, "one session").unwrap_err();
        assert_eq!(e.status, GraftStatus::ErrMemoryBudget);
        assert!(e.msg.contains("estimated 120.0 MiB (model 80.0 MiB + one session 40.0 MiB)"), "{}", e.msg);
        let e = check_budget(1 << 20, 80 << 20, 0, "").unwrap_err();
        assert!(e.msg.contains("the model file alone (80.0 MiB)"), "{}", e.msg);
    }
}
