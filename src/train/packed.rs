//! The frozen base in 8-bit form for training's products (`--numerics int8`): every projection
//! `W` (`n_out × n_in`) and the vocabulary head packed twice, once with blocks of 32 along `n_in`
//! for the forward `y = x·Wᵀ` and once transposed, blocks of 32 along `n_out`, for the backward
//! `dx += dy·W`, in the layout of [`crate::kernels::int8`]. Activations (`x`, `dy`) are rounded to
//! int8 in blocks of 32 per call; the block sums are exact int32, so the only approximation is the
//! 8-bit rounding of both operands (as Q8_0 inference rounds activations, and as SwitchBack trains
//! linear layers). The adapter's own products, attention and the element-wise ops stay in f32.
//!
//! Packing reads the quantized model once (about 1.1 bytes a weight per copy, so ~2.3 bytes a
//! weight in all: 300 MiB for the 135 M default model). A matrix whose sizes are not multiples of
//! 32 is not packed and runs on the f32 path ([`super::matmul`]).
use crate::kernels::int8::{self, Int8Kernels, PackedMatrix, QuantizedRows, BLOCK};
use crate::kernels::quant;
use crate::model::{LinearKind, Model};
use crate::pool::{split, SharedMut};
use crate::adapter::term::VeraShared;
use crate::adapter::{Adapter, Term};
use crate::model::Linear;
use crate::Result;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Blocks of the summed dimension one kernel call covers at a time, so a 32-column slice of a
/// packed matrix (`32 · 64 · 32` bytes = 64 KiB) stays in L2 while the rows pass it (the
/// transposed vocabulary head sums 1536 blocks; the projections at most 48, one call).
const CHUNK_BLOCKS: usize = 64;
/// Rows of a large matrix (the vocabulary head) dequantized at a time while packing.
const PACK_ROWS: usize = 1024;

/// One projection packed for both products.
pub struct PackedLinear {
    n_in: usize,
    n_out: usize,
    /// `n_out` columns of `n_in / 32` blocks.
    fwd: PackedMatrix,
    /// `n_in` columns of `n_out / 32` blocks.
    bwd: PackedMatrix,
}

impl PackedLinear {
    /// Packs `w` (its quantized rows in `bytes`), dequantizing [`PACK_ROWS`] rows at a time.
    fn build(k8: &Int8Kernels, w: &Linear, bytes: &[u8]) -> Result<PackedLinear> {
        let (ni, no, rb) = (w.n_in, w.n_out, w.row_bytes());
        let (kb_in, kb_out) = (ni / BLOCK, no / BLOCK);
        let mut fwd = PackedMatrix::zeros(no, kb_in);
        let mut bwd = PackedMatrix::zeros(ni, kb_out);
        let kq = quant::selected();
        let mut rows = vec![0f32; PACK_ROWS.min(no) * ni];
        for r0 in (0..no).step_by(PACK_ROWS) {
            let n = PACK_ROWS.min(no - r0);
            for (i, row) in rows[..n * ni].chunks_exact_mut(ni).enumerate() {
                kq.dequantize_row(w.ty, &bytes[(r0 + i) * rb..(r0 + i + 1) * rb], row)?;
            }
            // Forward: these rows are columns r0.. of the packed matrix (r0 is a multiple of 16).
            k8.pack(&rows[..n * ni], ni, 1, n, kb_in, &mut fwd, r0 / 16, 0);
            // Backward: they are blocks r0/32.. of every column of the transpose.
            k8.pack(&rows[..n * ni], 1, ni, ni, n / BLOCK, &mut bwd, 0, r0 / BLOCK);
        }
        Ok(PackedLinear { n_in: ni, n_out: no, fwd, bwd })
    }

    /// Bytes held by both copies.
    pub fn bytes(&self) -> usize {
        self.fwd.bytes() + self.bwd.bytes()
    }

    /// `y = x·Wᵀ` for `t` rows (`x` `[t, n_in]`, `y` `[t, n_out]`, overwritten), the output
    /// columns split among `threads` threads.
    pub fn forward(&self, k8: &Int8Kernels, x: &[f32], t: usize, y: &mut [f32], threads: usize) {
        self.forward_q(k8, &quantize(k8, x, t, self.n_in), y, threads);
    }

    /// [`PackedLinear::forward`] from `x` already quantized ([`quantize`]).
    pub fn forward_q(&self, k8: &Int8Kernels, xq: &QuantizedRows, y: &mut [f32], threads: usize) {
        assert_eq!(xq.blocks() * BLOCK, self.n_in, "packed forward: input width");
        gemm_cols(k8, xq, &self.fwd, self.n_out, y, self.n_out, false, threads);
    }

    /// `dx += dy·W` for `t` rows (`dy` `[t, n_out]`, `dx` `[t, n_in]`), the columns of `dx` split
    /// among `threads` threads.
    pub fn backward_dx(&self, k8: &Int8Kernels, dy: &[f32], t: usize, dx: &mut [f32], threads: usize) {
        let q = quantize(k8, dy, t, self.n_out);
        gemm_cols(k8, &q, &self.bwd, self.n_in, dx, self.n_in, true, threads);
    }
}

/// `t` rows of `width` floats (a multiple of 32) rounded to int8 in blocks of 32.
pub fn quantize(k8: &Int8Kernels, x: &[f32], t: usize, width: usize) -> QuantizedRows {
    assert!(width % BLOCK == 0 && x.len() == t * width, "int8 quantize: {} floats are not {t} rows of {width}", x.len());
    let mut q = QuantizedRows::default();
    k8.quantize_rows(x, width, t, width / BLOCK, &mut q);
    q
}

/// `c (+)= a·Wᵀ` over the first `n` columns of `w` (`c` `[a.rows(), ldc]`), the summed blocks a
/// chunk of [`CHUNK_BLOCKS`] at a time (accumulating after the first), the columns split among
/// `threads` scoped threads in ranges that start at groups of 16 (the calling thread takes the
/// first). Every output is computed the same way whatever the split.
#[allow(clippy::too_many_arguments)]
fn gemm_cols(k8: &Int8Kernels, a: &QuantizedRows, w: &PackedMatrix, n: usize, c: &mut [f32], ldc: usize, accumulate: bool, threads: usize) {
    let (m, kb) = (a.rows(), a.blocks());
    if m == 0 || n == 0 {
        return;
    }
    assert!(ldc >= n && (m - 1) * ldc + n <= c.len(), "int8 product: output holds {} floats, {m} rows of {n} need more", c.len());
    let cp = SharedMut(c.as_mut_ptr());
    let run = |cols: std::ops::Range<usize>| {
        for b0 in (0..kb).step_by(CHUNK_BLOCKS) {
            // SAFETY: rows 0..m × columns `cols` of c (inside it by the assert, ldc >= n); the
            // ranges of the threads are disjoint, and c is borrowed mutably for the whole call.
            unsafe { k8.gemm_raw(a, 0, m, w, cols.start, cols.len(), b0, CHUNK_BLOCKS.min(kb - b0), cp.get().add(cols.start), ldc, accumulate || b0 > 0) };
        }
    };
    let threads = threads.clamp(1, n.div_ceil(16));
    if threads == 1 {
        return run(0..n);
    }
    std::thread::scope(|sc| {
        for tid in 1..threads {
            let r = split(n, tid, threads, 16);
            let run = &run;
            sc.spawn(move || run(r));
        }
        run(split(n, 0, threads, 16));
    });
}

/// VeRA's frozen shared projections packed for the four products of its forward and backward
/// passes (about 1.6 MB at r = 256 for the default model). A layer with `n_in` inputs and `n_out`
/// outputs uses the first blocks or columns of each.
pub struct PackedVera {
    r: usize,
    /// `Â`: `r` columns of `max_in / 32` blocks (`u = x·Âᵀ`).
    a_fwd: PackedMatrix,
    /// `B̂`: `max_out` columns of `r / 32` blocks (`w = (λ_d ⊙ u)·B̂ᵀ`).
    b_fwd: PackedMatrix,
    /// `B̂ᵀ`: `r` columns of `max_out / 32` blocks (`dv = g·B̂`).
    b_bwd: PackedMatrix,
    /// `Âᵀ`: `max_in` columns of `r / 32` blocks (`dx += dz·Â`).
    a_bwd: PackedMatrix,
}

impl PackedVera {
    /// Packs `sh`, or `None` when its rank or widths are not multiples of 32.
    pub fn build(k8: &Int8Kernels, sh: &VeraShared) -> Option<PackedVera> {
        let (r, mi, mo) = (sh.r, sh.max_in, sh.max_out);
        // The forward pair as inference packs it (None unless r and the widths are whole blocks).
        let (a_fwd, b_fwd) = sh.pack_int8(k8)?;
        let mut a_bwd = PackedMatrix::zeros(mi, r / BLOCK);
        k8.pack(&sh.a, 1, mi, mi, r / BLOCK, &mut a_bwd, 0, 0);
        // sh.bt is Bᵀ, [r, max_out]: B̂ᵀ's column j, element o, is bt[j·max_out + o].
        let mut b_bwd = PackedMatrix::zeros(r, mo / BLOCK);
        k8.pack(&sh.bt, mo, 1, r, mo / BLOCK, &mut b_bwd, 0, 0);
        Some(PackedVera { r, a_fwd, b_fwd, b_bwd, a_bwd })
    }

    /// `u = x·Âᵀ` (`[t, r]`, overwritten) from the quantized input of width `n_in`; each product
    /// of [`PackedVera`] splits its output columns among `threads` threads.
    pub fn down(&self, k8: &Int8Kernels, xq: &QuantizedRows, u: &mut [f32], threads: usize) {
        gemm_cols(k8, xq, &self.a_fwd, self.r, u, self.r, false, threads);
    }

    /// `w = (λ_d ⊙ u)·B̂ᵀ` (`[t, n_out]`, overwritten).
    #[allow(clippy::too_many_arguments)]
    pub fn up(&self, k8: &Int8Kernels, u: &[f32], t: usize, lambda_d: &[f32], n_out: usize, w: &mut [f32], threads: usize) {
        let ud: Vec<f32> = u.chunks_exact(self.r).flat_map(|row| row.iter().zip(lambda_d).map(|(a, b)| a * b)).collect();
        let q = quantize(k8, &ud, t, self.r);
        gemm_cols(k8, &q, &self.b_fwd, n_out, w, n_out, false, threads);
    }

    /// `dv = g·B̂` (`[t, r]`, overwritten) from `g` `[t, n_out]`.
    pub fn back_up(&self, k8: &Int8Kernels, g: &[f32], t: usize, n_out: usize, dv: &mut [f32], threads: usize) {
        gemm_cols(k8, &quantize(k8, g, t, n_out), &self.b_bwd, self.r, dv, self.r, false, threads);
    }

    /// `dx += dz·Â` (`dx` `[t, n_in]`) from `dz` `[t, r]`.
    pub fn back_down(&self, k8: &Int8Kernels, dz: &[f32], t: usize, n_in: usize, dx: &mut [f32], threads: usize) {
        gemm_cols(k8, &quantize(k8, dz, t, self.r), &self.a_bwd, n_in, dx, n_in, true, threads);
    }
}

/// The key of a VeRA shared-projection set: its address (the adapter keeps it alive and
/// unchanged while training).
pub fn vera_key(sh: &Arc<VeraShared>) -> usize {
    Arc::as_ptr(sh) as usize
}

/// Whether `w` can be packed (both sizes whole blocks of 32).
fn packable(w: &Linear) -> bool {
    w.n_in % BLOCK == 0 && w.n_out % BLOCK == 0 && w.n_in > 0 && w.n_out > 0
}

/// Bytes of one packed projection of `n_in × n_out` (both copies).
fn packed_bytes(w: &Linear) -> usize {
    if !packable(w) {
        return 0;
    }
    let per = |cols: usize, kb: usize| cols.div_ceil(16) * kb * (16 * BLOCK + 64);
    per(w.n_out, w.n_in / BLOCK) + per(w.n_in, w.n_out / BLOCK)
}

/// The model's projections and head, packed for the 8-bit products.
pub struct PackedBase {
    kernels: &'static Int8Kernels,
    blocks: Vec<[Option<PackedLinear>; 7]>,
    output: Option<PackedLinear>,
    vera: Vec<(usize, PackedVera)>,
}

impl PackedBase {
    /// Bytes [`PackedBase::build`] will hold for `model`.
    pub fn estimate_bytes(model: &Model) -> usize {
        let w = &model.weights;
        w.blocks.iter().flat_map(|b| LinearKind::ALL.iter().map(move |&k| packed_bytes(b.linear(k)))).sum::<usize>() + packed_bytes(&w.output)
    }

    /// Packs every projection and the head of `model` on `threads` threads, with the 8-bit kernels
    /// of the ISA in use.
    pub fn build(model: &Model, threads: usize) -> Result<PackedBase> {
        let k8 = int8::selected();
        let w = &model.weights;
        let mut jobs: Vec<(usize, usize)> = Vec::new(); // (block or n_layer for the head, kind)
        for l in 0..w.blocks.len() {
            for (ki, &k) in LinearKind::ALL.iter().enumerate() {
                if packable(w.blocks[l].linear(k)) {
                    jobs.push((l, ki));
                }
            }
        }
        if packable(&w.output) {
            jobs.push((w.blocks.len(), 0));
        }
        let linear = |&(l, ki): &(usize, usize)| if l == w.blocks.len() { &w.output } else { w.blocks[l].linear(LinearKind::ALL[ki]) };
        let next = AtomicUsize::new(0);
        let parts: Vec<Vec<(usize, Result<PackedLinear>)>> = std::thread::scope(|sc| {
            let hs: Vec<_> = (0..threads.max(1))
                .map(|_| {
                    sc.spawn(|| {
                        let mut done = Vec::new();
                        loop {
                            let j = next.fetch_add(1, Ordering::Relaxed);
                            let Some(job) = jobs.get(j) else { break };
                            let lin = linear(job);
                            done.push((j, PackedLinear::build(k8, lin, model.bytes(lin))));
                        }
                        done
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().expect("a packing thread panicked")).collect()
        });
        let mut blocks: Vec<[Option<PackedLinear>; 7]> = (0..w.blocks.len()).map(|_| Default::default()).collect();
        let mut output = None;
        for (j, p) in parts.into_iter().flatten() {
            let (l, ki) = jobs[j];
            if l == w.blocks.len() {
                output = Some(p?);
            } else {
                blocks[l][ki] = Some(p?);
            }
        }
        Ok(PackedBase { kernels: k8, blocks, output, vera: Vec::new() })
    }

    /// Packs the VeRA shared projections of `ad`'s terms (those not packed yet).
    pub fn add_vera(&mut self, ad: &Adapter) {
        for t in ad.layers.iter().flatten().flatten() {
            if let Term::Vera(v) = t {
                let key = vera_key(&v.shared);
                if !self.vera.iter().any(|(k, _)| *k == key) {
                    if let Some(p) = PackedVera::build(self.kernels, &v.shared) {
                        self.vera.push((key, p));
                    }
                }
            }
        }
    }

    /// The packed VeRA projections with key [`vera_key`], if packed.
    pub fn vera(&self, key: usize) -> Option<&PackedVera> {
        self.vera.iter().find(|(k, _)| *k == key).map(|(_, p)| p)
    }

    /// The kernels the matrices were packed for.
    pub fn kernels(&self) -> &'static Int8Kernels {
        self.kernels
    }

    /// Projection `kind` of block `l`, if packed.
    pub fn linear(&self, l: usize, kind: LinearKind) -> Option<&PackedLinear> {
        self.blocks.get(l).and_then(|b| b[kind as usize].as_ref())
    }

    /// The vocabulary head, if packed.
    pub fn output(&self) -> Option<&PackedLinear> {
        self.output.as_ref()
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.blocks.iter().flatten().flatten().map(PackedLinear::bytes).sum::<usize>() + self.output.as_ref().map_or(0, PackedLinear::bytes)
    }
}

impl std::fmt::Debug for PackedBase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PackedBase({} matrices, {} MiB, {:?})", self.blocks.iter().flatten().flatten().count() + usize::from(self.output.is_some()), self.bytes() >> 20, self.kernels.isa)
    }
}
