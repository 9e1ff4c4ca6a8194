//! Forward and backward of the adapter terms that training updates, on f32 row-major buffers of `t`
//! rows: the low-rank term `y += s·(A·x)·Bᵀ` (LoRA, FFA-LoRA, and LoRA-XS through its folded
//! factors) and VeRA's `y += λ_b ⊙ B̂·(λ_d ⊙ Â·x)`. Layouts are the runtime terms' (`A` `[r, n_in]`,
//! `Bᵀ` `[r, n_out]`; VeRA's shared `A` `[r, max_in]` and `Bᵀ` `[r, max_out]`), so a trained term is
//! served as is. Backwards *add* into every gradient buffer (llm.c's convention; callers zero them
//! once per step); the gradient of the base product `W0·x` is [`super::ops::linear_backward_dx`].

use crate::kernels::adapter::{self as kad, AdapterKernels};

fn kern() -> &'static AdapterKernels {
    kad::selected()
}

/// `out[j, i] = m[i, j]` for a `[rows, cols]` matrix.
pub(crate) fn transpose(m: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0f32; rows * cols];
    for i in 0..rows {
        for j in 0..cols {
            out[j * rows + i] = m[i * cols + j];
        }
    }
    out
}

/// `ax[i, j] = Σ_k x[i, k]·a[j, k]` (`[t, r]`), then `y[i, o] += s·Σ_j ax[i, j]·bt[j, o]`.
/// `ax` is kept for the backward pass.
#[allow(clippy::too_many_arguments)]
pub fn lowrank_forward(x: &[f32], t: usize, n_in: usize, a: &[f32], bt: &[f32], r: usize, n_out: usize, s: f32, ax: &mut [f32], y: &mut [f32]) {
    assert!(x.len() == t * n_in && a.len() == r * n_in && bt.len() == r * n_out && ax.len() == t * r && y.len() == t * n_out, "lowrank_forward: shapes");
    let k = kern();
    k.down(x, n_in, t, a, n_in, r, n_in, ax, r);
    k.up(ax, r, t, r, None, bt, n_out, n_out, None, s, y, n_out);
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
    lowrank_backward_impl(dy, x, ax, (t, n_in, r, n_out), a, bt, s, None, dx, da, dbt);
}

/// [`lowrank_backward`] with ALLoRA's per-output-row gradient scaling (ADAPTERS.md §4.19): the
/// parameter gradients see `dy ⊙ c` (`c` over the `n_out` outputs: `dBᵀ[j, o]` scaled by `c_o`,
/// `dA` through `diag(c)·B`), while the gradient reaching the input, `dx`, does not.
#[allow(clippy::too_many_arguments)]
pub fn lowrank_backward_scaled(
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
    c: &[f32],
    dx: &mut [f32],
    da: &mut [f32],
    dbt: &mut [f32],
) {
    assert_eq!(c.len(), n_out, "lowrank_backward_scaled: c");
    lowrank_backward_impl(dy, x, ax, (t, n_in, r, n_out), a, bt, s, Some(c), dx, Some(da), dbt);
}

#[allow(clippy::too_many_arguments)]
fn lowrank_backward_impl(
    dy: &[f32],
    x: &[f32],
    ax: &[f32],
    (t, n_in, r, n_out): (usize, usize, usize, usize),
    a: &[f32],
    bt: &[f32],
    s: f32,
    c: Option<&[f32]>,
    dx: &mut [f32],
    da: Option<&mut [f32]>,
    dbt: &mut [f32],
) {
    assert!(dy.len() == t * n_out && x.len() == t * n_in && ax.len() == t * r && dx.len() == t * n_in && dbt.len() == r * n_out, "lowrank_backward: shapes");
    let k = kern();
    // g = s·dy·B, [t, r]; dx += g·A.
    let mut g = vec![0f32; t * r];
    k.down(dy, n_out, t, bt, n_out, r, n_out, &mut g, r);
    g.iter_mut().for_each(|v| *v *= s);
    k.up(&g, r, t, r, None, a, n_in, n_in, None, 1.0, dx, n_in);
    // dBᵀ += s·axᵀ·(dy ⊙ c).
    let axt = transpose(ax, t, r);
    k.up(&axt, t, r, t, None, dy, n_out, n_out, c, s, dbt, n_out);
    if let Some(da) = da {
        assert_eq!(da.len(), r * n_in, "lowrank_backward: da");
        // dA += gᵀ·x, with g through diag(c)·B under ALLoRA.
        if let Some(c) = c {
            let btc: Vec<f32> = bt.chunks_exact(n_out).flat_map(|row| row.iter().zip(c).map(|(b, cc)| b * cc)).collect();
            k.down(dy, n_out, t, &btc, n_out, r, n_out, &mut g, r);
            g.iter_mut().for_each(|v| *v *= s);
        }
        let gt = transpose(&g, t, r);
        k.up(&gt, t, r, t, None, x, n_in, n_in, None, 1.0, da, n_in);
    }
}

/// ALLoRA's row scales of a low-rank term: `c_i = 1/√(‖(B·A)_{i,:}‖ + 1/η²)` over the `n_out` rows,
/// with `‖(B·A)_i‖² = b_iᵀ·(A·Aᵀ)·b_i` (`b_i` row `i` of `B`, from `Bᵀ` `[r, n_out]`).
pub fn allora_row_scales(a: &[f32], bt: &[f32], r: usize, n_in: usize, n_out: usize, eta: f32) -> Vec<f32> {
    let mut aat = vec![0f32; r * r];
    kern().down(a, n_in, r, a, n_in, r, n_in, &mut aat, r);
    let floor = 1.0 / (eta as f64 * eta as f64);
    (0..n_out)
        .map(|i| {
            let mut q = 0f64;
            for j in 0..r {
                let bj = bt[j * n_out + i] as f64;
                if bj == 0.0 {
                    continue;
                }
                let mut row = 0f64;
                for k in 0..r {
                    row += aat[j * r + k] as f64 * bt[k * n_out + i] as f64;
                }
                q += bj * row;
            }
            (1.0 / (q.max(0.0).sqrt() + floor).sqrt()) as f32
        })
        .collect()
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

/// `u = Â·x` (`[t, r]`): the part of VeRA's forward that depends only on the layer input, shared
/// by every projection that reads the same input through the same projections.
pub fn vera_down(x: &[f32], t: usize, n_in: usize, p: VeraProj, u: &mut [f32]) {
    assert!(n_in <= p.max_in && x.len() == t * n_in && u.len() == t * p.r, "vera_down: shapes");
    kern().down(x, n_in, t, p.a, p.max_in, p.r, n_in, u, p.r);
}

/// The rest of VeRA's forward from `u = Â·x`: `w = B̂·(λ_d ⊙ u)` (`[t, n_out]`, kept), `y += λ_b ⊙ w`.
#[allow(clippy::too_many_arguments)]
pub fn vera_up(u: &[f32], t: usize, n_out: usize, p: VeraProj, lambda_d: &[f32], lambda_b: &[f32], w: &mut [f32], y: &mut [f32]) {
    let r = p.r;
    assert!(n_out <= p.max_out && lambda_d.len() == r && lambda_b.len() == n_out, "vera_up: shapes");
    assert!(u.len() == t * r && w.len() == t * n_out && y.len() == t * n_out, "vera_up: buffers");
    w.fill(0.0);
    kern().up(u, r, t, r, Some(lambda_d), p.bt, p.max_out, n_out, None, 1.0, w, n_out);
    vera_add_scaled(w, lambda_b, y);
}

/// `u = Â·x` (`[t, r]`, kept for the backward pass), `w = B̂·(λ_d ⊙ u)` (`[t, n_out]`, kept), then
/// `y += λ_b ⊙ w`.
#[allow(clippy::too_many_arguments)]
pub fn vera_forward(x: &[f32], t: usize, n_in: usize, n_out: usize, p: VeraProj, lambda_d: &[f32], lambda_b: &[f32], u: &mut [f32], w: &mut [f32], y: &mut [f32]) {
    vera_down(x, t, n_in, p, u);
    vera_up(u, t, n_out, p, lambda_d, lambda_b, w, y);
}

/// The output side of [`vera_backward`]: `dλ_b += Σ_i dy ⊙ w`; with `dv = B̂ᵀ·(λ_b ⊙ dy)`,
/// `dλ_d += Σ_i dv ⊙ u` and `dz += λ_d ⊙ dv` (`[t, r]`), the gradient reaching `u = Â·x`. Projections
/// sharing one input sum their `dz` and take one [`vera_backward_down`].
#[allow(clippy::too_many_arguments)]
pub fn vera_backward_up(dy: &[f32], u: &[f32], w: &[f32], t: usize, n_out: usize, p: VeraProj, lambda_d: &[f32], lambda_b: &[f32], dz: &mut [f32], dlambda_d: &mut [f32], dlambda_b: &mut [f32]) {
    let r = p.r;
    assert!(dy.len() == t * n_out && u.len() == t * r && w.len() == t * n_out && dz.len() == t * r, "vera_backward: buffers");
    assert!(dlambda_d.len() == r && dlambda_b.len() == n_out && lambda_d.len() == r && lambda_b.len() == n_out, "vera_backward: lambdas");
    let g = vera_grad_out(dy, w, lambda_b, dlambda_b);
    let mut dv = vec![0f32; t * r];
    kern().down(&g, n_out, t, p.bt, p.max_out, r, n_out, &mut dv, r);
    vera_grad_in(&dv, u, lambda_d, dlambda_d, dz);
}

/// The output end of VeRA's backward: `dλ_b += Σ_i dy ⊙ w` and returns `g = λ_b ⊙ dy` (`[t, n_out]`).
pub fn vera_grad_out(dy: &[f32], w: &[f32], lambda_b: &[f32], dlambda_b: &mut [f32]) -> Vec<f32> {
    let n_out = lambda_b.len();
    assert!(dy.len() == w.len() && dlambda_b.len() == n_out && n_out > 0 && dy.len() % n_out == 0, "vera_grad_out: shapes");
    let mut g = vec![0f32; dy.len()];
    for ((gi, dyi), wi) in g.chunks_exact_mut(n_out).zip(dy.chunks_exact(n_out)).zip(w.chunks_exact(n_out)) {
        for ((((go, dv), wv), lb), d) in gi.iter_mut().zip(dyi).zip(wi).zip(lambda_b).zip(dlambda_b.iter_mut()) {
            *d += dv * wv;
            *go = lb * dv;
        }
    }
    g
}

/// The rank end of VeRA's backward, from `dv = B̂ᵀ·g` (`[t, r]`): `dλ_d += Σ_i dv ⊙ u` and
/// `dz += λ_d ⊙ dv`.
pub fn vera_grad_in(dv: &[f32], u: &[f32], lambda_d: &[f32], dlambda_d: &mut [f32], dz: &mut [f32]) {
    let r = lambda_d.len();
    assert!(dv.len() == u.len() && dz.len() == u.len() && dlambda_d.len() == r && r > 0, "vera_grad_in: shapes");
    for ((dvi, ui), dzi) in dv.chunks_exact(r).zip(u.chunks_exact(r)).zip(dz.chunks_exact_mut(r)) {
        for ((((v, uu), dd), z), ld) in dvi.iter().zip(ui).zip(dlambda_d.iter_mut()).zip(dzi.iter_mut()).zip(lambda_d) {
            *dd += v * uu;
            *z += ld * v;
        }
    }
}

/// `y += λ_b ⊙ w` over rows of `λ_b.len()`.
pub fn vera_add_scaled(w: &[f32], lambda_b: &[f32], y: &mut [f32]) {
    let n_out = lambda_b.len();
    for (yi, wi) in y.chunks_exact_mut(n_out).zip(w.chunks_exact(n_out)) {
        for ((yo, wo), lb) in yi.iter_mut().zip(wi).zip(lambda_b) {
            *yo += lb * wo;
        }
    }
}

/// The input side of [`vera_backward`]: `dx += dz·Â`.
pub fn vera_backward_down(dz: &[f32], t: usize, n_in: usize, p: VeraProj, dx: &mut [f32]) {
    assert!(n_in <= p.max_in && dz.len() == t * p.r && dx.len() == t * n_in, "vera_backward_down: shapes");
    kern().up(dz, p.r, t, p.r, None, p.a, p.max_in, n_in, None, 1.0, dx, n_in);
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
    assert!(dx.len() == t * n_in, "vera_backward: buffers");
    let mut dz = vec![0f32; t * p.r];
    vera_backward_up(dy, u, w, t, n_out, p, lambda_d, lambda_b, &mut dz, dlambda_d, dlambda_b);
    vera_backward_down(&dz, t, n_in, p, dx);
}
