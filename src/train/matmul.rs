//! The frozen base's products in training, on f32 activations of many rows: `y = x·Wᵀ` and
//! `dx += dy·W`. The quantized weight is dequantized on the fly, a panel of rows at a time (about
//! 256 KiB of f32, so it stays in L2 while every activation row passes it), and each panel goes
//! through the register-tiled f32 kernels of [`crate::kernels::adapter`] (`down` for `x·Wᵀ`, `up`
//! for `dy·W`). Nothing larger than a panel is ever dequantized. For a handful of rows the
//! per-row kernels ([`crate::kernels::quant::QuantKernels::gemm_f32`] / `gemm_dx`) are used instead,
//! as dequantizing whole panels would not pay off.
use crate::kernels::{adapter, quant};
use crate::model::Linear;
use crate::{Error, Result};

/// Below this many rows the per-row quantized kernels are faster than dequantized panels.
const PANEL_MIN_ROWS: usize = 8;
/// Target size of one dequantized panel, in floats.
const PANEL_FLOATS: usize = 64 * 1024;

fn panel_rows(n_in: usize) -> usize {
    (PANEL_FLOATS / n_in.max(1)).clamp(4, 256)
}

/// Calls `f(first_row, rows, panel)` for consecutive panels of `w`'s rows, each dequantized to f32
/// (`rows × n_in`, row-major) into one reused buffer.
fn for_each_panel(w: &Linear, bytes: &[u8], mut f: impl FnMut(usize, usize, &[f32])) -> Result<()> {
    let (ni, no, rb) = (w.n_in, w.n_out, w.row_bytes());
    let kq = quant::selected();
    let kc = panel_rows(ni);
    let mut panel = vec![0f32; kc * ni];
    for r0 in (0..no).step_by(kc) {
        let rows = kc.min(no - r0);
        for (i, row) in panel[..rows * ni].chunks_exact_mut(ni).enumerate() {
            kq.dequantize_row(w.ty, &bytes[(r0 + i) * rb..(r0 + i + 1) * rb], row)?;
        }
        f(r0, rows, &panel[..rows * ni]);
    }
    Ok(())
}

fn check(op: &'static str, w: &Linear, bytes: &[u8], a: usize, b: usize, t: usize) -> Result<()> {
    if bytes.len() != w.n_out * w.row_bytes() {
        return Err(Error::invalid(op, format!("{} weight bytes, {} rows of {} need {}", bytes.len(), w.n_out, w.row_bytes(), w.n_out * w.row_bytes())));
    }
    if a != t * w.n_in || b != t * w.n_out {
        return Err(Error::invalid(op, format!("activations ({a}) and outputs ({b}) are not [{t}, {}] and [{t}, {}]", w.n_in, w.n_out)));
    }
    Ok(())
}

/// `y = x·Wᵀ` for `t` rows (`x` `[t, n_in]`, `y` `[t, n_out]`, overwritten).
pub fn forward(w: &Linear, bytes: &[u8], x: &[f32], t: usize, y: &mut [f32]) -> Result<()> {
    check("train matmul forward", w, bytes, x.len(), y.len(), t)?;
    if t < PANEL_MIN_ROWS {
        return quant::selected().gemm_f32(w.ty, w.n_in, bytes, w.n_out, x, t, y, w.n_out);
    }
    let (ni, no) = (w.n_in, w.n_out);
    let ka = adapter::selected();
    for_each_panel(w, bytes, |r0, rows, panel| ka.down(x, ni, t, panel, ni, rows, ni, &mut y[r0..], no))
}

/// `dx += dy·W` for `t` rows (`dy` `[t, n_out]`, `dx` `[t, n_in]`): the gradient reaching the input
/// of the frozen product.
pub fn backward_dx(w: &Linear, bytes: &[u8], dy: &[f32], t: usize, dx: &mut [f32]) -> Result<()> {
    check("train matmul backward", w, bytes, dx.len(), dy.len(), t)?;
    if t < PANEL_MIN_ROWS {
        return quant::selected().gemm_dx(w.ty, w.n_in, bytes, w.n_out, dy, w.n_out, t, dx, w.n_in);
    }
    let (ni, no) = (w.n_in, w.n_out);
    let ka = adapter::selected();
    for_each_panel(w, bytes, |r0, rows, panel| ka.up(&dy[r0..], no, t, rows, None, panel, ni, ni, None, 1.0, dx, ni))
}
