//! LoKr (PEFT `tuners/lokr`, from LyCORIS): `ΔW = s·kron(w1, w2)`, `s = α/r`, with
//! `n_out = out_l·out_k`, `n_in = in_m·in_n` split by [`factorization`], `w1` `[out_l, in_m]` and
//! `w2` `[out_k, in_n]` either full or `w2_a·w2_b` (`[out_k, r]·[r, in_n]`): PEFT keeps `w2` full
//! when `r ≥ max(out_k, in_n)/2`; likewise `w1` is `w1_a·w1_b` (`[out_l, r]·[r, in_m]`) when
//! PEFT's `decompose_both` is set and `r < max(out_l, in_m)/2`.
//!
//! `kron(w1, w2)[p·out_k + q, a·in_n + b] = w1[p, a]·w2[q, b]`, the row-major reshape PEFT does.
//!
//! Fold (exact up to rounding the products to f32): with `w1 = p·q` and `w2 = a·b`,
//! `kron(w1, w2) = kron(p, a)·kron(q, b)`, so `B' = kron(p, a)`, `A' = kron(q, b)`, scale `s` kept
//! in the term. A full `w1` is `w1·I_{in_m}` (inner size `in_m`), a factored one `w1_a·w1_b` (inner
//! size `r`); a full `w2` is split as `I·w2` (inner size `out_k`) or `w2·I` (inner size `in_n`),
//! whichever is smaller. The rank is the product of the two inner sizes (`in_m·r` for PEFT's
//! default layout).
use super::linalg::matmul;
use super::{hyper_get, hyper_or, layer_key, shape_of, take, Hyper, LayerMethod, Tensors};
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

/// LoKr's first Kronecker factor.
#[derive(Clone, Debug, PartialEq)]
pub enum LokrW1 {
    /// `w1` `[out_l, in_m]` (PEFT `lokr_w1`).
    Full(Vec<f32>),
    /// `w1 = a·b` (`decompose_both`), `a` `[out_l, r]` (`lokr_w1_a`), `b` `[r, in_m]` (`lokr_w1_b`).
    LowRank {
        /// `w1_a`, `[out_l, r]`.
        a: Vec<f32>,
        /// `w1_b`, `[r, in_m]`.
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
    /// `w1`, `[out_l, in_m]`, full or factored.
    pub w1: LokrW1,
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
        LokrLayer { r, n_in, n_out, out_lk: (out_l, out_k), in_mn: (in_m, in_n), w1: LokrW1::Full(vec![0f32; out_l * in_m]), w2, scale: (alpha / r as f64) as f32 }
    }

    /// `w1` as a dense `[out_l, in_m]` f64 matrix.
    pub fn w1_dense_f64(&self) -> Vec<f64> {
        let (out_l, in_m) = (self.out_lk.0, self.in_mn.0);
        match &self.w1 {
            LokrW1::Full(w) => w.iter().map(|&v| v as f64).collect(),
            LokrW1::LowRank { a, b } => {
                let a: Vec<f64> = a.iter().map(|&v| v as f64).collect();
                let b: Vec<f64> = b.iter().map(|&v| v as f64).collect();
                matmul(&a, &b, out_l, self.r, in_m)
            }
        }
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
        let w1 = match &self.w1 {
            LokrW1::Full(w) => w.len(),
            LokrW1::LowRank { a, b } => a.len() + b.len(),
        };
        w1 + match &self.w2 {
                LokrW2::Full(w) => w.len(),
                LokrW2::LowRank { a, b } => a.len() + b.len(),
            }
    }
    fn delta_dense_f64(&self, _w0: &[f64]) -> Vec<f64> {
        let ((out_l, out_k), (in_m, in_n)) = (self.out_lk, self.in_mn);
        let w1 = self.w1_dense_f64();
        let w2 = self.w2_dense_f64();
        let s = self.scale as f64;
        let mut d = vec![0f64; self.n_out * self.n_in];
        for p in 0..out_l {
            for a in 0..in_m {
                let w1 = w1[p * in_m + a];
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
        let eye = |n: usize| -> Vec<f64> { (0..n * n).map(|i| if i / n == i % n { 1.0 } else { 0.0 }).collect() };
        let f64s = |v: &[f32]| -> Vec<f64> { v.iter().map(|&x| x as f64).collect() };
        // w1 = pm·qm with inner size k1.
        let (pm, qm, k1): (Vec<f64>, Vec<f64>, usize) = match &self.w1 {
            LokrW1::Full(w) => (f64s(w), eye(in_m), in_m),
            LokrW1::LowRank { a, b } => (f64s(a), f64s(b), self.r),
        };
        // w2 = wa·wb with inner size k.
        let (wa, wb, k): (Vec<f64>, Vec<f64>, usize) = match &self.w2 {
            LokrW2::LowRank { a, b } => (a.iter().map(|&v| v as f64).collect(), b.iter().map(|&v| v as f64).collect(), self.r),
            LokrW2::Full(w) => {
                let w: Vec<f64> = f64s(w);
                if out_k <= in_n {
                    (eye(out_k), w, out_k)
                } else {
                    (w, eye(in_n), in_n)
                }
            }
        };
        let rank = k1 * k;
        // B' = kron(pm, wa): [out_l·out_k, k1·k].
        let mut b = vec![0f32; self.n_out * rank];
        for p in 0..out_l {
            for j1 in 0..k1 {
                let w1 = pm[p * k1 + j1];
                for q in 0..out_k {
                    for j in 0..k {
                        b[(p * out_k + q) * rank + j1 * k + j] = (w1 * wa[q * k + j]) as f32;
                    }
                }
            }
        }
        // A' = kron(qm, wb): [k1·k, in_m·in_n] (kron(I_in_m, wb) for a full w1: the zeros skipped).
        let mut am = vec![0f32; rank * self.n_in];
        for j1 in 0..k1 {
            for a in 0..in_m {
                let w1 = qm[j1 * in_m + a];
                if w1 == 0.0 {
                    continue;
                }
                for j in 0..k {
                    for c in 0..in_n {
                        am[(j1 * k + j) * self.n_in + a * in_n + c] = (w1 * wb[j * in_n + c]) as f32;
                    }
                }
            }
        }
        Term::LowRank(LowRank::from_a_b(rank, self.n_in, self.n_out, am, &b, self.scale))
    }
    fn save(&self, prefix: &str, out: &mut Tensors) {
        let ((out_l, out_k), (in_m, in_n)) = (self.out_lk, self.in_mn);
        match &self.w1 {
            LokrW1::Full(w) => {
                out.insert(format!("{prefix}.lokr_w1"), (vec![out_l, in_m], w.clone().into()));
            }
            LokrW1::LowRank { a, b } => {
                out.insert(format!("{prefix}.lokr_w1_a"), (vec![out_l, self.r], a.clone().into()));
                out.insert(format!("{prefix}.lokr_w1_b"), (vec![self.r, in_m], b.clone().into()));
            }
        }
        match &self.w2 {
            LokrW2::Full(w) => {
                out.insert(format!("{prefix}.lokr_w2"), (vec![out_k, in_n], w.clone().into()));
            }
            LokrW2::LowRank { a, b } => {
                out.insert(format!("{prefix}.lokr_w2_a"), (vec![out_k, self.r], a.clone().into()));
                out.insert(format!("{prefix}.lokr_w2_b"), (vec![self.r, in_n], b.clone().into()));
            }
        }
    }
    /// Hyper-parameters: `alpha`; `r` when neither `w1` nor `w2` is factored (else read from
    /// `lokr_w1_a` / `lokr_w2_a`, which must agree); `decompose_factor` (default -1). A layer's own
    /// `alpha.<prefix>` / `r.<prefix>` (PEFT's `alpha_pattern` / `rank_pattern`) come first.
    fn load(prefix: &str, src: &Tensors, hyper: &Hyper, n_in: usize, n_out: usize, file: &str) -> Result<Self> {
        let f: i64 = hyper_or(hyper, "decompose_factor", -1, file)?;
        let (out_l, out_k) = factorization(n_out, f);
        let (in_m, in_n) = factorization(n_in, f);
        // The rank a factored w1 or w2 shows (both must show the same).
        let mut shown: Option<(String, usize)> = None;
        let mut rank_of = |name: &str| -> Result<usize> {
            let r = shape_of(src, name, 2, file)?[1];
            match &shown {
                Some((first, r0)) if *r0 != r => Err(crate::Error::format(file, name, format!("rank {r}, but {first} has rank {r0}"))),
                _ => {
                    shown = Some((name.to_string(), r));
                    Ok(r)
                }
            }
        };
        let full1 = format!("{prefix}.lokr_w1");
        let factored = ["lokr_w1_a", "lokr_w1_b"].iter().any(|p| src.contains_key(&format!("{prefix}.{p}")));
        let w1 = if src.contains_key(&full1) || !factored {
            LokrW1::Full(take(src, &full1, &[out_l, in_m], file)?)
        } else {
            let name_a = format!("{prefix}.lokr_w1_a");
            let r = rank_of(&name_a)?;
            let a = take(src, &name_a, &[out_l, r], file)?;
            let b = take(src, &format!("{prefix}.lokr_w1_b"), &[r, in_m], file)?;
            LokrW1::LowRank { a, b }
        };
        let full = format!("{prefix}.lokr_w2");
        let w2 = if src.contains_key(&full) {
            LokrW2::Full(take(src, &full, &[out_k, in_n], file)?)
        } else {
            let name_a = format!("{prefix}.lokr_w2_a");
            let r = rank_of(&name_a)?;
            let a = take(src, &name_a, &[out_k, r], file)?;
            let b = take(src, &format!("{prefix}.lokr_w2_b"), &[r, in_n], file)?;
            LokrW2::LowRank { a, b }
        };
        let r = match shown {
            Some((_, r)) => r,
            None => hyper_get(hyper, &layer_key(hyper, "r", prefix), file)?,
        };
        if r == 0 {
            return Err(crate::Error::format(file, "r", "rank 0"));
        }
        let alpha: f64 = hyper_get(hyper, &layer_key(hyper, "alpha", prefix), file)?;
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
