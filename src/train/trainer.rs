//! The training loop: batches drawn from the packed data in a seeded order, one
//! [`super::backprop::sequence_pass`] per sequence with the batch's sequences spread over threads
//! (each thread sums its own gradients; the sums are added in thread order, so a run is
//! deterministic for a given thread count), AdamW with accumulation, an eval loss on held-out
//! sequences, and crash-safe checkpoints.
//!
//! A checkpoint is one safetensors file written atomically (temp file, fsync, rename): the
//! adapter's tensors in graft's form (`adapter.<name>`), the optimizer's moments (`adam.m.<i>`,
//! `adam.v.<i>`), and in its metadata the step, the data position (epoch and cursor; the order
//! of an epoch is a seeded shuffle, so that is all the data RNG state there is), the training
//! settings and a hash of the training data. Resuming from it continues exactly as the
//! uninterrupted run would (same losses, bit for bit, with the same thread count).
use super::backprop::{activation_bytes, sequence_pass, Grads, PassOptions, RowScales};
use super::packed::PackedBase;
use super::data::Sequence;
use super::optim::{AdamW, AdamWConfig};
use super::trainable::{Method, TrainSpec, Trainable};
use crate::adapter::graft_format;
use crate::adapter::native::NativeAdapter;
use crate::adapter::rng::Mt19937;
use crate::adapter::AdapterSet;
use crate::format::safetensors::SafeTensorsFile;
use crate::model::{LinearKind, Logits, Model, Numerics, Runner, SeqInput};
use crate::{Error, Result};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

/// The `format` metadata value of a checkpoint file.
pub const CHECKPOINT_FORMAT: &str = "graft-train-checkpoint";

/// How to train.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainConfig {
    /// Sequences per micro-batch (spread over the threads).
    pub batch: usize,
    /// Micro-batches whose gradients are summed before each optimizer step.
    pub accum: usize,
    /// Optimizer steps.
    pub steps: u64,
    /// Threads: each runs whole sequences of a batch; threads the sequences leave free (more
    /// threads than sequences at once) split the columns of the 8-bit products.
    pub threads: usize,
    /// Most sequences in flight at once (0: as many as threads), e.g. to fit a memory budget.
    pub sequences_at_once: usize,
    /// Recompute each block's activations in the backward pass instead of keeping them.
    pub checkpoint_activations: bool,
    /// AdamW and its schedule.
    pub optim: AdamWConfig,
    /// Seed of the data order.
    pub seed: u64,
    /// ALLoRA (LoRA only): scale the parameter gradients of each output row by
    /// `1/√(‖(B·A)_row‖ + 1/η²)`, with this `η`.
    pub allora_eta: Option<f32>,
    /// Arithmetic of the frozen base's products.
    pub numerics: TrainNumerics,
}

/// Arithmetic of the frozen base's products in training (the adapter's products, attention and
/// the element-wise ops are f32 in both).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TrainNumerics {
    /// The quantized weights dequantized to f32, activations and gradients in f32.
    F32,
    /// Weights (packed once, [`super::packed::PackedBase`]), activations and output gradients
    /// rounded to int8 in blocks of 32, exact int32 block sums: about 4x the multiply-adds of f32
    /// on AVX-512 VNNI, for ~300 MiB more memory on the default model.
    Int8,
}

impl TrainNumerics {
    /// Int8 where this CPU multiplies bytes fast ([`crate::kernels::int8::Int8Kernels::fast`]),
    /// else f32.
    pub fn auto() -> TrainNumerics {
        if crate::kernels::int8::selected().fast {
            TrainNumerics::Int8
        } else {
            TrainNumerics::F32
        }
    }

    /// `f32`, `int8` or `auto` ([`TrainNumerics::auto`]).
    pub fn parse(s: &str) -> Option<TrainNumerics> {
        match s {
            "f32" => Some(TrainNumerics::F32),
            "int8" => Some(TrainNumerics::Int8),
            "auto" => Some(TrainNumerics::auto()),
            _ => None,
        }
    }

    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            TrainNumerics::F32 => "f32",
            TrainNumerics::Int8 => "int8",
        }
    }
}

/// What one optimizer step did.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepReport {
    /// Steps done after this one.
    pub step: u64,
    /// Mean token loss of the step's batches.
    pub loss: f64,
    /// Gradient norm before clipping.
    pub grad_norm: f32,
    /// Learning rate used.
    pub lr: f32,
    /// Input tokens processed.
    pub tokens: usize,
}

/// A training run.
pub struct Trainer {
    model: Arc<Model>,
    /// The adapter being trained.
    pub trainable: Trainable,
    opt: AdamW,
    /// Settings.
    pub cfg: TrainConfig,
    train: Vec<Sequence>,
    eval: Vec<Sequence>,
    epoch: u64,
    cursor: usize,
    order: Vec<usize>,
    data_hash: u64,
    /// The base packed for 8-bit products (with [`TrainNumerics::Int8`]).
    packed: Option<PackedBase>,
}

/// FNV-1a over the sequences' tokens and targets: ties a checkpoint to its data.
fn data_hash(seqs: &[Sequence]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    let mut eat = |v: u64| {
        for b in v.to_le_bytes() {
            h = (h ^ b as u64).wrapping_mul(0x100_0000_01b3);
        }
    };
    for s in seqs {
        eat(s.input.len() as u64);
        for (&i, t) in s.input.iter().zip(&s.targets) {
            eat(i as u64);
            eat(t.map_or(u64::MAX, |t| t as u64));
        }
    }
    h
}

/// The order of epoch `epoch`: a Fisher–Yates shuffle seeded by `seed` and the epoch.
fn epoch_order(n: usize, seed: u64, epoch: u64) -> Vec<usize> {
    let mut rng = Mt19937::new((seed ^ epoch.wrapping_mul(0x9e37_79b9_7f4a_7c15)) as u32 ^ (epoch as u32).wrapping_mul(2_654_435_761));
    let mut v: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        let j = ((rng.next_u32() as u64 * (i as u64 + 1)) >> 32) as usize;
        v.swap(i, j);
    }
    v
}

/// Bytes a run needs at its peak, estimated: the mapped model, the trained tensors with their
/// optimizer moments and per-thread gradients, frozen adapter factors, and each thread's
/// activations for one sequence of `seq_len`.
pub fn memory_estimate(model: &Model, spec: &TrainSpec, seq_len: usize, threads: usize, checkpoint: bool, numerics: TrainNumerics) -> usize {
    let cfg = &model.config;
    let blk = &model.weights.blocks[0];
    let r = spec.rank;
    let (mut params, mut frozen) = (0usize, 0usize);
    for &k in &spec.targets {
        let w = blk.linear(k);
        let (ni, no) = (w.n_in, w.n_out);
        let (p, f) = match spec.method {
            Method::Lora => (r * (ni + no), 0),
            Method::FfaLora => (r * no, r * ni),
            Method::Vera => (r + no, no),
            Method::Loldu => (r + 1, r * (ni + 2 * no)),
            Method::LoraXs | Method::LoraSb => (r * r, r * (ni + 3 * no)),
        };
        params += p;
        frozen += f;
    }
    params *= cfg.n_layer;
    frozen *= cfg.n_layer;
    if spec.method == Method::Vera {
        let max_in = spec.targets.iter().map(|&k| blk.linear(k).n_in).max().unwrap_or(0);
        let max_out = spec.targets.iter().map(|&k| blk.linear(k).n_out).max().unwrap_or(0);
        frozen += r * (max_in + max_out);
    }
    // Parameters, two moments, per-thread gradients (term form, about the parameters' size), the
    // summed gradients and their per-tensor copy for the optimizer.
    let state = 4 * (params * (3 + threads + 2) + frozen);
    let int8_vera = numerics == TrainNumerics::Int8 && r % crate::kernels::int8::BLOCK == 0;
    let act = activation_bytes(cfg, seq_len, spec.method == Method::Vera, r, checkpoint, !int8_vera);
    let packed = if numerics == TrainNumerics::Int8 { PackedBase::estimate_bytes(model) } else { 0 };
    model.file_bytes() + state + threads * act + packed + (48 << 20)
}

/// How a run fits a memory budget.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryPlan {
    /// Recompute activations in the backward pass.
    pub checkpoint: bool,
    /// Sequences in flight at once (threads running passes; the rest of a batch waits).
    pub threads: usize,
}

/// Fits `max_bytes` (`None`: no limit): keeps activations when that fits, else checkpoints them,
/// else runs fewer sequences at once (down to one); an error with the smallest estimate when
/// nothing fits.
pub fn plan_memory(model: &Model, spec: &TrainSpec, seq_len: usize, threads: usize, numerics: TrainNumerics, max_bytes: Option<usize>) -> Result<MemoryPlan> {
    let threads = threads.max(1);
    let Some(max) = max_bytes else { return Ok(MemoryPlan { checkpoint: false, threads }) };
    for th in (1..=threads).rev() {
        for checkpoint in [false, true] {
            if memory_estimate(model, spec, seq_len, th, checkpoint, numerics) <= max {
                return Ok(MemoryPlan { checkpoint, threads: th });
            }
        }
    }
    let least = memory_estimate(model, spec, seq_len, 1, true, numerics);
    Err(Error::invalid(
        "train",
        format!("needs about {} MiB even with activation checkpointing and one sequence at a time ({seq_len} tokens), over --max-memory {} MiB; lower --seq or the rank", least >> 20, max >> 20),
    ))
}

/// The summed base-weight gradients LoRA-SB initialises from: `Σ ∇W (mean loss of each batch)`
/// over `batches` of the training data, `[n_out, n_in]` per targeted projection.
pub fn lora_sb_gradients(model: &Model, targets: &[LinearKind], batches: &[&[Sequence]], threads: usize) -> Result<Vec<Vec<Option<Vec<f32>>>>> {
    use std::sync::Mutex;
    let cfg = &model.config;
    let acc: Vec<Vec<Option<Mutex<Vec<f32>>>>> = (0..cfg.n_layer)
        .map(|l| {
            LinearKind::ALL
                .iter()
                .map(|&k| {
                    let w = model.weights.blocks[l].linear(k);
                    targets.contains(&k).then(|| Mutex::new(vec![0f32; w.n_in * w.n_out]))
                })
                .collect()
        })
        .collect();
    let empty = crate::adapter::Adapter::empty("none", "none", "none", cfg.n_layer);
    let ka = crate::kernels::adapter::selected();
    let hook = |l: usize, k: LinearKind, x: &[f32], dy: &[f32], t: usize| {
        let Some(g) = &acc[l][k as usize] else { return };
        let w = model.weights.blocks[l].linear(k);
        let (ni, no) = (w.n_in, w.n_out);
        // G[o, i] += Σ_t dy[t, o]·x[t, i].
        let mut dyt = vec![0f32; no * t];
        for r in 0..t {
            for o in 0..no {
                dyt[o * t + r] = dy[r * no + o];
            }
        }
        let mut g = g.lock().unwrap_or_else(|e| e.into_inner());
        ka.up(&dyt, t, no, t, None, x, ni, ni, None, 1.0, &mut g, ni);
    };
    for batch in batches {
        let n: usize = batch.iter().map(|s| s.targets.iter().filter(|t| t.is_some()).count()).sum();
        let scale = 1.0 / n.max(1) as f32;
        let chunks: Vec<Vec<&Sequence>> = (0..threads.max(1)).map(|i| batch.iter().skip(i).step_by(threads.max(1)).collect()).collect();
        std::thread::scope(|sc| -> Result<()> {
            let hs: Vec<_> = chunks
                .iter()
                .map(|ch| {
                    let (empty, hook) = (&empty, &hook);
                    sc.spawn(move || -> Result<()> {
                        let mut g = Grads::zeros_for(empty)?;
                        for s in ch {
                            super::backprop::sequence_pass_hooked(model, empty, s, &mut g, PassOptions { checkpoint: true, grad_scale: scale, row_scales: None, packed: None, product_threads: 1 }, Some(hook))?;
                        }
                        Ok(())
                    })
                })
                .collect();
            for h in hs {
                h.join().map_err(|_| Error::invalid("train", "a LoRA-SB gradient thread panicked"))??;
            }
            Ok(())
        })?;
    }
    Ok(acc.into_iter().map(|b| b.into_iter().map(|m| m.map(|m| m.into_inner().unwrap_or_else(|e| e.into_inner()))).collect()).collect())
}

impl Trainer {
    /// A run resumed from the checkpoint file `resume`, or a fresh one: LoRA-SB initialised from
    /// the base weights' gradient on the first batch (effective step `sb_lr / max(warm-up, 1)`),
    /// the other methods from their seeded initialisations.
    pub fn start(model: Arc<Model>, spec: TrainSpec, cfg: TrainConfig, train: Vec<Sequence>, eval: Vec<Sequence>, resume: Option<&Path>) -> Result<Trainer> {
        if let Some(p) = resume {
            return Trainer::resume(model, spec, cfg, train, eval, p);
        }
        let trainable = if spec.method == Method::LoraSb {
            let first: Vec<Sequence> = train.iter().take(cfg.batch).cloned().collect();
            let g = lora_sb_gradients(&model, &spec.targets, &[&first], cfg.threads)?;
            let eta = spec.sb_lr as f64 / cfg.optim.warmup_steps.max(1) as f64;
            Trainable::init(&model, spec, Some((&g, eta)))?
        } else {
            Trainable::init(&model, spec, None)?
        };
        Trainer::new(model, trainable, cfg, train, eval)
    }

    /// A run from step 0.
    pub fn new(model: Arc<Model>, trainable: Trainable, cfg: TrainConfig, train: Vec<Sequence>, eval: Vec<Sequence>) -> Result<Trainer> {
        if train.is_empty() {
            return Err(Error::invalid("train", "no training sequences"));
        }
        if cfg.batch == 0 || cfg.accum == 0 || cfg.threads == 0 {
            return Err(Error::invalid("train", "batch, accumulation and threads must be at least 1"));
        }
        if cfg.allora_eta.is_some() && trainable.spec.method != Method::Lora {
            return Err(Error::invalid("train", "ALLoRA applies to LoRA only"));
        }
        let opt = AdamW::new(cfg.optim, &trainable.param_sizes());
        let order = epoch_order(train.len(), cfg.seed, 0);
        let data_hash = data_hash(&train);
        let packed = match cfg.numerics {
            TrainNumerics::Int8 => {
                let mut p = PackedBase::build(&model, cfg.threads)?;
                p.add_vera(&trainable.adapter);
                Some(p)
            }
            TrainNumerics::F32 => None,
        };
        Ok(Trainer { model, trainable, opt, cfg, train, eval, epoch: 0, cursor: 0, order, data_hash, packed })
    }

    /// Steps done.
    pub fn steps_done(&self) -> u64 {
        self.opt.steps()
    }

    /// The next `n` training sequences in the run's order.
    fn next_batch(&mut self, n: usize) -> Vec<usize> {
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            if self.cursor == self.order.len() {
                self.epoch += 1;
                self.cursor = 0;
                self.order = epoch_order(self.train.len(), self.cfg.seed, self.epoch);
            }
            out.push(self.order[self.cursor]);
            self.cursor += 1;
        }
        out
    }

    /// ALLoRA's row scales of every low-rank term, from the current factors.
    fn row_scales(&self, eta: f32) -> Vec<[Option<Vec<f32>>; 7]> {
        self.trainable
            .adapter
            .layers
            .iter()
            .map(|blk| {
                blk.each_ref().map(|t| match t {
                    Some(crate::adapter::Term::LowRank(lr)) => Some(super::adapter_grad::allora_row_scales(&lr.a, &lr.bt, lr.r, lr.n_in, lr.n_out, eta)),
                    _ => None,
                })
            })
            .collect()
    }

    /// Loss and summed gradients of the sequences `idx`, spread over the threads.
    fn batch_grads(&self, idx: &[usize], scale: f32, row_scales: Option<&RowScales>, total: &mut Grads) -> Result<f64> {
        let at_once = if self.cfg.sequences_at_once == 0 { self.cfg.threads } else { self.cfg.sequences_at_once.min(self.cfg.threads) };
        let threads = at_once.min(idx.len()).max(1);
        let ad = &self.trainable.adapter;
        // Threads the sequences leave free split the 8-bit products' columns.
        let product_threads = (self.cfg.threads / threads).max(1);
        let opts = PassOptions { checkpoint: self.cfg.checkpoint_activations, grad_scale: scale, row_scales, packed: self.packed.as_ref(), product_threads };
        let results: Vec<Result<(f64, Grads)>> = std::thread::scope(|sc| {
            let hs: Vec<_> = (0..threads)
                .map(|ti| {
                    let mine: Vec<&Sequence> = idx.iter().skip(ti).step_by(threads).map(|&i| &self.train[i]).collect();
                    let model = &*self.model;
                    let trainable = &self.trainable;
                    sc.spawn(move || -> Result<(f64, Grads)> {
                        let mut g = trainable.zero_grads()?;
                        let mut loss = 0f64;
                        for s in mine {
                            loss += sequence_pass(model, ad, s, &mut g, opts)?.loss_sum;
                        }
                        Ok((loss, g))
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap_or_else(|_| Err(Error::invalid("train", "a training thread panicked")))).collect()
        });
        let mut loss = 0f64;
        for r in results {
            let (l, g) = r?;
            loss += l;
            total.add(&g);
        }
        Ok(loss)
    }

    /// One optimizer step over `accum` micro-batches of `batch` sequences. A non-finite loss or
    /// gradient is an error and leaves the adapter and optimizer as they were.
    pub fn step(&mut self) -> Result<StepReport> {
        let (epoch, cursor) = (self.epoch, self.cursor);
        let r = self.try_step();
        if r.is_err() {
            // The data position goes back too: the failed step's batches are not consumed.
            if self.epoch != epoch {
                self.order = epoch_order(self.train.len(), self.cfg.seed, epoch);
            }
            (self.epoch, self.cursor) = (epoch, cursor);
        }
        r
    }

    fn try_step(&mut self) -> Result<StepReport> {
        let mut total = self.trainable.zero_grads()?;
        // ALLoRA's scales come from the factors, which change only at the optimizer step.
        let scales = self.cfg.allora_eta.map(|eta| self.row_scales(eta));
        let (mut loss_sum, mut n_targets, mut tokens) = (0f64, 0usize, 0usize);
        for _ in 0..self.cfg.accum {
            let idx = self.next_batch(self.cfg.batch);
            let n: usize = idx.iter().map(|&i| self.train[i].targets.iter().filter(|t| t.is_some()).count()).sum();
            tokens += idx.iter().map(|&i| self.train[i].input.len()).sum::<usize>();
            n_targets += n;
            // Each micro-batch contributes the gradient of its mean loss; AdamW averages them.
            loss_sum += self.batch_grads(&idx, 1.0 / n.max(1) as f32, scales.as_deref(), &mut total)?;
        }
        let loss = loss_sum / n_targets.max(1) as f64;
        if !loss.is_finite() {
            return Err(Error::invalid("train", format!("non-finite loss at step {}", self.opt.steps() + 1)));
        }
        let grads = self.trainable.param_grads(&total);
        drop(total);
        let grefs: Vec<&[f32]> = grads.iter().map(|g| g.as_slice()).collect();
        let mut params = self.trainable.params_mut();
        let info = self.opt.step(&mut params, &grefs, self.cfg.accum).map_err(|e| Error::invalid("train", e))?;
        self.trainable.sync();
        Ok(StepReport { step: self.opt.steps(), loss, grad_norm: info.grad_norm, lr: info.lr, tokens })
    }

    /// Mean token loss of the held-out sequences under the current adapter (`None` without any),
    /// by the inference pass with f32 numerics.
    pub fn eval_loss(&self) -> Result<Option<f64>> {
        if self.eval.is_empty() {
            return Ok(None);
        }
        let mut runner = Runner::with_numerics(self.model.clone(), self.cfg.threads, Numerics::F32);
        let set = AdapterSet::fixed(&[(Arc::new(self.trainable.adapter.clone()), 1.0)]);
        let nv = self.model.config.n_vocab;
        let (mut sum, mut n) = (0f64, 0usize);
        for s in &self.eval {
            let mut cache = runner.new_cache();
            cache.set_adapters(set.clone());
            let logits = runner.forward(&mut [SeqInput { tokens: &s.input, cache: &mut cache, logits: Logits::All }])?;
            for (i, t) in s.targets.iter().enumerate() {
                if let Some(t) = t {
                    sum += crate::model::generate::nll(&logits[i * nv..(i + 1) * nv], *t);
                    n += 1;
                }
            }
        }
        Ok(Some(sum / n.max(1) as f64))
    }

    /// The settings a checkpoint records and a resume must match.
    fn settings(&self) -> BTreeMap<String, String> {
        let (c, s) = (&self.cfg, &self.trainable.spec);
        let mut m = BTreeMap::new();
        m.insert("method".into(), s.method.name().into());
        m.insert("rank".into(), s.rank.to_string());
        m.insert("alpha".into(), s.alpha.to_string());
        m.insert("targets".into(), s.targets.iter().map(|k| k.gguf_name()).collect::<Vec<_>>().join(","));
        m.insert("init_seed".into(), s.seed.to_string());
        m.insert("loldu_train_scale".into(), s.loldu_train_scale.to_string());
        m.insert("batch".into(), c.batch.to_string());
        m.insert("accum".into(), c.accum.to_string());
        m.insert("data_seed".into(), c.seed.to_string());
        m.insert("allora_eta".into(), format!("{:?}", c.allora_eta));
        m.insert("numerics".into(), c.numerics.name().into());
        // The schedule's length may change on resume (to extend a run); everything else may not.
        m.insert("optim".into(), format!("{:?}", AdamWConfig { total_steps: 0, ..c.optim }));
        m.insert("data_hash".into(), format!("{:016x}", self.data_hash));
        m.insert("base_fingerprint".into(), self.model.fingerprint());
        m
    }

    /// Writes a checkpoint to `path` atomically.
    pub fn save_checkpoint(&self, path: &Path) -> Result<()> {
        let native = self.trainable.to_native(&path.display().to_string());
        let (step, m, v) = self.opt.state();
        let mut tensors: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
        let bytes = |x: &[f32]| x.iter().flat_map(|f| f.to_le_bytes()).collect::<Vec<u8>>();
        for (k, (shape, vals)) in &native.tensors {
            tensors.push((format!("adapter.{k}"), shape.clone(), bytes(vals)));
        }
        for (i, (mi, vi)) in m.iter().zip(v).enumerate() {
            tensors.push((format!("adam.m.{i:06}"), vec![mi.len()], bytes(mi)));
            tensors.push((format!("adam.v.{i:06}"), vec![vi.len()], bytes(vi)));
        }
        let mut meta = HashMap::new();
        meta.insert("format".to_string(), CHECKPOINT_FORMAT.to_string());
        meta.insert("step".to_string(), step.to_string());
        meta.insert("epoch".to_string(), self.epoch.to_string());
        meta.insert("cursor".to_string(), self.cursor.to_string());
        meta.insert("adapter_hyper".to_string(), serde_json::to_string(&native.hyper).expect("strings serialize"));
        meta.insert("settings".to_string(), serde_json::to_string(&self.settings()).expect("strings serialize"));
        let file = path.display().to_string();
        let mut views = Vec::with_capacity(tensors.len());
        for (k, shape, b) in &tensors {
            let v = safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), b).map_err(|e| Error::format(&file, k, e.to_string()))?;
            views.push((k.clone(), v));
        }
        let out = safetensors::serialize(views, &Some(meta)).map_err(|e| Error::format(&file, "safetensors", e.to_string()))?;
        graft_format::write_atomic(path, &out)
    }

    /// Continues the run saved at `path`: `spec`, `cfg` and the data must be those of the run that
    /// wrote it (except `steps`, the schedule's total, and `threads`); a mismatch is refused naming
    /// the setting. With the same `steps` and threads the run continues bit for bit as the
    /// uninterrupted one.
    pub fn resume(model: Arc<Model>, spec: TrainSpec, cfg: TrainConfig, train: Vec<Sequence>, eval: Vec<Sequence>, path: &Path) -> Result<Trainer> {
        let file = path.display().to_string();
        let st = SafeTensorsFile::open(path)?;
        let meta: HashMap<String, String> = st.metadata().iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        if meta.get("format").map(String::as_str) != Some(CHECKPOINT_FORMAT) {
            return Err(Error::format(&file, "format", "not a graft training checkpoint"));
        }
        let num = |k: &str| -> Result<u64> { meta.get(k).and_then(|v| v.parse().ok()).ok_or_else(|| Error::format(&file, k, "missing or not a number")) };
        let (step, epoch, cursor) = (num("step")?, num("epoch")?, num("cursor")? as usize);
        let saved: BTreeMap<String, String> =
            meta.get("settings").and_then(|s| serde_json::from_str(s).ok()).ok_or_else(|| Error::format(&file, "settings", "missing or malformed"))?;
        let hyper: BTreeMap<String, String> =
            meta.get("adapter_hyper").and_then(|s| serde_json::from_str(s).ok()).ok_or_else(|| Error::format(&file, "adapter_hyper", "missing or malformed"))?;
        let mut adapter_t = BTreeMap::new();
        let (mut ms, mut vs) = (BTreeMap::new(), BTreeMap::new());
        for t in st.tensors() {
            let (name, shape) = (t.name.clone(), t.shape.clone());
            let vals = graft_format::to_f32(&t.dtype, st.tensor_data(&name)?).map_err(|m| Error::format(&file, &name, m))?;
            if vals.len() != shape.iter().product::<usize>() {
                return Err(Error::format(&file, &name, "size does not match its shape"));
            }
            if let Some(i) = vals.iter().position(|v| !v.is_finite()) {
                return Err(Error::format(&file, &name, format!("non-finite value at element {i}")));
            }
            if let Some(k) = name.strip_prefix("adapter.") {
                adapter_t.insert(k.to_string(), (shape, vals.into()));
            } else if let Some(i) = name.strip_prefix("adam.m.") {
                ms.insert(i.to_string(), vals);
            } else if let Some(i) = name.strip_prefix("adam.v.") {
                vs.insert(i.to_string(), vals);
            } else {
                return Err(Error::format(&file, &name, "unexpected tensor"));
            }
        }
        let native = NativeAdapter { method: spec.method.name().to_string(), hyper, base_fingerprint: Some(model.fingerprint()), tensors: adapter_t, source: file.clone() };
        let trainable = Trainable::from_native(&model, spec, &native)?;
        let mut t = Trainer::new(model, trainable, cfg, train, eval)?;
        for (k, v) in t.settings() {
            let s = saved.get(&k).ok_or_else(|| Error::format(&file, &k, "setting missing from the checkpoint"))?;
            if *s != v {
                return Err(Error::format(&file, &k, format!("the checkpoint was written with {s}, this run has {v}")));
            }
        }
        if ms.len() != vs.len() || ms.keys().ne(vs.keys()) {
            return Err(Error::format(&file, "adam", "first and second moments differ"));
        }
        let sizes = t.trainable.param_sizes();
        let (m, v): (Vec<Vec<f32>>, Vec<Vec<f32>>) = (ms.into_values().collect(), vs.into_values().collect());
        if m.len() != sizes.len() || m.iter().zip(&sizes).any(|(a, &n)| a.len() != n) {
            return Err(Error::format(&file, "adam", "optimizer state does not match the adapter's tensors"));
        }
        t.opt = AdamW::from_state(t.cfg.optim, step, m, v).map_err(|e| Error::format(&file, "adam", e))?;
        if cursor > t.train.len() {
            return Err(Error::format(&file, "cursor", format!("{cursor} beyond {} sequences", t.train.len())));
        }
        t.epoch = epoch;
        t.cursor = cursor;
        t.order = epoch_order(t.train.len(), t.cfg.seed, epoch);
        Ok(t)
    }
}
