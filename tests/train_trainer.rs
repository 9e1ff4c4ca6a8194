//! The training loop on a tiny F32 llama: every method lowers the loss; the mapped gradients of
//! LoLDU's `z` and LoRA-XS's `R` match finite differences; a run resumed from a checkpoint gives
//! the uninterrupted run's losses bit for bit; a mismatched resume, a non-finite loss and an
//! impossible memory budget are refused; the written adapter loads through the normal loader and
//! gives the training adapter's logits.
use graft::adapter::{graft_format, load, AdapterSet};
use graft::model::tiny::{write_tiny_llama, TinySpec};
use graft::model::{LinearKind, Logits, Model, Numerics, Runner, SeqInput};
use graft::train::backprop::{sequence_pass, PassOptions};
use graft::train::data::Sequence;
use graft::train::optim::AdamWConfig;
use graft::train::trainable::{Method, TrainSpec, Trainable};
use graft::train::trainer::{lora_sb_gradients, plan_memory, MemoryPlan, TrainConfig, Trainer, TrainNumerics::F32};
use std::path::PathBuf;
use std::sync::Arc;

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("graft-trainer-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn tiny(name: &str) -> Arc<Model> {
    let p = dir(name).join("tiny.gguf");
    write_tiny_llama(&p, TinySpec::default(), 11).unwrap();
    Arc::new(Model::load(&p).unwrap())
}

/// Sequences of a repeating byte pattern (learnable), 12 tokens each.
fn data(n: usize) -> Vec<Sequence> {
    (0..n)
        .map(|s| {
            let toks: Vec<u32> = (0..13).map(|i| ((s * 3 + i * 7) % 23 + 40) as u32).collect();
            Sequence { input: toks[..12].to_vec(), targets: toks[1..].iter().map(|&t| Some(t)).collect() }
        })
        .collect()
}

fn spec(method: Method) -> TrainSpec {
    let rank = if method == Method::Vera { 8 } else { 4 };
    TrainSpec { method, rank, alpha: method.default_alpha(rank), targets: LinearKind::ALL.to_vec(), seed: 3, vera_d_initial: 0.1, loldu_train_scale: false, sb_lr: 1e-4 }
}

fn cfg(steps: u64, lr: f32, threads: usize) -> TrainConfig {
    TrainConfig {
        batch: 3,
        accum: 2,
        steps,
        threads,
        sequences_at_once: 0,
        checkpoint_activations: false,
        optim: AdamWConfig { lr, total_steps: steps, warmup_steps: 1, min_lr_ratio: 0.1, weight_decay: 0.01, ..AdamWConfig::default() },
        seed: 5,
        allora_eta: None,
        numerics: F32,
    }
}

fn trainable(model: &Model, method: Method) -> Trainable {
    trainable_with(model, spec(method))
}

/// LoLDU with its scale trained too.
fn loldu_scaled() -> TrainSpec {
    TrainSpec { loldu_train_scale: true, ..spec(Method::Loldu) }
}

fn trainable_with(model: &Model, s: TrainSpec) -> Trainable {
    let method = s.method;
    if method == Method::LoraSb {
        let d = data(3);
        let g = lora_sb_gradients(model, &s.targets, &[&d], 2).unwrap();
        Trainable::init(model, s, Some((&g, 1e-2))).unwrap()
    } else {
        Trainable::init(model, s, None).unwrap()
    }
}

fn batch_loss(model: &Model, t: &Trainable, seqs: &[Sequence]) -> f64 {
    let mut g = t.zero_grads().unwrap();
    let (mut s, mut n) = (0f64, 0);
    for q in seqs {
        let r = sequence_pass(model, &t.adapter, q, &mut g, PassOptions::plain(1.0)).unwrap();
        s += r.loss_sum;
        n += r.n_targets;
    }
    s / n as f64
}

#[test]
fn every_method_lowers_the_loss() {
    let model = tiny("learn");
    for method in Method::ALL {
        let lr = 2e-2;
        let t = trainable(&model, method);
        let before = batch_loss(&model, &t, &data(8));
        let mut tr = Trainer::new(model.clone(), t, cfg(12, lr, 2), data(8), Vec::new()).unwrap();
        for _ in 0..12 {
            let r = tr.step().unwrap();
            assert!(r.loss.is_finite() && r.grad_norm > 0.0, "{method:?}: {r:?}");
        }
        let after = batch_loss(&model, &tr.trainable, &data(8));
        assert!(after < before - 0.02, "{method:?}: loss {before} -> {after}");
    }
}

#[test]
fn mapped_gradients_match_finite_differences() {
    let model = tiny("fd");
    let seqs = data(2);
    for (method, spec) in [(Method::Loldu, spec(Method::Loldu)), (Method::Loldu, loldu_scaled()), (Method::LoraXs, spec(Method::LoraXs))] {
        let mut t = trainable_with(&model, spec);
        // Move away from the initialisation, where LoLDU's ΔW is 0 and LoRA-XS's R is tiny.
        for (i, p) in t.params_mut().into_iter().enumerate() {
            for (j, v) in p.iter_mut().enumerate() {
                *v += 0.05 * (((i * 31 + j * 17) % 13) as f32 - 6.0) / 6.0;
            }
        }
        t.sync();
        let mut g = t.zero_grads().unwrap();
        for q in &seqs {
            sequence_pass(&model, &t.adapter, q, &mut g, PassOptions::plain(1.0)).unwrap();
        }
        let pg = t.param_grads(&g);
        let sizes = t.param_sizes();
        assert_eq!(pg.len(), sizes.len());
        let loss_sum = |t: &Trainable| batch_loss(&model, t, &seqs) * seqs.iter().map(|s| s.input.len()).sum::<usize>() as f64;
        let mut checked = 0;
        for (i, gi) in pg.iter().enumerate() {
            let j = (0..gi.len()).max_by(|&a, &b| gi[a].abs().total_cmp(&gi[b].abs())).unwrap();
            let h = 1e-2f32;
            let mut plus = t.clone();
            plus.params_mut()[i][j] += h;
            plus.sync();
            let mut minus = t.clone();
            minus.params_mut()[i][j] -= h;
            minus.sync();
            let fd = (loss_sum(&plus) - loss_sum(&minus)) / (2.0 * h as f64);
            let an = gi[j] as f64;
            assert!((fd - an).abs() <= 2e-3 + 3e-2 * an.abs().max(fd.abs()), "{method:?} tensor {i}[{j}]: gradient {an}, finite differences {fd}");
            checked += 1;
        }
        assert!(checked >= 10, "{method:?}: {checked} checks");
        let gmax = pg.iter().flatten().fold(0f32, |m, v| m.max(v.abs()));
        assert!(gmax > 0.01, "{method:?}: largest gradient {gmax}");
    }
}

#[test]
fn resume_gives_the_uninterrupted_losses() {
    let model = tiny("resume");
    for method in [Method::Vera, Method::Loldu, Method::Lora] {
        let straight: Vec<f64> = {
            let mut tr = Trainer::new(model.clone(), trainable(&model, method), cfg(7, 1e-2, 2), data(5), Vec::new()).unwrap();
            (0..7).map(|_| tr.step().unwrap().loss).collect()
        };
        let ck = dir("resume").join(format!("{}.ckpt", method.name()));
        let mut first = Trainer::new(model.clone(), trainable(&model, method), cfg(7, 1e-2, 2), data(5), Vec::new()).unwrap();
        let mut losses: Vec<f64> = (0..4).map(|_| first.step().unwrap().loss).collect();
        first.save_checkpoint(&ck).unwrap();
        drop(first);
        let mut second = Trainer::resume(model.clone(), spec(method), cfg(7, 1e-2, 2), data(5), Vec::new(), &ck).unwrap();
        assert_eq!(second.steps_done(), 4);
        losses.extend((0..3).map(|_| second.step().unwrap().loss));
        assert_eq!(losses, straight, "{method:?}: resumed losses differ");
        // A different run's settings are refused, naming the setting.
        let mut other = cfg(7, 1e-2, 2);
        other.batch = 2;
        let e = Trainer::resume(model.clone(), spec(method), other, data(5), Vec::new(), &ck).err().expect("batch mismatch refused").to_string();
        assert!(e.contains("batch") && e.contains(&ck.display().to_string()), "{e}");
        let e = Trainer::resume(model.clone(), spec(method), cfg(7, 1e-2, 2), data(6), Vec::new(), &ck).err().expect("data mismatch refused").to_string();
        assert!(e.contains("data_hash"), "{e}");
    }
}

#[test]
fn a_non_finite_loss_stops_and_keeps_the_state() {
    let model = tiny("nan");
    let mut t = trainable(&model, Method::Vera);
    for p in t.params_mut() {
        p.fill(3e38);
    }
    let mut tr = Trainer::new(model.clone(), t, cfg(3, 1e-2, 2), data(4), Vec::new()).unwrap();
    let before: Vec<Vec<f32>> = tr.trainable.params_mut().into_iter().map(|p| p.to_vec()).collect();
    let e = tr.step().expect_err("non-finite loss refused").to_string();
    assert!(e.contains("non-finite"), "{e}");
    assert_eq!(tr.steps_done(), 0);
    let after: Vec<Vec<f32>> = tr.trainable.params_mut().into_iter().map(|p| p.to_vec()).collect();
    assert_eq!(before, after);
}

#[test]
fn memory_budget_picks_checkpointing_or_refuses() {
    let model = tiny("mem");
    let s = spec(Method::Vera);
    assert_eq!(plan_memory(&model, &s, 64, 2, F32, None).unwrap(), MemoryPlan { checkpoint: false, threads: 2 });
    let e = plan_memory(&model, &s, 64, 2, F32, Some(1 << 10)).expect_err("1 KiB refused").to_string();
    assert!(e.contains("needs about") && e.contains("MiB"), "{e}");
    // Between the two estimates, checkpointing is chosen.
    let with = graft::train::trainer::memory_estimate(&model, &s, 512, 2, true, F32);
    let without = graft::train::trainer::memory_estimate(&model, &s, 512, 2, false, F32);
    assert!(with < without);
    assert_eq!(plan_memory(&model, &s, 512, 2, F32, Some((with + without) / 2)).unwrap(), MemoryPlan { checkpoint: true, threads: 2 });
    // Below two checkpointed sequences, one at a time.
    let one = graft::train::trainer::memory_estimate(&model, &s, 512, 1, true, F32);
    assert!(one < with);
    assert_eq!(plan_memory(&model, &s, 512, 2, F32, Some(one)).unwrap(), MemoryPlan { checkpoint: true, threads: 1 });
}

#[test]
fn the_written_adapter_loads_and_gives_the_same_logits() {
    let model = tiny("write");
    for (method, spec) in Method::ALL.into_iter().map(|m| (m, spec(m))).chain([(Method::Loldu, loldu_scaled())]) {
        let mut tr = Trainer::new(model.clone(), trainable_with(&model, spec), cfg(3, 2e-2, 2), data(6), Vec::new()).unwrap();
        for _ in 0..3 {
            tr.step().unwrap();
        }
        let path = dir("write").join(format!("{}.safetensors", method.name()));
        graft_format::write(&path, &tr.trainable.to_native(&path.display().to_string())).unwrap();
        let loaded = load::load(&path, &model).unwrap();
        assert_eq!(loaded.method, method.name());
        assert_eq!(loaded.trainable_params, tr.trainable.adapter.trainable_params, "{method:?}");
        let logits = |ad: graft::adapter::Adapter| {
            let mut runner = Runner::with_numerics(model.clone(), 1, Numerics::F32);
            let mut c = runner.new_cache();
            c.set_adapters(AdapterSet::fixed(&[(Arc::new(ad), 1.0)]));
            let toks = &data(1)[0].input;
            runner.forward(&mut [SeqInput { tokens: toks, cache: &mut c, logits: Logits::All }]).unwrap().to_vec()
        };
        let (a, b) = (logits(tr.trainable.adapter.clone()), logits(loaded));
        let d = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
        assert!(d < 1e-4, "{method:?}: logits differ by {d}");
    }
}

#[test]
fn allora_scales_the_lora_gradients_per_row() {
    let model = tiny("allora");
    let t = trainable(&model, Method::Lora);
    // Plain and ALLoRA runs from the same state: both learn, and their updates differ.
    let mut plain = Trainer::new(model.clone(), t.clone(), cfg(6, 2e-2, 2), data(6), Vec::new()).unwrap();
    let mut c = cfg(6, 2e-2, 2);
    c.allora_eta = Some(4.0);
    let mut allora = Trainer::new(model.clone(), t.clone(), c, data(6), Vec::new()).unwrap();
    let before = batch_loss(&model, &t, &data(6));
    for _ in 0..6 {
        plain.step().unwrap();
        allora.step().unwrap();
    }
    let (lp, la) = (batch_loss(&model, &plain.trainable, &data(6)), batch_loss(&model, &allora.trainable, &data(6)));
    assert!(la < before - 0.02 && lp < before - 0.02, "{before} -> plain {lp}, ALLoRA {la}");
    assert!((lp - la).abs() > 1e-6, "ALLoRA changed nothing");
    // Refused for other methods.
    let mut c = cfg(6, 2e-2, 2);
    c.allora_eta = Some(4.0);
    assert!(Trainer::new(model.clone(), trainable(&model, Method::Vera), c, data(6), Vec::new()).is_err());
}

/// With the 8-bit base products VeRA (r = 32, so its shared projections are packed too) and LoRA
/// learn as with f32, resume to the same losses, and a resume with other numerics is refused.
#[test]
fn int8_numerics_learn_and_resume_exactly() {
    use graft::train::trainer::TrainNumerics::Int8;
    let model = tiny("int8");
    for method in [Method::Vera, Method::Lora] {
        let s = TrainSpec { rank: if method == Method::Vera { 32 } else { 4 }, ..spec(method) };
        let c = TrainConfig { numerics: Int8, ..cfg(7, 2e-2, 2) };
        let before = batch_loss(&model, &trainable_with(&model, s.clone()), &data(8));
        let mut tr = Trainer::new(model.clone(), trainable_with(&model, s.clone()), c.clone(), data(8), Vec::new()).unwrap();
        let straight: Vec<f64> = (0..7).map(|_| tr.step().unwrap().loss).collect();
        let after = batch_loss(&model, &tr.trainable, &data(8));
        assert!(after < before - 0.02, "{method:?}: f32 loss {before} -> {after} after 7 int8 steps");
        let ck = dir("int8").join(format!("{}.ckpt", method.name()));
        let mut first = Trainer::new(model.clone(), trainable_with(&model, s.clone()), c.clone(), data(8), Vec::new()).unwrap();
        let mut losses: Vec<f64> = (0..3).map(|_| first.step().unwrap().loss).collect();
        first.save_checkpoint(&ck).unwrap();
        drop(first);
        let mut second = Trainer::resume(model.clone(), s.clone(), c.clone(), data(8), Vec::new(), &ck).unwrap();
        losses.extend((0..4).map(|_| second.step().unwrap().loss));
        assert_eq!(losses, straight, "{method:?}: resumed int8 losses differ");
        let e = Trainer::resume(model.clone(), s.clone(), cfg(7, 2e-2, 2), data(8), Vec::new(), &ck).err().expect("numerics mismatch refused").to_string();
        assert!(e.contains("numerics"), "{e}");
        // Threads beyond the batch's 3 sequences split the products' columns: the same losses.
        let run = |threads: usize| -> Vec<f64> {
            let c = TrainConfig { numerics: Int8, ..cfg(4, 2e-2, threads) };
            let mut tr = Trainer::new(model.clone(), trainable_with(&model, s.clone()), c, data(8), Vec::new()).unwrap();
            (0..4).map(|_| tr.step().unwrap().loss).collect()
        };
        assert_eq!(run(3), run(7), "{method:?}: 7 threads for 3 sequences");
    }
}
