//! Whole-model adapter speed on the default model, every figure of one table measured in one run:
//! decode tok/s without an adapter, with a rank-16 LoRA on all 7 projections, with VeRA r=256 on
//! all 7 projections, with MiSS "bat" (block 64) on the query and value projections; 16 sequences
//! decoding in one batch with 16 different rank-16 LoRAs against 16 sequences sharing one; and the
//! time to change one sequence's adapter set in a batch.
//!
//! `cargo run --release --example adapter_bench -- [-t THREADS] [-n TOKENS] [-r REPS]`: the
//! single-sequence figures come from 3·REPS rounds of TOKENS decode steps of each case in turn,
//! the 16-sequence ones from 3·REPS rounds of TOKENS/2 steps of each batch in turn; each ratio is
//! taken within its round (mean of the middle half, quartiles shown). `--only none|lora|vera|bat`
//! decodes just that case for the same rounds and prints its tok/s (a target for `perf record`).
//! `--prefetch-ab A,B` compares two weight-prefetch distances (bytes ahead; 0: none) round by round:
//! decode with each case and a 128-token prefill under A, then under B, in every round.
use graft::adapter::methods::Tensors;
use graft::adapter::native::NativeAdapter;
use graft::adapter::{Adapter, AdapterSet};
use graft::model::tiny::Normal;
use graft::model::{KvCache, LinearKind, Logits, Model, Runner, SeqInput};
use std::sync::Arc;
use std::time::Instant;

fn arg(name: &str, default: usize) -> usize {
    let a: Vec<String> = std::env::args().collect();
    a.iter().position(|x| x == name).and_then(|i| a.get(i + 1)).and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// A random adapter of `method` on all 7 projections (`lora` or `vera`, rank r), or MiSS "bat"
/// (`miss-bat`, block size r) on `attn_q` and `attn_v` (PEFT's default targets for MiSS).
fn random(model: &Model, method: &str, r: usize, seed: u64) -> Arc<Adapter> {
    let mut g = Normal::new(seed);
    let mut t = Tensors::new();
    let mut hyper = graft::adapter::methods::Hyper::new();
    let (mut max_in, mut max_out) = (0, 0);
    for (l, blk) in model.weights.blocks.iter().enumerate() {
        for kind in LinearKind::ALL {
            let w = blk.linear(kind);
            let p = format!("blk.{l}.{}", kind.gguf_name());
            max_in = max_in.max(w.n_in);
            max_out = max_out.max(w.n_out);
            if method == "miss-bat" {
                if matches!(kind, LinearKind::Q | LinearKind::V) {
                    t.insert(format!("{p}.miss_block"), (vec![w.n_out / r, r, r], g.vec(w.n_out * r, 0.01).into()));
                }
            } else if method == "lora" {
                t.insert(format!("{p}.lora_a"), (vec![r, w.n_in], g.vec(r * w.n_in, 1.0 / (w.n_in as f32).sqrt()).into()));
                t.insert(format!("{p}.lora_b"), (vec![w.n_out, r], g.vec(w.n_out * r, 0.02).into()));
            } else {
                t.insert(format!("{p}.vera_lambda_d"), (vec![r], vec![0.1; r].into()));
                t.insert(format!("{p}.vera_lambda_b"), (vec![w.n_out], g.vec(w.n_out, 0.01).into()));
            }
        }
    }
    if method == "lora" {
        hyper.insert("alpha".into(), (2 * r).to_string());
    } else if method == "vera" {
        let (ba, bb) = ((6.0 / max_in as f32).sqrt(), (6.0 / r as f32).sqrt());
        t.insert("shared.vera_A".into(), (vec![r, max_in], g.vec(r * max_in, ba / 1.7).into()));
        t.insert("shared.vera_B".into(), (vec![max_out, r], g.vec(max_out * r, bb / 1.7).into()));
    }
    let m = if method == "miss-bat" { "miss" } else { method };
    let n = NativeAdapter { method: m.into(), hyper, base_fingerprint: None, tensors: t, source: format!("<random {method} r{r}>") };
    Arc::new(n.into_adapter(m, model).unwrap())
}

/// Decode tok/s of `n` steps over the batch of caches (each with its own adapter set), from empty caches.
fn decode(runner: &mut Runner, caches: &mut [KvCache], n: usize) -> f64 {
    for c in caches.iter_mut() {
        c.clear();
    }
    let t = Instant::now();
    for i in 0..n {
        let tok = [(i as u32 * 2654435761) >> 17];
        let mut seqs: Vec<SeqInput> = caches.iter_mut().map(|c| SeqInput { tokens: &tok, cache: c, logits: Logits::Last }).collect();
        runner.forward(&mut seqs).unwrap();
    }
    (n * caches.len()) as f64 / t.elapsed().as_secs_f64()
}

/// (mean of the middle half, first quartile, third quartile) of the per-round ratios `a[i] / b[i]`.
fn ratio(a: &[f64], b: &[f64]) -> (f64, f64, f64) {
    let mut r: Vec<f64> = a.iter().zip(b).map(|(x, y)| x / y).collect();
    r.sort_by(f64::total_cmp);
    let q = r.len() / 4;
    let mid = &r[q..r.len() - q];
    (mid.iter().sum::<f64>() / mid.len() as f64, r[q], r[r.len() - 1 - q])
}

fn main() {
    let threads = arg("-t", 2);
    let n = arg("-n", 64);
    let reps = arg("-r", 5);
    let model = Arc::new(Model::load("models/SmolLM2-135M-Instruct.Q4_1.gguf").expect("default model (scripts/fetch-model.sh)"));
    let mut runner = Runner::new(model.clone(), threads);
    let lora = random(&model, "lora", 16, 1);
    let vera = random(&model, "vera", 256, 2);
    let cfg = model.config.clone();
    let with = |set: AdapterSet| {
        let mut c = KvCache::new(&cfg);
        c.set_adapters(set);
        c
    };
    let mut none = [with(AdapterSet::none())];
    let mut c_lora = [with(AdapterSet::fixed(&[(lora.clone(), 1.0)]))];
    let mut c_vera = [with(AdapterSet::fixed(&[(vera.clone(), 1.0)]))];
    let bat = random(&model, "miss-bat", 64, 3);
    let mut c_bat = [with(AdapterSet::fixed(&[(bat.clone(), 1.0)]))];
    decode(&mut runner, &mut none, 8); // warm-up
    let argv: Vec<String> = std::env::args().collect();
    if let Some(i) = argv.iter().position(|x| x == "--prefetch-ab") {
        // Two weight-prefetch distances (bytes) in alternating rounds: decode without an adapter
        // and with each adapter, and a 128-token prefill, under A then under B in every round.
        let dist: Vec<i64> = argv.get(i + 1).map(|v| v.split(',').filter_map(|x| x.parse().ok()).collect()).unwrap_or_default();
        assert_eq!(dist.len(), 2, "--prefetch-ab takes A,B (bytes ahead, 0 for none)");
        let prompt: Vec<u32> = (0..128u32).map(|i| (i * 2654435761) >> 17).collect();
        let mut pcache = [KvCache::new(&cfg)];
        let mut prefill = |runner: &mut Runner| {
            pcache[0].clear();
            let t = Instant::now();
            runner.forward(&mut [SeqInput { tokens: &prompt, cache: &mut pcache[0], logits: Logits::Last }]).unwrap();
            prompt.len() as f64 / t.elapsed().as_secs_f64()
        };
        let mut t = vec![vec![Vec::new(); 5]; 2];
        for _ in 0..reps * 3 {
            for (k, &d) in dist.iter().enumerate() {
                // SAFETY: no product runs while the setting changes (this thread drives the runner).
                unsafe { graft::kernels::sys::graft_set_weight_prefetch(d) };
                t[k][0].push(decode(&mut runner, &mut none, n));
                t[k][1].push(decode(&mut runner, &mut c_lora, n));
                t[k][2].push(decode(&mut runner, &mut c_vera, n));
                t[k][3].push(decode(&mut runner, &mut c_bat, n));
                t[k][4].push((0..4).map(|_| prefill(&mut runner)).fold(0.0, f64::max));
            }
        }
        unsafe { graft::kernels::sys::graft_set_weight_prefetch(graft::kernels::weight_prefetch() as i64) };
        let med = |v: &[f64]| {
            let mut w = v.to_vec();
            w.sort_by(f64::total_cmp);
            w[w.len() / 2]
        };
        let f = |(m, lo, hi): (f64, f64, f64)| format!("{m:.3} ({lo:.3}–{hi:.3})");
        println!("| case ({} rounds of {n} tokens; prefill: best of 4 × 128 tokens) | A = {} B tok/s | B = {} B tok/s | B / A | of no adapter, A | of no adapter, B |", reps * 3, dist[0], dist[1]);
        println!("|---|---|---|---|---|---|");
        for (c, name) in ["no adapter", "LoRA r=16, 7 projections", "VeRA r=256, 7 projections", "MiSS \"bat\" r=64, q and v", "prefill 128 tokens, no adapter"].iter().enumerate() {
            let (ra, rb) = if c == 0 || c == 4 { (String::new(), String::new()) } else { (f(ratio(&t[0][c], &t[0][0])), f(ratio(&t[1][c], &t[1][0]))) };
            println!("| {name} | {:.1} | {:.1} | {} | {ra} | {rb} |", med(&t[0][c]), med(&t[1][c]), f(ratio(&t[1][c], &t[0][c])));
        }
        return;
    }
    if let Some(case) = argv.iter().position(|x| x == "--only").and_then(|i| argv.get(i + 1)) {
        let caches: &mut [KvCache] = match case.as_str() {
            "none" => &mut none,
            "lora" => &mut c_lora,
            "vera" => &mut c_vera,
            "bat" => &mut c_bat,
            other => panic!("--only takes none, lora, vera or bat, not {other}"),
        };
        let t: Vec<f64> = (0..reps * 3).map(|_| decode(&mut runner, caches, n)).collect();
        println!("{case}: {:.1} tok/s (median of {} rounds of {n} tokens)", {
            let mut w = t.clone();
            w.sort_by(f64::total_cmp);
            w[w.len() / 2]
        }, t.len());
        return;
    }
    // Rounds of n tokens of each, in turn, so that the VM's drift (±10% over minutes) hits the three
    // alike; each ratio is taken within its round, and the table gives the mean of the middle half
    // of the per-round ratios with its range (the quartiles).
    let rounds = reps * 3;
    let (mut t0, mut t1, mut t2, mut t3) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        t0.push(decode(&mut runner, &mut none, n));
        t1.push(decode(&mut runner, &mut c_lora, n));
        t2.push(decode(&mut runner, &mut c_vera, n));
        t3.push(decode(&mut runner, &mut c_bat, n));
    }
    let med = |v: &[f64]| {
        let mut w = v.to_vec();
        w.sort_by(f64::total_cmp);
        w[w.len() / 2]
    };
    let (base, l16, v256, b64) = (med(&t0), med(&t1), med(&t2), med(&t3));
    let ((rl, rl0, rl1), (rv, rv0, rv1), (rb, rb0, rb1)) = (ratio(&t1, &t0), ratio(&t2, &t0), ratio(&t3, &t0));
    println!("| test (batch 1 decode, {threads} threads; {rounds} rounds of {n} tokens) | median tok/s | vs no adapter (quartiles) |");
    println!("|---|---|---|");
    println!("| no adapter | {base:.1} | 1 |");
    println!("| LoRA r=16, 7 projections | {l16:.1} | {rl:.3} ({rl0:.3}–{rl1:.3}) |");
    println!("| VeRA r=256, 7 projections | {v256:.1} | {rv:.3} ({rv0:.3}–{rv1:.3}) |");
    println!("| MiSS \"bat\" r=64, q and v | {b64:.1} | {rb:.3} ({rb0:.3}–{rb1:.3}) |");

    // 16 sequences: 16 different rank-16 LoRAs vs one shared.
    let many: Vec<Arc<Adapter>> = (0..16).map(|i| random(&model, "lora", 16, 100 + i)).collect();
    let mut shared: Vec<KvCache> = (0..16).map(|_| with(AdapterSet::fixed(&[(many[0].clone(), 1.0)]))).collect();
    let mut distinct: Vec<KvCache> = many.iter().map(|a| with(AdapterSet::fixed(&[(a.clone(), 1.0)]))).collect();
    // Interleaved rounds again, the ratio taken within each round.
    let (mut s1, mut s2) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        s1.push(decode(&mut runner, &mut shared, n / 2));
        s2.push(decode(&mut runner, &mut distinct, n / 2));
    }
    let (sh, di) = (med(&s1), med(&s2));
    let (rd, rd0, rd1) = ratio(&s2, &s1);
    println!("| 16 sequences, one shared LoRA r=16 | {sh:.1} | |");
    println!("| 16 sequences, 16 different LoRAs r=16 | {di:.1} | {rd:.3} ({rd0:.3}–{rd1:.3}) of shared |");

    // Changing one sequence's set while the other 15 keep theirs (between two decode steps).
    let sets: Vec<AdapterSet> = many.iter().map(|a| AdapterSet::fixed(&[(a.clone(), 1.0)])).collect();
    let mut ns = Vec::new();
    for i in 0..10_000 {
        let t = Instant::now();
        distinct[3].set_adapters(sets[i % 16].clone());
        ns.push(t.elapsed().as_nanos() as f64);
    }
    ns.sort_by(f64::total_cmp);
    println!("| change one sequence's adapter set | median {:.0} ns, p99 {:.0} ns | |", ns[ns.len() / 2], ns[ns.len() * 99 / 100]);
}
