//! llama.cpp's GGUF LoRA format: `general.type = adapter`, `adapter.type = lora`,
//! `adapter.lora.alpha`, and per adapted weight `<tensor>.lora_a` (ggml dims `[n_in, r]`, i.e. `A`
//! `[r, n_in]` row-major) and `<tensor>.lora_b` (ggml dims `[r, n_out]`, i.e. `B` `[n_out, r]`).
//! The scale is `alpha / r` (1 when alpha is 0), as llama.cpp applies it.
use super::methods::lora::LoraLayer;
use super::methods::{Hyper, Tensors};
use super::native::NativeAdapter;
use crate::format::gguf::{Gguf, TensorInfo, Value};
use crate::format::gguf_write::GgufWriter;
use crate::kernels::quant;
use super::factor::Factor;
use crate::model::LinearKind;
use crate::quant::QuantType;
use crate::{Error, Result};
use std::path::Path;

/// A `(layer, projection, lora_a, lora_b)` pair of an open GGUF LoRA.
type Pair<'t> = (usize, LinearKind, &'t TensorInfo, &'t TensorInfo);

/// Checks an open file's header and lists its `.lora_a` / `.lora_b` pairs (at least one), with
/// its alpha.
fn header(g: &Gguf) -> Result<(f32, Vec<Pair<'_>>)> {
    let file = g.file_name();
    match g.get_opt_str("general.type")? {
        Some("adapter") => {}
        other => return Err(Error::format(file, "general.type", format!("{other:?}, expected \"adapter\""))),
    }
    match g.get_opt_str("adapter.type")? {
        Some("lora") => {}
        other => return Err(Error::format(file, "adapter.type", format!("{other:?}, expected \"lora\""))),
    }
    let alpha = g.get_opt_f32("adapter.lora.alpha")?.unwrap_or(0.0);
    if !alpha.is_finite() {
        return Err(Error::format(file, "adapter.lora.alpha", "not finite"));
    }
    let mut pairs = Vec::new();
    for t in g.tensors() {
        let Some(stem) = t.name.strip_suffix(".lora_a") else {
            let Some(stem) = t.name.strip_suffix(".lora_b") else {
                return Err(Error::format(file, &t.name, "not a .lora_a / .lora_b tensor"));
            };
            if g.tensor(&format!("{stem}.lora_a")).is_none() {
                return Err(Error::format(file, &t.name, "its lora_a is missing"));
            }
            continue;
        };
        let (layer, kind) = parse_target(stem).ok_or_else(|| Error::format(file, &t.name, "not blk.<n>.<attn_q|attn_k|attn_v|attn_output|ffn_gate|ffn_up|ffn_down>.weight.lora_a"))?;
        let bname = format!("{stem}.lora_b");
        let tb = g.tensor(&bname).ok_or_else(|| Error::format(file, &bname, "missing (its lora_a is present)"))?;
        let r = t.n_rows();
        if t.dims.len() != 2 || tb.dims.len() != 2 || tb.row_len() != r || r == 0 {
            return Err(Error::format(file, &bname, format!("dims {:?} do not match lora_a's dims {:?}", tb.dims, t.dims)));
        }
        pairs.push((layer, kind, t, tb));
    }
    if pairs.is_empty() {
        return Err(Error::format(file, "tensors", "no .lora_a / .lora_b pairs"));
    }
    Ok((alpha, pairs))
}

/// Reads a GGUF LoRA into LoRA's native tensors (`blk.<l>.<linear>.lora_a` `[r, n_in]`,
/// `.lora_b` `[n_out, r]`, hyper-parameter `alpha`). llama.cpp's alpha 0 (scale 1) becomes alpha 1
/// with each `B` multiplied by its rank. F32 factors are views of the file's map (see
/// [`Factor`]), other types converted copies.
pub fn read(path: &Path) -> Result<NativeAdapter> {
    let g = Gguf::open(path)?;
    let file = g.file_name().to_string();
    let (alpha, pairs) = header(&g)?;
    let kq = quant::selected();
    // A tensor as f32 rows: F32 data is a view of the map where it can be (else copied in one
    // go); other types are dequantized row by row. Values are checked for finiteness when the
    // adapter is built.
    let read_mat = |t: &TensorInfo| -> Result<Factor> {
        let (cols, rows) = (t.row_len(), t.n_rows());
        let data = g.tensor_data(t);
        if t.ty == QuantType::F32 && data.len() == cols * rows * 4 {
            let offset = t.offset as usize;
            if let Some(f) = g.shared_map().and_then(|m| Factor::mapped(m, offset..offset + data.len())) {
                return Ok(f);
            }
            return Ok(super::graft_format::f32_from_le(data).into());
        }
        let mut out = vec![0f32; cols * rows];
        {
            let rb = data.len() / rows.max(1);
            for r in 0..rows {
                kq.dequantize_row(t.ty, &data[r * rb..(r + 1) * rb], &mut out[r * cols..(r + 1) * cols]).map_err(|e| Error::format(&file, &t.name, e.to_string()))?;
            }
        }
        Ok(out.into())
    };
    // Two threads share the conversion.
    type Named = (String, (Vec<usize>, Factor));
    let convert = |(layer, kind, ta, tb): Pair| -> Result<[Named; 2]> {
        let (n_in, r, n_out) = (ta.row_len(), ta.n_rows(), tb.n_rows());
        let a = read_mat(ta)?;
        let mut b = read_mat(tb)?;
        if alpha == 0.0 {
            // A copy where `b` was a view of the map.
            b.iter_mut().for_each(|v| *v *= r as f32);
        }
        let p = format!("blk.{layer}.{}", kind.gguf_name());
        Ok([(format!("{p}.lora_a"), (vec![r, n_in], a)), (format!("{p}.lora_b"), (vec![n_out, r], b))])
    };
    let mut tensors = Tensors::new();
    for named in crate::pool::map_two(pairs, convert) {
        for (name, t) in named? {
            // `blk.1` and `blk.01` name the same layer.
            if tensors.insert(name.clone(), t).is_some() {
                return Err(Error::format(&file, &name, "adapted twice"));
            }
        }
    }
    let mut hyper = Hyper::new();
    hyper.insert("alpha".into(), if alpha == 0.0 { "1".into() } else { alpha.to_string() });
    Ok(NativeAdapter { method: "lora".into(), hyper, base_fingerprint: None, tensors, source: file })
}

/// `blk.<n>.<name>.weight` → (n, kind).
pub fn parse_target(stem: &str) -> Option<(usize, LinearKind)> {
    let rest = stem.strip_prefix("blk.")?.strip_suffix(".weight")?;
    let (n, name) = rest.split_once('.')?;
    let layer = n.parse().ok()?;
    let kind = LinearKind::ALL.into_iter().find(|k| k.gguf_name() == name)?;
    Some((layer, kind))
}

/// Writes `layers` (LoRA factors per block and projection) as a GGUF LoRA with `alpha = r` per
/// layer's own rank folded into `B` (scale 1 at load: alpha 0 means scale 1 in llama.cpp).
pub fn write(path: &Path, layers: &[(usize, LinearKind, LoraLayer)]) -> Result<()> {
    let mut w = GgufWriter::new();
    w.add_kv("general.architecture", Value::Str("llama".into()));
    w.add_kv("general.type", Value::Str("adapter".into()));
    w.add_kv("adapter.type", Value::Str("lora".into()));
    // All ranks equal: alpha = r gives scale 1; mixed ranks: alpha 0 (scale 1 in llama.cpp too).
    let ranks: std::collections::BTreeSet<usize> = layers.iter().map(|l| l.2.r).collect();
    let alpha = if ranks.len() == 1 { *ranks.iter().next().unwrap() as f32 } else { 0.0 };
    w.add_kv("adapter.lora.alpha", Value::F32(alpha));
    let f32_bytes = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    for (l, kind, p) in layers {
        let stem = format!("blk.{l}.{}.weight", kind.gguf_name());
        let b: Vec<f32> = p.b.iter().map(|v| v * p.scale).collect();
        w.add_tensor(&format!("{stem}.lora_a"), &[p.n_in as u64, p.r as u64], QuantType::F32, f32_bytes(&p.a))?;
        w.add_tensor(&format!("{stem}.lora_b"), &[p.r as u64, p.n_out as u64], QuantType::F32, f32_bytes(&b))?;
    }
    w.write_to(path)
}

