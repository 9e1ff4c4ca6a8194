//! Weight quantizers (f32 rows → GGUF blocks), as ggml's reference `quantize_row_*_ref` rounds:
//! used to write merged weights back into a quantized base's format. F32 / F16 / BF16 rows are
//! converted; Q4_0, Q4_1, Q5_0, Q5_1 and Q8_0 are quantized. K-quant rows are not (their search
//! for scales is long): [`target_type`] maps them to Q8_0.
use crate::quant::QuantType;
use crate::{Error, Result};
use half::{bf16, f16};

/// The type a merged row of a `ty` weight is written in: `ty` itself, or Q8_0 for K-quants.
pub fn target_type(ty: QuantType) -> QuantType {
    match ty {
        QuantType::Q4_K | QuantType::Q5_K | QuantType::Q6_K => QuantType::Q8_0,
        t => t,
    }
}

/// Quantizes `x` (a whole number of blocks of `ty`) and appends the bytes to `out`.
pub fn quantize_row(ty: QuantType, x: &[f32], out: &mut Vec<u8>) -> Result<()> {
    let bs = ty.block_size();
    if x.len() % bs != 0 {
        return Err(Error::invalid("quantize_row", format!("{} values are not whole {ty} blocks of {bs}", x.len())));
    }
    let h = |v: f32, out: &mut Vec<u8>| out.extend_from_slice(&f16::from_f32(v).to_le_bytes());
    match ty {
        QuantType::F32 => x.iter().for_each(|v| out.extend_from_slice(&v.to_le_bytes())),
        QuantType::F16 => x.iter().for_each(|v| h(*v, out)),
        QuantType::BF16 => x.iter().for_each(|v| out.extend_from_slice(&bf16::from_f32(*v).to_le_bytes())),
        QuantType::Q8_0 => {
            for b in x.chunks_exact(32) {
                let amax = b.iter().fold(0f32, |m, v| m.max(v.abs()));
                let d = amax / 127.0;
                let id = if d != 0.0 { 1.0 / d } else { 0.0 };
                h(d, out);
                out.extend(b.iter().map(|v| (v * id).round() as i8 as u8));
            }
        }
        QuantType::Q4_0 | QuantType::Q5_0 => {
            let (levels, off) = if ty == QuantType::Q4_0 { (15i32, 8.5f32) } else { (31, 16.5) };
            let half = (levels + 1) as f32 / 2.0;
            for b in x.chunks_exact(32) {
                let (mut amax, mut max) = (0f32, 0f32);
                for &v in b {
                    if v.abs() > amax {
                        amax = v.abs();
                        max = v;
                    }
                }
                let d = max / -half;
                let id = if d != 0.0 { 1.0 / d } else { 0.0 };
                h(d, out);
                let q: Vec<u8> = b.iter().map(|v| ((v * id + off) as i8).min(levels as i8) as u8).collect();
                pack(ty == QuantType::Q5_0, &q, out);
            }
        }
        QuantType::Q4_1 | QuantType::Q5_1 => {
            let levels = if ty == QuantType::Q4_1 { 15i32 } else { 31 };
            for b in x.chunks_exact(32) {
                let min = b.iter().fold(f32::INFINITY, |m, v| m.min(*v));
                let max = b.iter().fold(f32::NEG_INFINITY, |m, v| m.max(*v));
                let d = (max - min) / levels as f32;
                let id = if d != 0.0 { 1.0 / d } else { 0.0 };
                h(d, out);
                h(min, out);
                let q: Vec<u8> = b.iter().map(|v| (((v - min) * id + 0.5) as i8).min(levels as i8) as u8).collect();
                pack(ty == QuantType::Q5_1, &q, out);
            }
        }
        t => return Err(Error::invalid("quantize_row", format!("quantizing to {t} is not supported (use {})", target_type(t)))),
    }
    Ok(())
}

/// Packs 32 quants: for 5-bit types the high bits first (`qh`, bit j for element j), then the
/// nibbles (`qs[j] = q[j] & 15 | (q[j+16] & 15) << 4`).
fn pack(five_bit: bool, q: &[u8], out: &mut Vec<u8>) {
    if five_bit {
        let mut qh = 0u32;
        for (j, &v) in q.iter().enumerate() {
            qh |= (((v >> 4) & 1) as u32) << j;
        }
        out.extend_from_slice(&qh.to_le_bytes());
    }
    for j in 0..16 {
        out.push((q[j] & 15) | ((q[j + 16] & 15) << 4));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::quant;

    /// Each format round-trips within half a quantization step of its block (a step at the clipped
    /// end of Q4_0 / Q5_0), and writes exactly
    /// the row size the format implies.
    #[test]
    fn roundtrip_within_half_a_step() {
        let x: Vec<f32> = (0..256).map(|i| ((i * 7919 % 263) as f32 - 131.0) / 37.0).collect();
        for (ty, levels) in [(QuantType::Q8_0, 254.0), (QuantType::Q4_0, 15.0), (QuantType::Q4_1, 15.0), (QuantType::Q5_0, 31.0), (QuantType::Q5_1, 31.0), (QuantType::F16, 0.0), (QuantType::BF16, 0.0), (QuantType::F32, 0.0)] {
            let mut bytes = Vec::new();
            quantize_row(ty, &x, &mut bytes).unwrap();
            assert_eq!(bytes.len(), ty.row_bytes(x.len()).unwrap(), "{ty}");
            let mut y = vec![0f32; x.len()];
            quant::quant_kernels(crate::kernels::Isa::Ref).unwrap().dequantize_row(ty, &bytes, &mut y).unwrap();
            for (b, (xb, yb)) in x.chunks(32).zip(y.chunks(32)).enumerate() {
                let range = xb.iter().fold(0f32, |m, v| m.max(v.abs())) * 2.0;
                // Half a step, plus the f16 rounding of the block scale (2^-11 relative, times the largest quant).
                // Q4_0 / Q5_0 clip the end opposite the largest magnitude by a whole step, as ggml does.
                let steps = if matches!(ty, QuantType::Q4_0 | QuantType::Q5_0) { 1.0 } else { 0.5 };
                let tol = if levels > 0.0 { range / levels * steps + range * 1e-3 } else { range * 4e-3 };
                for (a, b2) in xb.iter().zip(yb) {
                    assert!((a - b2).abs() <= tol, "{ty} block {b}: {a} -> {b2} (tol {tol})");
                }
            }
        }
        assert!(quantize_row(QuantType::Q4_K, &x, &mut Vec::new()).is_err());
    }
}
