//! The optimizer of adapter training: AdamW (decoupled weight decay) with a linear warm-up then
//! cosine decay of the learning rate, global-norm gradient clipping, and optional gradient
//! accumulation (the caller sums micro-batch gradients and passes the count). Moments are f32 and
//! part of the checkpoint ([`AdamW::state`] / [`AdamW::from_state`]).

/// Hyper-parameters of [`AdamW`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamWConfig {
    /// Peak learning rate.
    pub lr: f32,
    /// First-moment decay.
    pub beta1: f32,
    /// Second-moment decay.
    pub beta2: f32,
    /// Added to the root of the second moment.
    pub eps: f32,
    /// Decoupled weight decay (multiplies the learning rate).
    pub weight_decay: f32,
    /// Steps of linear warm-up from 0 to `lr`.
    pub warmup_steps: u64,
    /// Total steps; the rate decays along a cosine from `lr` to `lr·min_lr_ratio` after warm-up.
    pub total_steps: u64,
    /// Floor of the cosine, as a fraction of `lr`.
    pub min_lr_ratio: f32,
    /// Global gradient-norm bound (0: no clipping).
    pub clip_norm: f32,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        AdamWConfig { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.0, warmup_steps: 0, total_steps: 1, min_lr_ratio: 0.0, clip_norm: 1.0 }
    }
}

impl AdamWConfig {
    /// The learning rate of step `step` (0-based).
    pub fn lr_at(&self, step: u64) -> f32 {
        if step < self.warmup_steps {
            return self.lr * (step + 1) as f32 / self.warmup_steps as f32;
        }
        let span = self.total_steps.saturating_sub(self.warmup_steps).max(1);
        let p = ((step - self.warmup_steps) as f64 / span as f64).min(1.0);
        let cos = 0.5 * (1.0 + (std::f64::consts::PI * p).cos());
        let floor = self.min_lr_ratio as f64;
        (self.lr as f64 * (floor + (1.0 - floor) * cos)) as f32
    }
}

/// AdamW over a list of parameter tensors (each a flat `f32` buffer).
#[derive(Clone, Debug, PartialEq)]
pub struct AdamW {
    /// Hyper-parameters.
    pub cfg: AdamWConfig,
    m: Vec<Vec<f32>>,
    v: Vec<Vec<f32>>,
    step: u64,
}

/// What one step did.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepInfo {
    /// Learning rate used.
    pub lr: f32,
    /// Global gradient norm before clipping (after averaging the accumulated micro-batches).
    pub grad_norm: f32,
}

impl AdamW {
    /// An optimizer for tensors of the given sizes, moments at zero.
    pub fn new(cfg: AdamWConfig, sizes: &[usize]) -> AdamW {
        AdamW { cfg, m: sizes.iter().map(|&n| vec![0.0; n]).collect(), v: sizes.iter().map(|&n| vec![0.0; n]).collect(), step: 0 }
    }

    /// Steps taken.
    pub fn steps(&self) -> u64 {
        self.step
    }

    /// One update: gradients (summed over `accum` micro-batches) are averaged, clipped to
    /// `clip_norm` by their global norm, then `p -= lr·(m̂/(√v̂ + eps) + wd·p)`. A non-finite
    /// gradient norm leaves parameters and moments untouched and returns an error.
    pub fn step(&mut self, params: &mut [&mut [f32]], grads: &[&[f32]], accum: usize) -> Result<StepInfo, String> {
        assert!(params.len() == self.m.len() && grads.len() == self.m.len(), "AdamW::step: tensor count");
        let inv = 1.0 / accum.max(1) as f64;
        let mut sq = 0f64;
        for (k, g) in grads.iter().enumerate() {
            assert!(g.len() == self.m[k].len() && params[k].len() == g.len(), "AdamW::step: tensor {k} size");
            sq += g.iter().map(|x| (*x as f64 * inv).powi(2)).sum::<f64>();
        }
        let norm = sq.sqrt();
        if !norm.is_finite() {
            return Err(format!("non-finite gradient norm at step {}", self.step));
        }
        let clip = if self.cfg.clip_norm > 0.0 && norm > self.cfg.clip_norm as f64 { self.cfg.clip_norm as f64 / norm } else { 1.0 };
        let scale = (inv * clip) as f32;
        let lr = self.cfg.lr_at(self.step);
        self.step += 1;
        let (b1, b2) = (self.cfg.beta1, self.cfg.beta2);
        let bc1 = 1.0 - (b1 as f64).powi(self.step as i32);
        let bc2 = 1.0 - (b2 as f64).powi(self.step as i32);
        for k in 0..grads.len() {
            let (m, v, p, g) = (&mut self.m[k], &mut self.v[k], &mut *params[k], grads[k]);
            for i in 0..g.len() {
                let gi = g[i] * scale;
                m[i] = b1 * m[i] + (1.0 - b1) * gi;
                v[i] = b2 * v[i] + (1.0 - b2) * gi * gi;
                let mh = m[i] as f64 / bc1;
                let vh = v[i] as f64 / bc2;
                let upd = mh / (vh.sqrt() + self.cfg.eps as f64) + self.cfg.weight_decay as f64 * p[i] as f64;
                p[i] = (p[i] as f64 - lr as f64 * upd) as f32;
            }
        }
        Ok(StepInfo { lr, grad_norm: norm as f32 })
    }

    /// The state to checkpoint: step count and moments.
    pub fn state(&self) -> (u64, &[Vec<f32>], &[Vec<f32>]) {
        (self.step, &self.m, &self.v)
    }

    /// An optimizer resumed from a checkpointed state (sizes must match `cfg`'s tensors).
    pub fn from_state(cfg: AdamWConfig, step: u64, m: Vec<Vec<f32>>, v: Vec<Vec<f32>>) -> Result<AdamW, String> {
        if m.len() != v.len() || m.iter().zip(&v).any(|(a, b)| a.len() != b.len()) {
            return Err("optimizer state: first and second moments differ in shape".into());
        }
        Ok(AdamW { cfg, m, v, step })
    }
}
