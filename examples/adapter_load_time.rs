//! Times loading a rank-16 LoRA for the default model from a warm page cache:
//! `cargo run --release --example adapter_load_time -- [ADAPTER]`.
//!
//! `Registry::load` (for a GGUF LoRA: the factors stay in the file's map, only the Q8_0 copies
//! decode reads are made) against reading the tensors into memory and building the adapter from
//! those copies (`read_native` + `into_adapter`, the path of the other formats), alternating, 20
//! loads each. The page cache is warmed through a small buffer: reading the file into one large
//! vector and freeing it would raise glibc's allocation thresholds, after which freed memory is
//! kept and reused, and loads that allocate would look faster than in a fresh process.
use graft::adapter::{load, Registry};
use graft::model::Model;
use std::io::Read;
use std::sync::Arc;
use std::time::Instant;

fn main() {
    let path = std::env::args().nth(1).unwrap_or_else(|| "models/lora-r16-s1.gguf".into());
    let path = std::path::Path::new(&path);
    let model = Arc::new(Model::load("models/SmolLM2-135M-Instruct.Q4_1.gguf").expect("default model (scripts/fetch-model.sh)"));
    let reg = Registry::new(model.clone());
    let mut f = std::fs::File::open(path).expect("adapter (scripts/make-test-adapters.sh)");
    let mut buf = vec![0u8; 1 << 16];
    while f.read(&mut buf).expect("reading the adapter") > 0 {}
    let (mut mapped, mut copied) = (Vec::new(), Vec::new());
    for i in 0..21 {
        let t = Instant::now();
        reg.load(&format!("b{i}"), path, 1.0).unwrap();
        let t_map = t.elapsed();
        reg.unload(&format!("b{i}")).unwrap();
        let t = Instant::now();
        let ad = load::read_native(path).unwrap().into_adapter("x", &model).unwrap();
        let t_copy = t.elapsed();
        drop(ad);
        // The first round warms the code and the map's page tables of the file's pages.
        if i > 0 {
            mapped.push(t_map.as_secs_f64() * 1e3);
            copied.push(t_copy.as_secs_f64() * 1e3);
        }
    }
    for v in [&mut mapped, &mut copied] {
        v.sort_by(f64::total_cmp);
    }
    println!(
        "Registry::load (factors mapped): best {:.2} ms, median {:.2} ms; read + build from copies: best {:.2} ms, median {:.2} ms (20 each, alternating)",
        mapped[0], mapped[10], copied[0], copied[10]
    );
}
