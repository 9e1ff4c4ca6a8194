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
use super::term::{all_finite, LowRank, LowRankQ8, Term};
use super::Adapter;
use crate::kernels::adapter::{quantize_cols_q8_0, quantize_rows_q8_0};
use crate::model::{LinearKind, Model};
use crate::quant::QuantType;
use crate::{Error, Result};
use std::path::Path;

/// Reads a GGUF LoRA into LoRA's native tensors (`blk.<l>.<linear>.lora_a` `[r, n_in]`,
/// `.lora_b` `[n_out, r]`, hyper-parameter `alpha`). llama.cpp's alpha 0 (scale 1) becomes alpha 1
/// with each `B` multiplied by its rank.
pub fn read(path: &Path) -> Result<NativeAdapter> {
    read_open(&Gguf::open(path)?)
}

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

/// [`read`] of an open file.
fn read_open(g: &Gguf) -> Result<NativeAdapter> {
    let file = g.file_name().to_string();
    let (alpha, pairs) = header(g)?;
    let kq = quant::selected();
    // A tensor as f32 rows: F32 data is copied in one go; other types are dequantized row by row.
    // Values are checked for finiteness when the adapter is built.
    let read_mat = |t: &TensorInfo| -> Result<Vec<f32>> {
        let (cols, rows) = (t.row_len(), t.n_rows());
        let data = g.tensor_data(t);
        if t.ty == QuantType::F32 && data.len() == cols * rows * 4 {
            return Ok(super::graft_format::f32_from_le(data));
        }
        let mut out = vec![0f32; cols * rows];
        {
            let rb = data.len() / rows.max(1);
            for r in 0..rows {
                kq.dequantize_row(t.ty, &data[r * rb..(r + 1) * rb], &mut out[r * cols..(r + 1) * cols]).map_err(|e| Error::format(&file, &t.name, e.to_string()))?;
            }
        }
        Ok(out)
    };
    // Two threads share the conversion.
    type Named = (String, (Vec<usize>, Factor));
    let convert = |(layer, kind, ta, tb): Pair| -> Result<[Named; 2]> {
        let (n_in, r, n_out) = (ta.row_len(), ta.n_rows(), tb.n_rows());
        let a = read_mat(ta)?;
        let mut b = read_mat(tb)?;
        if alpha == 0.0 {
            b.iter_mut().for_each(|v| *v *= r as f32);
        }
        let p = format!("blk.{layer}.{}", kind.gguf_name());
        Ok([(format!("{p}.lora_a"), (vec![r, n_in], a.into())), (format!("{p}.lora_b"), (vec![n_out, r], b.into()))])
    };
    let mut tensors = Tensors::new();
    for named in crate::pool::map_two(pairs, convert) {
        tensors.extend(named?);
    }
    let mut hyper = Hyper::new();
    hyper.insert("alpha".into(), if alpha == 0.0 { "1".into() } else { alpha.to_string() });
    Ok(NativeAdapter { method: "lora".into(), hyper, base_fingerprint: None, tensors, source: file })
}

/// Reads a GGUF LoRA into an adapter for `model` without copying its f32 factors: each `A` stays a
/// view of the file's map and each `Bᵀ` is made from the mapped `B` on first read (see
/// [`Factor`]); only the Q8_0 copies that decode reads under the 8-bit numerics are built here. The
/// same checks and errors as [`read`] then [`NativeAdapter::into_adapter`]; files this cannot view
/// in place (quantized or f16 factors, alpha 0, unaligned data) go through those.
pub fn load(path: &Path, name: &str, model: &Model) -> Result<Adapter> {
    let g = Gguf::open(path)?;
    let (alpha, pairs) = header(&g)?;
    let file = g.file_name();
    let f32_data = |t: &TensorInfo| t.ty == QuantType::F32 && t.dims.len() == 2 && Some(t.n_bytes) == t.row_len().checked_mul(t.n_rows()).and_then(|n| n.checked_mul(4));
    let map = match g.shared_map() {
        Some(m) if alpha != 0.0 && pairs.iter().all(|&(_, _, a, b)| f32_data(a) && f32_data(b)) => m,
        _ => return read_open(&g)?.into_adapter(name, model),
    };
    let range = |t: &TensorInfo| t.offset as usize..t.offset as usize + t.n_bytes;
    let n_layers = model.weights.blocks.len();
    let mut seen = std::collections::BTreeSet::new();
    let mut jobs = Vec::with_capacity(pairs.len());
    for &(l, kind, ta, tb) in &pairs {
        let prefix = format!("blk.{l}.{}", kind.gguf_name());
        if l >= n_layers {
            return Err(Error::model(file, &prefix, format!("block {l}, the model has {n_layers}")));
        }
        if !seen.insert((l, kind)) {
            return Err(Error::format(file, &prefix, "adapted twice"));
        }
        let w = model.weights.blocks[l].linear(kind);
        let (r, n_in, n_out) = (ta.n_rows(), ta.row_len(), tb.n_rows());
        if n_in != w.n_in {
            return Err(Error::format(file, format!("{prefix}.lora_a"), format!("shape {:?}, expected [r, {}]", [r, n_in], w.n_in)));
        }
        if n_out != w.n_out {
            return Err(Error::format(file, format!("{prefix}.lora_b"), format!("shape {:?}, expected [{}, {r}]", [n_out, r], w.n_out)));
        }
        let (Some(a), Some(bt)) = (Factor::mapped(map, range(ta)), Factor::transposed(map, range(tb), n_out, r)) else {
            return read_open(&g)?.into_adapter(name, model);
        };
        jobs.push((l, kind, prefix, r, a, bt));
    }
    // The hyper-parameter as the file path records it, so both paths give the same bits.
    let alpha64: f64 = alpha.to_string().parse().expect("a finite f32 prints as a number");
    // Checks one pair's values and makes its Q8_0 copies.
    let build = |(l, kind, prefix, r, a, bt): (usize, LinearKind, String, usize, Factor, Factor)| -> Result<(usize, LinearKind, LowRank, Option<LowRankQ8>)> {
        for (f, p) in [(&a, "lora_a"), (&bt, "lora_b")] {
            let v = f.source();
            if !all_finite(v) {
                let i = v.iter().position(|x| !x.is_finite()).unwrap_or(0);
                return Err(Error::format(file, format!("{prefix}.{p}"), format!("non-finite value at element {i}")));
            }
        }
        let w = model.weights.blocks[l].linear(kind);
        let (n_in, n_out) = (w.n_in, w.n_out);
        let q8 = (n_in % 32 == 0 && n_out % 32 == 0)
            .then(|| LowRankQ8 { a: quantize_rows_q8_0(&a, r, n_in), bt: quantize_cols_q8_0(bt.source(), n_out, r) });
        Ok((l, kind, LowRank { r, n_in, n_out, a, bt, scale: LoraLayer::scale_for(alpha64, r, false) }, q8))
    };
    let built = crate::pool::map_two(jobs, build);
    let mut ad = Adapter::empty(name, "lora", file, n_layers);
    ad.hyper.insert("alpha".into(), alpha.to_string());
    ad.q8 = (0..n_layers).map(|_| Default::default()).collect();
    for res in built {
        let (l, kind, lr, q8) = res?;
        ad.trainable_params += lr.a.len() + lr.n_out * lr.r;
        ad.layers[l][kind as usize] = Some(Term::LowRank(lr));
        ad.q8[l][kind as usize] = q8;
    }
    ad.check_fits_shapes(model)?;
    Ok(ad)
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

