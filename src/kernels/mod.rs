//! The safe face of the C kernels in `csrc/`: each kernel family is a table of function pointers,
//! one table per instruction set, and the table in use is chosen once, at first use, from the CPU's
//! features. `GRAFT_ISA=ref|avx2|avx512|neon` forces one (an ISA the CPU lacks is refused with a
//! message on stderr and the best available one is used instead).
//!
//! Everything above this module calls operations, never an ISA.
use std::sync::OnceLock;

/// The table of one kernel family that `$isa` selects among its per-ISA statics (`$avx2`, `$avx512`
/// exist on x86-64 only, `$neon` on AArch64 only), or `None` when this CPU cannot run `$isa` or the
/// target has no table for it. Every family's `*_kernels(isa)` is this.
macro_rules! table_of_isa {
    ($isa:expr, $reference:expr, $avx2:expr, $avx512:expr, $neon:expr) => {{
        let isa: $crate::kernels::Isa = $isa;
        if !isa.supported() {
            return None;
        }
        match isa {
            $crate::kernels::Isa::Ref => Some($reference),
            #[cfg(target_arch = "x86_64")]
            $crate::kernels::Isa::Avx2 => Some($avx2),
            #[cfg(target_arch = "x86_64")]
            $crate::kernels::Isa::Avx512 => Some($avx512),
            #[cfg(target_arch = "aarch64")]
            $crate::kernels::Isa::Neon => Some($neon),
            #[allow(unreachable_patterns)]
            _ => None,
        }
    }};
}

pub mod adapter;
pub mod int8;
pub mod ops;
pub mod quant;
#[allow(missing_docs, clippy::all)]
pub mod sys;

/// An instruction set with its own kernel variants.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Isa {
    /// Portable scalar C, the reference every variant is tested against.
    Ref,
    /// x86-64 AVX2 + FMA + F16C.
    Avx2,
    /// x86-64 AVX-512 F/BW/VL/DQ with VNNI.
    Avx512,
    /// AArch64 NEON with the dot-product extension.
    Neon,
}

impl Isa {
    /// Lower-case name, as `GRAFT_ISA` takes it.
    pub fn name(self) -> &'static str {
        match self {
            Isa::Ref => "ref",
            Isa::Avx2 => "avx2",
            Isa::Avx512 => "avx512",
            Isa::Neon => "neon",
        }
    }

    /// Parses a `GRAFT_ISA` value.
    pub fn parse(s: &str) -> Option<Isa> {
        match s.trim().to_ascii_lowercase().as_str() {
            "ref" | "scalar" => Some(Isa::Ref),
            "avx2" => Some(Isa::Avx2),
            "avx512" => Some(Isa::Avx512),
            "neon" => Some(Isa::Neon),
            _ => None,
        }
    }

    /// Whether this CPU can run the variant (and this build carries it).
    pub fn supported(self) -> bool {
        match self {
            Isa::Ref => true,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => {
                std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
                    && std::arch::is_x86_feature_detected!("f16c")
                    && std::arch::is_x86_feature_detected!("bmi2")
            }
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => {
                Isa::Avx2.supported()
                    && std::arch::is_x86_feature_detected!("avx512f")
                    && std::arch::is_x86_feature_detected!("avx512bw")
                    && std::arch::is_x86_feature_detected!("avx512vl")
                    && std::arch::is_x86_feature_detected!("avx512dq")
                    && std::arch::is_x86_feature_detected!("avx512vnni")
            }
            #[cfg(target_arch = "aarch64")]
            Isa::Neon => std::arch::is_aarch64_feature_detected!("dotprod") && std::arch::is_aarch64_feature_detected!("fp16"),
            #[allow(unreachable_patterns)]
            _ => false,
        }
    }
}

/// Every ISA this CPU supports, the reference first and the best last.
pub fn available_isas() -> Vec<Isa> {
    [Isa::Ref, Isa::Avx2, Isa::Avx512, Isa::Neon].into_iter().filter(|i| i.supported()).collect()
}

/// How far ahead of the current weight row, in bytes, the SIMD products prefetch by default: on
/// the 2026-12-01 Intel Xeon VM (Emerald Rapids) a decode went from 112 to 150 tok/s with it
/// (BENCHMARKS.md, "Weight prefetch"); 2 KiB gained less, 4 KiB the same.
pub const DEFAULT_WEIGHT_PREFETCH: usize = 3072;

/// The weight-stream prefetch distance in use: `GRAFT_PREFETCH` (bytes; 0 turns the prefetch off)
/// if set to a number, else [`DEFAULT_WEIGHT_PREFETCH`]. Handed to the C kernels once, when the
/// first product table is taken; it never changes a result, only the speed.
pub fn weight_prefetch() -> usize {
    static BYTES: OnceLock<usize> = OnceLock::new();
    *BYTES.get_or_init(|| {
        let bytes = match std::env::var("GRAFT_PREFETCH") {
            Ok(v) => v.trim().parse().unwrap_or_else(|_| {
                eprintln!("graft: GRAFT_PREFETCH={v}: not a byte count; using {DEFAULT_WEIGHT_PREFETCH}");
                DEFAULT_WEIGHT_PREFETCH
            }),
            Err(_) => DEFAULT_WEIGHT_PREFETCH,
        };
        let bytes = bytes.min(1 << 20);
        // SAFETY: graft_set_weight_prefetch only stores the value in a C global; this runs once,
        // inside the OnceLock, before any table (and so any product reading the global) is handed out.
        unsafe { sys::graft_set_weight_prefetch(bytes as i64) };
        bytes
    })
}

/// The ISA in use: `GRAFT_ISA` if set and supported, else the best this CPU supports.
pub fn selected_isa() -> Isa {
    static ISA: OnceLock<Isa> = OnceLock::new();
    *ISA.get_or_init(|| {
        let best = *available_isas().last().expect("ref is always available");
        match std::env::var("GRAFT_ISA") {
            Ok(v) => match Isa::parse(&v) {
                Some(isa) if isa.supported() => isa,
                Some(isa) => {
                    eprintln!("graft: GRAFT_ISA={v}: this CPU cannot run {}; using {}", isa.name(), best.name());
                    best
                }
                None => {
                    eprintln!("graft: GRAFT_ISA={v}: unknown (ref|avx2|avx512|neon); using {}", best.name());
                    best
                }
            },
            Err(_) => best,
        }
    })
}
