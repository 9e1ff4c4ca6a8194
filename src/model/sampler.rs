//! Token sampling: greedy (temperature 0) or temperature with nucleus (top-p) filtering, seeded.

/// A seeded sampler.
#[derive(Clone, Debug)]
pub struct Sampler {
    /// Softmax temperature; 0 picks the arg-max.
    pub temperature: f32,
    /// Nucleus mass kept (1 keeps all).
    pub top_p: f32,
    state: u64,
    probs: Vec<(f32, u32)>,
}

impl Sampler {
    /// A sampler with the given temperature, top-p and seed.
    pub fn new(temperature: f32, top_p: f32, seed: u64) -> Sampler {
        Sampler { temperature, top_p: top_p.clamp(0.0, 1.0), state: seed ^ 0x9E37_79B9_7F4A_7C15, probs: Vec::new() }
    }

    /// A uniform draw in [0, 1) (splitmix64).
    fn uniform(&mut self) -> f32 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 40) as f32 / (1u64 << 24) as f32
    }

    /// Picks the next token from one row of logits.
    pub fn sample(&mut self, logits: &[f32]) -> u32 {
        if self.temperature <= 0.0 {
            return argmax(logits);
        }
        let max = logits.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
        self.probs.clear();
        let mut sum = 0.0f64;
        for (i, &l) in logits.iter().enumerate() {
            let p = ((l - max) / self.temperature).exp();
            sum += p as f64;
            self.probs.push((p, i as u32));
        }
        self.probs.sort_unstable_by(|a, b| b.0.total_cmp(&a.0));
        let mut keep = self.probs.len();
        if self.top_p < 1.0 {
            let mut c = 0.0f64;
            for (i, (p, _)) in self.probs.iter().enumerate() {
                c += *p as f64 / sum;
                if c >= self.top_p as f64 {
                    keep = i + 1;
                    break;
                }
            }
        }
        let total: f64 = self.probs[..keep].iter().map(|p| p.0 as f64).sum();
        let mut r = self.uniform() as f64 * total;
        for &(p, id) in &self.probs[..keep] {
            r -= p as f64;
            if r <= 0.0 {
                return id;
            }
        }
        self.probs[keep - 1].1
    }
}

/// Index of the largest logit (the first one on ties).
pub fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &l) in logits.iter().enumerate() {
        if l > logits[best] {
            best = i;
        }
    }
    best as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greedy_is_argmax_and_sampling_is_seeded() {
        let logits = [0.1, 3.0, -1.0, 2.9];
        assert_eq!(Sampler::new(0.0, 1.0, 1).sample(&logits), 1);
        let draw = |seed| (0..50).map(|_| 0).scan(Sampler::new(1.0, 1.0, seed), |s, _: i32| Some(s.sample(&logits))).collect::<Vec<_>>();
        assert_eq!(draw(5), draw(5));
        assert_ne!(draw(5), draw(6));
        // top-p 0.5 keeps only the top token here (its mass is above one half).
        let mut s = Sampler::new(1.0, 0.5, 3);
        assert!((0..100).all(|_| s.sample(&logits) == 1));
    }
}
