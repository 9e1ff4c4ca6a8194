//! LaMDA (`ArminAzizi98/LaMDA`): LoRA with an `r×r` matrix `S` (`sigma`) between the factors,
//! `ΔW = s·B·S·A`, `s = α/r`. `A` is frozen (PEFT's kaiming-uniform LoRA init), `S` trainable, `B`
//! trainable from 0 and frozen column by column during training (LaMDA's `gradual_freeze_B`), so the
//! trainable count goes from `r² + n_out·r` down to `r²`.
//!
//! Fold (exact up to rounding `B·S` to f32): `B' = B·S`, `A' = A`, scale `s` kept in the term.
use super::linalg::{f64s, matmul};
use super::{hyper_get, shape_of, take, Hyper, LayerMethod, Tensors};
use crate::adapter::rng::{kaiming_uniform, sqrt5, Mt19937};
use crate::adapter::term::{LowRank, Term};
use crate::Result;

/// One layer's LaMDA.
#[derive(Clone, Debug, PartialEq)]
pub struct LamdaLayer {
    /// Rank.
    pub r: usize,
    /// Input width.
    pub n_in: usize,
    /// Output width.
    pub n_out: usize,
    /// `A`, `[r, n_in]` (frozen).
    pub a: Vec<f32>,
    /// `S`, `[r, r]`.
    pub s: Vec<f32>,
    /// `B`, `[n_out, r]`.
    pub b: Vec<f32>,
    /// Columns of `B` already frozen (`t` of `gradual_freeze_B`, capped at `r`); only changes the
    /// trainable count.
    pub b_frozen_cols: usize,
    /// `α/r`.
    pub scale: f32,
}

impl LamdaLayer {
    /// LaMDA's initialisation from `MT19937(seed)`: `A = kaiming_uniform(a=√5)` (fan-in `n_in`),
    /// then `S = kaiming_uniform(a=√5)` (fan-in `r`, nn.Linear's default), `B = 0`. The original
    /// keeps `S` in bf16 and draws from torch's global generator; here `S` is fp32.
    pub fn init(n_in: usize, n_out: usize, r: usize, alpha: f64, seed: u32) -> LamdaLayer {
        assert!(r > 0, "LaMDA needs r > 0");
        let mut rng = Mt19937::new(seed);
        let a = kaiming_uniform(&mut rng, r, n_in, sqrt5());
        let s = kaiming_uniform(&mut rng, r, r, sqrt5());
        LamdaLayer { r, n_in, n_out, a, s, b: vec![0f32; n_out * r], b_frozen_cols: 0, scale: (alpha / r as f64) as f32 }
    }
}

impl LayerMethod for LamdaLayer {
    const NAME: &'static str = "lamda";
    fn n_in(&self) -> usize {
        self.n_in
    }
    fn n_out(&self) -> usize {
        self.n_out
    }
    /// `r² + n_out·(r − frozen columns)`: 33 024 at 2048², r=16 before any freezing, 256 after.
    fn trainable_params(&self) -> usize {
        self.s.len() + self.n_out * (self.r - self.b_frozen_cols.min(self.r))
    }
    fn delta_dense_f64(&self, _w0: &[f64]) -> Vec<f64> {
        let (r, ni, no) = (self.r, self.n_in, self.n_out);
        let sa = matmul(&f64s(&self.s), &f64s(&self.a), r, r, ni);
        let mut d = matmul(&f64s(&self.b), &sa, no, r, ni);
        d.iter_mut().for_each(|v| *v *= self.scale as f64);
        d
    }
    fn to_term(&self) -> Term {
        let bs: Vec<f32> = matmul(&f64s(&self.b), &f64s(&self.s), self.n_out, self.r, self.r).iter().map(|&v| v as f32).collect();
        Term::LowRank(LowRank::from_a_b(self.r, self.n_in, self.n_out, self.a.clone(), &bs, self.scale))
    }
    fn save(&self, prefix: &str, out: &mut Tensors) {
        out.insert(format!("{prefix}.lora_a"), (vec![self.r, self.n_in], self.a.clone().into()));
        out.insert(format!("{prefix}.lamda_sigma"), (vec![self.r, self.r], self.s.clone().into()));
        out.insert(format!("{prefix}.lora_b"), (vec![self.n_out, self.r], self.b.clone().into()));
    }
    /// Hyper-parameters: `alpha`; `b_frozen_cols` (default 0).
    fn load(prefix: &str, src: &Tensors, hyper: &Hyper, n_in: usize, n_out: usize, file: &str) -> Result<Self> {
        let name_a = format!("{prefix}.lora_a");
        let r = shape_of(src, &name_a, 2, file)?[0];
        let a = take(src, &name_a, &[r, n_in], file)?;
        let s = take(src, &format!("{prefix}.lamda_sigma"), &[r, r], file)?;
        let b = take(src, &format!("{prefix}.lora_b"), &[n_out, r], file)?;
        let alpha: f64 = hyper_get(hyper, "alpha", file)?;
        let b_frozen_cols: usize = super::hyper_or(hyper, "b_frozen_cols", 0, file)?;
        Ok(LamdaLayer { r, n_in, n_out, a, s, b, b_frozen_cols, scale: (alpha / r as f64) as f32 })
    }
}
