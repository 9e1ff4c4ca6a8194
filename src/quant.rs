//! Weight and activation formats: the GGML type ids of GGUF files, their block geometry, the Rust
//! mirrors of `csrc/blocks.h` (sizes asserted here and there), and which activation format each
//! weight format's dot product consumes.
use half::f16;

/// A tensor element format, numbered as GGUF numbers it (`ggml_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
#[allow(non_camel_case_types, missing_docs)]
pub enum QuantType {
    F32 = 0,
    F16 = 1,
    Q4_0 = 2,
    Q4_1 = 3,
    Q5_0 = 6,
    Q5_1 = 7,
    Q8_0 = 8,
    Q8_1 = 9,
    Q4_K = 12,
    Q5_K = 13,
    Q6_K = 14,
    Q8_K = 15,
    BF16 = 30,
}

/// Every weight format graft runs (activation-only formats excluded).
pub const WEIGHT_TYPES: [QuantType; 11] = [
    QuantType::F32,
    QuantType::F16,
    QuantType::BF16,
    QuantType::Q4_0,
    QuantType::Q4_1,
    QuantType::Q5_0,
    QuantType::Q5_1,
    QuantType::Q8_0,
    QuantType::Q4_K,
    QuantType::Q5_K,
    QuantType::Q6_K,
];

impl QuantType {
    /// The type with GGML id `id`, if graft knows it.
    pub fn from_id(id: u32) -> Option<QuantType> {
        use QuantType::*;
        Some(match id {
            0 => F32,
            1 => F16,
            2 => Q4_0,
            3 => Q4_1,
            6 => Q5_0,
            7 => Q5_1,
            8 => Q8_0,
            9 => Q8_1,
            12 => Q4_K,
            13 => Q5_K,
            14 => Q6_K,
            15 => Q8_K,
            30 => BF16,
            _ => return None,
        })
    }

    /// The GGML id.
    pub fn id(self) -> u32 {
        self as u32
    }

    /// The name GGUF tools print (`Q4_1`, `F16`, ...).
    pub fn name(self) -> &'static str {
        use QuantType::*;
        match self {
            F32 => "F32",
            F16 => "F16",
            BF16 => "BF16",
            Q4_0 => "Q4_0",
            Q4_1 => "Q4_1",
            Q5_0 => "Q5_0",
            Q5_1 => "Q5_1",
            Q8_0 => "Q8_0",
            Q8_1 => "Q8_1",
            Q4_K => "Q4_K",
            Q5_K => "Q5_K",
            Q6_K => "Q6_K",
            Q8_K => "Q8_K",
        }
    }

    /// Elements per block.
    pub fn block_size(self) -> usize {
        use QuantType::*;
        match self {
            F32 | F16 | BF16 => 1,
            Q4_0 | Q4_1 | Q5_0 | Q5_1 | Q8_0 | Q8_1 => 32,
            Q4_K | Q5_K | Q6_K | Q8_K => 256,
        }
    }

    /// Bytes per block.
    pub fn type_size(self) -> usize {
        use QuantType::*;
        match self {
            F32 => 4,
            F16 | BF16 => 2,
            Q4_0 => std::mem::size_of::<BlockQ4_0>(),
            Q4_1 => std::mem::size_of::<BlockQ4_1>(),
            Q5_0 => std::mem::size_of::<BlockQ5_0>(),
            Q5_1 => std::mem::size_of::<BlockQ5_1>(),
            Q8_0 => std::mem::size_of::<BlockQ8_0>(),
            Q8_1 => std::mem::size_of::<BlockQ8_1>(),
            Q4_K => std::mem::size_of::<BlockQ4K>(),
            Q5_K => std::mem::size_of::<BlockQ5K>(),
            Q6_K => std::mem::size_of::<BlockQ6K>(),
            Q8_K => std::mem::size_of::<BlockQ8K>(),
        }
    }

    /// Bytes taken by a row of `n` elements, or `None` when `n` is not a whole number of blocks
    /// (or the size overflows).
    pub fn row_bytes(self, n: usize) -> Option<usize> {
        if n % self.block_size() != 0 {
            return None;
        }
        (n / self.block_size()).checked_mul(self.type_size())
    }

    /// The activation format this weight format's dot product consumes (ggml's `vec_dot_type`).
    /// Dense weights take plain f32 activations.
    pub fn act_type(self) -> QuantType {
        use QuantType::*;
        match self {
            F32 | F16 | BF16 => F32,
            Q4_0 | Q5_0 | Q8_0 => Q8_0,
            Q4_1 | Q5_1 => Q8_1,
            Q4_K | Q5_K | Q6_K => Q8_K,
            Q8_1 => Q8_1,
            Q8_K => Q8_K,
        }
    }
}

impl std::fmt::Display for QuantType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Mirror of `graft_block_q4_0`.
#[repr(C)]
#[derive(Clone, Copy)]
#[allow(missing_docs)]
pub struct BlockQ4_0 { pub d: f16, pub qs: [u8; 16] }
/// Mirror of `graft_block_q4_1`.
#[repr(C)]
#[derive(Clone, Copy)]
#[allow(missing_docs)]
pub struct BlockQ4_1 { pub d: f16, pub m: f16, pub qs: [u8; 16] }
/// Mirror of `graft_block_q5_0`.
#[repr(C)]
#[derive(Clone, Copy)]
#[allow(missing_docs)]
pub struct BlockQ5_0 { pub d: f16, pub qh: [u8; 4], pub qs: [u8; 16] }
/// Mirror of `graft_block_q5_1`.
#[repr(C)]
#[derive(Clone, Copy)]
#[allow(missing_docs)]
pub struct BlockQ5_1 { pub d: f16, pub m: f16, pub qh: [u8; 4], pub qs: [u8; 16] }
/// Mirror of `graft_block_q8_0`.
#[repr(C)]
#[derive(Clone, Copy)]
#[allow(missing_docs)]
pub struct BlockQ8_0 { pub d: f16, pub qs: [i8; 32] }
/// Mirror of `graft_block_q8_1`.
#[repr(C)]
#[derive(Clone, Copy)]
#[allow(missing_docs)]
pub struct BlockQ8_1 { pub d: f16, pub s: f16, pub qs: [i8; 32] }
/// Mirror of `graft_block_q4_K`.
#[repr(C)]
#[derive(Clone, Copy)]
#[allow(missing_docs)]
pub struct BlockQ4K { pub d: f16, pub dmin: f16, pub scales: [u8; 12], pub qs: [u8; 128] }
/// Mirror of `graft_block_q5_K`.
#[repr(C)]
#[derive(Clone, Copy)]
#[allow(missing_docs)]
pub struct BlockQ5K { pub d: f16, pub dmin: f16, pub scales: [u8; 12], pub qh: [u8; 32], pub qs: [u8; 128] }
/// Mirror of `graft_block_q6_K`.
#[repr(C)]
#[derive(Clone, Copy)]
#[allow(missing_docs)]
pub struct BlockQ6K { pub ql: [u8; 128], pub qh: [u8; 64], pub scales: [i8; 16], pub d: f16 }
/// Mirror of `graft_block_q8_K`.
#[repr(C)]
#[derive(Clone, Copy)]
#[allow(missing_docs)]
pub struct BlockQ8K { pub d: f32, pub qs: [i8; 256], pub bsums: [i16; 16] }

// The same sizes are asserted in csrc/blocks.h; a layout change must change both.
const _: () = assert!(std::mem::size_of::<BlockQ4_0>() == 18);
const _: () = assert!(std::mem::size_of::<BlockQ4_1>() == 20);
const _: () = assert!(std::mem::size_of::<BlockQ5_0>() == 22);
const _: () = assert!(std::mem::size_of::<BlockQ5_1>() == 24);
const _: () = assert!(std::mem::size_of::<BlockQ8_0>() == 34);
const _: () = assert!(std::mem::size_of::<BlockQ8_1>() == 36);
const _: () = assert!(std::mem::size_of::<BlockQ4K>() == 144);
const _: () = assert!(std::mem::size_of::<BlockQ5K>() == 176);
const _: () = assert!(std::mem::size_of::<BlockQ6K>() == 210);
const _: () = assert!(std::mem::size_of::<BlockQ8K>() == 292);
const _: () = assert!(std::mem::offset_of!(BlockQ6K, d) == 208);
const _: () = assert!(std::mem::offset_of!(BlockQ5K, qs) == 48);
const _: () = assert!(std::mem::offset_of!(BlockQ8K, bsums) == 260);
