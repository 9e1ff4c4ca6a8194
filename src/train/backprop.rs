//! Loss and adapter gradients of one sequence through the whole llama model, by hand (llm.c's
//! way): a forward pass that keeps each block's activations, then the backward pass block by
//! block in reverse. The base stays frozen and quantized: gradients reach the activations through
//! the transposed quantized products ([`super::matmul`], dequantizing panels on the fly), and only
//! the adapter's terms get weight gradients. fp32 numerics, one sequence from position 0, on the
//! calling thread (the trainer runs sequences of a batch on separate threads).
//!
//! With activation checkpointing ([`PassOptions::checkpoint`]) the forward keeps only each block's
//! input and the backward recomputes one block's activations at a time (one more forward pass of
//! the blocks, for memory of one block instead of all of them). VeRA terms that read the same
//! input through the same shared projections (q/k/v, gate/up) share one `Â·x` and one `dz·Â`.
//! The vocabulary head runs in chunks of rows, its logits overwritten by their gradient.
use super::adapter_grad::{lowrank_backward, lowrank_backward_scaled, lowrank_forward, vera_add_scaled, vera_backward_down, vera_backward_up, vera_down, vera_grad_in, vera_grad_out, vera_up, VeraProj};
use super::data::Sequence;
use super::matmul;
use super::packed::{self, PackedBase, PackedLinear, PackedVera};
use crate::kernels::int8::Int8Kernels;
use super::ops::{self, AttnShape, Rope};
use crate::adapter::{Adapter, Term};
use crate::kernels::{ops as kops, quant};
use crate::model::{LinearKind, Model};
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
        Self::zeros_with(ad, true)
    }

    /// As [`Grads::zeros_for`]; with `train_a` false the low-rank terms' `A` is frozen (FFA-LoRA,
    /// LoRA-XS, LoLDU): its gradient stays empty and is never computed.
    pub fn zeros_with(ad: &Adapter, train_a: bool) -> Result<Grads> {
        let mut layers: Vec<[Option<TermGrad>; 7]> = (0..ad.layers.len()).map(|_| Default::default()).collect();
        for (l, blk) in ad.layers.iter().enumerate() {
            for (k, t) in blk.iter().enumerate() {
                layers[l][k] = match t {
                    None => None,
                    Some(Term::LowRank(lr)) => Some(TermGrad::LowRank { da: if train_a { vec![0.0; lr.a.len()] } else { Vec::new() }, dbt: vec![0.0; lr.bt.len()] }),
                    Some(Term::Vera(v)) => Some(TermGrad::Vera { dlambda_d: vec![0.0; v.lambda_d.len()], dlambda_b: vec![0.0; v.lambda_b.len()] }),
                    Some(Term::Dora(_)) => return Err(Error::invalid("train", "DoRA terms are not trainable yet")),
                    Some(Term::MissBat(_)) => return Err(Error::invalid("train", "MiSS \"bat\" terms are not trainable")),
                };
            }
        }
        Ok(Grads { layers })
    }

    /// Sets every gradient to zero.
    pub fn zero(&mut self) {
        for g in self.layers.iter_mut().flatten().flatten() {
            match g {
                TermGrad::LowRank { da, dbt } => {
                    da.fill(0.0);
                    dbt.fill(0.0);
                }
                TermGrad::Vera { dlambda_d, dlambda_b } => {
                    dlambda_d.fill(0.0);
                    dlambda_b.fill(0.0);
                }
            }
        }
    }

    /// Adds `other` (same shapes) into `self`.
    pub fn add(&mut self, other: &Grads) {
        fn acc(a: &mut [f32], b: &[f32]) {
            a.iter_mut().zip(b).for_each(|(x, y)| *x += y);
        }
        for (a, b) in self.layers.iter_mut().flatten().zip(other.layers.iter().flatten()) {
            match (a, b) {
                (Some(TermGrad::LowRank { da, dbt }), Some(TermGrad::LowRank { da: db, dbt: dbb })) => {
                    acc(da, db);
                    acc(dbt, dbb);
                }
                (Some(TermGrad::Vera { dlambda_d, dlambda_b }), Some(TermGrad::Vera { dlambda_d: d2, dlambda_b: b2 })) => {
                    acc(dlambda_d, d2);
                    acc(dlambda_b, b2);
                }
                _ => {}
            }
        }
    }
}

/// ALLoRA's per-output-row gradient scales of every low-rank term, `[block][projection]`.
pub type RowScales = [[Option<Vec<f32>>; 7]];

/// How a pass runs.
#[derive(Clone, Copy, Debug)]
pub struct PassOptions<'a> {
    /// Keep only each block's input and recompute its activations in the backward pass.
    pub checkpoint: bool,
    /// The gradient computed is that of `grad_scale · Σ token losses` (`1 / n_targets` of the
    /// whole batch gives the batch mean).
    pub grad_scale: f32,
    /// ALLoRA: scale the low-rank terms' parameter gradients per output row (not `dx`).
    pub row_scales: Option<&'a RowScales>,
    /// The base packed for 8-bit products: its projections run through them (`None`: f32).
    pub packed: Option<&'a PackedBase>,
    /// Threads each 8-bit product splits its output columns among (1: the pass's own thread
    /// only), for threads a batch's sequences leave free.
    pub product_threads: usize,
}

impl PassOptions<'_> {
    /// No checkpointing, no row scales, gradient of `grad_scale · Σ losses`.
    pub fn plain(grad_scale: f32) -> PassOptions<'static> {
        PassOptions { checkpoint: false, grad_scale, row_scales: None, packed: None, product_threads: 1 }
    }
}

/// What a pass returns.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PassResult {
    /// Sum of the token losses (nats) over the sequence's targets.
    pub loss_sum: f64,
    /// Targets (unmasked positions) of the sequence.
    pub n_targets: usize,
}

/// Rows of the vocabulary head computed at once (logits of `HEAD_ROWS × n_vocab` floats).
const HEAD_ROWS: usize = 32;

/// The input groups of a block: projections in one group read the same input.
const GROUPS: [&[LinearKind]; 4] =
    [&[LinearKind::Q, LinearKind::K, LinearKind::V], &[LinearKind::O], &[LinearKind::Gate, LinearKind::Up], &[LinearKind::Down]];

/// One linear layer's saved adapter intermediate: low-rank `A·x` `[T, r]`, or VeRA's `w` `[T, n_out]`.
#[derive(Default)]
struct LinSave {
    ad: Vec<f32>,
}

/// VeRA's `u = Â·x` of one input group, per distinct shared projections (keyed by address).
type SharedU = Vec<(usize, Vec<f32>)>;

/// One block's saved activations.
#[derive(Default)]
struct BlockSave {
    x_in: Vec<f32>,
    rstd1: Vec<f32>,
    h: Vec<f32>,
    q_rot: Vec<f32>,
    k_rot: Vec<f32>,
    v: Vec<f32>,
    att: Vec<f32>,
    x_mid: Vec<f32>,
    rstd2: Vec<f32>,
    h2: Vec<f32>,
    gate: Vec<f32>,
    up: Vec<f32>,
    act: Vec<f32>,
    lin: [LinSave; 7],
    us: [SharedU; 4],
}

impl BlockSave {
    fn group_input(&self, g: usize) -> &[f32] {
        match g {
            0 => &self.h,
            1 => &self.att,
            2 => &self.h2,
            _ => &self.act,
        }
    }
}

fn vera_proj(sh: &crate::adapter::term::VeraShared) -> VeraProj<'_> {
    VeraProj { a: &sh.a, bt: &sh.bt, r: sh.r, max_in: sh.max_in, max_out: sh.max_out }
}

/// Called in the backward pass for every projection with its input `x` `[T, n_in]` and output
/// gradient `dy` `[T, n_out]` (`block, projection, x, dy, T`): what a base weight's gradient
/// `Σ dyᵀ·x` needs (LoRA-SB's initialisation).
pub type WeightGradHook<'h> = &'h (dyn Fn(usize, LinearKind, &[f32], &[f32], usize) + Sync);

/// VeRA's packed projections with the kernels they were packed for.
type PackedVeraRef<'a> = (&'static Int8Kernels, &'a PackedVera);

/// The shapes and helpers one pass shares.
struct Ctx<'a> {
    hook: Option<WeightGradHook<'a>>,
    row_scales: Option<&'a RowScales>,
    packed: Option<&'a PackedBase>,
    product_threads: usize,
    model: &'a Model,
    ad: &'a Adapter,
    t: usize,
    pos: Vec<usize>,
    shape: AttnShape,
    rope_q: Rope,
    rope_k: Rope,
}

impl Ctx<'_> {
    fn term(&self, l: usize, k: LinearKind) -> Option<&Term> {
        self.ad.layers[l][k as usize].as_ref()
    }

    /// Forward of the projections of group `g` on input `x`: returns their outputs in the group's
    /// order, saving the adapter intermediates into `save`.
    fn group_forward(&self, l: usize, g: usize, x: &[f32], save: &mut BlockSave) -> Result<Vec<Vec<f32>>> {
        let blk = &self.model.weights.blocks[l];
        let t = self.t;
        let mut outs = Vec::with_capacity(GROUPS[g].len());
        // With the packed base, the group's input is rounded to int8 once for all its products.
        let xq = self.packed.filter(|p| GROUPS[g].iter().any(|&k| p.linear(l, k).is_some())).map(|p| packed::quantize(p.kernels(), x, t, blk.linear(GROUPS[g][0]).n_in));
        for &kind in GROUPS[g] {
            let w = blk.linear(kind);
            let mut y = vec![0f32; t * w.n_out];
            match (self.packed_linear(l, kind), &xq) {
                (Some((k8, pl)), Some(xq)) => pl.forward_q(k8, xq, &mut y, self.product_threads),
                _ => matmul::forward(w, self.model.bytes(w), x, t, &mut y)?,
            }
            match self.term(l, kind) {
                None => {}
                Some(Term::LowRank(lr)) => {
                    let mut ax = vec![0f32; t * lr.r];
                    lowrank_forward(x, t, w.n_in, &lr.a, &lr.bt, lr.r, w.n_out, lr.scale, &mut ax, &mut y);
                    save.lin[kind as usize].ad = ax;
                }
                Some(Term::Vera(v)) => {
                    let p = vera_proj(&v.shared);
                    let key = packed::vera_key(&v.shared);
                    let pv = self.packed_vera(l, kind, key);
                    if !save.us[g].iter().any(|(k, _)| *k == key) {
                        let mut u = vec![0f32; t * p.r];
                        match (pv, &xq) {
                            (Some((k8, pv)), Some(xq)) => pv.down(k8, xq, &mut u, self.product_threads),
                            _ => vera_down(x, t, w.n_in, p, &mut u),
                        }
                        save.us[g].push((key, u));
                    }
                    let u = &save.us[g].iter().find(|(k, _)| *k == key).expect("computed above").1;
                    let mut wv = vec![0f32; t * w.n_out];
                    match pv {
                        Some((k8, pv)) => {
                            // w is recomputed in the backward pass (cheap in int8), not kept.
                            pv.up(k8, u, t, &v.lambda_d, w.n_out, &mut wv, self.product_threads);
                            vera_add_scaled(&wv, &v.lambda_b, &mut y);
                        }
                        None => {
                            vera_up(u, t, w.n_out, p, &v.lambda_d, &v.lambda_b, &mut wv, &mut y);
                            save.lin[kind as usize].ad = wv;
                        }
                    }
                }
                Some(Term::Dora(_)) => return Err(Error::invalid("train", "DoRA terms are not trainable yet")),
                Some(Term::MissBat(_)) => return Err(Error::invalid("train", "MiSS \"bat\" terms are not trainable")),
            }
            outs.push(y);
        }
        Ok(outs)
    }

    /// The packed projection `kind` of block `l` with its kernels, with the packed base.
    fn packed_linear(&self, l: usize, kind: LinearKind) -> Option<(&'static Int8Kernels, &PackedLinear)> {
        self.packed.and_then(|p| p.linear(l, kind).map(|pl| (p.kernels(), pl)))
    }

    /// The packed VeRA projections `key` for projection `kind` of block `l`: only where that
    /// projection itself is packed (so its widths are whole blocks).
    fn packed_vera(&self, l: usize, kind: LinearKind, key: usize) -> Option<PackedVeraRef<'_>> {
        self.packed_linear(l, kind)?;
        self.packed.and_then(|p| p.vera(key).map(|pv| (p.kernels(), pv)))
    }

    /// Backward of group `g`: `dys` are the gradients of its outputs (group order); adds the input
    /// gradient into `dx` and the parameter gradients into `gl`.
    fn group_backward(&self, l: usize, g: usize, save: &BlockSave, dys: &[&[f32]], dx: &mut [f32], gl: &mut [Option<TermGrad>; 7]) -> Result<()> {
        let blk = &self.model.weights.blocks[l];
        let t = self.t;
        let x = save.group_input(g);
        let mut dzs: Vec<(usize, Vec<f32>)> = save.us[g].iter().map(|(k, u)| (*k, vec![0f32; u.len()])).collect();
        let mut projs: Vec<(usize, VeraProj, usize, Option<PackedVeraRef>)> = Vec::new();
        for (&kind, dy) in GROUPS[g].iter().zip(dys) {
            let w = blk.linear(kind);
            if let Some(h) = self.hook {
                h(l, kind, x, dy, t);
            }
            match self.packed_linear(l, kind) {
                Some((k8, pl)) => pl.backward_dx(k8, dy, t, dx, self.product_threads),
                None => matmul::backward_dx(w, self.model.bytes(w), dy, t, dx)?,
            }
            let ls = &save.lin[kind as usize];
            match (self.term(l, kind), gl[kind as usize].as_mut()) {
                (None, _) => {}
                (Some(Term::LowRank(lr)), Some(TermGrad::LowRank { da, dbt })) => {
                    let c = self.row_scales.and_then(|rs| rs.get(l)).and_then(|b| b[kind as usize].as_deref());
                    match c {
                        Some(c) if !da.is_empty() => lowrank_backward_scaled(dy, x, &ls.ad, t, w.n_in, &lr.a, &lr.bt, lr.r, w.n_out, lr.scale, c, dx, da, dbt),
                        _ => {
                            let da = if da.is_empty() { None } else { Some(&mut da[..]) };
                            lowrank_backward(dy, x, &ls.ad, t, w.n_in, &lr.a, &lr.bt, lr.r, w.n_out, lr.scale, dx, da, dbt);
                        }
                    }
                }
                (Some(Term::Vera(v)), Some(TermGrad::Vera { dlambda_d, dlambda_b })) => {
                    let p = vera_proj(&v.shared);
                    let key = packed::vera_key(&v.shared);
                    let u = &save.us[g].iter().find(|(k, _)| *k == key).expect("saved in the forward").1;
                    let dz = &mut dzs.iter_mut().find(|(k, _)| *k == key).expect("one per u").1;
                    let pv = self.packed_vera(l, kind, key);
                    match pv {
                        Some((k8, pv)) => {
                            let mut wv = vec![0f32; t * w.n_out];
                            pv.up(k8, u, t, &v.lambda_d, w.n_out, &mut wv, self.product_threads);
                            let gv = vera_grad_out(dy, &wv, &v.lambda_b, dlambda_b);
                            drop(wv);
                            let mut dv = vec![0f32; t * p.r];
                            pv.back_up(k8, &gv, t, w.n_out, &mut dv, self.product_threads);
                            vera_grad_in(&dv, u, &v.lambda_d, dlambda_d, dz);
                        }
                        None => vera_backward_up(dy, u, &ls.ad, t, w.n_out, p, &v.lambda_d, &v.lambda_b, dz, dlambda_d, dlambda_b),
                    }
                    if !projs.iter().any(|(k, _, _, _)| *k == key) {
                        projs.push((key, p, w.n_in, pv));
                    }
                }
                _ => return Err(Error::invalid("train", "gradient buffers do not match the adapter's terms")),
            }
        }
        for (key, dz) in &dzs {
            let (_, p, n_in, pv) = projs.iter().find(|(k, _, _, _)| k == key).expect("recorded with its dz");
            match pv {
                Some((k8, pv)) => pv.back_down(k8, dz, t, *n_in, dx, self.product_threads),
                None => vera_backward_down(dz, t, *n_in, *p, dx),
            }
        }
        Ok(())
    }

    /// Block `l`'s forward: `x` in, `x` out; returns the saved activations.
    fn block_forward(&self, l: usize, x: &mut [f32]) -> Result<BlockSave> {
        let cfg = &self.model.config;
        let blk = &self.model.weights.blocks[l];
        let (t, d) = (self.t, cfg.n_embd);
        let ko = kops::selected();
        let mut s = BlockSave { x_in: x.to_vec(), rstd1: vec![0f32; t], h: vec![0f32; t * d], ..Default::default() };
        ops::rmsnorm_forward(x, &blk.attn_norm, cfg.rms_eps, &mut s.h, &mut s.rstd1);
        let h = std::mem::take(&mut s.h);
        let mut qkv = self.group_forward(l, 0, &h, &mut s)?.into_iter();
        s.h = h;
        let (mut q, mut k, v) = (qkv.next().unwrap(), qkv.next().unwrap(), qkv.next().unwrap());
        ops::rope_forward(ko, &mut q, &self.pos, self.rope_q);
        ops::rope_forward(ko, &mut k, &self.pos, self.rope_k);
        s.att = vec![0f32; t * cfg.q_dim()];
        ops::attention_forward_tiled(&q, &k, &v, self.shape, &mut s.att);
        (s.q_rot, s.k_rot, s.v) = (q, k, v);
        let att = std::mem::take(&mut s.att);
        let o = self.group_forward(l, 1, &att, &mut s)?.pop().unwrap();
        s.att = att;
        for (a, b) in x.iter_mut().zip(&o) {
            *a += b;
        }
        s.x_mid = x.to_vec();
        s.rstd2 = vec![0f32; t];
        let mut h2 = vec![0f32; t * d];
        ops::rmsnorm_forward(x, &blk.ffn_norm, cfg.rms_eps, &mut h2, &mut s.rstd2);
        let mut gu = self.group_forward(l, 2, &h2, &mut s)?.into_iter();
        s.h2 = h2;
        let (gate, up) = (gu.next().unwrap(), gu.next().unwrap());
        let mut act = vec![0f32; gate.len()];
        ops::swiglu_forward(&gate, &up, &mut act);
        (s.gate, s.up) = (gate, up);
        let dn = self.group_forward(l, 3, &act, &mut s)?.pop().unwrap();
        // Kept only when a low-rank term of ffn_down (dA) or the hook reads it.
        if self.hook.is_some() || matches!(self.term(l, LinearKind::Down), Some(Term::LowRank(_))) {
            s.act = act;
        }
        for (a, b) in x.iter_mut().zip(&dn) {
            *a += b;
        }
        Ok(s)
    }

    /// Block `l`'s backward: `dx` is the gradient of the block's output in, of its input out.
    fn block_backward(&self, l: usize, s: &BlockSave, dx: &mut Vec<f32>, gl: &mut [Option<TermGrad>; 7]) -> Result<()> {
        let cfg = &self.model.config;
        let blk = &self.model.weights.blocks[l];
        let (t, d) = (self.t, cfg.n_embd);
        let ko = kops::selected();
        // Feed-forward: x = x_mid + down(swiglu(gate(h2), up(h2))), h2 = rmsnorm(x_mid).
        let mut dact = vec![0f32; s.gate.len()];
        self.group_backward(l, 3, s, &[dx], &mut dact, gl)?;
        let (mut dg, mut du) = (vec![0f32; dact.len()], vec![0f32; dact.len()]);
        ops::swiglu_backward(&dact, &s.gate, &s.up, &mut dg, &mut du);
        drop(dact);
        let mut dh2 = vec![0f32; t * d];
        self.group_backward(l, 2, s, &[&dg, &du], &mut dh2, gl)?;
        drop((dg, du));
        let mut dx_mid = dx.clone();
        ops::rmsnorm_backward(&dh2, &s.x_mid, &blk.ffn_norm, &s.rstd2, &mut dx_mid);
        // Attention: x_mid = x_in + o(att(rope(q(h)), rope(k(h)), v(h))), h = rmsnorm(x_in).
        let mut datt = vec![0f32; t * cfg.q_dim()];
        self.group_backward(l, 1, s, &[&dx_mid], &mut datt, gl)?;
        let (mut dq_rot, mut dk_rot, mut dv) = (vec![0f32; s.q_rot.len()], vec![0f32; s.k_rot.len()], vec![0f32; s.v.len()]);
        ops::attention_backward_recompute(&datt, &s.q_rot, &s.k_rot, &s.v, self.shape, &mut dq_rot, &mut dk_rot, &mut dv);
        drop(datt);
        let (mut dq, mut dk) = (vec![0f32; dq_rot.len()], vec![0f32; dk_rot.len()]);
        ops::rope_backward(ko, &dq_rot, &self.pos, self.rope_q, &mut dq);
        ops::rope_backward(ko, &dk_rot, &self.pos, self.rope_k, &mut dk);
        let mut dh = vec![0f32; t * d];
        self.group_backward(l, 0, s, &[&dq, &dk, &dv], &mut dh, gl)?;
        ops::rmsnorm_backward(&dh, &s.x_in, &blk.attn_norm, &s.rstd1, &mut dx_mid);
        *dx = dx_mid;
        Ok(())
    }
}

/// Mean cross-entropy of `seq`'s targets under `model` + `ad` (scale 1), and its gradient with
/// respect to every adapter term, added into `grads` (no checkpointing).
pub fn loss_and_grad(model: &Model, ad: &Adapter, seq: &Sequence, grads: &mut Grads) -> Result<f32> {
    let n = seq.targets.iter().filter(|t| t.is_some()).count();
    let r = sequence_pass(model, ad, seq, grads, PassOptions::plain(1.0 / n.max(1) as f32))?;
    Ok(if n == 0 { 0.0 } else { (r.loss_sum / n as f64) as f32 })
}

/// Loss of `seq` under `model` + `ad` (scale 1) and the gradient of `opts.grad_scale · Σ losses`
/// with respect to every adapter term, added into `grads`.
pub fn sequence_pass(model: &Model, ad: &Adapter, seq: &Sequence, grads: &mut Grads, opts: PassOptions<'_>) -> Result<PassResult> {
    sequence_pass_hooked(model, ad, seq, grads, opts, None)
}

/// [`sequence_pass`], calling `hook` with every projection's input and output gradient.
pub fn sequence_pass_hooked(model: &Model, ad: &Adapter, seq: &Sequence, grads: &mut Grads, opts: PassOptions<'_>, hook: Option<WeightGradHook<'_>>) -> Result<PassResult> {
    let cfg = &model.config;
    let (d, t) = (cfg.n_embd, seq.input.len());
    if t == 0 || seq.targets.len() != t {
        return Err(Error::invalid("train", "a sequence needs inputs and one target slot per input"));
    }
    if ad.layers.len() != cfg.n_layer || grads.layers.len() != cfg.n_layer {
        return Err(Error::invalid("train", "adapter or gradients do not match the model's blocks"));
    }
    let kq = quant::selected();
    let rope_q = Rope { n_heads: cfg.n_head, head_dim: cfg.head_dim, n_rot: cfg.n_rot, freq_base: cfg.rope_base, neox: cfg.rope_neox };
    let ctx = Ctx {
        hook,
        row_scales: opts.row_scales,
        packed: opts.packed,
        product_threads: opts.product_threads.max(1),
        model,
        ad,
        t,
        pos: (0..t).collect(),
        shape: AttnShape { n_head: cfg.n_head, n_head_kv: cfg.n_head_kv, head_dim: cfg.head_dim },
        rope_q,
        rope_k: Rope { n_heads: cfg.n_head_kv, ..rope_q },
    };
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
        if let Some(tg) = seq.targets[i] {
            if tg as usize >= cfg.n_vocab {
                return Err(Error::invalid("train", format!("target id {tg} outside the vocabulary")));
            }
        }
        kq.dequantize_row(emb.ty, &eb[r * rb..(r + 1) * rb], &mut x[i * d..(i + 1) * d])?;
    }
    // Forward: every block's activations, or only its input when checkpointing.
    let mut saves = Vec::with_capacity(cfg.n_layer);
    for l in 0..cfg.n_layer {
        let s = ctx.block_forward(l, &mut x)?;
        saves.push(if opts.checkpoint { BlockSave { x_in: s.x_in, ..Default::default() } } else { s });
    }
    // Output norm, vocabulary head and loss, a chunk of rows at a time.
    let mut hf = vec![0f32; t * d];
    let mut rstdf = vec![0f32; t];
    ops::rmsnorm_forward(&x, &model.weights.output_norm, cfg.rms_eps, &mut hf, &mut rstdf);
    let out_w = &model.weights.output;
    let nv = cfg.n_vocab;
    let n_targets = seq.targets.iter().filter(|t| t.is_some()).count();
    let mut loss_sum = 0f64;
    let mut dhf = vec![0f32; t * d];
    let mut logits = vec![0f32; HEAD_ROWS.min(t) * nv];
    for r0 in (0..t).step_by(HEAD_ROWS) {
        let rows = HEAD_ROWS.min(t - r0);
        let lg = &mut logits[..rows * nv];
        let head = opts.packed.and_then(|p| p.output().map(|pl| (p.kernels(), pl)));
        match head {
            Some((k8, pl)) => pl.forward(k8, &hf[r0 * d..(r0 + rows) * d], rows, lg, ctx.product_threads),
            None => matmul::forward(out_w, model.bytes(out_w), &hf[r0 * d..(r0 + rows) * d], rows, lg)?,
        }
        loss_sum += ops::cross_entropy_fused(lg, &seq.targets[r0..r0 + rows], opts.grad_scale);
        match head {
            Some((k8, pl)) => pl.backward_dx(k8, lg, rows, &mut dhf[r0 * d..(r0 + rows) * d], ctx.product_threads),
            None => matmul::backward_dx(out_w, model.bytes(out_w), lg, rows, &mut dhf[r0 * d..(r0 + rows) * d])?,
        }
    }
    drop(logits);
    let mut dx = vec![0f32; t * d];
    ops::rmsnorm_backward(&dhf, &x, &model.weights.output_norm, &rstdf, &mut dx);
    drop((dhf, hf));
    for l in (0..cfg.n_layer).rev() {
        let mut s = saves.pop().expect("one save per block");
        if opts.checkpoint {
            let mut xi = std::mem::take(&mut s.x_in);
            s = ctx.block_forward(l, &mut xi)?;
        }
        ctx.block_backward(l, &s, &mut dx, &mut grads.layers[l])?;
    }
    Ok(PassResult { loss_sum, n_targets })
}

/// Bytes of activations one [`sequence_pass`] of `t` tokens keeps at its peak (an estimate
/// within a few percent: saved activations, the vocabulary head's chunk, the backward's
/// temporaries), for an adapter with rank `r` low-rank terms or VeRA terms of rank `r` on
/// `targets` projections of every block. `vera_keeps_w`: VeRA's `B̂·(λ_d ⊙ u)` of every
/// projection is kept for the backward (the f32 path; the int8 path recomputes it).
pub fn activation_bytes(cfg: &crate::model::Config, t: usize, vera: bool, r: usize, checkpoint: bool, vera_keeps_w: bool) -> usize {
    let (d, ff, q, kv) = (cfg.n_embd, cfg.n_ff, cfg.q_dim(), cfg.kv_dim());
    // Per token of one block: x_in, h, q, k, v, att, x_mid, h2, gate, up (+ rstds), and act for
    // a low-rank ffn_down (its dA reads it; VeRA's does not).
    let base = 4 * d + q + 2 * kv + q + 2 * ff + 2 + if vera { 0 } else { ff };
    let outs = q + 2 * kv + d + 2 * ff + d;
    let adapter = if vera { 4 * r + if vera_keeps_w { outs } else { 0 } } else { 7 * r };
    let block = t * (base + adapter) + 3 * 64 * t;
    let backward_tmp = t * (3 * ff + q + 2 * kv + 2 * d) + t * (outs.max(4 * r));
    let head = HEAD_ROWS.min(t) * cfg.n_vocab + 3 * t * d;
    let kept = if checkpoint { cfg.n_layer * t * d + block } else { cfg.n_layer * block };
    4 * (kept + backward_tmp + head)
}
