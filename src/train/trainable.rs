//! What training updates: one method's parameters on every targeted projection, kept in the form
//! the passes read (the runtime [`Term`]s of an [`Adapter`]) plus, for methods whose trained tensor
//! is not a term factor, that tensor and the frozen factors that map it onto the term:
//!
//! | method | trained | term | gradient of the trained tensor |
//! |---|---|---|---|
//! | LoRA | `A`, `Bᵀ` | low-rank | the term's |
//! | FFA-LoRA | `Bᵀ` (`A` frozen) | low-rank | the term's `dBᵀ` |
//! | VeRA | `λ_d`, `λ_b` | VeRA | the term's |
//! | LoLDU | `z` (and its scale `s`) | `A = U_r`, `Bᵀ[k, o] = P·L_r[o, k]·(z_k − D_k)` (`s·z_k − s0·D_k` at scale 1 when `s` is trained) | `dz_k = g_k` (`s·g_k`), `ds = Σ_k z_k·g_k`, `g_k = Σ_o dBᵀ[k, o]·P·L_r[o, k]` |
//! | LoRA-XS / LoRA-SB | `R` | `A`, `Bᵀ = (B·R)ᵀ` | `dR = Bᵀ·dBᵀᵀ` |
//!
//! After every optimizer step [`Trainable::sync`] rebuilds the terms of LoLDU and LoRA-XS from
//! their trained tensors. Initialisations follow ../shared/reference/ADAPTERS.md (through the
//! method modules in [`crate::adapter::methods`]); [`Trainable::to_native`] gives graft's file
//! form, which loads with `-a` and exports with `graft export`.
use crate::adapter::methods::loldu::LolduLayer;
use crate::adapter::methods::lora::LoraLayer;
use crate::adapter::methods::loraxs::LoraXsLayer;
use crate::adapter::methods::vera::VeraLayer;
use crate::adapter::methods::{Hyper, LayerMethod, Tensors};
use crate::adapter::native::{dequantize, NativeAdapter};
use crate::adapter::rng::{kaiming_uniform, sqrt5, Mt19937};
use crate::adapter::term::{LowRank, Term, Vera, VeraShared};
use crate::adapter::Adapter;
use crate::kernels::adapter as kad;
use crate::model::{LinearKind, Model};
use crate::train::adapter_grad::transpose;
use crate::train::backprop::{Grads, TermGrad};
use crate::{Error, Result};
use std::sync::Arc;

/// A trainable method.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// LoRA: `A` and `B` trained.
    Lora,
    /// FFA-LoRA: `A` frozen at its random init, `B` trained.
    FfaLora,
    /// VeRA: `λ_d`, `λ_b` over shared frozen random projections.
    Vera,
    /// LoLDU: the diagonal `z` between frozen LU factors of the base weight.
    Loldu,
    /// LoRA-XS: the `r×r` latent between frozen SVD factors of the base weight.
    LoraXs,
    /// LoRA-SB: LoRA-XS's architecture initialised from the sign of the base weights' gradient.
    LoraSb,
}

impl Method {
    /// Every method, in CLI order.
    pub const ALL: [Method; 6] = [Method::Vera, Method::Loldu, Method::LoraXs, Method::LoraSb, Method::Lora, Method::FfaLora];

    /// Parses a CLI / file name (`vera`, `loldu`, `lora-xs`, `lora-sb`, `lora`, `ffa-lora`).
    pub fn parse(s: &str) -> Result<Method> {
        Method::ALL
            .into_iter()
            .find(|m| m.name() == s || (s == "loraxs" && *m == Method::LoraXs))
            .ok_or_else(|| Error::invalid("train", format!("unknown method {s:?} (trainable: vera, loldu, lora-xs, lora-sb, lora, ffa-lora)")))
    }

    /// The name files and the CLI use.
    pub fn name(self) -> &'static str {
        match self {
            Method::Lora => "lora",
            Method::FfaLora => "ffa-lora",
            Method::Vera => "vera",
            Method::Loldu => "loldu",
            Method::LoraXs => "lora-xs",
            Method::LoraSb => "lora-sb",
        }
    }

    /// The rank used when none is given (VeRA's PEFT default 256; 16 otherwise).
    pub fn default_rank(self) -> usize {
        match self {
            Method::Vera => 256,
            _ => 16,
        }
    }

    /// The `α` used when none is given: LoRA-family `α = r` (scale 1, as LoRA-XS / LoRA-SB train),
    /// LoLDU's `α = 1` (scale `1/r`, its repository's default).
    pub fn default_alpha(self, r: usize) -> f32 {
        match self {
            Method::Loldu => 1.0,
            _ => r as f32,
        }
    }

    /// The peak learning rate used when none is given: 1e-2 for the methods that train a few
    /// scales or a small latent (VeRA, LoLDU, LoRA-XS, LoRA-SB), 2e-4 for LoRA and FFA-LoRA.
    pub fn default_lr(self) -> f32 {
        match self {
            Method::Lora | Method::FfaLora => 2e-4,
            _ => 1e-2,
        }
    }

    /// Whether the low-rank terms' `A` gets a gradient.
    pub fn trains_a(self) -> bool {
        self == Method::Lora
    }
}

/// Parses a target list `q,k,v,o,gate,up,down` (HF names `q_proj`, ... and GGUF names `attn_q`,
/// ... accepted too) into projections in block order.
pub fn parse_targets(s: &str) -> Result<Vec<LinearKind>> {
    let mut out = Vec::new();
    for p in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let k = match p {
            "q" | "q_proj" => LinearKind::Q,
            "k" | "k_proj" => LinearKind::K,
            "v" | "v_proj" => LinearKind::V,
            "o" | "o_proj" => LinearKind::O,
            "gate" | "gate_proj" => LinearKind::Gate,
            "up" | "up_proj" => LinearKind::Up,
            "down" | "down_proj" => LinearKind::Down,
            other => LinearKind::ALL
                .into_iter()
                .find(|k| k.gguf_name() == other)
                .ok_or_else(|| Error::invalid("train", format!("unknown target {other:?} (q,k,v,o,gate,up,down)")))?,
        };
        if !out.contains(&k) {
            out.push(k);
        }
    }
    if out.is_empty() {
        return Err(Error::invalid("train", "no target projections"));
    }
    out.sort_by_key(|k| *k as usize);
    Ok(out)
}

/// What to train.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainSpec {
    /// Method.
    pub method: Method,
    /// Rank (VeRA: of the shared projections).
    pub rank: usize,
    /// `α` (scale `α/r`); VeRA has none.
    pub alpha: f32,
    /// Projections adapted in every block.
    pub targets: Vec<LinearKind>,
    /// Seed of the random initialisations (VeRA: the projections' PRNG key).
    pub seed: u64,
    /// VeRA's initial `λ_d` (PEFT's `d_initial`, 0.1).
    pub vera_d_initial: f32,
    /// LoLDU: also train the scale of `z` (its optional `scaling_factor`).
    pub loldu_train_scale: bool,
    /// LoRA-SB: the learning rate of the full fine-tuning whose first update its initialisation
    /// imitates (`G̃ = −lr·sign(ΣG) / max(warm-up steps, 1)`); 1e-4 by default.
    pub sb_lr: f32,
}

/// The frozen factors of a layer whose trained tensor is not a term factor.
#[derive(Clone, Debug, PartialEq)]
enum Mapped {
    /// LoLDU: `P·L_r` `[n_out, r]`, `D_r`, the trained `z`, the residual's scale `s0` and the scale
    /// `s` of `z` (`[1]`, trained when `train_scale`).
    Loldu { pl: Vec<f32>, d: Vec<f32>, z: Vec<f32>, s0: f32, s: Vec<f32>, train_scale: bool },
    /// LoRA-XS: `B` `[n_out, r]`, `Bᵀ` `[r, n_out]`, and the trained latent `R` `[r, r]`.
    Xs { b: Vec<f32>, b_t: Vec<f32>, latent: Vec<f32> },
}

/// Gradients of base weights, `[block][projection]`, each `[n_out, n_in]` when present (LoRA-SB's
/// initialisation reads them).
pub type BaseGrads = [Vec<Option<Vec<f32>>>];

/// One projection's factorisation at initialisation.
enum Factor {
    None,
    Loldu(LolduLayer),
    Xs(LoraXsLayer),
}

/// `f` over `jobs` on every core (interleaved), results in job order; the first error wins.
fn parallel_map<J: Sync, R: Send>(jobs: &[J], f: impl Fn(&J) -> Result<R> + Sync) -> Result<Vec<R>> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(jobs.len()).max(1);
    let f = &f;
    let parts: Vec<Vec<Result<R>>> = std::thread::scope(|sc| {
        let hs: Vec<_> = (0..threads).map(|t| sc.spawn(move || jobs.iter().skip(t).step_by(threads).map(f).collect::<Vec<_>>())).collect();
        hs.into_iter().map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p))).collect()
    });
    let mut iters: Vec<_> = parts.into_iter().map(|p| p.into_iter()).collect();
    (0..jobs.len()).map(|i| iters[i % threads].next().expect("one result per job")).collect()
}

/// A method's trainable state on one model.
#[derive(Clone, Debug)]
pub struct Trainable {
    /// What this trains.
    pub spec: TrainSpec,
    /// The runtime terms the passes read (LoRA and VeRA parameters live here).
    pub adapter: Adapter,
    mapped: Vec<[Option<Mapped>; 7]>,
    fingerprint: String,
}

fn f64s(w: &[f32]) -> Vec<f64> {
    w.iter().map(|&v| v as f64).collect()
}

impl Trainable {
    /// A freshly initialised adapter of `spec` on `model`. LoRA-SB needs the accumulated gradient of
    /// every targeted base weight (`[n_out, n_in]`, indexed `[block][kind]`) and the effective
    /// step `eta`: `sb_grads`; other methods ignore it. LoLDU and LoRA-XS factor every targeted
    /// base weight (dequantized one at a time, never all at once).
    #[allow(clippy::needless_range_loop)]
    pub fn init(model: &Model, spec: TrainSpec, sb_grads: Option<(&BaseGrads, f64)>) -> Result<Trainable> {
        let cfg = &model.config;
        let r = spec.rank;
        if r == 0 {
            return Err(Error::invalid("train", "rank 0"));
        }
        if spec.targets.is_empty() {
            return Err(Error::invalid("train", "no target projections"));
        }
        let mut ad = Adapter::empty("train", spec.method.name(), "training", cfg.n_layer);
        let mut mapped: Vec<[Option<Mapped>; 7]> = (0..cfg.n_layer).map(|_| Default::default()).collect();
        let scale = spec.alpha / r as f32;
        let mut rng = Mt19937::new(spec.seed as u32);
        let vera_shared = if spec.method == Method::Vera {
            let max_in = spec.targets.iter().map(|&k| model.weights.blocks[0].linear(k).n_in).max().unwrap_or(0);
            let max_out = spec.targets.iter().map(|&k| model.weights.blocks[0].linear(k).n_out).max().unwrap_or(0);
            Some(Arc::new(VeraShared::generate(r, max_in, max_out, spec.seed)))
        } else {
            None
        };
        // The factorisations of LoLDU, LoRA-XS and LoRA-SB (an LU or an SVD per projection), on
        // every core: each projection's is independent of the others and of the thread count.
        let jobs: Vec<(usize, LinearKind)> = (0..cfg.n_layer).flat_map(|l| spec.targets.iter().map(move |&k| (l, k))).collect();
        for &(l, kind) in &jobs {
            let w = model.weights.blocks[l].linear(kind);
            if spec.method != Method::Vera && r > w.n_in.min(w.n_out) {
                return Err(Error::invalid("train", format!("rank {r} exceeds blk.{l}.{} ({}x{})", kind.gguf_name(), w.n_out, w.n_in)));
            }
        }
        let factor = |&(l, kind): &(usize, LinearKind)| -> Result<Factor> {
            let w = model.weights.blocks[l].linear(kind);
            let (ni, no) = (w.n_in, w.n_out);
            Ok(match spec.method {
                Method::Loldu => Factor::Loldu(LolduLayer::init(&f64s(&dequantize(model, l, kind)?), ni, no, r, spec.alpha as f64)?),
                Method::LoraXs => {
                    let w0 = f64s(&dequantize(model, l, kind)?);
                    Factor::Xs(LoraXsLayer::init_xs(&w0, ni, no, r, spec.alpha as f64, spec.seed.wrapping_add((l * 7 + kind as usize) as u64) as u32)?)
                }
                Method::LoraSb => {
                    let (g, eta) = sb_grads.ok_or_else(|| Error::invalid("train", "LoRA-SB needs the base weights' gradient"))?;
                    let g = g.get(l).and_then(|b| b[kind as usize].as_ref()).ok_or_else(|| Error::invalid("train", format!("no gradient for blk.{l}.{}", kind.gguf_name())))?;
                    Factor::Xs(LoraXsLayer::init_sb(&f64s(g), ni, no, r, eta, spec.alpha as f64)?)
                }
                _ => Factor::None,
            })
        };
        let mut factors = parallel_map(&jobs, factor)?.into_iter();
        for l in 0..cfg.n_layer {
            for &kind in &spec.targets {
                let w = model.weights.blocks[l].linear(kind);
                let (ni, no) = (w.n_in, w.n_out);
                let f = factors.next().expect("one factor per job");
                let term = match spec.method {
                    Method::Lora | Method::FfaLora => {
                        let a = kaiming_uniform(&mut rng, r, ni, sqrt5());
                        Term::LowRank(LowRank { r, n_in: ni, n_out: no, a: a.into(), bt: vec![0.0; r * no].into(), scale })
                    }
                    Method::Vera => {
                        let sh = vera_shared.clone().expect("made above");
                        Term::Vera(Vera { shared: sh, n_in: ni, n_out: no, lambda_d: vec![spec.vera_d_initial; r], lambda_b: vec![0.0; no] })
                    }
                    Method::Loldu => {
                        let Factor::Loldu(m) = f else { unreachable!("LoLDU factors") };
                        mapped[l][kind as usize] = Some(Mapped::Loldu { pl: m.pl, d: m.d, z: m.z, s0: m.scale, s: vec![m.scale], train_scale: spec.loldu_train_scale });
                        Term::LowRank(LowRank { r, n_in: ni, n_out: no, a: m.u.into(), bt: vec![0.0; r * no].into(), scale: m.scale })
                    }
                    Method::LoraXs | Method::LoraSb => {
                        let Factor::Xs(m) = f else { unreachable!("LoRA-XS factors") };
                        let b_t = transpose(&m.b, no, r);
                        mapped[l][kind as usize] = Some(Mapped::Xs { b: m.b, b_t, latent: m.latent });
                        Term::LowRank(LowRank { r, n_in: ni, n_out: no, a: m.a.into(), bt: vec![0.0; r * no].into(), scale: m.scale })
                    }
                };
                ad.layers[l][kind as usize] = Some(term);
            }
        }
        let mut t = Trainable { spec, adapter: ad, mapped, fingerprint: model.fingerprint() };
        t.sync();
        t.adapter.trainable_params = t.param_sizes().iter().sum();
        Ok(t)
    }

    /// The trainable state saved in `native` (graft's file form, as [`Trainable::to_native`]
    /// writes it), for `spec` on `model`: resuming from a checkpoint.
    #[allow(clippy::needless_range_loop)]
    pub fn from_native(model: &Model, spec: TrainSpec, native: &NativeAdapter) -> Result<Trainable> {
        let file = &native.source;
        if native.method != spec.method.name() {
            return Err(Error::format(file, "method", format!("{:?}, training {}", native.method, spec.method.name())));
        }
        let cfg = &model.config;
        let mut ad = Adapter::empty("train", spec.method.name(), file, cfg.n_layer);
        let mut mapped: Vec<[Option<Mapped>; 7]> = (0..cfg.n_layer).map(|_| Default::default()).collect();
        let vera_shared = if spec.method == Method::Vera { Some(Arc::new(VeraShared::load(&native.tensors, file)?)) } else { None };
        for l in 0..cfg.n_layer {
            for &kind in &spec.targets {
                let w = model.weights.blocks[l].linear(kind);
                let (ni, no) = (w.n_in, w.n_out);
                let prefix = format!("blk.{l}.{}", kind.gguf_name());
                let (src, hy) = (&native.tensors, &native.hyper);
                if src.contains_key(&format!("{prefix}.lora_bias")) {
                    return Err(Error::format(file, format!("{prefix}.lora_bias"), "an output bias (PEFT's lora_bias) is not trainable; train without it"));
                }
                let term = match spec.method {
                    Method::Lora | Method::FfaLora => LoraLayer::load(&prefix, src, hy, ni, no, file)?.to_term(),
                    Method::Vera => VeraLayer::load_with(vera_shared.clone().expect("loaded above"), &prefix, src, ni, no, file)?.to_term(),
                    Method::Loldu => {
                        let m = LolduLayer::load(&prefix, src, hy, ni, no, file)?;
                        let t = Term::LowRank(LowRank { r: m.r, n_in: ni, n_out: no, a: m.u.into(), bt: vec![0.0; m.r * no].into(), scale: m.scale });
                        let train_scale = spec.loldu_train_scale;
                        mapped[l][kind as usize] = Some(Mapped::Loldu { pl: m.pl, d: m.d, z: m.z, s0: m.scale, s: vec![m.scale_z], train_scale });
                        t
                    }
                    Method::LoraXs | Method::LoraSb => {
                        let m = LoraXsLayer::load(&prefix, src, hy, ni, no, file)?;
                        let t = Term::LowRank(LowRank { r: m.r, n_in: ni, n_out: no, a: m.a.into(), bt: vec![0.0; m.r * no].into(), scale: m.scale });
                        let b_t = transpose(&m.b, no, m.r);
                        mapped[l][kind as usize] = Some(Mapped::Xs { b: m.b, b_t, latent: m.latent });
                        t
                    }
                };
                ad.layers[l][kind as usize] = Some(term);
            }
        }
        let mut t = Trainable { spec, adapter: ad, mapped, fingerprint: model.fingerprint() };
        t.sync();
        t.adapter.trainable_params = t.param_sizes().iter().sum();
        Ok(t)
    }

    /// Rebuilds the terms of methods whose trained tensor is mapped (LoLDU, LoRA-XS, LoRA-SB).
    pub fn sync(&mut self) {
        let ka = kad::selected();
        for (blk, mb) in self.adapter.layers.iter_mut().zip(&self.mapped) {
            for (t, m) in blk.iter_mut().zip(mb) {
                let (Some(Term::LowRank(lr)), Some(m)) = (t, m) else { continue };
                let (r, no) = (lr.r, lr.n_out);
                match m {
                    Mapped::Loldu { pl, d, z, s0, s, train_scale } => {
                        // Untrained scale: Bᵀ = (P·L_r·diag(z − D))ᵀ at s0; trained: (P·L_r·diag(s·z − s0·D))ᵀ at 1.
                        let (cz, cd) = if *train_scale { (s[0], *s0) } else { (1.0, 1.0) };
                        lr.scale = if *train_scale { 1.0 } else { *s0 };
                        for k in 0..r {
                            let c = cz * z[k] - cd * d[k];
                            for o in 0..no {
                                lr.bt[k * no + o] = pl[o * r + k] * c;
                            }
                        }
                    }
                    Mapped::Xs { b_t, latent, .. } => {
                        // Bᵀ_term[j, :] = Σ_i R[i, j]·Bᵀ[i, :].
                        let rt = transpose(latent, r, r);
                        lr.bt.fill(0.0);
                        ka.up(&rt, r, r, r, None, b_t, no, no, None, 1.0, &mut lr.bt, no);
                    }
                }
            }
        }
    }

    /// Sizes of the trained tensors, in [`Trainable::params_mut`] order.
    pub fn param_sizes(&self) -> Vec<usize> {
        let mut out = Vec::new();
        for (blk, mb) in self.adapter.layers.iter().zip(&self.mapped) {
            for (t, m) in blk.iter().zip(mb) {
                match (t, m) {
                    (None, _) => {}
                    (Some(_), Some(Mapped::Loldu { z, train_scale, .. })) => {
                        out.push(z.len());
                        if *train_scale {
                            out.push(1);
                        }
                    }
                    (Some(_), Some(Mapped::Xs { latent, .. })) => out.push(latent.len()),
                    (Some(Term::LowRank(lr)), None) => {
                        if self.spec.method.trains_a() {
                            out.push(lr.a.len());
                        }
                        out.push(lr.bt.len());
                    }
                    (Some(Term::Vera(v)), None) => {
                        out.push(v.lambda_d.len());
                        out.push(v.lambda_b.len());
                    }
                    (Some(Term::Dora(_) | Term::MissBat(_)), None) => {}
                }
            }
        }
        out
    }

    /// The trained tensors, in a fixed order (block, projection, tensor).
    pub fn params_mut(&mut self) -> Vec<&mut [f32]> {
        let trains_a = self.spec.method.trains_a();
        let mut out: Vec<&mut [f32]> = Vec::new();
        for (blk, mb) in self.adapter.layers.iter_mut().zip(self.mapped.iter_mut()) {
            for (t, m) in blk.iter_mut().zip(mb.iter_mut()) {
                match (t, m) {
                    (None, _) => {}
                    (Some(_), Some(Mapped::Loldu { z, s, train_scale, .. })) => {
                        out.push(z);
                        if *train_scale {
                            out.push(s);
                        }
                    }
                    (Some(_), Some(Mapped::Xs { latent, .. })) => out.push(latent),
                    (Some(Term::LowRank(lr)), None) => {
                        if trains_a {
                            out.push(&mut lr.a);
                        }
                        out.push(&mut lr.bt);
                    }
                    (Some(Term::Vera(v)), None) => {
                        out.push(&mut v.lambda_d);
                        out.push(&mut v.lambda_b);
                    }
                    (Some(Term::Dora(_) | Term::MissBat(_)), None) => {}
                }
            }
        }
        out
    }

    /// Zero gradients for the passes.
    pub fn zero_grads(&self) -> Result<Grads> {
        Grads::zeros_with(&self.adapter, self.spec.method.trains_a())
    }

    /// The gradients of the trained tensors (in [`Trainable::params_mut`] order) from the terms'.
    pub fn param_grads(&self, g: &Grads) -> Vec<Vec<f32>> {
        let ka = kad::selected();
        let mut out = Vec::new();
        for ((blk, mb), gb) in self.adapter.layers.iter().zip(&self.mapped).zip(&g.layers) {
            for ((t, m), tg) in blk.iter().zip(mb).zip(gb) {
                let (Some(t), Some(tg)) = (t, tg) else { continue };
                match (t, m, tg) {
                    (Term::LowRank(lr), Some(Mapped::Loldu { pl, z, s, train_scale, .. }), TermGrad::LowRank { dbt, .. }) => {
                        // g_k = Σ_o dBᵀ[k, o]·P·L_r[o, k]: dz_k = g_k (·s when trained), ds = Σ_k z_k·g_k.
                        let (r, no) = (lr.r, lr.n_out);
                        let g: Vec<f32> = (0..r).map(|k| (0..no).map(|o| dbt[k * no + o] * pl[o * r + k]).sum()).collect();
                        if *train_scale {
                            out.push(g.iter().map(|v| v * s[0]).collect());
                            out.push(vec![g.iter().zip(z).map(|(a, b)| a * b).sum()]);
                        } else {
                            out.push(g);
                        }
                    }
                    (Term::LowRank(lr), Some(Mapped::Xs { b_t, .. }), TermGrad::LowRank { dbt, .. }) => {
                        // dRᵀ[j, i] = Σ_o dBᵀ[j, o]·Bᵀ[i, o].
                        let (r, no) = (lr.r, lr.n_out);
                        let mut drt = vec![0f32; r * r];
                        ka.down(dbt, no, r, b_t, no, r, no, &mut drt, r);
                        out.push(transpose(&drt, r, r));
                    }
                    (Term::LowRank(_), None, TermGrad::LowRank { da, dbt }) => {
                        if self.spec.method.trains_a() {
                            out.push(da.clone());
                        }
                        out.push(dbt.clone());
                    }
                    (Term::Vera(_), None, TermGrad::Vera { dlambda_d, dlambda_b }) => {
                        out.push(dlambda_d.clone());
                        out.push(dlambda_b.clone());
                    }
                    _ => {}
                }
            }
        }
        out
    }

    /// Hyper-parameters as graft's file records them.
    pub fn hyper(&self) -> Hyper {
        let mut h = Hyper::new();
        let s = &self.spec;
        h.insert("r".into(), s.rank.to_string());
        h.insert("seed".into(), s.seed.to_string());
        let tg: Vec<&str> = s.targets.iter().map(|k| k.gguf_name()).collect();
        h.insert("target_modules".into(), tg.join(","));
        if s.method == Method::Loldu && s.loldu_train_scale {
            h.insert("train_scale".into(), "true".into());
        }
        if s.method == Method::Vera {
            h.insert("projection_prng_key".into(), s.seed.to_string());
            h.insert("d_initial".into(), s.vera_d_initial.to_string());
        } else {
            h.insert("alpha".into(), s.alpha.to_string());
        }
        h
    }

    /// The adapter in graft's file form (method tensors, hyper-parameters, base fingerprint).
    pub fn to_native(&self, source: &str) -> NativeAdapter {
        let mut tensors = Tensors::new();
        let mut vera_saved = false;
        for (l, (blk, mb)) in self.adapter.layers.iter().zip(&self.mapped).enumerate() {
            for (k, (t, m)) in blk.iter().zip(mb).enumerate() {
                let Some(t) = t else { continue };
                let prefix = format!("blk.{l}.{}", LinearKind::ALL[k].gguf_name());
                match (t, m) {
                    (Term::LowRank(lr), Some(Mapped::Loldu { pl, d, z, s0, s, train_scale })) => {
                        let m = LolduLayer {
                            r: lr.r,
                            n_in: lr.n_in,
                            n_out: lr.n_out,
                            pl: pl.clone(),
                            d: d.clone(),
                            u: lr.a.to_vec(),
                            z: z.clone(),
                            scale: *s0,
                            scale_z: s[0],
                            train_scale: *train_scale,
                        };
                        m.save(&prefix, &mut tensors);
                    }
                    (Term::LowRank(lr), Some(Mapped::Xs { b, latent, .. })) => {
                        let m = LoraXsLayer { r: lr.r, n_in: lr.n_in, n_out: lr.n_out, a: lr.a.to_vec(), b: b.clone(), latent: latent.clone(), scale: lr.scale };
                        m.save(&prefix, &mut tensors);
                    }
                    (Term::LowRank(lr), None) => {
                        let m = LoraLayer { r: lr.r, n_in: lr.n_in, n_out: lr.n_out, a: lr.a.to_vec(), b: transpose(&lr.bt, lr.r, lr.n_out), scale: lr.scale };
                        m.save(&prefix, &mut tensors);
                    }
                    (Term::Vera(v), _) => {
                        if !vera_saved {
                            v.shared.save(&mut tensors);
                            vera_saved = true;
                        }
                        let m = VeraLayer { shared: v.shared.clone(), n_in: v.n_in, n_out: v.n_out, lambda_d: v.lambda_d.clone(), lambda_b: v.lambda_b.clone() };
                        m.save(&prefix, &mut tensors);
                    }
                    (Term::Dora(_) | Term::MissBat(_), _) => {}
                }
            }
        }
        NativeAdapter { method: self.spec.method.name().to_string(), hyper: self.hyper(), base_fingerprint: Some(self.fingerprint.clone()), tensors, source: source.to_string() }
    }
}
