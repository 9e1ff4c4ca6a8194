//! Shared helpers of the integration tests: the default model, fetched on first use.
#![allow(dead_code)]
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

/// Path of the default model, running scripts/fetch-model.sh when it is missing.
pub fn default_model_path() -> PathBuf {
    static LOCK: Mutex<()> = Mutex::new(());
    let _g = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let path = root.join("models/SmolLM2-135M-Instruct.Q4_1.gguf");
    if !path.exists() {
        let st = std::process::Command::new("bash")
            .arg(root.join("scripts/fetch-model.sh"))
            .status()
            .expect("running scripts/fetch-model.sh");
        assert!(st.success(), "scripts/fetch-model.sh failed");
    }
    path
}

/// The default model, loaded once per test binary.
pub fn default_model() -> Arc<graft::model::Model> {
    static M: OnceLock<Arc<graft::model::Model>> = OnceLock::new();
    M.get_or_init(|| Arc::new(graft::model::Model::load(default_model_path()).expect("loading the default model"))).clone()
}

/// The GPL-3 text every Debian machine ships.
pub fn gpl3() -> String {
    std::fs::read_to_string("/usr/share/common-licenses/GPL-3").expect("/usr/share/common-licenses/GPL-3 (Debian's base-files)")
}

/// Runs the `graft` binary with `args` (the default model as `GRAFT_MODEL`): success, stdout, stderr.
pub fn graft(args: &[&str]) -> (bool, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_graft"))
        .args(args)
        .env("GRAFT_MODEL", default_model_path())
        .output()
        .expect("running graft");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// A tiny random llama (`seed`) and a text file of `text` in a fresh temporary folder `name`:
/// (folder, model, text), for runs of `graft train`.
pub fn tiny_training_files(name: &str, seed: u64, text: &str) -> (PathBuf, PathBuf, PathBuf) {
    let dir = std::env::temp_dir().join(format!("graft-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let model = dir.join("tiny.gguf");
    graft::model::tiny::write_tiny_llama(&model, graft::model::tiny::TinySpec::default(), seed).unwrap();
    let data = dir.join("data.txt");
    std::fs::write(&data, text).unwrap();
    (dir, model, data)
}

/// The kernel tests' deterministic value stream (xorshift64), seeded by the tuple field.
pub struct Rng(pub u64);

impl Rng {
    /// The next raw 64-bit state.
    pub fn u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A value in [-1, 1), from the state's top 24 bits.
    pub fn f32(&mut self) -> f32 {
        ((self.u64() >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }

    /// `n` values in [-scale, scale).
    pub fn vec(&mut self, n: usize, scale: f32) -> Vec<f32> {
        (0..n).map(|_| self.f32() * scale).collect()
    }
}
