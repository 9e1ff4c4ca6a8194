//! LoRA-XS (`MohammadrezaBanaei/LoRA-XS`) and LoRA-SB (`RaghavSinghal10/lora-sb`, an
//! initialisation of the same architecture): `ΔW = s·B·R·A` with `A` `[r, n_in]` and `B`
//! `[n_out, r]` frozen and only the `r×r` latent `R` trained (`r²` parameters); `s = α/r` (both
//! repositories train with `α = r`, i.e. `s = 1`).
//!
//! Initialisations ([`LoraXsLayer::init_xs`], [`LoraXsLayer::init_sb`]) follow ADAPTERS.md §4.5 /
//! §4.6 with a deterministic SVD ([`super::linalg`]) in place of the randomised ones the originals
//! use (scikit-learn's `TruncatedSVD(n_iter=10, random_state=42)`, `torch.svd_lowrank`), so factors
//! agree with theirs up to the sign of each singular pair and the randomised methods' error.
//!
//! Fold (exact up to rounding `B·R` to f32): `B' = B·R`, `A' = A`, scale `s` kept in the term.
use super::linalg::{f64s, matmul, svd_truncated};
use super::{hyper_get, shape_of, take, Hyper, LayerMethod, Tensors};
use crate::adapter::rng::Mt19937;
use crate::adapter::term::{LowRank, Term};
use crate::Result;

/// One layer's LoRA-XS / LoRA-SB.
#[derive(Clone, Debug, PartialEq)]
pub struct LoraXsLayer {
    /// Rank.
    pub r: usize,
    /// Input width.
    pub n_in: usize,
    /// Output width.
    pub n_out: usize,
    /// `A`, `[r, n_in]` (frozen; LoRA's `lora_A`).
    pub a: Vec<f32>,
    /// `B`, `[n_out, r]` (frozen; `lora_B`).
    pub b: Vec<f32>,
    /// The trainable latent `R`, `[r, r]` (`default_lora_latent_mapping`).
    pub latent: Vec<f32>,
    /// `α/r`.
    pub scale: f32,
}

impl LoraXsLayer {
    /// LoRA-XS's initialisation from the base weight `w0` (`[n_out, n_in]`): with the truncated SVD
    /// `W0 ≈ U_r Σ_r V_rᵀ`, `B = U_r`, `A = Σ_r V_rᵀ`, and `R ~ N(0, 1e-5²)` from
    /// [`Mt19937::normal`] seeded with `seed` (the original draws from torch's global generator).
    /// The SVD is exact (Jacobi) up to `min(n_in, n_out) = 256`, randomised above it
    /// ([`super::linalg::svd_top`], 10 power iterations, seed 42 like the original's
    /// `random_state`). Errors if `r > min(n_in, n_out)`.
    pub fn init_xs(w0: &[f64], n_in: usize, n_out: usize, r: usize, alpha: f64, seed: u32) -> Result<LoraXsLayer> {
        Self::check_rank(n_in, n_out, r)?;
        assert_eq!(w0.len(), n_out * n_in, "w0 must be [n_out, n_in]");
        let svd = svd_truncated(w0, n_out, n_in, r, 42);
        let b: Vec<f32> = svd.u.iter().map(|&v| v as f32).collect();
        let mut a = vec![0f32; r * n_in];
        for j in 0..r {
            for i in 0..n_in {
                a[j * n_in + i] = (svd.s[j] * svd.vt[j * n_in + i]) as f32;
            }
        }
        let mut rng = Mt19937::new(seed);
        let latent = rng.normal_vec(r * r, 0.0, 1e-5);
        Ok(LoraXsLayer { r, n_in, n_out, a, b, latent, scale: (alpha / r as f64) as f32 })
    }

    /// LoRA-SB's initialisation from the accumulated gradient `grad` of the base weight
    /// (`Σ ∇W L`, `[n_out, n_in]`) and the effective step `eta` (`lr / (warmup_ratio · total
    /// steps)` in the original): `G̃ = −eta·sign(grad)` (`sign(0) = 0`), truncated SVD
    /// `G̃ ≈ U_r Σ_r V_rᵀ`, `B = U_r`, `R = diag(Σ_r)`, `A = V_rᵀ`, so `B·R·A` starts as the rank-`r`
    /// truncation of `G̃` (and the output changes at step 0: the base is not modified). Same SVD
    /// as [`LoraXsLayer::init_xs`]; the original casts the factors to bf16, here they stay f32.
    pub fn init_sb(grad: &[f64], n_in: usize, n_out: usize, r: usize, eta: f64, alpha: f64) -> Result<LoraXsLayer> {
        Self::check_rank(n_in, n_out, r)?;
        assert_eq!(grad.len(), n_out * n_in, "grad must be [n_out, n_in]");
        let g: Vec<f64> = grad
            .iter()
            .map(|&v| if v > 0.0 { -eta } else if v < 0.0 { eta } else { 0.0 })
            .collect();
        let svd = svd_truncated(&g, n_out, n_in, r, 42);
        let b: Vec<f32> = svd.u.iter().map(|&v| v as f32).collect();
        let a: Vec<f32> = svd.vt.iter().map(|&v| v as f32).collect();
        let mut latent = vec![0f32; r * r];
        for j in 0..r {
            latent[j * r + j] = svd.s[j] as f32;
        }
        Ok(LoraXsLayer { r, n_in, n_out, a, b, latent, scale: (alpha / r as f64) as f32 })
    }

    fn check_rank(n_in: usize, n_out: usize, r: usize) -> Result<()> {
        if r == 0 || r > n_in.min(n_out) {
            return Err(crate::Error::invalid("LoRA-XS init", format!("rank {r} must be in 1..={}", n_in.min(n_out))));
        }
        Ok(())
    }
}

impl LayerMethod for LoraXsLayer {
    const NAME: &'static str = "loraxs";
    fn n_in(&self) -> usize {
        self.n_in
    }
    fn n_out(&self) -> usize {
        self.n_out
    }
    fn trainable_params(&self) -> usize {
        self.latent.len()
    }
    fn delta_dense_f64(&self, _w0: &[f64]) -> Vec<f64> {
        let (r, ni, no) = (self.r, self.n_in, self.n_out);
        let ra = matmul(&f64s(&self.latent), &f64s(&self.a), r, r, ni);
        let mut d = matmul(&f64s(&self.b), &ra, no, r, ni);
        d.iter_mut().for_each(|v| *v *= self.scale as f64);
        d
    }
    fn to_term(&self) -> Term {
        let br: Vec<f32> = matmul(&f64s(&self.b), &f64s(&self.latent), self.n_out, self.r, self.r).iter().map(|&v| v as f32).collect();
        Term::LowRank(LowRank::from_a_b(self.r, self.n_in, self.n_out, self.a.clone(), &br, self.scale))
    }
    fn save(&self, prefix: &str, out: &mut Tensors) {
        out.insert(format!("{prefix}.lora_a"), (vec![self.r, self.n_in], self.a.clone().into()));
        out.insert(format!("{prefix}.lora_b"), (vec![self.n_out, self.r], self.b.clone().into()));
        out.insert(format!("{prefix}.lora_latent"), (vec![self.r, self.r], self.latent.clone().into()));
    }
    /// Hyper-parameters: `alpha`.
    fn load(prefix: &str, src: &Tensors, hyper: &Hyper, n_in: usize, n_out: usize, file: &str) -> Result<Self> {
        let name_a = format!("{prefix}.lora_a");
        let r = shape_of(src, &name_a, 2, file)?[0];
        let a = take(src, &name_a, &[r, n_in], file)?;
        let b = take(src, &format!("{prefix}.lora_b"), &[n_out, r], file)?;
        let latent = take(src, &format!("{prefix}.lora_latent"), &[r, r], file)?;
        let alpha: f64 = hyper_get(hyper, "alpha", file)?;
        Ok(LoraXsLayer { r, n_in, n_out, a, b, latent, scale: (alpha / r as f64) as f32 })
    }
}
