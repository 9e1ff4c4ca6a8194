//! The runtime forms an adapter takes on one linear layer. Every method compiles to one of these
//! three terms, applied unmerged next to the frozen base product `W0·x`:
//!
//! - [`LowRank`]: `y += s·B(A·x)` (LoRA and everything that folds into it);
//! - [`Dora`]: `y = c ⊙ (W0·x + s·B(A·x))`, a low-rank term plus a per-output rescaling of the base;
//! - [`Vera`]: `y += λ_b ⊙ B̂(λ_d ⊙ Â·x)` with `Â`, `B̂` slices of matrices shared by every layer, so
//!   `Â·x` is computed once per distinct layer input and reused by every projection reading it;
//! - [`MissBat`]: MiSS "bat", whose change is a block-wise affine map of the base weight itself
//!   (`ΔW_ij = W0_ij·M_i + M_i`), applied as the base product of a block-transformed input.
//!
//! An output bias (PEFT's `lora_bias`) is not part of a term: it sits beside the terms, in
//! [`Adapter::bias`](super::Adapter::bias).
//!
//! Matrices are f32, row-major; `B` is kept transposed (`Bᵀ`, `[r, n_out]`) so the up-projection
//! streams rows of `Bᵀ` against a few values of `A·x`.
use crate::kernels::int8::{Int8Kernels, PackedMatrix};
use std::sync::Arc;
pub use super::factor::Factor;

/// `y += scale · B·(A·x)`, with `A` `[r, n_in]` and `Bᵀ` `[r, n_out]`.
#[derive(Clone, Debug, PartialEq)]
pub struct LowRank {
    /// Rank.
    pub r: usize,
    /// Input width.
    pub n_in: usize,
    /// Output width.
    pub n_out: usize,
    /// Down-projection `A`, `[r, n_in]`.
    pub a: Factor,
    /// Up-projection transposed, `Bᵀ`, `[r, n_out]`.
    pub bt: Factor,
    /// The method's own scale (α/r for LoRA, α/√r for rsLoRA, ...), before the user's scale.
    pub scale: f32,
}

/// DoRA: `y = c ⊙ (W0·x + s·B·A·x)` with `c = m / ‖W0 + s·B·A‖_row` computed once at load.
#[derive(Clone, Debug, PartialEq)]
pub struct Dora {
    /// The low-rank part `s·B·A`.
    pub lora: LowRank,
    /// Per-output factor `c = m / ‖W0 + s·B·A‖_row`, `[n_out]`.
    pub c: Vec<f32>,
}

/// VeRA's frozen projections, shared by every layer of one adapter.
#[derive(Clone, Debug, PartialEq)]
pub struct VeraShared {
    /// Rank.
    pub r: usize,
    /// Widest input of the targeted layers (columns of `A`).
    pub max_in: usize,
    /// Widest output of the targeted layers (rows of `B`).
    pub max_out: usize,
    /// `A`, `[r, max_in]`; a layer with `n_in` inputs uses its first `n_in` columns. Shared (`Arc`)
    /// with row-permuted variants of the same projections, so `Â·x` is computed once for all.
    pub a: Arc<[f32]>,
    /// `Bᵀ`, `[r, max_out]`; a layer with `n_out` outputs uses the first `n_out` rows of `B`.
    pub bt: Vec<f32>,
    /// Q8_0 copies for the 8-bit numerics (see [`VeraShared::with_q8`]).
    pub q8: Option<Arc<VeraQ8>>,
}

/// VeRA's shared projections as Q8_0 rows: `Â` for each input width the adapter uses (rows of
/// `n_in/32` blocks), and `Bᵀ` (rows of `max_out/32` blocks, read from column 0 to `n_out`).
/// About 1 MB at r = 256 for the default model: it stays in L2, where the f32 matrices do not.
#[derive(Clone, Debug, PartialEq)]
pub struct VeraQ8 {
    /// `(n_in, Â as Q8_0 rows)`.
    pub a: Vec<(usize, Vec<u8>)>,
    /// `Bᵀ` as Q8_0 rows.
    pub bt: Vec<u8>,
    /// Int8 packed copies (where the CPU multiplies bytes fast, [`crate::kernels::int8`], and the
    /// rank and widths are multiples of 32): `Â` (`r` columns of `max_in/32` blocks, for `Â·x`)
    /// and `B̂` (`max_out` columns of `r/32` blocks, for `B̂·(λ_d ⊙ u)`); used instead of the Q8_0
    /// rows by the 8-bit numerics, about 4x faster per multiply-add.
    pub int8: Option<(PackedMatrix, PackedMatrix)>,
}

impl VeraShared {
    /// The same projections with Q8_0 copies for the input widths `n_ins` (`None` copies when a
    /// width or `max_out` is not a multiple of 32).
    pub fn with_q8(&self, n_ins: &[usize]) -> VeraShared {
        let mut out = self.clone();
        if self.max_out % 32 != 0 || n_ins.iter().any(|n| n % 32 != 0 || *n > self.max_in) {
            out.q8 = None;
            return out;
        }
        let mut a = Vec::new();
        for &n in n_ins {
            let mut rows = Vec::with_capacity(self.r * n);
            for j in 0..self.r {
                rows.extend_from_slice(&self.a[j * self.max_in..j * self.max_in + n]);
            }
            a.push((n, crate::kernels::adapter::quantize_rows_q8_0(&rows, self.r, n)));
        }
        let bt = crate::kernels::adapter::quantize_rows_q8_0(&self.bt, self.r, self.max_out);
        let k8 = crate::kernels::int8::selected();
        let int8 = if k8.fast { self.pack_int8(k8) } else { None };
        out.q8 = Some(Arc::new(VeraQ8 { a, bt, int8 }));
        out
    }

    /// `Â` and `B̂` packed for the int8 products of the forward pass: `Â` as `r` columns of
    /// `max_in/32` blocks (for `Â·x`), `B̂` as `max_out` columns of `r/32` blocks (for
    /// `B̂·(λ_d ⊙ u)`); `None` unless the rank and both widths are non-zero multiples of 32.
    pub fn pack_int8(&self, k8: &Int8Kernels) -> Option<(PackedMatrix, PackedMatrix)> {
        let (r, mi, mo) = (self.r, self.max_in, self.max_out);
        if r == 0 || r % 32 != 0 || mi % 32 != 0 || mo % 32 != 0 {
            return None;
        }
        let mut pa = PackedMatrix::zeros(r, mi / 32);
        k8.pack(&self.a, mi, 1, r, mi / 32, &mut pa, 0, 0);
        // bt is Bᵀ, [r, max_out]: B's element (o, j) is bt[j·max_out + o].
        let mut pb = PackedMatrix::zeros(mo, r / 32);
        k8.pack(&self.bt, 1, mo, mo, r / 32, &mut pb, 0, 0);
        Some((pa, pb))
    }
}

/// One layer's VeRA term: `y += λ_b ⊙ B̂·(λ_d ⊙ Â·x)`.
#[derive(Clone, Debug, PartialEq)]
pub struct Vera {
    /// The shared projections.
    pub shared: Arc<VeraShared>,
    /// Input width of this layer.
    pub n_in: usize,
    /// Output width of this layer.
    pub n_out: usize,
    /// `λ_d`, `[r]`.
    pub lambda_d: Vec<f32>,
    /// `λ_b`, `[n_out]`.
    pub lambda_b: Vec<f32>,
}

/// MiSS "bat" (PEFT `init_weights="bat"`): on the `r×r` blocks of the base weight (in HF row
/// order; block row `i` over outputs, block column `j` over inputs), `ΔW_ij = W0_ij·M_i + M_i`, one
/// `M_i` per block row. So for the output row with HF index `h` (`i = h / r`, `a = h mod r`):
/// `Δy = Σ_{j,c} W0[h, jr + c]·(M_i·x_j)[c] + (M_i·Σ_j x_j)[a]`: the base row against the input
/// with every `r`-chunk transformed by `M_i`, plus a small term; `ΔW` is never formed.
#[derive(Clone, Debug, PartialEq)]
pub struct MissBat {
    /// Block size.
    pub r: usize,
    /// Input width (a multiple of `r`).
    pub n_in: usize,
    /// Output width (a multiple of `r`).
    pub n_out: usize,
    /// `M`, `[n_out/r, r, r]`: `M_i[c][b]` at `(i·r + c)·r + b`.
    pub m: Vec<f32>,
    /// The HF row of each output row when they differ (GGUF's attn_q / attn_k order), else `None`.
    pub hf_row: Option<Vec<u32>>,
}

impl MissBat {
    /// The HF row of output row `o`.
    pub fn hf(&self, o: usize) -> usize {
        self.hf_row.as_ref().map_or(o, |p| p[o] as usize)
    }
}

/// An adapter's runtime term on one linear layer.
#[derive(Clone, Debug, PartialEq)]
pub enum Term {
    /// `y += s·B·A·x`.
    LowRank(LowRank),
    /// DoRA's rescaled base plus low-rank term.
    Dora(Dora),
    /// VeRA with shared projections.
    Vera(Vera),
    /// MiSS "bat", which reads the base weight.
    MissBat(MissBat),
}

impl LowRank {
    /// A term from `A` (`[r, n_in]`) and `B` in its usual `[n_out, r]` layout (transposed here).
    pub fn from_a_b(r: usize, n_in: usize, n_out: usize, a: Vec<f32>, b: &[f32], scale: f32) -> LowRank {
        assert_eq!(a.len(), r * n_in, "A must be [r, n_in]");
        assert_eq!(b.len(), n_out * r, "B must be [n_out, r]");
        let mut bt = vec![0f32; r * n_out];
        transpose_b(b, r, n_out, &mut bt);
        LowRank { r, n_in, n_out, a: a.into(), bt: bt.into(), scale }
    }

    /// The same, with `B` transposed inside its own buffer (through a copy in a per-thread scratch
    /// buffer, kept up to 4 MiB), so that a loader allocates no second matrix for `Bᵀ`: fresh
    /// memory costs a page fault and a zeroed page per 4 KiB, the larger part of loading a LoRA.
    pub fn from_a_b_vec(r: usize, n_in: usize, n_out: usize, a: impl Into<Factor>, mut b: Vec<f32>, scale: f32) -> LowRank {
        let a: Factor = a.into();
        assert_eq!(a.len(), r * n_in, "A must be [r, n_in]");
        assert_eq!(b.len(), n_out * r, "B must be [n_out, r]");
        thread_local! {
            static SCRATCH: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
        }
        SCRATCH.with(|s| {
            let mut s = s.borrow_mut();
            s.clear();
            s.extend_from_slice(&b);
            transpose_b(&s, r, n_out, &mut b);
            if s.capacity() > (4 << 20) / 4 {
                *s = Vec::new();
            }
        });
        LowRank { r, n_in, n_out, a, bt: b.into(), scale }
    }

    /// `B` in the usual `[n_out, r]` layout.
    pub fn b(&self) -> Vec<f32> {
        let mut b = vec![0f32; self.n_out * self.r];
        for j in 0..self.r {
            for o in 0..self.n_out {
                b[o * self.r + j] = self.bt[j * self.n_out + o];
            }
        }
        b
    }

    /// Dense `s·B·A` in f64, `[n_out, n_in]`.
    pub fn delta_f64(&self) -> Vec<f64> {
        let (r, ni, no) = (self.r, self.n_in, self.n_out);
        let mut d = vec![0f64; no * ni];
        for o in 0..no {
            for j in 0..r {
                let b = self.bt[j * no + o] as f64 * self.scale as f64;
                if b == 0.0 {
                    continue;
                }
                for i in 0..ni {
                    d[o * ni + i] += b * self.a[j * ni + i] as f64;
                }
            }
        }
        d
    }
}

impl Term {
    /// Input width.
    pub fn n_in(&self) -> usize {
        match self {
            Term::LowRank(t) => t.n_in,
            Term::Dora(t) => t.lora.n_in,
            Term::Vera(t) => t.n_in,
            Term::MissBat(t) => t.n_in,
        }
    }

    /// Output width.
    pub fn n_out(&self) -> usize {
        match self {
            Term::LowRank(t) => t.n_out,
            Term::Dora(t) => t.lora.n_out,
            Term::Vera(t) => t.n_out,
            Term::MissBat(t) => t.n_out,
        }
    }

    /// Rank of the low-rank product.
    pub fn rank(&self) -> usize {
        match self {
            Term::LowRank(t) => t.r,
            Term::Dora(t) => t.lora.r,
            Term::Vera(t) => t.shared.r,
            Term::MissBat(t) => t.r,
        }
    }

    /// Floats this layer's term holds for itself (VeRA's shared projections not counted).
    pub fn stored_floats(&self) -> usize {
        match self {
            Term::LowRank(t) => t.a.len() + t.bt.len(),
            Term::Dora(t) => t.lora.a.len() + t.lora.bt.len() + t.c.len(),
            Term::Vera(t) => t.lambda_d.len() + t.lambda_b.len(),
            Term::MissBat(t) => t.m.len(),
        }
    }

    /// The merged weight change at user scale `s`, in f64, `[n_out, n_in]`: `W' = W0 + ΔW` gives
    /// the same outputs as the unmerged term. DoRA and MiSS "bat" need the base `w0` (row-major,
    /// f64, in the term's row order).
    pub fn delta_f64(&self, s: f64, w0: Option<&[f64]>) -> Vec<f64> {
        match self {
            Term::LowRank(t) => t.delta_f64().into_iter().map(|v| v * s).collect(),
            Term::Dora(t) => {
                // y = W0x + s·[(c−1)⊙W0x + c⊙(ΔW x)]  ⇒  ΔW' = s·(diag(c−1)·W0 + diag(c)·ΔW).
                let w0 = w0.expect("DoRA's merged delta needs the base weight");
                let (ni, no) = (t.lora.n_in, t.lora.n_out);
                let d = t.lora.delta_f64();
                let mut out = vec![0f64; no * ni];
                for o in 0..no {
                    let c = t.c[o] as f64;
                    for i in 0..ni {
                        out[o * ni + i] = s * ((c - 1.0) * w0[o * ni + i] + c * d[o * ni + i]);
                    }
                }
                out
            }
            Term::Vera(t) => {
                let sh = &t.shared;
                let (ni, no, r) = (t.n_in, t.n_out, sh.r);
                let mut out = vec![0f64; no * ni];
                for o in 0..no {
                    for j in 0..r {
                        let b = s * t.lambda_b[o] as f64 * sh.bt[j * sh.max_out + o] as f64 * t.lambda_d[j] as f64;
                        for i in 0..ni {
                            out[o * ni + i] += b * sh.a[j * sh.max_in + i] as f64;
                        }
                    }
                }
                out
            }
            Term::MissBat(t) => {
                // Row o (HF row h: block i, row a): ΔW[o, jr + b] = Σ_c W0[o, jr + c]·M_i[c][b] + M_i[a][b].
                let w0 = w0.expect("MiSS bat's merged delta needs the base weight");
                let (ni, no, r) = (t.n_in, t.n_out, t.r);
                let mut out = vec![0f64; no * ni];
                for o in 0..no {
                    let (i, a) = (t.hf(o) / r, t.hf(o) % r);
                    let mb = |c: usize, b: usize| t.m[(i * r + c) * r + b] as f64;
                    for j in 0..ni / r {
                        for b in 0..r {
                            let v: f64 = (0..r).map(|c| w0[o * ni + j * r + c] * mb(c, b)).sum::<f64>() + mb(a, b);
                            out[o * ni + j * r + b] = s * v;
                        }
                    }
                }
                out
            }
        }
    }

    /// Every value finite?
    pub fn all_finite(&self) -> bool {
        let f = all_finite;
        match self {
            Term::LowRank(t) => t.a.all_finite() && t.bt.all_finite() && t.scale.is_finite(),
            Term::Dora(t) => t.lora.a.all_finite() && t.lora.bt.all_finite() && f(&t.c) && t.lora.scale.is_finite(),
            Term::Vera(t) => f(&t.lambda_b) && f(&t.lambda_d) && f(&t.shared.a) && f(&t.shared.bt),
            Term::MissBat(t) => f(&t.m),
        }
    }
}

/// A low-rank term's factors as Q8_0 rows, for the 8-bit numerics: `A` `[r, n_in]` and `Bᵀ`
/// `[r, n_out]`, each row `n/32` blocks (34 bytes per 32 values: a quarter of the f32 bytes, which is
/// what decode spends its time reading).
#[derive(Clone, Debug, PartialEq)]
pub struct LowRankQ8 {
    /// `A`'s rows as Q8_0 blocks.
    pub a: Vec<u8>,
    /// `Bᵀ`'s rows as Q8_0 blocks.
    pub bt: Vec<u8>,
}

impl LowRankQ8 {
    /// Quantizes a low-rank term's factors; `None` when a width is not a multiple of 32.
    pub fn of(t: &LowRank) -> Option<LowRankQ8> {
        if t.n_in % 32 != 0 || t.n_out % 32 != 0 {
            return None;
        }
        use crate::kernels::adapter::{quantize_cols_q8_0, quantize_rows_q8_0};
        Some(LowRankQ8 {
            a: quantize_rows_q8_0(&t.a, t.r, t.n_in),
            // A `Bᵀ` still to be made from a mapped `B` is quantized from `B` (same bytes).
            bt: match t.bt.transpose_of() {
                Some(b) => quantize_cols_q8_0(b, t.n_out, t.r),
                None => quantize_rows_q8_0(&t.bt, t.r, t.n_out),
            },
        })
    }
}

/// `Bᵀ` (`[r, n_out]`) from `B` (`[n_out, r]`), in tiles of 16 rows of `B` (in L1), each written as
/// 16 consecutive floats of every `Bᵀ` row.
pub(crate) fn transpose_b(b: &[f32], r: usize, n_out: usize, bt: &mut [f32]) {
    for o0 in (0..n_out).step_by(16) {
        let o1 = (o0 + 16).min(n_out);
        for j in 0..r {
            for (d, o) in bt[j * n_out + o0..j * n_out + o1].iter_mut().zip(o0..o1) {
                *d = b[o * r + j];
            }
        }
    }
}

/// Whether every value is finite (a branch-free scan the compiler vectorizes).
pub fn all_finite(v: &[f32]) -> bool {
    v.iter().fold(0u32, |acc, x| acc | (x.to_bits() & 0x7f80_0000 == 0x7f80_0000) as u32) == 0
}

#[cfg(test)]
mod tests {
    use super::LowRank;

    /// Transposing `B` inside its own buffer gives `from_a_b`'s term, over odd sizes and with the
    /// per-thread scratch reused from a larger call and a smaller one.
    #[test]
    fn from_a_b_vec_matches_from_a_b() {
        for &(r, n_in, n_out) in &[(3usize, 5usize, 37usize), (16, 64, 576), (1, 1, 1), (7, 9, 17)] {
            let a: Vec<f32> = (0..r * n_in).map(|i| i as f32 * 0.5 - 3.0).collect();
            let b: Vec<f32> = (0..n_out * r).map(|i| (i as f32).sin()).collect();
            let want = LowRank::from_a_b(r, n_in, n_out, a.clone(), &b, 0.75);
            let got = LowRank::from_a_b_vec(r, n_in, n_out, a, b.clone(), 0.75);
            assert_eq!(got, want, "r={r} n_out={n_out}");
            assert_eq!(got.bt[n_out - 1], b[(n_out - 1) * r], "Bᵀ[0][n_out-1] = B[n_out-1][0]");
        }
    }
}
