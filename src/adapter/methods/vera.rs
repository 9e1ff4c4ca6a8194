//! VeRA (Kopiczko et al.; PEFT `tuners/vera`): `ΔW = diag(λ_b)·B̂·diag(λ_d)·Â`, where `Â`, `B̂` are
//! the leading columns / rows of frozen random matrices `A` (`[r, max_in]`) and `B` (`[max_out, r]`)
//! shared by every adapted layer. Only `λ_d` (`[r]`) and `λ_b` (`[n_out]`) are trained. The shared
//! matrices are stored in the file (PEFT's `save_projection`), or regenerated from
//! `projection_prng_key` with torch's CPU generator (ADAPTERS.md §3.1).
use super::{take, Hyper, LayerMethod, Tensors};
use crate::adapter::term::{Term, Vera, VeraShared};
use crate::{Error, Result};
use std::sync::Arc;

/// One layer's VeRA.
#[derive(Clone, Debug, PartialEq)]
pub struct VeraLayer {
    /// The shared projections.
    pub shared: Arc<VeraShared>,
    /// Input width.
    pub n_in: usize,
    /// Output width.
    pub n_out: usize,
    /// `λ_d`, `[r]`.
    pub lambda_d: Vec<f32>,
    /// `λ_b`, `[n_out]`.
    pub lambda_b: Vec<f32>,
}

impl VeraShared {
    /// Shared projections from `A` (`[r, max_in]`) and `B` (`[max_out, r]`).
    pub fn from_a_b(r: usize, max_in: usize, max_out: usize, a: Vec<f32>, b: &[f32]) -> VeraShared {
        assert_eq!(a.len(), r * max_in);
        assert_eq!(b.len(), max_out * r);
        let mut bt = vec![0f32; r * max_out];
        for o in 0..max_out {
            for j in 0..r {
                bt[j * max_out + o] = b[o * r + j];
            }
        }
        VeraShared { r, max_in, max_out, a: a.into(), bt, q8: None }
    }

    /// `B` in its `[max_out, r]` layout.
    pub fn b(&self) -> Vec<f32> {
        let mut b = vec![0f32; self.max_out * self.r];
        for j in 0..self.r {
            for o in 0..self.max_out {
                b[o * self.r + j] = self.bt[j * self.max_out + o];
            }
        }
        b
    }

    /// PEFT's projections for `projection_prng_key` (files saved with `save_projection=False`):
    /// one CPU `MT19937(key)` stream, `A` `[r, max_in]` then `B` `[max_out, r]`, each
    /// `uniform_(±√3·√2/√fan_in)` with fan-in its dim 1, torch's fp32 recipe (ADAPTERS.md §3.1; equal
    /// to torch on its FMA (AVX2/AVX-512) builds, which is what PEFT users on x86 run).
    pub fn generate(r: usize, max_in: usize, max_out: usize, key: u64) -> VeraShared {
        use crate::adapter::rng::{kaiming_uniform, Mt19937};
        let mut rng = Mt19937::new(key as u32);
        let a = kaiming_uniform(&mut rng, r, max_in, 0.0);
        let b = kaiming_uniform(&mut rng, max_out, r, 0.0);
        VeraShared::from_a_b(r, max_in, max_out, a, &b)
    }

    /// Saves `A` and `B` as `shared.vera_A` / `shared.vera_B`.
    pub fn save(&self, out: &mut Tensors) {
        out.insert("shared.vera_A".into(), (vec![self.r, self.max_in], self.a.to_vec().into()));
        out.insert("shared.vera_B".into(), (vec![self.max_out, self.r], self.b().into()));
    }

    /// Reads `shared.vera_A` / `shared.vera_B`.
    pub fn load(src: &Tensors, file: &str) -> Result<VeraShared> {
        let (sa, _) = src.get("shared.vera_A").ok_or_else(|| Error::format(file, "shared.vera_A", "missing tensor"))?;
        let (sb, _) = src.get("shared.vera_B").ok_or_else(|| Error::format(file, "shared.vera_B", "missing tensor"))?;
        if sa.len() != 2 || sb.len() != 2 || sa[0] != sb[1] || sa[0] == 0 {
            return Err(Error::format(file, "shared.vera_B", format!("shapes {sa:?} and {sb:?} do not form [r, max_in] and [max_out, r]")));
        }
        let (r, max_in, max_out) = (sa[0], sa[1], sb[0]);
        let a = take(src, "shared.vera_A", &[r, max_in], file)?;
        let b = take(src, "shared.vera_B", &[max_out, r], file)?;
        Ok(VeraShared::from_a_b(r, max_in, max_out, a, &b))
    }
}

impl VeraLayer {
    /// Reads one layer's λ vectors against already-loaded shared projections.
    pub fn load_with(shared: Arc<VeraShared>, prefix: &str, src: &Tensors, n_in: usize, n_out: usize, file: &str) -> Result<VeraLayer> {
        if n_in > shared.max_in || n_out > shared.max_out {
            return Err(Error::format(file, prefix, format!("layer {n_out}x{n_in} is wider than the shared projections {}x{}", shared.max_out, shared.max_in)));
        }
        let lambda_d = take(src, &format!("{prefix}.vera_lambda_d"), &[shared.r], file)?;
        let lambda_b = take(src, &format!("{prefix}.vera_lambda_b"), &[n_out], file)?;
        Ok(VeraLayer { shared, n_in, n_out, lambda_d, lambda_b })
    }
}

impl LayerMethod for VeraLayer {
    const NAME: &'static str = "vera";
    fn n_in(&self) -> usize {
        self.n_in
    }
    fn n_out(&self) -> usize {
        self.n_out
    }
    fn trainable_params(&self) -> usize {
        self.lambda_d.len() + self.lambda_b.len()
    }
    fn delta_dense_f64(&self, _w0: &[f64]) -> Vec<f64> {
        let sh = &self.shared;
        let (ni, no, r) = (self.n_in, self.n_out, sh.r);
        let b = sh.b();
        let mut d = vec![0f64; no * ni];
        for o in 0..no {
            for i in 0..ni {
                let mut acc = 0f64;
                for j in 0..r {
                    acc += b[o * r + j] as f64 * self.lambda_d[j] as f64 * sh.a[j * sh.max_in + i] as f64;
                }
                d[o * ni + i] = self.lambda_b[o] as f64 * acc;
            }
        }
        d
    }
    fn to_term(&self) -> Term {
        Term::Vera(Vera { shared: self.shared.clone(), n_in: self.n_in, n_out: self.n_out, lambda_d: self.lambda_d.clone(), lambda_b: self.lambda_b.clone() })
    }
    fn save(&self, prefix: &str, out: &mut Tensors) {
        out.insert(format!("{prefix}.vera_lambda_d"), (vec![self.lambda_d.len()], self.lambda_d.clone().into()));
        out.insert(format!("{prefix}.vera_lambda_b"), (vec![self.n_out], self.lambda_b.clone().into()));
    }
    fn load(prefix: &str, src: &Tensors, _hyper: &Hyper, n_in: usize, n_out: usize, file: &str) -> Result<Self> {
        let shared = Arc::new(VeraShared::load(src, file)?);
        VeraLayer::load_with(shared, prefix, src, n_in, n_out, file)
    }
}
