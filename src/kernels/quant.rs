//! Quantized matrix kernels: activation quantization, dequantization, `Y = X·Wᵀ` and `dX = dY·W`,
//! one table of C function pointers per ISA, with safe wrappers that check every length.
//!
//! An ISA's table starts from the reference and overrides the entries that ISA implements, so a
//! format without a SIMD variant on some ISA still runs (on the reference) and the tests see which.
use super::{sys, Isa};
use crate::quant::QuantType;
use crate::{Error, Result};

/// `Y = X·Wᵀ`: (n, w, w_stride, nrows, x, x_stride, m, y, ldy).
pub type GemmFn = unsafe extern "C" fn(i64, *const std::ffi::c_void, usize, i64, *const std::ffi::c_void, usize, i64, *mut f32, i64);
/// `dX += dY·W`: (n, w, w_stride, nrows, dy, lddy, m, dx, lddx).
pub type GemmDxFn = unsafe extern "C" fn(i64, *const std::ffi::c_void, usize, i64, *const f32, i64, i64, *mut f32, i64);
/// One row of a format to f32.
pub type DequantFn = unsafe extern "C" fn(*const std::ffi::c_void, *mut f32, i64);
/// One row of f32 to an activation format.
pub type QuantizeFn = unsafe extern "C" fn(*const f32, *mut std::ffi::c_void, i64);

/// The kernels of one weight format.
#[derive(Clone, Copy)]
pub struct MatKernels {
    /// Activation format its products consume.
    pub act: QuantType,
    /// `Y = X·Wᵀ` with X in `act`.
    pub gemm: GemmFn,
    /// `Y = X·Wᵀ` with X in f32 (weights dequantized on the fly; graft's fp32 numerics).
    pub gemm_f32: GemmFn,
    /// `dX += dY·W`.
    pub gemm_dx: GemmDxFn,
    /// Row dequantization.
    pub dequantize: DequantFn,
}

/// The quantized kernels of one ISA.
#[derive(Clone, Copy)]
pub struct QuantKernels {
    /// The ISA.
    pub isa: Isa,
    q8_0: QuantizeFn,
    q8_1: QuantizeFn,
    q8_k: QuantizeFn,
    mats: [MatKernels; 11],
    /// `Y = X·Wᵀ` with Q8_0 weights and Q8_1 activations (the bits of the Q8_0 product).
    q8_0_q8_1: GemmFn,
}

fn slot(t: QuantType) -> Option<usize> {
    crate::quant::WEIGHT_TYPES.iter().position(|x| *x == t)
}

macro_rules! mat {
    ($act:ident, $gemm:ident, $gemm_f32:ident, $dx:ident, $deq:ident) => {
        MatKernels { act: QuantType::$act, gemm: sys::$gemm, gemm_f32: sys::$gemm_f32, gemm_dx: sys::$dx, dequantize: sys::$deq }
    };
}

const REF: QuantKernels = QuantKernels {
    isa: Isa::Ref,
    q8_0: sys::graft_quantize_row_q8_0_ref,
    q8_1: sys::graft_quantize_row_q8_1_ref,
    q8_k: sys::graft_quantize_row_q8_K_ref,
    // Order of crate::quant::WEIGHT_TYPES.
    mats: [
        mat!(F32, graft_gemm_f32_f32_ref, graft_gemm_f32_f32_ref, graft_gemm_dx_f32_ref, graft_dequantize_row_f32_ref),
        mat!(F32, graft_gemm_f16_f32_ref, graft_gemm_f16_f32_ref, graft_gemm_dx_f16_ref, graft_dequantize_row_f16_ref),
        mat!(F32, graft_gemm_bf16_f32_ref, graft_gemm_bf16_f32_ref, graft_gemm_dx_bf16_ref, graft_dequantize_row_bf16_ref),
        mat!(Q8_0, graft_gemm_q4_0_q8_0_ref, graft_gemm_q4_0_f32_ref, graft_gemm_dx_q4_0_ref, graft_dequantize_row_q4_0_ref),
        mat!(Q8_1, graft_gemm_q4_1_q8_1_ref, graft_gemm_q4_1_f32_ref, graft_gemm_dx_q4_1_ref, graft_dequantize_row_q4_1_ref),
        mat!(Q8_0, graft_gemm_q5_0_q8_0_ref, graft_gemm_q5_0_f32_ref, graft_gemm_dx_q5_0_ref, graft_dequantize_row_q5_0_ref),
        mat!(Q8_1, graft_gemm_q5_1_q8_1_ref, graft_gemm_q5_1_f32_ref, graft_gemm_dx_q5_1_ref, graft_dequantize_row_q5_1_ref),
        mat!(Q8_0, graft_gemm_q8_0_q8_0_ref, graft_gemm_q8_0_f32_ref, graft_gemm_dx_q8_0_ref, graft_dequantize_row_q8_0_ref),
        mat!(Q8_K, graft_gemm_q4_K_q8_K_ref, graft_gemm_q4_K_f32_ref, graft_gemm_dx_q4_K_ref, graft_dequantize_row_q4_K_ref),
        mat!(Q8_K, graft_gemm_q5_K_q8_K_ref, graft_gemm_q5_K_f32_ref, graft_gemm_dx_q5_K_ref, graft_dequantize_row_q5_K_ref),
        mat!(Q8_K, graft_gemm_q6_K_q8_K_ref, graft_gemm_q6_K_f32_ref, graft_gemm_dx_q6_K_ref, graft_dequantize_row_q6_K_ref),
    ],
    q8_0_q8_1: sys::graft_gemm_q8_0_q8_1_ref,
};

/// Builds an ISA's table: the listed products and quantizers of that ISA over the reference table
/// (dequantization stays the reference's except where `with_avx2_extras` sets SIMD twins).
macro_rules! isa_table {
    ($isa:expr, $q80:ident, $q81:ident, $q8k:ident, [$(($slot:expr, $gemm:ident, $dx:ident)),* $(,)?]) => {{
        let mut t = REF;
        t.isa = $isa;
        t.q8_0 = sys::$q80;
        t.q8_1 = sys::$q81;
        t.q8_k = sys::$q8k;
        $( t.mats[$slot].gemm = sys::$gemm; t.mats[$slot].gemm_dx = sys::$dx; )*
        t
    }};
    ($isa:expr, $q80:ident, $q81:ident, $q8k:ident, [$(($slot:expr, $gemm:ident, $gemm_f32:ident, $dx:ident)),* $(,)?]) => {{
        let mut t = REF;
        t.isa = $isa;
        t.q8_0 = sys::$q80;
        t.q8_1 = sys::$q81;
        t.q8_k = sys::$q8k;
        $( t.mats[$slot].gemm = sys::$gemm; t.mats[$slot].gemm_f32 = sys::$gemm_f32; t.mats[$slot].gemm_dx = sys::$dx; )*
        t
    }};
}

/// `t` with the AVX2 entries outside the per-format rows: the dequantizers of Q4_0, Q4_1 and Q8_0
/// (bit-exact with the reference) and the Q8_0 × Q8_1 product.
#[cfg(target_arch = "x86_64")]
const fn with_avx2_extras(mut t: QuantKernels) -> QuantKernels {
    t.mats[3].dequantize = sys::graft_dequantize_row_q4_0_avx2;
    t.mats[4].dequantize = sys::graft_dequantize_row_q4_1_avx2;
    t.mats[7].dequantize = sys::graft_dequantize_row_q8_0_avx2;
    t.q8_0_q8_1 = sys::graft_gemm_q8_0_q8_1_avx2;
    t
}

#[cfg(target_arch = "x86_64")]
const AVX2: QuantKernels = with_avx2_extras(isa_table!(Isa::Avx2, graft_quantize_row_q8_0_avx2, graft_quantize_row_q8_1_avx2, graft_quantize_row_q8_K_ref, [
    (0, graft_gemm_f32_f32_avx2, graft_gemm_f32_f32_avx2, graft_gemm_dx_f32_avx2),
    (1, graft_gemm_f16_f32_avx2, graft_gemm_f16_f32_avx2, graft_gemm_dx_f16_avx2),
    (2, graft_gemm_bf16_f32_avx2, graft_gemm_bf16_f32_avx2, graft_gemm_dx_bf16_avx2),
    (3, graft_gemm_q4_0_q8_0_avx2, graft_gemm_q4_0_f32_avx2, graft_gemm_dx_q4_0_avx2),
    (4, graft_gemm_q4_1_q8_1_avx2, graft_gemm_q4_1_f32_avx2, graft_gemm_dx_q4_1_avx2),
    (5, graft_gemm_q5_0_q8_0_avx2, graft_gemm_q5_0_f32_avx2, graft_gemm_dx_q5_0_avx2),
    (6, graft_gemm_q5_1_q8_1_avx2, graft_gemm_q5_1_f32_avx2, graft_gemm_dx_q5_1_avx2),
    (7, graft_gemm_q8_0_q8_0_avx2, graft_gemm_q8_0_f32_avx2, graft_gemm_dx_q8_0_avx2),
    (8, graft_gemm_q4_K_q8_K_avx2, graft_gemm_q4_K_f32_avx2, graft_gemm_dx_q4_K_avx2),
    (9, graft_gemm_q5_K_q8_K_avx2, graft_gemm_q5_K_f32_avx2, graft_gemm_dx_q5_K_avx2),
    (10, graft_gemm_q6_K_q8_K_avx2, graft_gemm_q6_K_f32_avx2, graft_gemm_dx_q6_K_avx2),
]));

/// No AVX-512 quantized kernels yet: AVX-512 CPUs run the AVX2 ones (they all have AVX2).
#[cfg(target_arch = "x86_64")]
const AVX512: QuantKernels = QuantKernels { isa: Isa::Avx512, ..AVX2 };

/// NEON: the 32-block formats with 8-bit activations and their quantizers; the rest on the reference.
#[cfg(target_arch = "aarch64")]
const NEON: QuantKernels = QuantKernels {
    q8_0_q8_1: sys::graft_gemm_q8_0_q8_1_neon,
    ..isa_table!(Isa::Neon, graft_quantize_row_q8_0_neon, graft_quantize_row_q8_1_neon, graft_quantize_row_q8_K_ref, [
        (3, graft_gemm_q4_0_q8_0_neon, graft_gemm_dx_q4_0_ref),
        (4, graft_gemm_q4_1_q8_1_neon, graft_gemm_dx_q4_1_ref),
        (7, graft_gemm_q8_0_q8_0_neon, graft_gemm_dx_q8_0_ref),
    ])
};

static REF_S: QuantKernels = REF;
#[cfg(target_arch = "aarch64")]
static NEON_S: QuantKernels = NEON;
#[cfg(target_arch = "x86_64")]
static AVX2_S: QuantKernels = AVX2;
#[cfg(target_arch = "x86_64")]
static AVX512_S: QuantKernels = AVX512;

/// The table of `isa`, or `None` when this CPU cannot run it (or no table exists for it yet).
pub fn quant_kernels(isa: Isa) -> Option<&'static QuantKernels> {
    super::weight_prefetch();
    table_of_isa!(isa, &REF_S, &AVX2_S, &AVX512_S, &NEON_S)
}

/// The table of the ISA in use.
pub fn selected() -> &'static QuantKernels {
    static SEL: std::sync::OnceLock<&'static QuantKernels> = std::sync::OnceLock::new();
    SEL.get_or_init(|| quant_kernels(super::selected_isa()).unwrap_or(&REF_S))
}

fn row_bytes(op: &'static str, t: QuantType, n: usize) -> Result<usize> {
    t.row_bytes(n).ok_or_else(|| Error::invalid(op, format!("{n} elements are not a whole number of {t} blocks")))
}

/// Checks a product's operands (`nrows` rows of `n` elements of `w_ty` in `w`, `m` rows of `act`
/// in `x`, `y[i·ldy + r]` for `i < m`, `r < nrows` inside `y`) and returns the row bytes of `w`
/// and `x`.
#[allow(clippy::too_many_arguments)]
fn check_gemm(op: &'static str, w_ty: QuantType, act: QuantType, n: usize, w: &[u8], nrows: usize, x: &[u8], m: usize, y: &[f32], ldy: usize) -> Result<(usize, usize)> {
    let wrb = row_bytes(op, w_ty, n)?;
    let xrb = row_bytes(op, act, n)?;
    need(op, "weights (bytes)", w.len(), nrows * wrb)?;
    need(op, "activations (bytes)", x.len(), m * xrb)?;
    if m > 0 && nrows > 0 {
        if ldy < nrows {
            return Err(Error::invalid(op, format!("ldy {ldy} < nrows {nrows}")));
        }
        need(op, "y", y.len(), (m - 1) * ldy + nrows)?;
    }
    Ok((wrb, xrb))
}

fn need(op: &'static str, what: &str, have: usize, want: usize) -> Result<()> {
    if have < want {
        return Err(Error::invalid(op, format!("{what}: {have} elements, need {want}")));
    }
    Ok(())
}

impl QuantKernels {
    /// The kernels of a weight format.
    pub fn mat(&self, t: QuantType) -> Result<&MatKernels> {
        slot(t).map(|s| &self.mats[s]).ok_or_else(|| Error::invalid("kernels", format!("{t} is not a weight format")))
    }

    /// Quantizes one row of floats to the activation format `act` (Q8_0, Q8_1 or Q8_K; for F32 the
    /// bytes are copied). `out` must hold exactly `act.row_bytes(x.len())` bytes.
    pub fn quantize_act(&self, act: QuantType, x: &[f32], out: &mut [u8]) -> Result<()> {
        let rb = row_bytes("quantize_act", act, x.len())?;
        if out.len() != rb {
            return Err(Error::invalid("quantize_act", format!("output holds {} bytes, {act} row needs {rb}", out.len())));
        }
        let f = match act {
            QuantType::Q8_0 => self.q8_0,
            QuantType::Q8_1 => self.q8_1,
            QuantType::Q8_K => self.q8_k,
            QuantType::F32 => {
                for (o, v) in out.chunks_exact_mut(4).zip(x) {
                    o.copy_from_slice(&v.to_ne_bytes());
                }
                return Ok(());
            }
            t => return Err(Error::invalid("quantize_act", format!("{t} is not an activation format"))),
        };
        // SAFETY: x holds n floats and out exactly the bytes of n/block blocks of `act` (checked
        // above); block structs have alignment <= 4 but the kernels access them through byte-wise
        // or unaligned loads (blocks.h structs are packed to 2 or 4 and read with memcpy/loadu).
        unsafe { f(x.as_ptr(), out.as_mut_ptr().cast(), x.len() as i64) };
        Ok(())
    }

    /// Dequantizes one row of `ty` to floats (`dst.len()` elements).
    pub fn dequantize_row(&self, ty: QuantType, src: &[u8], dst: &mut [f32]) -> Result<()> {
        let rb = row_bytes("dequantize_row", ty, dst.len())?;
        if src.len() != rb {
            return Err(Error::invalid("dequantize_row", format!("{} bytes for {} {ty} elements (need {rb})", src.len(), dst.len())));
        }
        let k = self.mat(ty)?;
        // SAFETY: src holds exactly the blocks of dst.len() elements of `ty`, dst that many floats.
        unsafe { (k.dequantize)(src.as_ptr().cast(), dst.as_mut_ptr(), dst.len() as i64) };
        Ok(())
    }

    /// `y[i·ldy + r] = W[r] · X[i]` for `r < nrows`, `i < m`: `w` holds `nrows` rows of `n` elements
    /// of `w_ty`, `x` holds `m` rows in `w_ty`'s activation format.
    #[allow(clippy::too_many_arguments)]
    pub fn gemm(&self, w_ty: QuantType, n: usize, w: &[u8], nrows: usize, x: &[u8], m: usize, y: &mut [f32], ldy: usize) -> Result<()> {
        let k = self.mat(w_ty)?;
        let (wrb, xrb) = check_gemm("gemm", w_ty, k.act, n, w, nrows, x, m, y, ldy)?;
        // SAFETY: lengths checked above: the kernel reads nrows*wrb weight bytes and m*xrb
        // activation bytes and writes y[i*ldy + r] for i < m, r < nrows, all inside y.
        unsafe { (k.gemm)(n as i64, w.as_ptr().cast(), wrb, nrows as i64, x.as_ptr().cast(), xrb, m as i64, y.as_mut_ptr(), ldy as i64) };
        Ok(())
    }

    /// [`QuantKernels::gemm`] writing through a raw pointer, for threads that each fill other
    /// columns of one output matrix.
    ///
    /// # Safety
    /// `y` must be valid for writes at `y + i·ldy + r` for `i < m`, `r < nrows`, and no other thread
    /// may access those elements during the call; `w` and `x` must hold `nrows` rows of `n`
    /// elements of `w_ty` and `m` rows of its activation format (checked, panics otherwise).
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn gemm_raw(&self, w_ty: QuantType, n: usize, w: &[u8], nrows: usize, x: &[u8], x_f32: bool, m: usize, y: *mut f32, ldy: usize) {
        let k = self.mat(w_ty).expect("weight format");
        let (f, act) = if x_f32 { (k.gemm_f32, QuantType::F32) } else { (k.gemm, k.act) };
        let wrb = w_ty.row_bytes(n).expect("whole blocks");
        let xrb = act.row_bytes(n).expect("whole blocks");
        assert!(w.len() >= nrows * wrb && x.len() >= m * xrb && ldy >= nrows, "gemm_raw: lengths");
        // SAFETY: inputs checked just above; the output contract is the caller's (see # Safety).
        unsafe { f(n as i64, w.as_ptr().cast(), wrb, nrows as i64, x.as_ptr().cast(), xrb, m as i64, y, ldy as i64) }
    }

    /// `y[i·ldy + r] = W[r] · X[i]` for Q8_0 weights `W` against activations `X` in `act`, Q8_0 or
    /// Q8_1 (whose `d` and `qs` are Q8_0's: the same bits either way), so that Q8_0 matrices read
    /// the activations a base of either activation format quantized.
    #[allow(clippy::too_many_arguments)]
    pub fn gemm_q8_0(&self, act: QuantType, n: usize, w: &[u8], nrows: usize, x: &[u8], m: usize, y: &mut [f32], ldy: usize) -> Result<()> {
        if !matches!(act, QuantType::Q8_0 | QuantType::Q8_1) {
            return Err(Error::invalid("gemm_q8_0", format!("activations in {act}: Q8_0 weights read Q8_0 or Q8_1")));
        }
        check_gemm("gemm_q8_0", QuantType::Q8_0, act, n, w, nrows, x, m, y, ldy)?;
        // SAFETY: lengths checked above, as in `gemm`; y is exclusively borrowed.
        unsafe { self.gemm_q8_0_raw(act, n, w, nrows, x, m, y.as_mut_ptr(), ldy) };
        Ok(())
    }

    /// [`QuantKernels::gemm_q8_0`] writing through a raw pointer, for threads that each fill other
    /// columns of one output matrix.
    ///
    /// # Safety
    /// As [`QuantKernels::gemm_raw`]; `act` must be Q8_0 or Q8_1 and `w`, `x` hold `nrows` Q8_0 rows
    /// and `m` rows of `act` of `n` elements (checked, panics otherwise).
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn gemm_q8_0_raw(&self, act: QuantType, n: usize, w: &[u8], nrows: usize, x: &[u8], m: usize, y: *mut f32, ldy: usize) {
        let f = match act {
            QuantType::Q8_0 => self.mats[slot(QuantType::Q8_0).expect("a weight format")].gemm,
            QuantType::Q8_1 => self.q8_0_q8_1,
            _ => panic!("gemm_q8_0_raw: activations in {act}: Q8_0 weights read Q8_0 or Q8_1"),
        };
        let wrb = QuantType::Q8_0.row_bytes(n).expect("whole blocks");
        let xrb = act.row_bytes(n).expect("whole blocks");
        assert!(w.len() >= nrows * wrb && x.len() >= m * xrb && ldy >= nrows, "gemm_q8_0_raw: lengths");
        // SAFETY: inputs checked just above; the output contract is the caller's (see # Safety).
        unsafe { f(n as i64, w.as_ptr().cast(), wrb, nrows as i64, x.as_ptr().cast(), xrb, m as i64, y, ldy as i64) }
    }

    /// `y[i·ldy + r] = W[r] · X[i]` with X in f32 whatever the weight format (fp32 numerics).
    #[allow(clippy::too_many_arguments)]
    pub fn gemm_f32(&self, w_ty: QuantType, n: usize, w: &[u8], nrows: usize, x: &[f32], m: usize, y: &mut [f32], ldy: usize) -> Result<()> {
        let k = self.mat(w_ty)?;
        let wrb = row_bytes("gemm_f32", w_ty, n)?;
        need("gemm_f32", "weights (bytes)", w.len(), nrows * wrb)?;
        need("gemm_f32", "activations", x.len(), m * n)?;
        if m > 0 && nrows > 0 {
            if ldy < nrows {
                return Err(Error::invalid("gemm_f32", format!("ldy {ldy} < nrows {nrows}")));
            }
            need("gemm_f32", "y", y.len(), (m - 1) * ldy + nrows)?;
        }
        // SAFETY: lengths checked above, as in `gemm`, with f32 activation rows of n floats.
        unsafe { (k.gemm_f32)(n as i64, w.as_ptr().cast(), wrb, nrows as i64, x.as_ptr().cast(), n * 4, m as i64, y.as_mut_ptr(), ldy as i64) };
        Ok(())
    }

    /// `dx[i·lddx + k] += Σ_r dy[i·lddy + r] · W[r][k]` for `k < n`, `i < m`, `r < nrows`.
    #[allow(clippy::too_many_arguments)]
    pub fn gemm_dx(&self, w_ty: QuantType, n: usize, w: &[u8], nrows: usize, dy: &[f32], lddy: usize, m: usize, dx: &mut [f32], lddx: usize) -> Result<()> {
        let k = self.mat(w_ty)?;
        let wrb = row_bytes("gemm_dx", w_ty, n)?;
        need("gemm_dx", "weights (bytes)", w.len(), nrows * wrb)?;
        if m > 0 {
            if lddy < nrows || lddx < n {
                return Err(Error::invalid("gemm_dx", format!("lddy {lddy} < nrows {nrows} or lddx {lddx} < n {n}")));
            }
            need("gemm_dx", "dy", dy.len(), (m - 1) * lddy + nrows)?;
            need("gemm_dx", "dx", dx.len(), (m - 1) * lddx + n)?;
        }
        // SAFETY: lengths checked above; the kernel reads dy[i*lddy + r] and updates dx[i*lddx + k]
        // for i < m, r < nrows, k < n only.
        unsafe { (k.gemm_dx)(n as i64, w.as_ptr().cast(), wrb, nrows as i64, dy.as_ptr(), lddy as i64, m as i64, dx.as_mut_ptr(), lddx as i64) };
        Ok(())
    }
}
