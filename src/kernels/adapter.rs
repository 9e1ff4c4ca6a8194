//! Adapter kernels (temporary Rust bodies; replaced by the C kernels).
use super::Isa;

/// The adapter kernels of one ISA.
pub struct AdapterKernels {
    /// ISA.
    pub isa: Isa,
}
static REF: AdapterKernels = AdapterKernels { isa: Isa::Ref };
/// The selected table.
pub fn selected() -> &'static AdapterKernels {
    &REF
}
impl AdapterKernels {
    /// T = X·Aᵀ.
    #[allow(clippy::too_many_arguments)]
    pub fn down(&self, x: &[f32], ldx: usize, m: usize, a: &[f32], lda: usize, r: usize, n: usize, t: &mut [f32], ldt: usize) {
        for i in 0..m {
            for j in 0..r {
                let mut s = 0f32;
                for k in 0..n {
                    s += x[i * ldx + k] * a[j * lda + k];
                }
                t[i * ldt + j] = s;
            }
        }
    }
    /// Y += s·oscale⊙(T·diag(tscale)·Bᵀ).
    #[allow(clippy::too_many_arguments)]
    pub fn up(&self, t: &[f32], ldt: usize, m: usize, r: usize, tscale: Option<&[f32]>, bt: &[f32], ldb: usize, ncols: usize, oscale: Option<&[f32]>, s: f32, y: &mut [f32], ldy: usize) {
        for i in 0..m {
            for c in 0..ncols {
                let mut acc = 0f32;
                for j in 0..r {
                    acc += tscale.map_or(1.0, |v| v[j]) * t[i * ldt + j] * bt[j * ldb + c];
                }
                y[i * ldy + c] += s * oscale.map_or(1.0, |v| v[c]) * acc;
            }
        }
    }
}

impl AdapterKernels {
    /// [`AdapterKernels::up`] through a raw output pointer, for callers whose threads write
    /// disjoint column ranges of one matrix.
    ///
    /// # Safety
    /// `y` must be valid for writes of `y[i*ldy + c]` for `i < m`, `c < ncols`, and no other thread
    /// may access those elements during the call.
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn up_raw(&self, t: &[f32], ldt: usize, m: usize, r: usize, tscale: Option<&[f32]>, bt: &[f32], ldb: usize, ncols: usize, oscale: Option<&[f32]>, s: f32, y: *mut f32, ldy: usize) {
        for i in 0..m {
            for c in 0..ncols {
                let mut acc = 0f32;
                for j in 0..r {
                    acc += tscale.map_or(1.0, |v| v[j]) * t[i * ldt + j] * bt[j * ldb + c];
                }
                *y.add(i * ldy + c) += s * oscale.map_or(1.0, |v| v[c]) * acc;
            }
        }
    }
}
