//! Per-sequence key/value cache, stored in f16 as llama.cpp stores it.
use super::config::Config;
use half::f16;

/// Keys and values of one sequence for every block: `[layer][pos][kv_dim]`, grown on demand so that
/// memory follows the tokens actually held.
#[derive(Clone, Debug)]
pub struct KvCache {
    kv_dim: usize,
    k: Vec<Vec<f16>>,
    v: Vec<Vec<f16>>,
    len: usize,
}

impl KvCache {
    /// An empty cache for a model of this shape.
    pub fn new(cfg: &Config) -> KvCache {
        KvCache { kv_dim: cfg.kv_dim(), k: vec![Vec::new(); cfg.n_layer], v: vec![Vec::new(); cfg.n_layer], len: 0 }
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
        for l in 0..self.k.len() {
            self.k[l].truncate(n * self.kv_dim);
            self.v[l].truncate(n * self.kv_dim);
        }
        self.len = n;
    }

    /// Reserves room for `extra` more positions in every layer.
    pub fn reserve(&mut self, extra: usize) {
        for l in 0..self.k.len() {
            self.k[l].reserve_exact(extra * self.kv_dim);
            self.v[l].reserve_exact(extra * self.kv_dim);
        }
    }

    /// Bytes held by keys and values.
    pub fn bytes(&self) -> usize {
        self.k.iter().chain(&self.v).map(|x| x.capacity() * 2).sum()
    }

    /// Appends keys and values of new positions to layer `l` (each `n · kv_dim` f16).
    pub(crate) fn append(&mut self, l: usize, k: &[f16], v: &[f16]) {
        self.k[l].extend_from_slice(k);
        self.v[l].extend_from_slice(v);
    }

    /// Marks `n` appended positions as held (after every layer got them).
    pub(crate) fn commit(&mut self, n: usize) {
        self.len += n;
        debug_assert!(self.k.iter().all(|k| k.len() == self.len * self.kv_dim));
    }

    /// Keys of layer `l`, `[pos][kv_dim]`, including positions appended but not yet committed.
    pub(crate) fn keys(&self, l: usize) -> &[f16] {
        &self.k[l]
    }

    /// Values of layer `l`, `[pos][kv_dim]`.
    pub(crate) fn values(&self, l: usize) -> &[f16] {
        &self.v[l]
    }
}
