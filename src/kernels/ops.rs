//! Element-wise and attention kernels (RMSNorm, RoPE, softmax, SiLU-gate, f16 helpers): one table of
//! C function pointers per ISA, and safe wrappers that check slice lengths before calling C.
use super::{sys, Isa};
use half::f16;

/// The op kernels of one ISA.
#[derive(Clone, Copy)]
pub struct OpKernels {
    /// The ISA these pointers belong to.
    pub isa: Isa,
    rmsnorm: unsafe extern "C" fn(*const f32, *const f32, *mut f32, i64, f32),
    silu_gate: unsafe extern "C" fn(*const f32, *const f32, *mut f32, i64),
    softmax: unsafe extern "C" fn(*mut f32, i64),
    dot_f16: unsafe extern "C" fn(*const u16, *const u16, i64) -> f32,
    axpy_f16: unsafe extern "C" fn(f32, *const u16, *mut f32, i64),
    f32_to_f16: unsafe extern "C" fn(*const f32, *mut u16, i64),
    f16_to_f32: unsafe extern "C" fn(*const u16, *mut f32, i64),
    rope: unsafe extern "C" fn(*mut f32, i64, i64, i64, i64, f32, i32, i32),
}

macro_rules! op_table {
    ($isa:expr, ref) => {
        OpKernels {
            isa: $isa,
            rmsnorm: sys::graft_rmsnorm_f32_ref,
            silu_gate: sys::graft_silu_gate_f32_ref,
            softmax: sys::graft_softmax_f32_ref,
            dot_f16: sys::graft_dot_f16_ref,
            axpy_f16: sys::graft_axpy_f16_ref,
            f32_to_f16: sys::graft_f32_to_f16_ref,
            f16_to_f32: sys::graft_f16_to_f32_ref,
            rope: sys::graft_rope_f32_ref,
        }
    };
    ($isa:expr, avx2) => {
        OpKernels {
            isa: $isa,
            rmsnorm: sys::graft_rmsnorm_f32_avx2,
            silu_gate: sys::graft_silu_gate_f32_avx2,
            softmax: sys::graft_softmax_f32_avx2,
            dot_f16: sys::graft_dot_f16_avx2,
            axpy_f16: sys::graft_axpy_f16_avx2,
            f32_to_f16: sys::graft_f32_to_f16_avx2,
            f16_to_f32: sys::graft_f16_to_f32_avx2,
            rope: sys::graft_rope_f32_avx2,
        }
    };
    ($isa:expr, avx512) => {
        OpKernels {
            isa: $isa,
            rmsnorm: sys::graft_rmsnorm_f32_avx512,
            silu_gate: sys::graft_silu_gate_f32_avx512,
            softmax: sys::graft_softmax_f32_avx512,
            dot_f16: sys::graft_dot_f16_avx512,
            axpy_f16: sys::graft_axpy_f16_avx512,
            f32_to_f16: sys::graft_f32_to_f16_avx512,
            f16_to_f32: sys::graft_f16_to_f32_avx512,
            rope: sys::graft_rope_f32_avx512,
        }
    };
    ($isa:expr, neon) => {
        OpKernels {
            isa: $isa,
            rmsnorm: sys::graft_rmsnorm_f32_neon,
            silu_gate: sys::graft_silu_gate_f32_neon,
            softmax: sys::graft_softmax_f32_neon,
            dot_f16: sys::graft_dot_f16_neon,
            axpy_f16: sys::graft_axpy_f16_neon,
            f32_to_f16: sys::graft_f32_to_f16_neon,
            f16_to_f32: sys::graft_f16_to_f32_neon,
            rope: sys::graft_rope_f32_neon,
        }
    };
}

static REF: OpKernels = op_table!(Isa::Ref, ref);
#[cfg(target_arch = "x86_64")]
static AVX2: OpKernels = op_table!(Isa::Avx2, avx2);
#[cfg(target_arch = "x86_64")]
static AVX512: OpKernels = op_table!(Isa::Avx512, avx512);
#[cfg(target_arch = "aarch64")]
static NEON: OpKernels = op_table!(Isa::Neon, neon);

/// The op table of `isa`, or `None` when this CPU cannot run it.
pub fn op_kernels(isa: Isa) -> Option<&'static OpKernels> {
    table_of_isa!(isa, &REF, &AVX2, &AVX512, &NEON)
}

/// The op table of the ISA in use ([`super::selected_isa`]).
pub fn selected() -> &'static OpKernels {
    op_kernels(super::selected_isa()).unwrap_or(&REF)
}

fn as_u16(x: &[f16]) -> *const u16 {
    x.as_ptr().cast()
}

impl OpKernels {
    /// `y = x / sqrt(mean(x²) + eps) · w` (no weight when `w` is `None`).
    pub fn rmsnorm(&self, x: &[f32], w: Option<&[f32]>, y: &mut [f32], eps: f32) {
        assert_eq!(x.len(), y.len(), "rmsnorm: x and y lengths differ");
        if let Some(w) = w {
            assert_eq!(w.len(), x.len(), "rmsnorm: weight length");
        }
        let wp = w.map_or(std::ptr::null(), |w| w.as_ptr());
        // SAFETY: x, y (and w when present) hold x.len() floats, checked above; y does not alias x
        // (distinct borrows); the kernel reads and writes exactly n elements.
        unsafe { (self.rmsnorm)(x.as_ptr(), wp, y.as_mut_ptr(), x.len() as i64, eps) }
    }

    /// In place on `x`: `x = x / sqrt(mean(x²) + eps) · w`.
    pub fn rmsnorm_inplace(&self, x: &mut [f32], w: Option<&[f32]>, eps: f32) {
        if let Some(w) = w {
            assert_eq!(w.len(), x.len(), "rmsnorm: weight length");
        }
        let wp = w.map_or(std::ptr::null(), |w| w.as_ptr());
        // SAFETY: the kernel reads x[i] (for the sum, then for y[i]) before writing y[i] and touches
        // only indices < n, so y may alias x; w holds n floats when not null.
        unsafe { (self.rmsnorm)(x.as_ptr(), wp, x.as_mut_ptr(), x.len() as i64, eps) }
    }

    /// `gate = silu(gate) · up`, in place.
    pub fn silu_gate(&self, gate: &mut [f32], up: &[f32]) {
        assert_eq!(gate.len(), up.len(), "silu_gate: lengths differ");
        // SAFETY: both hold n floats; the kernel allows y to alias gate (element-wise, read before write).
        unsafe { (self.silu_gate)(gate.as_ptr(), up.as_ptr(), gate.as_mut_ptr(), gate.len() as i64) }
    }

    /// Softmax in place.
    pub fn softmax(&self, x: &mut [f32]) {
        // SAFETY: x holds n floats, exclusively borrowed.
        unsafe { (self.softmax)(x.as_mut_ptr(), x.len() as i64) }
    }

    /// `Σ a·b` over two f16 vectors, accumulated in f32.
    pub fn dot_f16(&self, a: &[f16], b: &[f16]) -> f32 {
        assert_eq!(a.len(), b.len(), "dot_f16: lengths differ");
        // SAFETY: both hold n halves (f16 is a transparent u16).
        unsafe { (self.dot_f16)(as_u16(a), as_u16(b), a.len() as i64) }
    }

    /// `y += a · x` with `x` in f16.
    pub fn axpy_f16(&self, a: f32, x: &[f16], y: &mut [f32]) {
        assert_eq!(x.len(), y.len(), "axpy_f16: lengths differ");
        // SAFETY: both hold n elements; y is exclusively borrowed and cannot alias x (other type).
        unsafe { (self.axpy_f16)(a, as_u16(x), y.as_mut_ptr(), x.len() as i64) }
    }

    /// f32 → f16, round to nearest even.
    pub fn f32_to_f16(&self, x: &[f32], y: &mut [f16]) {
        assert_eq!(x.len(), y.len(), "f32_to_f16: lengths differ");
        // SAFETY: both hold n elements; f16 is repr(transparent) over u16.
        unsafe { (self.f32_to_f16)(x.as_ptr(), y.as_mut_ptr().cast(), x.len() as i64) }
    }

    /// f16 → f32.
    pub fn f16_to_f32(&self, x: &[f16], y: &mut [f32]) {
        assert_eq!(x.len(), y.len(), "f16_to_f32: lengths differ");
        // SAFETY: both hold n elements.
        unsafe { (self.f16_to_f32)(as_u16(x), y.as_mut_ptr(), x.len() as i64) }
    }

    /// RoPE in place on `x` (`n_heads` vectors of `head_dim`), rotating the first `n_rot`
    /// dimensions at position `pos`; `neox` picks the pair layout, `inverse` rotates backwards.
    #[allow(clippy::too_many_arguments)]
    pub fn rope(&self, x: &mut [f32], n_heads: usize, head_dim: usize, n_rot: usize, pos: usize, freq_base: f32, neox: bool, inverse: bool) {
        assert_eq!(x.len(), n_heads * head_dim, "rope: x length");
        assert!(n_rot <= head_dim && n_rot % 2 == 0, "rope: n_rot must be even and <= head_dim");
        // SAFETY: x holds n_heads*head_dim floats and the kernel touches only the first n_rot of each
        // head (n_rot <= head_dim, checked above).
        unsafe {
            (self.rope)(
                x.as_mut_ptr(),
                n_heads as i64,
                head_dim as i64,
                n_rot as i64,
                pos as i64,
                freq_base,
                if neox { 2 } else { 0 },
                inverse as i32,
            )
        }
    }
}
