//! Training from C: a trainer created from a model handle and options (method, data file, rank,
//! steps, batch, learning rate, memory budget, resume), stepped with a progress callback that can
//! stop it, checkpointed atomically, and its adapter saved in graft's format (loadable with
//! `graft_adapter_load`). Thin over [`crate::train::trainer::Trainer`].
use super::handle::Table;
use super::model::MODELS;
use super::{arg_opt_str, arg_str, ffi, CResult, Failure, GraftStatus, Out};
use crate::adapter::graft_format;
use crate::model::LinearKind;
use crate::train::data;
use crate::train::optim::AdamWConfig;
use crate::train::trainable::{parse_targets, Method, TrainSpec};
use crate::train::trainer::{plan_memory, TrainConfig, TrainNumerics, Trainer};
use std::ffi::{c_char, c_void};
use std::path::Path;
use std::sync::Mutex;
use std::time::Instant;

/// A training run on a model (opaque). Created by `graft_trainer_new`, released by
/// `graft_trainer_free`.
pub struct graft_trainer {
    _opaque: [u8; 0],
}

/// Options of `graft_trainer_new`. Fill with `graft_train_options_default` first, then change
/// fields. Zero in a numeric field means "the default" where stated.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct graft_train_options {
    /// Method: "vera", "loldu", "lora-xs", "lora-sb", "lora" or "ffa-lora". Required.
    pub method: *const c_char,
    /// Training data: plain text, or JSONL of {"text"}, {"prompt","completion"} or {"messages"}.
    /// Required.
    pub data_path: *const c_char,
    /// Adapted projections, e.g. "q,k,v,o,gate,up,down" (NULL: all seven).
    pub targets: *const c_char,
    /// A checkpoint file written by `graft_trainer_checkpoint` to continue from (NULL: start anew).
    /// The other options must be those of the run that wrote it (except `steps` and `threads`).
    pub resume_path: *const c_char,
    /// Rank (0: 256 for VeRA, 16 otherwise).
    pub rank: u32,
    /// Alpha, the scale being alpha/rank (0: rank; LoLDU: 1).
    pub alpha: f32,
    /// Optimizer steps of the schedule (the cosine decay ends there). Default 100.
    pub steps: u64,
    /// Sequences per micro-batch. Default 4.
    pub batch: u32,
    /// Micro-batches per optimizer step. Default 1.
    pub accum: u32,
    /// Tokens per sequence. Default 256.
    pub seq_len: u32,
    /// Peak learning rate (0: 1e-2 for VeRA, LoLDU, LoRA-XS, LoRA-SB; 2e-4 for LoRA, FFA-LoRA).
    pub lr: f32,
    /// Linear warm-up steps. Default 0.
    pub warmup_steps: u64,
    /// AdamW decoupled weight decay. Default 0.
    pub weight_decay: f32,
    /// Global gradient-norm clip (0: none). Default 1.
    pub clip_norm: f32,
    /// Seed of the initialisation and the data order. Default 0.
    pub seed: u64,
    /// Threads (0: the model's). Each runs whole sequences of a batch; threads beyond the batch's
    /// sequences (or the memory budget's) split the columns of the int8 products.
    pub threads: u32,
    /// Bytes the run may take (0: no limit): activations are checkpointed, or fewer sequences run
    /// at once, to fit; `GRAFT_STATUS_ERR_MEMORY_BUDGET` with the estimate if nothing fits.
    pub max_memory: u64,
    /// Fraction of the sequences held out for `graft_trainer_eval_loss`. Default 0.05.
    pub eval_fraction: f64,
    /// LoLDU: also train the scale of z (its optional scaling factor). Default false.
    pub loldu_train_scale: bool,
    /// Arithmetic of the frozen base's products: "int8" (weights, activations and gradients
    /// rounded to int8 in blocks of 32; about 4x faster on AVX-512 VNNI, ~300 MiB more for the
    /// default model), "f32", or NULL / "auto" (int8 where the CPU has fast int8 products).
    pub numerics: *const c_char,
}

impl Default for graft_train_options {
    fn default() -> Self {
        graft_train_options {
            method: std::ptr::null(),
            data_path: std::ptr::null(),
            targets: std::ptr::null(),
            resume_path: std::ptr::null(),
            rank: 0,
            alpha: 0.0,
            steps: 100,
            batch: 4,
            accum: 1,
            seq_len: 256,
            lr: 0.0,
            warmup_steps: 0,
            weight_decay: 0.0,
            clip_norm: 1.0,
            seed: 0,
            threads: 0,
            max_memory: 0,
            eval_fraction: 0.05,
            loldu_train_scale: false,
            numerics: std::ptr::null(),
        }
    }
}

/// What the progress callback of `graft_trainer_step` receives after each optimizer step.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct graft_train_progress {
    /// Steps done so far.
    pub step: u64,
    /// Steps of the schedule.
    pub steps: u64,
    /// Mean token loss of this step's batches.
    pub loss: f64,
    /// Gradient norm before clipping.
    pub grad_norm: f32,
    /// Learning rate used.
    pub lr: f32,
    /// Tokens per second of this step.
    pub tokens_per_second: f64,
}

/// Called after each optimizer step with `user` and the step's figures; returning false stops
/// `graft_trainer_step` after this step (the step itself is kept).
pub type graft_train_progress_fn = Option<unsafe extern "C" fn(user: *mut c_void, progress: *const graft_train_progress) -> bool>;

static TRAINERS: Table<Mutex<Trainer>> = Table::new("graft_trainer");

fn with_trainer<R>(h: *const graft_trainer, f: impl FnOnce(&mut Trainer) -> CResult<R>) -> CResult<R> {
    TRAINERS.with_locked(h, "trainer", f)
}

/// Fills `options` with the defaults (method and data path NULL: they must be set).
///
/// Ownership: `options` is the caller's; graft only writes it.
/// Thread safety: callable from any thread.
///
/// # Safety
/// `options` is NULL or points to writable memory for one `graft_train_options`.
#[no_mangle]
pub unsafe extern "C" fn graft_train_options_default(options: *mut graft_train_options) -> GraftStatus {
    ffi("graft_train_options_default", || {
        // SAFETY: the caller guarantees `options` is NULL or writable for one struct.
        unsafe { Out::new(options, "options") }?.write(graft_train_options::default());
        Ok(())
    })
}

/// Creates a trainer of an adapter over `model`'s frozen weights: reads and packs the data,
/// initialises the adapter (or resumes the checkpoint at `resume_path`), and plans memory.
///
/// Ownership: the trainer keeps the model alive; free it with `graft_trainer_free`. `options`
/// and its strings are only read during the call.
/// Thread safety: callable from any thread; the trainer is then used by one call at a time.
///
/// # Safety
/// `options` is NULL or points to an initialized `graft_train_options` whose string fields are
/// NULL or NUL-terminated; `out_trainer` is NULL or writable for one pointer.
#[no_mangle]
pub unsafe extern "C" fn graft_trainer_new(model: *const super::model::graft_model, options: *const graft_train_options, out_trainer: *mut *mut graft_trainer) -> GraftStatus {
    ffi("graft_trainer_new", || {
        // SAFETY: the caller guarantees the pointer contracts stated above.
        let out = unsafe { Out::new(out_trainer, "out_trainer") }?;
        if options.is_null() {
            return Err(Failure::null("options"));
        }
        if !options.is_aligned() {
            return Err(Failure::invalid("options is not aligned"));
        }
        // SAFETY: non-NULL, aligned, initialized by the caller; plain data (numbers and pointers).
        let o = unsafe { options.read() };
        let mh = MODELS.get(model)?;
        // SAFETY: the caller guarantees the string fields are NULL or NUL-terminated.
        let (method, data_path, targets, resume, numerics) = unsafe {
            (
                arg_str(o.method, "options->method")?,
                arg_str(o.data_path, "options->data_path")?,
                arg_opt_str(o.targets, "options->targets")?,
                arg_opt_str(o.resume_path, "options->resume_path")?,
                arg_opt_str(o.numerics, "options->numerics")?,
            )
        };
        let numerics = TrainNumerics::parse(numerics.unwrap_or("auto")).ok_or_else(|| Failure::invalid("options->numerics: expected \"auto\", \"int8\" or \"f32\""))?;
        let method = Method::parse(method)?;
        let rank = if o.rank == 0 { method.default_rank() } else { o.rank as usize };
        let targets = match targets {
            Some(t) => parse_targets(t)?,
            None => LinearKind::ALL.to_vec(),
        };
        if o.batch == 0 || o.accum == 0 || o.seq_len == 0 || o.steps == 0 {
            return Err(Failure::invalid("options->batch, accum, seq_len and steps must be at least 1"));
        }
        if !(o.alpha.is_finite() && o.lr.is_finite() && o.weight_decay.is_finite() && o.clip_norm.is_finite() && (0.0..1.0).contains(&o.eval_fraction)) {
            return Err(Failure::invalid("options: alpha, lr, weight_decay, clip_norm must be finite and eval_fraction in [0, 1)"));
        }
        let alpha = if o.alpha == 0.0 { method.default_alpha(rank) } else { o.alpha };
        let spec = TrainSpec { method, rank, alpha, targets, seed: o.seed, vera_d_initial: 0.1, loldu_train_scale: o.loldu_train_scale, sb_lr: 1e-4 };
        let threads = if o.threads == 0 { mh.threads } else { o.threads as usize };
        let (train, eval) = data::load_for_training(Path::new(data_path), &mh.model, o.seq_len as usize, o.eval_fraction)?;
        let budget = (o.max_memory != 0).then_some(o.max_memory as usize);
        let plan = plan_memory(&mh.model, &spec, o.seq_len as usize, threads.min(o.batch as usize), numerics, budget)
            .map_err(|e| Failure::new(GraftStatus::ErrMemoryBudget, e.to_string()))?;
        let lr = if o.lr == 0.0 { method.default_lr() } else { o.lr };
        let cfg = TrainConfig {
            batch: o.batch as usize,
            accum: o.accum as usize,
            steps: o.steps,
            threads,
            sequences_at_once: plan.threads,
            checkpoint_activations: plan.checkpoint,
            optim: AdamWConfig { lr, weight_decay: o.weight_decay, warmup_steps: o.warmup_steps, total_steps: o.steps, min_lr_ratio: 0.1, clip_norm: o.clip_norm, ..AdamWConfig::default() },
            seed: o.seed,
            allora_eta: None,
            numerics,
        };
        let t = Trainer::start(mh.model.clone(), spec, cfg, train, eval, resume.map(Path::new))?;
        out.write(TRAINERS.insert(Mutex::new(t)));
        Ok(())
    })
}

/// Runs up to `n_steps` optimizer steps (never past the schedule's `steps`), calling `progress`
/// (if not NULL) after each; it stops early when `progress` returns false. Writes the steps done
/// so far (in total) to `*out_steps_done` when that is not NULL. A non-finite loss or gradient is
/// an error that leaves the adapter and optimizer as before the failing step.
///
/// Ownership: `user` is passed to `progress` untouched; the progress struct is valid only during
/// the callback.
/// Thread safety: one call at a time per trainer (`GRAFT_STATUS_ERR_BUSY` otherwise, also from the
/// callback); the callback runs on the calling thread.
///
/// # Safety
/// `progress`, if not NULL, is a function safe to call with `user`; `out_steps_done` is NULL or
/// writable for one `uint64_t`.
#[no_mangle]
pub unsafe extern "C" fn graft_trainer_step(trainer: *mut graft_trainer, n_steps: u64, progress: graft_train_progress_fn, user: *mut c_void, out_steps_done: *mut u64) -> GraftStatus {
    ffi("graft_trainer_step", || {
        // SAFETY: the caller guarantees `out_steps_done` is NULL or writable.
        let out = unsafe { Out::optional(out_steps_done, "out_steps_done") }?;
        let done = with_trainer(trainer, |t| {
            for _ in 0..n_steps {
                if t.steps_done() >= t.cfg.steps {
                    break;
                }
                let t0 = Instant::now();
                let r = t.step()?;
                let p = graft_train_progress {
                    step: r.step,
                    steps: t.cfg.steps,
                    loss: r.loss,
                    grad_norm: r.grad_norm,
                    lr: r.lr,
                    tokens_per_second: r.tokens as f64 / t0.elapsed().as_secs_f64().max(1e-9),
                };
                if let Some(cb) = progress {
                    // SAFETY: the caller guarantees `cb` may be called with `user`; `p` lives
                    // across the call.
                    if !unsafe { cb(user, &p) } {
                        break;
                    }
                }
            }
            Ok(t.steps_done())
        })?;
        if let Some(o) = out {
            o.write(done);
        }
        Ok(())
    })
}

/// Writes the mean token loss of the held-out sequences under the current adapter to `*out_loss`
/// (NaN when nothing was held out).
///
/// Thread safety: one call at a time per trainer.
///
/// # Safety
/// `out_loss` is NULL or writable for one double.
#[no_mangle]
pub unsafe extern "C" fn graft_trainer_eval_loss(trainer: *mut graft_trainer, out_loss: *mut f64) -> GraftStatus {
    ffi("graft_trainer_eval_loss", || {
        // SAFETY: the caller guarantees `out_loss` is NULL or writable.
        let out = unsafe { Out::new(out_loss, "out_loss") }?;
        let l = with_trainer(trainer, |t| Ok(t.eval_loss()?))?;
        out.write(l.unwrap_or(f64::NAN));
        Ok(())
    })
}

/// Writes a checkpoint (adapter, optimizer state, data position, settings) to the file `path`,
/// atomically: a crash leaves the old file or the new one, never a torn one.
///
/// Thread safety: one call at a time per trainer.
///
/// # Safety
/// `path` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn graft_trainer_checkpoint(trainer: *mut graft_trainer, path: *const c_char) -> GraftStatus {
    ffi("graft_trainer_checkpoint", || {
        // SAFETY: the caller guarantees `path` is NULL or NUL-terminated.
        let path = unsafe { arg_str(path, "path") }?;
        with_trainer(trainer, |t| Ok(t.save_checkpoint(Path::new(path))?))
    })
}

/// Saves the adapter as trained so far to `path` in graft's format (atomically); it loads with
/// `graft_adapter_load` and the CLI's `-a`.
///
/// Thread safety: one call at a time per trainer.
///
/// # Safety
/// `path` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn graft_trainer_save_adapter(trainer: *mut graft_trainer, path: *const c_char) -> GraftStatus {
    ffi("graft_trainer_save_adapter", || {
        // SAFETY: the caller guarantees `path` is NULL or NUL-terminated.
        let path = unsafe { arg_str(path, "path") }?;
        with_trainer(trainer, |t| Ok(graft_format::write(Path::new(path), &t.trainable.to_native(path))?))
    })
}

/// Releases a trainer. NULL is accepted and does nothing; a freed handle is
/// `GRAFT_STATUS_ERR_INVALID_HANDLE`.
///
/// Ownership: takes the caller's handle; it is invalid afterwards.
/// Thread safety: callable from any thread; a call in progress on it finishes first.
#[no_mangle]
pub extern "C" fn graft_trainer_free(trainer: *mut graft_trainer) -> GraftStatus {
    ffi("graft_trainer_free", || TRAINERS.free(trainer))
}
