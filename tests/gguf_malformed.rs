//! The GGUF reader against hostile files: every malformed header gives an error that names the file
//! and the field, never a panic, an out-of-bounds read or an allocation sized by an unchecked count.
use graft::format::gguf::{Array, Gguf, GgufHeader, Value};
use graft::format::gguf_write::GgufWriter;
use graft::quant::QuantType;
use graft::Error;

/// A raw GGUF builder for malformed files (the writer only makes valid ones).
struct Raw(Vec<u8>);
impl Raw {
    fn header(version: u32, n_tensors: u64, n_kv: u64) -> Raw {
        let mut v = b"GGUF".to_vec();
        v.extend_from_slice(&version.to_le_bytes());
        v.extend_from_slice(&n_tensors.to_le_bytes());
        v.extend_from_slice(&n_kv.to_le_bytes());
        Raw(v)
    }
    fn u32(mut self, x: u32) -> Raw {
        self.0.extend_from_slice(&x.to_le_bytes());
        self
    }
    fn u64(mut self, x: u64) -> Raw {
        self.0.extend_from_slice(&x.to_le_bytes());
        self
    }
    fn bytes(mut self, b: &[u8]) -> Raw {
        self.0.extend_from_slice(b);
        self
    }
    fn str(self, s: &str) -> Raw {
        self.u64(s.len() as u64).bytes(s.as_bytes())
    }
    /// A tensor entry.
    fn tensor(self, name: &str, dims: &[u64], ty: u32, offset: u64) -> Raw {
        let mut r = self.str(name).u32(dims.len() as u32);
        for d in dims {
            r = r.u64(*d);
        }
        r.u32(ty).u64(offset)
    }
    /// Pads to 32 and appends `n` data bytes.
    fn data(mut self, n: usize) -> Vec<u8> {
        self.0.resize(self.0.len().div_ceil(32) * 32 + n, 0);
        self.0
    }
}

fn err(bytes: &[u8]) -> String {
    match GgufHeader::parse(bytes, "bad.gguf") {
        Ok(_) => panic!("malformed file accepted"),
        Err(e @ Error::Format { .. }) => {
            let s = e.to_string();
            assert!(s.starts_with("bad.gguf: "), "error must name the file: {s}");
            s
        }
        Err(e) => panic!("unexpected error kind: {e}"),
    }
}

fn expect(bytes: &[u8], field: &str) {
    let e = err(bytes);
    assert!(e.contains(field), "error {e:?} should name {field:?}");
}

fn valid() -> Vec<u8> {
    let mut w = GgufWriter::new();
    w.add_kv("general.architecture", Value::Str("llama".into()));
    w.add_kv("x.count", Value::U32(3));
    w.add_kv("x.list", Value::Array(Array::Str(vec!["ab".into(), "c".into()])));
    w.add_kv("x.nested", Value::Array(Array::Nested(vec![Array::U8(vec![1, 2]), Array::Bool(vec![true])])));
    w.add_tensor("a", &[32, 2], QuantType::Q8_0, vec![3; 68]).unwrap();
    w.add_tensor("b", &[4], QuantType::F32, vec![4; 16]).unwrap();
    w.add_tensor("c", &[32], QuantType::Q4_1, vec![5; 20]).unwrap();
    w.to_bytes()
}

#[test]
fn valid_file_parses_and_round_trips() {
    let bytes = valid();
    let g = Gguf::from_bytes(bytes, "ok.gguf").unwrap();
    assert_eq!(g.get_str("general.architecture").unwrap(), "llama");
    assert_eq!(g.get_u32("x.count").unwrap(), 3);
    assert_eq!(g.tensors().len(), 3);
    assert_eq!(g.tensor_data(g.tensor("b").unwrap()), &[4u8; 16]);
    assert_eq!(g.tensor_data(g.tensor("c").unwrap()), &[5u8; 20]);
    // Typed getters name the key on a type mismatch or absence.
    assert!(g.get_u32("general.architecture").unwrap_err().to_string().contains("general.architecture"));
    assert!(g.get_str("missing.key").unwrap_err().to_string().contains("missing.key"));
    assert_eq!(g.get_opt_u32("missing.key").unwrap(), None);
}

#[test]
fn every_truncation_is_an_error() {
    let bytes = valid();
    let h = GgufHeader::parse(&bytes, "ok").unwrap();
    let end = h.tensors.iter().map(|t| t.offset as usize + t.n_bytes).max().unwrap();
    assert!(end < bytes.len(), "the file ends with padding after the last tensor");
    for len in 0..end {
        // Tensor data is checked against the file length, so every prefix cutting into the header
        // or the data must fail (only the final padding may go).
        let _ = err(&bytes[..len]);
    }
    assert!(GgufHeader::parse(&bytes[..end], "ok").is_ok());
}

#[test]
fn magic_and_version() {
    expect(&Raw::header(3, 0, 0).0.iter().enumerate().map(|(i, b)| if i == 0 { b'X' } else { *b }).collect::<Vec<_>>(), "magic");
    expect(&Raw::header(1, 0, 0).0, "version");
    expect(&Raw::header(3u32.swap_bytes(), 0, 0).0, "big-endian");
    expect(&Raw::header(7, 0, 0).0, "version");
    assert!(GgufHeader::parse(&Raw::header(2, 0, 0).0, "v2").is_ok(), "v2 is accepted");
}

#[test]
fn huge_counts_and_lengths() {
    expect(&Raw::header(3, u64::MAX, 0).0, "tensor_count");
    expect(&Raw::header(3, 0, 1 << 60).0, "metadata_kv_count");
    // A key length far past the end.
    expect(&Raw::header(3, 0, 1).u64(1 << 62).bytes(&[0; 32]).0, "metadata[0]: key");
    // A string value whose length lies.
    expect(&Raw::header(3, 0, 1).str("k").u32(8).u64(u64::MAX).bytes(b"abc").0, "metadata[0] k");
    // An array whose count cannot fit in the bytes left.
    let e = err(&Raw::header(3, 0, 1).str("k").u32(9).u32(6).u64(1 << 40).bytes(&[0; 16]).0);
    assert!(e.contains("metadata[0] k: array length"), "{e}");
    // A string array whose count is plausible per byte but whose strings are truncated.
    expect(&Raw::header(3, 0, 1).str("k").u32(9).u32(8).u64(2).u64(100).bytes(&[b'a'; 16]).0, "metadata[0] k[0]");
}

#[test]
fn bad_value_types() {
    expect(&Raw::header(3, 0, 1).str("k").u32(13).u32(0).0, "unknown value type 13");
    expect(&Raw::header(3, 0, 1).str("k").u32(9).u32(77).u64(0).0, "unknown array element type 77");
    expect(&Raw::header(3, 0, 1).str("k").u32(7).bytes(&[2]).0, "bool byte 2");
    let mut deep = Raw::header(3, 0, 1).str("k").u32(9);
    for _ in 0..8 {
        deep = deep.u32(9).u64(1);
    }
    expect(&deep.u32(0).u64(0).0, "nested deeper");
    expect(&Raw::header(3, 0, 1).u64(2).bytes(&[0xff, 0xfe]).u32(4).u32(1).0, "not valid UTF-8");
    expect(&Raw::header(3, 0, 2).str("k").u32(4).u32(1).str("k").u32(4).u32(2).0, "duplicate key");
}

#[test]
fn bad_alignment() {
    for a in [0u32, 3, 48] {
        expect(&Raw::header(3, 0, 1).str("general.alignment").u32(4).u32(a).0, "general.alignment");
    }
    expect(&Raw::header(3, 0, 1).str("general.alignment").u32(10).u64(32).0, "general.alignment");
}

#[test]
fn bad_tensor_entries() {
    let t = |dims: &[u64], ty: u32, off: u64| Raw::header(3, 1, 0).tensor("w", dims, ty, off).data(64);
    expect(&t(&[], 0, 0), "tensor w: n_dims");
    expect(&t(&[1, 1, 1, 1, 1], 0, 0), "tensor w: n_dims");
    expect(&t(&[4, 0], 0, 0), "tensor w: dims[1]");
    expect(&t(&[1 << 40, 1 << 40], 0, 0), "tensor w: dims");
    expect(&t(&[4], 99, 0), "tensor w: type");
    expect(&t(&[33], QuantType::Q4_0.id(), 0), "tensor w: dims[0]");
    // A row whose byte size overflows is reported as such (found by a helper's review).
    let e = err(&t(&[1 << 62], 0, 0));
    assert!(e.contains("tensor w: dims[0]") && e.contains("overflows"), "{e}");
    expect(&t(&[4], 0, 16), "tensor w: offset"); // not aligned to 32
    expect(&t(&[32], 0, 0), "tensor w: offset"); // 128 bytes, 64 in the file
    expect(&t(&[4], 0, 1 << 62), "tensor w: offset");
    let two = Raw::header(3, 2, 0).tensor("w", &[16], 0, 0).tensor("v", &[16], 0, 32).data(128);
    expect(&two, "overlaps");
    let dup = Raw::header(3, 2, 0).tensor("w", &[4], 0, 0).tensor("w", &[4], 0, 32).data(64);
    expect(&dup, "duplicate tensor name");
    // The same two tensors without overlap are fine.
    assert!(GgufHeader::parse(&Raw::header(3, 2, 0).tensor("w", &[8], 0, 0).tensor("v", &[16], 0, 32).data(128), "ok").is_ok());
}

#[test]
fn random_corruption_never_panics() {
    let base = valid();
    let mut s = 0x9E3779B97F4A7C15u64;
    for _ in 0..20_000 {
        let mut b = base.clone();
        for _ in 0..1 + (s % 4) {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            let i = (s as usize) % b.len();
            b[i] = (s >> 32) as u8;
        }
        let _ = GgufHeader::parse(&b, "fuzz");
    }
}

#[test]
fn open_names_a_missing_file() {
    let e = Gguf::open("/nonexistent/dir/m.gguf").err().unwrap().to_string();
    assert!(e.contains("/nonexistent/dir/m.gguf"), "{e}");
}

#[test]
fn real_model_header() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("models/SmolLM2-135M-Instruct.Q4_1.gguf");
    if !path.exists() {
        eprintln!("SKIP: {} absent (scripts/fetch-model.sh)", path.display());
        return;
    }
    let g = Gguf::open(&path).unwrap();
    assert_eq!(g.header().version, 3);
    assert_eq!(g.tensors().len(), 272);
    assert_eq!(g.get_u32("llama.block_count").unwrap(), 30);
    let t = g.tensor("token_embd.weight").unwrap();
    assert_eq!((t.ty, t.dims.clone()), (QuantType::Q8_0, vec![576, 49152]));
    assert_eq!(g.get("tokenizer.ggml.tokens").and_then(|v| v.as_array()).map(|a| a.len()), Some(49152));
    // First bytes of blk.0.attn_q.weight as python's gguf package reads them.
    let q = g.tensor("blk.0.attn_q.weight").unwrap();
    assert_eq!(&g.tensor_data(q)[..8], &EXPECTED_ATTN_Q_HEAD);
}
const EXPECTED_ATTN_Q_HEAD: [u8; 8] = [15, 48, 216, 185, 69, 135, 101, 64];
