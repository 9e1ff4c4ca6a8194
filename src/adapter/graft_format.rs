//! graft's own adapter file: one safetensors file holding a method's native tensors (f32) and, in
//! `__metadata__`, `format = graft-adapter`, `version`, `method`, `hyper` (a JSON object of strings:
//! hyper-parameters, seeds), `targets` (the adapted `blk.<l>.<linear>` list) and `base_fingerprint`
//! (of the model it was made for). Written atomically (temp file, fsync, rename).
use super::methods::{Hyper, Tensors};
use super::native::{targets, NativeAdapter};
use crate::format::safetensors::SafeTensorsFile;
use crate::{Error, Result};
use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

/// The `format` metadata value.
pub const FORMAT: &str = "graft-adapter";
/// The current `version`.
pub const VERSION: &str = "1";

/// Whether `path` is a safetensors file whose metadata says it is a graft adapter.
pub fn is_graft_file(path: &Path) -> bool {
    SafeTensorsFile::open(path).is_ok_and(|f| f.metadata().iter().any(|(k, v)| k == "format" && v == FORMAT))
}

/// The file's bytes.
pub fn to_bytes(n: &NativeAdapter) -> Result<Vec<u8>> {
    let file = &n.source;
    let mut meta = HashMap::new();
    meta.insert("format".to_string(), FORMAT.to_string());
    meta.insert("version".to_string(), VERSION.to_string());
    meta.insert("method".to_string(), n.method.clone());
    meta.insert("hyper".to_string(), serde_json::to_string(&n.hyper).expect("strings serialize"));
    let tg: Vec<String> = targets(&n.tensors, file)?.iter().map(|(l, k)| format!("blk.{l}.{}", k.gguf_name())).collect();
    meta.insert("targets".to_string(), tg.join(","));
    if let Some(fp) = &n.base_fingerprint {
        meta.insert("base_fingerprint".to_string(), fp.clone());
    }
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> =
        n.tensors.iter().map(|(k, (shape, v))| (k.clone(), shape.clone(), v.iter().flat_map(|x| x.to_le_bytes()).collect())).collect();
    let mut views = Vec::with_capacity(bytes.len());
    for (k, shape, b) in &bytes {
        let v = safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), b).map_err(|e| Error::format(file, k, e.to_string()))?;
        views.push((k.clone(), v));
    }
    safetensors::serialize(views, &Some(meta)).map_err(|e| Error::format(file, "safetensors", e.to_string()))
}

/// Writes `n` to `path` atomically.
pub fn write(path: &Path, n: &NativeAdapter) -> Result<()> {
    write_atomic(path, &to_bytes(n)?)
}

/// Writes `bytes` to `path` through a temp file in the same folder, fsynced, then renamed.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let tmp = dir.join(format!(".{}.tmp{}", path.file_name().and_then(|s| s.to_str()).unwrap_or("out"), std::process::id()));
    let res = (|| -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    res.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::io(path, e)
    })
}

/// Reads a graft adapter file (every tensor converted to f32; non-finite values refused).
pub fn read(path: &Path) -> Result<NativeAdapter> {
    read_open(&SafeTensorsFile::open(path)?)
}

/// The adapter at `path` if it is a safetensors file whose metadata says graft adapter (`None`
/// otherwise), parsing the file once.
pub fn read_if_graft(path: &Path) -> Result<Option<NativeAdapter>> {
    let Ok(f) = SafeTensorsFile::open(path) else { return Ok(None) };
    if !f.metadata().iter().any(|(k, v)| k == "format" && v == FORMAT) {
        return Ok(None);
    }
    read_open(&f).map(Some)
}

fn read_open(f: &SafeTensorsFile) -> Result<NativeAdapter> {
    let file = f.file_name().to_string();
    let meta: HashMap<&str, &str> = f.metadata().iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    if meta.get("format") != Some(&FORMAT) {
        return Err(Error::format(&file, "__metadata__.format", format!("{:?}, expected {FORMAT:?}", meta.get("format"))));
    }
    if meta.get("version") != Some(&VERSION) {
        return Err(Error::format(&file, "__metadata__.version", format!("{:?}, this build reads {VERSION:?}", meta.get("version"))));
    }
    let method = meta.get("method").ok_or_else(|| Error::format(&file, "__metadata__.method", "missing"))?.to_string();
    let hyper: Hyper = match meta.get("hyper") {
        Some(h) => serde_json::from_str(h).map_err(|e| Error::format(&file, "__metadata__.hyper", format!("not a JSON object of strings: {e}")))?,
        None => Hyper::new(),
    };
    let mut tensors = Tensors::new();
    for t in f.tensors() {
        let v = f.tensor_f32(t)?;
        if !super::term::all_finite(&v) {
            let i = v.iter().position(|x| !x.is_finite()).unwrap_or(0);
            return Err(Error::format(&file, &t.name, format!("non-finite value at element {i}")));
        }
        tensors.insert(t.name.clone(), (t.shape.clone(), v));
    }
    Ok(NativeAdapter { method, hyper, base_fingerprint: meta.get("base_fingerprint").map(|s| s.to_string()), tensors, source: file })
}

/// Converts F32 / F16 / BF16 little-endian bytes to f32.
pub fn to_f32(dtype: &str, b: &[u8]) -> std::result::Result<Vec<f32>, String> {
    match dtype {
        "F32" => Ok(f32_from_le(b)),
        "F16" => Ok(b.chunks_exact(2).map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32()).collect()),
        "BF16" => Ok(b.chunks_exact(2).map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32()).collect()),
        d => Err(format!("dtype {d} is not supported (F32, F16, BF16)")),
    }
}

/// Little-endian f32 bytes to floats: one copy on little-endian targets.
pub fn f32_from_le(data: &[u8]) -> Vec<f32> {
    let n = data.len() / 4;
    if cfg!(target_endian = "little") {
        let mut out = Vec::<f32>::with_capacity(n);
        // SAFETY: out has capacity for n floats (4·n bytes), data holds at least 4·n bytes, the two
        // do not overlap (out is fresh), and every bit pattern is a valid f32; on a little-endian
        // target the bytes are the floats' own representation. set_len after the copy initialised them.
        unsafe {
            std::ptr::copy_nonoverlapping(data.as_ptr(), out.as_mut_ptr().cast::<u8>(), 4 * n);
            out.set_len(n);
        }
        out
    } else {
        data.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
    }
}
