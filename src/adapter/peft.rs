//! HF PEFT adapter directories: `adapter_config.json` + `adapter_model.safetensors`, for LoRA
//! (rsLoRA, DoRA), VeRA, MiSS (and old Bone files), LoKr and RandLoRA. Module names map to GGUF names (`q_proj` → `attn_q`, ...); the native
//! tensors keep PEFT's HF row order for `attn_q` / `attn_k` (`qk_rows = hf`), which the build step
//! permutes as llama.cpp's converter permutes the base.
//!
//! Variants read as PEFT applies them: per-module rank and alpha (`rank_pattern` / `alpha_pattern`,
//! LoRA and LoKr: per-layer `alpha.<blk.l.linear>` / `r.<blk.l.linear>` hyper-parameters), LoRA's
//! `lora_bias` (`lora_B.bias` → `<layer>.lora_bias`, added as `s·b` next to the term), LoKr's
//! `decompose_both` (`lokr_w1_a` / `lokr_w1_b`), MiSS "mini" and "bat", and VeRA / RandLoRA saved with
//! `save_projection=False` (the build step regenerates the projections from
//! `projection_prng_key`; RandLoRA's dense, `sparse` or `very_sparse` bases, recorded as the
//! `randlora_bases` hyper-parameter). `fan_in_fan_out: true` is read as PEFT reads it for
//! `nn.Linear` targets (every llama projection): as false, the tensors unchanged. Still refused,
//! naming the file and field: `lora_bias` with DoRA (PEFT refuses it too), and pattern keys that
//! are not regular expressions the `regex` crate accepts.
use super::graft_format::write_atomic;
use super::methods::{Hyper, Tensors};
use super::native::NativeAdapter;
use crate::format::safetensors::SafeTensorsFile;
use crate::model::LinearKind;
use crate::{Error, Result};
use serde_json::{json, Value};
use std::path::Path;

/// HF module name of a projection.
pub fn hf_module(kind: LinearKind) -> &'static str {
    match kind {
        LinearKind::Q => "self_attn.q_proj",
        LinearKind::K => "self_attn.k_proj",
        LinearKind::V => "self_attn.v_proj",
        LinearKind::O => "self_attn.o_proj",
        LinearKind::Gate => "mlp.gate_proj",
        LinearKind::Up => "mlp.up_proj",
        LinearKind::Down => "mlp.down_proj",
    }
}

/// `base_model.model.model.layers.<l>.<module>.<param>` → (l, kind, param).
fn parse_key(key: &str) -> Option<(usize, LinearKind, &str)> {
    let rest = key.strip_prefix("base_model.model.model.layers.")?;
    let (l, rest) = rest.split_once('.')?;
    let l = l.parse().ok()?;
    for kind in LinearKind::ALL {
        if let Some(p) = rest.strip_prefix(hf_module(kind)).and_then(|p| p.strip_prefix('.')) {
            return Some((l, kind, p));
        }
    }
    None
}

/// Whether `dir` looks like a PEFT adapter directory.
pub fn is_peft_dir(dir: &Path) -> bool {
    dir.join("adapter_config.json").is_file()
}

/// Reads a PEFT directory into native tensors.
pub fn read(dir: &Path) -> Result<NativeAdapter> {
    let cfg_path = dir.join("adapter_config.json");
    let cfg_name = cfg_path.display().to_string();
    let text = std::fs::read_to_string(&cfg_path).map_err(|e| Error::io(&cfg_path, e))?;
    let cfg: Value = serde_json::from_str(&text).map_err(|e| Error::format(&cfg_name, "json", e.to_string()))?;
    let get = |k: &str| cfg.get(k).filter(|v| !v.is_null());
    let peft_type = get("peft_type").and_then(Value::as_str).ok_or_else(|| Error::format(&cfg_name, "peft_type", "missing or not a string"))?;
    let st_path = dir.join("adapter_model.safetensors");
    let st = SafeTensorsFile::open(&st_path)?;
    let file = st.file_name().to_string();
    let mut hyper = Hyper::new();
    hyper.insert("qk_rows".into(), "hf".into());
    let bool_of = |k: &str| -> Result<bool> {
        match get(k) {
            None => Ok(false),
            Some(v) => v.as_bool().ok_or_else(|| Error::format(&cfg_name, k, "not a boolean")),
        }
    };
    let lora_bias = bool_of("lora_bias")?;
    // `fan_in_fan_out` describes Conv1D (GPT-2) weights. Every projection of a llama model is an
    // `nn.Linear`, for which PEFT itself resets the flag to false (with a warning) before it
    // creates or loads the adapter's layers, so the tensors are in the usual orientation: read them
    // as PEFT does. A value that is not a boolean is still refused.
    let _ = bool_of("fan_in_fan_out")?;
    let method = match peft_type {
        "LORA" => {
            let alpha = get("lora_alpha").and_then(Value::as_f64).ok_or_else(|| Error::format(&cfg_name, "lora_alpha", "missing or not a number"))?;
            hyper.insert("alpha".into(), alpha.to_string());
            let rs = bool_of("use_rslora")?;
            hyper.insert("rslora".into(), rs.to_string());
            if let Some(r) = get("r") {
                let r = r.as_u64().filter(|r| *r > 0).ok_or_else(|| Error::format(&cfg_name, "r", "not a positive integer"))?;
                hyper.insert("r".into(), r.to_string());
            }
            if lora_bias && bool_of("use_dora")? {
                return Err(Error::format(&cfg_name, "lora_bias", "true together with use_dora (PEFT refuses this combination too)"));
            }
            if bool_of("use_dora")? {
                "dora"
            } else if rs {
                "rslora"
            } else {
                "lora"
            }
        }
        "VERA" => {
            let r = get("r").and_then(Value::as_u64).ok_or_else(|| Error::format(&cfg_name, "r", "missing or not an integer"))?;
            hyper.insert("r".into(), r.to_string());
            let key = get("projection_prng_key").and_then(Value::as_u64).unwrap_or(0);
            hyper.insert("projection_prng_key".into(), key.to_string());
            "vera"
        }
        "MISS" | "BONE" => {
            // "bat" needs nothing more: its blocks have three axes (methods/miss.rs). "mini": the
            // block's width in the file is what the forward uses; record mini_r to check it against.
            if get("init_weights").and_then(Value::as_str) == Some("mini") {
                let mr = get("mini_r").and_then(Value::as_u64).filter(|&v| v > 0).ok_or_else(|| Error::format(&cfg_name, "mini_r", "missing or not a positive integer"))?;
                hyper.insert("mini_r".into(), mr.to_string());
            }
            "miss"
        }
        "LOKR" => {
            let r = get("r").and_then(Value::as_u64).ok_or_else(|| Error::format(&cfg_name, "r", "missing or not an integer"))?;
            let alpha = get("alpha").and_then(Value::as_f64).ok_or_else(|| Error::format(&cfg_name, "alpha", "missing or not a number"))?;
            if r == 0 {
                return Err(Error::format(&cfg_name, "r", "0"));
            }
            hyper.insert("r".into(), r.to_string());
            hyper.insert("alpha".into(), alpha.to_string());
            hyper.insert("decompose_factor".into(), get("decompose_factor").and_then(Value::as_i64).unwrap_or(-1).to_string());
            "lokr"
        }
        "RANDLORA" => {
            let r = get("r").and_then(Value::as_u64).ok_or_else(|| Error::format(&cfg_name, "r", "missing or not an integer"))?;
            let alpha = get("randlora_alpha").and_then(Value::as_f64).ok_or_else(|| Error::format(&cfg_name, "randlora_alpha", "missing or not a number"))?;
            hyper.insert("r".into(), r.to_string());
            hyper.insert("alpha".into(), alpha.to_string());
            hyper.insert("projection_prng_key".into(), get("projection_prng_key").and_then(Value::as_u64).unwrap_or(0).to_string());
            // Which bases PEFT drew (very_sparse wins, as in PEFT's `_pre_injection_hook`): what
            // regenerates them when they are not saved (native.rs), and what the writer says.
            let bases = if bool_of("very_sparse")? {
                "very_sparse"
            } else if bool_of("sparse")? {
                "sparse"
            } else {
                "dense"
            };
            hyper.insert("randlora_bases".into(), bases.into());
            "randlora"
        }
        t => return Err(Error::format(&cfg_name, "peft_type", format!("{t:?} is not supported (LORA, VERA, MISS, BONE, LOKR, RANDLORA)"))),
    };
    // RandLoRA files repeat the shared bases under every layer: they must equal the shared ones.
    let mut layer_copies: Vec<(String, super::factor::Factor)> = Vec::new();
    let mut tensors = Tensors::new();
    for t in st.tensors() {
        let v = st.tensor_f32(t)?;
        if !super::term::all_finite(&v) {
            let i = v.iter().position(|x| !x.is_finite()).unwrap_or(0);
            return Err(Error::format(&file, &t.name, format!("non-finite value at element {i}")));
        }
        let name = match (method, t.name.as_str()) {
            ("vera", "base_model.vera_A") => "shared.vera_A".to_string(),
            ("vera", "base_model.vera_B") => "shared.vera_B".to_string(),
            ("randlora", "base_model.randlora_A") => "shared.randlora_a".to_string(),
            ("randlora", "base_model.randlora_B") => "shared.randlora_b".to_string(),
            ("randlora", k) if k.ends_with(".randlora_A") || k.ends_with(".randlora_B") => {
                layer_copies.push((k.to_string(), v));
                continue;
            }
            _ => {
                let (l, kind, p) = parse_key(&t.name).ok_or_else(|| Error::format(&file, &t.name, "not a base_model.model.model.layers.<n>.<module>.<param> key"))?;
                let param = match (method, p) {
                    ("lora" | "rslora" | "dora", "lora_A.weight") => "lora_a",
                    ("lora" | "rslora" | "dora", "lora_B.weight") => "lora_b",
                    ("lora" | "rslora", "lora_B.bias") if lora_bias => "lora_bias",
                    ("dora", "lora_magnitude_vector" | "lora_magnitude_vector.weight") => "magnitude",
                    ("vera", "vera_lambda_b") => "vera_lambda_b",
                    ("vera", "vera_lambda_d") => "vera_lambda_d",
                    ("miss", "miss_block" | "bone_block") => "miss_block",
                    ("lokr", "lokr_w1") => "lokr_w1",
                    ("lokr", "lokr_w1_a") => "lokr_w1_a",
                    ("lokr", "lokr_w1_b") => "lokr_w1_b",
                    ("lokr", "lokr_w2") => "lokr_w2",
                    ("lokr", "lokr_w2_a") => "lokr_w2_a",
                    ("lokr", "lokr_w2_b") => "lokr_w2_b",
                    ("randlora", "randlora_lambda") => "randlora_lambda",
                    ("randlora", "randlora_gamma") => "randlora_gamma",
                    _ => return Err(Error::format(&file, &t.name, format!("unexpected parameter {p:?} for {peft_type}"))),
                };
                format!("blk.{l}.{}.{param}", kind.gguf_name())
            }
        };
        tensors.insert(name, (t.shape.clone(), v));
    }
    for (k, v) in &layer_copies {
        let shared = if k.ends_with("_A") { "shared.randlora_a" } else { "shared.randlora_b" };
        match tensors.get(shared) {
            Some((_, s)) if s == v => {}
            Some(_) => return Err(Error::format(&file, k, "differs from the shared base base_model.randlora_A / _B")),
            None => return Err(Error::format(&file, "base_model.randlora_A", "missing, but the per-layer copies are there")),
        }
    }
    // Without saved projections the build step regenerates them from projection_prng_key.
    let not_saved = get("save_projection").and_then(Value::as_bool) == Some(false);
    if method == "randlora" && !tensors.contains_key("shared.randlora_a") && !not_saved {
        return Err(Error::format(&file, "base_model.randlora_A", "missing, and the config does not say save_projection=false"));
    }
    if method == "vera" && !tensors.contains_key("shared.vera_A") && !not_saved {
        return Err(Error::format(&file, "base_model.vera_A", "missing, and the config does not say save_projection=false"));
    }
    if matches!(method, "lora" | "rslora" | "dora" | "lokr") {
        apply_patterns(&cfg, &cfg_name, method, &file, &mut hyper, &tensors)?;
    }
    Ok(NativeAdapter { method: method.into(), hyper, base_fingerprint: None, tensors, source: file })
}

/// One entry of PEFT's `rank_pattern` / `alpha_pattern`.
struct Pattern {
    key: String,
    re: regex::Regex,
    value: f64,
}

/// The entries of the config's `field` (`rank_pattern` or `alpha_pattern`; absent or null: none),
/// in the order serde_json gives them: sorted by key, which is the order PEFT writes them in
/// (`sort_keys=True`) and hence the order PEFT itself matches them in after loading. Each key is a
/// Python regular expression that PEFT applies as `re.match(rf"(.*\.)?({key})$", module_name)`
/// (`peft.utils.other.get_pattern_key`); here the same expression anchored at the start, in the
/// `regex` crate's syntax (the common subset: a key only Python understands is refused).
fn patterns(cfg: &Value, field: &str, cfg_name: &str, integer: bool) -> Result<Vec<Pattern>> {
    let Some(v) = cfg.get(field).filter(|v| !v.is_null()) else { return Ok(Vec::new()) };
    let map = v.as_object().ok_or_else(|| Error::format(cfg_name, field, "not an object"))?;
    let mut out = Vec::with_capacity(map.len());
    for (key, val) in map {
        let name = format!("{field}.{key}");
        let value = if integer {
            val.as_u64().filter(|r| *r > 0 && *r <= 1 << 20).map(|r| r as f64).ok_or_else(|| Error::format(cfg_name, &name, "not a positive integer"))?
        } else {
            val.as_f64().filter(|a| a.is_finite()).ok_or_else(|| Error::format(cfg_name, &name, "not a finite number"))?
        };
        let re = regex::RegexBuilder::new(&format!(r"^(?:(.*\.)?({key})$)"))
            .size_limit(1 << 20)
            .build()
            .map_err(|e| Error::format(cfg_name, &name, format!("the key is not a regular expression graft can match: {e}")))?;
        out.push(Pattern { key: key.clone(), re, value });
    }
    Ok(out)
}

/// PEFT's module name of block `l`'s projection `kind` (what its patterns are matched against).
fn module_name(l: usize, kind: LinearKind) -> String {
    format!("model.layers.{l}.{}", hf_module(kind))
}

/// Resolves `rank_pattern` / `alpha_pattern` per adapted layer as PEFT does (first matching key, else
/// `r` / the global alpha): checks each layer's rank against its tensors, and records a per-layer
/// `alpha.<blk.l.linear>` (and, for LoKr, whose scale uses `r` even where no tensor shows it,
/// `r.<blk.l.linear>`) where it differs from the global one.
fn apply_patterns(cfg: &Value, cfg_name: &str, method: &str, file: &str, hyper: &mut Hyper, tensors: &Tensors) -> Result<()> {
    let ranks = patterns(cfg, "rank_pattern", cfg_name, true)?;
    let alphas = patterns(cfg, "alpha_pattern", cfg_name, false)?;
    if ranks.is_empty() && alphas.is_empty() {
        return Ok(());
    }
    let r_cfg: Option<f64> = hyper.get("r").and_then(|v| v.parse().ok());
    let alpha_cfg: f64 = hyper.get("alpha").and_then(|v| v.parse().ok()).unwrap_or(f64::NAN);
    for (l, kind) in super::native::targets(tensors, file)? {
        let module = module_name(l, kind);
        let prefix = format!("blk.{l}.{}", kind.gguf_name());
        let hf = |p: &str| format!("base_model.model.{module}.{p}");
        let (r, from) = match ranks.iter().find(|p| p.re.is_match(&module)) {
            Some(p) => (Some(p.value), format!("rank_pattern key {:?}", p.key)),
            None => (r_cfg, "r".to_string()),
        };
        // The rank the tensors show (LoKr's full w1 and w2 show none).
        let shown = match method {
            "lokr" => [("lokr_w1_a", 1), ("lokr_w2_a", 1)].into_iter().find_map(|(p, ax)| tensors.get(&format!("{prefix}.{p}")).map(|(s, _)| (hf(p), s.get(ax).copied()))),
            _ => tensors.get(&format!("{prefix}.lora_a")).map(|(s, _)| (hf("lora_A.weight"), s.first().copied())),
        };
        if let (Some(r), Some((name, got))) = (r, shown) {
            if got != Some(r as usize) {
                return Err(Error::format(file, name, format!("rank {got:?}, but the config gives {module} rank {r} ({from})")));
            }
        }
        if method == "lokr" {
            if let Some(r) = r.filter(|r| Some(*r) != r_cfg) {
                hyper.insert(format!("r.{prefix}"), r.to_string());
            }
        }
        if let Some(p) = alphas.iter().find(|p| p.re.is_match(&module)) {
            if p.value != alpha_cfg {
                hyper.insert(format!("alpha.{prefix}"), p.value.to_string());
            }
        }
    }
    Ok(())
}

/// `rank_pattern` and `alpha_pattern` for PEFT's config: one key per layer whose rank (`rank_of`
/// its prefix; `None`: `r`) differs from `r` or that has its own `alpha.<prefix>`, each key the
/// layer's full module name with its dots escaped (so it matches that module alone).
fn write_patterns(n: &NativeAdapter, targets: &std::collections::BTreeSet<(usize, LinearKind)>, r: usize, rank_of: impl Fn(&str) -> Option<usize>) -> Result<(Value, Value)> {
    let mut ranks = serde_json::Map::new();
    let mut alphas = serde_json::Map::new();
    for &(l, kind) in targets {
        let prefix = format!("blk.{l}.{}", kind.gguf_name());
        let key = regex::escape(&module_name(l, kind));
        if let Some(rl) = rank_of(&prefix).filter(|rl| *rl != r) {
            ranks.insert(key.clone(), json!(rl));
        }
        let ak = format!("alpha.{prefix}");
        if let Some(v) = n.hyper.get(&ak) {
            let a: f64 = v.parse().map_err(|_| Error::format(&n.source, &ak, format!("cannot parse {v:?}")))?;
            alphas.insert(key, json_number(a));
        }
    }
    Ok((Value::Object(ranks), Value::Object(alphas)))
}

/// An integral value as a JSON integer (as PEFT writes `lora_alpha: 8`), else as a float.
fn json_number(v: f64) -> Value {
    if v.fract() == 0.0 && v.abs() < 9.0e15 {
        json!(v as i64)
    } else {
        json!(v)
    }
}

/// Writes a PEFT directory (`adapter_config.json`, `adapter_model.safetensors`) for LoRA, rsLoRA,
/// DoRA, VeRA, MiSS, LoKr or RandLoRA native tensors in HF row order (`qk_rows = hf`; convert first
/// otherwise): per-layer ranks and alphas as `rank_pattern` / `alpha_pattern`, LoRA biases as
/// `lora_B.bias` with `lora_bias: true`, and `save_projection` as the shared tensors are present.
pub fn write(dir: &Path, n: &NativeAdapter, base_model_name: Option<&str>) -> Result<()> {
    let file = dir.display().to_string();
    if n.hyper.get("qk_rows").map(String::as_str) != Some("hf") {
        return Err(Error::invalid("peft export", "tensors are not in HF row order (convert them first)"));
    }
    let targets = super::native::targets(&n.tensors, &n.source)?;
    let mut modules: Vec<&str> = targets.iter().map(|(_, k)| hf_module(*k).rsplit('.').next().unwrap()).collect();
    modules.sort();
    modules.dedup();
    let hyper_f = |k: &str| -> Result<f64> { n.hyper.get(k).and_then(|v| v.parse().ok()).ok_or_else(|| Error::format(&n.source, k, "missing hyper-parameter")) };
    let (cfg, names): (Value, Vec<(String, String)>) = match n.method.as_str() {
        "lora" | "rslora" | "dora" => {
            let rank_of = |p: &str| n.tensors.get(&format!("{p}.lora_a")).and_then(|(s, _)| s.first().copied());
            let r = match n.hyper.get("r") {
                Some(v) => v.parse::<usize>().map_err(|_| Error::format(&n.source, "r", format!("cannot parse {v:?}")))?,
                None => n.tensors.iter().find(|(k, _)| k.ends_with(".lora_a")).map(|(_, (s, _))| s[0]).unwrap_or(0),
            };
            let (rank_pattern, alpha_pattern) = write_patterns(n, &targets, r, rank_of)?;
            let lora_bias = n.tensors.keys().any(|k| k.ends_with(".lora_bias"));
            if lora_bias && n.method == "dora" {
                return Err(Error::invalid("peft export", "PEFT has no DoRA with lora_bias"));
            }
            let cfg = json!({
                "peft_type": "LORA", "task_type": "CAUSAL_LM", "base_model_name_or_path": base_model_name,
                "r": r, "lora_alpha": json_number(hyper_f("alpha")?), "use_rslora": n.method == "rslora" || n.hyper.get("rslora").is_some_and(|v| v == "true"),
                "use_dora": n.method == "dora", "lora_dropout": 0.0, "bias": "none", "fan_in_fan_out": false,
                "target_modules": modules, "init_lora_weights": true, "inference_mode": true,
                "rank_pattern": rank_pattern, "alpha_pattern": alpha_pattern, "lora_bias": lora_bias,
            });
            let names = [("lora_a", "lora_A.weight"), ("lora_b", "lora_B.weight"), ("lora_bias", "lora_B.bias"), ("magnitude", "lora_magnitude_vector")];
            (cfg, names.iter().map(|(g, p)| (g.to_string(), p.to_string())).collect())
        }
        "vera" => {
            let r = match n.tensors.get("shared.vera_A") {
                Some((s, _)) => s[0],
                None => n.hyper.get("r").and_then(|v| v.parse::<usize>().ok()).unwrap_or(0),
            };
            let cfg = json!({
                "peft_type": "VERA", "task_type": "CAUSAL_LM", "base_model_name_or_path": base_model_name,
                "r": r, "projection_prng_key": n.hyper.get("projection_prng_key").and_then(|v| v.parse::<u64>().ok()).unwrap_or(0),
                "save_projection": n.tensors.contains_key("shared.vera_A"), "vera_dropout": 0.0, "d_initial": 0.1, "bias": "none", "fan_in_fan_out": false,
                "target_modules": modules, "inference_mode": true,
            });
            (cfg, vec![("vera_lambda_b".into(), "vera_lambda_b".into()), ("vera_lambda_d".into(), "vera_lambda_d".into())])
        }
        "miss" => {
            // [r, w], or [n_out/r, r, r] for "bat".
            let shape = n.tensors.iter().find(|(k, _)| k.ends_with(".miss_block")).map(|(_, (s, _))| s.clone()).unwrap_or_default();
            let bat = shape.len() == 3;
            let r = if bat { shape[1] } else { shape.first().copied().unwrap_or(0) };
            let mut cfg = json!({
                "peft_type": "MISS", "task_type": "CAUSAL_LM", "base_model_name_or_path": base_model_name,
                "r": r, "miss_dropout": 0.0, "init_weights": true, "bias": "none", "target_modules": modules, "inference_mode": true,
            });
            if bat {
                cfg["init_weights"] = "bat".into();
            } else if let Some(mr) = n.hyper.get("mini_r").and_then(|v| v.parse::<u64>().ok()) {
                cfg["init_weights"] = "mini".into();
                cfg["mini_r"] = mr.into();
            }
            (cfg, vec![("miss_block".into(), "miss_block".into())])
        }
        "lokr" => {
            let r = n.hyper.get("r").and_then(|v| v.parse::<usize>().ok()).unwrap_or(0);
            // A layer's rank: its own r.<prefix>, else what its factors show, else r.
            let rank_of = |p: &str| {
                n.hyper.get(&format!("r.{p}")).and_then(|v| v.parse::<usize>().ok()).or_else(|| {
                    ["lokr_w1_a", "lokr_w2_a"].iter().find_map(|t| n.tensors.get(&format!("{p}.{t}")).and_then(|(s, _)| s.get(1).copied()))
                })
            };
            let (rank_pattern, alpha_pattern) = write_patterns(n, &targets, r, rank_of)?;
            let cfg = json!({
                "peft_type": "LOKR", "task_type": "CAUSAL_LM", "base_model_name_or_path": base_model_name,
                "r": r, "alpha": json_number(hyper_f("alpha")?), "rank_pattern": rank_pattern, "alpha_pattern": alpha_pattern,
                "rank_dropout": 0.0, "module_dropout": 0.0, "decompose_both": n.tensors.keys().any(|k| k.ends_with(".lokr_w1_a")),
                "decompose_factor": n.hyper.get("decompose_factor").and_then(|v| v.parse::<i64>().ok()).unwrap_or(-1),
                "use_effective_conv2d": false, "init_weights": true, "target_modules": modules, "inference_mode": true,
            });
            (cfg, ["lokr_w1", "lokr_w1_a", "lokr_w1_b", "lokr_w2", "lokr_w2_a", "lokr_w2_b"].iter().map(|k| (k.to_string(), k.to_string())).collect())
        }
        "randlora" => {
            let cfg = json!({
                "peft_type": "RANDLORA", "task_type": "CAUSAL_LM", "base_model_name_or_path": base_model_name,
                "r": n.hyper.get("r").and_then(|v| v.parse::<u64>().ok()).unwrap_or(0), "randlora_alpha": json_number(hyper_f("alpha")?),
                "projection_prng_key": n.hyper.get("projection_prng_key").and_then(|v| v.parse::<u64>().ok()).unwrap_or(0),
                "save_projection": n.tensors.contains_key("shared.randlora_a"), "randlora_dropout": 0.0, "sparse": n.hyper.get("randlora_bases").is_some_and(|b| b == "sparse"), "very_sparse": n.hyper.get("randlora_bases").is_some_and(|b| b == "very_sparse"), "bias": "none", "fan_in_fan_out": false,
                "target_modules": modules, "inference_mode": true,
            });
            (cfg, vec![("randlora_lambda".into(), "randlora_lambda".into()), ("randlora_gamma".into(), "randlora_gamma".into())])
        }
        m => return Err(Error::invalid("peft export", format!("PEFT has no format for {m:?} here (LoRA, rsLoRA, DoRA, VeRA, MiSS, LoKr, RandLoRA)"))),
    };
    let mut out: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    for (k, (shape, v)) in &n.tensors {
        let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
        let hf = if k == "shared.vera_A" {
            "base_model.vera_A".to_string()
        } else if k == "shared.vera_B" {
            "base_model.vera_B".to_string()
        } else if k == "shared.randlora_a" || k == "shared.randlora_b" {
            let ab = if k.ends_with('a') { "A" } else { "B" };
            // PEFT repeats the shared bases under every adapted layer.
            for (l, kind) in &targets {
                out.push((format!("base_model.model.model.layers.{l}.{}.randlora_{ab}", hf_module(*kind)), shape.clone(), bytes.clone()));
            }
            format!("base_model.randlora_{ab}")
        } else {
            let parsed = (|| {
                let rest = k.strip_prefix("blk.")?;
                let (l, rest) = rest.split_once('.')?;
                let (lin, param) = rest.split_once('.')?;
                let kind = LinearKind::ALL.into_iter().find(|kk| kk.gguf_name() == lin)?;
                let hf_param = names.iter().find(|(g, _)| g == param)?.1.clone();
                Some(format!("base_model.model.model.layers.{l}.{}.{hf_param}", hf_module(kind)))
            })();
            parsed.ok_or_else(|| Error::format(&n.source, k, "no PEFT name for this tensor"))?
        };
        out.push((hf, shape.clone(), bytes));
    }
    let mut views = Vec::new();
    for (k, shape, b) in &out {
        views.push((k.clone(), safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), b).map_err(|e| Error::format(&file, k, e.to_string()))?));
    }
    let mut meta = std::collections::HashMap::new();
    meta.insert("format".to_string(), "pt".to_string());
    let bytes = safetensors::serialize(views, &Some(meta)).map_err(|e| Error::format(&file, "safetensors", e.to_string()))?;
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    write_atomic(&dir.join("adapter_model.safetensors"), &bytes)?;
    write_atomic(&dir.join("adapter_config.json"), serde_json::to_string_pretty(&cfg).expect("json").as_bytes())?;
    Ok(())
}
