//! `graft train`: trains an adapter over the frozen quantized base on the CPU, with a progress bar
//! (loss, eval loss, tokens/s, ETA), atomic checkpoints and resume, and one closing stdout line
//! `done: steps=N loss=X eval_loss=Y tok_s=Z peak_mib=M`.
use graft::adapter::graft_format;
use graft::model::Model;
use graft::train::data;
use graft::train::optim::AdamWConfig;
use graft::train::trainable::{parse_targets, Method, TrainSpec};
use graft::train::trainer::{memory_estimate, plan_memory, TrainConfig, TrainNumerics, Trainer};
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

/// The options of `graft train`.
#[derive(clap::Args, Clone, Debug)]
pub struct TrainArgs {
    /// Method: vera, loldu, lora-xs, lora-sb, lora or ffa-lora
    #[arg(long = "method")]
    pub method: String,
    /// Training data: plain text, or JSONL of {"text"}, {"prompt","completion"} or {"messages"}
    #[arg(long = "data")]
    pub data: PathBuf,
    /// Output adapter (graft's safetensors format)
    #[arg(short = 'o', long = "output")]
    pub out: PathBuf,
    /// Rank [default: 256 for VeRA, 16 otherwise]
    #[arg(long = "rank")]
    pub rank: Option<usize>,
    /// Alpha (scale alpha/rank) [default: rank; LoLDU: 1]
    #[arg(long = "alpha")]
    pub alpha: Option<f32>,
    /// Adapted projections, comma-separated from q,k,v,o,gate,up,down
    #[arg(long = "targets", default_value = "q,k,v,o,gate,up,down")]
    pub targets: String,
    /// Optimizer steps
    #[arg(long = "steps", default_value_t = 100)]
    pub steps: u64,
    /// Sequences per micro-batch
    #[arg(long = "batch", default_value_t = 4)]
    pub batch: usize,
    /// Micro-batches per optimizer step (gradient accumulation)
    #[arg(long = "accum", default_value_t = 1)]
    pub accum: usize,
    /// Tokens per sequence
    #[arg(long = "seq", default_value_t = 256)]
    pub seq: usize,
    /// Peak learning rate [default: 1e-2 for VeRA, LoLDU, LoRA-XS, LoRA-SB; 2e-4 for LoRA, FFA-LoRA]
    #[arg(long = "lr")]
    pub lr: Option<f32>,
    /// Linear warm-up steps (then cosine decay to --min-lr-ratio)
    #[arg(long = "warmup", default_value_t = 0)]
    pub warmup: u64,
    /// Floor of the cosine decay, as a fraction of --lr
    #[arg(long = "min-lr-ratio", default_value_t = 0.1)]
    pub min_lr_ratio: f32,
    /// AdamW decoupled weight decay
    #[arg(long = "weight-decay", default_value_t = 0.0)]
    pub weight_decay: f32,
    /// Global gradient-norm clip (0: none)
    #[arg(long = "clip", default_value_t = 1.0)]
    pub clip: f32,
    /// Seed of the initialisation and the data order
    #[arg(long = "seed", default_value_t = 0)]
    pub seed: u64,
    /// VeRA's initial lambda_d
    #[arg(long = "d-initial", default_value_t = 0.1)]
    pub d_initial: f32,
    /// Evaluate the held-out loss every N steps (0: only at the end)
    #[arg(long = "eval-every", default_value_t = 0)]
    pub eval_every: u64,
    /// Fraction of the sequences held out for the eval loss
    #[arg(long = "eval-fraction", default_value_t = 0.05)]
    pub eval_fraction: f64,
    /// Write a checkpoint every N steps (0: none)
    #[arg(long = "checkpoint-every", default_value_t = 0)]
    pub checkpoint_every: u64,
    /// Checkpoint folder [default: OUTPUT.ckpt, or the --resume folder]
    #[arg(long = "checkpoint-dir")]
    pub checkpoint_dir: Option<PathBuf>,
    /// Continue the run checkpointed in this folder (same settings; with the same --steps and -t it
    /// continues exactly as the uninterrupted run; a larger --steps extends the schedule)
    #[arg(long = "resume")]
    pub resume: Option<PathBuf>,
    /// Memory limit (e.g. 1G, 800M): picks activation checkpointing, or refuses with the estimate
    #[arg(long = "max-memory", value_parser = parse_size)]
    pub max_memory: Option<usize>,
    /// ALLoRA (with --method lora): per-row adaptive gradient scaling with this eta (the largest
    /// multiplier, at B·A = 0); train with the default alpha = rank (scale 1), as ALLoRA does
    #[arg(long = "allora")]
    pub allora: Option<f32>,
    /// LoLDU: also train the scale of z (its optional scaling_factor)
    #[arg(long = "loldu-train-scale")]
    pub loldu_train_scale: bool,
    /// LoRA-SB: learning rate of the full fine-tuning whose first update the initialisation imitates
    #[arg(long = "sb-lr", default_value_t = 1e-4)]
    pub sb_lr: f32,
    /// Always recompute activations in the backward pass (less memory, one more forward)
    #[arg(long = "activation-checkpointing")]
    pub activation_checkpointing: bool,
    /// Arithmetic of the frozen base's products: int8 (weights, activations and gradients rounded
    /// to int8 in blocks of 32; ~4x faster on AVX-512 VNNI, ~300 MiB more), f32, or auto (int8
    /// where the CPU has fast int8 products)
    #[arg(long = "train-numerics", default_value = "auto", value_parser = ["auto", "int8", "f32"])]
    pub train_numerics: String,
}

/// Parses `123`, `800K`, `800M`, `1G`, `1.5GiB`, ... (binary units).
pub fn parse_size(s: &str) -> Result<usize, String> {
    let t = s.trim();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let v: f64 = num.parse().map_err(|_| format!("{s:?} is not a size (e.g. 1G, 800M)"))?;
    let mul = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1u64,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        u => return Err(format!("unknown size unit {u:?} in {s:?}")),
    };
    Ok((v * mul as f64) as usize)
}

fn fmt_loss(v: Option<f64>) -> String {
    v.map_or("nan".to_string(), |v| format!("{v:.4}"))
}

/// Runs `graft train`.
pub fn run(model: Arc<Model>, threads: usize, a: TrainArgs) -> Result<(), String> {
    let method = Method::parse(&a.method).map_err(|e| e.to_string())?;
    let rank = a.rank.unwrap_or(method.default_rank());
    let targets = parse_targets(&a.targets).map_err(|e| e.to_string())?;
    let spec = TrainSpec { method, rank, alpha: a.alpha.unwrap_or(method.default_alpha(rank)), targets, seed: a.seed, vera_d_initial: a.d_initial, loldu_train_scale: a.loldu_train_scale, sb_lr: a.sb_lr };
    if a.seq == 0 || a.batch == 0 || a.accum == 0 || a.steps == 0 {
        return Err("--seq, --batch, --accum and --steps must be at least 1".into());
    }
    // Data.
    let (train, eval) = data::load_for_training(&a.data, &model, a.seq, a.eval_fraction).map_err(|e| e.to_string())?;
    let n_tokens: usize = train.iter().map(|s| s.input.len()).sum();
    eprintln!("graft: {} training sequences ({} tokens), {} held out, from {}", train.len(), n_tokens, eval.len(), a.data.display());
    // Memory plan.
    let numerics = TrainNumerics::parse(&a.train_numerics).ok_or_else(|| format!("--train-numerics {}: expected auto, int8 or f32", a.train_numerics))?;
    let plan = plan_memory(&model, &spec, a.seq, threads.min(a.batch), numerics, a.max_memory).map_err(|e| e.to_string())?;
    let (ckpt, at_once) = (plan.checkpoint || a.activation_checkpointing, plan.threads);
    let est = memory_estimate(&model, &spec, a.seq, at_once, ckpt, numerics);
    eprintln!(
        "graft: {} r={} on {} projections/block, {} threads ({} sequences at once), activation checkpointing {}, {} base products, estimated peak {} MiB",
        method.name(),
        rank,
        spec.targets.len(),
        threads,
        at_once,
        if ckpt { "on" } else { "off" },
        numerics.name(),
        est >> 20
    );
    let lr = a.lr.unwrap_or(method.default_lr());
    let cfg = TrainConfig {
        batch: a.batch,
        accum: a.accum,
        steps: a.steps,
        threads,
        sequences_at_once: at_once,
        checkpoint_activations: ckpt,
        optim: AdamWConfig { lr, weight_decay: a.weight_decay, warmup_steps: a.warmup, total_steps: a.steps, min_lr_ratio: a.min_lr_ratio, clip_norm: a.clip, ..AdamWConfig::default() },
        seed: a.seed,
        allora_eta: a.allora,
        numerics,
    };
    let ckpt_dir = a.checkpoint_dir.clone().or_else(|| a.resume.clone()).unwrap_or_else(|| {
        let mut p = a.out.clone().into_os_string();
        p.push(".ckpt");
        PathBuf::from(p)
    });
    let ckpt_file = ckpt_dir.join("checkpoint.safetensors");
    let t_init = Instant::now();
    let resume = a.resume.as_ref().map(|d| d.join("checkpoint.safetensors"));
    let mut trainer = Trainer::start(model.clone(), spec, cfg, train, eval, resume.as_deref()).map_err(|e| e.to_string())?;
    if let Some(f) = &resume {
        eprintln!("graft: resumed {} at step {}", f.display(), trainer.steps_done());
    }
    eprintln!(
        "graft: {} trainable parameters, initialised in {:.2} s",
        trainer.trainable.adapter.trainable_params,
        t_init.elapsed().as_secs_f64()
    );
    if trainer.steps_done() >= a.steps {
        return Err(format!("the checkpoint is at step {}, --steps is {}", trainer.steps_done(), a.steps));
    }
    let pb = if std::io::stderr().is_terminal() { ProgressBar::new(a.steps) } else { ProgressBar::hidden() };
    pb.set_style(ProgressStyle::with_template("train [{bar:30}] {pos}/{len} {msg} ETA {eta}").unwrap().progress_chars("=> "));
    pb.set_position(trainer.steps_done());
    let save_checkpoint = |t: &Trainer| -> Result<(), String> {
        std::fs::create_dir_all(&ckpt_dir).map_err(|e| format!("{}: {e}", ckpt_dir.display()))?;
        t.save_checkpoint(&ckpt_file).map_err(|e| e.to_string())
    };
    let (mut step_secs, mut step_tokens) = (0f64, 0usize);
    let mut last_loss = f64::NAN;
    let mut eval_loss = None;
    let log = !std::io::stderr().is_terminal();
    while trainer.steps_done() < a.steps {
        let t0 = Instant::now();
        let r = trainer.step().map_err(|e| {
            pb.abandon();
            let kept = if ckpt_file.exists() { format!("; the last good checkpoint is {}", ckpt_file.display()) } else { String::new() };
            format!("{e}{kept}")
        })?;
        step_secs += t0.elapsed().as_secs_f64();
        step_tokens += r.tokens;
        last_loss = r.loss;
        if a.eval_every > 0 && r.step % a.eval_every == 0 {
            eval_loss = trainer.eval_loss().map_err(|e| e.to_string())?;
        }
        let tok_s = step_tokens as f64 / step_secs.max(1e-9);
        let msg = format!("loss {:.4} eval {} lr {:.2e} |g| {:.3} {:.0} tok/s", r.loss, fmt_loss(eval_loss), r.lr, r.grad_norm, tok_s);
        pb.set_position(r.step);
        pb.set_message(msg.clone());
        if log && (r.step == 1 || r.step % 10 == 0 || r.step == a.steps) {
            eprintln!("graft: step {}/{} {msg}", r.step, a.steps);
        }
        if a.checkpoint_every > 0 && r.step % a.checkpoint_every == 0 && r.step < a.steps {
            save_checkpoint(&trainer)?;
        }
    }
    pb.finish_and_clear();
    if a.eval_every == 0 || trainer.steps_done() % a.eval_every != 0 {
        eval_loss = trainer.eval_loss().map_err(|e| e.to_string())?;
    }
    let native = trainer.trainable.to_native(&a.out.display().to_string());
    graft_format::write(&a.out, &native).map_err(|e| e.to_string())?;
    if a.checkpoint_every > 0 {
        save_checkpoint(&trainer)?;
    }
    eprintln!("graft: wrote {}", a.out.display());
    let tok_s = step_tokens as f64 / step_secs.max(1e-9);
    let peak = crate::peak_rss().map_or(0, |b| b >> 20);
    println!("done: steps={} loss={:.4} eval_loss={} tok_s={:.1} peak_mib={}", trainer.steps_done(), last_loss, fmt_loss(eval_loss), tok_s, peak);
    Ok(())
}
