//! Adapter (LoRA family, VeRA, ...) hot-path kernels: the down-projection `T = X·Aᵀ` and the
//! up-projection `Y += s·diag(oscale)·T·diag(tscale)·Bᵀ` with `B` stored transposed (`bt`, `r × ncols`),
//! one table of C function pointers per ISA, with safe wrappers that check every slice against the
//! strides and sizes before calling C.
//!
//! Matrices are row-major f32 with strides in elements (each at least the row's logical width); no
//! alignment is assumed, so callers may split the columns of `up` among threads by offsetting `bt`,
//! `oscale` and `y`.
use super::{sys, Isa};

/// `T = X·Aᵀ`: (x, ldx, m, a, lda, r, n, t, ldt).
type DownFn = unsafe extern "C" fn(*const f32, i64, i64, *const f32, i64, i64, i64, *mut f32, i64);
/// `Y += s·diag(oscale)·T·diag(tscale)·BT`: (t, ldt, m, r, tscale, bt, ldb, ncols, oscale, s, y, ldy).
type UpFn = unsafe extern "C" fn(*const f32, i64, i64, i64, *const f32, *const f32, i64, i64, *const f32, f32, *mut f32, i64);

/// The adapter kernels of one ISA.
#[derive(Clone, Copy)]
pub struct AdapterKernels {
    /// The ISA these pointers belong to.
    pub isa: Isa,
    down: DownFn,
    up: UpFn,
}

static REF: AdapterKernels = AdapterKernels { isa: Isa::Ref, down: sys::graft_adapter_down_f32_ref, up: sys::graft_adapter_up_f32_ref };
#[cfg(target_arch = "x86_64")]
static AVX2: AdapterKernels = AdapterKernels { isa: Isa::Avx2, down: sys::graft_adapter_down_f32_avx2, up: sys::graft_adapter_up_f32_avx2 };
#[cfg(target_arch = "x86_64")]
static AVX512: AdapterKernels =
    AdapterKernels { isa: Isa::Avx512, down: sys::graft_adapter_down_f32_avx512, up: sys::graft_adapter_up_f32_avx512 };
#[cfg(target_arch = "aarch64")]
static NEON: AdapterKernels = AdapterKernels { isa: Isa::Neon, down: sys::graft_adapter_down_f32_neon, up: sys::graft_adapter_up_f32_neon };

/// The adapter table of `isa`, or `None` when this CPU cannot run it.
pub fn adapter_kernels(isa: Isa) -> Option<&'static AdapterKernels> {
    if !isa.supported() {
        return None;
    }
    match isa {
        Isa::Ref => Some(&REF),
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => Some(&AVX2),
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => Some(&AVX512),
        #[cfg(target_arch = "aarch64")]
        Isa::Neon => Some(&NEON),
        #[allow(unreachable_patterns)]
        _ => None,
    }
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

impl AdapterKernels {
    /// T = X·Aᵀ: t[i*ldt + j] = Σ_k x[i*ldx + k]·a[j*lda + k], i < m, j < r, k < n.
    ///
    /// `n == 0` writes zeros to `t` without reading `x` or `a`; `m == 0` or `r == 0` touches nothing.
    #[allow(clippy::too_many_arguments)]
    pub fn down(&self, x: &[f32], ldx: usize, m: usize, a: &[f32], lda: usize, r: usize, n: usize, t: &mut [f32], ldt: usize) {
        if m == 0 || r == 0 {
            return;
        }
        let ldt_c = check_matrix("adapter down", "t", t.len(), m, r, ldt);
        if n == 0 {
            for row in 0..m {
                t[row * ldt..row * ldt + r].fill(0.0);
            }
            return;
        }
        let ldx_c = check_matrix("adapter down", "x", x.len(), m, n, ldx);
        let lda_c = check_matrix("adapter down", "a", a.len(), r, n, lda);
        // SAFETY: the kernel reads x[i*ldx + k] and a[j*lda + k] for i < m, j < r, k < n and writes
        // t[i*ldt + j]; check_matrix showed every such index is inside its slice (and every stride
        // is at least its row width, so no two written elements coincide). t is exclusively borrowed,
        // so it aliases neither input. m, r, n are at most slice lengths, so they fit i64.
        unsafe { (self.down)(x.as_ptr(), ldx_c, c_size(m), a.as_ptr(), lda_c, c_size(r), c_size(n), t.as_mut_ptr(), ldt_c) }
    }

    /// y[i*ldy + c] += s·oscale[c]·Σ_j tscale[j]·t[i*ldt + j]·bt[j*ldb + c], i < m, c < ncols, j < r.
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
        let ldt_c = check_matrix("adapter up", "t", t.len(), m, r, ldt);
        let ldb_c = check_matrix("adapter up", "bt", bt.len(), r, ncols, ldb);
        let ldy_c = check_matrix("adapter up", "y", y.len(), m, ncols, ldy);
        if let Some(ts) = tscale {
            assert!(ts.len() >= r, "adapter up: tscale holds {} floats, r = {r}", ts.len());
        }
        if let Some(os) = oscale {
            assert!(os.len() >= ncols, "adapter up: oscale holds {} floats, ncols = {ncols}", os.len());
        }
        let tsp = tscale.map_or(std::ptr::null(), |v| v.as_ptr());
        let osp = oscale.map_or(std::ptr::null(), |v| v.as_ptr());
        // SAFETY: the kernel reads t[i*ldt + j], bt[j*ldb + c], tscale[j] and oscale[c] (when not
        // null) and reads and writes y[i*ldy + c] for i < m, j < r, c < ncols; the checks above put
        // every such index inside its slice, and ldy >= ncols keeps the written elements distinct.
        // y is exclusively borrowed, so it aliases no input. Sizes are bounded by slice lengths.
        unsafe {
            (self.up)(
                t.as_ptr(),
                ldt_c,
                c_size(m),
                c_size(r),
                tsp,
                bt.as_ptr(),
                ldb_c,
                c_size(ncols),
                osp,
                s,
                y.as_mut_ptr(),
                ldy_c,
            )
        }
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
        // SAFETY: inputs are checked as in `up`; the caller guarantees y's elements (i, c) are
        // valid and exclusively this call's.
        unsafe { (self.up)(t.as_ptr(), ldt_c, c_size(m), c_size(r), tsp, bt.as_ptr(), ldb_c, c_size(ncols), osp, s, y, ldy as i64) }
    }
}
