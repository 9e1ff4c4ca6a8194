//! Times loading a rank-16 LoRA for the default model from a warm page cache:
//! `cargo run --release --example adapter_load_time -- [ADAPTER.gguf]`.
//!
//! `Registry::load` of the GGUF LoRA (its f32 factors stay in the file's map, only the Q8_0 copies
//! decode reads are made), of the same adapter exported to graft's safetensors format and to a
//! PEFT directory (f32 views of the map there too, but PEFT's q/k factors are permuted copies),
//! and for comparison the GGUF file's tensors copied into memory and built from those copies
//! (`read_native`, owned copies, `into_adapter`: the previous `Registry::load`), in turn, 20 loads each. The page cache is warmed through a
//! small buffer: reading a file into one large vector and freeing it would raise glibc's allocation
//! thresholds, after which freed memory is kept and reused, and loads that allocate would look
//! faster than in a fresh process.
use graft::adapter::export::{export, Format};
use graft::adapter::{load, Registry};
use graft::model::Model;
use std::io::Read;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

fn warm(path: &Path) {
    let files = if path.is_dir() { std::fs::read_dir(path).unwrap().map(|e| e.unwrap().path()).collect() } else { vec![path.to_path_buf()] };
    let mut buf = vec![0u8; 1 << 16];
    for p in files {
        let mut f = std::fs::File::open(p).expect("adapter (scripts/make-test-adapters.sh)");
        while f.read(&mut buf).expect("reading the adapter") > 0 {}
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let model = Arc::new(Model::load("models/SmolLM2-135M-Instruct.Q4_1.gguf").expect("default model (scripts/fetch-model.sh)"));
    if args.len() == 4 && args[1] == "--export" {
        // In a child process: exporting frees large buffers, which would warm this process's heap.
        let (gguf, tmp) = (Path::new(&args[2]), Path::new(&args[3]));
        export(gguf, Format::Graft, &tmp.join("lora.safetensors"), &model, None).expect("export to graft's format");
        export(gguf, Format::Peft, &tmp.join("peft"), &model, None).expect("export to PEFT");
        return;
    }
    let path = args.get(1).cloned().unwrap_or_else(|| "models/lora-r16-s1.gguf".into());
    let gguf = Path::new(&path);
    let tmp = std::env::temp_dir().join(format!("graft-load-time-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    let (st, peft) = (tmp.join("lora.safetensors"), tmp.join("peft"));
    let ok = std::process::Command::new(std::env::current_exe().unwrap()).arg("--export").arg(gguf).arg(&tmp).status().expect("export process");
    assert!(ok.success(), "export failed");
    let reg = Registry::new(model.clone());
    let paths = [gguf, st.as_path(), peft.as_path()];
    paths.iter().for_each(|p| warm(p));
    let mut times = vec![Vec::new(); 4];
    for _ in 0..21 {
        for (k, p) in paths.iter().enumerate() {
            let t = Instant::now();
            reg.load("x", p, 1.0).unwrap();
            times[k].push(t.elapsed().as_secs_f64() * 1e3);
            reg.unload("x").unwrap();
        }
        let t = Instant::now();
        let mut n = load::read_native(gguf).unwrap();
        for v in n.tensors.values_mut() {
            v.1 = v.1.to_vec().into();
        }
        let ad = n.into_adapter("x", &model).unwrap();
        times[3].push(t.elapsed().as_secs_f64() * 1e3);
        drop(ad);
    }
    std::fs::remove_dir_all(&tmp).ok();
    let names = ["GGUF LoRA, Registry::load", "graft safetensors, Registry::load", "PEFT directory, Registry::load", "GGUF LoRA read into memory + built from the copies"];
    for (name, mut v) in names.into_iter().zip(times) {
        // The first round warms the code and the page tables of the files' pages.
        v.remove(0);
        v.sort_by(f64::total_cmp);
        println!("{name}: best {:.2} ms, median {:.2} ms", v[0], v[v.len() / 2]);
    }
}
