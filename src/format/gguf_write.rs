//! GGUF v3 writer: metadata and tensors in, a file (or bytes) out; used for merged models, GGUF LoRA
//! export, and by tests to build valid and malformed files.
use super::gguf::{Array, Value};
use crate::quant::QuantType;
use crate::{Error, Result};
use std::io::Write;
use std::path::Path;

/// Builds a GGUF v3 file in memory.
#[derive(Default)]
pub struct GgufWriter {
    alignment: u32,
    kv: Vec<(String, Value)>,
    tensors: Vec<(String, Vec<u64>, QuantType, Vec<u8>)>,
}

fn put_str(o: &mut Vec<u8>, s: &str) {
    o.extend_from_slice(&(s.len() as u64).to_le_bytes());
    o.extend_from_slice(s.as_bytes());
}

fn value_type(v: &Value) -> u32 {
    match v {
        Value::U8(_) => 0,
        Value::I8(_) => 1,
        Value::U16(_) => 2,
        Value::I16(_) => 3,
        Value::U32(_) => 4,
        Value::I32(_) => 5,
        Value::F32(_) => 6,
        Value::Bool(_) => 7,
        Value::Str(_) => 8,
        Value::Array(_) => 9,
        Value::U64(_) => 10,
        Value::I64(_) => 11,
        Value::F64(_) => 12,
    }
}

fn array_type(a: &Array) -> u32 {
    match a {
        Array::U8(_) => 0,
        Array::I8(_) => 1,
        Array::U16(_) => 2,
        Array::I16(_) => 3,
        Array::U32(_) => 4,
        Array::I32(_) => 5,
        Array::F32(_) => 6,
        Array::Bool(_) => 7,
        Array::Str(_) => 8,
        Array::Nested(_) => 9,
        Array::U64(_) => 10,
        Array::I64(_) => 11,
        Array::F64(_) => 12,
    }
}

fn put_value(o: &mut Vec<u8>, v: &Value) {
    match v {
        Value::U8(x) => o.push(*x),
        Value::I8(x) => o.push(*x as u8),
        Value::U16(x) => o.extend_from_slice(&x.to_le_bytes()),
        Value::I16(x) => o.extend_from_slice(&x.to_le_bytes()),
        Value::U32(x) => o.extend_from_slice(&x.to_le_bytes()),
        Value::I32(x) => o.extend_from_slice(&x.to_le_bytes()),
        Value::F32(x) => o.extend_from_slice(&x.to_le_bytes()),
        Value::Bool(x) => o.push(*x as u8),
        Value::Str(s) => put_str(o, s),
        Value::U64(x) => o.extend_from_slice(&x.to_le_bytes()),
        Value::I64(x) => o.extend_from_slice(&x.to_le_bytes()),
        Value::F64(x) => o.extend_from_slice(&x.to_le_bytes()),
        Value::Array(a) => put_array(o, a),
    }
}

fn put_array(o: &mut Vec<u8>, a: &Array) {
    o.extend_from_slice(&array_type(a).to_le_bytes());
    o.extend_from_slice(&(a.len() as u64).to_le_bytes());
    macro_rules! each {
        ($v:expr) => {
            for x in $v {
                o.extend_from_slice(&x.to_le_bytes());
            }
        };
    }
    match a {
        Array::U8(v) => o.extend_from_slice(v),
        Array::I8(v) => o.extend(v.iter().map(|x| *x as u8)),
        Array::U16(v) => each!(v),
        Array::I16(v) => each!(v),
        Array::U32(v) => each!(v),
        Array::I32(v) => each!(v),
        Array::F32(v) => each!(v),
        Array::Bool(v) => o.extend(v.iter().map(|x| *x as u8)),
        Array::Str(v) => v.iter().for_each(|s| put_str(o, s)),
        Array::U64(v) => each!(v),
        Array::I64(v) => each!(v),
        Array::F64(v) => each!(v),
        Array::Nested(v) => v.iter().for_each(|x| put_array(o, x)),
    }
}

impl GgufWriter {
    /// An empty file with the default alignment (32).
    pub fn new() -> GgufWriter {
        GgufWriter { alignment: 32, ..Default::default() }
    }

    /// Sets the tensor data alignment (a power of two); records `general.alignment` when not 32.
    pub fn alignment(&mut self, a: u32) -> Result<&mut Self> {
        if a == 0 || !a.is_power_of_two() {
            return Err(Error::invalid("gguf writer", format!("alignment {a} is not a power of two")));
        }
        self.alignment = a;
        self.kv.retain(|(k, _)| k != "general.alignment");
        if a != 32 {
            self.kv.push(("general.alignment".into(), Value::U32(a)));
        }
        Ok(self)
    }

    /// Adds (or replaces) a metadata entry.
    pub fn add_kv(&mut self, key: &str, v: Value) -> &mut Self {
        self.kv.retain(|(k, _)| k != key);
        self.kv.push((key.to_string(), v));
        self
    }

    /// Adds a tensor; `bytes` must hold exactly the data its dims and type imply.
    pub fn add_tensor(&mut self, name: &str, dims: &[u64], ty: QuantType, bytes: Vec<u8>) -> Result<&mut Self> {
        let row = *dims.first().ok_or_else(|| Error::invalid("gguf writer", format!("tensor {name}: no dimensions")))? as usize;
        let rows: u64 = dims[1..].iter().product();
        let want = ty.row_bytes(row).map(|rb| rb as u64 * rows);
        if want != Some(bytes.len() as u64) {
            return Err(Error::invalid("gguf writer", format!("tensor {name}: {} bytes for dims {dims:?} of {ty} (need {want:?})", bytes.len())));
        }
        if self.tensors.iter().any(|t| t.0 == name) {
            return Err(Error::invalid("gguf writer", format!("tensor {name} added twice")));
        }
        self.tensors.push((name.to_string(), dims.to_vec(), ty, bytes));
        Ok(self)
    }

    /// The file's bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let a = self.alignment as usize;
        let pad = |n: usize| n.div_ceil(a) * a;
        let mut o = Vec::new();
        o.extend_from_slice(b"GGUF");
        o.extend_from_slice(&3u32.to_le_bytes());
        o.extend_from_slice(&(self.tensors.len() as u64).to_le_bytes());
        o.extend_from_slice(&(self.kv.len() as u64).to_le_bytes());
        for (k, v) in &self.kv {
            put_str(&mut o, k);
            o.extend_from_slice(&value_type(v).to_le_bytes());
            put_value(&mut o, v);
        }
        let mut offset = 0usize;
        for (name, dims, ty, bytes) in &self.tensors {
            put_str(&mut o, name);
            o.extend_from_slice(&(dims.len() as u32).to_le_bytes());
            dims.iter().for_each(|d| o.extend_from_slice(&d.to_le_bytes()));
            o.extend_from_slice(&ty.id().to_le_bytes());
            o.extend_from_slice(&(offset as u64).to_le_bytes());
            offset = pad(offset + bytes.len());
        }
        o.resize(pad(o.len()), 0);
        for (_, _, _, bytes) in &self.tensors {
            o.extend_from_slice(bytes);
            o.resize(pad(o.len()), 0);
        }
        o
    }

    /// Writes the file atomically: a temporary file beside `path`, synced, then renamed over it.
    pub fn write_to(&self, path: &Path) -> Result<()> {
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        let write = || -> std::io::Result<()> {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&self.to_bytes())?;
            f.sync_all()?;
            std::fs::rename(&tmp, path)
        };
        write().map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            Error::io(path, e)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::gguf::GgufHeader;

    #[test]
    fn round_trip_every_value_type_and_alignment() {
        for align in [32u32, 64] {
            let mut w = GgufWriter::new();
            w.alignment(align).unwrap();
            let values = vec![
                ("a.u8", Value::U8(7)),
                ("a.i8", Value::I8(-7)),
                ("a.u16", Value::U16(65535)),
                ("a.i16", Value::I16(-300)),
                ("a.u32", Value::U32(1 << 31)),
                ("a.i32", Value::I32(-5)),
                ("a.f32", Value::F32(1.5)),
                ("a.bool", Value::Bool(true)),
                ("a.str", Value::Str("héllo".into())),
                ("a.u64", Value::U64(u64::MAX)),
                ("a.i64", Value::I64(i64::MIN)),
                ("a.f64", Value::F64(-2.25)),
                ("a.arr", Value::Array(Array::Str(vec!["x".into(), "".into()]))),
                ("a.nested", Value::Array(Array::Nested(vec![Array::I32(vec![1, 2]), Array::F32(vec![])]))),
            ];
            for (k, v) in &values {
                w.add_kv(k, v.clone());
            }
            w.add_tensor("t0", &[32, 2], QuantType::Q8_0, vec![0; 68]).unwrap();
            w.add_tensor("t1", &[3], QuantType::F32, vec![1; 12]).unwrap();
            let bytes = w.to_bytes();
            let h = GgufHeader::parse(&bytes, "mem").unwrap();
            assert_eq!(h.alignment, align as u64);
            for (k, v) in &values {
                assert_eq!(h.metadata.iter().find(|(x, _)| x == k).map(|(_, v)| v), Some(v), "{k}");
            }
            assert_eq!(h.tensors.len(), 2);
            assert_eq!(h.tensors[1].offset % align as u64, 0);
            let t1 = &h.tensors[1];
            assert_eq!(&bytes[t1.offset as usize..t1.offset as usize + 12], &[1u8; 12]);
        }
    }

    #[test]
    fn writer_refuses_wrong_sizes() {
        let mut w = GgufWriter::new();
        assert!(w.add_tensor("t", &[32, 2], QuantType::Q8_0, vec![0; 67]).is_err());
        assert!(w.add_tensor("t", &[33], QuantType::Q8_0, vec![0; 34]).is_err());
        assert!(w.alignment(3).is_err());
    }
}
