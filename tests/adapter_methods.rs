//! Every adapter method module against its own math: the runtime term it folds into reproduces
//! the method's dense `ΔW` (f64), its parameters round-trip through save/load bit for bit, load
//! refuses missing / misshapen / non-finite tensors naming them, and trainable counts match
//! ADAPTERS.md's table at 2048², r=16.
//!
//! Fold tolerance: the terms are f32, so a fold that multiplies factors (`B·R`, `kron(w1, w2_a)`,
//! `λ⊙Â⊙γ`, ...) rounds each folded value once (2⁻²⁴ ≈ 6e-8 relative). Realistic values are
//! therefore checked at 1e-6 relative to `max |ΔW|` (a wrong index or pairing gives O(1)), and
//! every method but NOLA (whose generated bases are not short dyadics) is also checked with short
//! dyadic values, where every folded product is exact in f32, at 1e-12.
use graft::adapter::methods::blocklora::BlockLoraLayer;
use graft::adapter::methods::lamda::LamdaLayer;
use graft::adapter::methods::linalg::{matmul, svd};
use graft::adapter::methods::lokr::{LokrLayer, LokrW1, LokrW2};
use graft::adapter::methods::loldu::LolduLayer;
use graft::adapter::methods::loraxs::LoraXsLayer;
use graft::adapter::methods::lorta::{LortaLayer, LortaShared};
use graft::adapter::methods::miss::MissLayer;
use graft::adapter::methods::nola::NolaLayer;
use graft::adapter::methods::randlora::{RandLoraLayer, RandLoraShared};
use graft::adapter::methods::{Hyper, LayerMethod, Tensors};
use graft::adapter::rng::{Mt19937, Rounding};
use graft::adapter::Term;
use std::fmt::Debug;
use std::sync::Arc;

const NI: usize = 12;
const NO: usize = 20;
const PREFIX: &str = "blk.3.attn_q";
const FILE: &str = "test.graft";
const SEEDS: [u32; 3] = [0, 7, 12345];

fn w0(m: usize, n: usize, seed: u32) -> Vec<f64> {
    let mut r = Mt19937::new(seed ^ 0x5EED);
    (0..m * n).map(|_| r.normal() as f32 as f64).collect()
}

fn normal(rng: &mut Mt19937, n: usize, std: f64) -> Vec<f32> {
    rng.normal_vec(n, 0.0, std)
}

/// Short dyadic values: ±k/8 with k in 1..=16 (5 significant bits at most, never 0).
fn dyadic(rng: &mut Mt19937, n: usize) -> Vec<f32> {
    (0..n)
        .map(|_| {
            let x = rng.next_u32();
            let k = (x % 16 + 1) as f32 / 8.0;
            if x & 0x8000_0000 != 0 {
                -k
            } else {
                k
            }
        })
        .collect()
}

fn hyper(kv: &[(&str, &str)]) -> Hyper {
    kv.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn max_abs(v: &[f64]) -> f64 {
    v.iter().fold(0.0, |m, x| m.max(x.abs()))
}

/// `max |term − dense| / max |dense|`, asserting the delta is non-trivial.
fn fold_error<M: LayerMethod>(m: &M, w0: &[f64]) -> f64 {
    let dense = m.delta_dense_f64(w0);
    assert_eq!(dense.len(), m.n_in() * m.n_out());
    let scale = max_abs(&dense);
    assert!(scale > 0.0, "{}: the test delta is zero", M::NAME);
    let t = m.to_term();
    assert_eq!((t.n_in(), t.n_out()), (m.n_in(), m.n_out()), "{}: term shape", M::NAME);
    assert!(t.all_finite());
    let got = t.delta_f64(1.0, Some(w0));
    got.iter().zip(&dense).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max) / scale
}

fn check_fold<M: LayerMethod>(m: &M, w0: &[f64], tol: f64, what: &str) {
    let e = fold_error(m, w0);
    assert!(e <= tol, "{} {what}: fold error {e:e} > {tol:e}", M::NAME);
}

/// Save, load, compare (bit-exact through the saved tensors), and return the saved tensors.
fn check_roundtrip<M: LayerMethod + PartialEq + Debug>(m: &M, h: &Hyper) -> Tensors {
    let mut t = Tensors::new();
    m.save(PREFIX, &mut t);
    let back = M::load(PREFIX, &t, h, m.n_in(), m.n_out(), FILE).unwrap_or_else(|e| panic!("{}: load failed: {e}", M::NAME));
    assert_eq!(&back, m, "{}: round trip", M::NAME);
    let mut t2 = Tensors::new();
    back.save(PREFIX, &mut t2);
    assert_eq!(t.len(), t2.len());
    for (k, (s, v)) in &t {
        let (s2, v2) = &t2[k];
        assert_eq!(s, s2, "{k}");
        assert!(v.iter().zip(v2.iter()).all(|(a, b)| a.to_bits() == b.to_bits()), "{k}: not bit-exact");
    }
    assert_eq!(back.to_term(), m.to_term());
    t
}

/// Load must refuse, naming the tensor: each tensor missing, with an extra axis, with a NaN, and
/// with `pinned` axes (fixed by the layer's size, the hyper-parameters or tensors read before)
/// one too long.
fn check_refusals<M: LayerMethod + Debug>(m: &M, h: &Hyper, pinned: &[(&str, usize)]) {
    let mut t = Tensors::new();
    m.save(PREFIX, &mut t);
    let load = |u: &Tensors| M::load(PREFIX, u, h, m.n_in(), m.n_out(), FILE);
    let expect_named = |u: &Tensors, name: &str, what: &str| match load(u) {
        Ok(_) => panic!("{}: {what} of {name} accepted", M::NAME),
        Err(e) => {
            let msg = e.to_string();
            assert!(msg.contains(name), "{}: {what} of {name}: error does not name it: {msg}", M::NAME);
        }
    };
    for name in t.keys() {
        let mut u = t.clone();
        u.remove(name);
        expect_named(&u, name, "missing");
        let mut u = t.clone();
        u.get_mut(name).unwrap().0.push(1);
        expect_named(&u, name, "extra axis");
        let mut u = t.clone();
        let v = &mut u.get_mut(name).unwrap().1;
        let mid = v.len() / 2;
        v[mid] = f32::NAN;
        expect_named(&u, name, "NaN");
        let mut u = t.clone();
        u.get_mut(name).unwrap().1[0] = f32::INFINITY;
        expect_named(&u, name, "infinity");
    }
    for &(suffix, axis) in pinned {
        let name = if suffix.starts_with("shared.") { suffix.to_string() } else { format!("{PREFIX}.{suffix}") };
        let mut u = t.clone();
        let (s, v) = u.get_mut(&name).unwrap_or_else(|| panic!("no tensor {name}"));
        s[axis] += 1;
        let mut longer = v.to_vec();
        longer.resize(s.iter().product(), 0.0);
        *v = longer.into();
        expect_named(&u, &name, &format!("axis {axis} one too long"));
    }
    // Missing hyper-parameters are refused too (every method here has a scale but MiSS).
    if h.contains_key("alpha") {
        let mut h2 = h.clone();
        h2.remove("alpha");
        let e = M::load(PREFIX, &t, &h2, m.n_in(), m.n_out(), FILE).unwrap_err().to_string();
        assert!(e.contains("alpha"), "{e}");
    }
}

// ---------------------------------------------------------------- MiSS

#[test]
fn miss() {
    let h = hyper(&[]);
    for r in 1..=5 {
        for &seed in &SEEDS {
            let mut rng = Mt19937::new(seed);
            let mut m = MissLayer::init(NI, NO, r);
            assert!(m.m.iter().all(|&v| v == 0.0));
            m.m = normal(&mut rng, r * NO, 1.0);
            let w = w0(NO, NI, seed);
            check_fold(&m, &w, 0.0, "normal values");
            assert_eq!(m.to_term().rank(), r);
            // The method's definition, entry by entry.
            let d = m.delta_dense_f64(&w);
            for o in 0..NO {
                for i in 0..NI {
                    assert_eq!(d[o * NI + i], m.m[(i % r) * NO + o] as f64);
                }
            }
            check_roundtrip(&m, &h);
        }
        let m = MissLayer { m: normal(&mut Mt19937::new(1), r * NO, 1.0), ..MissLayer::init(NI, NO, r) };
        check_refusals(&m, &h, &[("miss_block", 1)]);
    }
}

/// MiSS "bat": against PEFT's definition computed here in f64 (`W0` cut into `r×r` blocks,
/// `ΔW_ij = W0_ij·M_i + M_i`), the term's merged delta, the save/load round trip, refusals.
#[test]
fn miss_bat() {
    let h = hyper(&[]);
    for r in [1, 2, 4] {
        for &seed in &SEEDS {
            let mut m = MissLayer::init_bat(NI, NO, r);
            assert!(m.m.iter().all(|&v| v == 0.0) && m.m.len() == NO * r);
            m.m = normal(&mut Mt19937::new(seed), NO * r, 1.0);
            let w = w0(NO, NI, seed);
            let d = m.delta_dense_f64(&w);
            let mb = |i: usize, c: usize, b: usize| m.m[(i * r + c) * r + b] as f64;
            for o in 0..NO {
                for i in 0..NI {
                    let (bi, a, bj, b) = (o / r, o % r, i / r, i % r);
                    let want = (0..r).map(|c| w[o * NI + bj * r + c] * mb(bi, c, b)).sum::<f64>() + mb(bi, a, b);
                    assert!((d[o * NI + i] - want).abs() <= 1e-12 * want.abs().max(1.0), "r={r} ({o}, {i}): {} vs {want}", d[o * NI + i]);
                }
            }
            check_fold(&m, &w, 0.0, "bat");
            assert!(matches!(m.to_term(), graft::adapter::Term::MissBat(_)));
            check_roundtrip(&m, &h);
        }
        let m = MissLayer { m: normal(&mut Mt19937::new(1), NO * r, 1.0), ..MissLayer::init_bat(NI, NO, r) };
        check_refusals(&m, &h, &[("miss_block", 0), ("miss_block", 2)]);
    }
    // A block size that does not divide the widths.
    let mut t = Tensors::new();
    t.insert(format!("{PREFIX}.miss_block"), (vec![NO / 5, 5, 5], vec![0.0; NO * 5].into()));
    let err = MissLayer::load(PREFIX, &t, &h, NI, NO, FILE).unwrap_err().to_string();
    assert!(err.contains("miss_block") && err.contains(FILE), "{err}");
}

/// MiSS "mini": a `[r, mini_r]` block repeated along the outputs, `ΔW[o, i] = M[i mod r, o mod
/// mini_r]`; the width must be the announced `mini_r` and divide the outputs.
#[test]
fn miss_mini() {
    for (r, mr) in [(3, 4), (5, 10), (2, 1)] {
        let h = hyper(&[("mini_r", &mr.to_string())]);
        for &seed in &SEEDS {
            let m = MissLayer { m: normal(&mut Mt19937::new(seed), r * mr, 1.0), ..MissLayer::init(NI, NO, r) };
            assert_eq!(m.width(), mr);
            let w = w0(NO, NI, seed);
            check_fold(&m, &w, 0.0, "mini");
            let d = m.delta_dense_f64(&w);
            for o in 0..NO {
                for i in 0..NI {
                    assert_eq!(d[o * NI + i], m.m[(i % r) * mr + o % mr] as f64);
                }
            }
            check_roundtrip(&m, &h);
            // Without the announced mini_r, or with a width that does not divide the outputs.
            let mut t = Tensors::new();
            m.save(PREFIX, &mut t);
            let err = MissLayer::load(PREFIX, &t, &hyper(&[]), NI, NO, FILE).unwrap_err().to_string();
            assert!(err.contains("miss_block") && err.contains(FILE), "{err}");
        }
        let m = MissLayer { m: normal(&mut Mt19937::new(1), r * 3, 1.0), ..MissLayer::init(NI, NO, r) };
        let mut t = Tensors::new();
        m.save(PREFIX, &mut t);
        assert!(MissLayer::load(PREFIX, &t, &hyper(&[("mini_r", "3")]), NI, NO, FILE).is_err(), "3 does not divide {NO}");
    }
}

// ---------------------------------------------------------------- LoKr

fn lokr_fill(l: &mut LokrLayer, f: &mut dyn FnMut(usize) -> Vec<f32>) {
    l.w1 = match &l.w1 {
        LokrW1::Full(w) => LokrW1::Full(f(w.len())),
        LokrW1::LowRank { a, b } => LokrW1::LowRank { a: f(a.len()), b: f(b.len()) },
    };
    l.w2 = match &l.w2 {
        LokrW2::Full(w) => LokrW2::Full(f(w.len())),
        LokrW2::LowRank { a, b } => LokrW2::LowRank { a: f(a.len()), b: f(b.len()) },
    };
}

#[test]
fn lokr() {
    let h = |r: usize| hyper(&[("alpha", "6"), ("r", &r.to_string())]);
    for r in 1..=4 {
        for &seed in &SEEDS {
            let mut l = LokrLayer::init(NI, NO, r, 6.0, -1, seed);
            assert_eq!((l.out_lk, l.in_mn), ((4, 5), (3, 4)));
            // PEFT: w2 full iff r ≥ max(out_k, in_n)/2 = 2.5.
            assert_eq!(matches!(l.w2, LokrW2::Full(_)), r >= 3, "r={r}");
            assert_eq!(l.w1, LokrW1::Full(vec![0.0; 12]));
            let mut rng = Mt19937::new(seed + 1);
            l.w1 = LokrW1::Full(normal(&mut rng, 12, 1.0));
            let w = w0(NO, NI, seed);
            check_fold(&l, &w, 1e-6, "normal values");
            // Independent check of the Kronecker layout: ΔW[p·out_k+q, a·in_n+b] = s·w1[p,a]·w2[q,b].
            let (w1, w2) = (l.w1_dense_f64(), l.w2_dense_f64());
            let d = l.delta_dense_f64(&w);
            let s = l.scale as f64;
            for (o, i) in [(0usize, 0usize), (7, 5), (19, 11), (13, 2)] {
                let (p, q, a, b) = (o / 5, o % 5, i / 4, i % 4);
                let want = s * w1[p * 3 + a] * w2[q * 4 + b];
                assert!((d[o * NI + i] - want).abs() <= 1e-12 * want.abs().max(1e-30));
            }
            let mut rng = Mt19937::new(seed + 2);
            lokr_fill(&mut l, &mut |n| dyadic(&mut rng, n));
            check_fold(&l, &w, 1e-12, "dyadic values");
            if let LokrW2::LowRank { .. } = l.w2 {
                assert_eq!(l.to_term().rank(), 3 * r);
            }
            check_roundtrip(&l, &h(r));
        }
        let mut l = LokrLayer::init(NI, NO, r, 6.0, -1, 3);
        lokr_fill(&mut l, &mut |n| normal(&mut Mt19937::new(n as u32), n, 1.0));
        let pinned: &[(&str, usize)] = if r >= 3 {
            &[("lokr_w1", 0), ("lokr_w1", 1), ("lokr_w2", 0), ("lokr_w2", 1)]
        } else {
            &[("lokr_w1", 0), ("lokr_w1", 1), ("lokr_w2_a", 0), ("lokr_w2_b", 0), ("lokr_w2_b", 1)]
        };
        check_refusals(&l, &h(r), pinned);
    }
    // decompose_both: w1 = w1_a·w1_b ([4, r]·[r, 3]); with w2 factored too the fold has rank r·r.
    for r in 1..=3 {
        for &seed in &SEEDS {
            let mut l = LokrLayer::init(NI, NO, r, 6.0, -1, seed);
            l.w1 = LokrW1::LowRank { a: vec![0.0; 4 * r], b: vec![0.0; r * 3] };
            let mut rng = Mt19937::new(seed + 3);
            lokr_fill(&mut l, &mut |n| normal(&mut rng, n, 1.0));
            let w = w0(NO, NI, seed);
            check_fold(&l, &w, 1e-6, "decompose_both, normal values");
            // ΔW = s·kron(w1_a·w1_b, w2), w1 computed independently here.
            let LokrW1::LowRank { a, b } = &l.w1 else { unreachable!() };
            let w2 = l.w2_dense_f64();
            let d = l.delta_dense_f64(&w);
            for (o, i) in [(0usize, 0usize), (7, 5), (19, 11), (13, 2)] {
                let (p, q, ai, bi) = (o / 5, o % 5, i / 4, i % 4);
                let w1: f64 = (0..r).map(|j| a[p * r + j] as f64 * b[j * 3 + ai] as f64).sum();
                let want = l.scale as f64 * w1 * w2[q * 4 + bi];
                assert!((d[o * NI + i] - want).abs() <= 1e-12 * want.abs().max(1e-30));
            }
            let mut rng = Mt19937::new(seed + 4);
            lokr_fill(&mut l, &mut |n| dyadic(&mut rng, n));
            check_fold(&l, &w, 1e-12, "decompose_both, dyadic values");
            let inner2 = if r >= 3 { 4 } else { r };
            assert_eq!(l.to_term().rank(), r * inner2);
            assert_eq!(l.trainable_params(), 4 * r + 3 * r + if r >= 3 { 20 } else { 9 * r });
            check_roundtrip(&l, &h(r));
        }
        let mut l = LokrLayer::init(NI, NO, r, 6.0, -1, 3);
        l.w1 = LokrW1::LowRank { a: vec![0.0; 4 * r], b: vec![0.0; r * 3] };
        lokr_fill(&mut l, &mut |n| normal(&mut Mt19937::new(n as u32), n, 1.0));
        let pinned: &[(&str, usize)] = if r >= 3 {
            &[("lokr_w1_a", 0), ("lokr_w1_b", 0), ("lokr_w1_b", 1), ("lokr_w2", 0), ("lokr_w2", 1)]
        } else {
            &[("lokr_w1_a", 0), ("lokr_w1_b", 1), ("lokr_w2_a", 0), ("lokr_w2_b", 1)]
        };
        check_refusals(&l, &h(r), pinned);
    }
    // Another factorisation (decompose_factor) and a square layer.
    let mut l = LokrLayer::init(16, 16, 2, 2.0, 2, 9);
    assert_eq!((l.out_lk, l.in_mn), ((2, 8), (2, 8)));
    l.w1 = LokrW1::Full(normal(&mut Mt19937::new(4), 4, 1.0));
    check_fold(&l, &w0(16, 16, 1), 1e-6, "factor 2");
    check_roundtrip(&l, &hyper(&[("alpha", "2"), ("decompose_factor", "2")]));
}

// ---------------------------------------------------------------- LaMDA

#[test]
fn lamda() {
    let h = hyper(&[("alpha", "8")]);
    for r in 1..=4 {
        for &seed in &SEEDS {
            let mut l = LamdaLayer::init(NI, NO, r, 8.0, seed);
            assert!(l.b.iter().all(|&v| v == 0.0));
            assert!(l.a.iter().all(|&v| v.abs() <= (1.0 / (NI as f32).sqrt())));
            assert!(l.s.iter().all(|&v| v.abs() <= (1.0 / (r as f32).sqrt())));
            let mut rng = Mt19937::new(seed + 1);
            l.b = normal(&mut rng, NO * r, 1.0);
            let w = w0(NO, NI, seed);
            check_fold(&l, &w, 1e-6, "normal values");
            l.a = dyadic(&mut rng, l.a.len());
            l.b = dyadic(&mut rng, l.b.len());
            l.s = dyadic(&mut rng, l.s.len());
            check_fold(&l, &w, 1e-12, "dyadic values");
            check_roundtrip(&l, &h);
        }
        let mut l = LamdaLayer::init(NI, NO, r, 8.0, 5);
        l.b = normal(&mut Mt19937::new(2), NO * r, 1.0);
        check_refusals(&l, &h, &[("lora_a", 1), ("lamda_sigma", 0), ("lamda_sigma", 1), ("lora_b", 0), ("lora_b", 1)]);
    }
}

// ---------------------------------------------------------------- Block-LoRA

#[test]
fn blocklora() {
    let h = hyper(&[("alpha", "16")]);
    for (r, n) in [(1, 1), (2, 2), (3, 3), (4, 2), (4, 4), (6, 3)] {
        for &seed in &SEEDS {
            let mut l = BlockLoraLayer::init(NI, NO, r, n, 16.0, seed);
            assert_eq!((l.rb, l.n_blocks, l.r()), (r / n, n, r));
            let mut rng = Mt19937::new(seed + 1);
            l.b = normal(&mut rng, NO * r, 1.0);
            let w = w0(NO, NI, seed);
            check_fold(&l, &w, 1e-6, "normal values");
            assert_eq!(l.to_term().rank(), r / n);
            l.a_s = dyadic(&mut rng, l.a_s.len());
            l.b = dyadic(&mut rng, l.b.len());
            check_fold(&l, &w, 1e-12, "dyadic values");
            check_roundtrip(&l, &h);
        }
        let mut l = BlockLoraLayer::init(NI, NO, r, n, 16.0, 1);
        l.b = normal(&mut Mt19937::new(2), NO * r, 1.0);
        check_refusals(&l, &h, &[("blocklora_a", 1), ("blocklora_b", 0)]);
    }
}

// ---------------------------------------------------------------- LoRA-XS / LoRA-SB

#[test]
fn loraxs() {
    let h = |r: usize| hyper(&[("alpha", &r.to_string())]);
    for r in 1..=4 {
        for &seed in &SEEDS {
            let w = w0(NO, NI, seed);
            let mut l = LoraXsLayer::init_xs(&w, NI, NO, r, r as f64, seed).unwrap();
            assert_eq!(l.scale, 1.0);
            assert!(l.latent.iter().all(|&v| v.abs() < 1e-4) && l.latent.iter().any(|&v| v != 0.0));
            // B·A is the best rank-r approximation of W0: ‖W0 − BA‖² = Σ_{j ≥ r} σ_j².
            let full = svd(&w, NO, NI);
            let ba = matmul(&l.b.iter().map(|&v| v as f64).collect::<Vec<_>>(), &l.a.iter().map(|&v| v as f64).collect::<Vec<_>>(), NO, r, NI);
            let resid: f64 = w.iter().zip(&ba).map(|(x, y)| (x - y) * (x - y)).sum();
            let tail: f64 = full.s[r..].iter().map(|s| s * s).sum();
            assert!((resid - tail).abs() <= 1e-5 * w.iter().map(|x| x * x).sum::<f64>(), "r={r}: {resid} vs {tail}");
            let mut rng = Mt19937::new(seed + 1);
            l.latent = normal(&mut rng, r * r, 1.0);
            check_fold(&l, &w, 1e-6, "normal values");
            l.a = dyadic(&mut rng, l.a.len());
            l.b = dyadic(&mut rng, l.b.len());
            l.latent = dyadic(&mut rng, l.latent.len());
            check_fold(&l, &w, 1e-12, "dyadic values");
            check_roundtrip(&l, &h(r));

            // LoRA-SB: B·R·A starts as the rank-r truncation of −η·sign(G).
            let grad = w0(NO, NI, seed + 100);
            let eta = 1e-3;
            let sb = LoraXsLayer::init_sb(&grad, NI, NO, r, eta, r as f64).unwrap();
            let g: Vec<f64> = grad.iter().map(|&v| -eta * v.signum()).collect();
            let trunc = svd(&g, NO, NI);
            let mut tr = vec![0f64; NO * NI];
            for j in 0..r {
                for o in 0..NO {
                    for i in 0..NI {
                        tr[o * NI + i] += trunc.u[o * trunc.k + j] * trunc.s[j] * trunc.vt[j * NI + i];
                    }
                }
            }
            let d = sb.delta_dense_f64(&w);
            let err = d.iter().zip(&tr).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
            assert!(err <= 1e-6 * max_abs(&tr), "LoRA-SB r={r}: {err}");
            check_fold(&sb, &w, 1e-6, "LoRA-SB init");
        }
        let w = w0(NO, NI, 2);
        let mut l = LoraXsLayer::init_xs(&w, NI, NO, r, 2.0, 2).unwrap();
        l.latent = normal(&mut Mt19937::new(5), r * r, 1.0);
        check_refusals(&l, &h(r), &[("lora_a", 1), ("lora_b", 0), ("lora_b", 1), ("lora_latent", 0), ("lora_latent", 1)]);
    }
    assert!(LoraXsLayer::init_xs(&w0(NO, NI, 0), NI, NO, 13, 1.0, 0).is_err());
    // A wide layer goes through the transposed SVD.
    let w = w0(NI, NO, 4);
    let mut l = LoraXsLayer::init_xs(&w, NO, NI, 3, 3.0, 1).unwrap();
    l.latent = normal(&mut Mt19937::new(6), 9, 1.0);
    check_fold(&l, &w, 1e-6, "wide layer");
}

// ---------------------------------------------------------------- LoLDU

#[test]
fn loldu() {
    let h = hyper(&[("alpha", "1")]);
    for r in 1..=4 {
        for &seed in &SEEDS {
            let w = w0(NO, NI, seed);
            let mut l = LolduLayer::init(&w, NI, NO, r, 1.0).unwrap();
            assert_eq!(l.z, l.d);
            assert!(max_abs(&l.delta_dense_f64(&w)) <= 1e-12, "ΔW is 0 at init");
            // U_r is unit upper, P·L_r has a unit entry per column with the pivot row.
            for k in 0..r {
                assert_eq!(l.u[k * NI + k], 1.0);
                assert!((0..k).all(|i| l.u[k * NI + i] == 0.0));
                assert!((0..NO).any(|o| l.pl[o * r + k] == 1.0));
            }
            let mut rng = Mt19937::new(seed + 1);
            for (z, n) in l.z.iter_mut().zip(normal(&mut rng, r, 1.0)) {
                *z += n;
            }
            check_fold(&l, &w, 1e-6, "normal values");
            assert_eq!(l.to_term().rank(), r);
            l.pl = dyadic(&mut rng, l.pl.len());
            l.u = dyadic(&mut rng, l.u.len());
            l.d = dyadic(&mut rng, r);
            l.z = dyadic(&mut rng, r);
            l.z[0] = l.d[0] + 1.0;
            check_fold(&l, &w, 1e-12, "dyadic values");
            check_roundtrip(&l, &h);
            // A trained scale s' (LoLDU's scaling_factor): ΔW = P·L_r·diag(s'·z − s·D_r)·U_r,
            // stored as loldu_scale and read back.
            l.train_scale = true;
            l.scale_z = l.scale * 1.5;
            assert_eq!(l.trainable_params(), r + 1);
            check_fold(&l, &w, 1e-6, "trained scale");
            check_roundtrip(&l, &h);
        }
        let w = w0(NO, NI, 9);
        let mut l = LolduLayer::init(&w, NI, NO, r, 1.0).unwrap();
        l.z.iter_mut().for_each(|z| *z *= 1.5);
        check_refusals(&l, &h, &[("loldu_d", 0), ("loldu_pl", 0), ("loldu_pl", 1), ("loldu_u", 0), ("loldu_u", 1)]);
    }
    // The full factorisation reproduces W0: with r = min and s = 1, P·L·diag(D)·U = W0.
    let w = w0(NO, NI, 3);
    let l = LolduLayer::init(&w, NI, NO, NI, NI as f64).unwrap();
    let mut rec = vec![0f64; NO * NI];
    for o in 0..NO {
        for k in 0..NI {
            for i in 0..NI {
                rec[o * NI + i] += l.pl[o * NI + k] as f64 * l.d[k] as f64 * l.u[k * NI + i] as f64;
            }
        }
    }
    let err = rec.iter().zip(&w).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
    assert!(err < 1e-5 * max_abs(&w), "PLDU vs W0: {err}");
    // Rank-deficient W0 (a zero first column) is refused.
    let mut w = w0(NO, NI, 3);
    (0..NO).for_each(|o| w[o * NI] = 0.0);
    assert!(LolduLayer::init(&w, NI, NO, 2, 1.0).is_err());
}

// ---------------------------------------------------------------- NOLA

#[test]
fn nola() {
    let h = hyper(&[("alpha", "4")]);
    for r in 1..=4 {
        for &seed in &SEEDS {
            let (ka, kb) = (5, 7);
            let mut l = NolaLayer::init(NI, NO, r, ka, kb, 4.0, seed);
            assert!(l.b0.iter().all(|&v| v == 0.0) && l.coef_a.iter().chain(&l.coef_b).all(|&v| v == 0.0));
            let mut rng = Mt19937::new(seed + 1);
            l.coef_a = normal(&mut rng, ka, 1.0);
            l.coef_b = normal(&mut rng, kb, 1.0);
            let w = w0(NO, NI, seed);
            check_fold(&l, &w, 1e-6, "normal values");
            check_roundtrip(&l, &h);

            // The bases are NOLA's recipe on torch's CPU generator: one [k, out, in] uniform_(-1, 1)
            // tensor from manual_seed(seed), times 1/√k, contracted with the coefficients.
            let mut g = Mt19937::new(l.seed_b);
            let bases = g.uniform_vec(kb * NO * r, -1.0, 1.0);
            let mul = (1.0 / (kb as f64).sqrt()) as f32;
            let mut b = vec![0f64; NO * r];
            for j in 0..kb {
                for e in 0..NO * r {
                    b[e] += l.coef_b[j] as f64 * (bases[j * NO * r + e] * mul) as f64;
                }
            }
            assert_eq!(b, l.b_f64());
            // ΔW = s·B·A from the definition.
            let a = l.a_f64();
            let d = l.delta_dense_f64(&w);
            let (o, i) = (NO - 1, NI / 2);
            let want: f64 = l.scale as f64 * (0..r).map(|j| b[o * r + j] * a[j * NI + i]).sum::<f64>();
            assert!((d[o * NI + i] - want).abs() <= 1e-12 * want.abs().max(1e-30));
        }
        let mut l = NolaLayer::init(NI, NO, r, 3, 4, 4.0, 77);
        l.coef_b = normal(&mut Mt19937::new(3), 4, 1.0);
        check_refusals(&l, &h, &[("nola_a0", 1), ("nola_b0", 0), ("nola_b0", 1), ("nola_a_seed", 0), ("nola_b_seed", 0)]);
        // A seed that is not two 16-bit halves is refused.
        let mut t = Tensors::new();
        l.save(PREFIX, &mut t);
        t.get_mut(&format!("{PREFIX}.nola_a_seed")).unwrap().1[1] = 65536.0;
        assert!(NolaLayer::load(PREFIX, &t, &h, NI, NO, FILE).unwrap_err().to_string().contains("nola_a_seed"));
    }
}

// ---------------------------------------------------------------- RandLoRA

fn randlora_layers(r: usize, seed: u32, fmt: Rounding) -> Vec<RandLoraLayer> {
    // Bases sized for a 20x12 and a 12x20 (n_out x n_in) layer and one wider: max (24, 20).
    let shared = Arc::new(RandLoraShared::generate(r, 24, 20, seed, fmt));
    [(NI, NO), (NO, NI), (20, 24)]
        .iter()
        .map(|&(ni, no)| RandLoraLayer::init(shared.clone(), ni, no, 2.0 * r as f64).unwrap())
        .collect()
}

#[test]
fn randlora() {
    let h = |r: usize| hyper(&[("alpha", &(2 * r).to_string())]);
    for r in 1..=4 {
        for &seed in &SEEDS {
            for fmt in [Rounding::Bf16, Rounding::F16] {
                for mut l in randlora_layers(r, seed, fmt) {
                    let (mn, nb) = (l.n_in.min(l.n_out), l.nb());
                    assert_eq!(nb, mn.div_ceil(r));
                    assert!(l.lambda.iter().all(|&v| v == 0.0));
                    assert!(l.gamma.iter().all(|&v| v == (1.0 / nb.max(mn) as f64) as f32));
                    let mut rng = Mt19937::new(seed + 1);
                    l.lambda = normal(&mut rng, l.lambda.len(), 1.0);
                    l.gamma = normal(&mut rng, l.gamma.len(), 1.0);
                    let w = w0(l.n_out, l.n_in, seed);
                    check_fold(&l, &w, 1e-6, "normal values");
                    assert_eq!(l.to_term().rank(), r * nb);
                    check_roundtrip(&l, &h(r));
                    // Full rank: ΔW has rank min(n_in, n_out) with generic λ, γ.
                    let d = l.delta_dense_f64(&w);
                    let s = svd(&d, l.n_out, l.n_in);
                    assert!(s.s[mn - 1] > 1e-9 * s.s[0], "rank < {mn}");
                    // Dyadic check with bases replaced by dyadic values.
                    let mut sh = (*l.shared).clone();
                    sh.a = dyadic(&mut rng, sh.a.len());
                    sh.b = dyadic(&mut rng, sh.b.len());
                    l.shared = Arc::new(sh);
                    l.lambda = dyadic(&mut rng, l.lambda.len());
                    l.gamma = dyadic(&mut rng, l.gamma.len());
                    check_fold(&l, &w, 1e-12, "dyadic values");
                }
            }
        }
        let mut l = randlora_layers(r, 1, Rounding::Bf16).remove(1);
        l.lambda = normal(&mut Mt19937::new(3), l.lambda.len(), 1.0);
        check_refusals(&l, &h(r), &[("randlora_lambda", 0), ("randlora_lambda", 1), ("randlora_gamma", 0), ("randlora_gamma", 1), ("shared.randlora_a", 1), ("shared.randlora_b", 2)]);
    }
    // A layer larger than the bases is refused.
    let shared = Arc::new(RandLoraShared::generate(4, 20, 12, 0, Rounding::Bf16));
    assert!(RandLoraLayer::init(shared.clone(), 16, 20, 8.0).is_err());
    assert!(RandLoraLayer::init(shared, 12, 24, 8.0).is_err());
}

#[test]
fn randlora_bases() {
    for fmt in [Rounding::Bf16, Rounding::F16] {
        let sh = RandLoraShared::generate(4, 20, 12, 3, fmt);
        assert_eq!((sh.min_dim, sh.max_dim, sh.nb), (12, 20, 3));
        assert_eq!((sh.a.len(), sh.b.len()), (4 * 12, 20 * 3 * 4));
        for t in [&sh.a, &sh.b] {
            assert!(t.iter().all(|&v| fmt.round(v) == v), "values are representable");
            let n = t.len() as f64;
            let mean = t.iter().map(|&v| v as f64).sum::<f64>() / n;
            let sd = (t.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt();
            assert!((sd - 1.0).abs() < 0.01, "std {sd}");
        }
        // Before normalisation A is U(±1/√min_dim) from the stream: the ratio of two values is
        // preserved up to rounding.
        let mut g = Mt19937::new(3);
        let b = 1.0 / 12f64.sqrt();
        let raw: Vec<f32> = (0..8).map(|_| g.uniform_rounded(-b, b, fmt)).collect();
        let ratio = raw[1] as f64 / raw[0] as f64;
        let got = sh.a[1] as f64 / sh.a[0] as f64;
        assert!((ratio - got).abs() < 0.02 * ratio.abs(), "{ratio} vs {got}");
        assert_eq!(sh, RandLoraShared::generate(4, 20, 12, 3, fmt));
        assert_ne!(sh.a, RandLoraShared::generate(4, 20, 12, 4, fmt).a);
    }
}

// ---------------------------------------------------------------- LoRTA

#[test]
fn lorta() {
    let h = hyper(&[("alpha", "16")]);
    let (d, hd, heads, mats, layers) = (NI, 5, 4, 3, 2);
    for r in 1..=4 {
        for &seed in &SEEDS {
            let mut sh = LortaShared::init(d, hd, heads, mats, layers, r, 16.0, 0.0, seed);
            assert!(sh.b.iter().all(|&v| v == 0.0));
            // a = 0 ⇒ bound √6/√r for the C factors.
            assert!(sh.c_h.iter().all(|&v| (v as f64).abs() <= 6f64.sqrt() / (r as f64).sqrt()));
            let mut rng = Mt19937::new(seed + 1);
            sh.b = normal(&mut rng, r * hd, 1.0);
            let sh = Arc::new(sh);
            for l in 0..layers {
                for m in 0..mats {
                    let layer = LortaLayer::new(sh.clone(), l, m).unwrap();
                    assert_eq!((layer.n_in(), layer.n_out()), (NI, NO));
                    let w = w0(NO, NI, seed);
                    check_fold(&layer, &w, 1e-6, "normal values");
                    // Head h owns rows h·hd..(h+1)·hd: ΔW[h·hd+t, i] = s·Σ_j B[j,t]·c_h[j]·A[i,j].
                    let dd = layer.delta_dense_f64(&w);
                    let (hh, t, i) = (heads - 1, 2, 7);
                    let c = layer.c(hh);
                    let want: f64 = sh.scale as f64 * (0..r).map(|j| sh.b[j * hd + t] as f64 * c[j] * sh.a[i * r + j] as f64).sum::<f64>();
                    assert!((dd[(hh * hd + t) * NI + i] - want).abs() <= 1e-12 * want.abs().max(1e-30));
                    check_roundtrip(&layer, &h);
                    assert_eq!(layer.trainable_params(), if (l, m) == (0, 0) { sh.trainable_params() } else { 0 });
                }
            }
            let mut sd = (*sh).clone();
            for v in [&mut sd.a, &mut sd.b, &mut sd.c_h, &mut sd.c_m, &mut sd.c_l] {
                *v = dyadic(&mut rng, v.len());
            }
            let layer = LortaLayer::new(Arc::new(sd), 1, 2).unwrap();
            check_fold(&layer, &w0(NO, NI, 1), 1e-12, "dyadic values");
        }
        let mut sh = LortaShared::init(d, hd, heads, mats, layers, r, 16.0, 0.0, 3);
        sh.b = normal(&mut Mt19937::new(2), r * hd, 1.0);
        let layer = LortaLayer::new(Arc::new(sh), 1, 1).unwrap();
        check_refusals(&layer, &h, &[("lorta_index", 0), ("shared.lorta_a", 0), ("shared.lorta_b", 0), ("shared.lorta_c_h", 1), ("shared.lorta_c_m", 1), ("shared.lorta_c_l", 1)]);
        // An index outside the factors is refused.
        let mut t = Tensors::new();
        layer.save(PREFIX, &mut t);
        t.get_mut(&format!("{PREFIX}.lorta_index")).unwrap().1[0] = layers as f32;
        assert!(LortaLayer::load(PREFIX, &t, &h, NI, NO, FILE).unwrap_err().to_string().contains("lorta_index"));
    }
}

// ---------------------------------------------------------------- parameter counts (ADAPTERS.md §1)

#[test]
fn trainable_counts_at_2048_r16() {
    let n = 2048;
    // LoRA-XS / LoRA-SB: r² (shapes only: the SVD init of a 2048² matrix is slow in a test).
    let xs = LoraXsLayer { r: 16, n_in: n, n_out: n, a: vec![0.0; 16 * n], b: vec![0.0; n * 16], latent: vec![0.0; 256], scale: 1.0 };
    assert_eq!(xs.trainable_params(), 256);
    // LoLDU: r.
    let w = w0(n, n, 1);
    assert_eq!(LolduLayer::init(&w, n, n, 16, 1.0).unwrap().trainable_params(), 16);
    // NOLA: k_A + k_B.
    assert_eq!(NolaLayer::init(n, n, 16, 512, 512, 4.0, 0).trainable_params(), 1024);
    // RandLoRA: 264 192 at r=16, 133 120 at r=32.
    for (r, want) in [(16, 264_192), (32, 133_120)] {
        let sh = Arc::new(RandLoraShared::generate(r, n, n, 0, Rounding::Bf16));
        assert_eq!(RandLoraLayer::init(sh, n, n, 2.0 * r as f64).unwrap().trainable_params(), want);
    }
    // MiSS: r·n_out (32 768; default r=64: 131 072).
    assert_eq!(MissLayer::init(n, n, 16).trainable_params(), 32_768);
    assert_eq!(MissLayer::init(n, n, 64).trainable_params(), 131_072);
    // LoKr: w1 32×32 + w2_a 64×16 + w2_b 16×64.
    let l = LokrLayer::init(n, n, 16, 16.0, -1, 0);
    assert!(matches!(l.w2, LokrW2::LowRank { .. }));
    assert_eq!(l.trainable_params(), 3_072);
    // Block-LoRA (n = 8 blocks): ≈36 864.
    assert_eq!(BlockLoraLayer::init(n, n, 16, 8, 16.0, 0).trainable_params(), 36_864);
    // LaMDA: 33 024, then 256 once B is frozen.
    let mut l = LamdaLayer::init(n, n, 16, 16.0, 0);
    assert_eq!(l.trainable_params(), 33_024);
    l.b_frozen_cols = 16;
    assert_eq!(l.trainable_params(), 256);
    // LoRTA: 35 104 for one matrix of 16 heads (M = L = 1); 1 008 620 for open_llama_7b at r=235.
    assert_eq!(LortaShared::init(n, 128, 16, 1, 1, 16, 16.0, 0.0, 0).trainable_params(), 35_104);
    assert_eq!(LortaShared::init(4096, 128, 32, 4, 32, 235, 16.0, 0.0, 0).trainable_params(), 1_008_620);
}

/// The folds are plain LowRank terms (runtime form of every method here).
#[test]
fn folds_are_low_rank() {
    let l = MissLayer::init(NI, NO, 3);
    assert!(matches!(l.to_term(), Term::LowRank(_)));
    let w = w0(NO, NI, 0);
    let t = LolduLayer::init(&w, NI, NO, 2, 1.0).unwrap().to_term();
    let Term::LowRank(lr) = t else { panic!("not low-rank") };
    assert!(lr.bt.iter().all(|&v| v == 0.0), "LoLDU at init folds to zero");
}
