//! PEFT's own files (made by scripts/make_peft_fixtures.py with torch + PEFT, checked in under
//! tests/data/peft): graft loads LoRA, rsLoRA, DoRA, VeRA, MiSS, LoKr and RandLoRA adapters onto the same tiny llama
//! (converted to GGUF with llama.cpp's q/k row permutation) and reproduces PEFT's logits; graft's
//! PEFT writer gives back every tensor bit for bit. The variants: per-module rank and alpha
//! (`rank_pattern` / `alpha_pattern`, with and without rsLoRA), a bias on lora_B (`lora_bias`), LoKr
//! with `decompose_both`, VeRA and RandLoRA saved without their projections.
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

/// RandLoRA with regenerated bases (`randlora_noproj`; `randlora` keeps [`TOL`]), loosened: its term is full rank (r·⌈min_dim/r⌉ = 96 here) over bases of unit std, and
/// the factorised product `UB·(UA·x)` loses more to fp32 rounding than a LoRA does. Measured against
/// PEFT's float64 forward: PEFT's own fp32 logits differ by 2.3e-5 on `randlora`, graft's by 3.9e-5
/// on `randlora_noproj` (whose regenerated bases are bit-exact, and whose merged weights agree with
/// PEFT's to 7e-6). LoRA-family fixtures stay below 4e-6.
const TOL_RANDLORA: f32 = 1e-4;

#[test]
fn base_matches_transformers() {
    let model = Arc::new(Model::load(data().join("tiny-llama.gguf")).unwrap());
    let d = rel_diff(&logits(&model, Default::default()), &read_f32(&data().join("base.logits.f32")));
    assert!(d < TOL, "base logits differ from transformers' by {d}");
}

/// Every PEFT fixture directory and the method graft reads it as.
const FIXTURES: [(&str, &str); 17] = [
    ("lora", "lora"),
    ("rslora", "rslora"),
    ("dora", "dora"),
    ("vera", "vera"),
    ("vera_noproj", "vera"),
    ("miss", "miss"),
    ("lokr", "lokr"),
    ("randlora", "randlora"),
    ("lora_pattern", "lora"),
    ("rslora_pattern", "rslora"),
    ("lora_bias", "lora"),
    ("lokr_both", "lokr"),
    ("randlora_noproj", "randlora"),
    ("miss_mini", "miss"),
    ("randlora_sparse", "randlora"),
    ("randlora_vsparse_noproj", "randlora"),
    ("miss_bat", "miss"),
];

#[test]
fn peft_adapters_give_peft_logits() {
    let model = Arc::new(Model::load(data().join("tiny-llama.gguf")).unwrap());
    let base = read_f32(&data().join("base.logits.f32"));
    let reg = Registry::new(model.clone());
    for (m, expect_method) in FIXTURES {
        let dir = data().join(m);
        let ad = reg.load(m, &dir, 1.0).unwrap();
        assert_eq!(ad.method, expect_method);
        let want = read_f32(&dir.join("logits.f32"));
        assert!(rel_diff(&base, &want) > 100.0 * TOL, "{m}: PEFT's adapter must change the logits");
        let got = logits(&model, reg.set(&[(m, 1.0)]).unwrap());
        let d = rel_diff(&got, &want);
        let tol = if m == "randlora_noproj" { TOL_RANDLORA } else { TOL };
        assert!(d < tol, "{m}: graft's logits differ from PEFT's by {d} (relative, tolerance {tol})");
    }
}

#[test]
fn peft_writer_round_trips_bit_exactly() {
    for (m, _) in FIXTURES {
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
        let keys = ["peft_type", "r", "lora_alpha", "alpha", "randlora_alpha", "decompose_factor", "decompose_both", "use_rslora", "use_dora", "lora_bias"];
        // MiSS: the variant, and mini_r where it means something (PEFT writes 1 for the others).
        let miss_keys: &[&str] = match (m.starts_with("miss"), ca["init_weights"].as_str()) {
            (true, Some("mini")) => &["init_weights", "mini_r"],
            (true, _) => &["init_weights"],
            _ => &[],
        };
        for &k in keys.iter().chain(&["projection_prng_key", "save_projection", "fan_in_fan_out", "bias"]).chain(miss_keys) {
            assert_eq!(ca.get(k).filter(|v| !v.is_null()), cb.get(k).filter(|v| !v.is_null()), "{m}: config key {k}");
        }
        let set = |v: &serde_json::Value| {
            let mut s: Vec<String> = v["target_modules"].as_array().unwrap().iter().map(|x| x.as_str().unwrap().to_string()).collect();
            s.sort();
            s
        };
        assert_eq!(set(&ca), set(&cb), "{m}: target modules");
        // The patterns are written per module (full names), so compare what they resolve to.
        let back = peft::read(&out).unwrap();
        assert_eq!((&back.method, &back.hyper, &back.tensors), (&native.method, &native.hyper, &native.tensors), "{m}: read back");
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
    assert_eq!(&g.b()[..], &b[..], "vera_B differs");
}

/// RandLoRA's bases regenerated from `projection_prng_key` (bf16, ADAPTERS.md §3.1) equal the ones
/// PEFT saved, bit for bit.
#[test]
fn randlora_projections_regenerate_bit_exactly() {
    use graft::adapter::methods::randlora::RandLoraShared;
    use graft::adapter::rng::Rounding;
    let native = peft::read(&data().join("randlora")).unwrap();
    let key: u64 = native.hyper["projection_prng_key"].parse().unwrap();
    let saved = RandLoraShared::load(&native.tensors, "randlora").unwrap();
    let g = RandLoraShared::generate(saved.r, saved.max_dim, saved.min_dim, key as u32, Rounding::Bf16);
    assert_eq!((g.r, g.max_dim, g.min_dim, g.nb), (saved.r, saved.max_dim, saved.min_dim, saved.nb));
    assert!(g.a.iter().zip(&saved.a).all(|(x, y)| x.to_bits() == y.to_bits()), "randlora_A differs");
    assert!(g.b.iter().zip(&saved.b).all(|(x, y)| x.to_bits() == y.to_bits()), "randlora_B differs");
}

/// RandLoRA's sparse bases (`sparse=True`, fp32 ±1/0 over the std) regenerated from
/// `projection_prng_key` equal the ones PEFT saved, bit for bit; the file says which bases it has.
#[test]
fn randlora_sparse_projections_regenerate_bit_exactly() {
    use graft::adapter::methods::randlora::RandLoraShared;
    let native = peft::read(&data().join("randlora_sparse")).unwrap();
    assert_eq!(native.hyper["randlora_bases"], "sparse");
    let key: u64 = native.hyper["projection_prng_key"].parse().unwrap();
    let saved = RandLoraShared::load(&native.tensors, "randlora_sparse").unwrap();
    let g = RandLoraShared::generate_sparse(saved.r, saved.max_dim, saved.min_dim, key as u32, false);
    assert_eq!((g.r, g.max_dim, g.min_dim, g.nb), (saved.r, saved.max_dim, saved.min_dim, saved.nb));
    assert!(saved.a.contains(&0.0) && saved.a.iter().any(|&v| v > 0.0) && saved.a.iter().any(|&v| v < 0.0), "three values in A");
    assert!(g.a.iter().zip(&saved.a).all(|(x, y)| x.to_bits() == y.to_bits()), "randlora_A differs");
    assert!(g.b.iter().zip(&saved.b).all(|(x, y)| x.to_bits() == y.to_bits()), "randlora_B differs");
    // The very sparse fixture records its kind (its logits, from regenerated bases, are checked
    // with the other fixtures').
    assert_eq!(peft::read(&data().join("randlora_vsparse_noproj")).unwrap().hyper["randlora_bases"], "very_sparse");
}

/// `rank_pattern` / `alpha_pattern` resolve per module as PEFT's `get_pattern_key` does: the first key
/// (in the file's sorted order) whose regex matches the end of the module name at a dot.
#[test]
fn patterns_resolve_per_module() {
    let n = peft::read(&data().join("lora_pattern")).unwrap();
    let rank = |p: &str| n.tensors[&format!("{p}.lora_a")].0[0];
    // "layers.1.self_attn.q_proj" comes before "q_proj": layer 1's q_proj has rank 6, layer 0's rank 2.
    assert_eq!((rank("blk.1.attn_q"), rank("blk.0.attn_q"), rank("blk.0.ffn_down"), rank("blk.1.ffn_down")), (6, 2, 3, 4));
    let alpha = |p: &str| n.hyper.get(&format!("alpha.{p}")).map(String::as_str);
    assert_eq!((alpha("blk.0.attn_k"), alpha("blk.1.attn_v"), alpha("blk.1.ffn_up")), (Some("3"), Some("3"), Some("20")));
    assert_eq!((alpha("blk.0.attn_q"), alpha("blk.0.ffn_up")), (None, None));
}

/// A copy of fixture `m` in a temporary directory, its config edited by `edit`.
fn edited(m: &str, edit: impl Fn(&mut serde_json::Value)) -> PathBuf {
    let out = std::env::temp_dir().join(format!("graft-peft-edit-{}-{m}-{:?}", std::process::id(), std::thread::current().id()));
    std::fs::create_dir_all(&out).unwrap();
    std::fs::copy(data().join(m).join("adapter_model.safetensors"), out.join("adapter_model.safetensors")).unwrap();
    let mut cfg: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(data().join(m).join("adapter_config.json")).unwrap()).unwrap();
    edit(&mut cfg);
    std::fs::write(out.join("adapter_config.json"), cfg.to_string()).unwrap();
    out
}

/// `fan_in_fan_out: true` on llama's `nn.Linear` projections: PEFT resets it to false and loads
/// the tensors as they are, and so does graft (same logits bit for bit); a non-boolean is refused.
#[test]
fn fan_in_fan_out_on_linear_is_read_as_peft_reads_it() {
    let model = Arc::new(Model::load(data().join("tiny-llama.gguf")).unwrap());
    for m in ["lora", "vera", "randlora"] {
        let reg = Registry::new(model.clone());
        reg.load("plain", &data().join(m), 1.0).unwrap();
        let dir = edited(m, |c| c["fan_in_fan_out"] = true.into());
        reg.load("flagged", &dir, 1.0).unwrap();
        let (a, b) = (logits(&model, reg.set(&[("plain", 1.0)]).unwrap()), logits(&model, reg.set(&[("flagged", 1.0)]).unwrap()));
        assert_eq!(a, b, "{m}: fan_in_fan_out changed the logits");
        std::fs::remove_dir_all(&dir).ok();
        let dir = edited(m, |c| c["fan_in_fan_out"] = "yes".into());
        let msg = peft::read(&dir).expect_err("a non-boolean fan_in_fan_out is refused").to_string();
        assert!(msg.contains("fan_in_fan_out") && msg.contains(&dir.display().to_string()), "{msg}");
        std::fs::remove_dir_all(&dir).ok();
    }
}

/// What graft still refuses in these variants, and that the errors name the file and the field.
#[test]
fn variant_refusals_name_the_field() {
    let err = |dir: &Path| peft::read(dir).err().unwrap_or_else(|| panic!("{} accepted", dir.display())).to_string();
    type Edit = Box<dyn Fn(&mut serde_json::Value)>;
    let cases: [(&str, Edit, &str); 5] = [
        // The tensors do not have the rank the pattern gives.
        ("lora_pattern", Box::new(|c| c["rank_pattern"]["q_proj"] = 5.into()), "layers.0.self_attn.q_proj.lora_A.weight"),
        ("lora_pattern", Box::new(|c| c["rank_pattern"]["q_proj"] = "two".into()), "rank_pattern.q_proj"),
        ("lora_pattern", Box::new(|c| c["alpha_pattern"]["(k_proj"] = 1.into()), "alpha_pattern.(k_proj"),
        ("lora_pattern", Box::new(|c| c["alpha_pattern"] = 3.into()), "alpha_pattern"),
        ("lora_bias", Box::new(|c| c["use_dora"] = true.into()), "lora_bias"),
    ];
    for (m, edit, field) in cases {
        let dir = edited(m, edit);
        let msg = err(&dir);
        assert!(msg.contains(field) && msg.contains(&dir.display().to_string()), "{m}: error does not name {field} and the file: {msg}");
        std::fs::remove_dir_all(&dir).ok();
    }
    // A bias in the file that the config does not announce.
    let dir = edited("lora_bias", |c| c["lora_bias"] = false.into());
    assert!(err(&dir).contains("lora_B.bias"));
    std::fs::remove_dir_all(&dir).ok();
}

/// MiSS "bat" through the other paths: GGUF LoRA export is refused with the reason (its change is
/// full-rank); merging into the F32 tiny base gives PEFT's logits; graft's own format round-trips.
#[test]
fn miss_bat_export_and_merge() {
    use graft::adapter::export::{export, Format};
    let model = Arc::new(Model::load(data().join("tiny-llama.gguf")).unwrap());
    let src = data().join("miss_bat");
    let want = read_f32(&src.join("logits.f32"));
    let tmp = std::env::temp_dir().join(format!("graft-peft-bat-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    let e = export(&src, Format::GgufLora, &tmp.join("b.gguf"), &model, None).unwrap_err().to_string();
    assert!(e.contains("bat") && e.contains("LoRA"), "{e}");
    let reg = Registry::new(model.clone());
    let ad = reg.load("bat", &src, 1.0).unwrap();
    let rep = graft::adapter::merge::merge(&model, &[(ad, 1.0)], &tmp.join("m.gguf")).unwrap();
    assert_eq!(rep.merged, 14);
    let merged = Arc::new(Model::load(tmp.join("m.gguf")).unwrap());
    let d = rel_diff(&logits(&merged, graft::adapter::AdapterSet::none()), &want);
    assert!(d < TOL, "MiSS bat merged: logits differ from PEFT's by {d}");
    export(&src, Format::Graft, &tmp.join("b.safetensors"), &model, None).unwrap();
    let back = reg.load("back", &tmp.join("b.safetensors"), 1.0).unwrap();
    let d = rel_diff(&logits(&model, reg.set(&[("back", 1.0)]).unwrap()), &want);
    assert!(d < TOL && back.method == "miss", "graft's format: {d}");
    std::fs::remove_dir_all(&tmp).ok();
}

/// `lora_bias` through the other paths: q/k rows converted to GGUF order and back give the same
/// logits; GGUF LoRA export and merging are refused (neither can hold the bias), naming it.
#[test]
fn lora_bias_export_and_merge() {
    use graft::adapter::export::{export, Format};
    let model = Arc::new(Model::load(data().join("tiny-llama.gguf")).unwrap());
    let src = data().join("lora_bias");
    let want = read_f32(&src.join("logits.f32"));
    let native = peft::read(&src).unwrap();
    let (h, kv) = (model.config.n_head, model.config.n_head_kv);
    let gguf_rows = native.with_qk_rows("gguf", h, kv).unwrap();
    assert_ne!(gguf_rows.tensors["blk.0.attn_q.lora_bias"], native.tensors["blk.0.attn_q.lora_bias"]);
    let ad = Arc::new(gguf_rows.clone().into_adapter("b", &model).unwrap());
    assert!(ad.has_bias());
    let d = rel_diff(&logits(&model, graft::adapter::AdapterSet::fixed(&[(ad.clone(), 1.0)])), &want);
    assert!(d < TOL, "lora_bias in GGUF row order: logits differ from PEFT's by {d}");
    // The generic build path gives the same adapter.
    let built = gguf_rows.build("b", &model).unwrap();
    assert_eq!(built.bias, ad.bias);
    assert_eq!(gguf_rows.with_qk_rows("hf", h, kv).unwrap().tensors, native.tensors);
    // At scale 0.5 the bias is halved with the rest of the term.
    let base = read_f32(&data().join("base.logits.f32"));
    let half = logits(&model, graft::adapter::AdapterSet::fixed(&[(ad.clone(), 0.5)]));
    assert!(rel_diff(&half, &base) > 100.0 * TOL && rel_diff(&half, &want) > 100.0 * TOL);
    let tmp = std::env::temp_dir().join(format!("graft-peft-bias-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    let e = export(&src, Format::GgufLora, &tmp.join("b.gguf"), &model, None).unwrap_err().to_string();
    assert!(e.contains("lora_bias") && e.contains("GGUF LoRA"), "{e}");
    let e = graft::adapter::merge::merge(&model, &[(ad, 1.0)], &tmp.join("m.gguf")).unwrap_err().to_string();
    assert!(e.contains("lora_bias") && e.contains("merged"), "{e}");
    // PEFT export writes the bias back.
    export(&src, Format::Peft, &tmp.join("peft"), &model, None).unwrap();
    assert_eq!(peft::read(&tmp.join("peft")).unwrap().tensors, native.tensors);
    std::fs::remove_dir_all(&tmp).ok();
}

/// Training does not silently drop PEFT's `lora_bias`: resuming such an adapter is refused, naming
/// the tensor.
#[test]
fn a_lora_bias_adapter_is_not_trained_without_its_bias() {
    use graft::model::LinearKind;
    use graft::train::trainable::{Method, TrainSpec, Trainable};
    let model = Model::load(data().join("tiny-llama.gguf")).unwrap();
    let native = graft::adapter::peft::read(&data().join("lora_bias")).unwrap();
    let spec = TrainSpec { method: Method::Lora, rank: 4, alpha: 8.0, targets: LinearKind::ALL.to_vec(), seed: 0, vera_d_initial: 0.1, loldu_train_scale: false, sb_lr: 1e-4 };
    let e = Trainable::from_native(&model, spec, &native).expect_err("a bias refused").to_string();
    assert!(e.contains("lora_bias") && e.contains("not trainable"), "{e}");
}
