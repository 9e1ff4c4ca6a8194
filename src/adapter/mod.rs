//! Adapters applied unmerged on the frozen quantized base: their runtime terms ([`term`]), one module
//! per method ([`methods`]), the file formats that carry them, and the registry that serves them to
//! sequences.
//!
//! An [`Adapter`] is immutable once loaded and shared (`Arc`): a sequence names the adapters it uses
//! in its [`AdapterSet`] (each with a scale), and every forward call reads that set once, so each
//! token is computed with one consistent set while other threads load, rescale or unload adapters.
pub mod export;
pub mod factor;
pub mod gguf_lora;
pub mod graft_format;
pub mod load;
pub mod merge;
pub mod methods;
pub mod native;
pub mod peft;
pub mod registry;
pub mod rng;
pub mod term;

use crate::model::{LinearKind, Model};
use crate::{Error, Result};
use std::collections::BTreeMap;
use std::sync::Arc;
pub use registry::Registry;
pub use term::{Dora, LowRank, Term, Vera, VeraShared};

/// An adapter: per block, an optional runtime term for each of the seven projections.
#[derive(Clone, Debug)]
pub struct Adapter {
    /// A short name (the file stem unless given).
    pub name: String,
    /// The method (`lora`, `rslora`, `dora`, `vera`, ...).
    pub method: String,
    /// Where it was read from.
    pub source: String,
    /// Hyper-parameters as the file records them.
    pub hyper: BTreeMap<String, String>,
    /// Fingerprint of the base model it was made for, when the file records one.
    pub base_fingerprint: Option<String>,
    /// Trainable parameters of the method (not the runtime form's size).
    pub trainable_params: usize,
    /// `layers[block][kind as usize]`.
    pub layers: Vec<[Option<Term>; 7]>,
    /// Q8_0 copies of the low-rank factors (LoRA family and DoRA) for the 8-bit numerics, same
    /// indexing; filled by [`Adapter::prepare_q8`].
    pub q8: Vec<[Option<term::LowRankQ8>; 7]>,
    /// Output biases added next to the terms, same indexing (empty when there are none): `y += u·bias`
    /// at the adapter's scale `u`, the method's own scale already applied (PEFT's `lora_bias`:
    /// `s·(B·A·x + b)` ⇒ `bias = s·b`). Only LoRA and rsLoRA terms carry one.
    pub bias: Vec<[Option<Vec<f32>>; 7]>,
}

impl Adapter {
    /// An adapter with no terms yet, for `n_layers` blocks.
    pub fn empty(name: &str, method: &str, source: &str, n_layers: usize) -> Adapter {
        Adapter {
            name: name.to_string(),
            method: method.to_string(),
            source: source.to_string(),
            hyper: BTreeMap::new(),
            base_fingerprint: None,
            trainable_params: 0,
            layers: (0..n_layers).map(|_| Default::default()).collect(),
            q8: Vec::new(),
            bias: Vec::new(),
        }
    }

    /// The term on block `layer`'s projection `kind`, if any.
    pub fn term(&self, layer: usize, kind: LinearKind) -> Option<&Term> {
        self.layers.get(layer)?[kind as usize].as_ref()
    }

    /// The Q8_0 factors of the term on block `layer`'s projection `kind`, if prepared.
    pub fn q8(&self, layer: usize, kind: LinearKind) -> Option<&term::LowRankQ8> {
        self.q8.get(layer)?[kind as usize].as_ref()
    }

    /// The output bias on block `layer`'s projection `kind`, if any (see [`Adapter::bias`]).
    pub fn bias(&self, layer: usize, kind: LinearKind) -> Option<&[f32]> {
        self.bias.get(layer)?[kind as usize].as_deref()
    }

    /// Whether any projection has an output bias.
    pub fn has_bias(&self) -> bool {
        self.bias.iter().flatten().any(Option::is_some)
    }

    /// Sets the output bias of block `layer`'s projection `kind` (growing the table on first use).
    pub fn set_bias(&mut self, layer: usize, kind: LinearKind, bias: Vec<f32>) {
        if self.bias.is_empty() {
            self.bias = (0..self.layers.len()).map(|_| Default::default()).collect();
        }
        self.bias[layer][kind as usize] = Some(bias);
    }

    /// Quantizes every low-rank factor to Q8_0 (two threads), for runners with 8-bit numerics.
    pub fn prepare_q8(&mut self) {
        let jobs: Vec<(usize, usize, &LowRank)> = self
            .layers
            .iter()
            .enumerate()
            .flat_map(|(l, blk)| {
                blk.iter().enumerate().filter_map(move |(k, t)| match t {
                    Some(Term::LowRank(lr)) | Some(Term::Dora(Dora { lora: lr, .. })) => Some((l, k, lr)),
                    _ => None,
                })
            })
            .collect();
        let done = crate::pool::map_two(jobs, |(l, k, lr)| (l, k, term::LowRankQ8::of(lr)));
        let mut q8: Vec<[Option<term::LowRankQ8>; 7]> = (0..self.layers.len()).map(|_| Default::default()).collect();
        for (l, k, q) in done {
            q8[l][k] = q;
        }
        self.q8 = q8;
    }

    /// Adapted (block, projection) pairs.
    pub fn n_terms(&self) -> usize {
        self.layers.iter().map(|l| l.iter().filter(|t| t.is_some()).count()).sum()
    }

    /// Checks that the adapter fits `model`: block count, every term's shape, finite values, and
    /// the base fingerprint when the file records one. Errors name the file and the tensor.
    pub fn check_fits(&self, model: &Model) -> Result<()> {
        self.check(model, true)
    }

    /// [`Adapter::check_fits`] without the scan for non-finite values (for builders that have
    /// already checked every value).
    pub fn check_fits_shapes(&self, model: &Model) -> Result<()> {
        self.check(model, false)
    }

    fn check(&self, model: &Model, values: bool) -> Result<()> {
        let file = &self.source;
        if let Some(fp) = &self.base_fingerprint {
            let mine = model.fingerprint();
            if *fp != mine {
                return Err(Error::model(file, "base_fingerprint", format!("made for base {fp}, but this model is {mine}")));
            }
        }
        if self.layers.len() != model.weights.blocks.len() {
            return Err(Error::model(file, "blocks", format!("{} blocks, the model has {}", self.layers.len(), model.weights.blocks.len())));
        }
        if !self.bias.is_empty() && self.bias.len() != self.layers.len() {
            return Err(Error::model(file, "bias", format!("{} blocks of biases, {} of terms", self.bias.len(), self.layers.len())));
        }
        for (l, blk) in self.layers.iter().enumerate() {
            for kind in LinearKind::ALL {
                let Some(t) = &blk[kind as usize] else {
                    if self.bias(l, kind).is_some() {
                        return Err(Error::model(file, format!("blk.{l}.{}.lora_bias", kind.gguf_name()), "a bias without a term"));
                    }
                    continue;
                };
                let w = model.weights.blocks[l].linear(kind);
                let name = format!("blk.{l}.{}", kind.gguf_name());
                if t.n_in() != w.n_in || t.n_out() != w.n_out {
                    return Err(Error::model(file, name, format!("adapter is {}x{} (out x in), the base weight is {}x{}", t.n_out(), t.n_in(), w.n_out, w.n_in)));
                }
                if values && !t.all_finite() {
                    return Err(Error::model(file, name, "non-finite values"));
                }
                if let Some(b) = self.bias(l, kind) {
                    if b.len() != w.n_out {
                        return Err(Error::model(file, format!("{name}.lora_bias"), format!("{} values, the base weight has {} rows", b.len(), w.n_out)));
                    }
                    if values && !term::all_finite(b) {
                        return Err(Error::model(file, format!("{name}.lora_bias"), "non-finite values"));
                    }
                }
                if let Term::Vera(v) = t {
                    if v.n_in > v.shared.max_in || v.n_out > v.shared.max_out {
                        return Err(Error::model(file, name, "wider than the shared VeRA projections"));
                    }
                }
            }
        }
        Ok(())
    }
}

/// One adapter a sequence uses, with the scale it applies it at.
#[derive(Clone, Debug)]
pub struct Active {
    /// The adapter (kept alive while any sequence uses it, even after it leaves the registry).
    pub adapter: Arc<Adapter>,
    /// The sequence's own scale.
    pub scale: f32,
    /// The registry's scale for this adapter (shared by every sequence using it), if it came
    /// from a registry; read once per forward call.
    pub global_scale: Option<Arc<ScaleCell>>,
}

impl Active {
    /// Effective scale now: the sequence's times the registry's.
    pub fn effective_scale(&self) -> f32 {
        self.scale * self.global_scale.as_ref().map_or(1.0, |c| c.get())
    }
}

/// An f32 that one thread sets and others read, lock-free.
#[derive(Debug, Default)]
pub struct ScaleCell(std::sync::atomic::AtomicU32);

impl ScaleCell {
    /// A cell holding `v`.
    pub fn new(v: f32) -> ScaleCell {
        ScaleCell(std::sync::atomic::AtomicU32::new(v.to_bits()))
    }
    /// The value.
    pub fn get(&self) -> f32 {
        f32::from_bits(self.0.load(std::sync::atomic::Ordering::Acquire))
    }
    /// Sets the value.
    pub fn set(&self, v: f32) {
        self.0.store(v.to_bits(), std::sync::atomic::Ordering::Release)
    }
}

/// The adapters a sequence uses, in order; cheap to clone and to replace between tokens.
#[derive(Clone, Debug, Default)]
pub struct AdapterSet(pub Arc<[Active]>);

impl AdapterSet {
    /// No adapters.
    pub fn none() -> AdapterSet {
        AdapterSet(Arc::from(Vec::new()))
    }
    /// A set of adapters at fixed scales (no registry).
    pub fn fixed(list: &[(Arc<Adapter>, f32)]) -> AdapterSet {
        AdapterSet(list.iter().map(|(a, s)| Active { adapter: a.clone(), scale: *s, global_scale: None }).collect())
    }
    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    /// The members.
    pub fn iter(&self) -> impl Iterator<Item = &Active> {
        self.0.iter()
    }
}
