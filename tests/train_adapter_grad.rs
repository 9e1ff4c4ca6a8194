//! Adapter-term gradients (graft::train::adapter_grad) against central finite differences of f64
//! reference forwards, on small odd shapes, including the accumulation contract and FFA-LoRA's
//! frozen `A`.
use graft::model::tiny::Normal;
use graft::train::adapter_grad::{lowrank_backward, lowrank_forward, vera_backward, vera_forward, VeraProj};

/// L = Σ c·y for the low-rank term, in f64.
#[allow(clippy::too_many_arguments)]
fn lowrank_loss(x: &[f64], a: &[f64], bt: &[f64], c: &[f64], t: usize, n_in: usize, r: usize, n_out: usize, s: f64) -> f64 {
    let mut l = 0.0;
    for i in 0..t {
        for o in 0..n_out {
            let mut y = 0.0;
            for j in 0..r {
                let ax: f64 = (0..n_in).map(|k| x[i * n_in + k] * a[j * n_in + k]).sum();
                y += s * ax * bt[j * n_out + o];
            }
            l += c[i * n_out + o] * y;
        }
    }
    l
}

/// Central differences of `f` at every element of `p`.
fn fd(p: &[f64], f: impl Fn(&[f64]) -> f64) -> Vec<f64> {
    let h = 1e-6;
    (0..p.len())
        .map(|k| {
            let mut q = p.to_vec();
            q[k] += h;
            let up = f(&q);
            q[k] -= 2.0 * h;
            (up - f(&q)) / (2.0 * h)
        })
        .collect()
}

fn close(got: &[f32], start: &[f32], want: &[f64], what: &str) {
    let mag = want.iter().fold(1e-3f64, |m, v| m.max(v.abs()));
    for (k, ((g, s0), w)) in got.iter().zip(start).zip(want).enumerate() {
        let d = (*g as f64 - *s0 as f64) - w;
        assert!(d.abs() <= 1e-4 * mag, "{what}[{k}]: gradient {} vs finite differences {w} (scale {mag})", *g as f64 - *s0 as f64);
    }
}

fn f64s(v: &[f32]) -> Vec<f64> {
    v.iter().map(|x| *x as f64).collect()
}

#[test]
fn lowrank_gradients_match_finite_differences() {
    for (t, n_in, r, n_out, seed) in [(1, 5, 1, 3, 1), (3, 7, 2, 4, 2), (4, 6, 3, 9, 3)] {
        let mut g = Normal::new(seed);
        let (x, a, bt, c) = (g.vec(t * n_in, 1.0), g.vec(r * n_in, 0.5), g.vec(r * n_out, 0.5), g.vec(t * n_out, 1.0));
        let s = 0.75f32;
        let mut ax = vec![0f32; t * r];
        let y0 = g.vec(t * n_out, 1.0);
        let mut y = y0.clone();
        lowrank_forward(&x, t, n_in, &a, &bt, r, n_out, s, &mut ax, &mut y);
        let l_ref = lowrank_loss(&f64s(&x), &f64s(&a), &f64s(&bt), &f64s(&c), t, n_in, r, n_out, s as f64);
        let l_got: f64 = y.iter().zip(&y0).zip(&c).map(|((y, y0), c)| (*y as f64 - *y0 as f64) * *c as f64).sum();
        assert!((l_got - l_ref).abs() < 1e-4 * l_ref.abs().max(1.0), "forward adds s·B·A·x: {l_got} vs {l_ref}");
        // Non-zero starting gradients: the backward must add.
        let (dx0, da0, db0) = (g.vec(t * n_in, 1.0), g.vec(r * n_in, 1.0), g.vec(r * n_out, 1.0));
        let (mut dx, mut da, mut dbt) = (dx0.clone(), da0.clone(), db0.clone());
        lowrank_backward(&c, &x, &ax, t, n_in, &a, &bt, r, n_out, s, &mut dx, Some(&mut da), &mut dbt);
        let (xf, af, bf, cf, sf) = (f64s(&x), f64s(&a), f64s(&bt), f64s(&c), s as f64);
        close(&dx, &dx0, &fd(&xf, |p| lowrank_loss(p, &af, &bf, &cf, t, n_in, r, n_out, sf)), "dx");
        close(&da, &da0, &fd(&af, |p| lowrank_loss(&xf, p, &bf, &cf, t, n_in, r, n_out, sf)), "dA");
        close(&dbt, &db0, &fd(&bf, |p| lowrank_loss(&xf, &af, p, &cf, t, n_in, r, n_out, sf)), "dBt");
        // FFA-LoRA: A frozen, the other gradients unchanged.
        let (mut dx2, mut db2) = (dx0.clone(), db0.clone());
        lowrank_backward(&c, &x, &ax, t, n_in, &a, &bt, r, n_out, s, &mut dx2, None, &mut db2);
        assert_eq!((dx2, db2), (dx.clone(), dbt.clone()));
        // A wrong gradient is caught.
        let mut bad = dbt.clone();
        bad[0] += 1e-2 * (1.0 + bad[0].abs());
        let want = fd(&bf, |p| lowrank_loss(&xf, &af, p, &cf, t, n_in, r, n_out, sf));
        assert!(std::panic::catch_unwind(|| close(&bad, &db0, &want, "dBt")).is_err());
    }
}

/// L = Σ c·(λ_b ⊙ B̂(λ_d ⊙ Â x)) in f64.
#[allow(clippy::too_many_arguments)]
fn vera_loss(x: &[f64], a: &[f64], bt: &[f64], ld: &[f64], lb: &[f64], c: &[f64], t: usize, n_in: usize, n_out: usize, r: usize, max_in: usize, max_out: usize) -> f64 {
    let mut l = 0.0;
    for i in 0..t {
        let u: Vec<f64> = (0..r).map(|j| (0..n_in).map(|k| x[i * n_in + k] * a[j * max_in + k]).sum()).collect();
        for o in 0..n_out {
            let w: f64 = (0..r).map(|j| bt[j * max_out + o] * ld[j] * u[j]).sum();
            l += c[i * n_out + o] * lb[o] * w;
        }
    }
    l
}

#[test]
fn vera_gradients_match_finite_differences() {
    for (t, n_in, n_out, r, max_in, max_out, seed) in [(1, 5, 3, 4, 5, 7, 1), (3, 6, 8, 5, 9, 8, 2)] {
        let mut g = Normal::new(seed + 10);
        let (x, a, bt, c) = (g.vec(t * n_in, 1.0), g.vec(r * max_in, 0.5), g.vec(r * max_out, 0.5), g.vec(t * n_out, 1.0));
        let (ld, lb) = (g.vec(r, 1.0), g.vec(n_out, 1.0));
        let p = VeraProj { a: &a, bt: &bt, r, max_in, max_out };
        let (mut u, mut w) = (vec![0f32; t * r], vec![0f32; t * n_out]);
        let mut y = vec![0f32; t * n_out];
        vera_forward(&x, t, n_in, n_out, p, &ld, &lb, &mut u, &mut w, &mut y);
        let (xf, af, bf, ldf, lbf, cf) = (f64s(&x), f64s(&a), f64s(&bt), f64s(&ld), f64s(&lb), f64s(&c));
        let l_ref = vera_loss(&xf, &af, &bf, &ldf, &lbf, &cf, t, n_in, n_out, r, max_in, max_out);
        let l_got: f64 = y.iter().zip(&c).map(|(y, c)| *y as f64 * *c as f64).sum();
        assert!((l_got - l_ref).abs() < 1e-4 * l_ref.abs().max(1.0), "vera forward: {l_got} vs {l_ref}");
        let (dx0, dd0, db0) = (g.vec(t * n_in, 1.0), g.vec(r, 1.0), g.vec(n_out, 1.0));
        let (mut dx, mut dd, mut db) = (dx0.clone(), dd0.clone(), db0.clone());
        vera_backward(&c, &u, &w, t, n_in, n_out, p, &ld, &lb, &mut dx, &mut dd, &mut db);
        close(&dx, &dx0, &fd(&xf, |q| vera_loss(q, &af, &bf, &ldf, &lbf, &cf, t, n_in, n_out, r, max_in, max_out)), "dx");
        close(&dd, &dd0, &fd(&ldf, |q| vera_loss(&xf, &af, &bf, q, &lbf, &cf, t, n_in, n_out, r, max_in, max_out)), "dλ_d");
        close(&db, &db0, &fd(&lbf, |q| vera_loss(&xf, &af, &bf, &ldf, q, &cf, t, n_in, n_out, r, max_in, max_out)), "dλ_b");
    }
}

#[test]
fn allora_scaled_backward_is_the_backward_of_row_scaled_outputs() {
    use graft::train::adapter_grad::{lowrank_backward, lowrank_backward_scaled};
    let (t, n_in, n_out, r, s) = (5, 37, 19, 3, 0.7f32);
    let f = |i: usize, k: usize| ((i * 7919 + k * 104729) % 997) as f32 / 997.0 - 0.5;
    let x: Vec<f32> = (0..t * n_in).map(|i| f(i, 1)).collect();
    let a: Vec<f32> = (0..r * n_in).map(|i| f(i, 2)).collect();
    let bt: Vec<f32> = (0..r * n_out).map(|i| f(i, 3)).collect();
    let dy: Vec<f32> = (0..t * n_out).map(|i| f(i, 4)).collect();
    let c: Vec<f32> = (0..n_out).map(|i| 0.5 + f(i, 5)).collect();
    let mut ax = vec![0f32; t * r];
    for i in 0..t {
        for j in 0..r {
            ax[i * r + j] = (0..n_in).map(|k| x[i * n_in + k] * a[j * n_in + k]).sum();
        }
    }
    let dyc: Vec<f32> = dy.chunks_exact(n_out).flat_map(|row| row.iter().zip(&c).map(|(d, cc)| d * cc).collect::<Vec<_>>()).collect();
    let (mut dx1, mut da1, mut db1) = (vec![0f32; t * n_in], vec![0f32; r * n_in], vec![0f32; r * n_out]);
    lowrank_backward_scaled(&dy, &x, &ax, t, n_in, &a, &bt, r, n_out, s, &c, &mut dx1, &mut da1, &mut db1);
    let (mut dx2, mut da2, mut db2) = (vec![0f32; t * n_in], vec![0f32; r * n_in], vec![0f32; r * n_out]);
    lowrank_backward(&dyc, &x, &ax, t, n_in, &a, &bt, r, n_out, s, &mut dx2, Some(&mut da2), &mut db2);
    let (mut dx3, mut db3) = (vec![0f32; t * n_in], vec![0f32; r * n_out]);
    lowrank_backward(&dy, &x, &ax, t, n_in, &a, &bt, r, n_out, s, &mut dx3, None, &mut db3);
    let close = |p: &[f32], q: &[f32]| p.iter().zip(q).all(|(u, v)| (u - v).abs() <= 1e-5 * (1.0 + v.abs()));
    assert!(close(&da1, &da2) && close(&db1, &db2), "parameter gradients see dy ⊙ c");
    assert!(close(&dx1, &dx3), "dx does not");
    assert!(!close(&dx1, &dx2));
    // The row scales: 1/√(‖(B·A)_i‖ + 1/η²) from the dense product.
    let eta = 2.0f32;
    let cs = graft::train::adapter_grad::allora_row_scales(&a, &bt, r, n_in, n_out, eta);
    for i in 0..n_out {
        let norm: f64 = (0..n_in).map(|k| (0..r).map(|j| bt[j * n_out + i] as f64 * a[j * n_in + k] as f64).sum::<f64>().powi(2)).sum::<f64>().sqrt();
        let want = 1.0 / (norm + 1.0 / (eta as f64 * eta as f64)).sqrt();
        assert!((cs[i] as f64 - want).abs() < 1e-5 * want, "row {i}: {} vs {want}", cs[i]);
    }
}
