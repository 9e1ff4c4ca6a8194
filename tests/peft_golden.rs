//! PEFT's own files (made by scripts/make_peft_fixtures.py with torch + PEFT, checked in under
//! tests/data/peft): graft loads LoRA, rsLoRA, DoRA, VeRA, MiSS, LoKr and RandLoRA adapters onto the same tiny llama
//! (converted to GGUF with llama.cpp's q/k row permutation) and reproduces PEFT's logits; graft's
//! PEFT writer gives back every tensor bit for bit.
use graft::adapter::{peft, Registry};
use graft::format::safetensors::SafeTensorsFile;
use graft::model::{Logits, Model, Numerics, Runner, SeqInput};
use std::path::{Path, PathBuf};
use std::sync::Arc;

fn data() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/peft")
}

fn read_f32(p: &Path) -> Vec<f32> {
    std::fs::read(p).unwrap().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
}

fn tokens() -> Vec<u32> {
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(data().join("tokens.json")).unwrap()).unwrap();
    v["tokens"].as_array().unwrap().iter().map(|t| t.as_u64().unwrap() as u32).collect()
}

fn logits(model: &Arc<Model>, set: graft::adapter::AdapterSet) -> Vec<f32> {
    let mut r = Runner::with_numerics(model.clone(), 2, Numerics::F32);
    let mut c = r.new_cache();
    c.set_adapters(set);
    r.forward(&mut [SeqInput { tokens: &tokens(), cache: &mut c, logits: Logits::All }]).unwrap().to_vec()
}

/// Largest difference relative to the largest logit.
fn rel_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    let mag = b.iter().fold(0f32, |m, v| m.max(v.abs()));
    a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs())) / mag
}

/// fp32 against fp32 with different summation orders.
const TOL: f32 = 2e-5;

#[test]
fn base_matches_transformers() {
    let model = Arc::new(Model::load(data().join("tiny-llama.gguf")).unwrap());
    let d = rel_diff(&logits(&model, Default::default()), &read_f32(&data().join("base.logits.f32")));
    assert!(d < TOL, "base logits differ from transformers' by {d}");
}

#[test]
fn peft_adapters_give_peft_logits() {
    let model = Arc::new(Model::load(data().join("tiny-llama.gguf")).unwrap());
    let base = read_f32(&data().join("base.logits.f32"));
    let reg = Registry::new(model.clone());
    for m in ["lora", "rslora", "dora", "vera", "vera_noproj", "miss", "lokr", "randlora"] {
        let dir = data().join(m);
        let ad = reg.load(m, &dir, 1.0).unwrap();
        let expect_method = m.trim_end_matches("_noproj");
        assert_eq!(ad.method, expect_method);
        let want = read_f32(&dir.join("logits.f32"));
        assert!(rel_diff(&base, &want) > 100.0 * TOL, "{m}: PEFT's adapter must change the logits");
        let got = logits(&model, reg.set(&[(m, 1.0)]).unwrap());
        let d = rel_diff(&got, &want);
        assert!(d < TOL, "{m}: graft's logits differ from PEFT's by {d} (relative)");
    }
}

#[test]
fn peft_writer_round_trips_bit_exactly() {
    for m in ["lora", "rslora", "dora", "vera", "miss", "lokr", "randlora"] {
        let src = data().join(m);
        let native = peft::read(&src).unwrap();
        let out = std::env::temp_dir().join(format!("graft-peft-rt-{}-{m}", std::process::id()));
        peft::write(&out, &native, None).unwrap();
        let a = SafeTensorsFile::open(src.join("adapter_model.safetensors")).unwrap();
        let b = SafeTensorsFile::open(out.join("adapter_model.safetensors")).unwrap();
        let names = |f: &SafeTensorsFile| f.tensors().iter().map(|t| (t.name.clone(), t.shape.clone(), t.dtype.clone())).collect::<Vec<_>>();
        assert_eq!(names(&a), names(&b), "{m}: tensor table");
        for t in a.tensors() {
            assert_eq!(a.tensor_data(&t.name).unwrap(), b.tensor_data(&t.name).unwrap(), "{m}: {}", t.name);
        }
        let ca: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(src.join("adapter_config.json")).unwrap()).unwrap();
        let cb: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("adapter_config.json")).unwrap()).unwrap();
        for k in ["peft_type", "r", "lora_alpha", "alpha", "randlora_alpha", "decompose_factor", "use_rslora", "use_dora", "projection_prng_key", "fan_in_fan_out", "bias"] {
            assert_eq!(ca.get(k).filter(|v| !v.is_null()), cb.get(k).filter(|v| !v.is_null()), "{m}: config key {k}");
        }
        let set = |v: &serde_json::Value| {
            let mut s: Vec<String> = v["target_modules"].as_array().unwrap().iter().map(|x| x.as_str().unwrap().to_string()).collect();
            s.sort();
            s
        };
        assert_eq!(set(&ca), set(&cb), "{m}: target modules");
        std::fs::remove_dir_all(&out).ok();
    }
}

/// VeRA's projections regenerated from `projection_prng_key` equal the ones PEFT saved, bit for bit
/// (torch's CPU generator, ADAPTERS.md §3.1).
#[test]
fn vera_projections_regenerate_bit_exactly() {
    let native = peft::read(&data().join("vera")).unwrap();
    let key: u64 = native.hyper["projection_prng_key"].parse().unwrap();
    let (sa, a) = &native.tensors["shared.vera_A"];
    let (sb, b) = &native.tensors["shared.vera_B"];
    let g = graft::adapter::VeraShared::generate(sa[0], sa[1], sb[0], key);
    assert!(g.a.iter().zip(a.iter()).all(|(x, y)| x.to_bits() == y.to_bits()), "vera_A differs");
    assert_eq!(&g.b(), b, "vera_B differs");
}
