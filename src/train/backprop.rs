//! Loss and adapter gradients of one sequence through the whole llama model, by hand (llm.c's
//! way): a forward pass that keeps each block's activations, then the backward pass block by
//! block in reverse. The base stays frozen and quantized: gradients reach the activations through
//! the transposed quantized products (`gemm_dx`, dequantizing on the fly), and only the adapter's
//! terms get weight gradients. Single-threaded, fp32 numerics, one sequence from position 0: the
//! reference that the fast training path will be held to.
use super::adapter_grad::{lowrank_backward, lowrank_forward, vera_backward, vera_forward, VeraProj};
use super::data::Sequence;
use super::matmul;
use super::ops::{self, AttnShape, Rope};
use crate::adapter::{Adapter, Term};
use crate::kernels::{ops as kops, quant};
use crate::model::{Linear, LinearKind, Model};
use crate::{Error, Result};

/// The gradient of one adapter term.
#[derive(Clone, Debug, PartialEq)]
pub enum TermGrad {
    /// Of a low-rank term: `dA` `[r, n_in]` and `dBᵀ` `[r, n_out]`.
    LowRank {
        /// Gradient of `A`.
        da: Vec<f32>,
        /// Gradient of `Bᵀ`.
        dbt: Vec<f32>,
    },
    /// Of a VeRA term: `dλ_d` `[r]` and `dλ_b` `[n_out]`.
    Vera {
        /// Gradient of `λ_d`.
        dlambda_d: Vec<f32>,
        /// Gradient of `λ_b`.
        dlambda_b: Vec<f32>,
    },
}

/// Gradients of every term of an adapter, indexed like [`Adapter::layers`].
#[derive(Clone, Debug, PartialEq)]
pub struct Grads {
    /// `layers[block][kind as usize]`.
    pub layers: Vec<[Option<TermGrad>; 7]>,
}

impl Grads {
    /// Zero gradients shaped like `ad`'s terms; DoRA terms are refused (not trainable here yet).
    pub fn zeros_for(ad: &Adapter) -> Result<Grads> {
        let mut layers: Vec<[Option<TermGrad>; 7]> = (0..ad.layers.len()).map(|_| Default::default()).collect();
        for (l, blk) in ad.layers.iter().enumerate() {
            for (k, t) in blk.iter().enumerate() {
                layers[l][k] = match t {
                    None => None,
                    Some(Term::LowRank(lr)) => Some(TermGrad::LowRank { da: vec![0.0; lr.a.len()], dbt: vec![0.0; lr.bt.len()] }),
                    Some(Term::Vera(v)) => Some(TermGrad::Vera { dlambda_d: vec![0.0; v.lambda_d.len()], dlambda_b: vec![0.0; v.lambda_b.len()] }),
                    Some(Term::Dora(_)) => return Err(Error::invalid("train", "DoRA terms are not trainable yet")),
                };
            }
        }
        Ok(Grads { layers })
    }
}

/// What the forward pass of one linear layer keeps: its input and the adapter's intermediate.
struct LinearSave {
    x: Vec<f32>,
    /// Low-rank: `A·x` `[T, r]`; VeRA: `u = Â·x` `[T, r]` and `w` `[T, n_out]`.
    ad1: Vec<f32>,
    ad2: Vec<f32>,
}

/// `y = x·Wᵀ + adapter(x)` for `t` rows, keeping what the backward pass needs.
fn linear_forward(model: &Model, w: &Linear, term: Option<&Term>, x: &[f32], t: usize) -> Result<(Vec<f32>, LinearSave)> {
    let mut y = vec![0f32; t * w.n_out];
    matmul::forward(w, model.bytes(w), x, t, &mut y)?;
    let (mut ad1, mut ad2) = (Vec::new(), Vec::new());
    match term {
        None => {}
        Some(Term::LowRank(lr)) => {
            ad1 = vec![0f32; t * lr.r];
            lowrank_forward(x, t, w.n_in, &lr.a, &lr.bt, lr.r, w.n_out, lr.scale, &mut ad1, &mut y);
        }
        Some(Term::Vera(v)) => {
            let sh = &v.shared;
            ad1 = vec![0f32; t * sh.r];
            ad2 = vec![0f32; t * w.n_out];
            let p = VeraProj { a: &sh.a, bt: &sh.bt, r: sh.r, max_in: sh.max_in, max_out: sh.max_out };
            vera_forward(x, t, w.n_in, w.n_out, p, &v.lambda_d, &v.lambda_b, &mut ad1, &mut ad2, &mut y);
        }
        Some(Term::Dora(_)) => return Err(Error::invalid("train", "DoRA terms are not trainable yet")),
    }
    Ok((y, LinearSave { x: x.to_vec(), ad1, ad2 }))
}

/// Backward of [`linear_forward`]: `dx += dy·W` plus the adapter's input gradient; the adapter's
/// parameter gradients are added to `g`.
#[allow(clippy::too_many_arguments)]
fn linear_backward(model: &Model, w: &Linear, term: Option<&Term>, s: &LinearSave, dy: &[f32], t: usize, dx: &mut [f32], g: Option<&mut TermGrad>) -> Result<()> {
    matmul::backward_dx(w, model.bytes(w), dy, t, dx)?;
    match (term, g) {
        (None, _) => {}
        (Some(Term::LowRank(lr)), Some(TermGrad::LowRank { da, dbt })) => {
            lowrank_backward(dy, &s.x, &s.ad1, t, w.n_in, &lr.a, &lr.bt, lr.r, w.n_out, lr.scale, dx, Some(da), dbt);
        }
        (Some(Term::Vera(v)), Some(TermGrad::Vera { dlambda_d, dlambda_b })) => {
            let sh = &v.shared;
            let p = VeraProj { a: &sh.a, bt: &sh.bt, r: sh.r, max_in: sh.max_in, max_out: sh.max_out };
            vera_backward(dy, &s.ad1, &s.ad2, t, w.n_in, w.n_out, p, &v.lambda_d, &v.lambda_b, dx, dlambda_d, dlambda_b);
        }
        _ => return Err(Error::invalid("train", "gradient buffers do not match the adapter's terms")),
    }
    Ok(())
}

/// One block's saved activations.
struct BlockSave {
    x_in: Vec<f32>,
    rstd1: Vec<f32>,
    q: LinearSave,
    k: LinearSave,
    v: LinearSave,
    q_rot: Vec<f32>,
    k_rot: Vec<f32>,
    v_out: Vec<f32>,
    probs: Vec<f32>,
    o: LinearSave,
    x_mid: Vec<f32>,
    rstd2: Vec<f32>,
    gate: LinearSave,
    up: LinearSave,
    gate_out: Vec<f32>,
    up_out: Vec<f32>,
    down: LinearSave,
}

/// Mean cross-entropy of `seq`'s targets under `model` + `ad` (scale 1), and its gradient with
/// respect to every adapter term, added into `grads`.
pub fn loss_and_grad(model: &Model, ad: &Adapter, seq: &Sequence, grads: &mut Grads) -> Result<f32> {
    let cfg = &model.config;
    let (d, t) = (cfg.n_embd, seq.input.len());
    if t == 0 || seq.targets.len() != t {
        return Err(Error::invalid("train", "a sequence needs inputs and one target slot per input"));
    }
    if ad.layers.len() != cfg.n_layer || grads.layers.len() != cfg.n_layer {
        return Err(Error::invalid("train", "adapter or gradients do not match the model's blocks"));
    }
    let ko = kops::selected();
    let kq = quant::selected();
    let pos: Vec<usize> = (0..t).collect();
    let shape = AttnShape { n_head: cfg.n_head, n_head_kv: cfg.n_head_kv, head_dim: cfg.head_dim };
    let rope_q = Rope { n_heads: cfg.n_head, head_dim: cfg.head_dim, n_rot: cfg.n_rot, freq_base: cfg.rope_base, neox: cfg.rope_neox };
    let rope_k = Rope { n_heads: cfg.n_head_kv, ..rope_q };
    // Embedding.
    let emb = &model.weights.token_embd;
    let eb = model.bytes(emb);
    let rb = emb.row_bytes();
    let mut x = vec![0f32; t * d];
    for (i, &tok) in seq.input.iter().enumerate() {
        let r = tok as usize;
        if r >= cfg.n_vocab {
            return Err(Error::invalid("train", format!("token id {tok} outside the vocabulary")));
        }
        kq.dequantize_row(emb.ty, &eb[r * rb..(r + 1) * rb], &mut x[i * d..(i + 1) * d])?;
    }
    // Forward, keeping activations.
    let mut saves = Vec::with_capacity(cfg.n_layer);
    for (l, blk) in model.weights.blocks.iter().enumerate() {
        let term = |k: LinearKind| ad.layers[l][k as usize].as_ref();
        let mut h = vec![0f32; t * d];
        let mut rstd1 = vec![0f32; t];
        ops::rmsnorm_forward(&x, &blk.attn_norm, cfg.rms_eps, &mut h, &mut rstd1);
        let (mut q, sq) = linear_forward(model, blk.linear(LinearKind::Q), term(LinearKind::Q), &h, t)?;
        let (mut k, sk) = linear_forward(model, blk.linear(LinearKind::K), term(LinearKind::K), &h, t)?;
        let (v, sv) = linear_forward(model, blk.linear(LinearKind::V), term(LinearKind::V), &h, t)?;
        ops::rope_forward(ko, &mut q, &pos, rope_q);
        ops::rope_forward(ko, &mut k, &pos, rope_k);
        let mut probs = vec![0f32; cfg.n_head * t * t];
        let mut att = vec![0f32; t * cfg.q_dim()];
        ops::attention_forward(&q, &k, &v, shape, &mut probs, &mut att);
        let (o, so) = linear_forward(model, blk.linear(LinearKind::O), term(LinearKind::O), &att, t)?;
        let x_in = x.clone();
        for (a, b) in x.iter_mut().zip(&o) {
            *a += b;
        }
        let mut h2 = vec![0f32; t * d];
        let mut rstd2 = vec![0f32; t];
        ops::rmsnorm_forward(&x, &blk.ffn_norm, cfg.rms_eps, &mut h2, &mut rstd2);
        let (g, sg) = linear_forward(model, blk.linear(LinearKind::Gate), term(LinearKind::Gate), &h2, t)?;
        let (u, su) = linear_forward(model, blk.linear(LinearKind::Up), term(LinearKind::Up), &h2, t)?;
        let mut act = vec![0f32; g.len()];
        ops::swiglu_forward(&g, &u, &mut act);
        let (dn, sd) = linear_forward(model, blk.linear(LinearKind::Down), term(LinearKind::Down), &act, t)?;
        let x_mid = x.clone();
        for (a, b) in x.iter_mut().zip(&dn) {
            *a += b;
        }
        saves.push(BlockSave { x_in, rstd1, q: sq, k: sk, v: sv, q_rot: q, k_rot: k, v_out: v, probs, o: so, x_mid, rstd2, gate: sg, up: su, gate_out: g, up_out: u, down: sd });
    }
    // Output norm, tied or separate output, loss.
    let mut hf = vec![0f32; t * d];
    let mut rstdf = vec![0f32; t];
    ops::rmsnorm_forward(&x, &model.weights.output_norm, cfg.rms_eps, &mut hf, &mut rstdf);
    let out_w = &model.weights.output;
    let nv = cfg.n_vocab;
    let mut logits = vec![0f32; t * nv];
    matmul::forward(out_w, model.bytes(out_w), &hf, t, &mut logits)?;
    let mut losses = vec![0f32; t];
    let loss = ops::cross_entropy_forward(&logits, &seq.targets, &mut losses);
    // Backward.
    let mut dlogits = vec![0f32; t * nv];
    ops::cross_entropy_backward(&logits, &seq.targets, &mut dlogits);
    drop(logits);
    let mut dhf = vec![0f32; t * d];
    matmul::backward_dx(out_w, model.bytes(out_w), &dlogits, t, &mut dhf)?;
    drop(dlogits);
    let mut dx = vec![0f32; t * d];
    ops::rmsnorm_backward(&dhf, &x, &model.weights.output_norm, &rstdf, &mut dx);
    for (l, blk) in model.weights.blocks.iter().enumerate().rev() {
        let s = saves.pop().expect("one save per block");
        let term = |k: LinearKind| ad.layers[l][k as usize].as_ref();
        let gl = &mut grads.layers[l];
        // Feed-forward: x = x_mid + down(swiglu(gate(h2), up(h2))), h2 = rmsnorm(x_mid).
        let mut dact = vec![0f32; s.gate_out.len()];
        {
            let [_, _, _, _, _, _, gd] = gl;
            linear_backward(model, blk.linear(LinearKind::Down), term(LinearKind::Down), &s.down, &dx, t, &mut dact, gd.as_mut())?;
        }
        let (mut dg, mut du) = (vec![0f32; dact.len()], vec![0f32; dact.len()]);
        ops::swiglu_backward(&dact, &s.gate_out, &s.up_out, &mut dg, &mut du);
        let mut dh2 = vec![0f32; t * d];
        {
            let [_, _, _, _, gg, gu, _] = gl;
            linear_backward(model, blk.linear(LinearKind::Gate), term(LinearKind::Gate), &s.gate, &dg, t, &mut dh2, gg.as_mut())?;
            linear_backward(model, blk.linear(LinearKind::Up), term(LinearKind::Up), &s.up, &du, t, &mut dh2, gu.as_mut())?;
        }
        let mut dx_mid = dx.clone();
        ops::rmsnorm_backward(&dh2, &s.x_mid, &blk.ffn_norm, &s.rstd2, &mut dx_mid);
        // Attention: x_mid = x_in + o(att(rope(q(h)), rope(k(h)), v(h))), h = rmsnorm(x_in).
        let mut datt = vec![0f32; t * cfg.q_dim()];
        {
            let [_, _, _, go, _, _, _] = gl;
            linear_backward(model, blk.linear(LinearKind::O), term(LinearKind::O), &s.o, &dx_mid, t, &mut datt, go.as_mut())?;
        }
        let (mut dq_rot, mut dk_rot, mut dv) = (vec![0f32; s.q_rot.len()], vec![0f32; s.k_rot.len()], vec![0f32; s.v_out.len()]);
        ops::attention_backward(&datt, &s.q_rot, &s.k_rot, &s.v_out, &s.probs, shape, &mut dq_rot, &mut dk_rot, &mut dv);
        let (mut dq, mut dk) = (vec![0f32; dq_rot.len()], vec![0f32; dk_rot.len()]);
        ops::rope_backward(ko, &dq_rot, &pos, rope_q, &mut dq);
        ops::rope_backward(ko, &dk_rot, &pos, rope_k, &mut dk);
        let mut dh = vec![0f32; t * d];
        {
            let [gq, gk, gv, _, _, _, _] = gl;
            linear_backward(model, blk.linear(LinearKind::Q), term(LinearKind::Q), &s.q, &dq, t, &mut dh, gq.as_mut())?;
            linear_backward(model, blk.linear(LinearKind::K), term(LinearKind::K), &s.k, &dk, t, &mut dh, gk.as_mut())?;
            linear_backward(model, blk.linear(LinearKind::V), term(LinearKind::V), &s.v, &dv, t, &mut dh, gv.as_mut())?;
        }
        let mut dx_in = dx_mid.clone();
        ops::rmsnorm_backward(&dh, &s.x_in, &blk.attn_norm, &s.rstd1, &mut dx_in);
        dx = dx_in;
    }
    Ok(loss)
}
