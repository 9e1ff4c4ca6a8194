//! LoRA (Hu et al.), rsLoRA (scale α/√r) and FFA-LoRA (A frozen; same forward): `ΔW = s·B·A`.
use super::{hyper_get, layer_key, take, Hyper, LayerMethod, Tensors};
use crate::adapter::term::{LowRank, Term};
use crate::Result;

/// One layer's LoRA: `A` `[r, n_in]`, `B` `[n_out, r]`, scale `s`.
#[derive(Clone, Debug, PartialEq)]
pub struct LoraLayer {
    /// Rank.
    pub r: usize,
    /// Input width.
    pub n_in: usize,
    /// Output width.
    pub n_out: usize,
    /// `A`, `[r, n_in]`.
    pub a: Vec<f32>,
    /// `B`, `[n_out, r]`.
    pub b: Vec<f32>,
    /// `α/r` (LoRA, FFA-LoRA) or `α/√r` (rsLoRA).
    pub scale: f32,
}

impl LoraLayer {
    /// The scale of a LoRA of rank `r` with `alpha`, rsLoRA or not.
    pub fn scale_for(alpha: f64, r: usize, rslora: bool) -> f32 {
        if rslora {
            (alpha / (r as f64).sqrt()) as f32
        } else {
            (alpha / r as f64) as f32
        }
    }
}

impl LayerMethod for LoraLayer {
    const NAME: &'static str = "lora";
    fn n_in(&self) -> usize {
        self.n_in
    }
    fn n_out(&self) -> usize {
        self.n_out
    }
    fn trainable_params(&self) -> usize {
        self.a.len() + self.b.len()
    }
    fn delta_dense_f64(&self, _w0: &[f64]) -> Vec<f64> {
        let (r, ni, no) = (self.r, self.n_in, self.n_out);
        let mut d = vec![0f64; no * ni];
        for o in 0..no {
            for i in 0..ni {
                let mut acc = 0f64;
                for j in 0..r {
                    acc += self.b[o * r + j] as f64 * self.a[j * ni + i] as f64;
                }
                d[o * ni + i] = acc * self.scale as f64;
            }
        }
        d
    }
    fn to_term(&self) -> Term {
        Term::LowRank(LowRank::from_a_b(self.r, self.n_in, self.n_out, self.a.clone(), &self.b, self.scale))
    }
    fn save(&self, prefix: &str, out: &mut Tensors) {
        out.insert(format!("{prefix}.lora_a"), (vec![self.r, self.n_in], self.a.clone().into()));
        out.insert(format!("{prefix}.lora_b"), (vec![self.n_out, self.r], self.b.clone().into()));
    }
    /// Hyper-parameters: `alpha` (or the layer's own `alpha.<prefix>`), `rslora`; the rank is
    /// `A`'s row count.
    fn load(prefix: &str, src: &Tensors, hyper: &Hyper, n_in: usize, n_out: usize, file: &str) -> Result<Self> {
        let name_a = format!("{prefix}.lora_a");
        let r = src.get(&name_a).map(|(s, _)| s.first().copied().unwrap_or(0)).ok_or_else(|| crate::Error::format(file, &name_a, "missing tensor"))?;
        if r == 0 {
            return Err(crate::Error::format(file, &name_a, "rank 0"));
        }
        let a = take(src, &name_a, &[r, n_in], file)?;
        let b = take(src, &format!("{prefix}.lora_b"), &[n_out, r], file)?;
        let alpha: f64 = hyper_get(hyper, &layer_key(hyper, "alpha", prefix), file)?;
        let rslora = hyper.get("rslora").is_some_and(|v| v == "true");
        Ok(LoraLayer { r, n_in, n_out, a, b, scale: LoraLayer::scale_for(alpha, r, rslora) })
    }
}
