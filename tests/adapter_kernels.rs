//! The adapter kernels (`T = X·Aᵀ` and `Y += s·diag(oscale)·T·diag(tscale)·BT`, with BT in f32 or in
//! Q8_0 rows) of every ISA against a plain f64 computation and against the scalar reference, over odd
//! sizes, padded strides, column slices at odd offsets, with and without the scales; plus the no-op
//! sizes and the length checks.
mod common;
use common::Rng;
use graft::kernels::adapter::{adapter_kernels, quantize_cols_q8_0, quantize_rows_q8_0};
use graft::kernels::{available_isas, Isa};
use half::f16;

/// Error budget of one output relative to the sum of the magnitudes of its terms (Σ|x·a| for down;
/// |y₀| + |s·oscale|·Σ|tscale·t·bt| for up). Every kernel sums at most 1537 f32 products, in its own
/// order; rounding errors behave like a random walk, about √n·2⁻²⁴·Σ|terms| = 2.3e-6·Σ|terms| at
/// n = 1537 (the largest error measured over the cases below is 3e-7·Σ|terms|), so the bound leaves
/// room while a dropped term (on average Σ|terms|/n ≥ 6.5e-4 of it) or a misplaced scale is far
/// outside it.
const TOL_REL_SUM: f64 = 1e-5;
/// A variant against the reference: both within [`TOL_REL_SUM`] of the exact value.
const TOL_VS_REF: f64 = 2.0 * TOL_REL_SUM;
/// Written into padding and around column slices; must survive every call.
const GUARD: f32 = 1234.5;

const MS: [usize; 5] = [1, 2, 3, 5, 17];
/// 600 > the SIMD variants' 256-row chunk of the folded tscale, so chunked sums are covered too.
const RS: [usize; 7] = [1, 3, 8, 16, 33, 256, 600];
const NS: [usize; 5] = [1, 7, 31, 576, 1537];
const NCOLS: [usize; 5] = [1, 5, 31, 192, 1000];

/// Checks `got[idx[i]]` against `want[i]` within `tol·bound[i]`.
fn check(got: &[f32], idx: &[usize], want: &[f64], bound: &[f64], tol: f64, what: &str) -> Result<(), String> {
    for (i, &g) in idx.iter().enumerate() {
        let err = (got[g] as f64 - want[i]).abs();
        if err.is_nan() || err > tol * bound[i] {
            return Err(format!(
                "{what}: output {i} of {}: {} vs {} (error {err:e} > {tol:e} × Σ|terms| {:e})",
                idx.len(),
                got[g],
                want[i],
                bound[i]
            ));
        }
    }
    Ok(())
}

fn guards_intact(buf: &[f32], live: &[usize], what: &str) {
    let mut is_live = vec![false; buf.len()];
    for &i in live {
        is_live[i] = true;
    }
    for (i, v) in buf.iter().enumerate() {
        assert!(is_live[i] || v.to_bits() == GUARD.to_bits(), "{what}: element {i} outside the output changed to {v}");
    }
}

/// One down-projection case: padded X, A and T.
struct Down {
    m: usize,
    r: usize,
    n: usize,
    x: Vec<f32>,
    ldx: usize,
    a: Vec<f32>,
    lda: usize,
    ldt: usize,
    /// Indices of the outputs in T, and their exact values and Σ|terms|.
    idx: Vec<usize>,
    want: Vec<f64>,
    bound: Vec<f64>,
}

impl Down {
    fn new(rng: &mut Rng, m: usize, r: usize, n: usize, pad: usize) -> Down {
        let (ldx, lda, ldt) = (n + pad, n + 2 * pad, r + pad);
        let x = rng.vec((m - 1) * ldx + n, 2.0);
        let a = rng.vec((r - 1) * lda + n, 0.5);
        let (mut idx, mut want, mut bound) = (vec![], vec![], vec![]);
        for i in 0..m {
            for j in 0..r {
                let (mut s, mut b) = (0f64, 0f64);
                for k in 0..n {
                    let p = x[i * ldx + k] as f64 * a[j * lda + k] as f64;
                    s += p;
                    b += p.abs();
                }
                idx.push(i * ldt + j);
                want.push(s);
                bound.push(b);
            }
        }
        Down { m, r, n, x, ldx, a, lda, ldt, idx, want, bound }
    }

    fn run(&self, isa: Isa, n: usize) -> Vec<f32> {
        let mut t = vec![GUARD; (self.m - 1) * self.ldt + self.r + 3];
        adapter_kernels(isa).unwrap().down(&self.x, self.ldx, self.m, &self.a, self.lda, self.r, n, &mut t, self.ldt);
        guards_intact(&t, &self.idx, &format!("{isa:?} down {}", self.name()));
        t
    }

    fn name(&self) -> String {
        format!("m={} r={} n={} ldx={} lda={} ldt={}", self.m, self.r, self.n, self.ldx, self.lda, self.ldt)
    }
}

/// One up-projection case: T, BT and Y padded, and BT, oscale and Y taken from column `off` on.
struct Up {
    m: usize,
    r: usize,
    ncols: usize,
    off: usize,
    t: Vec<f32>,
    ldt: usize,
    tscale: Option<Vec<f32>>,
    bt: Vec<f32>,
    ldb: usize,
    oscale: Option<Vec<f32>>,
    s: f32,
    y0: Vec<f32>,
    ldy: usize,
    idx: Vec<usize>,
    want: Vec<f64>,
    bound: Vec<f64>,
}

impl Up {
    #[allow(clippy::too_many_arguments)]
    fn new(rng: &mut Rng, m: usize, r: usize, ncols: usize, off: usize, pad: usize, tscale: bool, oscale: bool) -> Up {
        let (ldt, ldb, ldy) = (r + pad, off + ncols + pad, off + ncols + 2 * pad);
        let t = rng.vec((m - 1) * ldt + r, 3.0);
        let bt = rng.vec((r - 1) * ldb + off + ncols, 0.5);
        let tscale = tscale.then(|| rng.vec(r, 1.5));
        let oscale = oscale.then(|| rng.vec(off + ncols + 2, 2.0));
        let s = 0.75;
        let mut y0 = vec![GUARD; (m - 1) * ldy + off + ncols + 5];
        let (mut idx, mut want, mut bound) = (vec![], vec![], vec![]);
        for i in 0..m {
            for c in 0..ncols {
                let (mut acc, mut b) = (0f64, 0f64);
                for j in 0..r {
                    let ts = tscale.as_ref().map_or(1.0, |v| v[j] as f64);
                    let p = ts * t[i * ldt + j] as f64 * bt[j * ldb + off + c] as f64;
                    acc += p;
                    b += p.abs();
                }
                let g = s as f64 * oscale.as_ref().map_or(1.0, |v| v[off + c] as f64);
                let yi = i * ldy + off + c;
                y0[yi] = rng.f32() * 4.0;
                idx.push(yi);
                want.push(y0[yi] as f64 + g * acc);
                bound.push((y0[yi] as f64).abs() + g.abs() * b);
            }
        }
        Up { m, r, ncols, off, t, ldt, tscale, bt, ldb, oscale, s, y0, ldy, idx, want, bound }
    }

    fn run_with(&self, isa: Isa, tscale: Option<&[f32]>) -> Vec<f32> {
        let mut y = self.y0.clone();
        adapter_kernels(isa).unwrap().up(
            &self.t,
            self.ldt,
            self.m,
            self.r,
            tscale,
            &self.bt[self.off..],
            self.ldb,
            self.ncols,
            self.oscale.as_ref().map(|v| &v[self.off..]),
            self.s,
            &mut y[self.off..],
            self.ldy,
        );
        guards_intact(&y, &self.idx, &format!("{isa:?} up {}", self.name()));
        y
    }

    fn run(&self, isa: Isa) -> Vec<f32> {
        self.run_with(isa, self.tscale.as_deref())
    }

    fn name(&self) -> String {
        format!(
            "m={} r={} ncols={} off={} ldt={} ldb={} ldy={} tscale={} oscale={}",
            self.m,
            self.r,
            self.ncols,
            self.off,
            self.ldt,
            self.ldb,
            self.ldy,
            self.tscale.is_some(),
            self.oscale.is_some()
        )
    }
}

#[test]
fn down_matches_f64_and_reference() {
    let mut rng = Rng(0x5eed_0001);
    let mut case = 0usize;
    for &m in &MS {
        for &r in &RS {
            for &n in &NS {
                let d = Down::new(&mut rng, m, r, n, [0, 3, 16][case % 3]);
                case += 1;
                let want_ref = d.run(Isa::Ref, n);
                check(&want_ref, &d.idx, &d.want, &d.bound, TOL_REL_SUM, &format!("Ref down {}", d.name())).unwrap();
                let ref_as_f64: Vec<f64> = d.idx.iter().map(|&i| want_ref[i] as f64).collect();
                for isa in available_isas().into_iter().filter(|i| *i != Isa::Ref) {
                    let got = d.run(isa, n);
                    let what = format!("{isa:?} down {}", d.name());
                    check(&got, &d.idx, &d.want, &d.bound, TOL_REL_SUM, &what).unwrap();
                    check(&got, &d.idx, &ref_as_f64, &d.bound, TOL_VS_REF, &format!("{what} (vs ref)")).unwrap();
                }
            }
        }
    }
}

#[test]
fn up_matches_f64_and_reference() {
    let mut rng = Rng(0x5eed_0002);
    let mut case = 0usize;
    for &m in &MS {
        for &r in &RS {
            for &ncols in &NCOLS {
                for (ts, os) in [(false, false), (true, false), (false, true), (true, true)] {
                    // Column slices start at 0, 1, 3 or 13 columns in; strides are padded by 0, 5 or 8.
                    let u = Up::new(&mut rng, m, r, ncols, [0, 1, 3, 13][case % 4], [0, 5, 8][case % 3], ts, os);
                    case += 1;
                    let want_ref = u.run(Isa::Ref);
                    check(&want_ref, &u.idx, &u.want, &u.bound, TOL_REL_SUM, &format!("Ref up {}", u.name())).unwrap();
                    let ref_as_f64: Vec<f64> = u.idx.iter().map(|&i| want_ref[i] as f64).collect();
                    for isa in available_isas().into_iter().filter(|i| *i != Isa::Ref) {
                        let got = u.run(isa);
                        let what = format!("{isa:?} up {}", u.name());
                        check(&got, &u.idx, &u.want, &u.bound, TOL_REL_SUM, &what).unwrap();
                        check(&got, &u.idx, &ref_as_f64, &u.bound, TOL_VS_REF, &format!("{what} (vs ref)")).unwrap();
                    }
                }
            }
        }
    }
}

/// The checks above can fail: a kernel that drops the last term of each sum, skips tscale, or is off
/// by a small fraction in one output is caught by the same comparison and tolerance.
#[test]
fn the_comparison_catches_wrong_values() {
    let mut rng = Rng(0x5eed_0003);
    for isa in available_isas() {
        for &n in &[7usize, 576, 1537] {
            let d = Down::new(&mut rng, 5, 33, n, 3);
            let short = d.run(isa, n - 1);
            assert!(check(&short, &d.idx, &d.want, &d.bound, TOL_REL_SUM, "").is_err(), "{isa:?}: a dropped k = n - 1 passed (n={n})");
            let mut good = d.run(isa, n);
            check(&good, &d.idx, &d.want, &d.bound, TOL_REL_SUM, "").unwrap();
            let k = d.idx[d.idx.len() / 2];
            let i = d.idx.len() / 2;
            good[k] += (5.0 * TOL_REL_SUM * d.bound[i]) as f32;
            assert!(check(&good, &d.idx, &d.want, &d.bound, TOL_REL_SUM, "").is_err(), "{isa:?}: a wrong value passed");
        }
        let u = Up::new(&mut rng, 5, 16, 31, 3, 5, true, true);
        let without = u.run_with(isa, None);
        assert!(check(&without, &u.idx, &u.want, &u.bound, TOL_REL_SUM, "").is_err(), "{isa:?}: ignoring tscale passed");
        let ones = vec![1.0f32; u.r];
        let unit = u.run_with(isa, Some(&ones));
        let want_unit: Vec<f64> = u.idx.iter().map(|&i| without[i] as f64).collect();
        check(&unit, &u.idx, &want_unit, &u.bound, TOL_VS_REF, "tscale of ones").unwrap();
    }
}

#[test]
fn empty_sizes_touch_nothing_and_n0_writes_zeros() {
    for isa in available_isas() {
        let k = adapter_kernels(isa).unwrap();
        let mut t = vec![GUARD; 8];
        k.down(&[], 0, 0, &[1.0; 4], 4, 1, 4, &mut t, 4);
        k.down(&[1.0; 4], 4, 1, &[], 0, 0, 4, &mut t, 4);
        assert!(t.iter().all(|v| *v == GUARD), "{isa:?}: m or r = 0 wrote");
        // n = 0: T = 0, with x and a empty.
        k.down(&[], 0, 2, &[], 0, 3, 0, &mut t, 4);
        assert_eq!(&t[..7], &[0.0, 0.0, 0.0, GUARD, 0.0, 0.0, 0.0], "{isa:?}: n = 0");
        let mut y = vec![GUARD; 8];
        k.up(&[], 0, 0, 3, None, &[1.0; 3], 1, 1, None, 1.0, &mut y, 1);
        k.up(&[], 0, 2, 0, None, &[], 0, 4, None, 1.0, &mut y, 4);
        k.up(&[1.0; 3], 3, 1, 3, Some(&[1.0; 3]), &[], 0, 0, Some(&[]), 1.0, &mut y, 0);
        assert!(y.iter().all(|v| *v == GUARD), "{isa:?}: m, r or ncols = 0 wrote");
    }
}

#[test]
#[should_panic(expected = "adapter down: t holds 7 floats")]
fn down_refuses_a_short_t() {
    let mut t = vec![0.0; 7];
    adapter_kernels(Isa::Ref).unwrap().down(&[1.0; 6], 3, 2, &[1.0; 12], 3, 4, 3, &mut t, 4);
}

#[test]
#[should_panic(expected = "adapter down: a holds 11 floats")]
fn down_refuses_a_short_a() {
    let mut t = vec![0.0; 8];
    adapter_kernels(Isa::Ref).unwrap().down(&[1.0; 6], 3, 2, &[1.0; 11], 3, 4, 3, &mut t, 4);
}

#[test]
#[should_panic(expected = "adapter up: bt holds 9 floats")]
fn up_refuses_a_short_bt() {
    let mut y = vec![0.0; 10];
    adapter_kernels(Isa::Ref).unwrap().up(&[1.0; 4], 2, 2, 2, None, &[1.0; 9], 5, 5, None, 1.0, &mut y, 5);
}

#[test]
#[should_panic(expected = "adapter up: oscale holds 3 floats, ncols = 4")]
fn up_refuses_a_short_oscale() {
    let mut y = vec![0.0; 8];
    adapter_kernels(Isa::Ref).unwrap().up(&[1.0; 4], 2, 2, 2, None, &[1.0; 8], 4, 4, Some(&[1.0; 3]), 1.0, &mut y, 4);
}

#[test]
#[should_panic(expected = "adapter up: stride of y (3) is less than its row width (4)")]
fn up_refuses_overlapping_rows_of_y() {
    let mut y = vec![0.0; 8];
    adapter_kernels(Isa::Ref).unwrap().up(&[1.0; 4], 2, 2, 2, None, &[1.0; 8], 4, 4, None, 1.0, &mut y, 3);
}

#[test]
fn selected_table_is_an_available_isa() {
    let sel = graft::kernels::adapter::selected();
    assert!(available_isas().contains(&sel.isa));
}

// ---- up over Q8_0 rows of BT ----------------------------------------------------------------------

/// Bytes of a Q8_0 block.
const Q8: usize = 34;
/// An f16 NaN: written as the scale of every block a call must not read, and over the row padding.
const NAN_F16: [u8; 2] = [0xff, 0x7f];

/// One up-projection case over Q8_0 rows: BT (r × n_out) quantized, rows padded to `bt_stride` bytes,
/// every block outside the column range [c0, c0 + ncols) given a NaN scale, and the slice cut right
/// after the last block the call may read; Y a column slice at `yoff` with padded rows.
struct UpQ8 {
    m: usize,
    r: usize,
    n_out: usize,
    c0: usize,
    ncols: usize,
    t: Vec<f32>,
    ldt: usize,
    tscale: Option<Vec<f32>>,
    bt: Vec<u8>,
    bt_stride: usize,
    oscale: Option<Vec<f32>>,
    s: f32,
    yoff: usize,
    y0: Vec<f32>,
    ldy: usize,
    idx: Vec<usize>,
    want: Vec<f64>,
    bound: Vec<f64>,
}

impl UpQ8 {
    #[allow(clippy::too_many_arguments)]
    fn new(rng: &mut Rng, m: usize, r: usize, n_out: usize, c0: usize, ncols: usize, pad: usize, tscale: bool, oscale: bool) -> UpQ8 {
        let (ldt, yoff) = (r + pad, pad / 2);
        let ldy = yoff + ncols + 2 * pad;
        let t = rng.vec((m - 1) * ldt + r, 3.0);
        let tscale = tscale.then(|| rng.vec(r, 1.5));
        // oscale[c] scales column c0 + c, so the kernel gets it from c0 on, like y.
        let oscale = oscale.then(|| rng.vec(ncols + 2, 2.0));
        let s = 0.75;
        let f = rng.vec(r * n_out, 0.5);
        let dense = quantize_rows_q8_0(&f, r, n_out);
        let row = n_out / 32 * Q8;
        assert_eq!(dense.len(), r * row);
        // Rows padded by 0, 3 or 39 bytes (more than a block).
        let bt_stride = row + [0, 3, Q8 + 5][pad % 3];
        let (b_first, b_last) = (c0 / 32, (c0 + ncols - 1) / 32);
        let mut bt = vec![0xffu8; r * bt_stride];
        for j in 0..r {
            bt[j * bt_stride..j * bt_stride + row].copy_from_slice(&dense[j * row..(j + 1) * row]);
            for b in (0..n_out / 32).filter(|b| *b < b_first || *b > b_last) {
                bt[j * bt_stride + b * Q8..][..2].copy_from_slice(&NAN_F16);
            }
        }
        bt.truncate((r - 1) * bt_stride + (b_last + 1) * Q8);
        let deq = |j: usize, col: usize| -> f64 {
            let blk = &bt[j * bt_stride + col / 32 * Q8..];
            f16::from_bits(u16::from_le_bytes([blk[0], blk[1]])).to_f64() * blk[2 + col % 32] as i8 as f64
        };
        let mut y0 = vec![GUARD; (m - 1) * ldy + yoff + ncols + 5];
        let (mut idx, mut want, mut bound) = (vec![], vec![], vec![]);
        for i in 0..m {
            for c in 0..ncols {
                let (mut acc, mut b) = (0f64, 0f64);
                for j in 0..r {
                    let ts = tscale.as_ref().map_or(1.0, |v| v[j] as f64);
                    let p = ts * t[i * ldt + j] as f64 * deq(j, c0 + c);
                    acc += p;
                    b += p.abs();
                }
                let g = s as f64 * oscale.as_ref().map_or(1.0, |v| v[c] as f64);
                let yi = i * ldy + yoff + c;
                y0[yi] = rng.f32() * 4.0;
                idx.push(yi);
                want.push(y0[yi] as f64 + g * acc);
                bound.push((y0[yi] as f64).abs() + g.abs() * b);
            }
        }
        UpQ8 { m, r, n_out, c0, ncols, t, ldt, tscale, bt, bt_stride, oscale, s, yoff, y0, ldy, idx, want, bound }
    }

    /// Runs `isa` over the first `r` rows of BT from column `c0` (self.r and self.c0 for the real
    /// thing) with this tscale.
    fn run_with(&self, isa: Isa, r: usize, tscale: Option<&[f32]>, c0: usize) -> Vec<f32> {
        let mut y = self.y0.clone();
        adapter_kernels(isa).unwrap().up_q8_0(
            &self.t,
            self.ldt,
            self.m,
            r,
            tscale,
            &self.bt,
            self.bt_stride,
            c0,
            self.ncols,
            self.oscale.as_deref(),
            self.s,
            &mut y[self.yoff..],
            self.ldy,
        );
        guards_intact(&y, &self.idx, &format!("{isa:?} up_q8_0 {}", self.name()));
        y
    }

    fn run(&self, isa: Isa) -> Vec<f32> {
        self.run_with(isa, self.r, self.tscale.as_deref(), self.c0)
    }

    fn name(&self) -> String {
        format!(
            "m={} r={} n_out={} c0={} ncols={} ldt={} bt_stride={} ldy={} tscale={} oscale={}",
            self.m,
            self.r,
            self.n_out,
            self.c0,
            self.ncols,
            self.ldt,
            self.bt_stride,
            self.ldy,
            self.tscale.is_some(),
            self.oscale.is_some()
        )
    }
}

/// The column ranges of a case: from c0 to the end of the row, stopping in the middle of a later
/// block (or of c0's own), and a few columns inside c0's block.
fn q8_ranges(n_out: usize, c0: usize) -> Vec<usize> {
    let mut v = vec![n_out - c0];
    let mut end = c0 + 1 + (n_out - c0 - 1) * 2 / 3;
    if end % 32 == 0 {
        end -= 1;
    }
    if end > c0 {
        v.push(end - c0);
    }
    v.push((32 - c0 % 32).min(3));
    v.sort_unstable();
    v.dedup();
    v
}

#[test]
fn up_q8_0_matches_f64_and_reference() {
    let mut rng = Rng(0x5eed_0004);
    let mut case = 0usize;
    for &m in &[1usize, 2, 3, 5, 9] {
        for &r in &[1usize, 3, 16, 33, 256] {
            for &n_out in &[32usize, 64, 576, 1536] {
                for &c0 in [0usize, 1, 17, 31, 32, 45].iter().filter(|c| **c < n_out) {
                    for ncols in q8_ranges(n_out, c0) {
                        let (ts, os) = [(false, false), (true, false), (false, true), (true, true)][case % 4];
                        let u = UpQ8::new(&mut rng, m, r, n_out, c0, ncols, case % 5 * 3, ts, os);
                        case += 1;
                        let want_ref = u.run(Isa::Ref);
                        check(&want_ref, &u.idx, &u.want, &u.bound, TOL_REL_SUM, &format!("Ref up_q8_0 {}", u.name())).unwrap();
                        let ref_as_f64: Vec<f64> = u.idx.iter().map(|&i| want_ref[i] as f64).collect();
                        for isa in available_isas().into_iter().filter(|i| *i != Isa::Ref) {
                            let got = u.run(isa);
                            let what = format!("{isa:?} up_q8_0 {}", u.name());
                            check(&got, &u.idx, &u.want, &u.bound, TOL_REL_SUM, &what).unwrap();
                            check(&got, &u.idx, &ref_as_f64, &u.bound, TOL_VS_REF, &format!("{what} (vs ref)")).unwrap();
                        }
                    }
                }
            }
        }
    }
}

/// r above the SIMD variants' 256-row chunk of the folded tscale: the sum reaches y in chunks.
#[test]
fn up_q8_0_long_sums_in_chunks() {
    let mut rng = Rng(0x5eed_0005);
    for (m, c0, ncols) in [(1usize, 5usize, 300usize), (4, 0, 576), (6, 33, 200)] {
        let u = UpQ8::new(&mut rng, m, 600, 576, c0, ncols, 4, true, true);
        let want_ref = u.run(Isa::Ref);
        check(&want_ref, &u.idx, &u.want, &u.bound, TOL_REL_SUM, &format!("Ref up_q8_0 {}", u.name())).unwrap();
        for isa in available_isas() {
            check(&u.run(isa), &u.idx, &u.want, &u.bound, TOL_REL_SUM, &format!("{isa:?} up_q8_0 {}", u.name())).unwrap();
        }
    }
}

/// The checks above can fail: dropping the last row of BT, ignoring tscale, reading the columns one
/// off, or a small error in one output is caught by the same comparison and tolerance.
#[test]
fn up_q8_0_comparison_catches_wrong_values() {
    let mut rng = Rng(0x5eed_0006);
    for isa in available_isas() {
        for (m, r, c0, ncols) in [(1usize, 16usize, 17usize, 100usize), (5, 33, 33, 64), (3, 256, 1, 575)] {
            let u = UpQ8::new(&mut rng, m, r, 576, c0, ncols, 3, true, true);
            let short = u.run_with(isa, r - 1, u.tscale.as_deref(), c0);
            assert!(check(&short, &u.idx, &u.want, &u.bound, TOL_REL_SUM, "").is_err(), "{isa:?}: a dropped row j = r - 1 passed");
            let without = u.run_with(isa, r, None, c0);
            assert!(check(&without, &u.idx, &u.want, &u.bound, TOL_REL_SUM, "").is_err(), "{isa:?}: ignoring tscale passed");
            // The same call one column to the left: every output reads its neighbour's quants.
            // (c0 - 1 stays in c0's block here, whose scales are finite.)
            let shifted = u.run_with(isa, r, u.tscale.as_deref(), c0 - 1);
            assert!(check(&shifted, &u.idx, &u.want, &u.bound, TOL_REL_SUM, "").is_err(), "{isa:?}: columns one off passed");
            let mut good = u.run(isa);
            check(&good, &u.idx, &u.want, &u.bound, TOL_REL_SUM, "").unwrap();
            let i = u.idx.len() / 2;
            good[u.idx[i]] += (5.0 * TOL_REL_SUM * u.bound[i]) as f32;
            assert!(check(&good, &u.idx, &u.want, &u.bound, TOL_REL_SUM, "").is_err(), "{isa:?}: a wrong value passed");
        }
    }
}

/// Threads splitting the columns at any point (inside blocks too), through `up_q8_0_raw`, get what one
/// call gets.
#[test]
fn up_q8_0_raw_column_split_matches_one_call() {
    let mut rng = Rng(0x5eed_0007);
    for isa in available_isas() {
        let k = adapter_kernels(isa).unwrap();
        for m in [1usize, 6] {
            let u = UpQ8::new(&mut rng, m, 16, 576, 0, 576, 2, true, true);
            let whole = u.run(isa);
            let mut y = u.y0.clone();
            let base = y[u.yoff..].as_mut_ptr() as usize;
            std::thread::scope(|sc| {
                for (a, b) in [(0usize, 45usize), (45, 300), (300, 301), (301, 576)] {
                    let u = &u;
                    sc.spawn(move || {
                        let os = u.oscale.as_deref().map(|v| &v[a..]);
                        // SAFETY: each thread writes columns [a, b) of y's m rows (ldy >= 576), all
                        // inside y, and the ranges are disjoint; y outlives the scope.
                        unsafe {
                            k.up_q8_0_raw(&u.t, u.ldt, u.m, u.r, u.tscale.as_deref(), &u.bt, u.bt_stride, a, b - a, os, u.s, (base as *mut f32).add(a), u.ldy)
                        };
                    });
                }
            });
            guards_intact(&y, &u.idx, &format!("{isa:?} up_q8_0_raw split"));
            let whole_f64: Vec<f64> = u.idx.iter().map(|&i| whole[i] as f64).collect();
            check(&y, &u.idx, &whole_f64, &u.bound, TOL_VS_REF, &format!("{isa:?} up_q8_0_raw split m={m}")).unwrap();
            // And bit for bit, as the header promises (an output does not depend on c0 or ncols).
            for &i in &u.idx {
                assert_eq!(y[i].to_bits(), whole[i].to_bits(), "{isa:?} up_q8_0_raw split m={m}: y[{i}] {} vs {}", y[i], whole[i]);
            }
        }
    }
}

#[test]
fn quantize_rows_q8_0_layout_and_rounding() {
    let mut rng = Rng(0x5eed_0008);
    let (rows, cols) = (3usize, 96usize);
    let x = rng.vec(rows * cols, 2.0);
    let q = quantize_rows_q8_0(&x, rows, cols);
    assert_eq!(q.len(), rows * cols / 32 * Q8);
    for (i, &v) in x.iter().enumerate() {
        let blk = &q[i / 32 * Q8..];
        let d = f16::from_bits(u16::from_le_bytes([blk[0], blk[1]])).to_f32();
        let amax = x[i / 32 * 32..][..32].iter().fold(0f32, |a, v| a.max(v.abs()));
        assert!((d - amax / 127.0).abs() <= amax / 127.0 * 1e-3, "block {}: scale {d} for max {amax}", i / 32);
        let err = (d * blk[2 + i % 32] as i8 as f32 - v).abs();
        assert!(err <= 0.5 * d + amax * 2e-3, "x[{i}] = {v}: error {err} with scale {d}");
    }
    assert!(quantize_rows_q8_0(&[], 0, 64).is_empty());
}

/// Quantizing the columns of a matrix gives the bytes of quantizing the rows of its transpose,
/// over odd column counts and several runs of 32 rows.
#[test]
fn quantize_cols_q8_0_is_rows_of_the_transpose() {
    let mut rng = Rng(0x5eed_0009);
    for &(rows, cols) in &[(32usize, 1usize), (32, 17), (96, 3), (64, 16), (160, 5)] {
        let x = rng.vec(rows * cols, 3.0);
        let mut t = vec![0f32; rows * cols];
        for i in 0..rows {
            for j in 0..cols {
                t[j * rows + i] = x[i * cols + j];
            }
        }
        assert_eq!(quantize_cols_q8_0(&x, rows, cols), quantize_rows_q8_0(&t, cols, rows), "{rows} x {cols}");
    }
    assert!(quantize_cols_q8_0(&[], 32, 0).is_empty());
}

#[test]
#[should_panic(expected = "not a whole number of Q8_0 blocks")]
fn quantize_cols_q8_0_refuses_partial_blocks() {
    quantize_cols_q8_0(&[0.0; 40], 20, 2);
}

#[test]
#[should_panic(expected = "not a whole number of Q8_0 blocks")]
fn quantize_rows_q8_0_refuses_partial_blocks() {
    quantize_rows_q8_0(&[0.0; 40], 1, 40);
}

#[test]
fn up_q8_0_empty_sizes_touch_nothing() {
    let bt = quantize_rows_q8_0(&[0.5; 64], 2, 32);
    for isa in available_isas() {
        let k = adapter_kernels(isa).unwrap();
        let mut y = vec![GUARD; 8];
        k.up_q8_0(&[], 0, 0, 2, None, &bt, 34, 0, 4, None, 1.0, &mut y, 4);
        k.up_q8_0(&[1.0; 4], 2, 2, 0, None, &[], 0, 0, 4, None, 1.0, &mut y, 4);
        k.up_q8_0(&[1.0; 4], 2, 2, 2, None, &bt, 34, 5, 0, Some(&[]), 1.0, &mut y, 0);
        assert!(y.iter().all(|v| *v == GUARD), "{isa:?}: m, r or ncols = 0 wrote");
    }
}

/// Two rows of 64 columns (2 blocks, 68 bytes) at stride 70: 138 bytes in all.
fn q8_two_rows() -> Vec<u8> {
    let q = quantize_rows_q8_0(&[0.25; 128], 2, 64);
    let mut bt = vec![0u8; 70 + 68];
    bt[..68].copy_from_slice(&q[..68]);
    bt[70..].copy_from_slice(&q[68..]);
    bt
}

#[test]
fn up_q8_0_reads_no_further_than_the_last_block() {
    // Columns 0..32 of 2 rows need only 70 + 34 bytes.
    let bt = q8_two_rows();
    let mut y = vec![0.0; 32];
    adapter_kernels(Isa::Ref).unwrap().up_q8_0(&[1.0, 1.0], 2, 1, 2, None, &bt[..104], 70, 0, 32, None, 1.0, &mut y, 32);
    assert!(y.iter().all(|v| (*v - 0.5).abs() < 0.01), "{y:?}");
}

#[test]
#[should_panic(expected = "adapter up_q8_0: bt holds 137 bytes; 2 rows of stride 70 up to column 40 need 138")]
fn up_q8_0_refuses_a_short_bt() {
    let bt = q8_two_rows();
    let mut y = vec![0.0; 8];
    adapter_kernels(Isa::Ref).unwrap().up_q8_0(&[1.0; 2], 2, 1, 2, None, &bt[..137], 70, 33, 8, None, 1.0, &mut y, 8);
}

#[test]
#[should_panic(expected = "adapter up_q8_0: stride of bt (67 bytes) is less than the 68 bytes of the Q8_0 blocks up to column 40")]
fn up_q8_0_refuses_overlapping_rows_of_bt() {
    let bt = q8_two_rows();
    let mut y = vec![0.0; 8];
    adapter_kernels(Isa::Ref).unwrap().up_q8_0(&[1.0; 2], 2, 1, 2, None, &bt, 67, 33, 8, None, 1.0, &mut y, 8);
}

#[test]
#[should_panic(expected = "adapter up_q8_0: oscale holds 7 floats, ncols = 8")]
fn up_q8_0_refuses_a_short_oscale() {
    let bt = q8_two_rows();
    let mut y = vec![0.0; 8];
    adapter_kernels(Isa::Ref).unwrap().up_q8_0(&[1.0; 2], 2, 1, 2, None, &bt, 70, 33, 8, Some(&[1.0; 7]), 1.0, &mut y, 8);
}

#[test]
#[should_panic(expected = "adapter up_q8_0: tscale holds 1 floats, r = 2")]
fn up_q8_0_refuses_a_short_tscale() {
    let bt = q8_two_rows();
    let mut y = vec![0.0; 8];
    adapter_kernels(Isa::Ref).unwrap().up_q8_0(&[1.0; 2], 2, 1, 2, Some(&[1.0]), &bt, 70, 33, 8, None, 1.0, &mut y, 8);
}

#[test]
#[should_panic(expected = "adapter up_q8_0: t holds 3 floats")]
fn up_q8_0_refuses_a_short_t() {
    let bt = q8_two_rows();
    let mut y = vec![0.0; 16];
    adapter_kernels(Isa::Ref).unwrap().up_q8_0(&[1.0; 3], 2, 2, 2, None, &bt, 70, 33, 8, None, 1.0, &mut y, 8);
}

#[test]
#[should_panic(expected = "adapter up_q8_0: y holds 15 floats")]
fn up_q8_0_refuses_a_short_y() {
    let bt = q8_two_rows();
    let mut y = vec![0.0; 15];
    adapter_kernels(Isa::Ref).unwrap().up_q8_0(&[1.0; 4], 2, 2, 2, None, &bt, 70, 33, 8, None, 1.0, &mut y, 8);
}

#[test]
#[should_panic(expected = "adapter up_q8_0: stride of y (7) is less than ncols (8)")]
fn up_q8_0_raw_refuses_overlapping_rows_of_y() {
    let bt = q8_two_rows();
    let mut y = vec![0.0; 16];
    // SAFETY: never reaches the kernel (the stride check panics first).
    unsafe { adapter_kernels(Isa::Ref).unwrap().up_q8_0_raw(&[1.0; 4], 2, 2, 2, None, &bt, 70, 33, 8, None, 1.0, y.as_mut_ptr(), 7) };
}
