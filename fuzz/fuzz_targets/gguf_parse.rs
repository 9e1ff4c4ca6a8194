//! Fuzzes the GGUF header parser: any input gives Ok or Err, never a panic or an out-of-bounds
//! access; on Ok, every tensor's validated range is read and every metadata value visited.
#![no_main]
use graft::format::gguf::{GgufHeader, Value};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(h) = GgufHeader::parse(data, "fuzz") {
        let mut acc = 0u64;
        for t in &h.tensors {
            let s = &data[t.offset as usize..t.offset as usize + t.n_bytes];
            acc = acc.wrapping_add(s.first().copied().unwrap_or(0) as u64 + t.n_elements());
        }
        for (k, v) in &h.metadata {
            acc = acc.wrapping_add(k.len() as u64);
            if let Value::Array(a) = v {
                acc = acc.wrapping_add(a.len() as u64);
            }
        }
        std::hint::black_box(acc);
    }
});
