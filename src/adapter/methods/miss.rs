//! MiSS (formerly Bone; PEFT `tuners/miss`), default variant: one block `M` `[r, n_out]`, and
//! `y = W0·x + (Σ_c x[c·r .. (c+1)·r]) · M` with `x` zero-padded to a multiple of `r`, that is
//! `ΔW[o, i] = M[i mod r, o]`. No scale. (The `"mini"` and `"bat"` variants are not implemented;
//! `"bat"` depends on `W0` and has no exact low-rank fold.)
//!
//! Fold (exact, PEFT `lora/conversion.py`): `A'[j, i] = 1` iff `i mod r = j`, `B' = Mᵀ`, rank `r`,
//! scale 1; both factors are copies or 0/1, so the fold is bit-exact.
use super::{shape_of, take, Hyper, LayerMethod, Tensors};
use crate::adapter::term::{LowRank, Term};
use crate::Result;

/// One layer's MiSS block.
#[derive(Clone, Debug, PartialEq)]
pub struct MissLayer {
    /// Block size `r`.
    pub r: usize,
    /// Input width.
    pub n_in: usize,
    /// Output width.
    pub n_out: usize,
    /// `M`, `[r, n_out]` (PEFT `miss_block`).
    pub m: Vec<f32>,
}

impl MissLayer {
    /// PEFT's default initialisation (`init_weights=True`): `M = 0` (nothing random).
    pub fn init(n_in: usize, n_out: usize, r: usize) -> MissLayer {
        assert!(r > 0, "MiSS needs r > 0");
        MissLayer { r, n_in, n_out, m: vec![0f32; r * n_out] }
    }
}

impl LayerMethod for MissLayer {
    const NAME: &'static str = "miss";
    fn n_in(&self) -> usize {
        self.n_in
    }
    fn n_out(&self) -> usize {
        self.n_out
    }
    fn trainable_params(&self) -> usize {
        self.m.len()
    }
    fn delta_dense_f64(&self, _w0: &[f64]) -> Vec<f64> {
        // The forward sums the r-wide chunks of x, then multiplies by M: input i lands on row
        // i mod r of M.
        let (ni, no, r) = (self.n_in, self.n_out, self.r);
        let mut d = vec![0f64; no * ni];
        for o in 0..no {
            for i in 0..ni {
                d[o * ni + i] = self.m[(i % r) * no + o] as f64;
            }
        }
        d
    }
    fn to_term(&self) -> Term {
        let (ni, no, r) = (self.n_in, self.n_out, self.r);
        let mut a = vec![0f32; r * ni];
        for i in 0..ni {
            a[(i % r) * ni + i] = 1.0;
        }
        // B' = Mᵀ, so Bᵀ = M as stored.
        Term::LowRank(LowRank { r, n_in: ni, n_out: no, a, bt: self.m.clone(), scale: 1.0 })
    }
    fn save(&self, prefix: &str, out: &mut Tensors) {
        out.insert(format!("{prefix}.miss_block"), (vec![self.r, self.n_out], self.m.clone()));
    }
    fn load(prefix: &str, src: &Tensors, _hyper: &Hyper, n_in: usize, n_out: usize, file: &str) -> Result<Self> {
        let name = format!("{prefix}.miss_block");
        let r = shape_of(src, &name, 2, file)?[0];
        let m = take(src, &name, &[r, n_out], file)?;
        Ok(MissLayer { r, n_in, n_out, m })
    }
}
