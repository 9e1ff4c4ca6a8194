//! The report `graft inspect FILE` prints: metadata and tensor table of a GGUF or safetensors file,
//! chosen by the file's magic bytes, not its extension.
use super::gguf::{Array, Gguf, Value};
use crate::{Error, Result};
use std::fmt::Write;
use std::path::Path;

const MAX_ITEMS: usize = 8;
const MAX_STR: usize = 120;

fn short(s: &str) -> String {
    let one_line: String = s.chars().map(|c| if c == '\n' { '⏎' } else { c }).collect();
    if one_line.chars().count() > MAX_STR {
        format!("{:?}…", one_line.chars().take(MAX_STR).collect::<String>())
    } else {
        format!("{one_line:?}")
    }
}

fn items<T: std::fmt::Debug>(v: &[T]) -> String {
    let head: Vec<String> = v.iter().take(MAX_ITEMS).map(|x| format!("{x:?}")).collect();
    format!("[{}{}]", head.join(", "), if v.len() > MAX_ITEMS { ", …" } else { "" })
}

fn array(a: &Array) -> String {
    let body = match a {
        Array::U8(v) => items(v),
        Array::I8(v) => items(v),
        Array::U16(v) => items(v),
        Array::I16(v) => items(v),
        Array::U32(v) => items(v),
        Array::I32(v) => items(v),
        Array::F32(v) => items(v),
        Array::Bool(v) => items(v),
        Array::Str(v) => {
            let head: Vec<String> = v.iter().take(MAX_ITEMS).map(|s| short(s)).collect();
            format!("[{}{}]", head.join(", "), if v.len() > MAX_ITEMS { ", …" } else { "" })
        }
        Array::U64(v) => items(v),
        Array::I64(v) => items(v),
        Array::F64(v) => items(v),
        Array::Nested(v) => format!("[{}{}]", v.iter().take(MAX_ITEMS).map(array).collect::<Vec<_>>().join(", "), if v.len() > MAX_ITEMS { ", …" } else { "" }),
    };
    format!("array<{}>[{}] {body}", a.elem_type_name(), a.len())
}

fn value(v: &Value) -> String {
    match v {
        Value::Str(s) => short(s),
        Value::Array(a) => array(a),
        Value::F32(x) => format!("{x}"),
        Value::F64(x) => format!("{x}"),
        other => other.as_i64().map(|i| i.to_string()).or_else(|| other.as_bool().map(|b| b.to_string())).or_else(|| other.as_u64().map(|u| u.to_string())).unwrap_or_default(),
    }
}

fn inspect_gguf(path: &Path) -> Result<String> {
    let g = Gguf::open(path)?;
    let h = g.header();
    let mut o = String::new();
    let data: usize = h.tensors.iter().map(|t| t.n_bytes).sum();
    let _ = writeln!(o, "file: {}\nformat: GGUF v{}\nalignment: {}\ntensors: {}\ntensor data: {} bytes ({:.1} MiB) from offset {}\n", path.display(), h.version, h.alignment, h.tensors.len(), data, data as f64 / 1048576.0, h.data_offset);
    let _ = writeln!(o, "metadata ({} keys):", h.metadata.len());
    for (k, v) in &h.metadata {
        let _ = writeln!(o, "  {k} ({}) = {}", v.type_name(), value(v));
    }
    let _ = writeln!(o, "\n{:<40} {:<6} {:<20} {:>12} {:>12}", "tensor", "type", "dims", "bytes", "offset");
    for t in &h.tensors {
        let _ = writeln!(o, "{:<40} {:<6} {:<20} {:>12} {:>12}", t.name, t.ty.name(), format!("{:?}", t.dims), t.n_bytes, t.offset);
    }
    Ok(o)
}

fn inspect_safetensors(path: &Path) -> Result<String> {
    let st = super::safetensors::SafeTensorsFile::open(path)?;
    let mut o = String::new();
    let _ = writeln!(o, "file: {}\nformat: safetensors\ntensors: {}\n", path.display(), st.tensors().len());
    let _ = writeln!(o, "metadata ({} keys):", st.metadata().len());
    for (k, v) in st.metadata() {
        let _ = writeln!(o, "  {k} = {}", short(v));
    }
    let _ = writeln!(o, "\n{:<50} {:<6} {:<20} {:>12}", "tensor", "dtype", "shape", "bytes");
    for t in st.tensors() {
        let _ = writeln!(o, "{:<50} {:<6} {:<20} {:>12}", t.name, t.dtype, format!("{:?}", t.shape), t.n_bytes);
    }
    Ok(o)
}

/// The inspection report of a GGUF or safetensors file.
pub fn inspect(path: &Path) -> Result<String> {
    let mut magic = [0u8; 8];
    {
        use std::io::Read;
        let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        let n = f.read(&mut magic).map_err(|e| Error::io(path, e))?;
        if n < 8 {
            return Err(Error::format(path.display().to_string(), "magic", format!("file too short ({n} bytes) for GGUF or safetensors")));
        }
    }
    if &magic[..4] == b"GGUF" {
        inspect_gguf(path)
    } else {
        // safetensors: an 8-byte little-endian header length, then a JSON object.
        inspect_safetensors(path)
    }
}
