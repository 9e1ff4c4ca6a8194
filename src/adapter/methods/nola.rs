//! NOLA (`UCDvision/NOLA`, ADAPTERS.md §4.8): LoRA whose factors are linear combinations of
//! random bases, `A = A0 + Σ_i α_i A_i`, `B = B0 + Σ_j β_j B_j`, `ΔW = s·B·A`, `s = α/r`. Only the
//! coefficients are trained (`k_A + k_B` parameters, independent of the layer's size); `A0`
//! (kaiming-uniform) and `B0` (zero) are frozen and stored.
//!
//! Bases: for a factor of shape `[out, in]` with `k` bases and seed `σ`, NOLA does
//! `torch.manual_seed(σ)`, fills `[k, out, in]` with `uniform_(−1, 1)` and multiplies by `1/√k`.
//! graft generates them on the CPU with [`crate::adapter::rng`]: `MT19937(σ)`, fp32 `uniform_`,
//! times `(1/√k) as f32`, basis after basis, row-major. **That reproduces torch's CPU generator,
//! not the GPU one NOLA trains with**: CUDA's Philox stream maps elements to threads by the
//! GPU's SM count (ADAPTERS.md §3.2), so coefficients trained with the original code on a GPU do
//! not match these bases (they would need retraining, or the bases stored). Seeds are `u32`
//! (torch keeps the low 32 bits) and are stored as two f32 halves ([`super::seed_to_f32`]).
//!
//! Fold (exact up to rounding the combined factors to f32): `A' = A0 + Σα_i A_i`,
//! `B' = B0 + Σβ_j B_j` (sums in f64), rank `r`, scale `s` kept in the term.
use super::linalg::f64s;
use super::{hyper_get, seed_to_f32, shape_of, take, take_seed, Hyper, LayerMethod, Tensors};
use crate::adapter::rng::{kaiming_uniform, sqrt5, Mt19937};
use crate::adapter::term::{LowRank, Term};
use crate::Result;

/// One layer's NOLA.
#[derive(Clone, Debug, PartialEq)]
pub struct NolaLayer {
    /// Rank.
    pub r: usize,
    /// Input width.
    pub n_in: usize,
    /// Output width.
    pub n_out: usize,
    /// `A0`, `[r, n_in]` (frozen).
    pub a0: Vec<f32>,
    /// `B0`, `[n_out, r]` (frozen, zero in NOLA).
    pub b0: Vec<f32>,
    /// Coefficients `α`, `[k_A]`.
    pub coef_a: Vec<f32>,
    /// Coefficients `β`, `[k_B]`.
    pub coef_b: Vec<f32>,
    /// Seed of `A`'s bases.
    pub seed_a: u32,
    /// Seed of `B`'s bases.
    pub seed_b: u32,
    /// `α/r`.
    pub scale: f32,
}

/// `base + Σ_i coef[i]·basis_i` in f64 (`[rows, cols]`), the bases generated as the module doc
/// says.
pub fn combine_bases(base: &[f32], coef: &[f32], rows: usize, cols: usize, seed: u32) -> Vec<f64> {
    let k = coef.len();
    let mut out = f64s(base);
    assert_eq!(out.len(), rows * cols);
    if k == 0 {
        return out;
    }
    let mul = (1.0 / (k as f64).sqrt()) as f32;
    let mut rng = Mt19937::new(seed);
    for &c in coef {
        let c = c as f64;
        for v in out.iter_mut() {
            let b = rng.uniform_f32(-1.0, 1.0) * mul;
            *v += c * b as f64;
        }
    }
    out
}

impl NolaLayer {
    /// NOLA's initialisation: from `MT19937(seed)`, `A0 = kaiming_uniform(a=√5)` (nn.Linear's
    /// default, fan-in `n_in`), then the two basis seeds (next two outputs, for `A` then `B`);
    /// `B0 = 0`, all coefficients 0 (as NOLA's `NOLALinear`), so `ΔW = 0`.
    pub fn init(n_in: usize, n_out: usize, r: usize, k_a: usize, k_b: usize, alpha: f64, seed: u32) -> NolaLayer {
        assert!(r > 0, "NOLA needs r > 0");
        let mut rng = Mt19937::new(seed);
        let a0 = kaiming_uniform(&mut rng, r, n_in, sqrt5());
        let seed_a = rng.next_u32();
        let seed_b = rng.next_u32();
        NolaLayer { r, n_in, n_out, a0, b0: vec![0f32; n_out * r], coef_a: vec![0f32; k_a], coef_b: vec![0f32; k_b], seed_a, seed_b, scale: (alpha / r as f64) as f32 }
    }

    /// `A = A0 + Σα_i A_i`, `[r, n_in]`, f64.
    pub fn a_f64(&self) -> Vec<f64> {
        combine_bases(&self.a0, &self.coef_a, self.r, self.n_in, self.seed_a)
    }

    /// `B = B0 + Σβ_j B_j`, `[n_out, r]`, f64.
    pub fn b_f64(&self) -> Vec<f64> {
        combine_bases(&self.b0, &self.coef_b, self.n_out, self.r, self.seed_b)
    }
}

impl LayerMethod for NolaLayer {
    const NAME: &'static str = "nola";
    fn n_in(&self) -> usize {
        self.n_in
    }
    fn n_out(&self) -> usize {
        self.n_out
    }
    fn trainable_params(&self) -> usize {
        self.coef_a.len() + self.coef_b.len()
    }
    fn delta_dense_f64(&self, _w0: &[f64]) -> Vec<f64> {
        let (a, b) = (self.a_f64(), self.b_f64());
        let (r, ni, no) = (self.r, self.n_in, self.n_out);
        let s = self.scale as f64;
        let mut d = vec![0f64; no * ni];
        for o in 0..no {
            for i in 0..ni {
                d[o * ni + i] = s * (0..r).map(|j| b[o * r + j] * a[j * ni + i]).sum::<f64>();
            }
        }
        d
    }
    fn to_term(&self) -> Term {
        let a: Vec<f32> = self.a_f64().iter().map(|&v| v as f32).collect();
        let b: Vec<f32> = self.b_f64().iter().map(|&v| v as f32).collect();
        Term::LowRank(LowRank::from_a_b(self.r, self.n_in, self.n_out, a, &b, self.scale))
    }
    fn save(&self, prefix: &str, out: &mut Tensors) {
        out.insert(format!("{prefix}.nola_a0"), (vec![self.r, self.n_in], self.a0.clone().into()));
        out.insert(format!("{prefix}.nola_b0"), (vec![self.n_out, self.r], self.b0.clone().into()));
        out.insert(format!("{prefix}.nola_a_coef"), (vec![self.coef_a.len()], self.coef_a.clone().into()));
        out.insert(format!("{prefix}.nola_b_coef"), (vec![self.coef_b.len()], self.coef_b.clone().into()));
        out.insert(format!("{prefix}.nola_a_seed"), (vec![2], seed_to_f32(self.seed_a).into()));
        out.insert(format!("{prefix}.nola_b_seed"), (vec![2], seed_to_f32(self.seed_b).into()));
    }
    /// Hyper-parameters: `alpha`. Rank from `nola_a0`, basis counts from the coefficient vectors.
    fn load(prefix: &str, src: &Tensors, hyper: &Hyper, n_in: usize, n_out: usize, file: &str) -> Result<Self> {
        let name_a0 = format!("{prefix}.nola_a0");
        let r = shape_of(src, &name_a0, 2, file)?[0];
        let a0 = take(src, &name_a0, &[r, n_in], file)?;
        let b0 = take(src, &format!("{prefix}.nola_b0"), &[n_out, r], file)?;
        let name_ca = format!("{prefix}.nola_a_coef");
        let coef_a = take(src, &name_ca, &[shape_of(src, &name_ca, 1, file)?[0]], file)?;
        let name_cb = format!("{prefix}.nola_b_coef");
        let coef_b = take(src, &name_cb, &[shape_of(src, &name_cb, 1, file)?[0]], file)?;
        let seed_a = take_seed(src, &format!("{prefix}.nola_a_seed"), file)?;
        let seed_b = take_seed(src, &format!("{prefix}.nola_b_seed"), file)?;
        let alpha: f64 = hyper_get(hyper, "alpha", file)?;
        Ok(NolaLayer { r, n_in, n_out, a0, b0, coef_a, coef_b, seed_a, seed_b, scale: (alpha / r as f64) as f32 })
    }
}
