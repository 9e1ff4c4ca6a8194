//! The training ops of `graft::train::ops`: every backward against central finite differences of
//! an f64 reference forward (itself checked against the f32 forward), on small odd shapes, with
//! non-zero gradient buffers to check that backwards accumulate; and a perturbed gradient is
//! shown to fail the same check.
use graft::kernels::ops::selected as ops_kernels;
use graft::kernels::quant::selected as quant_kernels;
use graft::model::Linear;
use graft::quant::QuantType;
use graft::train::ops::*;

/// xorshift64*: deterministic values without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    /// Uniform in [-a, a).
    fn f(&mut self, a: f32) -> f32 {
        ((self.next() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * a
    }
    fn vec(&mut self, n: usize, a: f32) -> Vec<f32> {
        (0..n).map(|_| self.f(a)).collect()
    }
}

fn to64(x: &[f32]) -> Vec<f64> {
    x.iter().map(|&v| v as f64).collect()
}

/// Central differences of the f64 scalar `loss` at `x` (h = 1e-5).
fn numeric_grad(x: &[f32], loss: impl Fn(&[f64]) -> f64) -> Vec<f64> {
    let h = 1e-5;
    let mut xp = to64(x);
    (0..x.len())
        .map(|i| {
            let x0 = xp[i];
            xp[i] = x0 + h;
            let lp = loss(&xp);
            xp[i] = x0 - h;
            let lm = loss(&xp);
            xp[i] = x0;
            (lp - lm) / (2.0 * h)
        })
        .collect()
}

/// Largest `|analytic − numeric|` relative to the largest `|numeric|` (floored at 1e-3).
fn rel_err(analytic: &[f32], numeric: &[f64]) -> f64 {
    assert_eq!(analytic.len(), numeric.len());
    let scale = numeric.iter().fold(1e-3f64, |m, v| m.max(v.abs()));
    analytic.iter().zip(numeric).map(|(&a, &n)| (a as f64 - n).abs()).fold(0.0, f64::max) / scale
}

/// The gradient that a backward added on top of `init`.
fn added(after: &[f32], init: &[f32]) -> Vec<f32> {
    after.iter().zip(init).map(|(a, b)| a - b).collect()
}

fn dot64(c: &[f32], y: &[f64]) -> f64 {
    c.iter().zip(y).map(|(&a, &b)| a as f64 * b).sum()
}

/// Tolerance for f32 gradients against f64 finite differences.
const TOL: f64 = 2e-4;

fn assert_grad(what: &str, analytic: &[f32], numeric: &[f64]) {
    let e = rel_err(analytic, numeric);
    assert!(e < TOL, "{what}: relative error {e:.3e}\nanalytic {analytic:?}\nnumeric {numeric:?}");
}

fn assert_forward(what: &str, y: &[f32], reference: &[f64]) {
    let e = rel_err(y, reference);
    assert!(e < 1e-5, "{what}: forward differs from the f64 reference by {e:.3e}");
}

// ---------------------------------------------------------------- RMSNorm

fn rmsnorm64(x: &[f64], w: &[f32], eps: f32) -> Vec<f64> {
    let c = w.len();
    let mut y = vec![0.0; x.len()];
    for (xr, yr) in x.chunks_exact(c).zip(y.chunks_exact_mut(c)) {
        let r = 1.0 / (xr.iter().map(|v| v * v).sum::<f64>() / c as f64 + eps as f64).sqrt();
        for i in 0..c {
            yr[i] = xr[i] * r * w[i] as f64;
        }
    }
    y
}

/// (analytic dx added, numeric dx) for rmsnorm on `[t, c]`.
fn rmsnorm_case(rng: &mut Rng, t: usize, c: usize) -> (Vec<f32>, Vec<f64>) {
    let eps = 1e-5;
    let (x, w, dy) = (rng.vec(t * c, 1.5), rng.vec(c, 2.0), rng.vec(t * c, 1.0));
    let (mut y, mut rstd) = (vec![0f32; t * c], vec![0f32; t]);
    rmsnorm_forward(&x, &w, eps, &mut y, &mut rstd);
    assert_forward("rmsnorm", &y, &rmsnorm64(&to64(&x), &w, eps));
    let mut yk = vec![0f32; c];
    for r in 0..t {
        ops_kernels().rmsnorm(&x[r * c..(r + 1) * c], Some(&w), &mut yk, eps);
        assert!(rel_err(&y[r * c..(r + 1) * c], &to64(&yk)) < 1e-5, "rmsnorm_forward differs from the kernel");
    }
    let dx0 = rng.vec(t * c, 1.0);
    let mut dx = dx0.clone();
    rmsnorm_backward(&dy, &x, &w, &rstd, &mut dx);
    let num = numeric_grad(&x, |x| dot64(&dy, &rmsnorm64(x, &w, eps)));
    (added(&dx, &dx0), num)
}

#[test]
fn rmsnorm_backward_matches_finite_differences() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for t in 1..=7 {
        for c in [1, 3, 8, 13] {
            let (a, n) = rmsnorm_case(&mut rng, t, c);
            assert_grad(&format!("rmsnorm dx t={t} c={c}"), &a, &n);
        }
    }
}

#[test]
fn rmsnorm_perturbed_gradient_is_caught() {
    let mut rng = Rng(7);
    let (mut a, n) = rmsnorm_case(&mut rng, 3, 13);
    assert!(rel_err(&a, &n) < TOL);
    a[17] += 1e-2;
    assert!(rel_err(&a, &n) > TOL, "a perturbation of 1e-2 went unnoticed");
}

// ---------------------------------------------------------------- RoPE

#[test]
fn rope_backward_is_the_transposed_rotation() {
    let ko = ops_kernels();
    let mut rng = Rng(11);
    for (neox, n_rot, head_dim) in [(false, 6, 6), (true, 6, 6), (false, 4, 8), (true, 4, 8)] {
        let r = Rope { n_heads: 3, head_dim, n_rot, freq_base: 10000.0, neox };
        for t in 1..=5 {
            let c = 3 * head_dim;
            let pos: Vec<usize> = (0..t).map(|i| 3 + 7 * i).collect();
            let (x, dy, dx0) = (rng.vec(t * c, 1.0), rng.vec(t * c, 1.0), rng.vec(t * c, 1.0));
            let mut dx = dx0.clone();
            rope_backward(ko, &dy, &pos, r, &mut dx);
            // L = Σ dy·rope(x) through the f32 forward: linear in x, so a large step is exact up
            // to rounding.
            let h = 1e-2f32;
            let loss = |x: &[f32]| {
                let mut y = x.to_vec();
                rope_forward(ko, &mut y, &pos, r);
                dy.iter().zip(&y).map(|(&a, &b)| a as f64 * b as f64).sum::<f64>()
            };
            let mut xp = x.clone();
            let num: Vec<f64> = (0..x.len())
                .map(|i| {
                    // The step actually taken in f32.
                    let (hi, lo) = (x[i] + h, x[i] - h);
                    xp[i] = hi;
                    let lp = loss(&xp);
                    xp[i] = lo;
                    let lm = loss(&xp);
                    xp[i] = x[i];
                    (lp - lm) / (hi as f64 - lo as f64)
                })
                .collect();
            let a = added(&dx, &dx0);
            let e = rel_err(&a, &num);
            assert!(e < 1e-3, "rope neox={neox} n_rot={n_rot} t={t}: relative error {e:.3e}");
            // Dimensions past n_rot pass through: their gradient is dy itself.
            for row in 0..t {
                for hh in 0..3 {
                    for d in n_rot..head_dim {
                        let i = row * c + hh * head_dim + d;
                        assert_eq!(a[i], dy[i], "unrotated dimension {d}");
                    }
                }
            }
            // A wrong rotation (forward instead of inverse) is caught.
            let mut wrong = dy.clone();
            rope_forward(ko, &mut wrong, &pos, r);
            assert!(rel_err(&wrong, &num) > 1e-2, "forward rotation passed as the gradient");
        }
    }
}

// ---------------------------------------------------------------- SwiGLU

fn swiglu64(g: &[f64], u: &[f64]) -> Vec<f64> {
    g.iter().zip(u).map(|(&g, &u)| g / (1.0 + (-g).exp()) * u).collect()
}

#[test]
fn swiglu_backward_matches_finite_differences() {
    let mut rng = Rng(3);
    for n in [1, 5, 11, 37] {
        let (g, u, dout) = (rng.vec(n, 4.0), rng.vec(n, 2.0), rng.vec(n, 1.0));
        let mut out = vec![0f32; n];
        swiglu_forward(&g, &u, &mut out);
        assert_forward("swiglu", &out, &swiglu64(&to64(&g), &to64(&u)));
        let mut k = g.clone();
        ops_kernels().silu_gate(&mut k, &u);
        assert!(rel_err(&out, &to64(&k)) < 1e-5, "swiglu_forward differs from the kernel");
        let (dg0, du0) = (rng.vec(n, 1.0), rng.vec(n, 1.0));
        let (mut dg, mut du) = (dg0.clone(), du0.clone());
        swiglu_backward(&dout, &g, &u, &mut dg, &mut du);
        let ng = numeric_grad(&g, |g| dot64(&dout, &swiglu64(g, &to64(&u))));
        let nu = numeric_grad(&u, |u| dot64(&dout, &swiglu64(&to64(&g), u)));
        let (dg, du) = (added(&dg, &dg0), added(&du, &du0));
        assert_grad("swiglu dgate", &dg, &ng);
        assert_grad("swiglu dup", &du, &nu);
        let mut bad = dg.clone();
        bad[n / 2] *= 1.01;
        bad[n / 2] += 1e-3;
        assert!(rel_err(&bad, &ng) > TOL, "perturbed dgate went unnoticed");
    }
}

// ---------------------------------------------------------------- attention

fn attention64(q: &[f64], k: &[f64], v: &[f64], s: AttnShape) -> Vec<f64> {
    let (h, kv, hd) = (s.n_head, s.n_head_kv, s.head_dim);
    let t_len = q.len() / (h * hd);
    let group = h / kv;
    let mut out = vec![0.0; q.len()];
    for hh in 0..h {
        let kh = hh / group;
        for t in 0..t_len {
            let qv = &q[t * h * hd + hh * hd..][..hd];
            let sc: Vec<f64> = (0..=t)
                .map(|j| qv.iter().zip(&k[j * kv * hd + kh * hd..][..hd]).map(|(a, b)| a * b).sum::<f64>() / (hd as f64).sqrt())
                .collect();
            let mx = sc.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let z: f64 = sc.iter().map(|s| (s - mx).exp()).sum();
            for (j, s) in sc.iter().enumerate() {
                let p = (s - mx).exp() / z;
                for d in 0..hd {
                    out[t * h * hd + hh * hd + d] += p * v[j * kv * hd + kh * hd + d];
                }
            }
        }
    }
    out
}

/// Analytic (added) and numeric gradients of q, k, v for one shape.
#[allow(clippy::type_complexity)]
fn attention_case(rng: &mut Rng, t: usize, s: AttnShape) -> [(Vec<f32>, Vec<f64>); 3] {
    let (qd, kvd) = (s.n_head * s.head_dim, s.n_head_kv * s.head_dim);
    let (q, k, v) = (rng.vec(t * qd, 1.5), rng.vec(t * kvd, 1.5), rng.vec(t * kvd, 1.0));
    let dout = rng.vec(t * qd, 1.0);
    let mut probs = vec![f32::NAN; s.n_head * t * t];
    let mut out = vec![f32::NAN; t * qd];
    attention_forward(&q, &k, &v, s, &mut probs, &mut out);
    let (q64, k64, v64) = (to64(&q), to64(&k), to64(&v));
    assert_forward("attention", &out, &attention64(&q64, &k64, &v64, s));
    // Probabilities: rows sum to 1, zero above the diagonal.
    for hh in 0..s.n_head {
        for i in 0..t {
            let row = &probs[(hh * t + i) * t..][..t];
            assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-5);
            assert!(row[i + 1..].iter().all(|&p| p == 0.0), "causal mask");
        }
    }
    let (dq0, dk0, dv0) = (rng.vec(t * qd, 1.0), rng.vec(t * kvd, 1.0), rng.vec(t * kvd, 1.0));
    let (mut dq, mut dk, mut dv) = (dq0.clone(), dk0.clone(), dv0.clone());
    attention_backward(&dout, &q, &k, &v, &probs, s, &mut dq, &mut dk, &mut dv);
    let nq = numeric_grad(&q, |q| dot64(&dout, &attention64(q, &k64, &v64, s)));
    let nk = numeric_grad(&k, |k| dot64(&dout, &attention64(&q64, k, &v64, s)));
    let nv = numeric_grad(&v, |v| dot64(&dout, &attention64(&q64, &k64, v, s)));
    [(added(&dq, &dq0), nq), (added(&dk, &dk0), nk), (added(&dv, &dv0), nv)]
}

#[test]
fn attention_backward_matches_finite_differences() {
    let mut rng = Rng(0xdead_beef);
    for (n_head, n_head_kv) in [(3, 1), (3, 3), (4, 2)] {
        for head_dim in [4, 5, 8] {
            for t in 1..=7 {
                let s = AttnShape { n_head, n_head_kv, head_dim };
                for (name, (a, n)) in ["dq", "dk", "dv"].iter().zip(attention_case(&mut rng, t, s)) {
                    assert_grad(&format!("attention {name} H={n_head} KV={n_head_kv} hd={head_dim} T={t}"), &a, &n);
                }
            }
        }
    }
    // Longer than one 64-row tile of the kernels: full tiles, a partial tile, keys across tiles.
    for t in [64, 65, 130] {
        let s = AttnShape { n_head: 2, n_head_kv: 1, head_dim: 3 };
        for (name, (a, n)) in ["dq", "dk", "dv"].iter().zip(attention_case(&mut rng, t, s)) {
            assert_grad(&format!("attention {name} H=2 KV=1 hd=3 T={t}"), &a, &n);
        }
    }
}

#[test]
fn attention_perturbed_gradient_is_caught() {
    let mut rng = Rng(5);
    let s = AttnShape { n_head: 3, n_head_kv: 1, head_dim: 4 };
    let [_, (mut dk, nk), _] = attention_case(&mut rng, 5, s);
    assert!(rel_err(&dk, &nk) < TOL);
    dk[6] += 1e-2;
    assert!(rel_err(&dk, &nk) > TOL, "perturbed dk went unnoticed");
}

// ---------------------------------------------------------------- cross-entropy

fn ce64(logits: &[f64], targets: &[Option<u32>]) -> f64 {
    let v = logits.len() / targets.len();
    let (mut sum, mut n) = (0.0, 0);
    for (row, t) in logits.chunks_exact(v).zip(targets) {
        if let Some(t) = t {
            let mx = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            sum += row.iter().map(|x| (x - mx).exp()).sum::<f64>().ln() + mx - row[*t as usize];
            n += 1;
        }
    }
    if n == 0 {
        0.0
    } else {
        sum / n as f64
    }
}

fn targets(rng: &mut Rng, t: usize, v: usize) -> Vec<Option<u32>> {
    (0..t).map(|_| if rng.next() % 3 == 0 { None } else { Some((rng.next() % v as u64) as u32) }).collect()
}

#[test]
fn cross_entropy_backward_matches_finite_differences() {
    let mut rng = Rng(99);
    let v = 11;
    for t in 1..=7 {
        let mut tg = targets(&mut rng, t, v);
        tg[0] = Some(v as u32 - 1);
        let logits = rng.vec(t * v, 3.0);
        let mut losses = vec![f32::NAN; t];
        let mean = cross_entropy_forward(&logits, &tg, &mut losses);
        let l64 = ce64(&to64(&logits), &tg);
        assert!((mean as f64 - l64).abs() < 1e-5 * l64.abs().max(1.0), "mean loss {mean} vs {l64}");
        let n = tg.iter().filter(|x| x.is_some()).count();
        assert!((losses.iter().map(|&l| l as f64).sum::<f64>() / n as f64 - l64).abs() < 1e-5);
        let d0 = rng.vec(t * v, 1.0);
        let mut d = d0.clone();
        cross_entropy_backward(&logits, &tg, &mut d);
        let num = numeric_grad(&logits, |x| ce64(x, &tg));
        let a = added(&d, &d0);
        assert_grad(&format!("cross-entropy T={t}"), &a, &num);
        for (r, target) in tg.iter().enumerate() {
            let row = r * v..(r + 1) * v;
            if target.is_none() {
                assert_eq!(losses[r], 0.0, "masked row loss");
                // Masked rows: exactly nothing added (bit-identical buffer).
                assert!(d[row.clone()].iter().zip(&d0[row]).all(|(a, b)| a.to_bits() == b.to_bits()), "masked row {r} got a gradient");
            } else {
                // Softmax − onehot sums to zero over a row.
                assert!(a[row].iter().map(|&x| x as f64).sum::<f64>().abs() < 1e-6);
            }
        }
        let mut bad = a.clone();
        bad[3] += 1e-3;
        assert!(rel_err(&bad, &num) > TOL, "perturbed dlogits went unnoticed");
    }
}

#[test]
fn cross_entropy_masked_rows_get_exact_zero_and_large_logits_are_stable() {
    let v = 11;
    let tg = [None, Some(2), None, Some(10)];
    let mut rng = Rng(1234);
    let base = rng.vec(4 * v, 2.0);
    // Shift invariance at large magnitudes (no overflow without the max subtraction).
    let big: Vec<f32> = base.iter().map(|x| x + 3.0e4).collect();
    let (mut l1, mut l2) = (vec![0f32; 4], vec![0f32; 4]);
    let m1 = cross_entropy_forward(&base, &tg, &mut l1);
    let m2 = cross_entropy_forward(&big, &tg, &mut l2);
    assert!(m2.is_finite() && (m1 - m2).abs() < 1e-2, "{m1} vs {m2}");
    let mut d = vec![0f32; 4 * v];
    cross_entropy_backward(&big, &tg, &mut d);
    assert!(d.iter().all(|x| x.is_finite()));
    assert!(d[..v].iter().chain(&d[2 * v..3 * v]).all(|&x| x == 0.0), "masked rows must stay exactly zero");
    // Every row masked: zero loss and no gradient.
    let none = [None; 4];
    assert_eq!(cross_entropy_forward(&base, &none, &mut l1), 0.0);
    let mut d = vec![0f32; 4 * v];
    cross_entropy_backward(&base, &none, &mut d);
    assert!(d.iter().all(|&x| x == 0.0));
}

#[test]
#[should_panic(expected = "target")]
fn cross_entropy_rejects_out_of_range_targets() {
    let mut l = [0f32; 1];
    cross_entropy_forward(&[0.0; 11], &[Some(11)], &mut l);
}

// ---------------------------------------------------------------- linear dx

#[test]
fn linear_backward_dx_matches_dense_dequantized_product() {
    let mut rng = Rng(42);
    let (n_in, n_out, t) = (96, 7, 5);
    use QuantType::*;
    for ty in [F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1] {
        let wf = rng.vec(n_out * n_in, 1.0);
        let mut w = Vec::new();
        for row in wf.chunks_exact(n_in) {
            graft::requant::quantize_row(ty, row, &mut w).unwrap();
        }
        let rb = ty.row_bytes(n_in).unwrap();
        let mut wd = vec![0f32; n_out * n_in];
        for (r, out) in wd.chunks_exact_mut(n_in).enumerate() {
            quant_kernels().dequantize_row(ty, &w[r * rb..(r + 1) * rb], out).unwrap();
        }
        let dy = rng.vec(t * n_out, 1.0);
        let dx0 = rng.vec(t * n_in, 1.0);
        let mut want = to64(&dx0);
        for i in 0..t {
            for r in 0..n_out {
                for c in 0..n_in {
                    want[i * n_in + c] += dy[i * n_out + r] as f64 * wd[r * n_in + c] as f64;
                }
            }
        }
        let mut dx = dx0.clone();
        linear_backward_dx(ty, n_in, n_out, &w, &dy, &mut dx).unwrap();
        let e = rel_err(&dx, &want);
        assert!(e < 1e-5, "{ty}: relative error {e:.3e}");
        // The same through a model projection.
        let l = Linear { ty, n_in, n_out, range: 0..w.len() };
        let mut dx2 = dx0.clone();
        linear_backward_dx_for(&l, &w, &dy, &mut dx2).unwrap();
        assert_eq!(dx, dx2);
        // A wrong weight (one row off) is caught by the comparison.
        let mut bad = dx.clone();
        bad[n_in + 3] += 1e-2;
        assert!(rel_err(&bad, &want) > 1e-5);
    }
}

#[test]
fn linear_backward_dx_checks_shapes() {
    let (n_in, n_out) = (64, 3);
    let mut w = Vec::new();
    for _ in 0..n_out {
        graft::requant::quantize_row(QuantType::Q8_0, &[0.5; 64], &mut w).unwrap();
    }
    let dy = vec![1f32; 2 * n_out];
    let mut dx = vec![0f32; 2 * n_in];
    assert!(linear_backward_dx(QuantType::Q8_0, n_in, n_out, &w[1..], &dy, &mut dx).is_err(), "short weight");
    assert!(linear_backward_dx(QuantType::Q8_0, 48, n_out, &w, &dy, &mut dx).is_err(), "partial block");
    assert!(linear_backward_dx(QuantType::Q8_0, n_in, n_out, &w, &dy[1..], &mut dx).is_err(), "dy not whole rows");
    assert!(linear_backward_dx(QuantType::Q8_0, n_in, n_out, &w, &dy, &mut dx[1..]).is_err(), "dx rows");
    assert!(linear_backward_dx(QuantType::Q8_0, n_in, n_out, &w, &dy, &mut dx).is_ok());
    assert!(dx.iter().all(|&x| (x - 1.5).abs() < 1e-2), "each dx = Σ_r 1·0.5");
}

#[test]
fn fused_cross_entropy_equals_forward_and_backward() {
    let mut rng = Rng(77);
    let (t, v) = (7, 13);
    let logits = rng.vec(t * v, 30.0);
    let targets: Vec<Option<u32>> = (0..t).map(|i| if i % 3 == 1 { None } else { Some(((i * 5) % v) as u32) }).collect();
    let mut losses = vec![0f32; t];
    let mean = cross_entropy_forward(&logits, &targets, &mut losses);
    let mut dl = vec![0f32; t * v];
    cross_entropy_backward(&logits, &targets, &mut dl);
    let n = targets.iter().flatten().count();
    // In two chunks of rows, with the whole sequence's 1/n.
    let mut fused = logits.clone();
    let (a, b) = fused.split_at_mut(3 * v);
    let sum = cross_entropy_fused(a, &targets[..3], 1.0 / n as f32) + cross_entropy_fused(b, &targets[3..], 1.0 / n as f32);
    assert!((sum / n as f64 - mean as f64).abs() < 1e-5, "loss {} vs {mean}", sum / n as f64);
    assert!(rel_err(&fused, &to64(&dl)) < 1e-5);
    // Logits far below the maximum: the loss stays finite (no underflow to log(0)).
    let mut far = vec![0f32; v];
    far[0] = 200.0;
    let l = cross_entropy_fused(&mut far, &[Some(1)], 1.0);
    assert!((l - 200.0).abs() < 1e-3, "{l}");
}

#[test]
fn tiled_attention_recomputes_the_same_values() {
    let mut rng = Rng(99);
    for (t, s) in [(5, AttnShape { n_head: 3, n_head_kv: 1, head_dim: 4 }), (130, AttnShape { n_head: 4, n_head_kv: 2, head_dim: 8 })] {
        let (qd, kvd) = (s.n_head * s.head_dim, s.n_head_kv * s.head_dim);
        let (q, k, v, dout) = (rng.vec(t * qd, 1.0), rng.vec(t * kvd, 1.0), rng.vec(t * kvd, 1.0), rng.vec(t * qd, 1.0));
        let mut probs = vec![0f32; s.n_head * t * t];
        let (mut o1, mut o2) = (vec![0f32; t * qd], vec![0f32; t * qd]);
        attention_forward(&q, &k, &v, s, &mut probs, &mut o1);
        attention_forward_tiled(&q, &k, &v, s, &mut o2);
        assert_eq!(o1, o2, "T={t}: forward");
        let (mut dq1, mut dk1, mut dv1) = (vec![0.5f32; t * qd], vec![0.5f32; t * kvd], vec![0.5f32; t * kvd]);
        let (mut dq2, mut dk2, mut dv2) = (dq1.clone(), dk1.clone(), dv1.clone());
        attention_backward(&dout, &q, &k, &v, &probs, s, &mut dq1, &mut dk1, &mut dv1);
        attention_backward_recompute(&dout, &q, &k, &v, s, &mut dq2, &mut dk2, &mut dv2);
        assert_eq!((dq1, dk1, dv1), (dq2, dk2, dv2), "T={t}: backward");
    }
}
