//! GGUF v2/v3 reader over a memory map. The header is parsed from bytes treated as hostile: every
//! length and count is checked against the bytes left before anything is allocated, tensor ranges
//! are checked against the file and against each other, and every error names the file and field.
use crate::quant::QuantType;
use crate::{Error, Result};
use std::path::Path;

/// A metadata value.
#[derive(Clone, Debug, PartialEq)]
#[allow(missing_docs)]
pub enum Value {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    F32(f32),
    Bool(bool),
    Str(String),
    U64(u64),
    I64(i64),
    F64(f64),
    Array(Array),
}

/// A metadata array, typed by its element type.
#[derive(Clone, Debug, PartialEq)]
#[allow(missing_docs)]
pub enum Array {
    U8(Vec<u8>),
    I8(Vec<i8>),
    U16(Vec<u16>),
    I16(Vec<i16>),
    U32(Vec<u32>),
    I32(Vec<i32>),
    F32(Vec<f32>),
    Bool(Vec<bool>),
    Str(Vec<String>),
    U64(Vec<u64>),
    I64(Vec<i64>),
    F64(Vec<f64>),
    Nested(Vec<Array>),
}

impl Array {
    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            Array::U8(v) => v.len(),
            Array::I8(v) => v.len(),
            Array::U16(v) => v.len(),
            Array::I16(v) => v.len(),
            Array::U32(v) => v.len(),
            Array::I32(v) => v.len(),
            Array::F32(v) => v.len(),
            Array::Bool(v) => v.len(),
            Array::Str(v) => v.len(),
            Array::U64(v) => v.len(),
            Array::I64(v) => v.len(),
            Array::F64(v) => v.len(),
            Array::Nested(v) => v.len(),
        }
    }

    /// Whether the array is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The GGUF name of the element type.
    pub fn elem_type_name(&self) -> &'static str {
        match self {
            Array::U8(_) => "u8",
            Array::I8(_) => "i8",
            Array::U16(_) => "u16",
            Array::I16(_) => "i16",
            Array::U32(_) => "u32",
            Array::I32(_) => "i32",
            Array::F32(_) => "f32",
            Array::Bool(_) => "bool",
            Array::Str(_) => "string",
            Array::U64(_) => "u64",
            Array::I64(_) => "i64",
            Array::F64(_) => "f64",
            Array::Nested(_) => "array",
        }
    }
}

impl Value {
    /// Any non-negative integer value.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Value::U8(v) => Some(v as u64),
            Value::U16(v) => Some(v as u64),
            Value::U32(v) => Some(v as u64),
            Value::U64(v) => Some(v),
            Value::I8(v) => u64::try_from(v).ok(),
            Value::I16(v) => u64::try_from(v).ok(),
            Value::I32(v) => u64::try_from(v).ok(),
            Value::I64(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }
    /// Any integer value that fits an i64.
    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            Value::U8(v) => Some(v as i64),
            Value::U16(v) => Some(v as i64),
            Value::U32(v) => Some(v as i64),
            Value::U64(v) => i64::try_from(v).ok(),
            Value::I8(v) => Some(v as i64),
            Value::I16(v) => Some(v as i64),
            Value::I32(v) => Some(v as i64),
            Value::I64(v) => Some(v),
            _ => None,
        }
    }
    /// An F32 or F64 value, as f32.
    pub fn as_f32(&self) -> Option<f32> {
        self.as_f64().map(|v| v as f32)
    }
    /// An F32 or F64 value.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Value::F32(v) => Some(v as f64),
            Value::F64(v) => Some(v),
            _ => None,
        }
    }
    /// A Bool value.
    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            Value::Bool(v) => Some(v),
            _ => None,
        }
    }
    /// A string value.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }
    /// An array value.
    pub fn as_array(&self) -> Option<&Array> {
        match self {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }
    /// The GGUF name of the value's type.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::U8(_) => "u8",
            Value::I8(_) => "i8",
            Value::U16(_) => "u16",
            Value::I16(_) => "i16",
            Value::U32(_) => "u32",
            Value::I32(_) => "i32",
            Value::F32(_) => "f32",
            Value::Bool(_) => "bool",
            Value::Str(_) => "string",
            Value::U64(_) => "u64",
            Value::I64(_) => "i64",
            Value::F64(_) => "f64",
            Value::Array(_) => "array",
        }
    }
}

/// A tensor's entry in the header.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorInfo {
    /// Name.
    pub name: String,
    /// Dimensions in GGUF order: `dims[0]` is the row length (contiguous).
    pub dims: Vec<u64>,
    /// Element format.
    pub ty: QuantType,
    /// Absolute byte offset in the file.
    pub offset: u64,
    /// Bytes of data.
    pub n_bytes: usize,
}

impl TensorInfo {
    /// Number of elements.
    pub fn n_elements(&self) -> u64 {
        self.dims.iter().product()
    }
    /// Row length (`dims[0]`).
    pub fn row_len(&self) -> usize {
        self.dims.first().copied().unwrap_or(1) as usize
    }
    /// Number of rows (product of the other dims).
    pub fn n_rows(&self) -> usize {
        self.dims.iter().skip(1).product::<u64>() as usize
    }
}

/// The parsed header: metadata, tensor table and where the data starts.
#[derive(Clone, Debug)]
pub struct GgufHeader {
    /// Format version (2 or 3).
    pub version: u32,
    /// Alignment of tensor data (`general.alignment`, default 32).
    pub alignment: u64,
    /// Metadata in file order.
    pub metadata: Vec<(String, Value)>,
    /// Tensor table in file order.
    pub tensors: Vec<TensorInfo>,
    /// Absolute offset of the tensor data section.
    pub data_offset: u64,
}

/// GGUF metadata value type ids.
mod ty {
    pub const U8: u32 = 0;
    pub const I8: u32 = 1;
    pub const U16: u32 = 2;
    pub const I16: u32 = 3;
    pub const U32: u32 = 4;
    pub const I32: u32 = 5;
    pub const F32: u32 = 6;
    pub const BOOL: u32 = 7;
    pub const STR: u32 = 8;
    pub const ARR: u32 = 9;
    pub const U64: u32 = 10;
    pub const I64: u32 = 11;
    pub const F64: u32 = 12;
}

/// Most dimensions a tensor may have (as ggml).
pub const MAX_DIMS: usize = 4;
/// Deepest nesting of arrays accepted.
const MAX_DEPTH: usize = 4;

struct Cursor<'a> {
    b: &'a [u8],
    pos: usize,
    file: &'a str,
}

impl<'a> Cursor<'a> {
    fn err(&self, field: impl Into<String>, msg: impl Into<String>) -> Error {
        Error::format(self.file, field, format!("{} (at byte {})", msg.into(), self.pos))
    }
    fn left(&self) -> usize {
        self.b.len() - self.pos
    }
    fn take(&mut self, n: usize, field: &dyn Fn() -> String) -> Result<&'a [u8]> {
        if n > self.left() {
            return Err(self.err(field(), format!("truncated: needs {n} bytes, {} left", self.left())));
        }
        let s = &self.b[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    fn u8(&mut self, f: &dyn Fn() -> String) -> Result<u8> {
        Ok(self.take(1, f)?[0])
    }
    fn u16(&mut self, f: &dyn Fn() -> String) -> Result<u16> {
        Ok(u16::from_le_bytes(self.take(2, f)?.try_into().unwrap()))
    }
    fn u32(&mut self, f: &dyn Fn() -> String) -> Result<u32> {
        Ok(u32::from_le_bytes(self.take(4, f)?.try_into().unwrap()))
    }
    fn u64(&mut self, f: &dyn Fn() -> String) -> Result<u64> {
        Ok(u64::from_le_bytes(self.take(8, f)?.try_into().unwrap()))
    }
    /// A count of items each taking at least `min_size` bytes: refused when they cannot fit.
    fn count(&mut self, min_size: usize, f: &dyn Fn() -> String) -> Result<usize> {
        let n = self.u64(f)?;
        let fits = usize::try_from(n).ok().filter(|n| n.checked_mul(min_size.max(1)).is_some_and(|b| b <= self.left()));
        fits.ok_or_else(|| self.err(f(), format!("count {n} cannot fit in the {} bytes left", self.left())))
    }
    fn string(&mut self, f: &dyn Fn() -> String) -> Result<String> {
        let n = self.count(1, f)?;
        let bytes = self.take(n, f)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| self.err(f(), "string is not valid UTF-8"))
    }
}

fn elem_min_size(t: u32) -> Option<usize> {
    Some(match t {
        ty::U8 | ty::I8 | ty::BOOL => 1,
        ty::U16 | ty::I16 => 2,
        ty::U32 | ty::I32 | ty::F32 => 4,
        ty::U64 | ty::I64 | ty::F64 | ty::STR => 8,
        ty::ARR => 12,
        _ => return None,
    })
}

fn read_value(c: &mut Cursor, t: u32, depth: usize, f: &dyn Fn() -> String) -> Result<Value> {
    Ok(match t {
        ty::U8 => Value::U8(c.u8(f)?),
        ty::I8 => Value::I8(c.u8(f)? as i8),
        ty::U16 => Value::U16(c.u16(f)?),
        ty::I16 => Value::I16(c.u16(f)? as i16),
        ty::U32 => Value::U32(c.u32(f)?),
        ty::I32 => Value::I32(c.u32(f)? as i32),
        ty::F32 => Value::F32(f32::from_bits(c.u32(f)?)),
        ty::BOOL => match c.u8(f)? {
            0 => Value::Bool(false),
            1 => Value::Bool(true),
            v => return Err(c.err(f(), format!("bool byte {v} is neither 0 nor 1"))),
        },
        ty::STR => Value::Str(c.string(f)?),
        ty::U64 => Value::U64(c.u64(f)?),
        ty::I64 => Value::I64(c.u64(f)? as i64),
        ty::F64 => Value::F64(f64::from_bits(c.u64(f)?)),
        ty::ARR => Value::Array(read_array(c, depth + 1, f)?),
        other => return Err(c.err(f(), format!("unknown value type {other}"))),
    })
}

fn read_array(c: &mut Cursor, depth: usize, f: &dyn Fn() -> String) -> Result<Array> {
    if depth > MAX_DEPTH {
        return Err(c.err(f(), format!("arrays nested deeper than {MAX_DEPTH}")));
    }
    let et = c.u32(f)?;
    let min = elem_min_size(et).ok_or_else(|| c.err(f(), format!("unknown array element type {et}")))?;
    let n = c.count(min, &|| format!("{}: array length", f()))?;
    macro_rules! prim {
        ($variant:ident, $read:ident, $conv:expr) => {{
            let mut v = Vec::with_capacity(n);
            for _ in 0..n {
                v.push($conv(c.$read(f)?));
            }
            Array::$variant(v)
        }};
    }
    Ok(match et {
        ty::U8 => prim!(U8, u8, |x| x),
        ty::I8 => prim!(I8, u8, |x: u8| x as i8),
        ty::U16 => prim!(U16, u16, |x| x),
        ty::I16 => prim!(I16, u16, |x: u16| x as i16),
        ty::U32 => prim!(U32, u32, |x| x),
        ty::I32 => prim!(I32, u32, |x: u32| x as i32),
        ty::F32 => prim!(F32, u32, f32::from_bits),
        ty::U64 => prim!(U64, u64, |x| x),
        ty::I64 => prim!(I64, u64, |x: u64| x as i64),
        ty::F64 => prim!(F64, u64, f64::from_bits),
        ty::BOOL => {
            let mut v = Vec::with_capacity(n);
            for _ in 0..n {
                match c.u8(f)? {
                    0 => v.push(false),
                    1 => v.push(true),
                    b => return Err(c.err(f(), format!("bool byte {b} is neither 0 nor 1"))),
                }
            }
            Array::Bool(v)
        }
        ty::STR => {
            let mut v = Vec::with_capacity(n);
            for i in 0..n {
                v.push(c.string(&|| format!("{}[{i}]", f()))?);
            }
            Array::Str(v)
        }
        ty::ARR => {
            let mut v = Vec::with_capacity(n);
            for i in 0..n {
                v.push(read_array(c, depth + 1, &|| format!("{}[{i}]", f()))?);
            }
            Array::Nested(v)
        }
        _ => unreachable!("element type checked by elem_min_size"),
    })
}

impl GgufHeader {
    /// Parses and validates the header of a GGUF file held in `bytes` (the whole file: tensor
    /// ranges are checked against its length). `file` names the file in errors.
    pub fn parse(bytes: &[u8], file: &str) -> Result<GgufHeader> {
        let mut c = Cursor { b: bytes, pos: 0, file };
        let magic = c.take(4, &|| "magic".into())?;
        if magic != b"GGUF" {
            return Err(c.err("magic", format!("not a GGUF file (magic {magic:02x?})")));
        }
        let version = c.u32(&|| "version".into())?;
        match version {
            2 | 3 => {}
            1 => return Err(c.err("version", "GGUF v1 is not supported (v2 and v3 are)")),
            v if v.swap_bytes() == 2 || v.swap_bytes() == 3 => {
                return Err(c.err("version", "big-endian GGUF files are not supported"))
            }
            v => return Err(c.err("version", format!("unknown version {v}"))),
        }
        // Each tensor entry takes at least 8 (name) + 4 (n_dims) + 4 (type) + 8 (offset) bytes; each
        // metadata entry at least 8 (key) + 4 (type) + 1.
        let n_tensors = c.u64(&|| "tensor_count".into())?;
        let n_kv = c.u64(&|| "metadata_kv_count".into())?;
        let left = c.left() as u64;
        if n_tensors.checked_mul(24).is_none_or(|b| b > left) {
            return Err(c.err("tensor_count", format!("{n_tensors} tensors cannot fit in {left} bytes")));
        }
        if n_kv.checked_mul(13).is_none_or(|b| b > left) {
            return Err(c.err("metadata_kv_count", format!("{n_kv} entries cannot fit in {left} bytes")));
        }
        let mut metadata: Vec<(String, Value)> = Vec::with_capacity(n_kv as usize);
        let mut keys = std::collections::HashSet::new();
        for i in 0..n_kv as usize {
            let key = c.string(&|| format!("metadata[{i}]: key"))?;
            let t = c.u32(&|| format!("metadata[{i}] {key}: type"))?;
            let v = read_value(&mut c, t, 0, &|| format!("metadata[{i}] {key}"))?;
            if !keys.insert(key.clone()) {
                return Err(c.err(format!("metadata[{i}] {key}"), "duplicate key"));
            }
            metadata.push((key, v));
        }
        let alignment = match metadata.iter().find(|(k, _)| k == "general.alignment") {
            None => 32,
            Some((_, Value::U32(a))) if *a != 0 && a.is_power_of_two() => *a as u64,
            Some((_, v)) => return Err(c.err("general.alignment", format!("must be a non-zero power of two u32, found {v:?}"))),
        };
        let mut tensors = Vec::with_capacity(n_tensors as usize);
        let mut names = std::collections::HashSet::new();
        for i in 0..n_tensors as usize {
            let name = c.string(&|| format!("tensor[{i}]: name"))?;
            let field = |s: &str| format!("tensor {name}: {s}");
            let nd = c.u32(&|| field("n_dims"))? as usize;
            if nd == 0 || nd > MAX_DIMS {
                return Err(c.err(field("n_dims"), format!("{nd} dimensions (1 to {MAX_DIMS} allowed)")));
            }
            let mut dims = Vec::with_capacity(nd);
            for d in 0..nd {
                let v = c.u64(&|| field(&format!("dims[{d}]")))?;
                if v == 0 || v > i64::MAX as u64 {
                    return Err(c.err(field(&format!("dims[{d}]")), format!("dimension {v} out of range")));
                }
                dims.push(v);
            }
            let tid = c.u32(&|| field("type"))?;
            let ty = QuantType::from_id(tid).ok_or_else(|| c.err(field("type"), format!("unknown or unsupported tensor type {tid}")))?;
            let offset = c.u64(&|| field("offset"))?;
            let n_el = dims.iter().try_fold(1u64, |a, &d| a.checked_mul(d)).ok_or_else(|| c.err(field("dims"), "element count overflows"))?;
            let row = dims[0] as usize;
            if row % ty.block_size() != 0 {
                return Err(c.err(field("dims[0]"), format!("row length {row} is not a multiple of the {ty} block ({})", ty.block_size())));
            }
            let row_bytes = ty.row_bytes(row).ok_or_else(|| c.err(field("dims[0]"), format!("byte size of a row of {row} overflows")))?;
            let n_bytes = (n_el / dims[0]).checked_mul(row_bytes as u64).filter(|b| *b <= usize::MAX as u64 / 2).ok_or_else(|| c.err(field("dims"), "byte size overflows"))?;
            if offset % alignment != 0 {
                return Err(c.err(field("offset"), format!("offset {offset} is not a multiple of the alignment {alignment}")));
            }
            if !names.insert(name.clone()) {
                return Err(c.err(field("name"), "duplicate tensor name"));
            }
            tensors.push(TensorInfo { name, dims, ty, offset, n_bytes: n_bytes as usize });
        }
        let data_offset = (c.pos as u64).div_ceil(alignment) * alignment;
        if data_offset > bytes.len() as u64 && !tensors.is_empty() {
            return Err(c.err("data", format!("data section at {data_offset} starts past the end of the file ({} bytes)", bytes.len())));
        }
        // Offsets become absolute; ranges must lie in the file and not overlap.
        let mut ranges: Vec<(u64, u64, usize)> = Vec::with_capacity(tensors.len());
        for (i, t) in tensors.iter_mut().enumerate() {
            let start = data_offset.checked_add(t.offset);
            let end = start.and_then(|s| s.checked_add(t.n_bytes as u64));
            match (start, end) {
                (Some(s), Some(e)) if e <= bytes.len() as u64 => {
                    t.offset = s;
                    ranges.push((s, e, i));
                }
                _ => {
                    return Err(Error::format(file, format!("tensor {}: offset", t.name), format!("data [{} + {}, +{} bytes) lies outside the file ({} bytes)", data_offset, t.offset, t.n_bytes, bytes.len())))
                }
            }
        }
        ranges.sort_unstable();
        for w in ranges.windows(2) {
            if w[1].0 < w[0].1 {
                return Err(Error::format(file, format!("tensor {}: offset", tensors[w[1].2].name), format!("data overlaps tensor {}", tensors[w[0].2].name)));
            }
        }
        Ok(GgufHeader { version, alignment, metadata, tensors, data_offset })
    }
}

enum Storage {
    Map(std::sync::Arc<memmap2::Mmap>),
    Owned(Vec<u8>),
}

/// An open GGUF file: the memory map (never copied or written) and its validated header.
pub struct Gguf {
    storage: Storage,
    header: GgufHeader,
    name: String,
    index: std::collections::HashMap<String, usize>,
}

impl Gguf {
    /// Memory-maps `path` read-only and validates its header.
    pub fn open(path: impl AsRef<Path>) -> Result<Gguf> {
        let path = path.as_ref();
        let f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        // SAFETY: the map is read-only and private to this process; graft never writes through it.
        // Another process truncating the file while it is mapped would fault (SIGBUS), the accepted
        // contract of every memory-mapped model loader (llama.cpp's included).
        let map = unsafe { memmap2::Mmap::map(&f) }.map_err(|e| Error::io(path, e))?;
        Self::build(Storage::Map(std::sync::Arc::new(map)), path.display().to_string())
    }

    /// Parses a GGUF file held in memory (tests, generated files).
    pub fn from_bytes(bytes: Vec<u8>, name: &str) -> Result<Gguf> {
        Self::build(Storage::Owned(bytes), name.to_string())
    }

    fn build(storage: Storage, name: String) -> Result<Gguf> {
        let bytes = match &storage {
            Storage::Map(m) => &m[..],
            Storage::Owned(v) => &v[..],
        };
        let header = GgufHeader::parse(bytes, &name)?;
        let index = header.tensors.iter().enumerate().map(|(i, t)| (t.name.clone(), i)).collect();
        Ok(Gguf { storage, header, name, index })
    }

    /// The whole file's bytes.
    pub fn data(&self) -> &[u8] {
        match &self.storage {
            Storage::Map(m) => &m[..],
            Storage::Owned(v) => v,
        }
    }

    /// The file's memory map, shared (for views of tensor data that outlive this `Gguf`, as
    /// [`Factor::mapped`](crate::adapter::factor::Factor::mapped)); `None` for a file parsed from
    /// bytes in memory. [`Gguf::tensor_data`]'s slices point into it.
    pub fn shared_map(&self) -> Option<&std::sync::Arc<memmap2::Mmap>> {
        match &self.storage {
            Storage::Map(m) => Some(m),
            Storage::Owned(_) => None,
        }
    }

    /// The file's name as errors give it.
    pub fn file_name(&self) -> &str {
        &self.name
    }

    /// The parsed header.
    pub fn header(&self) -> &GgufHeader {
        &self.header
    }

    /// A metadata value.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.header.metadata.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    fn typed<T>(&self, key: &str, want: &str, conv: impl Fn(&Value) -> Option<T>) -> Result<Option<T>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => conv(v).map(Some).ok_or_else(|| Error::format(&self.name, key, format!("expected {want}, found {} {v:?}", v.type_name()))),
        }
    }

    fn required<T>(&self, key: &str, v: Result<Option<T>>) -> Result<T> {
        v?.ok_or_else(|| Error::format(&self.name, key, "missing"))
    }

    /// An optional integer that fits a u32.
    pub fn get_opt_u32(&self, key: &str) -> Result<Option<u32>> {
        self.typed(key, "an integer that fits u32", |v| v.as_u64().and_then(|x| u32::try_from(x).ok()))
    }
    /// An optional non-negative integer.
    pub fn get_opt_u64(&self, key: &str) -> Result<Option<u64>> {
        self.typed(key, "a non-negative integer", Value::as_u64)
    }
    /// An optional float.
    pub fn get_opt_f32(&self, key: &str) -> Result<Option<f32>> {
        self.typed(key, "a float", Value::as_f32)
    }
    /// An optional bool.
    pub fn get_opt_bool(&self, key: &str) -> Result<Option<bool>> {
        self.typed(key, "a bool", Value::as_bool)
    }
    /// An optional string.
    pub fn get_opt_str(&self, key: &str) -> Result<Option<&str>> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Str(s)) => Ok(Some(s)),
            Some(v) => Err(Error::format(&self.name, key, format!("expected a string, found {}", v.type_name()))),
        }
    }
    /// A required integer that fits a u32.
    pub fn get_u32(&self, key: &str) -> Result<u32> {
        self.required(key, self.get_opt_u32(key))
    }
    /// A required non-negative integer.
    pub fn get_u64(&self, key: &str) -> Result<u64> {
        self.required(key, self.get_opt_u64(key))
    }
    /// A required float.
    pub fn get_f32(&self, key: &str) -> Result<f32> {
        self.required(key, self.get_opt_f32(key))
    }
    /// A required bool.
    pub fn get_bool(&self, key: &str) -> Result<bool> {
        self.required(key, self.get_opt_bool(key))
    }
    /// A required string.
    pub fn get_str(&self, key: &str) -> Result<&str> {
        self.get_opt_str(key)?.ok_or_else(|| Error::format(&self.name, key, "missing"))
    }

    /// The tensor table.
    pub fn tensors(&self) -> &[TensorInfo] {
        &self.header.tensors
    }

    /// A tensor by name.
    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.index.get(name).map(|&i| &self.header.tensors[i])
    }

    /// A tensor's bytes, a view into the map (its range was validated when the file was opened).
    pub fn tensor_data(&self, t: &TensorInfo) -> &[u8] {
        let s = t.offset as usize;
        &self.data()[s..s + t.n_bytes]
    }
}
