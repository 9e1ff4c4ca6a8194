//! One module per adapter method: its native parameters per layer, its initialisation
//! (`../shared/reference/ADAPTERS.md`), its dense `ΔW` computed in f64 by the method's own math (the
//! reference tests hold the runtime to), and its fold into a runtime [`Term`].
//!
//! Every method implements [`LayerMethod`] for its per-layer parameter type; graft's own file format
//! ([`crate::adapter::graft_format`]) stores those native parameters under
//! `blk.<layer>.<gguf linear name>.<param>` (and shared tensors under `shared.<param>`).
use super::term::Term;
use crate::Result;
use std::collections::BTreeMap;

pub mod dora;
pub mod lora;
pub mod vera;

/// Hyper-parameters of a method as recorded in a file's metadata (string keys and values).
pub type Hyper = BTreeMap<String, String>;

/// Named f32 tensors: `name -> (shape, values)`.
pub type Tensors = BTreeMap<String, (Vec<usize>, Vec<f32>)>;

/// One linear layer's parameters of one method.
pub trait LayerMethod: Sized {
    /// The method's name as files record it (`lora`, `vera`, `loldu`, ...).
    const NAME: &'static str;
    /// Input width of the layer.
    fn n_in(&self) -> usize;
    /// Output width of the layer.
    fn n_out(&self) -> usize;
    /// Trainable parameters of this layer.
    fn trainable_params(&self) -> usize;
    /// `ΔW` (`[n_out, n_in]`, row-major) by the method's own formula, in f64. `w0` is the base
    /// weight (only the methods whose delta depends on it read it).
    fn delta_dense_f64(&self, w0: &[f64]) -> Vec<f64>;
    /// The runtime term (exact: `term.delta_f64(1, w0)` equals `delta_dense_f64(w0)`).
    fn to_term(&self) -> Term;
    /// Stores the native parameters under `prefix.<param>`.
    fn save(&self, prefix: &str, out: &mut Tensors);
    /// Reads them back; errors name the tensor.
    fn load(prefix: &str, src: &Tensors, hyper: &Hyper, n_in: usize, n_out: usize, file: &str) -> Result<Self>;
}

/// Parses a hyper-parameter, naming the file and key on error.
pub fn hyper_get<T: std::str::FromStr>(h: &Hyper, key: &str, file: &str) -> Result<T> {
    let v = h.get(key).ok_or_else(|| crate::Error::format(file, key, "missing hyper-parameter"))?;
    v.parse().map_err(|_| crate::Error::format(file, key, format!("cannot parse {v:?}")))
}

/// Takes tensor `name` from `src`, checking its shape.
pub fn take(src: &Tensors, name: &str, shape: &[usize], file: &str) -> Result<Vec<f32>> {
    let (s, v) = src.get(name).ok_or_else(|| crate::Error::format(file, name, "missing tensor"))?;
    if s != shape {
        return Err(crate::Error::format(file, name, format!("shape {s:?}, expected {shape:?}")));
    }
    if let Some(i) = v.iter().position(|x| !x.is_finite()) {
        return Err(crate::Error::format(file, name, format!("non-finite value at element {i}")));
    }
    Ok(v.clone())
}
