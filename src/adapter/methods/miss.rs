//! MiSS (formerly Bone; PEFT `tuners/miss`), default variant: one block `M` `[r, n_out]`, and
//! `y = W0·x + (Σ_c x[c·r .. (c+1)·r]) · M` with `x` zero-padded to a multiple of `r`, that is
//! `ΔW[o, i] = M[i mod r, o]`. No scale. The `"mini"` variant stores a narrower block `M`
//! `[r, mini_r]` (`mini_r` dividing `n_out`) that PEFT repeats along the outputs:
//! `ΔW[o, i] = M[i mod r, o mod mini_r]`; the block's width tells the two apart. The `"bat"`
//! variant stores one `r×r` block per block row of the weight (`[n_out/r, r, r]`, three axes) and
//! transforms the base weight's own blocks: `ΔW_ij = W0_ij·M_i + M_i` (see
//! [`MissBat`](crate::adapter::term::MissBat)); it depends on `W0`, has no low-rank fold, and runs
//! as its own term.
//!
//! Fold (exact, PEFT `lora/conversion.py`): `A'[j, i] = 1` iff `i mod r = j`, `B'[o, j] =
//! M[j, o mod w]` (`w` the block's width), rank `r`, scale 1; both factors are copies or 0/1, so
//! the fold is bit-exact.
use super::{shape_of, take, Hyper, LayerMethod, Tensors};
use crate::adapter::term::{LowRank, MissBat, Term};
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
    /// `M`, `[r, w]` (PEFT `miss_block`), `w = n_out`, or `mini_r` for the "mini" variant; for
    /// "bat", `[n_out/r, r, r]`.
    pub m: Vec<f32>,
    /// The "bat" variant.
    pub bat: bool,
}

impl MissLayer {
    /// PEFT's default initialisation (`init_weights=True`): `M = 0` (nothing random).
    pub fn init(n_in: usize, n_out: usize, r: usize) -> MissLayer {
        assert!(r > 0, "MiSS needs r > 0");
        MissLayer { r, n_in, n_out, m: vec![0f32; r * n_out], bat: false }
    }

    /// PEFT's "bat" initialisation: `M = 0`, `[n_out/r, r, r]` (both widths multiples of `r`).
    pub fn init_bat(n_in: usize, n_out: usize, r: usize) -> MissLayer {
        assert!(r > 0 && n_in % r == 0 && n_out % r == 0, "MiSS bat needs r dividing both widths");
        MissLayer { r, n_in, n_out, m: vec![0f32; n_out * r], bat: true }
    }

    /// Width `w` of the block `M` (`n_out`, or `mini_r`; `r` for "bat").
    pub fn width(&self) -> usize {
        self.m.len() / self.r
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
    fn delta_dense_f64(&self, w0: &[f64]) -> Vec<f64> {
        if self.bat {
            return self.to_term().delta_f64(1.0, Some(w0));
        }
        // The forward sums the r-wide chunks of x, then multiplies by M: input i lands on row
        // i mod r of M.
        let (ni, no, r, w) = (self.n_in, self.n_out, self.r, self.width());
        let mut d = vec![0f64; no * ni];
        for o in 0..no {
            for i in 0..ni {
                d[o * ni + i] = self.m[(i % r) * w + o % w] as f64;
            }
        }
        d
    }
    fn to_term(&self) -> Term {
        let (ni, no, r) = (self.n_in, self.n_out, self.r);
        if self.bat {
            return Term::MissBat(MissBat { r, n_in: ni, n_out: no, m: self.m.clone(), hf_row: None });
        }
        let mut a = vec![0f32; r * ni];
        for i in 0..ni {
            a[(i % r) * ni + i] = 1.0;
        }
        // B'[o, j] = M[j, o mod w], so Bᵀ is M with each row repeated n_out/w times (M itself when
        // w = n_out).
        let w = self.width();
        let bt: Vec<f32> = self.m.chunks_exact(w).flat_map(|row| row.iter().copied().cycle().take(no)).collect();
        Term::LowRank(LowRank { r, n_in: ni, n_out: no, a: a.into(), bt: bt.into(), scale: 1.0 })
    }
    fn save(&self, prefix: &str, out: &mut Tensors) {
        let shape = if self.bat { vec![self.n_out / self.r, self.r, self.r] } else { vec![self.r, self.width()] };
        out.insert(format!("{prefix}.miss_block"), (shape, self.m.clone().into()));
    }
    fn load(prefix: &str, src: &Tensors, hyper: &Hyper, n_in: usize, n_out: usize, file: &str) -> Result<Self> {
        let name = format!("{prefix}.miss_block");
        if src.get(&name).is_some_and(|(s, _)| s.len() == 3) {
            // "bat": [n_out/r, r, r].
            let shape = shape_of(src, &name, 3, file)?;
            let r = shape[1];
            if shape[2] != r || n_in % r != 0 || n_out % r != 0 || shape[0] != n_out / r {
                return Err(crate::Error::format(file, &name, format!("shape {shape:?}: MiSS bat needs [n_out/r, r, r] with r dividing the layer's {n_in} inputs and {n_out} outputs")));
            }
            let m = take(src, &name, &[n_out / r, r, r], file)?;
            return Ok(MissLayer { r, n_in, n_out, m, bat: true });
        }
        let shape = shape_of(src, &name, 2, file)?;
        let (r, w) = (shape[0], shape[1]);
        // A narrower block is the "mini" variant, which the adapter's hyper-parameters announce.
        let mini_r = hyper.get("mini_r").and_then(|v| v.parse::<usize>().ok());
        if w != n_out && (mini_r != Some(w) || n_out % w != 0) {
            return Err(crate::Error::format(file, &name, format!("shape {shape:?}: needs [r, {n_out}], or [r, mini_r] with mini_r (hyper-parameter: {mini_r:?}) dividing the {n_out} outputs")));
        }
        let m = take(src, &name, &[r, w], file)?;
        Ok(MissLayer { r, n_in, n_out, m, bat: false })
    }
}
