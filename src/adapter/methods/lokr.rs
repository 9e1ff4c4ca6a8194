//! LoKr (PEFT `tuners/lokr`, from LyCORIS): `ΔW = s·kron(w1, w2)`, `s = α/r`, with
//! `n_out = out_l·out_k`, `n_in = in_m·in_n` split by [`factorization`], `w1` `[out_l, in_m]` and
//! `w2` `[out_k, in_n]` either full or `w2_a·w2_b` (`[out_k, r]·[r, in_n]`): PEFT keeps `w2` full
//! when `r ≥ max(out_k, in_n)/2`. (`decompose_both`, i.e. `w1 = w1_a·w1_b`, is not implemented.)
//!
//! `kron(w1, w2)[p·out_k + q, a·in_n + b] = w1[p, a]·w2[q, b]`, the row-major reshape PEFT does.
//!
//! Fold (exact up to rounding the products to f32): `B' = kron(w1, w2_a)` `[n_out, in_m·r]`,
//! `A' = kron(I_{in_m}, w2_b)` `[in_m·r, n_in]`, scale `s` kept in the term (so
//! `B'·A' = kron(w1, w2_a·w2_b)`). A full `w2` is split as `I·w2` (inner size `out_k`) or `w2·I`
//! (inner size `in_n`), whichever is smaller; the rank is `in_m` times that.
use super::linalg::matmul;
use super::{hyper_get, hyper_or, shape_of, take, Hyper, LayerMethod, Tensors};
use crate::adapter::rng::{kaiming_uniform, sqrt5, Mt19937};
use crate::adapter::term::{LowRank, Term};
use crate::Result;

/// LyCORIS' `factorization(dimension, factor)` as PEFT copies it: `(m, n)` with `m·n = dimension`,
/// `m ≤ n`; `factor > 0` dividing `dimension` gives `(factor, dimension/factor)`; otherwise
/// (`factor = -1`: no limit) `m` grows through the divisors while `m < n`, `m + n` does not exceed
/// `1 + dimension` and `m ≤ factor`. 2048 → (32, 64), 12 → (3, 4), 20 → (4, 5), 127 → (1, 127).
pub fn factorization(dimension: usize, factor: i64) -> (usize, usize) {
    if factor > 0 && dimension % factor as usize == 0 {
        return (factor as usize, dimension / factor as usize);
    }
    let factor = if factor == -1 { dimension } else { factor.max(0) as usize };
    let (mut m, mut n) = (1usize, dimension);
    let length = m + n;
    while m < n {
        let mut new_m = m + 1;
        while dimension % new_m != 0 {
            new_m += 1;
        }
        let new_n = dimension / new_m;
        if new_m + new_n > length || new_m > factor {
            break;
        }
        m = new_m;
        n = new_n;
    }
    if m > n {
        std::mem::swap(&mut m, &mut n);
    }
    (m, n)
}

/// LoKr's second Kronecker factor.
#[derive(Clone, Debug, PartialEq)]
pub enum LokrW2 {
    /// `w2` `[out_k, in_n]` (PEFT `lokr_w2`).
    Full(Vec<f32>),
    /// `w2 = a·b`, `a` `[out_k, r]` (`lokr_w2_a`), `b` `[r, in_n]` (`lokr_w2_b`).
    LowRank {
        /// `w2_a`, `[out_k, r]`.
        a: Vec<f32>,
        /// `w2_b`, `[r, in_n]`.
        b: Vec<f32>,
    },
}

/// One layer's LoKr.
#[derive(Clone, Debug, PartialEq)]
pub struct LokrLayer {
    /// The configured rank `r` (sets the scale, and `w2`'s inner size when low-rank).
    pub r: usize,
    /// Input width.
    pub n_in: usize,
    /// Output width.
    pub n_out: usize,
    /// `(out_l, out_k)` = [`factorization`]`(n_out)`.
    pub out_lk: (usize, usize),
    /// `(in_m, in_n)` = [`factorization`]`(n_in)`.
    pub in_mn: (usize, usize),
    /// `w1`, `[out_l, in_m]`.
    pub w1: Vec<f32>,
    /// `w2`, full or factored.
    pub w2: LokrW2,
    /// `α/r`.
    pub scale: f32,
}

impl LokrLayer {
    /// PEFT's layout and default initialisation (`init_weights=True`) for a `[n_out, n_in]` layer:
    /// `w1 = 0`; `w2` (or `w2_a` then `w2_b`) `kaiming_uniform(a=√5)` from `MT19937(seed)` in
    /// that order (PEFT draws from torch's global generator, so its values are not reproducible
    /// anyway). `decompose_factor` as PEFT's (`-1`: near √d).
    pub fn init(n_in: usize, n_out: usize, r: usize, alpha: f64, decompose_factor: i64, seed: u32) -> LokrLayer {
        assert!(r > 0, "LoKr needs r > 0");
        let (out_l, out_k) = factorization(n_out, decompose_factor);
        let (in_m, in_n) = factorization(n_in, decompose_factor);
        let mut rng = Mt19937::new(seed);
        let use_w2 = r as f64 >= out_k.max(in_n) as f64 / 2.0;
        let w2 = if use_w2 {
            LokrW2::Full(kaiming_uniform(&mut rng, out_k, in_n, sqrt5()))
        } else {
            let a = kaiming_uniform(&mut rng, out_k, r, sqrt5());
            let b = kaiming_uniform(&mut rng, r, in_n, sqrt5());
            LokrW2::LowRank { a, b }
        };
        LokrLayer { r, n_in, n_out, out_lk: (out_l, out_k), in_mn: (in_m, in_n), w1: vec![0f32; out_l * in_m], w2, scale: (alpha / r as f64) as f32 }
    }

    /// `w2` as a dense `[out_k, in_n]` f64 matrix.
    pub fn w2_dense_f64(&self) -> Vec<f64> {
        let (out_k, in_n) = (self.out_lk.1, self.in_mn.1);
        match &self.w2 {
            LokrW2::Full(w) => w.iter().map(|&v| v as f64).collect(),
            LokrW2::LowRank { a, b } => {
                let a: Vec<f64> = a.iter().map(|&v| v as f64).collect();
                let b: Vec<f64> = b.iter().map(|&v| v as f64).collect();
                matmul(&a, &b, out_k, self.r, in_n)
            }
        }
    }
}

impl LayerMethod for LokrLayer {
    const NAME: &'static str = "lokr";
    fn n_in(&self) -> usize {
        self.n_in
    }
    fn n_out(&self) -> usize {
        self.n_out
    }
    fn trainable_params(&self) -> usize {
        self.w1.len()
            + match &self.w2 {
                LokrW2::Full(w) => w.len(),
                LokrW2::LowRank { a, b } => a.len() + b.len(),
            }
    }
    fn delta_dense_f64(&self, _w0: &[f64]) -> Vec<f64> {
        let ((out_l, out_k), (in_m, in_n)) = (self.out_lk, self.in_mn);
        let w2 = self.w2_dense_f64();
        let s = self.scale as f64;
        let mut d = vec![0f64; self.n_out * self.n_in];
        for p in 0..out_l {
            for a in 0..in_m {
                let w1 = self.w1[p * in_m + a] as f64;
                for q in 0..out_k {
                    for b in 0..in_n {
                        d[(p * out_k + q) * self.n_in + a * in_n + b] = s * w1 * w2[q * in_n + b];
                    }
                }
            }
        }
        d
    }
    fn to_term(&self) -> Term {
        let ((out_l, out_k), (in_m, in_n)) = (self.out_lk, self.in_mn);
        // w2 = wa·wb with inner size k.
        let (wa, wb, k): (Vec<f64>, Vec<f64>, usize) = match &self.w2 {
            LokrW2::LowRank { a, b } => (a.iter().map(|&v| v as f64).collect(), b.iter().map(|&v| v as f64).collect(), self.r),
            LokrW2::Full(w) => {
                let w: Vec<f64> = w.iter().map(|&v| v as f64).collect();
                let eye = |n: usize| -> Vec<f64> { (0..n * n).map(|i| if i / n == i % n { 1.0 } else { 0.0 }).collect() };
                if out_k <= in_n {
                    (eye(out_k), w, out_k)
                } else {
                    (w, eye(in_n), in_n)
                }
            }
        };
        let rank = in_m * k;
        // B' = kron(w1, wa): [out_l·out_k, in_m·k].
        let mut b = vec![0f32; self.n_out * rank];
        for p in 0..out_l {
            for a in 0..in_m {
                let w1 = self.w1[p * in_m + a] as f64;
                for q in 0..out_k {
                    for j in 0..k {
                        b[(p * out_k + q) * rank + a * k + j] = (w1 * wa[q * k + j]) as f32;
                    }
                }
            }
        }
        // A' = kron(I_in_m, wb): [in_m·k, in_m·in_n].
        let mut am = vec![0f32; rank * self.n_in];
        for a in 0..in_m {
            for j in 0..k {
                for c in 0..in_n {
                    am[(a * k + j) * self.n_in + a * in_n + c] = wb[j * in_n + c] as f32;
                }
            }
        }
        Term::LowRank(LowRank::from_a_b(rank, self.n_in, self.n_out, am, &b, self.scale))
    }
    fn save(&self, prefix: &str, out: &mut Tensors) {
        let ((out_l, out_k), (in_m, in_n)) = (self.out_lk, self.in_mn);
        out.insert(format!("{prefix}.lokr_w1"), (vec![out_l, in_m], self.w1.clone()));
        match &self.w2 {
            LokrW2::Full(w) => {
                out.insert(format!("{prefix}.lokr_w2"), (vec![out_k, in_n], w.clone()));
            }
            LokrW2::LowRank { a, b } => {
                out.insert(format!("{prefix}.lokr_w2_a"), (vec![out_k, self.r], a.clone()));
                out.insert(format!("{prefix}.lokr_w2_b"), (vec![self.r, in_n], b.clone()));
            }
        }
    }
    /// Hyper-parameters: `alpha`; `r` when `w2` is stored full (else read from `lokr_w2_a`);
    /// `decompose_factor` (default -1).
    fn load(prefix: &str, src: &Tensors, hyper: &Hyper, n_in: usize, n_out: usize, file: &str) -> Result<Self> {
        let f: i64 = hyper_or(hyper, "decompose_factor", -1, file)?;
        let (out_l, out_k) = factorization(n_out, f);
        let (in_m, in_n) = factorization(n_in, f);
        let w1 = take(src, &format!("{prefix}.lokr_w1"), &[out_l, in_m], file)?;
        let full = format!("{prefix}.lokr_w2");
        let (r, w2) = if src.contains_key(&full) {
            let r: usize = hyper_get(hyper, "r", file)?;
            (r, LokrW2::Full(take(src, &full, &[out_k, in_n], file)?))
        } else {
            let name_a = format!("{prefix}.lokr_w2_a");
            let r = shape_of(src, &name_a, 2, file)?[1];
            let a = take(src, &name_a, &[out_k, r], file)?;
            let b = take(src, &format!("{prefix}.lokr_w2_b"), &[r, in_n], file)?;
            (r, LokrW2::LowRank { a, b })
        };
        if r == 0 {
            return Err(crate::Error::format(file, "r", "rank 0"));
        }
        let alpha: f64 = hyper_get(hyper, "alpha", file)?;
        Ok(LokrLayer { r, n_in, n_out, out_lk: (out_l, out_k), in_mn: (in_m, in_n), w1, w2, scale: (alpha / r as f64) as f32 })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn factorization_matches_peft_examples() {
        assert_eq!(factorization(256, -1), (16, 16));
        assert_eq!(factorization(128, -1), (8, 16));
        assert_eq!(factorization(127, -1), (1, 127));
        assert_eq!(factorization(128, 4), (4, 32));
        assert_eq!(factorization(2048, -1), (32, 64));
        assert_eq!(factorization(12, -1), (3, 4));
        assert_eq!(factorization(20, -1), (4, 5));
    }
}
