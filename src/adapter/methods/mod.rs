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

pub mod blocklora;
pub mod dora;
pub mod lamda;
pub mod linalg;
pub mod lokr;
pub mod loldu;
pub mod lora;
pub mod loraxs;
pub mod lorta;
pub mod miss;
pub mod nola;
pub mod randlora;
pub mod vera;

/// Hyper-parameters of a method as recorded in a file's metadata (string keys and values).
pub type Hyper = BTreeMap<String, String>;

/// Named f32 tensors: `name -> (shape, values)`.
pub type Tensors = BTreeMap<String, (Vec<usize>, crate::adapter::factor::Factor)>;

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

/// The name under which `hyper` holds parameter `key` for the layer `prefix` (`blk.<l>.<linear>`):
/// `<key>.<prefix>` when the file records a per-layer value (PEFT's `rank_pattern` /
/// `alpha_pattern`, e.g. `alpha.blk.3.attn_q`), else `key`.
pub fn layer_key(h: &Hyper, key: &str, prefix: &str) -> String {
    let k = format!("{key}.{prefix}");
    if h.contains_key(&k) {
        k
    } else {
        key.to_string()
    }
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
    Ok(v.to_vec())
}

/// The shape of tensor `name`, which must exist and have `ndim` axes (errors name the tensor).
pub fn shape_of(src: &Tensors, name: &str, ndim: usize, file: &str) -> Result<Vec<usize>> {
    let (s, _) = src.get(name).ok_or_else(|| crate::Error::format(file, name, "missing tensor"))?;
    if s.len() != ndim {
        return Err(crate::Error::format(file, name, format!("shape {s:?}, expected {ndim} axes")));
    }
    if s.contains(&0) {
        return Err(crate::Error::format(file, name, format!("shape {s:?} has an empty axis")));
    }
    Ok(s.clone())
}

/// A 32-bit seed as two f32 values holding its high and low 16 bits (exact in f32), the way
/// graft's files store seeds among f32 tensors.
pub fn seed_to_f32(seed: u32) -> Vec<f32> {
    vec![(seed >> 16) as f32, (seed & 0xFFFF) as f32]
}

/// Reads a seed stored by [`seed_to_f32`] as tensor `name` (shape `[2]`), naming it on error.
pub fn take_seed(src: &Tensors, name: &str, file: &str) -> Result<u32> {
    let v = take(src, name, &[2], file)?;
    let half = |x: f32| -> Option<u32> { ((0.0..65536.0).contains(&x) && x.fract() == 0.0).then_some(x as u32) };
    match (half(v[0]), half(v[1])) {
        (Some(h), Some(l)) => Ok((h << 16) | l),
        _ => Err(crate::Error::format(file, name, format!("{v:?} is not a seed (two integers in 0..65536)"))),
    }
}

/// A hyper-parameter if present, else `default`.
pub fn hyper_or<T: std::str::FromStr>(h: &Hyper, key: &str, default: T, file: &str) -> Result<T> {
    if h.contains_key(key) {
        hyper_get(h, key, file)
    } else {
        Ok(default)
    }
}
