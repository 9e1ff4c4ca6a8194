//! Per-sequence key/value cache: f16 as llama.cpp stores it, or f32 for graft's fp32 numerics.
use crate::adapter::AdapterSet;
use super::config::Config;
use super::forward::Numerics;
use half::f16;

/// Keys and values of one sequence for every block: `[layer][pos][kv_dim]`, grown on demand so that
/// memory follows the tokens actually held.
#[derive(Clone, Debug)]
pub struct KvCache {
    kv_dim: usize,
    numerics: Numerics,
    k: Vec<Vec<f16>>,
    v: Vec<Vec<f16>>,
    k32: Vec<Vec<f32>>,
    v32: Vec<Vec<f32>>,
    len: usize,
    adapters: AdapterSet,
}

/// One layer's keys or values in the cache's element type.
#[derive(Clone, Copy)]
pub(crate) enum KvRows<'a> {
    /// f16 (llama.cpp numerics).
    F16(&'a [f16]),
    /// f32 (fp32 numerics).
    F32(&'a [f32]),
}

impl KvCache {
    /// The adapters this sequence's next tokens are computed with (read once per forward call).
    pub fn adapters(&self) -> &AdapterSet {
        &self.adapters
    }

    /// Replaces the sequence's adapter set; it takes effect at the next forward call. Other
    /// sequences keep theirs.
    pub fn set_adapters(&mut self, set: AdapterSet) {
        self.adapters = set;
    }

    /// An empty f16 cache for a model of this shape (the default numerics).
    pub fn new(cfg: &Config) -> KvCache {
        KvCache::with_numerics(cfg, Numerics::Q8)
    }

    /// An empty cache for a runner of the given numerics.
    pub fn with_numerics(cfg: &Config, numerics: Numerics) -> KvCache {
        let (f16_layers, f32_layers) = match numerics {
            Numerics::Q8 => (cfg.n_layer, 0),
            Numerics::F32 => (0, cfg.n_layer),
        };
        KvCache {
            kv_dim: cfg.kv_dim(),
            numerics,
            k: vec![Vec::new(); f16_layers],
            v: vec![Vec::new(); f16_layers],
            k32: vec![Vec::new(); f32_layers],
            v32: vec![Vec::new(); f32_layers],
            len: 0,
            adapters: AdapterSet::none(),
        }
    }

    /// The numerics this cache was made for.
    pub fn numerics(&self) -> Numerics {
        self.numerics
    }

    /// Positions held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no position is held.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Forgets every position (keeps the allocation).
    pub fn clear(&mut self) {
        self.truncate(0);
    }

    /// Keeps the first `n` positions.
    pub fn truncate(&mut self, n: usize) {
        let n = n.min(self.len);
        let keep = n * self.kv_dim;
        self.k.iter_mut().chain(self.v.iter_mut()).for_each(|x| x.truncate(keep));
        self.k32.iter_mut().chain(self.v32.iter_mut()).for_each(|x| x.truncate(keep));
        self.len = n;
    }

    /// Reserves room for `extra` more positions in every layer.
    pub fn reserve(&mut self, extra: usize) {
        let add = extra * self.kv_dim;
        self.k.iter_mut().chain(self.v.iter_mut()).for_each(|x| x.reserve_exact(add));
        self.k32.iter_mut().chain(self.v32.iter_mut()).for_each(|x| x.reserve_exact(add));
    }

    /// Bytes held by keys and values.
    pub fn bytes(&self) -> usize {
        self.k.iter().chain(&self.v).map(|x| x.capacity() * 2).sum::<usize>()
            + self.k32.iter().chain(&self.v32).map(|x| x.capacity() * 4).sum::<usize>()
    }

    /// Appends keys and values of new positions to layer `l` of an f16 cache.
    pub(crate) fn append(&mut self, l: usize, k: &[f16], v: &[f16]) {
        self.k[l].extend_from_slice(k);
        self.v[l].extend_from_slice(v);
    }

    /// Appends keys and values of new positions to layer `l` of an f32 cache.
    pub(crate) fn append_f32(&mut self, l: usize, k: &[f32], v: &[f32]) {
        self.k32[l].extend_from_slice(k);
        self.v32[l].extend_from_slice(v);
    }

    /// Marks `n` appended positions as held (after every layer got them).
    pub(crate) fn commit(&mut self, n: usize) {
        self.len += n;
        debug_assert!(self.k.iter().chain(&self.v).all(|k| k.len() == self.len * self.kv_dim));
        debug_assert!(self.k32.iter().chain(&self.v32).all(|k| k.len() == self.len * self.kv_dim));
    }

    /// Keys of layer `l`, `[pos][kv_dim]`, including positions appended but not yet committed.
    pub(crate) fn keys(&self, l: usize) -> KvRows<'_> {
        match self.numerics {
            Numerics::Q8 => KvRows::F16(&self.k[l]),
            Numerics::F32 => KvRows::F32(&self.k32[l]),
        }
    }

    /// Values of layer `l`, `[pos][kv_dim]`.
    pub(crate) fn values(&self, l: usize) -> KvRows<'_> {
        match self.numerics {
            Numerics::Q8 => KvRows::F16(&self.v[l]),
            Numerics::F32 => KvRows::F32(&self.v32[l]),
        }
    }
}
