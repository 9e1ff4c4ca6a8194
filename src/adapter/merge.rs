//! Folds adapters into a copy of the base model: `W' = W0 + Σ s·ΔW` for every adapted matrix,
//! written back in the base's format (F32 / F16 / BF16 exactly; Q4_0 / Q4_1 / Q5_0 / Q5_1 / Q8_0
//! re-quantized; K-quants re-quantized to Q8_0), with the error re-quantization adds. Adapters with
//! an output bias (PEFT's `lora_bias`) are refused: the base has no bias to merge it into.
use super::native::dequantize;
use super::Adapter;
use crate::format::gguf::Value;
use crate::format::gguf_write::GgufWriter;
use crate::model::{LinearKind, Model};
use crate::quant::QuantType;
use crate::requant::{quantize_row, target_type};
use crate::{Error, Result};
use std::path::Path;
use std::sync::Arc;

/// What a merge did.
#[derive(Clone, Debug, Default)]
pub struct MergeReport {
    /// Matrices changed.
    pub merged: usize,
    /// RMS of the merged weight change `ΔW` over those matrices.
    pub delta_rms: f64,
    /// RMS of the error re-quantization added (`Q(W0 + ΔW) − (W0 + ΔW)`); 0 for F32 bases.
    pub requant_rms: f64,
    /// Matrices written in another type than the base's (K-quants → Q8_0, or `--type`).
    pub retyped: usize,
}

/// Writes `model` with `adapters` (at their scales) merged to `out`, the merged matrices in their
/// base's format (K-quants as Q8_0).
pub fn merge(model: &Model, adapters: &[(Arc<Adapter>, f32)], out: &Path) -> Result<MergeReport> {
    merge_as(model, adapters, out, None)
}

/// As [`merge`], writing the merged matrices as `ty` when given (F32, F16, BF16, Q8_0, Q4_0, Q4_1,
/// Q5_0, Q5_1): a wider type than a 4-bit base keeps more of the adapter.
pub fn merge_as(model: &Model, adapters: &[(Arc<Adapter>, f32)], out: &Path, ty: Option<QuantType>) -> Result<MergeReport> {
    if let Some(t) = ty {
        if target_type(t) != t || !crate::quant::WEIGHT_TYPES.contains(&t) {
            return Err(Error::invalid("merge", format!("cannot write merged weights as {t}")));
        }
    }
    let g = &model.gguf;
    let mut w = GgufWriter::new();
    w.alignment(g.header().alignment as u32)?;
    for (k, v) in &g.header().metadata {
        if k != "general.alignment" {
            w.add_kv(k, v.clone());
        }
    }
    // An output bias (PEFT's lora_bias) would merge into the base's bias, and llama bases have none:
    // PEFT refuses this merge too.
    for (a, _) in adapters {
        if let Some((l, kind)) = (0..a.bias.len()).flat_map(|l| LinearKind::ALL.into_iter().map(move |k| (l, k))).find(|&(l, k)| a.bias(l, k).is_some()) {
            let name = format!("blk.{l}.{}.lora_bias", kind.gguf_name());
            return Err(Error::format(&a.source, name, "an output bias (PEFT lora_bias) cannot be merged: the base has no bias tensor to fold it into; apply the adapter unmerged"));
        }
    }
    let names: Vec<String> = adapters.iter().map(|(a, s)| format!("{}:{s}", a.name)).collect();
    w.add_kv("graft.merged_adapters", Value::Str(names.join(",")));
    let mut rep = MergeReport::default();
    let (mut d2, mut e2, mut n) = (0f64, 0f64, 0f64);
    for t in g.tensors() {
        let target = super::gguf_lora::parse_target(&t.name);
        let terms: Vec<(&super::Term, f32)> = match target {
            Some((l, kind)) => adapters.iter().filter_map(|(a, s)| a.term(l, kind).map(|t| (t, *s))).collect(),
            None => Vec::new(),
        };
        if terms.is_empty() {
            w.add_tensor(&t.name, &t.dims, t.ty, g.tensor_data(t).to_vec())?;
            continue;
        }
        let (l, kind): (usize, LinearKind) = target.unwrap();
        let w0 = dequantize(model, l, kind)?;
        let w0_64: Vec<f64> = w0.iter().map(|v| *v as f64).collect();
        let mut merged = w0_64.clone();
        for (term, s) in &terms {
            for (m, d) in merged.iter_mut().zip(term.delta_f64(*s as f64, Some(&w0_64))) {
                *m += d;
            }
        }
        let ty = ty.unwrap_or_else(|| target_type(t.ty));
        if ty != t.ty {
            rep.retyped += 1;
        }
        let mf: Vec<f32> = merged.iter().map(|v| *v as f32).collect();
        let mut bytes = Vec::with_capacity(ty.row_bytes(t.row_len()).unwrap_or(0) * t.n_rows());
        let kq = crate::kernels::quant::selected();
        let mut back = vec![0f32; t.row_len()];
        for (r, row) in mf.chunks(t.row_len()).enumerate() {
            let start = bytes.len();
            quantize_row(ty, row, &mut bytes).map_err(|e| Error::model(g.file_name(), &t.name, e.to_string()))?;
            kq.dequantize_row(ty, &bytes[start..], &mut back)?;
            for (i, b) in back.iter().enumerate() {
                let exact = merged[r * t.row_len() + i];
                e2 += (*b as f64 - exact).powi(2);
                d2 += (exact - w0_64[r * t.row_len() + i]).powi(2);
            }
        }
        n += merged.len() as f64;
        w.add_tensor(&t.name, &t.dims, ty, bytes)?;
        rep.merged += 1;
    }
    if n > 0.0 {
        rep.delta_rms = (d2 / n).sqrt();
        rep.requant_rms = (e2 / n).sqrt();
    }
    w.write_to(out)?;
    Ok(rep)
}
