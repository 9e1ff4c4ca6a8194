//! The llama forward pass over a batch of sequences, each with its own KV cache.
//!
//! All tokens of all sequences in a call form one activation matrix `[T, d]`: every base product
//! runs once for the whole batch (weight rows split among threads, each unpacked weight block reused
//! across the batch's rows); attention runs per token against its own sequence's cache.
//! Every linear layer goes through `Runner::linears`, the one place where adapter terms join.
use super::kv_cache::{KvCache, KvRows};
use super::weights::{Linear, LinearKind};
use super::Model;
use crate::kernels::int8::PackedMatrix;
use crate::kernels::{ops, quant};
use crate::pool::{split, Arrivals, Pool, SharedMut};
use crate::quant::QuantType;
use crate::{Error, Result};
use half::f16;
use crate::adapter::term::MissBat;
use crate::adapter::{Adapter, Term};
use std::ops::Range;
use std::sync::Arc;

/// How the forward pass rounds its intermediate values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Numerics {
    /// llama.cpp's: activations quantized to 8 bits (Q8_0 / Q8_1 / Q8_K) before each quantized
    /// product, an f16 KV cache, queries and attention weights rounded to f16. The fast default.
    #[default]
    Q8,
    /// fp32: weights dequantized on the fly against f32 activations, an f32 KV cache, no rounding
    /// in attention; the numerics of transformers on the dequantized weights.
    F32,
}

impl Numerics {
    /// Parses `q8` or `f32`.
    pub fn parse(s: &str) -> Option<Numerics> {
        match s {
            "q8" | "llama.cpp" => Some(Numerics::Q8),
            "f32" | "fp32" => Some(Numerics::F32),
            _ => None,
        }
    }
}

/// Which logits a sequence wants from a forward call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Logits {
    /// None (prompt chunks whose output nobody reads).
    None,
    /// Only the last token's.
    Last,
    /// Every token's (training).
    All,
    /// The last `n` tokens' (perplexity scores the second half of each chunk).
    Tail(usize),
}

/// One sequence's part of a forward call.
pub struct SeqInput<'a> {
    /// New tokens, appended after the cache's positions.
    pub tokens: &'a [u32],
    /// The sequence's cache; the new positions are added to it.
    pub cache: &'a mut KvCache,
    /// Which logits to return.
    pub logits: Logits,
}

/// Scratch buffers of a forward call, kept between calls to avoid re-allocating.
#[derive(Default)]
struct Scratch {
    x: Vec<f32>,
    h: Vec<f32>,
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    att: Vec<f32>,
    gate: Vec<f32>,
    up: Vec<f32>,
    act: Vec<u8>,
    k16: Vec<f16>,
    v16: Vec<f16>,
    logits: Vec<f32>,
    /// Adapter scratch of one `linears` call.
    ad: AdScratch,
}

/// Adapter scratch: the down-projections `A·x`, and the input quantized to Q8_0 for 8-bit factors.
#[derive(Default)]
struct AdScratch {
    t: Vec<f32>,
    xq: Vec<u8>,
    /// The input rounded for the int8 products (VeRA's `Â·x`).
    xi8: crate::kernels::int8::QuantizedRows,
}

fn grow<T: Clone + Default>(v: &mut Vec<T>, n: usize) -> &mut [T] {
    if v.len() < n {
        v.resize(n, T::default());
    }
    &mut v[..n]
}

/// Runs forward passes of one model on a thread pool.
pub struct Runner {
    model: Arc<Model>,
    pool: Pool,
    numerics: Numerics,
    s: Scratch,
    adapters: crate::adapter::AdapterSet,
}

/// Rows of W a thread takes at a time, so that threads write whole cache lines of the output.
const ROW_ALIGN: usize = 16;

impl Runner {
    /// A runner on `threads` threads (0: all cores).
    pub fn new(model: Arc<Model>, threads: usize) -> Runner {
        Runner::with_numerics(model, threads, Numerics::Q8)
    }

    /// A runner on `threads` threads (0: all cores) with the given numerics.
    pub fn with_numerics(model: Arc<Model>, threads: usize, numerics: Numerics) -> Runner {
        let threads = if threads == 0 { std::thread::available_parallelism().map_or(1, |n| n.get()) } else { threads };
        Runner { model, pool: Pool::new(threads), numerics, s: Scratch::default(), adapters: Default::default() }
    }

    /// The numerics of this runner.
    pub fn numerics(&self) -> Numerics {
        self.numerics
    }

    /// An empty KV cache suited to this runner, using the runner's default adapter set.
    pub fn new_cache(&self) -> KvCache {
        let mut c = KvCache::with_numerics(&self.model.config, self.numerics);
        c.set_adapters(self.adapters.clone());
        c
    }

    /// Sets the adapter set that caches made by [`Runner::new_cache`] start with (each sequence
    /// can change its own afterwards with [`KvCache::set_adapters`]).
    pub fn set_default_adapters(&mut self, set: crate::adapter::AdapterSet) {
        self.adapters = set;
    }

    /// The model.
    pub fn model(&self) -> &Arc<Model> {
        &self.model
    }

    /// Threads in use.
    pub fn threads(&self) -> usize {
        self.pool.threads()
    }

    /// Runs the new tokens of every sequence through the model, appends their keys and values to
    /// each sequence's cache, and returns the requested logits, `[rows, n_vocab]`, in sequence order
    /// (one row per `Last`, one per token for `All`, the last `k` for `Tail(k)`).
    pub fn forward(&mut self, seqs: &mut [SeqInput<'_>]) -> Result<&[f32]> {
        let model = self.model.clone();
        let cfg = &model.config;
        let (d, qd, kvd, ff) = (cfg.n_embd, cfg.q_dim(), cfg.kv_dim(), cfg.n_ff);
        let t_total: usize = seqs.iter().map(|s| s.tokens.len()).sum();
        if t_total == 0 {
            return Ok(&[]);
        }
        // Row i of the batch: (sequence index, position).
        let mut rows = Vec::with_capacity(t_total);
        for (si, s) in seqs.iter().enumerate() {
            for (j, &tok) in s.tokens.iter().enumerate() {
                if tok as usize >= cfg.n_vocab {
                    return Err(Error::invalid("forward", format!("token id {tok} outside the vocabulary ({})", cfg.n_vocab)));
                }
                rows.push((si, s.cache.len() + j));
            }
        }
        let kq = quant::selected();
        let ko = ops::selected();
        let t = t_total;
        if let Some(s) = seqs.iter().find(|s| s.cache.numerics() != self.numerics) {
            return Err(Error::invalid("forward", format!("a {:?} cache given to a {:?} runner", s.cache.numerics(), self.numerics)));
        }
        let nm = self.numerics;
        let segs = adapter_segments(seqs);

        // Embedding.
        let x = grow(&mut self.s.x, t * d);
        let emb = &model.weights.token_embd;
        let emb_bytes = model.bytes(emb);
        let rb = emb.row_bytes();
        let mut i = 0;
        for s in seqs.iter() {
            for &tok in s.tokens {
                let r = tok as usize;
                kq.dequantize_row(emb.ty, &emb_bytes[r * rb..(r + 1) * rb], &mut x[i * d..(i + 1) * d])?;
                i += 1;
            }
        }

        for (l, blk) in model.weights.blocks.iter().enumerate() {
            // Attention.
            {
                let (x, h) = (&self.s.x[..t * d], grow(&mut self.s.h, t * d));
                for i in 0..t {
                    ko.rmsnorm(&x[i * d..(i + 1) * d], Some(&blk.attn_norm), &mut h[i * d..(i + 1) * d], cfg.rms_eps);
                }
            }
            grow(&mut self.s.q, t * qd);
            grow(&mut self.s.k, t * kvd);
            grow(&mut self.s.v, t * kvd);
            {
                let Scratch { h, q, k, v, act, ad, .. } = &mut self.s;
                Self::linears(&self.pool, nm, &model, &h[..t * d], t, act, (l, &segs, ad), &mut [
                    (blk.linear(LinearKind::Q), &mut q[..t * qd]),
                    (blk.linear(LinearKind::K), &mut k[..t * kvd]),
                    (blk.linear(LinearKind::V), &mut v[..t * kvd]),
                ])?;
            }
            // RoPE, then the new keys and values join each sequence's cache (as f16).
            {
                let Scratch { q, k, v, k16, v16, .. } = &mut self.s;
                for (i, &(_, pos)) in rows.iter().enumerate() {
                    ko.rope(&mut q[i * qd..(i + 1) * qd], cfg.n_head, cfg.head_dim, cfg.n_rot, pos, cfg.rope_base, cfg.rope_neox, false);
                    ko.rope(&mut k[i * kvd..(i + 1) * kvd], cfg.n_head_kv, cfg.head_dim, cfg.n_rot, pos, cfg.rope_base, cfg.rope_neox, false);
                }
                if nm == Numerics::Q8 {
                    let k16 = grow(k16, t * kvd);
                    let v16 = grow(v16, t * kvd);
                    ko.f32_to_f16(&k[..t * kvd], k16);
                    ko.f32_to_f16(&v[..t * kvd], v16);
                }
                let mut i0 = 0;
                for s in seqs.iter_mut() {
                    let r = i0 * kvd..(i0 + s.tokens.len()) * kvd;
                    match nm {
                        Numerics::Q8 => s.cache.append(l, &k16[r.clone()], &v16[r]),
                        Numerics::F32 => s.cache.append_f32(l, &k[r.clone()], &v[r]),
                    }
                    i0 += s.tokens.len();
                }
            }
            {
                let caches: Vec<&KvCache> = seqs.iter().map(|s| &*s.cache).collect();
                let att = grow(&mut self.s.att, t * qd);
                attention(&self.pool, ko, cfg, l, &caches, &rows, &self.s.q[..t * qd], att);
            }
            {
                let Scratch { att, h, act, ad, .. } = &mut self.s;
                Self::linears(&self.pool, nm, &model, &att[..t * qd], t, act, (l, &segs, ad), &mut [(blk.linear(LinearKind::O), &mut h[..t * d])])?;
            }
            add_in_place(&mut self.s.x[..t * d], &self.s.h[..t * d]);

            // Feed-forward.
            {
                let (x, h) = (&self.s.x[..t * d], grow(&mut self.s.h, t * d));
                for i in 0..t {
                    ko.rmsnorm(&x[i * d..(i + 1) * d], Some(&blk.ffn_norm), &mut h[i * d..(i + 1) * d], cfg.rms_eps);
                }
            }
            grow(&mut self.s.gate, t * ff);
            grow(&mut self.s.up, t * ff);
            {
                let Scratch { h, gate, up, act, ad, .. } = &mut self.s;
                Self::linears(&self.pool, nm, &model, &h[..t * d], t, act, (l, &segs, ad), &mut [
                    (blk.linear(LinearKind::Gate), &mut gate[..t * ff]),
                    (blk.linear(LinearKind::Up), &mut up[..t * ff]),
                ])?;
                ko.silu_gate(&mut gate[..t * ff], &up[..t * ff]);
            }
            {
                let Scratch { gate, h, act, ad, .. } = &mut self.s;
                Self::linears(&self.pool, nm, &model, &gate[..t * ff], t, act, (l, &segs, ad), &mut [(blk.linear(LinearKind::Down), &mut h[..t * d])])?;
            }
            add_in_place(&mut self.s.x[..t * d], &self.s.h[..t * d]);
        }
        for s in seqs.iter_mut() {
            s.cache.commit(s.tokens.len());
        }

        // Logits of the requested rows.
        let mut out_rows = Vec::new();
        let mut i0 = 0;
        for s in seqs.iter() {
            let n = s.tokens.len();
            match s.logits {
                Logits::None => {}
                Logits::Last => out_rows.push(i0 + n - 1),
                Logits::All => out_rows.extend(i0..i0 + n),
                Logits::Tail(k) => out_rows.extend(i0 + n - k.min(n)..i0 + n),
            }
            i0 += n;
        }
        let m = out_rows.len();
        if m == 0 {
            return Ok(&[]);
        }
        {
            let Scratch { x, h, .. } = &mut self.s;
            let h = grow(h, m * d);
            for (j, &r) in out_rows.iter().enumerate() {
                ko.rmsnorm(&x[r * d..(r + 1) * d], Some(&model.weights.output_norm), &mut h[j * d..(j + 1) * d], cfg.rms_eps);
            }
        }
        let nv = cfg.n_vocab;
        grow(&mut self.s.logits, m * nv);
        {
            let Scratch { h, logits, act, ad, .. } = &mut self.s;
            Self::linears(&self.pool, nm, &model, &h[..m * d], m, act, (usize::MAX, &[], ad), &mut [(&model.weights.output, &mut logits[..m * nv])])?;
        }
        Ok(&self.s.logits[..m * nv])
    }

    /// `Y_j = X · W_jᵀ` for each (W_j, Y_j) of `outs`, all reading the same input `x` (`[t, n_in]`):
    /// the input is quantized once per activation format, then one parallel region computes every
    /// product, each thread taking a share of every matrix's rows.
    ///
    /// `adapters` is (block index, adapter segments, scratch): each segment's adapters add their
    /// terms to the rows it covers, in the same region as the base product — each thread computes
    /// its share of every down-projection `A·x` (of every term's rank) first, then its base rows,
    /// then, once all shares are in, the up-projections (and MiSS "bat" terms) of its own output
    /// columns.
    #[allow(clippy::too_many_arguments)]
    fn linears(pool: &Pool, nm: Numerics, model: &Model, x: &[f32], t: usize, act: &mut Vec<u8>, adapters: (usize, &[Segment], &mut AdScratch), outs: &mut [(&Linear, &mut [f32])]) -> Result<()> {
        let n = x.len() / t;
        let kq = quant::selected();
        let at = if nm == Numerics::F32 { QuantType::F32 } else { outs[0].0.ty.act_type() };
        if outs.iter().any(|(w, y)| (nm == Numerics::Q8 && w.ty.act_type() != at) || w.n_in != n || y.len() != t * w.n_out) {
            return Err(Error::invalid("linears", "matrices of one input must share shape and activation format"));
        }
        let arb = at.row_bytes(n).ok_or_else(|| Error::invalid("linears", format!("width {n} is not a multiple of the {at} block")))?;
        let xq: &[u8] = if at == QuantType::F32 {
            // SAFETY: f32 has no invalid bit patterns and u8 has alignment 1; the view covers exactly
            // the bytes of `x`.
            unsafe { std::slice::from_raw_parts(x.as_ptr().cast(), x.len() * 4) }
        } else {
            let a = grow(act, t * arb);
            if t >= 8 {
                let ap = SharedMut(a.as_mut_ptr());
                pool.run(|tid, nth| {
                    let r = split(t, tid, nth, 1);
                    // SAFETY: thread tid writes only activation rows r, disjoint from the others'.
                    let dst = unsafe { std::slice::from_raw_parts_mut(ap.get().add(r.start * arb), r.len() * arb) };
                    kq.quantize_act(at, &x[r.start * n..r.end * n], dst).expect("lengths checked above");
                });
            } else {
                for i in 0..t {
                    kq.quantize_act(at, &x[i * n..(i + 1) * n], &mut a[i * arb..(i + 1) * arb])?;
                }
            }
            &act[..t * arb]
        };
        let jobs: Vec<(&Linear, &[u8], SharedMut<f32>)> =
            outs.iter_mut().map(|(w, y)| (*w, model.bytes(w), SharedMut(y.as_mut_ptr()))).collect();
        let (layer, segs, ad) = adapters;
        let plan = AdapterPlan::build(layer, segs, &jobs.iter().map(|j| j.0).collect::<Vec<_>>(), model, nm == Numerics::Q8);
        let ka = crate::kernels::adapter::selected();
        // 8-bit factors read the input as Q8_0 rows: those the base product reads where its
        // activations are Q8_0 or Q8_1 (whose d and qs are Q8_0's), else a Q8_0 copy made here.
        let own_q8 = !matches!(at, QuantType::Q8_0 | QuantType::Q8_1);
        let down_act = if own_q8 { QuantType::Q8_0 } else { at };
        if own_q8 && plan.down.iter().any(|u| u.a_q8.is_some()) {
            let rb = QuantType::Q8_0.row_bytes(n).expect("8-bit factors only for widths of whole blocks");
            let q = grow(&mut ad.xq, t * rb);
            for i in 0..t {
                kq.quantize_act(QuantType::Q8_0, &x[i * n..(i + 1) * n], &mut q[i * rb..(i + 1) * rb])?;
            }
        }
        let k8 = crate::kernels::int8::selected();
        if plan.down.iter().any(|u| u.a_i8.is_some()) {
            k8.quantize_rows(x, n, t, n / 32, &mut ad.xi8);
        }
        // The threads share each down-projection's rank at the start of the main region, and wait
        // for one another only before their first up-projection, after a base product (a split
        // barrier: by then the others are long done). Measured against every thread computing all
        // down-projections itself (no wait; BENCHMARKS.md): a rank-16 LoRA decodes 1-2% faster.
        grow(&mut ad.t, plan.t_len);
        let arrivals = Arrivals::new();
        let AdScratch { t: tbuf, xq: xq_ad, xi8 } = ad;
        let xi8 = &*xi8;
        let xq8: &[u8] = if own_q8 { xq_ad } else { xq };
        let tp = SharedMut(tbuf.as_mut_ptr());
        // Columns jr of unit u's down-projection into the shared T buffer.
        let down = |u: &DownUnit, jr: Range<usize>| {
            if let Some(pa) = u.a_i8 {
                // SAFETY: as below: unit u's T rows, columns jr, of this thread alone.
                unsafe { k8.gemm_raw(xi8, u.rows.start, u.rows.len(), pa, jr.start, jr.len(), 0, u.n_in / 32, tp.get().add(u.t_off + jr.start), u.r, false) };
            } else if let Some(aq) = u.a_q8 {
                let rb = QuantType::Q8_0.row_bytes(u.n_in).expect("whole blocks");
                let xrb = down_act.row_bytes(u.n_in).expect("whole blocks");
                // SAFETY: unit u owns T[u.t_off .. + rows*r] (units are disjoint) and each thread
                // writes its own columns jr of it, rows*r floats with stride r inside that span.
                unsafe {
                    kq.gemm_q8_0_raw(down_act, u.n_in, &aq[jr.start * rb..jr.end * rb], jr.len(), &xq8[u.rows.start * xrb..u.rows.end * xrb], u.rows.len(), tp.get().add(u.t_off + jr.start), u.r);
                }
            } else {
                // SAFETY: as above: columns jr of the unit's rows, this thread's alone.
                unsafe { ka.down_raw(&x[u.rows.start * n..u.rows.end * n], n, u.rows.len(), &u.a[jr.start * u.lda..], u.lda, jr.len(), u.n_in, tp.get().add(u.t_off + jr.start), u.r) };
            }
        };
        pool.run(|tid, nth| {
            for u in &plan.down {
                // The int8 product takes columns from a group of 16.
                let jr = split(u.r, tid, nth, if u.a_i8.is_some() { 16 } else { 1 });
                if !jr.is_empty() {
                    down(u, jr);
                }
            }
            arrivals.arrive();
            // Whether the other threads' shares of T are known complete.
            let mut waited = false;
            // Int8 up-projection products by unit, computed ahead for later units (see `int8_ups`),
            // with whether each is computed in this region: per-thread buffers kept from region
            // to region for their capacity.
            let (mut ups, mut have) = UP_STASH.with(|c| std::mem::take(&mut *c.borrow_mut()));
            ups.resize_with(plan.up.len(), Vec::new);
            have.clear();
            have.resize(plan.up.len(), false);
            for (ji, &(w, wb, y)) in jobs.iter().enumerate() {
                let r = split(w.n_out, tid, nth, ROW_ALIGN);
                if r.is_empty() {
                    continue;
                }
                let wrb = w.row_bytes();
                // SAFETY: y points at a [t, n_out] buffer; this thread writes only columns r of each
                // row (disjoint from other threads' columns), the kernel writes y[i*ldy + c] for
                // i < t and c < r.len(), all inside the buffer; weights and activations are shared reads.
                unsafe {
                    kq.gemm_raw(w.ty, n, &wb[r.start * wrb..r.end * wrb], r.len(), xq, at == QuantType::F32, t, y.get().add(r.start), w.n_out);
                }
                for bs in plan.base_scale.iter().filter(|b| b.job == ji) {
                    for i in bs.rows.clone() {
                        for c in r.clone() {
                            let f = 1.0 + bs.list.iter().map(|(cv, s)| s * (cv[c] - 1.0)).sum::<f32>();
                            // SAFETY: element (i, c) is in this thread's column range r of the [t, n_out] output.
                            unsafe { *y.get().add(i * w.n_out + c) *= f };
                        }
                    }
                }
                for (ui, u) in plan.up.iter().enumerate().filter(|(_, u)| u.job == ji) {
                    if !waited {
                        arrivals.wait_all(nth);
                        waited = true;
                    }
                    // SAFETY: the T rows of unit u, written by every thread before `arrive` and read
                    // after `wait_all` (so complete, and no longer written by anyone).
                    let t_of = |u: &UpUnit| unsafe { std::slice::from_raw_parts(tp.get().add(u.t_off), u.rows.len() * u.r) };
                    let tu = t_of(u);
                    let yp = y.get().wrapping_add(u.rows.start * w.n_out + r.start);
                    let os = u.oscale.map(|o| &o[r.start..]);
                    if let Some(pb) = u.b_i8 {
                        // This unit's products, computed here with those of every later unit
                        // reading the same B (and kept for them), or kept from an earlier one.
                        if !have[ui] {
                            let units: Vec<(usize, &UpUnit, Range<usize>, &[f32])> = (ui..plan.up.len())
                                .filter(|&k| plan.up[k].b_i8.is_some_and(|b| std::ptr::eq(b, pb)) && plan.up[k].rows == u.rows)
                                .map(|k| (k, &plan.up[k], split(jobs[plan.up[k].job].0.n_out, tid, nth, ROW_ALIGN), t_of(&plan.up[k])))
                                .collect();
                            int8_ups(k8, pb, &units, &mut ups);
                            units.iter().for_each(|&(k, ..)| have[k] = true);
                        }
                        add_up(u, &ups[ui], r.clone(), yp, w.n_out);
                        continue;
                    }
                    // SAFETY: rows u.rows × columns r of the [t, n_out] output: this thread's columns.
                    unsafe {
                        match u.bt_q8 {
                            Some(bq) => ka.up_q8_0_raw(tu, u.r, u.rows.len(), u.r, u.tscale, bq, u.ldb / 32 * 34, r.start, r.len(), os, u.s, yp, w.n_out),
                            None => ka.up_raw(tu, u.r, u.rows.len(), u.r, u.tscale, &u.bt[r.start..], u.ldb, r.len(), os, u.s, yp, w.n_out),
                        }
                    }
                }
                for b in plan.bias.iter().filter(|b| b.job == ji) {
                    for i in b.rows.clone() {
                        for c in r.clone() {
                            // SAFETY: element (i, c) is in this thread's column range r of the [t, n_out] output.
                            unsafe { *y.get().add(i * w.n_out + c) += b.s * b.bias[c] };
                        }
                    }
                }
                for u in plan.bat.iter().filter(|u| u.job == ji) {
                    miss_bat(kq, w, wb, at, x, u, r.clone(), y);
                }
            }
            UP_STASH.with(|c| *c.borrow_mut() = (ups, have));
        });
        Ok(())
    }
}

thread_local! {
    /// Each thread's buffers for `int8_ups`' results (by up-projection unit) and their flags.
    static UP_STASH: std::cell::RefCell<(Vec<Vec<f32>>, Vec<bool>)> = Default::default();
}

/// Up-projections through the int8 products that read one packed `B` (`r` a multiple of 32, every
/// column range from a multiple of 16): for each unit `u` (at index `k` of `out`) with this
/// thread's output columns `cols`, `out[k][i, c] = Σ_j B[cols.start + c, j]·(tscale[j]·t[i, j])`
/// (`rows × |cols|`).
/// Where several units need the same columns of `B` (VeRA's projections reading one layer input
/// share `B̂`), one product takes all their rows, so those columns of `B` are read once instead of
/// once per projection; each row's values are the same bits as a product of its own.
fn int8_ups(k8: &crate::kernels::int8::Int8Kernels, pb: &PackedMatrix, units: &[(usize, &UpUnit, Range<usize>, &[f32])], out: &mut [Vec<f32>]) {
    thread_local! {
        /// `λ_d ⊙ t` rows, their int8 rounding, and the product, reused from call to call.
        static SCRATCH: std::cell::RefCell<(Vec<f32>, crate::kernels::int8::QuantizedRows, Vec<f32>)> = Default::default();
    }
    let r = units[0].1.r;
    let mut cuts: Vec<usize> = units.iter().flat_map(|(_, _, c, _)| [c.start, c.end]).collect();
    cuts.sort_unstable();
    cuts.dedup();
    for &(k, u, ref c, _) in units {
        out[k].clear();
        out[k].resize(u.rows.len() * c.len(), 0.0);
    }
    SCRATCH.with(|sc| {
        let (act, q, wv) = &mut *sc.borrow_mut();
        for seg in cuts.windows(2) {
            let (c0, c1) = (seg[0], seg[1]);
            let who: Vec<usize> = (0..units.len()).filter(|&g| units[g].2.start <= c0 && c1 <= units[g].2.end).collect();
            if who.is_empty() {
                continue;
            }
            act.clear();
            for &g in &who {
                let (_, u, _, tu) = units[g];
                match u.tscale {
                    Some(ts) => act.extend(tu.chunks_exact(r).flat_map(|row| row.iter().zip(ts).map(|(a, b)| a * b))),
                    None => act.extend_from_slice(tu),
                }
            }
            let m = act.len() / r;
            let nc = c1 - c0;
            k8.quantize_rows(act, r, m, r / 32, q);
            wv.clear();
            wv.resize(m * nc, 0.0);
            // SAFETY: wv holds m × nc floats with stride nc, owned here.
            unsafe { k8.gemm_raw(q, 0, m, pb, c0, nc, 0, r / 32, wv.as_mut_ptr(), nc, false) };
            let mut row = 0;
            for &g in &who {
                let (k, u, c, _) = &units[g];
                let (k, ldo) = (*k, c.len());
                for i in 0..u.rows.len() {
                    out[k][i * ldo + c0 - c.start..i * ldo + c1 - c.start].copy_from_slice(&wv[row * nc..(row + 1) * nc]);
                    row += 1;
                }
            }
        }
    });
}

/// `y[i, c] += s·oscale[c]·w[i, c]` over an up-projection's rows and this thread's columns `cols`
/// (`w` is `rows × |cols|`; `yp` points at row `u.rows.start`, column `cols.start` of the output).
fn add_up(u: &UpUnit, w: &[f32], cols: Range<usize>, yp: *mut f32, ldy: usize) {
    let nc = cols.len();
    for i in 0..u.rows.len() {
        // SAFETY: the caller's rows u.rows × columns cols of the [t, ldy] output are this thread's
        // alone; row i's nc columns from yp are inside them, and nothing else references them
        // during this call.
        let y = unsafe { std::slice::from_raw_parts_mut(yp.add(i * ldy), nc) };
        let w = &w[i * nc..(i + 1) * nc];
        match u.oscale {
            Some(o) => y.iter_mut().zip(w.iter().zip(&o[cols.clone()])).for_each(|(y, (w, o))| *y += u.s * o * w),
            None => y.iter_mut().zip(w).for_each(|(y, w)| *y += u.s * w),
        }
    }
}

/// MiSS "bat" for this thread's output rows `cols` of a `[t, n_out]` output `y`: for each block
/// row `i` of the weight these rows touch, the unit's input rows with every `r`-chunk transformed
/// by `M_i` go through the base rows of that block (the same kernel and activation format as the
/// base product), and `(M_i·Σ_j x_j)[a]` joins each row.
#[allow(clippy::too_many_arguments)]
fn miss_bat(kq: &quant::QuantKernels, w: &Linear, wb: &[u8], at: QuantType, x: &[f32], u: &BatUnit, cols: Range<usize>, y: SharedMut<f32>) {
    let (b, n, no) = (u.t, w.n_in, w.n_out);
    let (r, m) = (b.r, u.rows.len());
    // This thread's rows grouped by block, as runs of consecutive rows.
    let mut blocks: std::collections::BTreeMap<usize, Vec<Range<usize>>> = Default::default();
    for o in cols {
        let runs = blocks.entry(b.hf(o) / r).or_default();
        match runs.last_mut() {
            Some(run) if run.end == o => run.end = o + 1,
            _ => runs.push(o..o + 1),
        }
    }
    let xs = &x[u.rows.start * n..u.rows.end * n];
    // Σ_j x_j for each row.
    let sums: Vec<f32> = xs.chunks_exact(n).flat_map(|row| (0..r).map(move |c| row.iter().skip(c).step_by(r).sum::<f32>())).collect();
    let arb = at.row_bytes(n).expect("checked by linears");
    let wrb = w.row_bytes();
    let (mut z, mut zq, mut ms, mut tmp) = (vec![0f32; m * n], vec![0u8; if at == QuantType::F32 { 0 } else { m * arb }], vec![0f32; m * r], Vec::new());
    let ka = crate::kernels::adapter::selected();
    for (&i, runs) in &blocks {
        // Every r-chunk of every input row times M_iᵀ (the chunks are the rows of an [m·n/r, r]
        // matrix), and the chunk sums the same way: two SIMD products.
        let mi = &b.m[i * r * r..(i + 1) * r * r];
        ka.down(xs, r, m * n / r, mi, r, r, r, &mut z, r);
        ka.down(&sums, r, m, mi, r, r, r, &mut ms, r);
        let zb: &[u8] = if at == QuantType::F32 {
            // SAFETY: f32 has no invalid bit patterns and u8 alignment 1; the view covers z's bytes.
            unsafe { std::slice::from_raw_parts(z.as_ptr().cast(), z.len() * 4) }
        } else {
            for (row, q) in z.chunks_exact(n).zip(zq.chunks_exact_mut(arb)) {
                kq.quantize_act(at, row, q).expect("lengths checked by linears");
            }
            &zq
        };
        for run in runs {
            let nr = run.len();
            tmp.clear();
            tmp.resize(m * nr, 0f32);
            // SAFETY: tmp holds m rows of nr floats (stride nr); the weight rows run.start..run.end
            // and m activation rows of n values are inside wb and zb.
            unsafe { kq.gemm_raw(w.ty, n, &wb[run.start * wrb..run.end * wrb], nr, zb, at == QuantType::F32, m, tmp.as_mut_ptr(), nr) };
            for t in 0..m {
                for (k, o) in run.clone().enumerate() {
                    let v = u.s * (tmp[t * nr + k] + ms[t * r + b.hf(o) % r]);
                    // SAFETY: row u.rows.start + t, column o of the [t, n_out] output; o is in this
                    // thread's column range.
                    unsafe { *y.get().add((u.rows.start + t) * no + o) += v };
                }
            }
        }
    }
}

/// Consecutive batch rows computed with one adapter list (scales read once for the whole call).
struct Segment {
    rows: Range<usize>,
    list: Vec<(Arc<Adapter>, f32)>,
}

/// Reads every sequence's adapter set once and groups consecutive rows that share one list, so a
/// batch of sequences with the same adapters runs each adapter term as one matrix product.
fn adapter_segments(seqs: &[SeqInput<'_>]) -> Vec<Segment> {
    let mut segs: Vec<Segment> = Vec::new();
    let mut i0 = 0;
    for s in seqs {
        let n = s.tokens.len();
        let list: Vec<(Arc<Adapter>, f32)> =
            s.cache.adapters().iter().map(|a| (a.adapter.clone(), a.effective_scale())).filter(|(_, sc)| *sc != 0.0).collect();
        if !list.is_empty() && n > 0 {
            let same = |p: &Segment| p.rows.end == i0 && p.list.len() == list.len() && p.list.iter().zip(&list).all(|(a, b)| Arc::ptr_eq(&a.0, &b.0) && a.1 == b.1);
            match segs.last_mut() {
                Some(p) if same(p) => p.rows.end = i0 + n,
                _ => segs.push(Segment { rows: i0..i0 + n, list }),
            }
        }
        i0 += n;
    }
    segs
}

/// One down-projection `T = X[rows]·Aᵀ` into the scratch at `t_off` (`[rows, r]`).
struct DownUnit<'a> {
    rows: Range<usize>,
    a: &'a [f32],
    /// `A` as Q8_0 rows (8-bit numerics), used instead of `a` when present.
    a_q8: Option<&'a [u8]>,
    /// `A` packed for the int8 products, used before `a_q8` when present.
    a_i8: Option<&'a PackedMatrix>,
    lda: usize,
    r: usize,
    n_in: usize,
    t_off: usize,
}

/// One up-projection `Y[rows] += s·oscale ⊙ (T·diag(tscale)·Bᵀ)` of output `job`.
struct UpUnit<'a> {
    job: usize,
    rows: Range<usize>,
    t_off: usize,
    r: usize,
    tscale: Option<&'a [f32]>,
    bt: &'a [f32],
    /// `Bᵀ` as Q8_0 rows (8-bit numerics), used instead of `bt` when present.
    bt_q8: Option<&'a [u8]>,
    /// `B` packed for the int8 products, used before `bt_q8` when present.
    b_i8: Option<&'a PackedMatrix>,
    ldb: usize,
    oscale: Option<&'a [f32]>,
    s: f32,
}

/// DoRA's rescaling of output `job`'s base rows: `y *= 1 + Σ s·(c − 1)`.
struct BaseScale<'a> {
    job: usize,
    rows: Range<usize>,
    list: Vec<(&'a [f32], f32)>,
}

/// An adapter's output bias on output `job`'s rows: `Y[rows] += s·bias`.
struct BiasUnit<'a> {
    job: usize,
    rows: Range<usize>,
    bias: &'a [f32],
    s: f32,
}

/// MiSS "bat" on output `job`'s rows: `Y[rows] += s·ΔW·X[rows]` through the base weight.
struct BatUnit<'a> {
    job: usize,
    rows: Range<usize>,
    t: &'a MissBat,
    s: f32,
}

/// The adapter work of one `linears` call.
struct AdapterPlan<'a> {
    down: Vec<DownUnit<'a>>,
    up: Vec<UpUnit<'a>>,
    base_scale: Vec<BaseScale<'a>>,
    bias: Vec<BiasUnit<'a>>,
    bat: Vec<BatUnit<'a>>,
    t_len: usize,
}

impl<'a> AdapterPlan<'a> {
    fn build(layer: usize, segs: &'a [Segment], jobs: &[&Linear], model: &Model, q8: bool) -> AdapterPlan<'a> {
        let mut p = AdapterPlan { down: Vec::new(), up: Vec::new(), base_scale: Vec::new(), bias: Vec::new(), bat: Vec::new(), t_len: 0 };
        if segs.is_empty() || layer >= model.weights.blocks.len() {
            return p;
        }
        let blk = &model.weights.blocks[layer];
        let kinds: Vec<Option<LinearKind>> =
            jobs.iter().map(|w| LinearKind::ALL.into_iter().find(|&k| std::ptr::eq(*w, blk.linear(k)))).collect();
        for seg in segs {
            let m = seg.rows.len();
            for (adapter, s) in &seg.list {
                let mut vera_t: Option<(*const f32, usize)> = None;
                for (ji, kind) in kinds.iter().enumerate() {
                    let Some(term) = kind.and_then(|k| adapter.term(layer, k)) else { continue };
                    let lq = if q8 { kind.and_then(|k| adapter.q8(layer, k)) } else { None };
                    if let Some(bias) = kind.and_then(|k| adapter.bias(layer, k)) {
                        p.bias.push(BiasUnit { job: ji, rows: seg.rows.clone(), bias, s: *s });
                    }
                    match term {
                        Term::LowRank(lr) | Term::Dora(crate::adapter::Dora { lora: lr, .. }) => {
                            let t_off = p.t_len;
                            p.t_len += m * lr.r;
                            // With Q8_0 copies the f32 factors are not read (a loader may not even
                            // have made `Bᵀ`: see `adapter::factor`).
                            let (a, bt): (&[f32], &[f32]) = if lq.is_some() { (&[], &[]) } else { (&lr.a, &lr.bt) };
                            p.down.push(DownUnit { rows: seg.rows.clone(), a, a_q8: lq.map(|q| &q.a[..]), a_i8: None, lda: lr.n_in, r: lr.r, n_in: lr.n_in, t_off });
                            let oscale = if let Term::Dora(d) = term { Some(&d.c[..]) } else { None };
                            p.up.push(UpUnit { job: ji, rows: seg.rows.clone(), t_off, r: lr.r, tscale: None, bt, bt_q8: lq.map(|q| &q.bt[..]), b_i8: None, ldb: lr.n_out, oscale, s: s * lr.scale });
                            if let Term::Dora(d) = term {
                                match p.base_scale.iter_mut().find(|b| b.job == ji && b.rows == seg.rows) {
                                    Some(b) => b.list.push((&d.c, *s)),
                                    None => p.base_scale.push(BaseScale { job: ji, rows: seg.rows.clone(), list: vec![(&d.c, *s)] }),
                                }
                            }
                        }
                        Term::MissBat(b) => p.bat.push(BatUnit { job: ji, rows: seg.rows.clone(), t: b, s: *s }),
                        Term::Vera(v) => {
                            let sh = &*v.shared;
                            let i8p = if q8 { sh.q8.as_ref().and_then(|q| q.int8.as_ref()) } else { None };
                            // Â·x once per layer input: every projection of this call reads the same x.
                            let t_off = match vera_t {
                                Some((ptr, off)) if std::ptr::eq(ptr, sh.a.as_ptr()) => off,
                                _ => {
                                    let off = p.t_len;
                                    p.t_len += m * sh.r;
                                    let a_q8 = if q8 { sh.q8.as_ref().and_then(|q| q.a.iter().find(|(n, _)| *n == v.n_in)).map(|(_, a)| &a[..]) } else { None };
                                    let a_i8 = i8p.filter(|_| v.n_in % 32 == 0).map(|(a, _)| a);
                                    p.down.push(DownUnit { rows: seg.rows.clone(), a: &sh.a, a_q8, a_i8, lda: sh.max_in, r: sh.r, n_in: v.n_in, t_off: off });
                                    vera_t = Some((sh.a.as_ptr(), off));
                                    off
                                }
                            };
                            let bt_q8 = if q8 { sh.q8.as_ref().map(|q| &q.bt[..]) } else { None };
                            let b_i8 = i8p.map(|(_, b)| b);
                            p.up.push(UpUnit { job: ji, rows: seg.rows.clone(), t_off, r: sh.r, tscale: Some(&v.lambda_d), bt: &sh.bt, bt_q8, b_i8, ldb: sh.max_out, oscale: Some(&v.lambda_b), s: *s });
                        }
                    }
                }
            }
        }
        p
    }
}

fn add_in_place(x: &mut [f32], y: &[f32]) {
    for (a, b) in x.iter_mut().zip(y) {
        *a += *b;
    }
}

/// Causal attention of every batch row against its sequence's cache (which already holds the row's
/// own key and value). With an f16 cache (llama.cpp numerics, as llama.cpp computes it without
/// flash attention): q rounded to f16, scores `q·k / sqrt(head_dim)` accumulated in f32, softmax in
/// f32, probabilities rounded to f16 before weighting the f16 values. With an f32 cache: all f32.
#[allow(clippy::too_many_arguments)]
fn attention(pool: &Pool, ko: &ops::OpKernels, cfg: &super::Config, l: usize, caches: &[&KvCache], rows: &[(usize, usize)], q: &[f32], out: &mut [f32]) {
    let (hd, nh, kvd) = (cfg.head_dim, cfg.n_head, cfg.kv_dim());
    let group = cfg.n_head / cfg.n_head_kv;
    let scale = 1.0 / (hd as f32).sqrt();
    let units = rows.len() * nh;
    let op = SharedMut(out.as_mut_ptr());
    let max_pos = rows.iter().map(|r| r.1).max().unwrap_or(0) + 1;
    pool.run(|tid, nth| {
        let mut scores = vec![0f32; max_pos];
        let mut q16 = vec![f16::ZERO; hd];
        let mut p16 = vec![f16::ZERO; max_pos];
        let mut acc = vec![0f32; hd];
        for u in split(units, tid, nth, 1) {
            let (i, h) = (u / nh, u % nh);
            let (si, pos) = rows[i];
            let kvh = h / group;
            let head = |j: usize| j * kvd + kvh * hd..j * kvd + (kvh + 1) * hd;
            let qh = &q[i * nh * hd + h * hd..i * nh * hd + (h + 1) * hd];
            let sc = &mut scores[..pos + 1];
            acc.fill(0.0);
            match (caches[si].keys(l), caches[si].values(l)) {
                (KvRows::F16(keys), KvRows::F16(vals)) => {
                    ko.f32_to_f16(qh, &mut q16);
                    for (j, s) in sc.iter_mut().enumerate() {
                        *s = ko.dot_f16(&q16, &keys[head(j)]) * scale;
                    }
                    ko.softmax(sc);
                    // Attention weights rounded to f16, as llama.cpp's f16 product rounds them.
                    let p16 = &mut p16[..sc.len()];
                    ko.f32_to_f16(sc, p16);
                    ko.f16_to_f32(p16, sc);
                    for (j, &p) in sc.iter().enumerate() {
                        ko.axpy_f16(p, &vals[head(j)], &mut acc);
                    }
                }
                (KvRows::F32(keys), KvRows::F32(vals)) => {
                    for (j, s) in sc.iter_mut().enumerate() {
                        *s = dot_f32(qh, &keys[head(j)]) * scale;
                    }
                    ko.softmax(sc);
                    for (j, &p) in sc.iter().enumerate() {
                        for (a, v) in acc.iter_mut().zip(&vals[head(j)]) {
                            *a += p * v;
                        }
                    }
                }
                _ => unreachable!("a cache holds keys and values of one type"),
            }
            // SAFETY: unit u = (row i, head h) is taken by exactly one thread, and writes only
            // out[i*nh*hd + h*hd .. + hd], inside the [rows, nh*hd] buffer.
            unsafe { std::ptr::copy_nonoverlapping(acc.as_ptr(), op.get().add(i * nh * hd + h * hd), hd) };
        }
    });
}

/// f32 dot product with 8 independent partial sums (vectorised by the compiler).
fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
    let mut s = [0f32; 8];
    let (ac, bc) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ac.remainder().iter().zip(bc.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in ac.zip(bc) {
        for k in 0..8 {
            s[k] += x[k] * y[k];
        }
    }
    s.iter().sum::<f32>() + tail
}
