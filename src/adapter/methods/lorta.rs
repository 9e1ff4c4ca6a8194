//! LoRTA (research code `ihounie/lit-gpt` branch `first-exps`, ADAPTERS.md §4.15): one rank-`r` CP
//! tensor for every adapted matrix of every layer and head. Model-wide tensors (lit-gpt
//! orientation): `A` `[d, r]`, `B` `[r, hd]`, `C_h` `[H, r]`, `C_m` `[M, r]` (M adapted matrices per
//! layer, 4 for Q,K,V,P), `C_l` `[L, r]`; `s = α/r`.
//!
//! For layer `l`, matrix `m` and head `h`, with `c = C_h[h] ⊙ C_m[m] ⊙ C_l[l]`, the rows of head
//! `h` get `s·Bᵀ·diag(c)·Aᵀ` (`[hd, d]`). **Layout chosen here:** a matrix has `n_in = d` inputs
//! and `n_out = H·hd` outputs, head `h` owning the contiguous rows `h·hd .. (h+1)·hd`
//! (lit-gpt's `cat_h` along the output). The fork adds this to lit-gpt's fused qkv output whose
//! layout is grouped per query group, so for K/V/grouped-query models the head ↔ row map of the
//! original differs (the merge is self-consistent); graft applies it per separate projection with
//! the plain head-major layout above.
//!
//! Per layer the struct holds an `Arc` of the shared tensors plus `(layer, matrix)`; the trainable
//! tensors are model-wide, so [`LortaShared::trainable_params`] is the adapter's count
//! (`d·r + r·hd + r·(H + M + L)`) and a layer reports it only when it is `(0, 0)` (0 otherwise),
//! so summing over the adapted layers gives the model-wide count once.
//!
//! Fold (exact up to rounding `B·diag(c)` to f32): per `(l, m)`, `A' = Aᵀ` `[r, d]`, `B'` rows
//! `h·hd + t` = `B[:, t] ⊙ c_h`, rank `r`, scale `s` kept in the term.
use super::{hyper_get, shape_of, take, Hyper, LayerMethod, Tensors};
use crate::adapter::rng::{kaiming_uniform, sqrt5, Mt19937};
use crate::adapter::term::{LowRank, Term};
use crate::Result;
use std::sync::Arc;

/// LoRTA's model-wide CP factors.
#[derive(Clone, Debug, PartialEq)]
pub struct LortaShared {
    /// Rank.
    pub r: usize,
    /// Model width `d` (inputs of every adapted matrix).
    pub d: usize,
    /// Head dimension `hd`.
    pub hd: usize,
    /// Heads `H` (outputs `H·hd`).
    pub heads: usize,
    /// Adapted matrices per layer `M`.
    pub mats: usize,
    /// Layers `L`.
    pub layers: usize,
    /// `A`, `[d, r]`.
    pub a: Vec<f32>,
    /// `B`, `[r, hd]`.
    pub b: Vec<f32>,
    /// `C_h`, `[H, r]`.
    pub c_h: Vec<f32>,
    /// `C_m`, `[M, r]`.
    pub c_m: Vec<f32>,
    /// `C_l`, `[L, r]`.
    pub c_l: Vec<f32>,
    /// `α/r`.
    pub scale: f32,
}

impl LortaShared {
    /// LoRTA's initialisation from `MT19937(seed)`, in this order: `A` `[d, r]`
    /// `kaiming_uniform(a=√5)` (fan-in `r`: the tensor's dim 1, as torch computes it), `B = 0`,
    /// then `C_h`, `C_m`, `C_l` `kaiming_uniform(a = √5·init_scale)` (fan-in `r`; the paper's
    /// script uses `init_scale = 0`, i.e. `a = 0`). The original draws from torch's global
    /// generator.
    #[allow(clippy::too_many_arguments)]
    pub fn init(d: usize, hd: usize, heads: usize, mats: usize, layers: usize, r: usize, alpha: f64, init_scale: f64, seed: u32) -> LortaShared {
        assert!(r > 0, "LoRTA needs r > 0");
        let mut rng = Mt19937::new(seed);
        let a = kaiming_uniform(&mut rng, d, r, sqrt5());
        let ac = sqrt5() * init_scale;
        let c_h = kaiming_uniform(&mut rng, heads, r, ac);
        let c_m = kaiming_uniform(&mut rng, mats, r, ac);
        let c_l = kaiming_uniform(&mut rng, layers, r, ac);
        LortaShared { r, d, hd, heads, mats, layers, a, b: vec![0f32; r * hd], c_h, c_m, c_l, scale: (alpha / r as f64) as f32 }
    }

    /// Trainable parameters of the whole adapter: `d·r + r·hd + r·(H + M + L)`.
    pub fn trainable_params(&self) -> usize {
        self.a.len() + self.b.len() + self.c_h.len() + self.c_m.len() + self.c_l.len()
    }

    /// Stores the factors as `shared.lorta_{a,b,c_h,c_m,c_l}`.
    pub fn save(&self, out: &mut Tensors) {
        out.insert("shared.lorta_a".into(), (vec![self.d, self.r], self.a.clone().into()));
        out.insert("shared.lorta_b".into(), (vec![self.r, self.hd], self.b.clone().into()));
        out.insert("shared.lorta_c_h".into(), (vec![self.heads, self.r], self.c_h.clone().into()));
        out.insert("shared.lorta_c_m".into(), (vec![self.mats, self.r], self.c_m.clone().into()));
        out.insert("shared.lorta_c_l".into(), (vec![self.layers, self.r], self.c_l.clone().into()));
    }

    /// Reads the factors back; hyper-parameters: `alpha`. Errors name the tensor.
    pub fn load(src: &Tensors, hyper: &Hyper, file: &str) -> Result<LortaShared> {
        let sa = shape_of(src, "shared.lorta_a", 2, file)?;
        let (d, r) = (sa[0], sa[1]);
        let a = take(src, "shared.lorta_a", &[d, r], file)?;
        let hd = shape_of(src, "shared.lorta_b", 2, file)?[1];
        let b = take(src, "shared.lorta_b", &[r, hd], file)?;
        let heads = shape_of(src, "shared.lorta_c_h", 2, file)?[0];
        let c_h = take(src, "shared.lorta_c_h", &[heads, r], file)?;
        let mats = shape_of(src, "shared.lorta_c_m", 2, file)?[0];
        let c_m = take(src, "shared.lorta_c_m", &[mats, r], file)?;
        let layers = shape_of(src, "shared.lorta_c_l", 2, file)?[0];
        let c_l = take(src, "shared.lorta_c_l", &[layers, r], file)?;
        let alpha: f64 = hyper_get(hyper, "alpha", file)?;
        Ok(LortaShared { r, d, hd, heads, mats, layers, a, b, c_h, c_m, c_l, scale: (alpha / r as f64) as f32 })
    }
}

/// One adapted matrix of LoRTA: the shared factors and which `(layer, matrix)` it is.
#[derive(Clone, Debug, PartialEq)]
pub struct LortaLayer {
    /// The model-wide factors.
    pub shared: Arc<LortaShared>,
    /// Layer index `l` (row of `C_l`).
    pub layer: usize,
    /// Matrix index `m` (row of `C_m`; Q, K, V, P = 0..4 in the original).
    pub matrix: usize,
}

impl LortaLayer {
    /// The layer `(layer, matrix)` of `shared`; errors if an index is out of range.
    pub fn new(shared: Arc<LortaShared>, layer: usize, matrix: usize) -> Result<LortaLayer> {
        if layer >= shared.layers || matrix >= shared.mats {
            return Err(crate::Error::invalid("LoRTA layer", format!("(layer {layer}, matrix {matrix}) outside {}x{}", shared.layers, shared.mats)));
        }
        Ok(LortaLayer { shared, layer, matrix })
    }

    /// `c = C_h[h] ⊙ C_m[m] ⊙ C_l[l]` in f64, `[r]`.
    pub fn c(&self, h: usize) -> Vec<f64> {
        let sh = &self.shared;
        let r = sh.r;
        (0..r).map(|j| sh.c_h[h * r + j] as f64 * sh.c_m[self.matrix * r + j] as f64 * sh.c_l[self.layer * r + j] as f64).collect()
    }

    /// Reads a layer given already loaded shared factors: its `lorta_index` `[2]` = `(layer,
    /// matrix)`, checked against the shapes.
    pub fn load_with(shared: Arc<LortaShared>, prefix: &str, src: &Tensors, n_in: usize, n_out: usize, file: &str) -> Result<Self> {
        let name = format!("{prefix}.lorta_index");
        let idx = take(src, &name, &[2], file)?;
        let as_index = |v: f32, n: usize| -> Option<usize> { (v >= 0.0 && v.fract() == 0.0 && (v as usize) < n).then_some(v as usize) };
        let (Some(layer), Some(matrix)) = (as_index(idx[0], shared.layers), as_index(idx[1], shared.mats)) else {
            return Err(crate::Error::format(file, &name, format!("{idx:?} is not a (layer, matrix) of a {}x{} LoRTA", shared.layers, shared.mats)));
        };
        if n_in != shared.d || n_out != shared.heads * shared.hd {
            return Err(crate::Error::format(file, "shared.lorta_a", format!("factors for {}x{} (out x in), the layer is {n_out}x{n_in}", shared.heads * shared.hd, shared.d)));
        }
        Ok(LortaLayer { shared, layer, matrix })
    }
}

impl LayerMethod for LortaLayer {
    const NAME: &'static str = "lorta";
    fn n_in(&self) -> usize {
        self.shared.d
    }
    fn n_out(&self) -> usize {
        self.shared.heads * self.shared.hd
    }
    /// The model-wide count for `(layer 0, matrix 0)`, 0 for the others (see the module doc).
    fn trainable_params(&self) -> usize {
        if self.layer == 0 && self.matrix == 0 {
            self.shared.trainable_params()
        } else {
            0
        }
    }
    fn delta_dense_f64(&self, _w0: &[f64]) -> Vec<f64> {
        // lit-gpt orientation: dW = cat_h [A·diag(c_h)·B] ([d, H·hd]), ΔW = s·dWᵀ.
        let sh = &self.shared;
        let (d, r, hd, nh) = (sh.d, sh.r, sh.hd, sh.heads);
        let no = nh * hd;
        let s = sh.scale as f64;
        let mut dw = vec![0f64; d * no];
        for h in 0..nh {
            let c = self.c(h);
            for i in 0..d {
                for (j, &cj) in c.iter().enumerate() {
                    let ac = sh.a[i * r + j] as f64 * cj;
                    for t in 0..hd {
                        dw[i * no + h * hd + t] += ac * sh.b[j * hd + t] as f64;
                    }
                }
            }
        }
        let mut out = super::linalg::transpose(&dw, d, no);
        out.iter_mut().for_each(|v| *v *= s);
        out
    }
    fn to_term(&self) -> Term {
        let sh = &self.shared;
        let (d, r, hd, nh) = (sh.d, sh.r, sh.hd, sh.heads);
        let no = nh * hd;
        let a = super::linalg::transpose(&sh.a, d, r);
        // Bᵀ [r, no]: Bᵀ[j, h·hd + t] = B[j, t]·c_h[j].
        let mut bt = vec![0f32; r * no];
        for h in 0..nh {
            let c = self.c(h);
            for j in 0..r {
                for t in 0..hd {
                    bt[j * no + h * hd + t] = (sh.b[j * hd + t] as f64 * c[j]) as f32;
                }
            }
        }
        Term::LowRank(LowRank { r, n_in: d, n_out: no, a: a.into(), bt: bt.into(), scale: sh.scale })
    }
    /// Writes `prefix.lorta_index` = `(layer, matrix)` and the shared factors under `shared.`.
    fn save(&self, prefix: &str, out: &mut Tensors) {
        out.insert(format!("{prefix}.lorta_index"), (vec![2], vec![self.layer as f32, self.matrix as f32].into()));
        self.shared.save(out);
    }
    /// Reads the shared factors (a private copy per call: prefer [`LortaShared::load`] once and
    /// [`LortaLayer::load_with`] per layer) and the layer's index.
    fn load(prefix: &str, src: &Tensors, hyper: &Hyper, n_in: usize, n_out: usize, file: &str) -> Result<Self> {
        let shared = Arc::new(LortaShared::load(src, hyper, file)?);
        Self::load_with(shared, prefix, src, n_in, n_out, file)
    }
}
