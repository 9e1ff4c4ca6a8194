//! Forward/backward pairs of the ops of a llama block, on f32 row-major buffers.
//!
//! Conventions (as in llm.c):
//! - `T` rows (tokens) of `C` columns; shapes are given in the docs as `[T, C]`.
//! - A backward takes the gradient of the op's output (`dy`, `dout`, …) and **adds** (`+=`) the
//!   gradients of the inputs into the `d*` buffers: callers zero them once per step, and a value
//!   used by several ops collects the sum of its gradients.
//! - Saved activations (`rstd`, `att_probs`) are written by the forward and read by the backward.
//! - Lengths are checked with `assert!`: a mismatch is a bug of the caller and panics, except in
//!   [`linear_backward_dx`], which returns the kernel layer's [`Result`].
//!
//! Weights are frozen: only gradients to activations are computed (an adapter's own weights get
//! their gradients elsewhere). Row sums use f64 accumulation where cancellation or long rows
//! could hurt (norms, softmax denominators, cross-entropy).
use crate::kernels::ops::OpKernels;
use crate::model::Linear;
use crate::quant::QuantType;
use crate::Result;

/// RMSNorm forward over rows of `C = w.len()`: `y = x · rstd · w` with
/// `rstd = 1 / sqrt(mean(x²) + eps)` per row (the math of [`OpKernels::rmsnorm`]).
///
/// `x`, `y`: `[T, C]`; `rstd`: `[T]`, saved for [`rmsnorm_backward`].
pub fn rmsnorm_forward(x: &[f32], w: &[f32], eps: f32, y: &mut [f32], rstd: &mut [f32]) {
    let c = w.len();
    assert!(c > 0, "rmsnorm_forward: empty weight");
    assert_eq!(x.len(), rstd.len() * c, "rmsnorm_forward: x is not [T, C]");
    assert_eq!(y.len(), x.len(), "rmsnorm_forward: y length");
    for ((xr, yr), r) in x.chunks_exact(c).zip(y.chunks_exact_mut(c)).zip(rstd.iter_mut()) {
        let ss: f64 = xr.iter().map(|&v| (v as f64) * (v as f64)).sum();
        let rs = (1.0 / (ss / c as f64 + eps as f64).sqrt()) as f32;
        *r = rs;
        for ((o, &xv), &wv) in yr.iter_mut().zip(xr).zip(w) {
            *o = xv * rs * wv;
        }
    }
}

/// RMSNorm backward (frozen weight): `dx += rstd·w·dy − x · rstd³/C · Σ(dy·w·x)` per row.
///
/// `dy`, `x`, `dx`: `[T, C]` with `C = w.len()`; `rstd`: `[T]` from [`rmsnorm_forward`].
pub fn rmsnorm_backward(dy: &[f32], x: &[f32], w: &[f32], rstd: &[f32], dx: &mut [f32]) {
    let c = w.len();
    assert!(c > 0, "rmsnorm_backward: empty weight");
    assert_eq!(x.len(), rstd.len() * c, "rmsnorm_backward: x is not [T, C]");
    assert_eq!(dy.len(), x.len(), "rmsnorm_backward: dy length");
    assert_eq!(dx.len(), x.len(), "rmsnorm_backward: dx length");
    for (((dyr, xr), dxr), &rs) in dy.chunks_exact(c).zip(x.chunks_exact(c)).zip(dx.chunks_exact_mut(c)).zip(rstd) {
        let dot: f64 = dyr.iter().zip(xr).zip(w).map(|((&g, &xv), &wv)| g as f64 * wv as f64 * xv as f64).sum();
        let k = (dot * (rs as f64).powi(3) / c as f64) as f32;
        for (((d, &g), &xv), &wv) in dxr.iter_mut().zip(dyr).zip(xr).zip(w) {
            *d += rs * wv * g - xv * k;
        }
    }
}

/// The RoPE layout of one projection: `n_heads` heads of `head_dim`, the first `n_rot`
/// dimensions of each rotated with base `freq_base`; `neox` picks the pair layout (as in
/// [`OpKernels::rope`]).
#[derive(Clone, Copy, Debug)]
pub struct Rope {
    /// Heads per row.
    pub n_heads: usize,
    /// Width of one head.
    pub head_dim: usize,
    /// Rotated dimensions per head (even, at most `head_dim`).
    pub n_rot: usize,
    /// Frequency base (10000 for llama).
    pub freq_base: f32,
    /// NeoX pair layout (`i`, `i + n_rot/2`) instead of adjacent pairs.
    pub neox: bool,
}

impl Rope {
    fn width(&self) -> usize {
        self.n_heads * self.head_dim
    }
}

/// RoPE forward, in place on `x` `[T, n_heads·head_dim]`: row `t` rotated at position `pos[t]`.
pub fn rope_forward(ko: &OpKernels, x: &mut [f32], pos: &[usize], r: Rope) {
    let c = r.width();
    assert_eq!(x.len(), pos.len() * c, "rope_forward: x is not [T, n_heads·head_dim]");
    for (row, &p) in x.chunks_exact_mut(c).zip(pos) {
        ko.rope(row, r.n_heads, r.head_dim, r.n_rot, p, r.freq_base, r.neox, false);
    }
}

/// RoPE backward: the rotation is orthogonal, so `dx += R(pos)ᵀ · dy`, the inverse rotation of
/// `dy` (the kernel's `inverse` mode), row by row. `dy`, `dx`: `[T, n_heads·head_dim]`.
pub fn rope_backward(ko: &OpKernels, dy: &[f32], pos: &[usize], r: Rope, dx: &mut [f32]) {
    let c = r.width();
    assert_eq!(dy.len(), pos.len() * c, "rope_backward: dy is not [T, n_heads·head_dim]");
    assert_eq!(dx.len(), dy.len(), "rope_backward: dx length");
    let mut tmp = vec![0f32; c];
    for ((g, d), &p) in dy.chunks_exact(c).zip(dx.chunks_exact_mut(c)).zip(pos) {
        tmp.copy_from_slice(g);
        ko.rope(&mut tmp, r.n_heads, r.head_dim, r.n_rot, p, r.freq_base, r.neox, true);
        for (o, v) in d.iter_mut().zip(&tmp) {
            *o += v;
        }
    }
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// SwiGLU forward: `out = silu(gate) · up` element-wise, `silu(g) = g·σ(g)`.
pub fn swiglu_forward(gate: &[f32], up: &[f32], out: &mut [f32]) {
    assert_eq!(gate.len(), up.len(), "swiglu_forward: gate and up lengths differ");
    assert_eq!(out.len(), gate.len(), "swiglu_forward: out length");
    for ((o, &g), &u) in out.iter_mut().zip(gate).zip(up) {
        *o = g * sigmoid(g) * u;
    }
}

/// SwiGLU backward: `dgate += dout·up·σ(g)·(1 + g·(1 − σ(g)))`, `dup += dout·silu(g)`.
pub fn swiglu_backward(dout: &[f32], gate: &[f32], up: &[f32], dgate: &mut [f32], dup: &mut [f32]) {
    let n = gate.len();
    assert!(dout.len() == n && up.len() == n && dgate.len() == n && dup.len() == n, "swiglu_backward: lengths differ");
    for i in 0..n {
        let (g, u, d) = (gate[i], up[i], dout[i]);
        let s = sigmoid(g);
        dgate[i] += d * u * s * (1.0 + g * (1.0 - s));
        dup[i] += d * g * s;
    }
}

/// The head layout of causal grouped-query attention over one sequence: `n_head` query heads,
/// `n_head_kv` key/value heads (dividing `n_head`; query head `h` reads kv head
/// `h / (n_head / n_head_kv)`, as the inference pass), `head_dim` per head.
#[derive(Clone, Copy, Debug)]
pub struct AttnShape {
    /// Query heads.
    pub n_head: usize,
    /// Key/value heads.
    pub n_head_kv: usize,
    /// Width of one head.
    pub head_dim: usize,
}

impl AttnShape {
    /// Checks the shape against `T` rows of `q`, `k`, `v` (and `att_probs`); returns `T`.
    fn check(&self, op: &str, q: usize, k: usize, v: usize, probs: usize) -> usize {
        let (h, kv, hd) = (self.n_head, self.n_head_kv, self.head_dim);
        assert!(h > 0 && kv > 0 && hd > 0 && h % kv == 0, "{op}: n_head must be a multiple of n_head_kv");
        assert_eq!(q % (h * hd), 0, "{op}: q is not [T, n_head·head_dim]");
        let t = q / (h * hd);
        assert_eq!(k, t * kv * hd, "{op}: k is not [T, n_head_kv·head_dim]");
        assert_eq!(v, k, "{op}: v is not [T, n_head_kv·head_dim]");
        assert_eq!(probs, h * t * t, "{op}: att_probs is not [n_head, T, T]");
        t
    }
}

/// Query rows per tile of the attention kernels: each tile computes its scores against keys
/// `0..i1` (the causal prefix of its last row) with the register-tiled f32 kernels.
const ATT_TILE: usize = 64;

/// `out[j, i] = m[i, j]` for the `rows × cols` block of `m` (row stride `ld`).
fn transpose_block(m: &[f32], ld: usize, rows: usize, cols: usize, out: &mut [f32]) {
    for i in 0..rows {
        for j in 0..cols {
            out[j * rows + i] = m[i * ld + j];
        }
    }
}

/// Scores of query rows `i0 .. i0 + rows` of head `h` against keys `0..i1`, softmaxed in place
/// (scaled, causal: zero above the diagonal up to column `ldp`), into `p` (row stride `ldp >= i1`).
#[allow(clippy::too_many_arguments)]
fn softmax_tile(q: &[f32], k: &[f32], s: AttnShape, h: usize, i0: usize, rows: usize, i1: usize, p: &mut [f32], ldp: usize) {
    let (hd, qd, kvd) = (s.head_dim, s.n_head * s.head_dim, s.n_head_kv * s.head_dim);
    let kh = (h / (s.n_head / s.n_head_kv)) * hd;
    let scale = 1.0 / (hd as f32).sqrt();
    crate::kernels::adapter::selected().down(&q[i0 * qd + h * hd..], qd, rows, &k[kh..], kvd, i1, hd, p, ldp);
    let ko = crate::kernels::ops::selected();
    for r in 0..rows {
        let t = i0 + r;
        let pr = &mut p[r * ldp..][..ldp];
        pr[..=t].iter_mut().for_each(|v| *v *= scale);
        ko.softmax(&mut pr[..=t]);
        pr[t + 1..].fill(0.0);
    }
}

/// Causal attention forward for one sequence (positions `0..T`), scale `1/sqrt(head_dim)`.
///
/// `q`: `[T, n_head·hd]`; `k`, `v`: `[T, n_head_kv·hd]`; `att_probs`: `[n_head, T, T]`, written
/// with the softmax weights (row `t` of head `h` at `(h·T + t)·T`, zero above the diagonal) and
/// saved for [`attention_backward`]; `out`: `[T, n_head·hd]`, overwritten.
pub fn attention_forward(q: &[f32], k: &[f32], v: &[f32], s: AttnShape, att_probs: &mut [f32], out: &mut [f32]) {
    let t_len = s.check("attention_forward", q.len(), k.len(), v.len(), att_probs.len());
    assert_eq!(out.len(), q.len(), "attention_forward: out length");
    let (hd, qd, kvd) = (s.head_dim, s.n_head * s.head_dim, s.n_head_kv * s.head_dim);
    let group = s.n_head / s.n_head_kv;
    let ka = crate::kernels::adapter::selected();
    out.fill(0.0);
    for h in 0..s.n_head {
        let kh = (h / group) * hd;
        let ph = &mut att_probs[h * t_len * t_len..][..t_len * t_len];
        for i0 in (0..t_len).step_by(ATT_TILE) {
            let (rows, i1) = (ATT_TILE.min(t_len - i0), (i0 + ATT_TILE).min(t_len));
            softmax_tile(q, k, s, h, i0, rows, i1, &mut ph[i0 * t_len..], t_len);
            ka.up(&ph[i0 * t_len..], t_len, rows, i1, None, &v[kh..], kvd, hd, None, 1.0, &mut out[i0 * qd + h * hd..], qd);
        }
    }
}

/// [`attention_forward`] without keeping the softmax weights (the backward recomputes them:
/// [`attention_backward_recompute`]); scratch of one tile of rows.
pub fn attention_forward_tiled(q: &[f32], k: &[f32], v: &[f32], s: AttnShape, out: &mut [f32]) {
    let t_len = s.check("attention_forward", q.len(), k.len(), v.len(), s.n_head * (q.len() / (s.n_head * s.head_dim).max(1)).pow(2));
    assert_eq!(out.len(), q.len(), "attention_forward: out length");
    let (hd, qd, kvd) = (s.head_dim, s.n_head * s.head_dim, s.n_head_kv * s.head_dim);
    let group = s.n_head / s.n_head_kv;
    let ka = crate::kernels::adapter::selected();
    let mut p = vec![0f32; ATT_TILE.min(t_len) * t_len];
    out.fill(0.0);
    for h in 0..s.n_head {
        let kh = (h / group) * hd;
        for i0 in (0..t_len).step_by(ATT_TILE) {
            let (rows, i1) = (ATT_TILE.min(t_len - i0), (i0 + ATT_TILE).min(t_len));
            softmax_tile(q, k, s, h, i0, rows, i1, &mut p, i1);
            ka.up(&p, i1, rows, i1, None, &v[kh..], kvd, hd, None, 1.0, &mut out[i0 * qd + h * hd..], qd);
        }
    }
}

/// The backward of one tile of query rows `i0 .. i0 + rows` of head `h`, from its softmax
/// weights `p` (row stride `ldp`, keys `0..i1`); `ds` and `tr` are scratch of `rows × i1`.
#[allow(clippy::too_many_arguments)]
fn tile_backward(
    dout: &[f32],
    q: &[f32],
    k: &[f32],
    v: &[f32],
    s: AttnShape,
    h: usize,
    (i0, rows, i1): (usize, usize, usize),
    p: &[f32],
    ldp: usize,
    (dq, dk, dv): (&mut [f32], &mut [f32], &mut [f32]),
    ds: &mut [f32],
    tr: &mut [f32],
) {
    let (hd, qd, kvd) = (s.head_dim, s.n_head * s.head_dim, s.n_head_kv * s.head_dim);
    let kh = (h / (s.n_head / s.n_head_kv)) * hd;
    let scale = 1.0 / (hd as f32).sqrt();
    let ka = crate::kernels::adapter::selected();
    // dv[0..i1] += Pᵀ·dout.
    transpose_block(p, ldp, rows, i1, tr);
    ka.up(tr, rows, i1, rows, None, &dout[i0 * qd + h * hd..], qd, hd, None, 1.0, &mut dv[kh..], kvd);
    // dP = dout·Vᵀ, then the softmax backward ds = p·(dp − Σ p·dp), scaled.
    ka.down(&dout[i0 * qd + h * hd..], qd, rows, &v[kh..], kvd, i1, hd, ds, i1);
    for r in 0..rows {
        let t = i0 + r;
        let pr = &p[r * ldp..][..=t];
        let dr = &mut ds[r * i1..][..i1];
        let pdp: f64 = pr.iter().zip(dr.iter()).map(|(&a, &b)| (a * b) as f64).sum();
        let pdp = pdp as f32;
        for (d, &pj) in dr[..=t].iter_mut().zip(pr) {
            *d = pj * (*d - pdp) * scale;
        }
        dr[t + 1..].fill(0.0);
    }
    // dq[i0..i1] += ds·K; dk[0..i1] += dsᵀ·Q.
    ka.up(ds, i1, rows, i1, None, &k[kh..], kvd, hd, None, 1.0, &mut dq[i0 * qd + h * hd..], qd);
    transpose_block(ds, i1, rows, i1, tr);
    ka.up(tr, rows, i1, rows, None, &q[i0 * qd + h * hd..], qd, hd, None, 1.0, &mut dk[kh..], kvd);
}

/// Causal attention backward: from `dout` `[T, n_head·hd]` and the saved `att_probs`, adds the
/// gradients into `dq` `[T, n_head·hd]`, `dk` and `dv` `[T, n_head_kv·hd]` (query heads sharing
/// a kv head add into the same rows).
#[allow(clippy::too_many_arguments)]
pub fn attention_backward(
    dout: &[f32],
    q: &[f32],
    k: &[f32],
    v: &[f32],
    att_probs: &[f32],
    s: AttnShape,
    dq: &mut [f32],
    dk: &mut [f32],
    dv: &mut [f32],
) {
    let t_len = s.check("attention_backward", q.len(), k.len(), v.len(), att_probs.len());
    assert!(dout.len() == q.len() && dq.len() == q.len(), "attention_backward: dout / dq length");
    assert!(dk.len() == k.len() && dv.len() == v.len(), "attention_backward: dk / dv length");
    let tile = ATT_TILE.min(t_len);
    let (mut ds, mut tr) = (vec![0f32; tile * t_len], vec![0f32; tile * t_len]);
    for h in 0..s.n_head {
        let ph = &att_probs[h * t_len * t_len..][..t_len * t_len];
        for i0 in (0..t_len).step_by(ATT_TILE) {
            let (rows, i1) = (ATT_TILE.min(t_len - i0), (i0 + ATT_TILE).min(t_len));
            tile_backward(dout, q, k, v, s, h, (i0, rows, i1), &ph[i0 * t_len..], t_len, (&mut *dq, &mut *dk, &mut *dv), &mut ds, &mut tr);
        }
    }
}

/// [`attention_backward`] recomputing the softmax weights tile by tile from `q` and `k` instead of
/// reading them (what [`attention_forward_tiled`] pairs with: `T²·n_head` floats less to keep).
#[allow(clippy::too_many_arguments)]
pub fn attention_backward_recompute(dout: &[f32], q: &[f32], k: &[f32], v: &[f32], s: AttnShape, dq: &mut [f32], dk: &mut [f32], dv: &mut [f32]) {
    let t_len = q.len() / (s.n_head * s.head_dim).max(1);
    s.check("attention_backward", q.len(), k.len(), v.len(), s.n_head * t_len * t_len);
    assert!(dout.len() == q.len() && dq.len() == q.len(), "attention_backward: dout / dq length");
    assert!(dk.len() == k.len() && dv.len() == v.len(), "attention_backward: dk / dv length");
    let tile = ATT_TILE.min(t_len);
    let (mut p, mut ds, mut tr) = (vec![0f32; tile * t_len], vec![0f32; tile * t_len], vec![0f32; tile * t_len]);
    for h in 0..s.n_head {
        for i0 in (0..t_len).step_by(ATT_TILE) {
            let (rows, i1) = (ATT_TILE.min(t_len - i0), (i0 + ATT_TILE).min(t_len));
            softmax_tile(q, k, s, h, i0, rows, i1, &mut p, i1);
            tile_backward(dout, q, k, v, s, h, (i0, rows, i1), &p, i1, (&mut *dq, &mut *dk, &mut *dv), &mut ds, &mut tr);
        }
    }
}

fn ce_check(op: &str, logits: usize, targets: &[Option<u32>]) -> usize {
    assert!(!targets.is_empty() && logits % targets.len() == 0 && logits > 0, "{op}: logits is not [T, V]");
    logits / targets.len()
}

/// Cross-entropy forward: `losses[t] = logsumexp(logits[t]) − logits[t][target]` for rows with a
/// target, `0` for masked rows (`None`); returns the mean over the unmasked rows (`0` when all are
/// masked). `logits`: `[T, V]` with `T = targets.len()`. Panics on a target `>= V`.
pub fn cross_entropy_forward(logits: &[f32], targets: &[Option<u32>], losses: &mut [f32]) -> f32 {
    let v = ce_check("cross_entropy_forward", logits.len(), targets);
    assert_eq!(losses.len(), targets.len(), "cross_entropy_forward: losses length");
    let (mut total, mut n) = (0f64, 0usize);
    for ((row, tg), l) in logits.chunks_exact(v).zip(targets).zip(losses.iter_mut()) {
        *l = 0.0;
        let Some(tg) = *tg else { continue };
        assert!((tg as usize) < v, "cross_entropy_forward: target {tg} >= vocabulary {v}");
        let mx = row.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x));
        let se: f64 = row.iter().map(|&x| ((x - mx) as f64).exp()).sum();
        let loss = se.ln() + mx as f64 - row[tg as usize] as f64;
        *l = loss as f32;
        total += loss;
        n += 1;
    }
    if n == 0 {
        0.0
    } else {
        (total / n as f64) as f32
    }
}

/// Cross-entropy backward of the mean loss of [`cross_entropy_forward`]:
/// `dlogits[t] += (softmax(logits[t]) − onehot(target)) / n_unmasked`; masked rows get nothing.
pub fn cross_entropy_backward(logits: &[f32], targets: &[Option<u32>], dlogits: &mut [f32]) {
    let v = ce_check("cross_entropy_backward", logits.len(), targets);
    assert_eq!(dlogits.len(), logits.len(), "cross_entropy_backward: dlogits length");
    let n = targets.iter().filter(|t| t.is_some()).count();
    if n == 0 {
        return;
    }
    let inv_n = 1.0 / n as f64;
    for ((row, tg), d) in logits.chunks_exact(v).zip(targets).zip(dlogits.chunks_exact_mut(v)) {
        let Some(tg) = *tg else { continue };
        assert!((tg as usize) < v, "cross_entropy_backward: target {tg} >= vocabulary {v}");
        let mx = row.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x));
        let se: f64 = row.iter().map(|&x| ((x - mx) as f64).exp()).sum();
        let k = inv_n / se;
        for (i, (di, &x)) in d.iter_mut().zip(row).enumerate() {
            let mut g = ((x - mx) as f64).exp() * k;
            if i == tg as usize {
                g -= inv_n;
            }
            *di += g as f32;
        }
    }
}

/// Cross-entropy of a chunk of rows, fused: returns `Σ losses` over the rows with a target and
/// overwrites `logits` with the gradient of `scale · Σ losses` (`scale·(softmax − onehot)`; masked
/// rows get zeros). The chunked form of [`cross_entropy_forward`] + [`cross_entropy_backward`]
/// (with `scale = 1 / n_unmasked` of the whole sequence they agree).
pub fn cross_entropy_fused(logits: &mut [f32], targets: &[Option<u32>], scale: f32) -> f64 {
    let v = ce_check("cross_entropy_fused", logits.len(), targets);
    let mut total = 0f64;
    for (row, tg) in logits.chunks_exact_mut(v).zip(targets) {
        let Some(tg) = *tg else {
            row.fill(0.0);
            continue;
        };
        assert!((tg as usize) < v, "cross_entropy_fused: target {tg} >= vocabulary {v}");
        let mx = row.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x));
        let zt = (row[tg as usize] - mx) as f64;
        let mut se = 0f64;
        for x in row.iter_mut() {
            let e = (*x - mx).exp();
            se += e as f64;
            *x = e;
        }
        total += se.ln() - zt;
        let k = (scale as f64 / se) as f32;
        row.iter_mut().for_each(|x| *x *= k);
        row[tg as usize] -= scale;
    }
    total
}

/// Gradient to the input of a frozen linear layer `y = x·Wᵀ`: `dx += dy·W`, through the selected
/// ISA's quantized `gemm_dx` kernel ([`crate::kernels::quant::QuantKernels::gemm_dx`]).
///
/// `w`: `n_out` rows of `n_in` elements of `ty` (the raw GGUF bytes); `dy`: `[T, n_out]`;
/// `dx`: `[T, n_in]`. Errors when `ty` is not a weight format, `n_in` is not a whole number of its
/// blocks, `w` is not exactly `n_out` rows, or `dy` / `dx` are not `T` whole rows.
pub fn linear_backward_dx(ty: QuantType, n_in: usize, n_out: usize, w: &[u8], dy: &[f32], dx: &mut [f32]) -> Result<()> {
    let op = "linear_backward_dx";
    let rb = ty.row_bytes(n_in).ok_or_else(|| crate::Error::invalid(op, format!("{n_in} elements are not whole {ty} blocks")))?;
    if w.len() != n_out * rb {
        return Err(crate::Error::invalid(op, format!("{} weight bytes, {n_out} rows of {rb} need {}", w.len(), n_out * rb)));
    }
    if n_in == 0 || n_out == 0 || dy.len() % n_out != 0 || dx.len() != dy.len() / n_out * n_in {
        return Err(crate::Error::invalid(op, format!("dy ({}) and dx ({}) are not [T, {n_out}] and [T, {n_in}]", dy.len(), dx.len())));
    }
    let t = dy.len() / n_out;
    crate::kernels::quant::selected().gemm_dx(ty, n_in, w, n_out, dy, n_out, t, dx, n_in)
}

/// [`linear_backward_dx`] for a model projection: `w` is its matrix, as
/// [`crate::model::Model::bytes`] returns it.
pub fn linear_backward_dx_for(l: &Linear, w: &[u8], dy: &[f32], dx: &mut [f32]) -> Result<()> {
    linear_backward_dx(l.ty, l.n_in, l.n_out, w, dy, dx)
}
