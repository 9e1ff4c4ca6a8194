//! DoRA (Liu et al.; PEFT `lora/dora.py`): `W' = diag(m / ‖W0 + s·B·A‖_row)·(W0 + s·B·A)`.
//! The row norms are computed once when the adapter is bound to a base (the norm is detached, as in
//! the paper, so it is a constant at inference).
use super::lora::LoraLayer;
use super::{take, Hyper, LayerMethod, Tensors};
use crate::adapter::term::{Dora, Term};
use crate::Result;

/// One layer's DoRA: a LoRA, the magnitude `m` and the bound row norms `‖W0 + s·B·A‖`.
#[derive(Clone, Debug, PartialEq)]
pub struct DoraLayer {
    /// The low-rank part.
    pub lora: LoraLayer,
    /// Magnitude vector `m`, `[n_out]`.
    pub m: Vec<f32>,
    /// `‖W0 + s·B·A‖` per output row, `[n_out]` (from the base it is bound to).
    pub norm: Vec<f32>,
}

impl DoraLayer {
    /// Binds a DoRA layer to the base weight `w0` (`[n_out, n_in]`, row-major).
    pub fn new(lora: LoraLayer, m: Vec<f32>, w0: &[f32]) -> DoraLayer {
        let norm = row_norms(&lora, w0);
        DoraLayer { lora, m, norm }
    }
}

/// `‖W0 + s·B·A‖₂` of each output row, accumulated in f64.
pub fn row_norms(l: &LoraLayer, w0: &[f32]) -> Vec<f32> {
    let (ni, no, r) = (l.n_in, l.n_out, l.r);
    assert_eq!(w0.len(), ni * no, "W0 must be [n_out, n_in]");
    let mut out = vec![0f32; no];
    let mut row = vec![0f64; ni];
    for o in 0..no {
        for (dst, w) in row.iter_mut().zip(&w0[o * ni..(o + 1) * ni]) {
            *dst = *w as f64;
        }
        for j in 0..r {
            let b = l.scale as f64 * l.b[o * r + j] as f64;
            for (dst, a) in row.iter_mut().zip(&l.a[j * ni..(j + 1) * ni]) {
                *dst += b * *a as f64;
            }
        }
        out[o] = row.iter().map(|v| v * v).sum::<f64>().sqrt() as f32;
    }
    out
}

impl LayerMethod for DoraLayer {
    const NAME: &'static str = "dora";
    fn n_in(&self) -> usize {
        self.lora.n_in
    }
    fn n_out(&self) -> usize {
        self.lora.n_out
    }
    fn trainable_params(&self) -> usize {
        self.lora.trainable_params() + self.m.len()
    }
    fn delta_dense_f64(&self, w0: &[f64]) -> Vec<f64> {
        let (ni, no) = (self.lora.n_in, self.lora.n_out);
        let d = self.lora.delta_dense_f64(w0);
        let mut out = vec![0f64; ni * no];
        for o in 0..no {
            let merged: Vec<f64> = (0..ni).map(|i| w0[o * ni + i] + d[o * ni + i]).collect();
            let norm = merged.iter().map(|v| v * v).sum::<f64>().sqrt();
            let c = self.m[o] as f64 / norm;
            for i in 0..ni {
                out[o * ni + i] = c * merged[i] - w0[o * ni + i];
            }
        }
        out
    }
    fn to_term(&self) -> Term {
        let Term::LowRank(lora) = self.lora.to_term() else { unreachable!("LoRA folds into a low-rank term") };
        let c = self.m.iter().zip(&self.norm).map(|(m, n)| if *n > 0.0 { m / n } else { 1.0 }).collect();
        Term::Dora(Dora { lora, c })
    }
    fn save(&self, prefix: &str, out: &mut Tensors) {
        self.lora.save(prefix, out);
        out.insert(format!("{prefix}.magnitude"), (vec![self.m.len()], self.m.clone().into()));
    }
    /// Loads the factors and `m`; the norms stay empty until bound ([`DoraLayer::bind`]).
    fn load(prefix: &str, src: &Tensors, hyper: &Hyper, n_in: usize, n_out: usize, file: &str) -> Result<Self> {
        let lora = LoraLayer::load(prefix, src, hyper, n_in, n_out, file)?;
        let m = take(src, &format!("{prefix}.magnitude"), &[n_out], file)?;
        Ok(DoraLayer { lora, m, norm: Vec::new() })
    }
}

impl DoraLayer {
    /// Computes the row norms against the base weight `w0`.
    pub fn bind(&mut self, w0: &[f32]) {
        self.norm = row_norms(&self.lora, w0);
    }
}
