//! Adapter (LoRA family, VeRA, ...) hot-path kernels: the down-projection `T = X·Aᵀ` and the
//! up-projection `Y += s·diag(oscale)·T·diag(tscale)·Bᵀ` with `B` stored transposed (`bt`, `r × ncols`),
//! one table of C function pointers per ISA, with safe wrappers that check every slice against the
//! strides and sizes before calling C.
//!
//! Matrices are row-major f32 with strides in elements (each at least the row's logical width); no
//! alignment is assumed, so callers may split the columns of `up` among threads by offsetting `bt`,
//! `oscale` and `y`. `BT` may also be stored as Q8_0 rows ([`AdapterKernels::up_q8_0`], made by
//! [`quantize_rows_q8_0`]): 34 bytes per 32 columns instead of 128, for decode, which streams `BT`
//! once per token; threads split its columns by the first column `c0` instead.
use super::{sys, Isa};
use crate::quant::QuantType;

/// `T = X·Aᵀ`: (x, ldx, m, a, lda, r, n, t, ldt).
type DownFn = unsafe extern "C" fn(*const f32, i64, i64, *const f32, i64, i64, i64, *mut f32, i64);
/// `Y += s·diag(oscale)·T·diag(tscale)·BT`: (t, ldt, m, r, tscale, bt, ldb, ncols, oscale, s, y, ldy).
type UpFn = unsafe extern "C" fn(*const f32, i64, i64, i64, *const f32, *const f32, i64, i64, *const f32, f32, *mut f32, i64);
/// The same over Q8_0 rows of `BT`: (t, ldt, m, r, tscale, bt, bt_stride, c0, ncols, oscale, s, y, ldy).
type UpQ8Fn = unsafe extern "C" fn(*const f32, i64, i64, i64, *const f32, *const std::ffi::c_void, usize, i64, i64, *const f32, f32, *mut f32, i64);

/// Bytes of one Q8_0 block (32 values).
const Q8_0_BLOCK: usize = std::mem::size_of::<crate::quant::BlockQ8_0>();

/// The adapter kernels of one ISA.
#[derive(Clone, Copy)]
pub struct AdapterKernels {
    /// The ISA these pointers belong to.
    pub isa: Isa,
    down: DownFn,
    up: UpFn,
    up_q8_0: UpQ8Fn,
}

static REF: AdapterKernels = AdapterKernels {
    isa: Isa::Ref,
    down: sys::graft_adapter_down_f32_ref,
    up: sys::graft_adapter_up_f32_ref,
    up_q8_0: sys::graft_adapter_up_q8_0_ref,
};
#[cfg(target_arch = "x86_64")]
static AVX2: AdapterKernels = AdapterKernels {
    isa: Isa::Avx2,
    down: sys::graft_adapter_down_f32_avx2,
    up: sys::graft_adapter_up_f32_avx2,
    up_q8_0: sys::graft_adapter_up_q8_0_avx2,
};
#[cfg(target_arch = "x86_64")]
static AVX512: AdapterKernels = AdapterKernels {
    isa: Isa::Avx512,
    down: sys::graft_adapter_down_f32_avx512,
    up: sys::graft_adapter_up_f32_avx512,
    up_q8_0: sys::graft_adapter_up_q8_0_avx512,
};
#[cfg(target_arch = "aarch64")]
static NEON: AdapterKernels = AdapterKernels {
    isa: Isa::Neon,
    down: sys::graft_adapter_down_f32_neon,
    up: sys::graft_adapter_up_f32_neon,
    up_q8_0: sys::graft_adapter_up_q8_0_neon,
};

/// The adapter table of `isa`, or `None` when this CPU cannot run it.
pub fn adapter_kernels(isa: Isa) -> Option<&'static AdapterKernels> {
    table_of_isa!(isa, &REF, &AVX2, &AVX512, &NEON)
}

/// The adapter table of the ISA in use ([`super::selected_isa`]), the reference if that ISA has none.
pub fn selected() -> &'static AdapterKernels {
    adapter_kernels(super::selected_isa()).unwrap_or(&REF)
}

/// Checks that `buf` (named `what` in `op`'s message) holds a `rows × width` matrix with row stride
/// `ld`, and returns `ld` as the C kernels take it. Only called with `rows > 0` and `width > 0`.
fn check_matrix(op: &str, what: &str, len: usize, rows: usize, width: usize, ld: usize) -> i64 {
    assert!(ld >= width, "{op}: stride of {what} ({ld}) is less than its row width ({width})");
    let need = (rows - 1)
        .checked_mul(ld)
        .and_then(|v| v.checked_add(width))
        .unwrap_or_else(|| panic!("{op}: {what} of {rows} rows of stride {ld} overflows usize"));
    assert!(len >= need, "{op}: {what} holds {len} floats; {rows} rows of width {width}, stride {ld} need {need}");
    i64::try_from(ld).unwrap_or_else(|_| panic!("{op}: stride of {what} ({ld}) does not fit i64"))
}

/// A size as the C kernels take it; every size here is bounded by a slice length already checked.
fn c_size(v: usize) -> i64 {
    v as i64
}

/// The pointer of an optional slice, null when absent.
fn opt_ptr(v: Option<&[f32]>) -> *const f32 {
    v.map_or(std::ptr::null(), |v| v.as_ptr())
}

/// Checks the inputs of `up_q8_0` (all but y) and returns ldt as C takes it.
/// Only called with `m`, `r` and `ncols` > 0.
#[allow(clippy::too_many_arguments)]
fn check_up_q8_0(t: &[f32], ldt: usize, m: usize, r: usize, tscale: Option<&[f32]>, bt: &[u8], bt_stride: usize, c0: usize, ncols: usize, oscale: Option<&[f32]>) -> i64 {
    const OP: &str = "adapter up_q8_0";
    let ldt_c = check_matrix(OP, "t", t.len(), m, r, ldt);
    // Each row is read from its start up to the end of the block holding column c0 + ncols - 1.
    let row_bytes = c0
        .checked_add(ncols - 1)
        .map(|last| last / 32 + 1)
        .and_then(|blocks| blocks.checked_mul(Q8_0_BLOCK))
        .unwrap_or_else(|| panic!("{OP}: columns {c0} + {ncols} overflow usize"));
    assert!(
        bt_stride >= row_bytes,
        "{OP}: stride of bt ({bt_stride} bytes) is less than the {row_bytes} bytes of the Q8_0 blocks up to column {}",
        c0 + ncols - 1
    );
    let need = (r - 1)
        .checked_mul(bt_stride)
        .and_then(|v| v.checked_add(row_bytes))
        .unwrap_or_else(|| panic!("{OP}: bt of {r} rows of stride {bt_stride} overflows usize"));
    assert!(bt.len() >= need, "{OP}: bt holds {} bytes; {r} rows of stride {bt_stride} up to column {} need {need}", bt.len(), c0 + ncols - 1);
    if let Some(ts) = tscale {
        assert!(ts.len() >= r, "{OP}: tscale holds {} floats, r = {r}", ts.len());
    }
    if let Some(os) = oscale {
        assert!(os.len() >= ncols, "{OP}: oscale holds {} floats, ncols = {ncols}", os.len());
    }
    ldt_c
}

/// `rows · cols` for a quantizer `op` of a row-major matrix whose `blocked` axis (its name and
/// length) is cut into Q8_0 blocks of 32, checked against the `x_len` floats given.
///
/// # Panics
/// If the blocked axis is not a multiple of 32, `rows · cols` overflows, or `x_len` is short.
fn q8_0_matrix_len(op: &str, rows: usize, cols: usize, blocked: (&str, usize), x_len: usize) -> usize {
    let (axis, len) = blocked;
    assert!(len % 32 == 0, "{op}: {len} {axis} are not a whole number of Q8_0 blocks of 32");
    let n = rows.checked_mul(cols).unwrap_or_else(|| panic!("{op}: {rows} × {cols} overflows usize"));
    assert!(x_len >= n, "{op}: x holds {x_len} floats, {rows} × {cols} need {n}");
    n
}

/// [`quantize_rows_q8_0`] of the transpose of a row-major `rows × cols` matrix (`Bᵀ`'s Q8_0 rows
/// from `B`), without making the transpose: each run of 32 rows is transposed in a tile on the
/// stack and its `cols` blocks quantized from there. Same bytes as transposing first.
///
/// # Panics
/// If `rows` is not a multiple of 32 or `x` holds fewer than `rows · cols` floats.
pub fn quantize_cols_q8_0(x: &[f32], rows: usize, cols: usize) -> Vec<u8> {
    let n = q8_0_matrix_len("quantize_cols_q8_0", rows, cols, ("rows", rows), x.len());
    let stride = rows / 32 * Q8_0_BLOCK;
    let mut out = vec![0u8; cols * stride];
    let q = super::quant::selected();
    let mut tile = [0f32; 32];
    for (bi, run) in x[..n].chunks_exact(32 * cols.max(1)).enumerate() {
        for j in 0..cols {
            for (t, row) in tile.iter_mut().zip(run.chunks_exact(cols)) {
                *t = row[j];
            }
            let dst = &mut out[j * stride + bi * Q8_0_BLOCK..][..Q8_0_BLOCK];
            q.quantize_act(QuantType::Q8_0, &tile, dst).expect("one Q8_0 block");
        }
    }
    out
}

/// Quantizes a row-major `rows × cols` f32 matrix to Q8_0 rows (each `cols / 32` blocks, one row after
/// another, stride `cols / 32 · 34` bytes), with the selected ISA's activation quantizer (Q8_0's
/// `d = max|x| / 127`, `q = round(x / d)`): the layout [`AdapterKernels::up_q8_0`] reads `BT` in.
///
/// # Panics
/// If `cols` is not a multiple of 32 or `x` holds fewer than `rows · cols` floats.
pub fn quantize_rows_q8_0(x: &[f32], rows: usize, cols: usize) -> Vec<u8> {
    let n = q8_0_matrix_len("quantize_rows_q8_0", rows, cols, ("columns", cols), x.len());
    let stride = cols / 32 * Q8_0_BLOCK;
    let mut out = vec![0u8; rows * stride];
    if cols == 0 {
        return out;
    }
    let q = super::quant::selected();
    for (src, dst) in x[..n].chunks_exact(cols).zip(out.chunks_exact_mut(stride)) {
        q.quantize_act(QuantType::Q8_0, src, dst).expect("a Q8_0 row of whole blocks");
    }
    out
}

impl AdapterKernels {
    /// T = X·Aᵀ: t[i*ldt + j] = Σ_k x[i*ldx + k]·a[j*lda + k], i < m, j < r, k < n.
    ///
    /// `n == 0` writes zeros to `t` without reading `x` or `a`; `m == 0` or `r == 0` touches nothing.
    #[allow(clippy::too_many_arguments)]
    pub fn down(&self, x: &[f32], ldx: usize, m: usize, a: &[f32], lda: usize, r: usize, n: usize, t: &mut [f32], ldt: usize) {
        if m == 0 || r == 0 {
            return;
        }
        check_matrix("adapter down", "t", t.len(), m, r, ldt);
        // SAFETY: check_matrix showed every t[i*ldt + j], i < m, j < r, is inside t, which is
        // exclusively borrowed for the call.
        unsafe { self.down_raw(x, ldx, m, a, lda, r, n, t.as_mut_ptr(), ldt) }
    }

    /// [`AdapterKernels::down`] into a raw output, for threads that write different columns `j` of
    /// the same rows of one buffer.
    ///
    /// # Safety
    /// `t` must be valid for writes of `t[i*ldt + j]` for `i < m`, `j < r`, with `ldt >= r`, and no
    /// other thread may access those elements during the call.
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn down_raw(&self, x: &[f32], ldx: usize, m: usize, a: &[f32], lda: usize, r: usize, n: usize, t: *mut f32, ldt: usize) {
        if m == 0 || r == 0 {
            return;
        }
        assert!(ldt >= r, "adapter down: stride of t ({ldt}) is less than r ({r})");
        if n == 0 {
            for row in 0..m {
                for j in 0..r {
                    // SAFETY: element (row, j) of t, valid and this call's by the contract.
                    unsafe { *t.add(row * ldt + j) = 0.0 };
                }
            }
            return;
        }
        let ldx_c = check_matrix("adapter down", "x", x.len(), m, n, ldx);
        let lda_c = check_matrix("adapter down", "a", a.len(), r, n, lda);
        // SAFETY: the kernel reads x[i*ldx + k] and a[j*lda + k] for i < m, j < r, k < n (inside
        // their slices by check_matrix) and writes t[i*ldt + j], which the caller guarantees are
        // valid and this call's alone (so they alias neither input). m, r, n are at most slice
        // lengths, so they fit i64.
        unsafe { (self.down)(x.as_ptr(), ldx_c, c_size(m), a.as_ptr(), lda_c, c_size(r), c_size(n), t, ldt as i64) }
    }

    /// `y[i*ldy + c] += s·oscale[c]·Σ_j tscale[j]·t[i*ldt + j]·bt[j*ldb + c]`, `i < m`, `c < ncols`, `j < r`.
    ///
    /// An absent `tscale` or `oscale` counts as all ones. `m`, `r` or `ncols == 0` touches nothing.
    #[allow(clippy::too_many_arguments)]
    pub fn up(
        &self,
        t: &[f32],
        ldt: usize,
        m: usize,
        r: usize,
        tscale: Option<&[f32]>,
        bt: &[f32],
        ldb: usize,
        ncols: usize,
        oscale: Option<&[f32]>,
        s: f32,
        y: &mut [f32],
        ldy: usize,
    ) {
        if m == 0 || r == 0 || ncols == 0 {
            return;
        }
        check_matrix("adapter up", "y", y.len(), m, ncols, ldy);
        // SAFETY: check_matrix put every y[i*ldy + c] (i < m, c < ncols) inside the slice, distinct
        // as ldy >= ncols; y is exclusively borrowed, so no other thread touches it.
        unsafe { self.up_raw(t, ldt, m, r, tscale, bt, ldb, ncols, oscale, s, y.as_mut_ptr(), ldy) }
    }

    /// [`AdapterKernels::up`] through a raw output pointer, for callers whose threads write
    /// disjoint column ranges of one matrix (a `&mut` slice would overlap the other threads').
    ///
    /// # Safety
    /// `y` must be valid for reads and writes of `y[i*ldy + c]` for `i < m`, `c < ncols`, with
    /// `ldy >= ncols`, and no other thread may access those elements during the call.
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn up_raw(&self, t: &[f32], ldt: usize, m: usize, r: usize, tscale: Option<&[f32]>, bt: &[f32], ldb: usize, ncols: usize, oscale: Option<&[f32]>, s: f32, y: *mut f32, ldy: usize) {
        if m == 0 || r == 0 || ncols == 0 {
            return;
        }
        let ldt_c = check_matrix("adapter up", "t", t.len(), m, r, ldt);
        let ldb_c = check_matrix("adapter up", "bt", bt.len(), r, ncols, ldb);
        assert!(ldy >= ncols, "adapter up: stride of y ({ldy}) is less than ncols ({ncols})");
        if let Some(ts) = tscale {
            assert!(ts.len() >= r, "adapter up: tscale holds {} floats, r = {r}", ts.len());
        }
        if let Some(os) = oscale {
            assert!(os.len() >= ncols, "adapter up: oscale holds {} floats, ncols = {ncols}", os.len());
        }
        let tsp = tscale.map_or(std::ptr::null(), |v| v.as_ptr());
        let osp = oscale.map_or(std::ptr::null(), |v| v.as_ptr());
        // SAFETY: the checks above put every t[i*ldt + j], bt[j*ldb + c], tscale[j] and oscale[c]
        // the kernel reads inside their slices (sizes bounded by slice lengths, so they fit i64);
        // the caller guarantees y's elements (i, c) are valid and exclusively this call's.
        unsafe { (self.up)(t.as_ptr(), ldt_c, c_size(m), c_size(r), tsp, bt.as_ptr(), ldb_c, c_size(ncols), osp, s, y, ldy as i64) }
    }

    /// Up-projection over Q8_0 rows of Bᵀ (see the C header): `y[i*ldy + c] += s·oscale[c]·Σ_j tscale[j]·t[i*ldt+j]·BT[j][c0 + c]`.
    ///
    /// `bt` holds `r` rows of Q8_0 blocks (32 columns each, as [`quantize_rows_q8_0`] makes them),
    /// row `j` at byte `j·bt_stride`; only the blocks holding columns `c0 .. c0 + ncols` are read, so
    /// threads may take any column range. `oscale` and `y` start at column `c0` (`oscale[c]` scales
    /// `y[i*ldy + c]`). An absent `tscale` or `oscale` counts as all ones. `m`, `r` or `ncols == 0`
    /// touches nothing.
    #[allow(clippy::too_many_arguments)]
    pub fn up_q8_0(
        &self,
        t: &[f32],
        ldt: usize,
        m: usize,
        r: usize,
        tscale: Option<&[f32]>,
        bt: &[u8],
        bt_stride: usize,
        c0: usize,
        ncols: usize,
        oscale: Option<&[f32]>,
        s: f32,
        y: &mut [f32],
        ldy: usize,
    ) {
        if m == 0 || r == 0 || ncols == 0 {
            return;
        }
        check_matrix("adapter up_q8_0", "y", y.len(), m, ncols, ldy);
        // SAFETY: check_matrix put every y[i*ldy + c] (i < m, c < ncols) inside the slice, distinct
        // as ldy >= ncols; y is exclusively borrowed, so no other thread touches it.
        unsafe { self.up_q8_0_raw(t, ldt, m, r, tscale, bt, bt_stride, c0, ncols, oscale, s, y.as_mut_ptr(), ldy) }
    }

    /// The same through a raw output pointer, for threads writing disjoint column ranges of one matrix.
    ///
    /// # Safety
    /// `y` must be valid for reads and writes of y[i*ldy + c], i < m, c < ncols (ldy >= ncols), and no other thread may touch them during the call.
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn up_q8_0_raw(
        &self,
        t: &[f32],
        ldt: usize,
        m: usize,
        r: usize,
        tscale: Option<&[f32]>,
        bt: &[u8],
        bt_stride: usize,
        c0: usize,
        ncols: usize,
        oscale: Option<&[f32]>,
        s: f32,
        y: *mut f32,
        ldy: usize,
    ) {
        if m == 0 || r == 0 || ncols == 0 {
            return;
        }
        let ldt_c = check_up_q8_0(t, ldt, m, r, tscale, bt, bt_stride, c0, ncols, oscale);
        assert!(ldy >= ncols, "adapter up_q8_0: stride of y ({ldy}) is less than ncols ({ncols})");
        let ldy_c = i64::try_from(ldy).unwrap_or_else(|_| panic!("adapter up_q8_0: stride of y ({ldy}) does not fit i64"));
        // SAFETY: check_up_q8_0 put every byte the kernel reads (rows j < r of bt, from the row's
        // start to the end of the block holding column c0 + ncols - 1), t[i*ldt + j], tscale[j] and
        // oscale[c] inside their slices; the sizes and c0 are bounded by slice lengths, so they fit
        // i64; the caller guarantees y's elements (i, c) are valid and exclusively this call's.
        unsafe { (self.up_q8_0)(t.as_ptr(), ldt_c, c_size(m), c_size(r), opt_ptr(tscale), bt.as_ptr().cast(), bt_stride, c_size(c0), c_size(ncols), opt_ptr(oscale), s, y, ldy_c) }
    }
}
