//! Forward and backward of the adapter terms that training updates, on f32 row-major buffers of `t`
//! rows: the low-rank term `y += s·(A·x)·Bᵀ` (LoRA, FFA-LoRA, and LoRA-XS through its folded
//! factors) and VeRA's `y += λ_b ⊙ B̂·(λ_d ⊙ Â·x)`. Layouts are the runtime terms' (`A` `[r, n_in]`,
//! `Bᵀ` `[r, n_out]`; VeRA's shared `A` `[r, max_in]` and `Bᵀ` `[r, max_out]`), so a trained term is
//! served as is. Backwards *add* into every gradient buffer (llm.c's convention; callers zero them
//! once per step); the gradient of the base product `W0·x` is [`super::ops::linear_backward_dx`].

/// `ax[i, j] = Σ_k x[i, k]·a[j, k]` (`[t, r]`), then `y[i, o] += s·Σ_j ax[i, j]·bt[j, o]`.
/// `ax` is kept for the backward pass.
#[allow(clippy::too_many_arguments)]
pub fn lowrank_forward(x: &[f32], t: usize, n_in: usize, a: &[f32], bt: &[f32], r: usize, n_out: usize, s: f32, ax: &mut [f32], y: &mut [f32]) {
    assert!(x.len() == t * n_in && a.len() == r * n_in && bt.len() == r * n_out && ax.len() == t * r && y.len() == t * n_out, "lowrank_forward: shapes");
    for i in 0..t {
        let xi = &x[i * n_in..(i + 1) * n_in];
        for j in 0..r {
            ax[i * r + j] = xi.iter().zip(&a[j * n_in..(j + 1) * n_in]).map(|(p, q)| p * q).sum();
        }
        let yi = &mut y[i * n_out..(i + 1) * n_out];
        for j in 0..r {
            let c = s * ax[i * r + j];
            for (yo, b) in yi.iter_mut().zip(&bt[j * n_out..(j + 1) * n_out]) {
                *yo += c * b;
            }
        }
    }
}

/// Gradients of [`lowrank_forward`] for output gradient `dy` (`[t, n_out]`): with `g = s·dy·B`
/// (`[t, r]`), `dbt[j, o] += s·Σ_i ax[i, j]·dy[i, o]`, `da[j, k] += Σ_i g[i, j]·x[i, k]` (skipped when
/// `da` is `None`: `A` frozen, as in FFA-LoRA) and `dx[i, k] += Σ_j g[i, j]·a[j, k]`.
#[allow(clippy::too_many_arguments)]
pub fn lowrank_backward(
    dy: &[f32],
    x: &[f32],
    ax: &[f32],
    t: usize,
    n_in: usize,
    a: &[f32],
    bt: &[f32],
    r: usize,
    n_out: usize,
    s: f32,
    dx: &mut [f32],
    da: Option<&mut [f32]>,
    dbt: &mut [f32],
) {
    assert!(dy.len() == t * n_out && x.len() == t * n_in && ax.len() == t * r && dx.len() == t * n_in && dbt.len() == r * n_out, "lowrank_backward: shapes");
    let mut g = vec![0f32; t * r];
    for i in 0..t {
        let dyi = &dy[i * n_out..(i + 1) * n_out];
        for j in 0..r {
            let btj = &bt[j * n_out..(j + 1) * n_out];
            g[i * r + j] = s * dyi.iter().zip(btj).map(|(p, q)| p * q).sum::<f32>();
            let c = s * ax[i * r + j];
            for (d, v) in dbt[j * n_out..(j + 1) * n_out].iter_mut().zip(dyi) {
                *d += c * v;
            }
        }
    }
    if let Some(da) = da {
        assert_eq!(da.len(), r * n_in, "lowrank_backward: da");
        for i in 0..t {
            let xi = &x[i * n_in..(i + 1) * n_in];
            for j in 0..r {
                let c = g[i * r + j];
                for (d, v) in da[j * n_in..(j + 1) * n_in].iter_mut().zip(xi) {
                    *d += c * v;
                }
            }
        }
    }
    for i in 0..t {
        let dxi = &mut dx[i * n_in..(i + 1) * n_in];
        for j in 0..r {
            let c = g[i * r + j];
            for (d, v) in dxi.iter_mut().zip(&a[j * n_in..(j + 1) * n_in]) {
                *d += c * v;
            }
        }
    }
}

/// VeRA's shared projections as the training ops read them.
#[derive(Clone, Copy)]
pub struct VeraProj<'a> {
    /// `A`, `[r, max_in]` (a layer uses its first `n_in` columns).
    pub a: &'a [f32],
    /// `Bᵀ`, `[r, max_out]` (a layer uses its first `n_out` columns).
    pub bt: &'a [f32],
    /// Rank.
    pub r: usize,
    /// Row stride of `a`.
    pub max_in: usize,
    /// Row stride of `bt`.
    pub max_out: usize,
}

/// `u = Â·x` (`[t, r]`, kept for the backward pass), `w = B̂·(λ_d ⊙ u)` (`[t, n_out]`, kept), then
/// `y += λ_b ⊙ w`.
#[allow(clippy::too_many_arguments)]
pub fn vera_forward(x: &[f32], t: usize, n_in: usize, n_out: usize, p: VeraProj, lambda_d: &[f32], lambda_b: &[f32], u: &mut [f32], w: &mut [f32], y: &mut [f32]) {
    let r = p.r;
    assert!(n_in <= p.max_in && n_out <= p.max_out && lambda_d.len() == r && lambda_b.len() == n_out, "vera_forward: shapes");
    assert!(x.len() == t * n_in && u.len() == t * r && w.len() == t * n_out && y.len() == t * n_out, "vera_forward: buffers");
    for i in 0..t {
        let xi = &x[i * n_in..(i + 1) * n_in];
        for j in 0..r {
            u[i * r + j] = xi.iter().zip(&p.a[j * p.max_in..j * p.max_in + n_in]).map(|(a, b)| a * b).sum();
        }
        let wi = &mut w[i * n_out..(i + 1) * n_out];
        wi.iter_mut().for_each(|v| *v = 0.0);
        for j in 0..r {
            let c = lambda_d[j] * u[i * r + j];
            for (wo, b) in wi.iter_mut().zip(&p.bt[j * p.max_out..j * p.max_out + n_out]) {
                *wo += c * b;
            }
        }
        for ((yo, wo), lb) in y[i * n_out..(i + 1) * n_out].iter_mut().zip(wi.iter()).zip(lambda_b) {
            *yo += lb * wo;
        }
    }
}

/// Gradients of [`vera_forward`]: `dλ_b += Σ_i dy ⊙ w`; with `g = λ_b ⊙ dy` and `dv = B̂ᵀ·g`,
/// `dλ_d += Σ_i dv ⊙ u` and `dx += Âᵀ·(λ_d ⊙ dv)`. The shared projections are frozen.
#[allow(clippy::too_many_arguments)]
pub fn vera_backward(
    dy: &[f32],
    u: &[f32],
    w: &[f32],
    t: usize,
    n_in: usize,
    n_out: usize,
    p: VeraProj,
    lambda_d: &[f32],
    lambda_b: &[f32],
    dx: &mut [f32],
    dlambda_d: &mut [f32],
    dlambda_b: &mut [f32],
) {
    let r = p.r;
    assert!(dy.len() == t * n_out && u.len() == t * r && w.len() == t * n_out && dx.len() == t * n_in, "vera_backward: buffers");
    assert!(dlambda_d.len() == r && dlambda_b.len() == n_out && lambda_d.len() == r && lambda_b.len() == n_out, "vera_backward: lambdas");
    let mut g = vec![0f32; n_out];
    for i in 0..t {
        let dyi = &dy[i * n_out..(i + 1) * n_out];
        for (((d, gy), (dv, wv)), lb) in dlambda_b.iter_mut().zip(g.iter_mut()).zip(dyi.iter().zip(&w[i * n_out..(i + 1) * n_out])).zip(lambda_b) {
            *d += dv * wv;
            *gy = lb * dv;
        }
        let dxi = &mut dx[i * n_in..(i + 1) * n_in];
        for j in 0..r {
            let dv: f32 = g.iter().zip(&p.bt[j * p.max_out..j * p.max_out + n_out]).map(|(a, b)| a * b).sum();
            dlambda_d[j] += dv * u[i * r + j];
            let c = lambda_d[j] * dv;
            for (d, a) in dxi.iter_mut().zip(&p.a[j * p.max_in..j * p.max_in + n_in]) {
                *d += c * a;
            }
        }
    }
}
