//! Block-LoRA (Zhou et al., arXiv 2501.16720), **parametrisation not verified against code** (none
//! was found; ADAPTERS.md §4.13). This is the literal reading of the abstract: a rank-`r` LoRA whose
//! `B = [B_1 … B_n]` is cut into `n` column blocks of width `r_b = r/n` and whose
//! `A = [A_s; …; A_s]` repeats one shared down-projection `A_s` `[r_b, n_in]`, so
//! `ΔW = s·B·A = s·(Σ_k B_k)·A_s`. Assumed like LoRA: `s = α/r` with the full rank `r = n·r_b`,
//! `A_s` kaiming-uniform, `B = 0`. Trainable `r_b·n_in + n_out·r` (36 864 at 2048², r=16, n=8).
//!
//! Fold (exact up to rounding `Σ_k B_k` to f32): `B' = Σ_k B_k`, `A' = A_s`, rank `r_b`, scale `s`
//! kept in the term.
use super::{hyper_get, shape_of, take, Hyper, LayerMethod, Tensors};
use crate::adapter::rng::{kaiming_uniform, sqrt5, Mt19937};
use crate::adapter::term::{LowRank, Term};
use crate::Result;

/// One layer's Block-LoRA.
#[derive(Clone, Debug, PartialEq)]
pub struct BlockLoraLayer {
    /// Block rank `r_b` (rows of `A_s`).
    pub rb: usize,
    /// Number of blocks `n` (`r = n·r_b`).
    pub n_blocks: usize,
    /// Input width.
    pub n_in: usize,
    /// Output width.
    pub n_out: usize,
    /// The shared down-projection `A_s`, `[r_b, n_in]`.
    pub a_s: Vec<f32>,
    /// `B = [B_1 … B_n]`, `[n_out, n·r_b]` (block `k` is columns `k·r_b .. (k+1)·r_b`).
    pub b: Vec<f32>,
    /// `α/r`, `r = n·r_b`.
    pub scale: f32,
}

impl BlockLoraLayer {
    /// Rank `r = n_blocks·r_b` split into `n_blocks` blocks; `A_s = kaiming_uniform(a=√5)` from
    /// `MT19937(seed)`, `B = 0` (assumed, as LoRA).
    pub fn init(n_in: usize, n_out: usize, r: usize, n_blocks: usize, alpha: f64, seed: u32) -> BlockLoraLayer {
        assert!(n_blocks > 0 && r > 0 && r % n_blocks == 0, "Block-LoRA needs r a positive multiple of n_blocks");
        let rb = r / n_blocks;
        let mut rng = Mt19937::new(seed);
        let a_s = kaiming_uniform(&mut rng, rb, n_in, sqrt5());
        BlockLoraLayer { rb, n_blocks, n_in, n_out, a_s, b: vec![0f32; n_out * r], scale: (alpha / r as f64) as f32 }
    }

    /// The full rank `r = n·r_b`.
    pub fn r(&self) -> usize {
        self.rb * self.n_blocks
    }
}

impl LayerMethod for BlockLoraLayer {
    const NAME: &'static str = "blocklora";
    fn n_in(&self) -> usize {
        self.n_in
    }
    fn n_out(&self) -> usize {
        self.n_out
    }
    fn trainable_params(&self) -> usize {
        self.a_s.len() + self.b.len()
    }
    fn delta_dense_f64(&self, _w0: &[f64]) -> Vec<f64> {
        // The rank-r LoRA B·A with A = [A_s; …; A_s].
        let (r, rb, ni, no) = (self.r(), self.rb, self.n_in, self.n_out);
        let mut d = vec![0f64; no * ni];
        for o in 0..no {
            for j in 0..r {
                let bv = self.b[o * r + j] as f64;
                let arow = &self.a_s[(j % rb) * ni..(j % rb + 1) * ni];
                for (dv, &av) in d[o * ni..(o + 1) * ni].iter_mut().zip(arow) {
                    *dv += bv * av as f64;
                }
            }
        }
        d.iter_mut().for_each(|v| *v *= self.scale as f64);
        d
    }
    fn to_term(&self) -> Term {
        let (r, rb, no) = (self.r(), self.rb, self.n_out);
        let mut bsum = vec![0f32; no * rb];
        for o in 0..no {
            for c in 0..rb {
                let s: f64 = (0..self.n_blocks).map(|k| self.b[o * r + k * rb + c] as f64).sum();
                bsum[o * rb + c] = s as f32;
            }
        }
        Term::LowRank(LowRank::from_a_b(rb, self.n_in, no, self.a_s.clone(), &bsum, self.scale))
    }
    fn save(&self, prefix: &str, out: &mut Tensors) {
        out.insert(format!("{prefix}.blocklora_a"), (vec![self.rb, self.n_in], self.a_s.clone().into()));
        out.insert(format!("{prefix}.blocklora_b"), (vec![self.n_out, self.r()], self.b.clone().into()));
    }
    /// Hyper-parameters: `alpha`. `r_b` comes from `blocklora_a`, `n` from `blocklora_b`'s width.
    fn load(prefix: &str, src: &Tensors, hyper: &Hyper, n_in: usize, n_out: usize, file: &str) -> Result<Self> {
        let name_a = format!("{prefix}.blocklora_a");
        let name_b = format!("{prefix}.blocklora_b");
        let rb = shape_of(src, &name_a, 2, file)?[0];
        let a_s = take(src, &name_a, &[rb, n_in], file)?;
        let r = shape_of(src, &name_b, 2, file)?[1];
        if r % rb != 0 {
            return Err(crate::Error::format(file, &name_b, format!("width {r} is not a multiple of the block rank {rb}")));
        }
        let b = take(src, &name_b, &[n_out, r], file)?;
        let alpha: f64 = hyper_get(hyper, "alpha", file)?;
        Ok(BlockLoraLayer { rb, n_blocks: r / rb, n_in, n_out, a_s, b, scale: (alpha / r as f64) as f32 })
    }
}
