//! The `graft` command line, run as a user runs it, on the default model.
mod common;
use std::process::Command;

use common::graft;

#[test]
fn run_prints_only_the_generated_text() {
    let (ok, out, err) = graft(&["run", "-p", "The capital of France is", "--temp", "0", "-n", "3", "-t", "2", "--numerics", "f32"]);
    assert!(ok, "{err}");
    assert_eq!(out, " Paris.\n", "stdout carries the generated text only (a newline goes to stderr)");
    assert!(err.contains("tok/s") && err.contains("peak RSS"), "timings on stderr: {err}");
}

#[test]
fn run_is_reproducible_with_a_seed() {
    let args = ["run", "-p", "Once upon a time", "--temp", "0.9", "--top-p", "0.9", "--seed", "11", "-n", "12", "-t", "2"];
    let (ok1, a, _) = graft(&args);
    let (ok2, b, _) = graft(&args);
    assert!(ok1 && ok2);
    assert_eq!(a, b);
    assert!(!a.is_empty());
}

#[test]
fn perplexity_last_line_is_ppl() {
    let dir = std::env::temp_dir().join(format!("graft-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let text = dir.join("mit.txt");
    std::fs::write(&text, common::gpl3().split_at(6000).0).unwrap();
    let (ok, out, err) = graft(&["perplexity", "-f", text.to_str().unwrap(), "-c", "128", "-t", "2"]);
    assert!(ok, "{err}");
    let last = out.lines().last().unwrap();
    let rest = last.strip_prefix("PPL = ").unwrap_or_else(|| panic!("last line {last:?}"));
    let (v, e) = rest.split_once(" +/- ").unwrap();
    let (v, e): (f64, f64) = (v.parse().unwrap(), e.parse().unwrap());
    assert!(v > 1.0 && v < 100.0 && e > 0.0, "{last}");
}

#[test]
fn bench_json_has_the_two_figures() {
    let (ok, out, err) = graft(&["bench", "-p", "16", "-n", "4", "-r", "1", "-t", "2", "--json"]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert!(v["prefill_tok_s"].as_f64().unwrap() > 0.0);
    assert!(v["decode_tok_s"].as_f64().unwrap() > 0.0);
    let (ok, out, _) = graft(&["bench", "-p", "0", "-n", "2", "-r", "1", "--json"]);
    assert!(ok);
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["prefill_tok_s"].as_f64().unwrap(), 0.0, "prefill not run");
}

#[test]
fn inspect_shows_metadata_and_tensors() {
    let model = common::default_model_path();
    let (ok, out, err) = graft(&["inspect", model.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert!(out.contains("format: GGUF v3"));
    assert!(out.contains("general.architecture (string) = \"llama\""));
    assert!(out.contains("tokenizer.ggml.tokens (array) = array<string>[49152]"));
    assert!(out.lines().any(|l| l.starts_with("token_embd.weight") && l.contains("Q8_0") && l.contains("[576, 49152]")));
    assert_eq!(out.lines().filter(|l| l.starts_with("blk.")).count(), 30 * 9);
}

#[test]
fn inspect_reads_safetensors() {
    let dir = std::env::temp_dir().join(format!("graft-st-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("a.safetensors");
    let data: Vec<u8> = (0..24).flat_map(|i| (i as f32).to_le_bytes()).collect();
    let view = safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![4, 6], &data).unwrap();
    let meta = std::collections::HashMap::from([("method".to_string(), "lora".to_string())]);
    safetensors::serialize_to_file([("w", view)], &Some(meta), &path).unwrap();
    let (ok, out, err) = graft(&["inspect", path.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert!(out.contains("format: safetensors") && out.contains("method = \"lora\""));
    assert!(out.lines().any(|l| l.starts_with("w ") && l.contains("F32") && l.contains("[4, 6]") && l.contains("96")));
    // A lying header length is an error naming the file, not a crash.
    let mut bad = std::fs::read(&path).unwrap();
    bad[..8].copy_from_slice(&(1u64 << 40).to_le_bytes());
    std::fs::write(&path, bad).unwrap();
    let (ok, _, err) = graft(&["inspect", path.to_str().unwrap()]);
    assert!(!ok && err.contains("a.safetensors"), "{err}");
}

#[test]
fn missing_model_is_a_clear_error() {
    let (ok, _, err) = graft(&["run", "-m", "/nonexistent/model.gguf", "-p", "x"]);
    assert!(!ok);
    assert!(err.contains("/nonexistent/model.gguf"), "{err}");
}

#[test]
fn graft_isa_forces_the_reference_kernels() {
    let model = common::default_model_path();
    let out = Command::new(env!("CARGO_BIN_EXE_graft"))
        .args(["bench", "-p", "8", "-n", "2", "-r", "1", "--json"])
        .env("GRAFT_MODEL", &model)
        .env("GRAFT_ISA", "ref")
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["isa"], "ref");
    // An unknown value is reported and the best ISA is used.
    let out = Command::new(env!("CARGO_BIN_EXE_graft"))
        .args(["bench", "-p", "0", "-n", "1", "-r", "1", "--json"])
        .env("GRAFT_MODEL", &model)
        .env("GRAFT_ISA", "sse9")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("GRAFT_ISA=sse9: unknown"));
}

/// The adapter test file made by scripts/make-test-adapters.sh.
fn test_adapter(name: &str) -> std::path::PathBuf {
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let p = root.join("models").join(name);
    if !p.exists() {
        assert!(Command::new("bash").arg(root.join("scripts/make-test-adapters.sh")).status().unwrap().success());
    }
    p
}

#[test]
fn adapters_on_run_swap_export_inspect_and_merge() {
    let a = test_adapter("lora-r8-s7.gguf");
    let b = test_adapter("lora-r16-s1.gguf");
    let (a_s, b_s) = (a.to_str().unwrap(), b.to_str().unwrap());
    let dir = std::env::temp_dir().join(format!("graft-cli-ad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // -a changes the text; :0 is the base.
    let p = ["run", "-p", "The capital of France is", "--temp", "0", "-n", "8", "-t", "2"];
    let (_, base, _) = graft(&p);
    let (ok, with, err) = graft(&[&p[..], &["-a", a_s]].concat());
    assert!(ok && err.contains("adapter"), "{err}");
    assert_ne!(with, base);
    let (_, zero, _) = graft(&[&p[..], &["-a", &format!("{a_s}:0")]].concat());
    assert_eq!(zero, base);
    // swap: both adapters, two rounds, the same text each round, and the swap time.
    let (ok, out, err) = graft(&["swap", "-p", "Hello", "-n", "6", "-a", a_s, "-a", b_s, "-t", "2"]);
    assert!(ok, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 4, "{out}");
    assert_eq!(lines[0].split("] ").nth(1), lines[2].split("] ").nth(1));
    assert!(err.contains("swaps without reloading the base"), "{err}");
    // export to every format; inspect shows method and parameters.
    for (to, out) in [("graft", dir.join("a.safetensors")), ("peft", dir.join("peft")), ("gguf-lora", dir.join("a.gguf"))] {
        let (ok, _, err) = graft(&["export", a_s, "--to", to, "-o", out.to_str().unwrap()]);
        assert!(ok, "{to}: {err}");
        let (ok, info, err) = graft(&["inspect", out.to_str().unwrap()]);
        assert!(ok && info.contains("method: lora") && info.contains("trainable parameters: 2442240"), "{to}: {info}{err}");
    }
    let (ok, _, err) = graft(&["export", a_s, "--to", "onnx", "-o", dir.join("x").to_str().unwrap()]);
    assert!(!ok && err.contains("gguf-lora"), "{err}");
    // merge into q8_0 matrices: the merged model scores a text as the unmerged adapter does (greedy
    // texts are no test here: this random adapter leaves near-ties that any rounding flips).
    let merged = dir.join("merged.gguf");
    let (ok, out, err) = graft(&["merge", "-a", a_s, "--type", "q8_0", "-o", merged.to_str().unwrap()]);
    assert!(ok && out.starts_with("merged=210 "), "{out}{err}");
    let text = dir.join("t.txt");
    std::fs::write(&text, common::gpl3().split_at(6000).0).unwrap();
    let ppl = |extra: &[&str]| -> f64 {
        let (ok, out, err) = graft(&[&["perplexity", "-f", text.to_str().unwrap(), "-c", "256", "-t", "2"][..], extra].concat());
        assert!(ok, "{err}");
        out.lines().last().unwrap().split_whitespace().nth(2).unwrap().parse().unwrap()
    };
    let (p_base, p_ad, p_merged) = (ppl(&[]), ppl(&["-a", a_s]), ppl(&["-m", merged.to_str().unwrap()]));
    assert!((p_merged / p_ad - 1.0).abs() < 0.01, "merged PPL {p_merged}, unmerged {p_ad}");
    assert!((p_ad / p_base - 1.0).abs() > 0.05, "the adapter must move the PPL ({p_base} -> {p_ad})");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn train_writes_an_adapter_checkpoints_and_resumes() {
    let (dir, model, text) = common::tiny_training_files("cli-train", 4, &"abcabcabd abcabcabd abcabcabd ".repeat(20));
    let out = dir.join("v.safetensors");
    let ck = dir.join("ck");
    let (m, t, o, c) = (model.to_str().unwrap(), text.to_str().unwrap(), out.to_str().unwrap(), ck.to_str().unwrap());
    let base = ["train", "-m", m, "--method", "vera", "--rank", "8", "--data", t, "--batch", "2", "--seq", "16", "-t", "2", "-o", o, "--checkpoint-dir", c];
    let with = |extra: &[&str]| -> (bool, String, String) {
        let mut a: Vec<&str> = base.to_vec();
        a.extend_from_slice(extra);
        graft(&a)
    };
    let (ok, stdout, err) = with(&["--steps", "3", "--checkpoint-every", "1", "--eval-every", "2"]);
    assert!(ok, "{err}");
    let line = stdout.trim_end();
    assert_eq!(stdout.lines().count(), 1, "stdout is the done line only: {stdout:?}");
    let fields: Vec<(&str, &str)> = line.strip_prefix("done: ").expect(line).split(' ').map(|f| f.split_once('=').expect(f)).collect();
    let names: Vec<&str> = fields.iter().map(|f| f.0).collect();
    assert_eq!(names, ["steps", "loss", "eval_loss", "tok_s", "peak_mib"]);
    assert_eq!(fields[0].1, "3");
    for (_, v) in &fields[1..] {
        assert!(v.parse::<f64>().is_ok_and(|v| v.is_finite() && v > 0.0), "{line}");
    }
    assert!(ck.join("checkpoint.safetensors").exists());
    // The adapter loads with -a and shows in inspect.
    let (ok, _, err) = graft(&["run", "-m", m, "-a", o, "-p", "abc", "-n", "2", "--temp", "0"]);
    assert!(ok, "{err}");
    let (ok, out_i, err) = graft(&["inspect", o]);
    assert!(ok, "{err}");
    assert!(out_i.contains("vera"), "{out_i}");
    // Resuming continues the step count to the new total.
    let (ok, stdout, err) = with(&["--steps", "5", "--resume", c]);
    assert!(ok, "{err}");
    assert!(err.contains("resumed") && stdout.starts_with("done: steps=5 "), "{stdout}\n{err}");
    // A budget below the estimate is refused with the estimate.
    let (ok, _, err) = with(&["--steps", "1", "--max-memory", "1K"]);
    assert!(!ok && err.contains("needs about"), "{err}");
    // Bad data names the file and line.
    let bad = dir.join("bad.jsonl");
    std::fs::write(&bad, "{\"text\": \"fine\"}\n{\"nope\": 1}\n").unwrap();
    let (ok, _, err) = graft(&["train", "-m", m, "--method", "lora", "--data", bad.to_str().unwrap(), "--steps", "1", "-o", o]);
    assert!(!ok && err.contains("bad.jsonl") && err.contains('2'), "{err}");
}

#[test]
fn killing_graft_train_never_leaves_a_torn_checkpoint_or_adapter() {
    let (dir, model, text) = common::tiny_training_files("cli-kill", 6, &"kill me softly, kill me now. ".repeat(40));
    let (out, ck) = (dir.join("a.safetensors"), dir.join("ck"));
    let args = |steps: &str| -> Vec<String> {
        ["train", "-m", model.to_str().unwrap(), "--method", "lora", "--rank", "4", "--data", text.to_str().unwrap(), "--batch", "2", "--seq", "16", "-t", "1"]
            .iter()
            .map(|s| s.to_string())
            .chain(["--steps", steps, "--checkpoint-every", "1", "--checkpoint-dir", ck.to_str().unwrap(), "-o", out.to_str().unwrap()].iter().map(|s| s.to_string()))
            .collect()
    };
    // Kill -9 at various moments of a run that checkpoints every step (the writes happen all along).
    for (i, ms) in [40u64, 90, 150, 230, 330, 470].iter().enumerate() {
        let mut child = Command::new(env!("CARGO_BIN_EXE_graft")).args(args("100000")).stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null()).spawn().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(*ms));
        child.kill().unwrap();
        child.wait().unwrap();
        let f = ck.join("checkpoint.safetensors");
        if !f.exists() {
            continue;
        }
        // Whatever is there is a whole checkpoint: it parses, and the run resumes from it.
        let st = graft::format::safetensors::SafeTensorsFile::open(&f).unwrap_or_else(|e| panic!("kill {i} after {ms} ms left a torn checkpoint: {e}"));
        let step: u64 = st.metadata().iter().find(|(k, _)| k == "step").map(|(_, v)| v.parse().unwrap()).expect("a step");
        assert!(step >= 1);
        // Leftover temp files are the only debris allowed; the named files are whole.
        let mut resume = args(&(step + 1).to_string());
        resume.extend(["--resume".to_string(), ck.to_str().unwrap().to_string()]);
        let (ok, stdout, err) = graft(&resume.iter().map(String::as_str).collect::<Vec<_>>());
        assert!(ok, "kill {i} after {ms} ms: resume failed: {err}");
        assert!(stdout.starts_with(&format!("done: steps={} ", step + 1)), "{stdout}");
        graft::adapter::graft_format::read(&out).unwrap_or_else(|e| panic!("adapter torn: {e}"));
    }
    assert!(ck.join("checkpoint.safetensors").exists(), "no run got as far as its first checkpoint");
}

/// `graft inspect` names MiSS's variant (the PEFT fixtures of tests/peft_golden.rs).
#[test]
fn inspect_names_the_miss_variant() {
    let data = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/peft");
    for (fixture, variant) in [("miss", "default"), ("miss_mini", "mini"), ("miss_bat", "bat")] {
        let (ok, out, err) = graft(&["inspect", data.join(fixture).to_str().unwrap()]);
        assert!(ok && out.contains("method: miss") && out.contains(&format!("variant: {variant}\n")), "{fixture}: {out}{err}");
    }
}
