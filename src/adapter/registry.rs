//! The adapter registry shared by every session of one model: load (memory-mapped files, checked
//! against the base), unload, list and rescale, from any thread. Loading happens outside the lock;
//! decoding never takes it (sequences hold `Arc`s to the adapters they use), so neither stalls the
//! other. An unloaded adapter lives until the last sequence using it lets go.
use super::{load, Active, Adapter, AdapterSet, ScaleCell};
use crate::model::Model;
use crate::{Error, Result};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, RwLock};

/// A loaded adapter and its registry-wide scale.
#[derive(Clone, Debug)]
pub struct Entry {
    /// The adapter.
    pub adapter: Arc<Adapter>,
    /// Scale applied by every sequence that uses it (times the sequence's own).
    pub scale: Arc<ScaleCell>,
}

/// A line of [`Registry::list`].
#[derive(Clone, Debug, PartialEq)]
pub struct Listing {
    /// Registry name.
    pub name: String,
    /// Method.
    pub method: String,
    /// Registry-wide scale.
    pub scale: f32,
    /// Trainable parameters.
    pub params: usize,
    /// Sequences (and other holders) still using it, besides the registry.
    pub users: usize,
}

/// Adapters of one base model, by name.
pub struct Registry {
    model: Arc<Model>,
    entries: RwLock<BTreeMap<String, Entry>>,
}

impl Registry {
    /// An empty registry for `model`.
    pub fn new(model: Arc<Model>) -> Registry {
        Registry { model, entries: RwLock::new(BTreeMap::new()) }
    }

    /// The base model.
    pub fn model(&self) -> &Arc<Model> {
        &self.model
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Entry>> {
        self.entries.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, Entry>> {
        self.entries.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Loads the adapter at `path` under `name` with registry scale `scale`, checking it against
    /// the base. A name already in use is refused; on error nothing changes.
    pub fn load(&self, name: &str, path: &Path, scale: f32) -> Result<Arc<Adapter>> {
        if self.read().contains_key(name) {
            return Err(Error::invalid("adapter load", format!("the name {name:?} is already loaded")));
        }
        let ad = Arc::new(load::load(path, &self.model)?);
        self.insert_checked(name, ad.clone(), scale)?;
        Ok(ad)
    }

    /// Registers an adapter already in memory (checked against the base).
    pub fn insert(&self, name: &str, ad: Arc<Adapter>, scale: f32) -> Result<()> {
        ad.check_fits(&self.model)?;
        self.insert_checked(name, ad, scale)
    }

    /// Registers an adapter that [`load::load`] has built and checked.
    fn insert_checked(&self, name: &str, ad: Arc<Adapter>, scale: f32) -> Result<()> {
        if !scale.is_finite() {
            return Err(Error::invalid("adapter load", format!("scale {scale} is not finite")));
        }
        let mut w = self.write();
        if w.contains_key(name) {
            return Err(Error::invalid("adapter load", format!("the name {name:?} is already loaded")));
        }
        w.insert(name.to_string(), Entry { adapter: ad, scale: Arc::new(ScaleCell::new(scale)) });
        Ok(())
    }

    /// Removes `name`; sequences using it keep it until they change their set.
    pub fn unload(&self, name: &str) -> Result<()> {
        self.write().remove(name).map(|_| ()).ok_or_else(|| Error::invalid("adapter unload", format!("no adapter named {name:?}")))
    }

    /// Sets the registry-wide scale of `name` (takes effect at every user's next token).
    pub fn set_scale(&self, name: &str, scale: f32) -> Result<()> {
        if !scale.is_finite() {
            return Err(Error::invalid("adapter scale", format!("scale {scale} is not finite")));
        }
        let r = self.read();
        let e = r.get(name).ok_or_else(|| Error::invalid("adapter scale", format!("no adapter named {name:?}")))?;
        e.scale.set(scale);
        Ok(())
    }

    /// The entry of `name`.
    pub fn get(&self, name: &str) -> Option<Entry> {
        self.read().get(name).cloned()
    }

    /// Loaded adapters, by name.
    pub fn list(&self) -> Vec<Listing> {
        self.read()
            .iter()
            .map(|(n, e)| Listing {
                name: n.clone(),
                method: e.adapter.method.clone(),
                scale: e.scale.get(),
                params: e.adapter.trainable_params,
                users: Arc::strong_count(&e.adapter) - 1,
            })
            .collect()
    }

    /// A sequence's adapter set from `(name, sequence scale)` pairs; unknown names are refused.
    pub fn set(&self, names: &[(&str, f32)]) -> Result<AdapterSet> {
        let r = self.read();
        let mut v = Vec::with_capacity(names.len());
        for &(n, s) in names {
            let e = r.get(n).ok_or_else(|| Error::invalid("adapter set", format!("no adapter named {n:?}")))?;
            v.push(Active { adapter: e.adapter.clone(), scale: s, global_scale: Some(e.scale.clone()) });
        }
        Ok(AdapterSet(v.into()))
    }
}
