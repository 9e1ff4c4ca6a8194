//! RandLoRA (PEFT `tuners/randlora`, ADAPTERS.md §4.9): full-rank updates from shared random bases
//! scaled by small trainable matrices.
//!
//! Shared (frozen, one pair per adapter): `A` `[r, 1, min_dim]`, `B` `[max_dim, nb, r]` with
//! `max_dim`, `min_dim` from the element-wise maximum `(n_out, n_in)` over the targeted layers and
//! `nb = ⌈min_dim / r⌉`. Per layer (`mn = min(n_in, n_out)`, `mx = max(..)`, `nb_l = ⌈mn / r⌉`):
//! `λ` `[r, nb_l]` (init 0) and `γ` `[nb_l, mn]` (init `1/max(nb_l, mn)`); `s = randlora_alpha/r`.
//!
//! With `Â = A[:, 0, :mn]`, `B̂ = B[:mx, :nb_l, :]`: `UA[k·nb_l + b, :] = λ[k,b]·Â[k,:]⊙γ[b,:]`
//! (`[r·nb_l, mn]`), `UB = B̂.flatten(1)` (column `b·r + k` is `B̂[:, b, k]`), and
//! `ΔW_(mx×mn) = s·UB·UA`, i.e. `s·Σ_{k,b} B̂[:, i/r, i%r] ⊗ UA[i, :]` with `i = k·nb_l + b` (PEFT's
//! pairing, not the paper's `B̂[:, b, k]`); `ΔW` is that when `n_in = mn`, else its transpose.
//!
//! Fold (exact up to rounding `UA` to f32): a LowRank of rank `r·nb_l` (≥ `mn`: full rank, so merge
//! or keep it unmerged; it is cheap only through sharing): when `n_in = mn`, `B'[:, i] = UB[:, i]`,
//! `A'[i, :] = UA[i, :]`; otherwise `B'[:, i] = UA[i, :]ᵀ`, `A'[i, :] = UB[:, i]ᵀ`. Scale `s` kept
//! in the term.
use super::{hyper_get, shape_of, take, Hyper, LayerMethod, Tensors};
use crate::adapter::rng::{kaiming_bound, sqrt5, Mt19937, Rounding};
use crate::adapter::term::{LowRank, Term};
use crate::Result;
use std::sync::Arc;

/// RandLoRA's shared random bases.
#[derive(Clone, Debug, PartialEq)]
pub struct RandLoraShared {
    /// Rank `r`.
    pub r: usize,
    /// `min(max n_out, max n_in)` over the targeted layers.
    pub min_dim: usize,
    /// `max(max n_out, max n_in)` over the targeted layers.
    pub max_dim: usize,
    /// `nb = ⌈min_dim / r⌉`.
    pub nb: usize,
    /// `A`, `[r, 1, min_dim]`.
    pub a: Vec<f32>,
    /// `B`, `[max_dim, nb, r]`.
    pub b: Vec<f32>,
}

/// `⌈n / r⌉`.
fn ceil_div(n: usize, r: usize) -> usize {
    n.div_ceil(r)
}

/// Unbiased standard deviation (two-pass, f64).
fn std_unbiased(v: &[f32]) -> f64 {
    let n = v.len() as f64;
    let mean = v.iter().map(|&x| x as f64).sum::<f64>() / n;
    (v.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt()
}

impl RandLoraShared {
    /// PEFT's `_init_randlora_A_randlora_B` from `projection_prng_key` (as `u32`), with the bases
    /// in format `fmt` (PEFT: bf16 where the training machine supports it, else fp16 — depending
    /// on the PEFT version the test is `accelerate`'s or CUDA's; this is why PEFT saves them): one
    /// `MT19937(seed)` stream; `A` is `r·min_dim` values of `uniform_(±kaiming_bound(min_dim, √5))`
    /// rounded to `fmt` (ADAPTERS.md §3.1), then `nb` chunks `[max_dim, 1, r]` (bound from fan-in
    /// `r`) concatenated on dim 1; each tensor is then divided by its own unbiased std (std and
    /// quotient rounded to `fmt`). The std here is a two-pass f64 computation; torch's reduction
    /// may round differently in rare ties (not verified). `max_dim`, `min_dim` as in PEFT's
    /// `_find_dim`: from the element-wise maximum of `(n_out, n_in)` over the targeted layers.
    pub fn generate(r: usize, max_out: usize, max_in: usize, seed: u32, fmt: Rounding) -> RandLoraShared {
        assert!(r > 0, "RandLoRA needs r > 0");
        let (max_dim, min_dim) = (max_out.max(max_in), max_out.min(max_in));
        let nb = ceil_div(min_dim, r);
        let mut rng = Mt19937::new(seed);
        let ba = kaiming_bound(min_dim, sqrt5());
        let mut a: Vec<f32> = (0..r * min_dim).map(|_| rng.uniform_rounded(-ba, ba, fmt)).collect();
        let bb = kaiming_bound(r, sqrt5());
        let mut b = vec![0f32; max_dim * nb * r];
        for c in 0..nb {
            for row in 0..max_dim {
                for k in 0..r {
                    b[(row * nb + c) * r + k] = rng.uniform_rounded(-bb, bb, fmt);
                }
            }
        }
        for t in [&mut a, &mut b] {
            let sd = fmt.round(std_unbiased(t) as f32);
            t.iter_mut().for_each(|v| *v = fmt.round(*v / sd));
        }
        RandLoraShared { r, min_dim, max_dim, nb, a, b }
    }

    /// PEFT's `_init_randlora_A_randlora_B_sparse` (`sparse=True`: sparsity `s = 3`;
    /// `very_sparse=True`: `s = √min_dim`) from `projection_prng_key` (as `u32`): one `MT19937(seed)`
    /// stream of fp32 `torch.rand` values ([`Mt19937::uniform_f32`] on `[0, 1)`), first `A`
    /// (`[r, 1, min_dim]`), then `B` (`[max_dim, nb, r]`, row-major, one tensor); each value below
    /// `f32(1/(2s))` becomes −1, above `f32(1 − 1/(2s))` +1, the rest 0; each tensor is then divided
    /// by its unbiased std (fp32 throughout: PEFT keeps these bases in fp32). Same `max_dim`,
    /// `min_dim`, `nb` as [`RandLoraShared::generate`].
    pub fn generate_sparse(r: usize, max_out: usize, max_in: usize, seed: u32, very_sparse: bool) -> RandLoraShared {
        assert!(r > 0, "RandLoRA needs r > 0");
        let (max_dim, min_dim) = (max_out.max(max_in), max_out.min(max_in));
        let nb = ceil_div(min_dim, r);
        let sparsity = if very_sparse { (min_dim as f64).sqrt() } else { 3.0 };
        let (lo, hi) = ((1.0 / (2.0 * sparsity)) as f32, (1.0 - 1.0 / (2.0 * sparsity)) as f32);
        let mut rng = Mt19937::new(seed);
        let mut sign = |n: usize| -> Vec<f32> {
            (0..n)
                .map(|_| {
                    let v = rng.uniform_f32(0.0, 1.0);
                    if v < lo {
                        -1.0
                    } else if v > hi {
                        1.0
                    } else {
                        0.0
                    }
                })
                .collect()
        };
        let mut a = sign(r * min_dim);
        let mut b = sign(max_dim * nb * r);
        for t in [&mut a, &mut b] {
            let sd = std_unbiased(t) as f32;
            t.iter_mut().for_each(|v| *v /= sd);
        }
        RandLoraShared { r, min_dim, max_dim, nb, a, b }
    }

    /// Stores the bases as `shared.randlora_a` `[r, 1, min_dim]` and `shared.randlora_b`
    /// `[max_dim, nb, r]`.
    pub fn save(&self, out: &mut Tensors) {
        out.insert("shared.randlora_a".into(), (vec![self.r, 1, self.min_dim], self.a.clone().into()));
        out.insert("shared.randlora_b".into(), (vec![self.max_dim, self.nb, self.r], self.b.clone().into()));
    }

    /// Reads the bases back (errors name the tensor).
    pub fn load(src: &Tensors, file: &str) -> Result<RandLoraShared> {
        let sa = shape_of(src, "shared.randlora_a", 3, file)?;
        let (r, min_dim) = (sa[0], sa[2]);
        let a = take(src, "shared.randlora_a", &[r, 1, min_dim], file)?;
        let sb = shape_of(src, "shared.randlora_b", 3, file)?;
        let (max_dim, nb) = (sb[0], sb[1]);
        let b = take(src, "shared.randlora_b", &[max_dim, nb, r], file)?;
        Ok(RandLoraShared { r, min_dim, max_dim, nb, a, b })
    }
}

/// One layer's RandLoRA: the shared bases and this layer's `λ`, `γ`.
#[derive(Clone, Debug, PartialEq)]
pub struct RandLoraLayer {
    /// The shared bases.
    pub shared: Arc<RandLoraShared>,
    /// Input width.
    pub n_in: usize,
    /// Output width.
    pub n_out: usize,
    /// `λ`, `[r, nb_l]`.
    pub lambda: Vec<f32>,
    /// `γ`, `[nb_l, min(n_in, n_out)]`.
    pub gamma: Vec<f32>,
    /// `randlora_alpha / r`.
    pub scale: f32,
}

impl RandLoraLayer {
    /// PEFT's per-layer initialisation (`reset_randlora_parameters`): `λ = 0`,
    /// `γ = 1/max(nb_l, mn)`. Errors if the layer does not fit the shared bases.
    pub fn init(shared: Arc<RandLoraShared>, n_in: usize, n_out: usize, alpha: f64) -> Result<RandLoraLayer> {
        let (mn, mx) = (n_in.min(n_out), n_in.max(n_out));
        Self::check_fits(&shared, mn, mx).map_err(|m| crate::Error::invalid("RandLoRA init", m))?;
        let nb = ceil_div(mn, shared.r);
        let g = (1.0 / nb.max(mn) as f64) as f32;
        let scale = (alpha / shared.r as f64) as f32;
        Ok(RandLoraLayer { lambda: vec![0f32; shared.r * nb], gamma: vec![g; nb * mn], shared, n_in, n_out, scale })
    }

    fn check_fits(sh: &RandLoraShared, mn: usize, mx: usize) -> std::result::Result<(), String> {
        if mn > sh.min_dim || mx > sh.max_dim {
            return Err(format!("a {mx}x{mn} layer does not fit bases of {}x{}", sh.max_dim, sh.min_dim));
        }
        Ok(())
    }

    /// Bases per layer `nb_l = ⌈min(n_in, n_out) / r⌉`.
    pub fn nb(&self) -> usize {
        ceil_div(self.n_in.min(self.n_out), self.shared.r)
    }

    /// `Â[k, c] = A[k, 0, c]`.
    fn a_hat(&self, k: usize, c: usize) -> f32 {
        self.shared.a[k * self.shared.min_dim + c]
    }

    /// `B̂[row, b, k] = B[row, b, k]`.
    fn b_hat(&self, row: usize, b: usize, k: usize) -> f32 {
        let sh = &self.shared;
        sh.b[(row * sh.nb + b) * sh.r + k]
    }

    /// Reads a layer given already loaded shared bases (no copy of them); hyper-parameters:
    /// `alpha` (`randlora_alpha`).
    pub fn load_with(shared: Arc<RandLoraShared>, prefix: &str, src: &Tensors, hyper: &Hyper, n_in: usize, n_out: usize, file: &str) -> Result<Self> {
        let (mn, mx) = (n_in.min(n_out), n_in.max(n_out));
        let nb = ceil_div(mn, shared.r);
        let name_l = format!("{prefix}.randlora_lambda");
        let lambda = take(src, &name_l, &[shared.r, nb], file)?;
        let gamma = take(src, &format!("{prefix}.randlora_gamma"), &[nb, mn], file)?;
        Self::check_fits(&shared, mn, mx).map_err(|m| crate::Error::format(file, "shared.randlora_b", m))?;
        let alpha: f64 = hyper_get(hyper, "alpha", file)?;
        let scale = (alpha / shared.r as f64) as f32;
        Ok(RandLoraLayer { shared, n_in, n_out, lambda, gamma, scale })
    }
}

impl LayerMethod for RandLoraLayer {
    const NAME: &'static str = "randlora";
    fn n_in(&self) -> usize {
        self.n_in
    }
    fn n_out(&self) -> usize {
        self.n_out
    }
    /// `r·nb_l + nb_l·min(n_in, n_out)`: 264 192 at 2048², r=16.
    fn trainable_params(&self) -> usize {
        self.lambda.len() + self.gamma.len()
    }
    fn delta_dense_f64(&self, _w0: &[f64]) -> Vec<f64> {
        let (r, nb) = (self.shared.r, self.nb());
        let (mn, mx) = (self.n_in.min(self.n_out), self.n_in.max(self.n_out));
        let s = self.scale as f64;
        // ΔW in the (max, min) orientation as the sum of rank-one terms, PEFT's pairing.
        let mut d = vec![0f64; mx * mn];
        for k in 0..r {
            for b in 0..nb {
                let i = k * nb + b;
                let lam = self.lambda[k * nb + b] as f64;
                for row in 0..mx {
                    let bv = s * self.b_hat(row, i / r, i % r) as f64 * lam;
                    if bv == 0.0 {
                        continue;
                    }
                    for c in 0..mn {
                        d[row * mn + c] += bv * self.a_hat(k, c) as f64 * self.gamma[b * mn + c] as f64;
                    }
                }
            }
        }
        if self.n_in == mn {
            d
        } else {
            super::linalg::transpose(&d, mx, mn)
        }
    }
    fn to_term(&self) -> Term {
        let (r, nb) = (self.shared.r, self.nb());
        let (mn, mx) = (self.n_in.min(self.n_out), self.n_in.max(self.n_out));
        let rank = r * nb;
        // UA rows i = k·nb + b; UB columns c = b'·r + k'.
        let mut ua = vec![0f32; rank * mn];
        for k in 0..r {
            for b in 0..nb {
                let lam = self.lambda[k * nb + b] as f64;
                for c in 0..mn {
                    ua[(k * nb + b) * mn + c] = (lam * self.a_hat(k, c) as f64 * self.gamma[b * mn + c] as f64) as f32;
                }
            }
        }
        // UBᵀ, [rank, mx]: row c = B̂[:, c / r, c % r].
        let mut ubt = vec![0f32; rank * mx];
        for c in 0..rank {
            for row in 0..mx {
                ubt[c * mx + row] = self.b_hat(row, c / r, c % r);
            }
        }
        let t = if self.n_in == mn {
            // y = UB·(UA·x): A' = UA, B' = UB (Bᵀ = UBᵀ).
            LowRank { r: rank, n_in: self.n_in, n_out: self.n_out, a: ua.into(), bt: ubt.into(), scale: self.scale }
        } else {
            // y = UAᵀ·(UBᵀ·x): A' = UBᵀ, B' = UAᵀ (Bᵀ = UA).
            LowRank { r: rank, n_in: self.n_in, n_out: self.n_out, a: ubt.into(), bt: ua.into(), scale: self.scale }
        };
        Term::LowRank(t)
    }
    /// Writes `λ`, `γ` under the prefix and the shared bases under `shared.` (identical for every
    /// layer of the adapter).
    fn save(&self, prefix: &str, out: &mut Tensors) {
        out.insert(format!("{prefix}.randlora_lambda"), (vec![self.shared.r, self.nb()], self.lambda.clone().into()));
        out.insert(format!("{prefix}.randlora_gamma"), (vec![self.nb(), self.n_in.min(self.n_out)], self.gamma.clone().into()));
        self.shared.save(out);
    }
    /// Reads the shared bases (a private copy per call: prefer [`RandLoraShared::load`] once and
    /// [`RandLoraLayer::load_with`] per layer) and the layer's tensors.
    fn load(prefix: &str, src: &Tensors, hyper: &Hyper, n_in: usize, n_out: usize, file: &str) -> Result<Self> {
        let shared = Arc::new(RandLoraShared::load(src, file)?);
        Self::load_with(shared, prefix, src, hyper, n_in, n_out, file)
    }
}
