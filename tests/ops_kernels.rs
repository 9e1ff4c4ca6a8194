//! Every ISA variant of the op kernels against the scalar reference, over odd sizes, with a named
//! tolerance per op; and the reference itself against f64 formulas.
mod common;
use common::Rng;
use graft::kernels::{available_isas, ops::op_kernels, Isa};
use half::f16;

const SIZES: [usize; 10] = [1, 3, 7, 8, 17, 33, 64, 129, 576, 1537];
/// RMSNorm: same double-precision sum, only the final scale multiplications may differ in order.
const TOL_RMSNORM: f32 = 2e-6;
/// SiLU-gate and softmax use a vectorised exp (Cephes polynomial, about 1 ulp) instead of libm's.
const TOL_EXP: f32 = 4e-6;
/// f16 dot: f32 accumulation in another order than the reference's double sum.
const TOL_DOT_F16: f32 = 1e-5;
/// RoPE: identical sines and cosines, FMA instead of separate multiply-add.
const TOL_ROPE: f32 = 2e-6;

fn close(a: &[f32], b: &[f32], tol: f32, what: &str) {
    assert_eq!(a.len(), b.len());
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        let err = (x - y).abs() / (1.0f32).max(y.abs());
        assert!(err <= tol, "{what}: element {i} of {}: {x} vs {y} (rel err {err:e} > {tol:e})", a.len());
    }
}

fn variants() -> Vec<Isa> {
    available_isas().into_iter().filter(|i| *i != Isa::Ref).collect()
}

#[test]
fn reference_matches_f64_formulas() {
    let r = op_kernels(Isa::Ref).unwrap();
    let mut rng = Rng(7);
    for &n in &SIZES {
        let x = rng.vec(n, 3.0);
        let w = rng.vec(n, 1.0);
        let mut y = vec![0.0; n];
        r.rmsnorm(&x, Some(&w), &mut y, 1e-5);
        let ms = x.iter().map(|v| (*v as f64).powi(2)).sum::<f64>() / n as f64;
        let want: Vec<f32> = x.iter().zip(&w).map(|(a, b)| (*a as f64 / (ms + 1e-5).sqrt() * *b as f64) as f32).collect();
        close(&y, &want, 1e-6, "rmsnorm ref");

        let mut s = x.clone();
        r.softmax(&mut s);
        let m = x.iter().cloned().fold(f32::MIN, f32::max) as f64;
        let z: f64 = x.iter().map(|v| (*v as f64 - m).exp()).sum();
        let want: Vec<f32> = x.iter().map(|v| ((*v as f64 - m).exp() / z) as f32).collect();
        close(&s, &want, 1e-6, "softmax ref");

        let mut g = x.clone();
        r.silu_gate(&mut g, &w);
        let want: Vec<f32> = x.iter().zip(&w).map(|(g, u)| (*g as f64 / (1.0 + (-*g as f64).exp()) * *u as f64) as f32).collect();
        close(&g, &want, 1e-6, "silu_gate ref");
    }
}

#[test]
fn f16_conversion_reference_is_exact() {
    let r = op_kernels(Isa::Ref).unwrap();
    // Every half value round-trips, and f32 -> f16 rounds as the `half` crate does (nearest even).
    let all: Vec<f16> = (0..=u16::MAX).map(f16::from_bits).collect();
    let mut f = vec![0.0f32; all.len()];
    r.f16_to_f32(&all, &mut f);
    for (h, v) in all.iter().zip(&f) {
        assert!(h.to_f32().to_bits() == v.to_bits() || (h.is_nan() && v.is_nan()), "{:#x}", h.to_bits());
    }
    let mut rng = Rng(3);
    let mut xs: Vec<f32> = (0..100_000).map(|i| rng.f32() * 10f32.powi((i % 14) - 9)).collect();
    xs.extend([65504.0, 65519.0, 65520.0, 1e9, -1e9, 6e-8, 3e-8, 2.98e-8, 5.96e-8, 0.0, -0.0, f32::INFINITY]);
    let mut h = vec![f16::ZERO; xs.len()];
    r.f32_to_f16(&xs, &mut h);
    for (x, got) in xs.iter().zip(&h) {
        assert_eq!(got.to_bits(), f16::from_f32(*x).to_bits(), "f32_to_f16({x:e})");
    }
}

#[test]
fn variants_match_reference() {
    let r = op_kernels(Isa::Ref).unwrap();
    for isa in variants() {
        let k = op_kernels(isa).unwrap();
        let mut rng = Rng(11);
        for &n in &SIZES {
            let x = rng.vec(n, 4.0);
            let w = rng.vec(n, 1.0);
            let (mut a, mut b) = (vec![0.0; n], vec![0.0; n]);
            r.rmsnorm(&x, Some(&w), &mut a, 1e-5);
            k.rmsnorm(&x, Some(&w), &mut b, 1e-5);
            close(&b, &a, TOL_RMSNORM, &format!("{isa:?} rmsnorm n={n}"));
            r.rmsnorm(&x, None, &mut a, 1e-6);
            k.rmsnorm(&x, None, &mut b, 1e-6);
            close(&b, &a, TOL_RMSNORM, &format!("{isa:?} rmsnorm (no weight) n={n}"));

            let big = rng.vec(n, 30.0);
            let (mut a, mut b) = (big.clone(), big.clone());
            r.silu_gate(&mut a, &w);
            k.silu_gate(&mut b, &w);
            close(&b, &a, TOL_EXP, &format!("{isa:?} silu_gate n={n}"));

            let (mut a, mut b) = (big.clone(), big.clone());
            r.softmax(&mut a);
            k.softmax(&mut b);
            close(&b, &a, TOL_EXP, &format!("{isa:?} softmax n={n}"));

            let ha: Vec<f16> = x.iter().map(|v| f16::from_f32(*v)).collect();
            let hb: Vec<f16> = w.iter().map(|v| f16::from_f32(*v)).collect();
            let (da, db) = (r.dot_f16(&ha, &hb), k.dot_f16(&ha, &hb));
            let scale = (n as f32).sqrt().max(1.0);
            assert!((da - db).abs() <= TOL_DOT_F16 * scale * 4.0, "{isa:?} dot_f16 n={n}: {db} vs {da}");

            let (mut a, mut b) = (w.clone(), w.clone());
            r.axpy_f16(0.37, &ha, &mut a);
            k.axpy_f16(0.37, &ha, &mut b);
            close(&b, &a, 1e-6, &format!("{isa:?} axpy_f16 n={n}"));

            let (mut ca, mut cb) = (vec![f16::ZERO; n], vec![f16::ZERO; n]);
            r.f32_to_f16(&big, &mut ca);
            k.f32_to_f16(&big, &mut cb);
            assert_eq!(ca, cb, "{isa:?} f32_to_f16 n={n}");
            let (mut fa, mut fb) = (vec![0.0; n], vec![0.0; n]);
            r.f16_to_f32(&ca, &mut fa);
            k.f16_to_f32(&ca, &mut fb);
            assert_eq!(fa, fb, "{isa:?} f16_to_f32 n={n}");
        }
        for &(heads, hd, rot) in &[(1, 64, 64), (3, 64, 64), (9, 64, 32), (2, 128, 128), (5, 48, 48), (2, 18, 18)] {
            for &pos in &[0usize, 1, 17, 511, 8191] {
                for &neox in &[false, true] {
                    for &inv in &[false, true] {
                        let x = rng.vec(heads * hd, 2.0);
                        let (mut a, mut b) = (x.clone(), x.clone());
                        r.rope(&mut a, heads, hd, rot, pos, 1e5, neox, inv);
                        k.rope(&mut b, heads, hd, rot, pos, 1e5, neox, inv);
                        close(&b, &a, TOL_ROPE, &format!("{isa:?} rope heads={heads} hd={hd} rot={rot} pos={pos}"));
                    }
                }
            }
        }
    }
}

#[test]
fn rope_inverse_undoes_rope() {
    for isa in available_isas() {
        let k = op_kernels(isa).unwrap();
        let mut rng = Rng(5);
        let x = rng.vec(9 * 64, 1.0);
        let mut y = x.clone();
        k.rope(&mut y, 9, 64, 64, 123, 1e5, false, false);
        assert!(y.iter().zip(&x).any(|(a, b)| (a - b).abs() > 1e-3), "rope did nothing");
        k.rope(&mut y, 9, 64, 64, 123, 1e5, false, true);
        close(&y, &x, 1e-5, &format!("{isa:?} rope inverse"));
    }
}
