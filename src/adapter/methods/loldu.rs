//! LoLDU (`SKDDJ/LoLDU`, ADAPTERS.md §4.7): from the LU factorisation with partial pivoting
//! `W0 = P·L·U`, `D = diag(U)`, `U ← D⁻¹U` (unit upper), keep `L_r = L[:, :r]`, `D_r`, `U_r = U[:r]`.
//! The layer's weight becomes `W = W_res + s·P·L_r·diag(z)·U_r` with
//! `W_res = W0 − s·P·L_r·diag(D_r)·U_r` and only `z` (`[r]`, init `D_r`) trained; `s = α/r`
//! (`from_linear`'s default `α = 1` gives `1/r`). Relative to the original `W0`:
//! `ΔW = s·P·L_r·diag(z − D_r)·U_r`.
//!
//! The LU is [`super::linalg::lu_steps`] run for `r` steps in f64 (the original calls
//! `torch.linalg.lu` in fp32; ties between pivot candidates may resolve differently across
//! LAPACK builds). Only `P·L_r` is kept (rows in the original order), not `P` itself.
//!
//! graft's file stores `z` and the frozen factors `P·L_r`, `D_r`, `U_r` (a method's `load` has no
//! access to `W0`); a PEFT-style checkpoint with only `vector_z` is read by
//! [`LolduLayer::init`] on the base weight, then setting `z`.
//!
//! Fold (exact up to rounding `P·L_r·diag(z − D_r)` to f32): `B' = P·L_r·diag(z − D_r)`,
//! `A' = U_r`, rank `r`, scale `s` kept in the term. With LoLDU's optional trained scale `s'`
//! (`scaling_factor`, stored as `loldu_scale`), `W = W_res + s'·P·L_r·diag(z)·U_r`, so
//! `ΔW = P·L_r·diag(s'·z − s·D_r)·U_r` and the fold is `B' = P·L_r·diag(s'·z − s·D_r)` at scale 1.
use super::linalg::lu_steps;
use super::{hyper_get, shape_of, take, Hyper, LayerMethod, Tensors};
use crate::adapter::term::{LowRank, Term};
use crate::Result;

/// One layer's LoLDU.
#[derive(Clone, Debug, PartialEq)]
pub struct LolduLayer {
    /// Rank.
    pub r: usize,
    /// Input width.
    pub n_in: usize,
    /// Output width.
    pub n_out: usize,
    /// `P·L_r`, `[n_out, r]` (frozen).
    pub pl: Vec<f32>,
    /// `D_r`, `[r]` (frozen; `W_res` subtracted `s·P·L_r·diag(D_r)·U_r`).
    pub d: Vec<f32>,
    /// `U_r` (unit upper rows), `[r, n_in]` (frozen).
    pub u: Vec<f32>,
    /// The trainable diagonal `z`, `[r]` (`vector_z`).
    pub z: Vec<f32>,
    /// `s = α/r`, the scale of the residual `W_res = W0 − s·P·L_r·diag(D_r)·U_r` (fixed at init).
    pub scale: f32,
    /// The scale of the trained part `s'·P·L_r·diag(z)·U_r`: `s` unless the scale is trained.
    pub scale_z: f32,
    /// Whether `scale_z` is trained (LoLDU's optional `scaling_factor`); stored as `loldu_scale`.
    pub train_scale: bool,
}

impl LolduLayer {
    /// LoLDU's initialisation (`init_loldu_weights="ldu"`, `init_method="lu"`) from the base weight
    /// `w0` (`[n_out, n_in]`): nothing random; `z = D_r`, so `ΔW = 0`. Errors if
    /// `r > min(n_in, n_out)` or a pivot is zero (the unit-upper `U` would divide by zero).
    pub fn init(w0: &[f64], n_in: usize, n_out: usize, r: usize, alpha: f64) -> Result<LolduLayer> {
        assert_eq!(w0.len(), n_out * n_in, "w0 must be [n_out, n_in]");
        if r == 0 || r > n_in.min(n_out) {
            return Err(crate::Error::invalid("LoLDU init", format!("rank {r} must be in 1..={}", n_in.min(n_out))));
        }
        let lu = lu_steps(w0, n_out, n_in, r).map_err(|k| crate::Error::invalid("LoLDU init", format!("zero pivot at step {k}: W0 is rank-deficient")))?;
        let d: Vec<f64> = (0..r).map(|k| lu.u[k * n_in + k]).collect();
        let mut u = vec![0f32; r * n_in];
        for k in 0..r {
            for i in 0..n_in {
                u[k * n_in + i] = (lu.u[k * n_in + i] / d[k]) as f32;
            }
        }
        let d: Vec<f32> = d.iter().map(|&v| v as f32).collect();
        let scale = (alpha / r as f64) as f32;
        Ok(LolduLayer { r, n_in, n_out, pl: lu.pl.iter().map(|&v| v as f32).collect(), z: d.clone(), d, u, scale, scale_z: scale, train_scale: false })
    }

    /// `s·P·L_r·diag(v)·U_r` in f64, `[n_out, n_in]`.
    fn pl_diag_u(&self, v: &[f32], s: f32) -> Vec<f64> {
        let (r, ni, no) = (self.r, self.n_in, self.n_out);
        let s = s as f64;
        let mut out = vec![0f64; no * ni];
        for o in 0..no {
            for (k, &vk) in v.iter().enumerate().take(r) {
                let c = s * self.pl[o * r + k] as f64 * vk as f64;
                if c == 0.0 {
                    continue;
                }
                for i in 0..ni {
                    out[o * ni + i] += c * self.u[k * ni + i] as f64;
                }
            }
        }
        out
    }
}

impl LayerMethod for LolduLayer {
    const NAME: &'static str = "loldu";
    fn n_in(&self) -> usize {
        self.n_in
    }
    fn n_out(&self) -> usize {
        self.n_out
    }
    fn trainable_params(&self) -> usize {
        self.z.len() + self.train_scale as usize
    }
    /// `(W_res + s'·P·L_r·diag(z)·U_r) − W0` with `W_res = W0 − s·P·L_r·diag(D_r)·U_r`.
    fn delta_dense_f64(&self, w0: &[f64]) -> Vec<f64> {
        let sub = self.pl_diag_u(&self.d, self.scale);
        let add = self.pl_diag_u(&self.z, self.scale_z);
        w0.iter().zip(sub.iter().zip(&add)).map(|(&w, (&s, &a))| ((w - s) + a) - w).collect()
    }
    /// `B' = P·L_r·diag(z − D_r)` at scale `s`; with a trained scale, `B' = P·L_r·diag(s'·z − s·D_r)`
    /// at scale 1.
    fn to_term(&self) -> Term {
        let r = self.r;
        let same = self.scale_z == self.scale;
        let (cz, cd) = if same { (1.0, 1.0) } else { (self.scale_z as f64, self.scale as f64) };
        let mut b = vec![0f32; self.n_out * r];
        for o in 0..self.n_out {
            for k in 0..r {
                b[o * r + k] = (self.pl[o * r + k] as f64 * (cz * self.z[k] as f64 - cd * self.d[k] as f64)) as f32;
            }
        }
        Term::LowRank(LowRank::from_a_b(r, self.n_in, self.n_out, self.u.clone(), &b, if same { self.scale } else { 1.0 }))
    }
    fn save(&self, prefix: &str, out: &mut Tensors) {
        out.insert(format!("{prefix}.loldu_z"), (vec![self.r], self.z.clone().into()));
        out.insert(format!("{prefix}.loldu_d"), (vec![self.r], self.d.clone().into()));
        out.insert(format!("{prefix}.loldu_pl"), (vec![self.n_out, self.r], self.pl.clone().into()));
        out.insert(format!("{prefix}.loldu_u"), (vec![self.r, self.n_in], self.u.clone().into()));
        if self.train_scale {
            out.insert(format!("{prefix}.loldu_scale"), (vec![1], vec![self.scale_z].into()));
        }
    }
    /// Hyper-parameters: `alpha` (LoLDU's default is 1).
    fn load(prefix: &str, src: &Tensors, hyper: &Hyper, n_in: usize, n_out: usize, file: &str) -> Result<Self> {
        let name_z = format!("{prefix}.loldu_z");
        let r = shape_of(src, &name_z, 1, file)?[0];
        let z = take(src, &name_z, &[r], file)?;
        let d = take(src, &format!("{prefix}.loldu_d"), &[r], file)?;
        let pl = take(src, &format!("{prefix}.loldu_pl"), &[n_out, r], file)?;
        let u = take(src, &format!("{prefix}.loldu_u"), &[r, n_in], file)?;
        let alpha: f64 = hyper_get(hyper, "alpha", file)?;
        let scale = (alpha / r as f64) as f32;
        let name_s = format!("{prefix}.loldu_scale");
        let (scale_z, train_scale) = if src.contains_key(&name_s) { (take(src, &name_s, &[1], file)?[0], true) } else { (scale, false) };
        Ok(LolduLayer { r, n_in, n_out, pl, d, u, z, scale, scale_z, train_scale })
    }
}
