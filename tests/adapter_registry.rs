//! The adapter registry: bad files are refused with errors naming the file and tensor while the
//! loaded adapters keep working; many threads generate while another loads, swaps, rescales and
//! unloads adapters, and every sequence's tokens equal a single-threaded run with its schedule.
mod adapters_common;
use adapters_common::random_native;
use graft::adapter::{graft_format, gguf_lora, native, AdapterSet, Registry};
use graft::model::tiny::{write_tiny_llama, TinySpec};
use graft::model::{Logits, Model, Numerics, Runner, SeqInput};
use std::path::{Path, PathBuf};
use std::sync::Arc;

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("graft-test-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn tiny(dir: &Path, spec: TinySpec, seed: u64) -> Arc<Model> {
    let p = dir.join(format!("tiny{seed}-{}.gguf", spec.n_ff));
    write_tiny_llama(&p, spec, seed).unwrap();
    Arc::new(Model::load(&p).unwrap())
}

/// Greedy tokens of one sequence whose adapter set is `schedule[i % len]` at step i.
fn greedy(model: &Arc<Model>, schedule: &[AdapterSet], n: usize) -> Vec<u32> {
    let mut r = Runner::with_numerics(model.clone(), 1, Numerics::Q8);
    let mut c = r.new_cache();
    let mut tok = 7u32;
    let mut out = Vec::new();
    for i in 0..n {
        c.set_adapters(schedule[i % schedule.len()].clone());
        let l = r.forward(&mut [SeqInput { tokens: &[tok], cache: &mut c, logits: Logits::Last }]).unwrap();
        tok = l.iter().enumerate().fold((0, f32::MIN), |b, (i, &v)| if v > b.1 { (i, v) } else { b }).0 as u32;
        out.push(tok);
    }
    out
}

/// Load/rescale/swap/unload cycles of the churn test: 1000, or `GRAFT_CHURN_CYCLES` (the leak
/// check under valgrind runs fewer: it is about 50 times slower).
fn churn_cycles() -> usize {
    std::env::var("GRAFT_CHURN_CYCLES").ok().and_then(|v| v.parse().ok()).unwrap_or(1000)
}

fn err_of(r: graft::Result<impl std::fmt::Debug>) -> String {
    r.expect_err("must be refused").to_string()
}

#[test]
fn bad_adapters_are_refused_and_nothing_changes() {
    let dir = tmp("refuse");
    let model = tiny(&dir, TinySpec::default(), 1);
    let reg = Registry::new(model.clone());
    let good = dir.join("good.safetensors");
    let mut n = random_native(&model, "lora", 4, 1, false);
    n.base_fingerprint = Some(model.fingerprint());
    graft_format::write(&good, &n).unwrap();
    reg.load("good", &good, 1.0).unwrap();
    let set = reg.set(&[("good", 1.0)]).unwrap();
    let before = greedy(&model, std::slice::from_ref(&set), 6);

    // Shapes of another base (wider feed-forward).
    let other = tiny(&dir, TinySpec { n_ff: 128, ..TinySpec::default() }, 2);
    let p = dir.join("other.safetensors");
    graft_format::write(&p, &random_native(&other, "lora", 4, 2, false)).unwrap();
    let e = err_of(reg.load("other", &p, 1.0));
    assert!(e.contains("other.safetensors") && e.contains("ffn_") && e.contains("shape"), "{e}");

    // Fingerprint of another base.
    let mut n2 = random_native(&model, "lora", 4, 3, false);
    n2.base_fingerprint = Some(other.fingerprint());
    let p = dir.join("fp.safetensors");
    graft_format::write(&p, &n2).unwrap();
    let e = err_of(reg.load("fp", &p, 1.0));
    assert!(e.contains("fp.safetensors") && e.contains("base_fingerprint"), "{e}");

    // Missing tensor.
    let mut n3 = random_native(&model, "lora", 4, 4, false);
    n3.tensors.remove("blk.1.ffn_up.lora_b");
    let p = dir.join("missing.safetensors");
    graft_format::write(&p, &n3).unwrap();
    let e = err_of(reg.load("missing", &p, 1.0));
    assert!(e.contains("missing.safetensors") && e.contains("blk.1.ffn_up.lora_b"), "{e}");

    // Non-finite value.
    let mut n4 = random_native(&model, "vera", 8, 5, true);
    n4.tensors.get_mut("blk.0.attn_v.vera_lambda_b").unwrap().1[3] = f32::NAN;
    let p = dir.join("nan.safetensors");
    graft_format::write(&p, &n4).unwrap();
    let e = err_of(reg.load("nan", &p, 1.0));
    assert!(e.contains("nan.safetensors") && e.contains("blk.0.attn_v.vera_lambda_b") && e.contains("non-finite"), "{e}");

    // Truncated files, in both formats.
    let p = dir.join("trunc.safetensors");
    let bytes = std::fs::read(&good).unwrap();
    std::fs::write(&p, &bytes[..bytes.len() - 100]).unwrap();
    let e = err_of(reg.load("trunc", &p, 1.0));
    assert!(e.contains("trunc.safetensors"), "{e}");
    let ad = n.build("g", &model).unwrap();
    let g = dir.join("lora.gguf");
    gguf_lora::write(&g, &native::fold_to_lora(&ad).unwrap()).unwrap();
    reg.load("gguf", &g, 1.0).unwrap();
    reg.unload("gguf").unwrap();
    let bytes = std::fs::read(&g).unwrap();
    let p = dir.join("trunc.gguf");
    std::fs::write(&p, &bytes[..bytes.len() / 2]).unwrap();
    let e = err_of(reg.load("trunc2", &p, 1.0));
    assert!(e.contains("trunc.gguf"), "{e}");

    // Malformed PEFT configs.
    let pd = dir.join("peft");
    std::fs::create_dir_all(&pd).unwrap();
    graft::adapter::peft::write(&pd, &n.with_qk_rows("hf", 4, 2).unwrap(), None).unwrap();
    reg.load("peft", &pd, 1.0).unwrap();
    reg.unload("peft").unwrap();
    let cfg = std::fs::read_to_string(pd.join("adapter_config.json")).unwrap();
    std::fs::write(pd.join("adapter_config.json"), &cfg[..cfg.len() / 2]).unwrap();
    let e = err_of(reg.load("peft2", &pd, 1.0));
    assert!(e.contains("adapter_config.json"), "{e}");
    std::fs::write(pd.join("adapter_config.json"), cfg.replace("\"lora_alpha\"", "\"lora_alfa\"")).unwrap();
    let e = err_of(reg.load("peft3", &pd, 1.0));
    assert!(e.contains("adapter_config.json") && e.contains("lora_alpha"), "{e}");

    // Duplicate name, unknown names.
    assert!(reg.load("good", &good, 1.0).is_err());
    assert!(reg.unload("nope").is_err());
    assert!(reg.set_scale("nope", 1.0).is_err());
    assert!(reg.set(&[("nope", 1.0)]).is_err());

    // Nothing changed.
    let names: Vec<String> = reg.list().into_iter().map(|l| l.name).collect();
    assert_eq!(names, vec!["good".to_string()]);
    assert_eq!(greedy(&model, &[set], 6), before);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn unloading_an_adapter_in_use_is_safe_and_scale_changes_apply_next_token() {
    let dir = tmp("inuse");
    let model = tiny(&dir, TinySpec::default(), 1);
    let reg = Registry::new(model.clone());
    let p = dir.join("a.safetensors");
    graft_format::write(&p, &random_native(&model, "lora", 4, 9, false)).unwrap();
    reg.load("a", &p, 1.0).unwrap();
    let set = reg.set(&[("a", 1.0)]).unwrap();
    let expect = greedy(&model, std::slice::from_ref(&set), 5);
    reg.unload("a").unwrap();
    assert!(reg.list().is_empty());
    assert_eq!(greedy(&model, std::slice::from_ref(&set), 5), expect, "a set keeps its adapter alive after unload");
    // A registry scale of 0 turns the adapter off for every user at once.
    reg.load("b", &p, 1.0).unwrap();
    let set_b = reg.set(&[("b", 1.0)]).unwrap();
    reg.set_scale("b", 0.0).unwrap();
    assert_eq!(greedy(&model, &[set_b], 5), greedy(&model, &[AdapterSet::none()], 5));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn concurrent_generation_while_adapters_churn() {
    let dir = tmp("churn");
    let model = tiny(&dir, TinySpec::default(), 1);
    let reg = Arc::new(Registry::new(model.clone()));
    let methods = [("lora", 4usize, false), ("vera", 16, true), ("dora", 3, true), ("rslora", 8, false)];
    let mut paths = Vec::new();
    for (i, (m, r, hf)) in methods.iter().enumerate() {
        let p = dir.join(format!("{m}.safetensors"));
        graft_format::write(&p, &random_native(&model, m, *r, 20 + i as u64, *hf)).unwrap();
        reg.load(m, &p, 1.0).unwrap();
        paths.push(p);
    }
    // Each generator's schedule: a different adapter set at each step.
    let schedules: Vec<Vec<AdapterSet>> = vec![
        vec![reg.set(&[("lora", 1.0)]).unwrap(), reg.set(&[("vera", 0.5)]).unwrap(), AdapterSet::none()],
        vec![reg.set(&[("dora", 1.0), ("lora", -0.5)]).unwrap(), reg.set(&[("rslora", 2.0)]).unwrap()],
        vec![reg.set(&[("vera", 1.0), ("rslora", 0.3)]).unwrap()],
    ];
    let n = 40;
    let expected: Vec<Vec<u32>> = schedules.iter().map(|s| greedy(&model, s, n)).collect();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let admin = {
        let reg = reg.clone();
        let paths = paths.clone();
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut ops = 0;
            for i in 0..churn_cycles() {
                let name = format!("tmp{i}");
                let p = &paths[i % paths.len()];
                reg.load(&name, p, 1.0).unwrap();
                reg.set_scale(&name, (i % 7) as f32 * 0.25).unwrap();
                let _swap = reg.set(&[(name.as_str(), 1.0)]).unwrap();
                reg.unload(&name).unwrap();
                ops += 4;
                // The generators' own adapters leave and come back too: their sets keep them alive.
                if i % 10 == 0 {
                    let m = methods[i / 10 % methods.len()].0;
                    let e = reg.get(m).unwrap();
                    reg.unload(m).unwrap();
                    reg.insert(m, e.adapter.clone(), 1.0).unwrap();
                    ops += 2;
                }
            }
            stop.store(true, std::sync::atomic::Ordering::Release);
            ops
        })
    };
    let gens: Vec<_> = schedules
        .iter()
        .cloned()
        .map(|s| {
            let model = model.clone();
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut runs = Vec::new();
                loop {
                    runs.push(greedy(&model, &s, n));
                    if stop.load(std::sync::atomic::Ordering::Acquire) {
                        return runs;
                    }
                }
            })
        })
        .collect();
    let ops = admin.join().unwrap();
    assert!(ops >= 4 * churn_cycles());
    for (g, exp) in gens.into_iter().zip(&expected) {
        for run in g.join().unwrap() {
            assert_eq!(&run, exp);
        }
    }
    assert_eq!(reg.list().len(), methods.len());
    std::fs::remove_dir_all(&dir).ok();
}

/// Greedy tokens of one sequence with a fixed adapter set under `nm`.
fn greedy_with(model: &Arc<Model>, set: &AdapterSet, nm: Numerics, n: usize) -> Vec<u32> {
    let mut r = Runner::with_numerics(model.clone(), 1, nm);
    let mut c = r.new_cache();
    c.set_adapters(set.clone());
    let mut tok = 7u32;
    let mut out = Vec::new();
    for _ in 0..n {
        let l = r.forward(&mut [SeqInput { tokens: &[tok], cache: &mut c, logits: Logits::Last }]).unwrap();
        tok = l.iter().enumerate().fold((0, f32::MIN), |b, (i, &v)| if v > b.1 { (i, v) } else { b }).0 as u32;
        out.push(tok);
    }
    out
}

/// A GGUF LoRA loads without copying its f32 factors (`A` a view of the map, `Bᵀ` made on first
/// read) into the same adapter as reading its tensors and building them: same factors, Q8_0
/// copies, scales and parameter count, and the same tokens under both numerics; decoding under
/// the 8-bit numerics never makes `Bᵀ`. Its values are checked all the same.
#[test]
fn gguf_lora_loads_from_the_map_as_from_copies() {
    use graft::adapter::{load, Term};
    let dir = tmp("mapped");
    let model = tiny(&dir, TinySpec::default(), 11);
    let ad = random_native(&model, "lora", 8, 12, false).build("g", &model).unwrap();
    let g = dir.join("lora.gguf");
    let layers = native::fold_to_lora(&ad).unwrap();
    gguf_lora::write(&g, &layers).unwrap();

    let mapped = Arc::new(load::load(&g, &model).unwrap());
    let mut owned = gguf_lora::read(&g).unwrap();
    for v in owned.tensors.values_mut() {
        v.1 = v.1.to_vec().into();
    }
    let copied = Arc::new(owned.into_adapter("lora", &model).unwrap());
    let mut terms = 0;
    for (l, blk) in mapped.layers.iter().enumerate() {
        for (k, t) in blk.iter().enumerate() {
            let (Some(Term::LowRank(m)), Some(Term::LowRank(c))) = (t, &copied.layers[l][k]) else {
                assert!(t.is_none() && copied.layers[l][k].is_none(), "block {l} projection {k}");
                continue;
            };
            assert!(!m.a.is_owned() && !m.bt.is_owned(), "factors are views: {:?} {:?}", m.a, m.bt);
            assert!(c.a.is_owned() && c.bt.is_owned());
            assert!(format!("{:?}", m.bt).contains("to transpose"), "{:?}", m.bt);
            assert_eq!((m.r, m.n_in, m.n_out, m.scale.to_bits()), (c.r, c.n_in, c.n_out, c.scale.to_bits()));
            assert_eq!(mapped.q8[l][k], copied.q8[l][k], "Q8_0 copies of block {l} projection {k}");
            assert!(mapped.q8[l][k].is_some());
            terms += 1;
        }
    }
    assert_eq!(terms, layers.len());
    assert_eq!((mapped.trainable_params, &mapped.method, &mapped.hyper), (copied.trainable_params, &copied.method, &copied.hyper));

    let set = |a: &Arc<graft::adapter::Adapter>| AdapterSet::fixed(&[(a.clone(), 0.8)]);
    let q8 = greedy_with(&model, &set(&mapped), Numerics::Q8, 6);
    assert_eq!(q8, greedy_with(&model, &set(&copied), Numerics::Q8, 6));
    let Some(Term::LowRank(m)) = &mapped.layers[layers[0].0][layers[0].1 as usize] else { unreachable!() };
    assert!(format!("{:?}", m.bt).contains("to transpose"), "8-bit decode made Bᵀ: {:?}", m.bt);
    assert_eq!(greedy_with(&model, &set(&mapped), Numerics::F32, 6), greedy_with(&model, &set(&copied), Numerics::F32, 6));
    for (l, blk) in mapped.layers.iter().enumerate() {
        for (k, t) in blk.iter().enumerate() {
            if let (Some(Term::LowRank(m)), Some(Term::LowRank(c))) = (t, &copied.layers[l][k]) {
                assert_eq!((&m.a[..], &m.bt[..]), (&c.a[..], &c.bt[..]), "f32 factors of block {l} projection {k}");
            }
        }
    }

    // A non-finite value is refused with the tensor named; the other base's shapes too.
    let mut bad = layers.clone();
    bad[1].2.b[5] = f32::INFINITY;
    let p = dir.join("inf.gguf");
    gguf_lora::write(&p, &bad).unwrap();
    let name = format!("blk.{}.{}.lora_b", bad[1].0, bad[1].1.gguf_name());
    let e = err_of(load::load(&p, &model));
    assert!(e.contains("inf.gguf") && e.contains(&name) && e.contains("non-finite"), "{e}");
    let other = tiny(&dir, TinySpec { n_ff: 128, ..TinySpec::default() }, 13);
    let e = err_of(load::load(&g, &other));
    assert!(e.contains("lora.gguf") && e.contains("ffn_") && e.contains("shape"), "{e}");
    std::fs::remove_dir_all(&dir).ok();
}

/// graft's safetensors files and PEFT directories with f32 LoRA factors load with the factors left
/// in the file's map, except where PEFT's q/k rows must be permuted; the adapter equals the one
/// built from owned copies of the same tensors (factors, Q8_0 copies, tokens under both numerics).
#[test]
fn safetensors_lora_loads_from_the_map_as_from_copies() {
    use graft::adapter::{load, peft, Term};
    let dir = tmp("mapped-st");
    let model = tiny(&dir, TinySpec::default(), 21);
    let n = random_native(&model, "lora", 8, 22, false);
    let gp = dir.join("lora.safetensors");
    graft_format::write(&gp, &n).unwrap();
    let pd = dir.join("peft");
    std::fs::create_dir_all(&pd).unwrap();
    peft::write(&pd, &n.with_qk_rows("hf", 4, 2).unwrap(), None).unwrap();
    for (path, permuted) in [(gp, false), (pd, true)] {
        let mapped = Arc::new(load::load(&path, &model).unwrap());
        let mut owned = load::read_native(&path).unwrap();
        for v in owned.tensors.values_mut() {
            v.1 = v.1.to_vec().into();
        }
        let copied = Arc::new(owned.into_adapter("lora", &model).unwrap());
        let mut views = 0;
        for (l, blk) in mapped.layers.iter().enumerate() {
            for (k, t) in blk.iter().enumerate() {
                let (Some(Term::LowRank(m)), Some(Term::LowRank(c))) = (t, &copied.layers[l][k]) else { panic!("block {l} projection {k}") };
                assert!(c.a.is_owned() && c.bt.is_owned());
                let qk = k == graft::model::LinearKind::Q as usize || k == graft::model::LinearKind::K as usize;
                if !(permuted && qk) {
                    assert!(!m.a.is_owned() && format!("{:?}", m.bt).contains("to transpose"), "{}: {:?} {:?}", path.display(), m.a, m.bt);
                    views += 1;
                }
                assert_eq!(mapped.q8[l][k], copied.q8[l][k], "{}: Q8_0 copies of block {l} projection {k}", path.display());
                assert_eq!((&m.a[..], &m.bt[..], m.scale.to_bits()), (&c.a[..], &c.bt[..], c.scale.to_bits()));
            }
        }
        assert!(views >= 10, "{views}");
        let set = |a: &Arc<graft::adapter::Adapter>| AdapterSet::fixed(&[(a.clone(), 1.0)]);
        for nm in [Numerics::Q8, Numerics::F32] {
            assert_eq!(greedy_with(&model, &set(&mapped), nm, 5), greedy_with(&model, &set(&copied), nm, 5), "{}", path.display());
        }
    }
    std::fs::remove_dir_all(&dir).ok();
}
