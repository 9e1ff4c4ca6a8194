//! 8-bit integer products (`csrc/kernels_int8.h`): activations and weights rounded to int8 in
//! blocks of 32 along the summed dimension, multiplied with exact int32 block sums. Training's
//! frozen base uses them (`src/train/packed.rs`) where the CPU multiplies bytes fast
//! ([`Int8Kernels::fast`]: AVX-512 VNNI, 64 multiply-adds an instruction against 16 for f32).
//! Variants: the scalar reference, AVX-512 VNNI, and NEON with the dot-product extension (checked
//! against the reference under qemu; its speed is unmeasured, so it is not `fast` yet); the AVX2
//! entries run the reference.
//!
//! Weights are packed once into [`PackedMatrix`] (columns in groups of 16, four bytes of K per
//! column side by side, the layout `vpdpbusd` reads); activations are quantized per call into
//! [`QuantizedRows`]. Every wrapper checks its sizes before calling C.
use super::{sys, Isa};

/// Values per quantization block along the summed dimension.
pub const BLOCK: usize = 32;
/// Bytes of one packed block of a 16-column group.
const GROUP_BLOCK_BYTES: usize = 16 * BLOCK;

type QuantizeFn = unsafe extern "C" fn(*const f32, i64, i64, i64, *mut i8, i64, *mut f32, *mut i32, i64);
type PackFn = unsafe extern "C" fn(*const f32, i64, i64, i64, i64, *mut u8, *mut f32, i64);
type GemmFn = unsafe extern "C" fn(*const i8, i64, *const f32, *const i32, i64, i64, *const u8, *const f32, i64, i64, i64, *mut f32, i64, i32);

/// The 8-bit kernels of one ISA.
#[derive(Clone, Copy)]
pub struct Int8Kernels {
    /// The ISA these pointers belong to.
    pub isa: Isa,
    /// Whether these products beat the f32 kernels on this ISA (only then does training use them
    /// by default).
    pub fast: bool,
    quantize: QuantizeFn,
    pack: PackFn,
    gemm: GemmFn,
}

static REF: Int8Kernels = Int8Kernels {
    isa: Isa::Ref,
    fast: false,
    quantize: sys::graft_int8_quantize_rows_ref,
    pack: sys::graft_int8_pack_ref,
    gemm: sys::graft_int8_gemm_ref,
};
#[cfg(target_arch = "x86_64")]
static AVX2: Int8Kernels = Int8Kernels {
    isa: Isa::Avx2,
    fast: false,
    quantize: sys::graft_int8_quantize_rows_avx2,
    pack: sys::graft_int8_pack_avx2,
    gemm: sys::graft_int8_gemm_avx2,
};
#[cfg(target_arch = "x86_64")]
static AVX512: Int8Kernels = Int8Kernels {
    isa: Isa::Avx512,
    fast: true,
    quantize: sys::graft_int8_quantize_rows_avx512,
    pack: sys::graft_int8_pack_avx512,
    gemm: sys::graft_int8_gemm_avx512,
};
#[cfg(target_arch = "aarch64")]
static NEON: Int8Kernels = Int8Kernels {
    isa: Isa::Neon,
    fast: false,
    quantize: sys::graft_int8_quantize_rows_neon,
    pack: sys::graft_int8_pack_neon,
    gemm: sys::graft_int8_gemm_neon,
};

/// The 8-bit table of `isa`, or `None` when this CPU cannot run it.
pub fn int8_kernels(isa: Isa) -> Option<&'static Int8Kernels> {
    table_of_isa!(isa, &REF, &AVX2, &AVX512, &NEON)
}

/// The 8-bit table of the ISA in use ([`super::selected_isa`]).
pub fn selected() -> &'static Int8Kernels {
    int8_kernels(super::selected_isa()).unwrap_or(&REF)
}

/// `m` rows of `kb` blocks of 32 values rounded to int8, with each block's scale and sum.
#[derive(Clone, Debug, Default)]
pub struct QuantizedRows {
    rows: usize,
    kb: usize,
    q: Vec<i8>,
    scales: Vec<f32>,
    sums: Vec<i32>,
}

impl QuantizedRows {
    /// Rows held.
    pub fn rows(&self) -> usize {
        self.rows
    }
    /// Blocks of 32 per row.
    pub fn blocks(&self) -> usize {
        self.kb
    }
    /// Row `i`'s int8 values.
    pub fn row(&self, i: usize) -> &[i8] {
        &self.q[i * self.kb * BLOCK..(i + 1) * self.kb * BLOCK]
    }
    /// Row `i`'s block scales.
    pub fn row_scales(&self, i: usize) -> &[f32] {
        &self.scales[i * self.kb..(i + 1) * self.kb]
    }
}

/// A matrix of `n` columns, each `kb` blocks of 32 values, rounded to int8 and packed for
/// [`Int8Kernels::gemm`] (the layout of `csrc/kernels_int8.h`).
#[derive(Clone, Debug, PartialEq)]
pub struct PackedMatrix {
    n: usize,
    kb: usize,
    data: Vec<u8>,
    scales: Vec<f32>,
}

impl PackedMatrix {
    /// An all-zero packed matrix of `n` columns of `kb` blocks, to be filled by [`Int8Kernels::pack`].
    pub fn zeros(n: usize, kb: usize) -> PackedMatrix {
        let groups = n.div_ceil(16);
        let blocks = groups.checked_mul(kb).expect("packed matrix size overflows usize");
        PackedMatrix { n, kb, data: vec![128u8; blocks * GROUP_BLOCK_BYTES], scales: vec![0f32; blocks * 16] }
    }
    /// Columns.
    pub fn cols(&self) -> usize {
        self.n
    }
    /// Blocks of 32 per column.
    pub fn blocks(&self) -> usize {
        self.kb
    }
    /// Bytes held (values and scales).
    pub fn bytes(&self) -> usize {
        self.data.len() + 4 * self.scales.len()
    }
}

fn c_size(v: usize) -> i64 {
    i64::try_from(v).expect("size fits i64")
}

impl Int8Kernels {
    /// Quantizes `m` rows of `kb·32` floats (row `i` at `x[i·ldx..]`) into `out` (resized).
    ///
    /// # Panics
    /// If `x` is too short for the rows and stride.
    pub fn quantize_rows(&self, x: &[f32], ldx: usize, m: usize, kb: usize, out: &mut QuantizedRows) {
        let k = kb * BLOCK;
        out.rows = m;
        out.kb = kb;
        out.q.resize(m * k, 0);
        out.scales.resize(m * kb, 0.0);
        out.sums.resize(m * kb, 0);
        if m == 0 || kb == 0 {
            return;
        }
        assert!(ldx >= k && (m - 1) * ldx + k <= x.len(), "int8 quantize: x holds {} floats, {m} rows of {k} with stride {ldx} need more", x.len());
        // SAFETY: the kernel reads x[i*ldx + c] for i < m, c < k (inside x by the assert) and writes
        // q[i*k + c], scales[i*kb + b], sums[i*kb + b] for b < kb, inside the buffers just resized
        // to m*k and m*kb elements; the outputs are exclusively borrowed.
        unsafe {
            (self.quantize)(x.as_ptr(), c_size(ldx), c_size(m), c_size(kb), out.q.as_mut_ptr(), c_size(k), out.scales.as_mut_ptr(), out.sums.as_mut_ptr(), c_size(kb))
        }
    }

    /// Packs columns `16·g0 .. 16·g0 + n` and blocks `b0 .. b0 + kb` of `into` from `w`, whose
    /// element (column `j`, index `k`) is `w[j·ld_n + k·ld_k]` (so `w` may be the matrix or its
    /// transpose), `j < n`, `k < kb·32`.
    ///
    /// # Panics
    /// If the region is outside `into`, `n` is not a whole number of groups of 16 short of the
    /// matrix's last column, or `w` is too short.
    #[allow(clippy::too_many_arguments)]
    pub fn pack(&self, w: &[f32], ld_n: usize, ld_k: usize, n: usize, kb: usize, into: &mut PackedMatrix, g0: usize, b0: usize) {
        if n == 0 || kb == 0 {
            return;
        }
        assert!(b0 + kb <= into.kb, "int8 pack: blocks {b0}..{} outside {}", b0 + kb, into.kb);
        assert!(16 * g0 + n <= into.n && (n % 16 == 0 || 16 * g0 + n == into.n), "int8 pack: columns {}..{} do not fit {}", 16 * g0, 16 * g0 + n, into.n);
        let last = (n - 1) * ld_n + (kb * BLOCK - 1) * ld_k;
        assert!(last < w.len(), "int8 pack: w holds {} floats, element {last} is read", w.len());
        let off = g0 * into.kb + b0;
        // SAFETY: the kernel reads w[j*ld_n + k*ld_k] for j < n, k < kb*32 (at most `last`, inside
        // w), and writes blocks b0..b0+kb of groups g0..g0+ceil(n/16): data[(g*kb_ld + b)*512 ..+512]
        // and scales[(g*kb_ld + b)*16 ..+16] relative to the offsets, which the asserts keep
        // inside the buffers sized for ceil(into.n/16) groups of into.kb blocks.
        unsafe {
            (self.pack)(
                w.as_ptr(),
                c_size(ld_n),
                c_size(ld_k),
                c_size(n),
                c_size(kb),
                into.data.as_mut_ptr().add(off * GROUP_BLOCK_BYTES),
                into.scales.as_mut_ptr().add(off * 16),
                c_size(into.kb),
            )
        }
    }

    /// `C (+)= A·Wᵀ` over blocks `b0 .. b0 + kb` of both: `c[i·ldc + j]` for every row `i` of `a`
    /// and the first `n` columns `j` of `w`, overwritten or (`accumulate`) added to.
    ///
    /// # Panics
    /// If `n` or the block range is outside `a` or `w`, or `c` is too short.
    #[allow(clippy::too_many_arguments)]
    pub fn gemm(&self, a: &QuantizedRows, w: &PackedMatrix, n: usize, b0: usize, kb: usize, c: &mut [f32], ldc: usize, accumulate: bool) {
        let m = a.rows;
        if m == 0 || n == 0 {
            return;
        }
        assert!(ldc >= n && (m - 1) * ldc + n <= c.len(), "int8 gemm: c holds {} floats, {m} rows of {n} with stride {ldc} need more", c.len());
        // SAFETY: the assert puts c[i*ldc + j], i < m, j < n, inside c, which is exclusively borrowed.
        unsafe { self.gemm_raw(a, 0, m, w, 0, n, b0, kb, c.as_mut_ptr(), ldc, accumulate) }
    }

    /// [`Int8Kernels::gemm`] for rows `row0 .. row0 + m` of `a` and columns `c0 .. c0 + n` of `w`
    /// (`c0` a multiple of 16), through a raw output pointer: `c[i·ldc + j]` is output (row
    /// `row0 + i`, column `c0 + j`), for callers whose threads write disjoint parts of one buffer.
    ///
    /// # Safety
    /// `c` must be valid for reads and writes of `c[i·ldc + j]` for `i < m`, `j < n`, with
    /// `ldc >= n`, and no other thread may access those elements during the call.
    ///
    /// # Panics
    /// If the rows, columns or blocks are outside `a` or `w`, or `c0` is not a multiple of 16.
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn gemm_raw(&self, a: &QuantizedRows, row0: usize, m: usize, w: &PackedMatrix, c0: usize, n: usize, b0: usize, kb: usize, c: *mut f32, ldc: usize, accumulate: bool) {
        if m == 0 || n == 0 {
            return;
        }
        assert!(row0 + m <= a.rows, "int8 gemm: rows {row0}..{} outside A ({})", row0 + m, a.rows);
        assert!(c0 % 16 == 0 && c0 + n <= w.n, "int8 gemm: columns {c0}..{} outside W ({}) or not at a group of 16", c0 + n, w.n);
        assert!(b0 + kb <= a.kb && b0 + kb <= w.kb, "int8 gemm: blocks {b0}..{} outside A ({}) or W ({})", b0 + kb, a.kb, w.kb);
        assert!(ldc >= n, "int8 gemm: stride {ldc} under {n} columns");
        let (lda, g0) = (a.kb * BLOCK, c0 / 16);
        // SAFETY: the kernel reads q[(row0 + i)*lda + 32*b0 ..] for i < m, the kb blocks from b0
        // (inside the a.rows × lda buffer by the asserts), scales/sums[(row0 + i)*a.kb + b0 + b],
        // and packed blocks b0..b0+kb of groups g0..g0+ceil(n/16) (inside as c0 + n <= w.n and
        // b0 + kb <= w.kb); it writes c[i*ldc + j], i < m, j < n, which the caller guarantees are
        // valid and this call's alone.
        unsafe {
            (self.gemm)(
                a.q.as_ptr().add(row0 * lda + b0 * BLOCK),
                c_size(lda),
                a.scales.as_ptr().add(row0 * a.kb + b0),
                a.sums.as_ptr().add(row0 * a.kb + b0),
                c_size(a.kb),
                c_size(m),
                w.data.as_ptr().add((g0 * w.kb + b0) * GROUP_BLOCK_BYTES),
                w.scales.as_ptr().add((g0 * w.kb + b0) * 16),
                c_size(w.kb),
                c_size(n),
                c_size(kb),
                c,
                c_size(ldc),
                i32::from(accumulate),
            )
        }
    }
}
