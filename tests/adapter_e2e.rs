//! Adapters on the default model: the reference perplexity figures with `lora-r8-s7.gguf` (made
//! by scripts/make-test-adapters.sh), the same adapter through every format, and heterogeneous
//! batches equal to sequences run one by one.
mod common;
use graft::adapter::{load, AdapterSet, Registry};
use graft::model::generate::perplexity;
use graft::model::{Logits, Numerics, Runner, SeqInput};
use std::path::PathBuf;
use std::sync::Arc;

fn adapter(name: &str) -> PathBuf {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models").join(name);
    if !p.exists() {
        let st = std::process::Command::new("bash").arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/make-test-adapters.sh")).status().unwrap();
        assert!(st.success(), "scripts/make-test-adapters.sh failed");
    }
    p
}

fn ppl(numerics: Numerics, set: AdapterSet) -> f64 {
    let model = common::default_model();
    let toks = model.tokenizer.encode(&common::gpl3(), false, false);
    let mut r = Runner::with_numerics(model, 2, numerics);
    r.set_default_adapters(set);
    perplexity(&mut r, &toks, 512, |_, _, _| {}).unwrap().ppl
}

/// ../shared/reference/README.md: llama.cpp 27.7311, fp32 27.6754; the band they span, widened by 0.3%.
#[test]
fn lora_r8_s7_perplexity_in_the_reference_band() {
    let model = common::default_model();
    let ad = Arc::new(load::load(&adapter("lora-r8-s7.gguf"), &model).unwrap());
    let q8 = ppl(Numerics::Q8, AdapterSet::fixed(&[(ad.clone(), 1.0)]));
    let (lo, hi) = (27.6754 * 0.997, 27.7311 * 1.003);
    assert!(q8 > lo && q8 < hi, "q8 PPL {q8} outside [{lo}, {hi}]");
    let f32 = ppl(Numerics::F32, AdapterSet::fixed(&[(ad, 1.0)]));
    assert!((f32 - 27.6754).abs() < 0.0006, "f32 PPL {f32}, transformers' fp32 figure is 27.6754");
}

/// The adapter exported to graft's format and to PEFT (q/k rows un-permuted), then re-exported
/// as GGUF LoRA, gives the same logits as the original file.
#[test]
fn every_format_gives_the_same_logits() {
    let model = common::default_model();
    let src = adapter("lora-r8-s7.gguf");
    let dir = std::env::temp_dir().join(format!("graft-e2e-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let native = load::read_native(&src).unwrap();
    let mut g = native.clone();
    g.base_fingerprint = Some(model.fingerprint());
    graft::adapter::graft_format::write(&dir.join("a.safetensors"), &g).unwrap();
    let hf = native.with_qk_rows("hf", model.config.n_head, model.config.n_head_kv).unwrap();
    graft::adapter::peft::write(&dir.join("peft"), &hf, None).unwrap();
    let from_peft = load::load(&dir.join("peft"), &model).unwrap();
    graft::adapter::gguf_lora::write(&dir.join("b.gguf"), &graft::adapter::native::fold_to_lora(&from_peft).unwrap()).unwrap();
    let toks = model.tokenizer.encode("The capital of France is", false, false);
    let reg = Registry::new(model.clone());
    let mut outs = Vec::new();
    for (i, p) in [src.clone(), dir.join("a.safetensors"), dir.join("peft"), dir.join("b.gguf")].iter().enumerate() {
        reg.load(&i.to_string(), p, 1.0).unwrap();
        let mut r = Runner::with_numerics(model.clone(), 2, Numerics::F32);
        let mut c = r.new_cache();
        c.set_adapters(reg.set(&[(&i.to_string(), 1.0)]).unwrap());
        outs.push(r.forward(&mut [SeqInput { tokens: &toks, cache: &mut c, logits: Logits::All }]).unwrap().to_vec());
    }
    for o in &outs[1..] {
        let d = o.iter().zip(&outs[0]).fold(0f32, |m, (a, b)| m.max((a - b).abs()));
        assert!(d < 1e-4, "formats disagree by {d}");
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// One decode step over sequences with different adapters (and none) equals each run alone.
#[test]
fn heterogeneous_batch_equals_single_sequences() {
    let model = common::default_model();
    let reg = Registry::new(model.clone());
    reg.load("r8", &adapter("lora-r8-s7.gguf"), 1.0).unwrap();
    reg.load("r16", &adapter("lora-r16-s1.gguf"), 1.0).unwrap();
    let sets = [reg.set(&[("r8", 1.0)]).unwrap(), AdapterSet::none(), reg.set(&[("r16", 0.5), ("r8", -1.0)]).unwrap(), reg.set(&[("r8", 1.0)]).unwrap()];
    let prompts = ["Hello there", "The capital of France is", "Once upon a time", "1 2 3 4"];
    let mut r = Runner::with_numerics(model.clone(), 2, Numerics::F32);
    let single: Vec<Vec<f32>> = prompts
        .iter()
        .zip(&sets)
        .map(|(p, s)| {
            let mut c = r.new_cache();
            c.set_adapters(s.clone());
            let t = model.tokenizer.encode(p, false, false);
            r.forward(&mut [SeqInput { tokens: &t, cache: &mut c, logits: Logits::None }]).unwrap();
            r.forward(&mut [SeqInput { tokens: &[42], cache: &mut c, logits: Logits::Last }]).unwrap().to_vec()
        })
        .collect();
    let mut caches: Vec<_> = sets.iter().map(|s| {
        let mut c = r.new_cache();
        c.set_adapters(s.clone());
        c
    }).collect();
    let toks: Vec<Vec<u32>> = prompts.iter().map(|p| model.tokenizer.encode(p, false, false)).collect();
    {
        let mut seqs: Vec<SeqInput> = toks.iter().zip(caches.iter_mut()).map(|(t, c)| SeqInput { tokens: t, cache: c, logits: Logits::None }).collect();
        r.forward(&mut seqs).unwrap();
    }
    let mut seqs: Vec<SeqInput> = caches.iter_mut().map(|c| SeqInput { tokens: &[42], cache: c, logits: Logits::Last }).collect();
    let batched = r.forward(&mut seqs).unwrap().to_vec();
    let nv = model.config.n_vocab;
    for (i, s) in single.iter().enumerate() {
        let d = s.iter().zip(&batched[i * nv..(i + 1) * nv]).fold(0f32, |m, (a, b)| m.max((a - b).abs()));
        assert!(d < 1e-3, "sequence {i}: batched logits differ from the single run by {d}");
    }
    assert!(single[0] != single[1], "adapters must change the logits");
}
