//! The `graft` command line: run, perplexity, bench, inspect, swap, export, merge, train.
#[path = "cli/train.rs"]
mod train_cmd;
use clap::{Parser, Subcommand};
use graft::adapter::{self, Registry};
use graft::model::generate::{generate, perplexity};
use graft::model::sampler::Sampler;
use graft::model::{Logits, Model, Numerics, Runner, SeqInput};
use indicatif::{ProgressBar, ProgressStyle};
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

/// The default model, fetched by scripts/fetch-model.sh.
const DEFAULT_MODEL: &str = "models/SmolLM2-135M-Instruct.Q4_1.gguf";

#[derive(Parser)]
#[command(name = "graft", version, about = "Run quantized GGUF language models on hand-written SIMD kernels")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(clap::Args, Clone)]
struct ModelArgs {
    /// GGUF model file [default: $GRAFT_MODEL, else models/SmolLM2-135M-Instruct.Q4_1.gguf]
    #[arg(short = 'm', long = "model")]
    model: Option<PathBuf>,
    /// Threads (0: all cores)
    #[arg(short = 't', long = "threads", default_value_t = 0)]
    threads: usize,
    /// Numerics: q8 (llama.cpp's 8-bit activations, f16 KV cache; fast) or f32 (dequantized weights
    /// against f32 activations, f32 KV cache: transformers' fp32 figures)
    #[arg(long = "numerics", default_value = "q8", value_parser = parse_numerics)]
    numerics: Numerics,
    /// Adapter to apply, PATH[:SCALE] (repeatable): a GGUF LoRA, a PEFT directory or a graft file
    #[arg(short = 'a', long = "adapter")]
    adapters: Vec<String>,
    /// Device: cpu, or cuda[:N] (the CUDA kernels exist, the CUDA forward pass does not yet)
    #[arg(long = "device", default_value = "cpu", value_parser = graft::cuda::Device::parse)]
    device: graft::cuda::Device,
}

/// Splits `PATH[:SCALE]` (a trailing `:number` is the scale; 1 otherwise).
fn parse_adapter_arg(s: &str) -> Result<(PathBuf, f32), String> {
    if let Some((p, sc)) = s.rsplit_once(':') {
        if let Ok(v) = sc.parse::<f32>() {
            if !v.is_finite() {
                return Err(format!("adapter {s:?}: scale {sc} is not finite"));
            }
            return Ok((PathBuf::from(p), v));
        }
    }
    Ok((PathBuf::from(s), 1.0))
}

fn parse_numerics(s: &str) -> Result<Numerics, String> {
    Numerics::parse(s).ok_or_else(|| format!("unknown numerics {s:?} (q8 or f32)"))
}

#[derive(Subcommand)]
#[allow(clippy::large_enum_variant)] // parsed once per process
enum Cmd {
    /// Generate text from a prompt: stdout carries only the generated text, timings go to stderr.
    Run {
        #[command(flatten)]
        m: ModelArgs,
        /// Prompt text
        #[arg(short = 'p', long = "prompt")]
        prompt: String,
        /// Tokens to generate at most
        #[arg(short = 'n', long = "n-predict", default_value_t = 64)]
        n: usize,
        /// Sampling temperature; 0 is greedy
        #[arg(long = "temp", default_value_t = 0.8)]
        temp: f32,
        /// Nucleus sampling mass
        #[arg(long = "top-p", default_value_t = 0.95)]
        top_p: f32,
        /// Sampling seed
        #[arg(long = "seed", default_value_t = 42)]
        seed: u64,
    },
    /// Perplexity of a text file with llama.cpp's llama-perplexity protocol; last line `PPL = v +/- e`.
    Perplexity {
        #[command(flatten)]
        m: ModelArgs,
        /// Text file
        #[arg(short = 'f', long = "file")]
        file: PathBuf,
        /// Context (chunk) length
        #[arg(short = 'c', long = "ctx-size", default_value_t = 512)]
        ctx: usize,
    },
    /// Prefill and decode speed, median of repeats.
    Bench {
        #[command(flatten)]
        m: ModelArgs,
        /// Prompt tokens for the prefill test (0: skip)
        #[arg(short = 'p', long = "n-prompt", default_value_t = 128)]
        p: usize,
        /// Tokens for the decode test (0: skip)
        #[arg(short = 'n', long = "n-gen", default_value_t = 64)]
        n: usize,
        /// Repetitions (the median is reported)
        #[arg(short = 'r', long = "repetitions", default_value_t = 5)]
        reps: usize,
        /// Print one JSON object instead of a table
        #[arg(long)]
        json: bool,
    },
    /// Metadata and tensor table of a GGUF or safetensors file; for an adapter (GGUF LoRA, graft
    /// file or PEFT directory) its method, shapes, parameters and the base it was made for.
    Inspect {
        /// The file or PEFT directory
        file: PathBuf,
    },
    /// Converts an adapter to graft's format, a PEFT directory or a GGUF LoRA.
    Export {
        /// The adapter (GGUF LoRA, graft file or PEFT directory)
        adapter: PathBuf,
        /// Output format: graft, peft or gguf-lora
        #[arg(long = "to")]
        to: String,
        /// Output file (directory for peft)
        #[arg(short = 'o', long = "output")]
        out: PathBuf,
        #[command(flatten)]
        m: ModelArgs,
    },
    /// Hot-swap demo: one base, the -a adapters loaded once; the prompt is generated (greedy) with
    /// each adapter in turn, for several rounds, switching the sequence's adapter set between
    /// generations without reloading anything; prints each text and the measured swap times.
    Swap {
        #[command(flatten)]
        m: ModelArgs,
        /// Prompt text
        #[arg(short = 'p', long = "prompt")]
        prompt: String,
        /// Tokens per generation
        #[arg(short = 'n', long = "n-predict", default_value_t = 24)]
        n: usize,
        /// Rounds over the adapters
        #[arg(long = "rounds", default_value_t = 2)]
        rounds: usize,
    },
    /// Trains an adapter over the frozen quantized model on the CPU.
    Train {
        #[command(flatten)]
        m: ModelArgs,
        #[command(flatten)]
        t: train_cmd::TrainArgs,
    },
    /// Folds adapters into a copy of the model (re-quantizing quantized weights; K-quants to Q8_0).
    Merge {
        #[command(flatten)]
        m: ModelArgs,
        /// Output GGUF file
        #[arg(short = 'o', long = "output")]
        out: PathBuf,
        /// Type of the merged matrices: same (the base's; K-quants as q8_0), f32, f16, bf16, q8_0,
        /// q4_0, q4_1, q5_0, q5_1
        #[arg(long = "type", default_value = "same")]
        ty: String,
    },
}

fn model_path(m: &ModelArgs) -> PathBuf {
    if let Some(p) = &m.model {
        return p.clone();
    }
    if let Ok(p) = std::env::var("GRAFT_MODEL") {
        return PathBuf::from(p);
    }
    let local = PathBuf::from(DEFAULT_MODEL);
    if local.exists() {
        return local;
    }
    let dev = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(DEFAULT_MODEL);
    if dev.exists() {
        dev
    } else {
        local
    }
}

fn load(m: &ModelArgs) -> Result<(Arc<Model>, Runner), String> {
    if m.device != graft::cuda::Device::Cpu {
        m.device.check().map_err(|e| format!("--device {}: {e}", m.device))?;
        return Err(format!("--device {}: the CUDA forward pass is not written yet (only its kernels: csrc/cuda/README.md)", m.device));
    }
    let path = model_path(m);
    let t0 = Instant::now();
    let model = Arc::new(Model::load(&path).map_err(|e| {
        if !path.exists() && m.model.is_none() {
            format!("{e}\n(fetch the default model with scripts/fetch-model.sh)")
        } else {
            e.to_string()
        }
    })?);
    let mut runner = Runner::with_numerics(model.clone(), m.threads, m.numerics);
    if !m.adapters.is_empty() {
        let reg = Registry::new(model.clone());
        let mut names = Vec::new();
        for (i, a) in m.adapters.iter().enumerate() {
            let (path, scale) = parse_adapter_arg(a)?;
            let t = Instant::now();
            let name = format!("{i}");
            let ad = reg.load(&name, &path, 1.0).map_err(|e| e.to_string())?;
            eprintln!(
                "graft: adapter {} ({}, {} adapted matrices, {} parameters) at scale {scale} loaded in {:.2} ms",
                path.display(),
                ad.method,
                ad.n_terms(),
                ad.trainable_params,
                t.elapsed().as_secs_f64() * 1e3
            );
            names.push((name, scale));
        }
        let set = reg.set(&names.iter().map(|(n, s)| (n.as_str(), *s)).collect::<Vec<_>>()).map_err(|e| e.to_string())?;
        runner.set_default_adapters(set);
    }
    eprintln!(
        "graft: loaded {} ({} layers, d={}, {:.1} MiB) in {:.0} ms; {} threads, kernels {}, numerics {:?}",
        path.display(),
        model.config.n_layer,
        model.config.n_embd,
        model.file_bytes() as f64 / (1 << 20) as f64,
        t0.elapsed().as_secs_f64() * 1e3,
        runner.threads(),
        graft::kernels::selected_isa().name(),
        runner.numerics()
    );
    Ok((model, runner))
}

fn bar(len: u64, what: &str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::new(len);
    pb.set_style(ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} ({eta})").unwrap().progress_chars("=> "));
    pb.set_message(what.to_string());
    pb
}

/// Peak resident set size of this process in bytes (Linux), if known.
fn peak_rss() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse::<u64>().ok().map(|kb| kb * 1024)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn run(cli: Cli) -> Result<(), String> {
    match cli.cmd {
        Cmd::Train { m, t } => {
            if !m.adapters.is_empty() {
                return Err("graft train: -a is not supported (training starts a new adapter; use --resume to continue one)".into());
            }
            let (model, runner) = load(&m)?;
            let threads = runner.threads();
            drop(runner);
            train_cmd::run(model, threads, t)?;
        }
        Cmd::Run { m, prompt, n, temp, top_p, seed } => {
            let (model, mut runner) = load(&m)?;
            let ids = model.tokenizer.encode(&prompt, true, true);
            let mut cache = runner.new_cache();
            let mut sampler = Sampler::new(temp, top_p, seed);
            let mut out = std::io::stdout().lock();
            let mut pending: Vec<u8> = Vec::new();
            let st = generate(&mut runner, &mut cache, &ids, n, &mut sampler, |tok| {
                pending.extend_from_slice(&model.tokenizer.decode(&[tok]));
                // Write whole UTF-8 characters only; keep an incomplete tail for the next token.
                let valid = match std::str::from_utf8(&pending) {
                    Ok(_) => pending.len(),
                    Err(e) if e.error_len().is_none() => e.valid_up_to(),
                    Err(_) => pending.len(),
                };
                let _ = out.write_all(&pending[..valid]).and_then(|_| out.flush());
                pending.drain(..valid);
                true
            })
            .map_err(|e| e.to_string())?;
            let _ = out.write_all(&pending);
            let _ = out.flush();
            eprintln!();
            eprintln!(
                "graft: prompt {} tokens in {:.1} ms ({:.1} tok/s); generated {} tokens in {:.1} ms ({:.1} tok/s); peak RSS {:.1} MiB",
                st.prompt_tokens,
                st.prefill_s * 1e3,
                st.prompt_tokens as f64 / st.prefill_s,
                st.gen_tokens,
                st.decode_s * 1e3,
                st.gen_tokens as f64 / st.decode_s.max(1e-9),
                peak_rss().unwrap_or(0) as f64 / (1 << 20) as f64
            );
        }
        Cmd::Perplexity { m, file, ctx } => {
            let (model, mut runner) = load(&m)?;
            let text = std::fs::read(&file).map_err(|e| format!("{}: {e}", file.display()))?;
            let text = String::from_utf8_lossy(&text);
            let t0 = Instant::now();
            let tokens = model.tokenizer.encode(&text, model.tokenizer.add_bos(), false);
            eprintln!("graft: tokenized {} tokens in {:.0} ms", tokens.len(), t0.elapsed().as_secs_f64() * 1e3);
            let pb = bar((tokens.len() / ctx.max(1)) as u64, "perplexity");
            let t1 = Instant::now();
            let r = perplexity(&mut runner, &tokens, ctx, |i, _n, ppl| {
                pb.set_position(i as u64 + 1);
                pb.set_message(format!("perplexity {ppl:.4}"));
                println!("[{}] {:.4}", i + 1, ppl);
            })
            .map_err(|e| e.to_string())?;
            pb.finish_and_clear();
            let s = t1.elapsed().as_secs_f64();
            eprintln!("graft: {} chunks of {ctx}, {} tokens scored, {:.1} s ({:.1} tok/s)", r.chunks, r.scored, s, (r.chunks * ctx) as f64 / s);
            println!("PPL = {:.4} +/- {:.5}", r.ppl, r.err);
        }
        Cmd::Bench { m, p, n, reps, json } => {
            let (model, mut runner) = load(&m)?;
            let reps = reps.max(1);
            let nv = model.config.n_vocab as u32;
            // Token ids spread over the vocabulary, as llama-bench feeds random tokens.
            let toks: Vec<u32> = (0..p.max(n).max(1) as u32).map(|i| (i.wrapping_mul(2654435761) >> 7) % nv).collect();
            let mut cache = runner.new_cache();
            cache.reserve(p.max(n) + 1);
            let (mut pp, mut tg) = (Vec::new(), Vec::new());
            let pb = bar((reps * ((p > 0) as usize + (n > 0) as usize)) as u64, "bench");
            // Warm-up: one token through every layer.
            runner.forward(&mut [SeqInput { tokens: &toks[..1], cache: &mut cache, logits: Logits::Last }]).map_err(|e| e.to_string())?;
            for _ in 0..reps {
                if p > 0 {
                    cache.clear();
                    let t0 = Instant::now();
                    runner.forward(&mut [SeqInput { tokens: &toks[..p], cache: &mut cache, logits: Logits::Last }]).map_err(|e| e.to_string())?;
                    pp.push(p as f64 / t0.elapsed().as_secs_f64());
                    pb.inc(1);
                }
                if n > 0 {
                    cache.clear();
                    let t0 = Instant::now();
                    for i in 0..n {
                        runner.forward(&mut [SeqInput { tokens: &toks[i..i + 1], cache: &mut cache, logits: Logits::Last }]).map_err(|e| e.to_string())?;
                    }
                    tg.push(n as f64 / t0.elapsed().as_secs_f64());
                    pb.inc(1);
                }
            }
            pb.finish_and_clear();
            let pp_med = if pp.is_empty() { 0.0 } else { median(&mut pp) };
            let tg_med = if tg.is_empty() { 0.0 } else { median(&mut tg) };
            if json {
                let v = serde_json::json!({
                    "model": model_path(&m).display().to_string(),
                    "threads": runner.threads(),
                    "isa": graft::kernels::selected_isa().name(),
                    "n_prompt": p, "n_gen": n, "repetitions": reps,
                    "prefill_tok_s": pp_med, "decode_tok_s": tg_med,
                    "prefill_runs": pp, "decode_runs": tg,
                });
                println!("{v}");
            } else {
                println!("| test | threads | isa | tok/s (median of {reps}) |");
                println!("|---|---|---|---|");
                if p > 0 {
                    println!("| pp{p} | {} | {} | {pp_med:.1} |", runner.threads(), graft::kernels::selected_isa().name());
                }
                if n > 0 {
                    println!("| tg{n} | {} | {} | {tg_med:.1} |", runner.threads(), graft::kernels::selected_isa().name());
                }
            }
        }
        Cmd::Inspect { file } => {
            if let Some(report) = inspect_adapter(&file)? {
                print!("{report}");
            } else {
                let report = graft::format::inspect::inspect(&file).map_err(|e| e.to_string())?;
                print!("{report}");
            }
        }
        Cmd::Export { adapter, to, out, m } => {
            let fmt = adapter::export::Format::parse(&to).map_err(|e| e.to_string())?;
            let path = model_path(&m);
            let model = Model::load(&path).map_err(|e| e.to_string())?;
            let t0 = Instant::now();
            adapter::export::export(&adapter, fmt, &out, &model, path.file_name().and_then(|s| s.to_str())).map_err(|e| e.to_string())?;
            eprintln!("graft: wrote {} ({to}) in {:.0} ms", out.display(), t0.elapsed().as_secs_f64() * 1e3);
        }
        Cmd::Swap { m, prompt, n, rounds } => {
            if m.adapters.is_empty() {
                return Err("swap needs at least one -a ADAPTER".into());
            }
            let mut m0 = m.clone();
            m0.adapters.clear();
            let (model, mut runner) = load(&m0)?;
            let reg = Registry::new(model.clone());
            let mut names = Vec::new();
            for a in &m.adapters {
                let (p, s) = parse_adapter_arg(a)?;
                let name = adapter::load::name_of(&p).to_string();
                let t = Instant::now();
                reg.load(&name, &p, s).map_err(|e| e.to_string())?;
                eprintln!("graft: loaded adapter {name} in {:.2} ms", t.elapsed().as_secs_f64() * 1e3);
                names.push(name);
            }
            let sets: Vec<_> = names.iter().map(|n| reg.set(&[(n.as_str(), 1.0)])).collect::<Result<_, _>>().map_err(|e| e.to_string())?;
            let ids = model.tokenizer.encode(&prompt, true, true);
            let mut swaps = Vec::new();
            let mut cache = runner.new_cache();
            for round in 0..rounds {
                for (name, set) in names.iter().zip(&sets) {
                    cache.clear();
                    let t = Instant::now();
                    cache.set_adapters(set.clone());
                    swaps.push(t.elapsed().as_secs_f64() * 1e6);
                    let mut text = Vec::new();
                    let mut sampler = Sampler::new(0.0, 1.0, 0);
                    generate(&mut runner, &mut cache, &ids, n, &mut sampler, |tok| {
                        text.extend_from_slice(&model.tokenizer.decode(&[tok]));
                        true
                    })
                    .map_err(|e| e.to_string())?;
                    println!("[round {} | {name}] {}", round + 1, String::from_utf8_lossy(&text).replace('\n', " "));
                }
            }
            eprintln!(
                "graft: {} swaps without reloading the base: median {:.2} µs, max {:.2} µs",
                swaps.len(),
                median(&mut swaps.clone()),
                swaps.iter().cloned().fold(0f64, f64::max)
            );
        }
        Cmd::Merge { m, out, ty } => {
            let ty = match ty.to_ascii_lowercase().as_str() {
                "same" => None,
                t => Some(
                    graft::quant::WEIGHT_TYPES
                        .iter()
                        .copied()
                        .find(|q| q.name().eq_ignore_ascii_case(t))
                        .ok_or_else(|| format!("--type {t}: expected same, f32, f16, bf16, q8_0, q4_0, q4_1, q5_0 or q5_1"))?,
                ),
            };
            if m.adapters.is_empty() {
                return Err("merge needs at least one -a ADAPTER".into());
            }
            let model = Arc::new(Model::load(model_path(&m)).map_err(|e| e.to_string())?);
            let mut list = Vec::new();
            for a in &m.adapters {
                let (p, s) = parse_adapter_arg(a)?;
                list.push((Arc::new(adapter::load::load(&p, &model).map_err(|e| e.to_string())?), s));
            }
            let t0 = Instant::now();
            let r = adapter::merge::merge_as(&model, &list, &out, ty).map_err(|e| e.to_string())?;
            eprintln!("graft: merged {} matrices into {} in {:.1} s", r.merged, out.display(), t0.elapsed().as_secs_f64());
            println!(
                "merged={} delta_rms={:.6e} requant_rms={:.6e} requant_over_delta={:.4} retyped={}",
                r.merged,
                r.delta_rms,
                r.requant_rms,
                if r.delta_rms > 0.0 { r.requant_rms / r.delta_rms } else { 0.0 },
                r.retyped
            );
        }
    }
    Ok(())
}

/// The report of `graft inspect` for an adapter, or `None` when `file` is not one.
fn inspect_adapter(file: &std::path::Path) -> Result<Option<String>, String> {
    use std::fmt::Write as _;
    let is_adapter = file.is_dir()
        || adapter::graft_format::is_graft_file(file)
        || graft::format::gguf::Gguf::open(file).is_ok_and(|g| g.get("general.type").and_then(|v| v.as_str()) == Some("adapter"));
    if !is_adapter {
        return Ok(None);
    }
    let n = adapter::load::read_native(file).map_err(|e| e.to_string())?;
    let mut s = String::new();
    let _ = writeln!(s, "adapter: {}", file.display());
    let _ = writeln!(s, "method: {}", n.method);
    // MiSS's variant shows in its blocks' shapes: three axes for "bat", a narrower block for "mini".
    if n.method == "miss" || n.method == "bone" {
        let bat = n.tensors.iter().any(|(k, (sh, _))| k.ends_with(".miss_block") && sh.len() == 3);
        let variant = if bat { "bat" } else if n.hyper.contains_key("mini_r") { "mini" } else { "default" };
        let _ = writeln!(s, "variant: {variant}");
    }
    for (k, v) in &n.hyper {
        let _ = writeln!(s, "hyper.{k}: {v}");
    }
    let _ = writeln!(s, "base: {}", n.base_fingerprint.as_deref().unwrap_or("(not recorded)"));
    let targets = adapter::native::targets(&n.tensors, &n.source).map_err(|e| e.to_string())?;
    let _ = writeln!(s, "adapted matrices: {}", targets.len());
    let stored: usize = n.tensors.values().map(|(_, v)| v.len()).sum();
    let _ = writeln!(s, "stored parameters: {stored}");
    if let Ok(model) = Model::load(model_path(&ModelArgs { model: None, threads: 1, numerics: Numerics::Q8, adapters: vec![], device: Default::default() })) {
        match n.build(adapter::load::name_of(file), &model) {
            Ok(a) => {
                let _ = writeln!(s, "trainable parameters: {}", a.trainable_params);
                let _ = writeln!(s, "fits the default model: yes ({})", model.fingerprint());
            }
            Err(e) => {
                let _ = writeln!(s, "fits the default model: no ({e})");
            }
        }
    }
    let _ = writeln!(s, "{:<48} {:>14}", "tensor", "shape");
    for (k, (shape, _)) in &n.tensors {
        let _ = writeln!(s, "{k:<48} {:>14}", format!("{shape:?}"));
    }
    Ok(Some(s))
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("graft: error: {e}");
            ExitCode::FAILURE
        }
    }
}
