//! Every adapter method, applied unmerged on a tiny F32 llama, gives the logits of the same base
//! with the dense ΔW merged into its weights (written and reloaded by `graft merge`'s code).
use graft::adapter::{merge, AdapterSet};
use graft::model::tiny::{write_tiny_llama, TinySpec};
mod adapters_common;
use adapters_common::{random_native, random_native_by_init};
use graft::model::{Logits, Model, Numerics, Runner, SeqInput};
use std::path::PathBuf;
use std::sync::Arc;

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("graft-test-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn tiny(dir: &std::path::Path) -> Arc<Model> {
    let p = dir.join("tiny.gguf");
    write_tiny_llama(&p, TinySpec::default(), 11).unwrap();
    Arc::new(Model::load(&p).unwrap())
}

/// Logits of every position of a fixed token sequence, with `set`, in fp32 numerics.
fn logits(model: &Arc<Model>, set: AdapterSet) -> Vec<f32> {
    let mut r = Runner::with_numerics(model.clone(), 2, Numerics::F32);
    let mut c = r.new_cache();
    c.set_adapters(set);
    let toks: Vec<u32> = (0..13).map(|i| (i * 37 + 5) % 256).collect();
    r.forward(&mut [SeqInput { tokens: &toks, cache: &mut c, logits: Logits::All }]).unwrap().to_vec()
}

fn check_unmerged_equals_merged(method: &str, r: usize, hf_rows: bool) {
    let dir = tmp(&format!("merge-{method}-{hf_rows}"));
    let model = tiny(&dir);
    let native = if matches!(method, "lora" | "rslora" | "dora" | "vera") { random_native(&model, method, r, 3, hf_rows) } else { random_native_by_init(&model, method, r, 3) };
    let ad = Arc::new(native.build(&native.method.clone(), &model).unwrap());
    let per_block = if method == "lorta" { 2 } else { 7 };
    assert_eq!(ad.n_terms(), per_block * model.weights.blocks.len());
    let scale = 0.7;
    let base = logits(&model, AdapterSet::none());
    let unmerged = logits(&model, AdapterSet::fixed(&[(ad.clone(), scale)]));
    let out = dir.join("merged.gguf");
    let rep = merge::merge(&model, &[(ad, scale)], &out).unwrap();
    assert_eq!(rep.merged, per_block * model.weights.blocks.len());
    // F32 weights: only the rounding of the f64 sum to f32 (weights are about 0.1).
    assert!(rep.requant_rms < 1e-7, "F32 merge added error {}", rep.requant_rms);
    let merged_model = Arc::new(Model::load(&out).unwrap());
    let merged = logits(&merged_model, AdapterSet::none());
    let (mut diff, mut change, mut mag) = (0f32, 0f32, 0f32);
    for ((u, m), b) in unmerged.iter().zip(&merged).zip(&base) {
        diff = diff.max((u - m).abs());
        change = change.max((u - b).abs());
        mag = mag.max(m.abs());
    }
    let tol = 2e-5 * mag.max(1.0);
    assert!(change > 50.0 * tol, "{method}: the adapter must change the logits well beyond the tolerance ({change} vs {tol})");
    assert!(diff <= tol, "{method} (hf rows {hf_rows}): unmerged and merged logits differ by {diff} (magnitude {mag})");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn lora_unmerged_equals_merged() {
    check_unmerged_equals_merged("lora", 4, false);
}

#[test]
fn lora_with_hf_qk_rows_unmerged_equals_merged() {
    check_unmerged_equals_merged("lora", 3, true);
}

#[test]
fn rslora_unmerged_equals_merged() {
    check_unmerged_equals_merged("rslora", 5, false);
}

#[test]
fn dora_unmerged_equals_merged() {
    check_unmerged_equals_merged("dora", 4, true);
}

#[test]
fn vera_unmerged_equals_merged() {
    check_unmerged_equals_merged("vera", 16, true);
}

#[test]
fn lora_xs_unmerged_equals_merged() {
    check_unmerged_equals_merged("lora-xs", 4, false);
}

#[test]
fn loldu_unmerged_equals_merged() {
    check_unmerged_equals_merged("loldu", 5, false);
}

#[test]
fn nola_unmerged_equals_merged() {
    check_unmerged_equals_merged("nola", 4, false);
}

#[test]
fn randlora_unmerged_equals_merged() {
    check_unmerged_equals_merged("randlora", 8, false);
}

#[test]
fn miss_unmerged_equals_merged() {
    check_unmerged_equals_merged("miss", 4, false);
}

/// MiSS "bat" runs the base weight against block-transformed inputs: the forward pass (with the
/// q/k rows in GGUF order or mapped from HF order) against the merged `W0 + ΔW`.
#[test]
fn miss_bat_unmerged_equals_merged() {
    check_unmerged_equals_merged("miss-bat", 4, false);
    check_unmerged_equals_merged("miss-bat-hf", 8, true);
}

#[test]
fn lokr_unmerged_equals_merged() {
    check_unmerged_equals_merged("lokr", 2, false);
}

#[test]
fn lamda_unmerged_equals_merged() {
    check_unmerged_equals_merged("lamda", 4, false);
}

#[test]
fn block_lora_unmerged_equals_merged() {
    check_unmerged_equals_merged("block-lora", 4, false);
}

#[test]
fn lorta_unmerged_equals_merged() {
    check_unmerged_equals_merged("lorta", 4, false);
}

/// Scale 0 is the base, bit for bit; two adapters add.
#[test]
fn scales_and_sums() {
    let dir = tmp("scales");
    let model = tiny(&dir);
    let a = Arc::new(random_native(&model, "lora", 4, 5, false).build("a", &model).unwrap());
    let b = Arc::new(random_native(&model, "vera", 8, 6, true).build("b", &model).unwrap());
    let base = logits(&model, AdapterSet::none());
    assert_eq!(logits(&model, AdapterSet::fixed(&[(a.clone(), 0.0)])), base);
    let out = dir.join("ab.gguf");
    merge::merge(&model, &[(a.clone(), 0.5), (b.clone(), -1.5)], &out).unwrap();
    let merged = logits(&Arc::new(Model::load(&out).unwrap()), AdapterSet::none());
    let both = logits(&model, AdapterSet::fixed(&[(a, 0.5), (b, -1.5)]));
    let mag = merged.iter().fold(0f32, |m, v| m.max(v.abs()));
    let diff = merged.iter().zip(&both).fold(0f32, |m, (x, y)| m.max((x - y).abs()));
    assert!(diff <= 2e-5 * mag, "two adapters: {diff}");
    std::fs::remove_dir_all(&dir).ok();
}
