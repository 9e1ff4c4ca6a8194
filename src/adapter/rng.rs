//! Seeded random numbers for adapter initialisations: the MT19937 engine torch's CPU generator
//! uses, torch's CPU `uniform_` recipe on top of it (`../shared/reference/ADAPTERS.md` §3.1), the
//! `kaiming_uniform_` bound, and a normal sampler.
//!
//! What is bit-exact with torch (per ADAPTERS.md §3.1, checked there against torch 2.15 on an
//! AVX2 build): [`Mt19937`] seeded by `init_genrand(seed)` and [`Mt19937::uniform_f32`] (24-bit
//! mask, `fmaf`, `== hi → lo`), hence [`kaiming_uniform`] for fp32 tensors filled row-major, and
//! [`Mt19937::uniform_rounded`] for bf16 / fp16 tensors. What is NOT torch's: [`Mt19937::normal`]
//! (a plain Box–Muller over the same stream; torch's `normal_` vectorises in blocks of 16 with
//! float math), so anything initialised from it reproduces only graft's own runs.

/// MT19937, the 32-bit Mersenne Twister (Matsumoto & Nishimura), as `at::mt19937`.
#[derive(Clone, Debug)]
pub struct Mt19937 {
    mt: Box<[u32; 624]>,
    idx: usize,
    /// Second value of the last Box–Muller pair, not yet handed out.
    spare: Option<f64>,
}

const N: usize = 624;
const M: usize = 397;
const MATRIX_A: u32 = 0x9908_b0df;
const UPPER: u32 = 0x8000_0000;
const LOWER: u32 = 0x7fff_ffff;

/// Floating-point formats a uniform value can be rounded to (torch fills such tensors natively).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rounding {
    /// fp32: no further rounding.
    F32,
    /// bfloat16, round to nearest even.
    Bf16,
    /// IEEE half, round to nearest even.
    F16,
}

impl Rounding {
    /// `v` rounded to this format (returned as f32).
    pub fn round(self, v: f32) -> f32 {
        match self {
            Rounding::F32 => v,
            Rounding::Bf16 => half::bf16::from_f32(v).to_f32(),
            Rounding::F16 => half::f16::from_f32(v).to_f32(),
        }
    }
}

impl Mt19937 {
    /// The engine after the reference `init_genrand(seed)` (torch keeps only the low 32 bits of a
    /// seed, so callers with a 64-bit seed pass `seed as u32`).
    pub fn new(seed: u32) -> Mt19937 {
        let mut mt = Box::new([0u32; N]);
        mt[0] = seed;
        for i in 1..N {
            mt[i] = 1_812_433_253u32.wrapping_mul(mt[i - 1] ^ (mt[i - 1] >> 30)).wrapping_add(i as u32);
        }
        Mt19937 { mt, idx: N, spare: None }
    }

    fn twist(&mut self) {
        let mt = &mut self.mt;
        for i in 0..N {
            let y = (mt[i] & UPPER) | (mt[(i + 1) % N] & LOWER);
            let mut v = mt[(i + M) % N] ^ (y >> 1);
            if y & 1 != 0 {
                v ^= MATRIX_A;
            }
            mt[i] = v;
        }
        self.idx = 0;
    }

    /// The next 32-bit output (`genrand_int32`).
    pub fn next_u32(&mut self) -> u32 {
        if self.idx >= N {
            self.twist();
        }
        let mut y = self.mt[self.idx];
        self.idx += 1;
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c_5680;
        y ^= (y << 15) & 0xefc6_0000;
        y ^= y >> 18;
        y
    }

    /// One fp32 value of torch's CPU `tensor.uniform_(lo, hi)`: `x = (raw & 0xFFFFFF)·2⁻²⁴`,
    /// `v = fmaf(x, hi − lo, lo)` with `lo`, `hi` the bounds rounded to f32, and `v == hi → lo`.
    pub fn uniform_f32(&mut self, lo: f64, hi: f64) -> f32 {
        self.uniform_rounded(lo, hi, Rounding::F32)
    }

    /// One value of `uniform_(lo, hi)` on a tensor of format `fmt`: the fp32 recipe of
    /// [`Mt19937::uniform_f32`], rounded to `fmt`, then `== hi → lo` (ADAPTERS.md §3.1 step 4)
    /// with both bounds in `fmt` too: a bf16 value that rounds up to bf16(`hi`) becomes bf16(`lo`)
    /// (checked against the bases PEFT saved for RandLoRA, tests/peft_golden.rs).
    pub fn uniform_rounded(&mut self, lo: f64, hi: f64, fmt: Rounding) -> f32 {
        let (lo, hi) = (lo as f32, hi as f32);
        let x = (self.next_u32() & 0xFF_FFFF) as f32 * (1.0 / 16_777_216.0);
        let v = fmt.round(x.mul_add(hi - lo, lo));
        if v == fmt.round(hi) {
            fmt.round(lo)
        } else {
            v
        }
    }

    /// `n` values of `uniform_(lo, hi)` in fp32, in stream (row-major) order.
    pub fn uniform_vec(&mut self, n: usize, lo: f64, hi: f64) -> Vec<f32> {
        (0..n).map(|_| self.uniform_f32(lo, hi)).collect()
    }

    /// A standard normal value by Box–Muller over this stream (graft's own recipe, not torch's):
    /// two outputs `x1`, `x2` as in [`Mt19937::uniform_f32`] on `[0, 1)` (24 bits each), then, in
    /// f64, `ρ = √(−2 ln(1 − x1))`, `θ = 2π·x2`, values `ρ cos θ` and then `ρ sin θ` (the second is
    /// kept for the next call).
    pub fn normal(&mut self) -> f64 {
        if let Some(v) = self.spare.take() {
            return v;
        }
        let x1 = (self.next_u32() & 0xFF_FFFF) as f64 / 16_777_216.0;
        let x2 = (self.next_u32() & 0xFF_FFFF) as f64 / 16_777_216.0;
        let rho = (-2.0 * (1.0 - x1).ln()).sqrt();
        let theta = 2.0 * std::f64::consts::PI * x2;
        self.spare = Some(rho * theta.sin());
        rho * theta.cos()
    }

    /// `n` values `mean + std·z` ([`Mt19937::normal`]), rounded to f32.
    pub fn normal_vec(&mut self, n: usize, mean: f64, std: f64) -> Vec<f32> {
        (0..n).map(|_| (mean + std * self.normal()) as f32).collect()
    }
}

/// The bound of torch's `kaiming_uniform_(t, a, mode="fan_in", nonlinearity="leaky_relu")`, in f64
/// as Python computes it: `gain = √(2/(1+a²))`, `bound = √3 · (gain / √fan_in)`.
pub fn kaiming_bound(fan_in: usize, a: f64) -> f64 {
    let gain = (2.0 / (1.0 + a * a)).sqrt();
    3f64.sqrt() * (gain / (fan_in as f64).sqrt())
}

/// `a = √5`, the slope every `nn.Linear` (and PEFT's LoRA `A`) initialises with, making the bound
/// `1/√fan_in`.
pub fn sqrt5() -> f64 {
    5f64.sqrt()
}

/// A `[rows, cols]` fp32 tensor filled like torch's `kaiming_uniform_(t, a)` on `rng`: fan-in is
/// `cols` (the size of dim 1 of a 2-D tensor), values drawn row-major from `U(−bound, bound)`.
pub fn kaiming_uniform(rng: &mut Mt19937, rows: usize, cols: usize, a: f64) -> Vec<f32> {
    let b = kaiming_bound(cols, a);
    rng.uniform_vec(rows * cols, -b, b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mt19937_reference_outputs() {
        let mut mt = Mt19937::new(5489);
        let first: Vec<u32> = (0..5).map(|_| mt.next_u32()).collect();
        assert_eq!(first, [3_499_211_612, 581_869_302, 3_890_346_734, 3_586_334_585, 545_404_204]);
        // The C++ standard fixes the 10000th output of a default-seeded std::mt19937.
        let mut mt = Mt19937::new(5489);
        let mut v = 0;
        for _ in 0..10_000 {
            v = mt.next_u32();
        }
        assert_eq!(v, 4_123_659_995);
    }

    #[test]
    fn mt19937_init_genrand_reference() {
        // mt19937ar.c's test vector uses init_by_array; init_genrand(1)'s first output is known too.
        let mut mt = Mt19937::new(1);
        assert_eq!(mt.next_u32(), 1_791_095_845);
        assert_eq!(mt.next_u32(), 4_282_876_139);
    }

    #[test]
    fn uniform_recipe() {
        let mut a = Mt19937::new(7);
        let mut b = Mt19937::new(7);
        for _ in 0..1000 {
            let raw = b.next_u32();
            let x = (raw & 0xFF_FFFF) as f32 / 16_777_216.0;
            let want = x.mul_add(2.0f32 - (-3.0f32), -3.0f32);
            let got = a.uniform_f32(-3.0, 2.0);
            assert_eq!(got.to_bits(), if want == 2.0 { (-3.0f32).to_bits() } else { want.to_bits() });
            assert!((-3.0..2.0).contains(&got));
        }
        // bf16 values are bf16-representable and stay in [lo, hi).
        let mut c = Mt19937::new(3);
        for _ in 0..1000 {
            let v = c.uniform_rounded(-0.1, 0.1, Rounding::Bf16);
            assert_eq!(half::bf16::from_f32(v).to_f32(), v);
            assert!(v.abs() <= 0.1005, "{v}");
        }
    }

    #[test]
    fn kaiming_bound_sqrt5_is_one_over_sqrt_fan_in() {
        for fan in [1usize, 3, 12, 2048] {
            let b = kaiming_bound(fan, sqrt5());
            assert!((b - 1.0 / (fan as f64).sqrt()).abs() < 1e-15);
        }
        let mut r = Mt19937::new(0);
        let t = kaiming_uniform(&mut r, 5, 16, sqrt5());
        assert_eq!(t.len(), 80);
        assert!(t.iter().all(|v| v.abs() <= 0.25));
    }

    #[test]
    fn normal_moments() {
        let mut r = Mt19937::new(11);
        let n = 200_000;
        let v: Vec<f64> = (0..n).map(|_| r.normal()).collect();
        let mean = v.iter().sum::<f64>() / n as f64;
        let var = v.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / (n - 1) as f64;
        assert!(mean.abs() < 0.01, "mean {mean}");
        assert!((var - 1.0).abs() < 0.02, "var {var}");
        // Deterministic for a seed.
        let mut a = Mt19937::new(11);
        assert_eq!(a.normal().to_bits(), v[0].to_bits());
    }
}
