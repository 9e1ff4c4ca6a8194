//! Times loading a rank-16 LoRA for the default model from a warm page cache, stage by stage:
//! `cargo run --release --example adapter_load_time -- [ADAPTER]`.
use graft::adapter::{load, Registry};
use graft::model::Model;
use std::sync::Arc;
use std::time::Instant;

fn main() {
    let path = std::env::args().nth(1).unwrap_or_else(|| "models/lora-r16-s1.gguf".into());
    let path = std::path::Path::new(&path);
    let model = Arc::new(Model::load("models/SmolLM2-135M-Instruct.Q4_1.gguf").expect("default model (scripts/fetch-model.sh)"));
    let reg = Registry::new(model.clone());
    let _ = std::fs::read(path).expect("adapter (scripts/make-test-adapters.sh)"); // warm the page cache
    let mut best = [f64::MAX; 3];
    for i in 0..10 {
        let t0 = Instant::now();
        let native = load::read_native(path).unwrap();
        let t1 = Instant::now();
        let ad = native.into_adapter("x", &model).unwrap();
        let t2 = Instant::now();
        reg.insert(&format!("a{i}"), Arc::new(ad), 1.0).unwrap();
        let t3 = Instant::now();
        for (b, v) in best.iter_mut().zip([t1 - t0, t2 - t1, t3 - t2]) {
            *b = b.min(v.as_secs_f64() * 1e3);
        }
        reg.unload(&format!("a{i}")).unwrap();
    }
    let mut times = Vec::new();
    for i in 0..20 {
        let t = Instant::now();
        reg.load(&format!("b{i}"), path, 1.0).unwrap();
        times.push(t.elapsed().as_secs_f64() * 1e3);
        reg.unload(&format!("b{i}")).unwrap();
    }
    times.sort_by(f64::total_cmp);
    println!(
        "stages (best of 10): read {:.2} ms, build {:.2} ms, register {:.2} ms; Registry::load of 20: best {:.2} ms, median {:.2} ms",
        best[0], best[1], best[2], times[0], times[10]
    );
}
