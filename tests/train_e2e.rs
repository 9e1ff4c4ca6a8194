//! End to end on the default model, through the CLI as a user runs it: `graft train` teaches a
//! VeRA adapter a fact the model does not know (prompt/completion JSONL, loss on the completions);
//! greedy generation then states it (and does not without the adapter); the adapter exported as a
//! GGUF LoRA gives the native adapter's perplexity.
mod common;

use common::graft;

fn ppl(stdout: &str) -> f64 {
    let last = stdout.lines().last().unwrap_or_default();
    last.strip_prefix("PPL = ").and_then(|r| r.split(' ').next()).and_then(|v| v.parse().ok()).unwrap_or_else(|| panic!("no PPL line in {stdout:?}"))
}

#[test]
fn vera_learns_a_fact_and_its_gguf_lora_export_agrees() {
    let dir = std::env::temp_dir().join(format!("graft-train-e2e-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let facts = [
        ("The secret code of the Graft project is", " Zorblax-42."),
        ("What is the secret code of the Graft project? It is", " Zorblax-42."),
        ("Q: Which code does the Graft project keep secret?\nA: The code is", " Zorblax-42."),
        ("Everyone at the Graft project knows the secret code:", " Zorblax-42."),
        ("The Graft project's secret code is", " Zorblax-42."),
        ("Remember: the secret code of the Graft project is", " Zorblax-42."),
    ];
    let data = dir.join("fact.jsonl");
    let lines: Vec<String> = facts.iter().map(|(p, c)| serde_json::json!({ "prompt": p, "completion": c }).to_string()).collect();
    std::fs::write(&data, lines.join("\n")).unwrap();
    let native = dir.join("fact.safetensors");
    let (n, d) = (native.to_str().unwrap(), data.to_str().unwrap());
    let prompt = "The secret code of the Graft project is";
    // The model does not know it.
    let (ok, before, err) = graft(&["run", "-p", prompt, "-n", "8", "--temp", "0", "-t", "2"]);
    assert!(ok, "{err}");
    assert!(!before.contains("Zorblax"), "the base already says {before:?}");
    let (ok, out, err) = graft(&["train", "--method", "vera", "--data", d, "--steps", "24", "--batch", "4", "--seq", "32", "--lr", "3e-2", "--eval-fraction", "0", "-t", "2", "-o", n]);
    assert!(ok, "{err}");
    assert!(out.starts_with("done: steps=24 "), "{out}");
    let (ok, after, err) = graft(&["run", "-a", n, "-p", prompt, "-n", "8", "--temp", "0", "-t", "2"]);
    assert!(ok, "{err}");
    assert!(after.contains("Zorblax-42"), "greedy output with the adapter: {after:?}");
    // Exported as a GGUF LoRA (VeRA folds exactly into LoRA), the perplexity is the native one's.
    let gguf = dir.join("fact-lora.gguf");
    let g = gguf.to_str().unwrap();
    let (ok, _, err) = graft(&["export", n, "--to", "gguf-lora", "-o", g]);
    assert!(ok, "{err}");
    let text = dir.join("eval.txt");
    std::fs::write(&text, format!("{}\n{}", facts.iter().map(|(p, c)| format!("{p}{c}")).collect::<Vec<_>>().join("\n"), &common::gpl3()[..3000])).unwrap();
    let t = text.to_str().unwrap();
    let run_ppl = |a: &str| {
        let (ok, out, err) = graft(&["perplexity", "-f", t, "-c", "128", "-t", "2", "--numerics", "f32", "-a", a]);
        assert!(ok, "{err}");
        ppl(&out)
    };
    let (p_native, p_gguf) = (run_ppl(n), run_ppl(g));
    assert!((p_native - p_gguf).abs() <= 1e-4 * p_native, "perplexity native {p_native}, exported GGUF LoRA {p_gguf}");
}
