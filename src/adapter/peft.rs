//! HF PEFT adapter directories: `adapter_config.json` + `adapter_model.safetensors`, for LoRA
//! (rsLoRA, DoRA), VeRA, MiSS (and old Bone files), LoKr and RandLoRA. Module names map to GGUF names (`q_proj` → `attn_q`, ...); the native
//! tensors keep PEFT's HF row order for `attn_q` / `attn_k` (`qk_rows = hf`), which the build step
//! permutes as llama.cpp's converter permutes the base.
use super::graft_format::{to_f32, write_atomic};
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
    if bool_of("fan_in_fan_out")? {
        return Err(Error::format(&cfg_name, "fan_in_fan_out", "true (Conv1D layers) is not supported: llama models use nn.Linear"));
    }
    let method = match peft_type {
        "LORA" => {
            let alpha = get("lora_alpha").and_then(Value::as_f64).ok_or_else(|| Error::format(&cfg_name, "lora_alpha", "missing or not a number"))?;
            hyper.insert("alpha".into(), alpha.to_string());
            let rs = bool_of("use_rslora")?;
            hyper.insert("rslora".into(), rs.to_string());
            if get("alpha_pattern").and_then(Value::as_object).is_some_and(|m| !m.is_empty()) {
                return Err(Error::format(&cfg_name, "alpha_pattern", "per-module alpha is not supported yet"));
            }
            if bool_of("lora_bias")? {
                return Err(Error::format(&cfg_name, "lora_bias", "LoRA biases are not supported"));
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
            if get("init_weights").and_then(Value::as_str) == Some("bat") {
                return Err(Error::format(&cfg_name, "init_weights", "MiSS \"bat\" (its delta depends on W0) is not supported"));
            }
            "miss"
        }
        "LOKR" => {
            let r = get("r").and_then(Value::as_u64).ok_or_else(|| Error::format(&cfg_name, "r", "missing or not an integer"))?;
            let alpha = get("alpha").and_then(Value::as_f64).ok_or_else(|| Error::format(&cfg_name, "alpha", "missing or not a number"))?;
            if bool_of("decompose_both")? {
                return Err(Error::format(&cfg_name, "decompose_both", "true (w1 = w1_a·w1_b) is not supported"));
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
            "randlora"
        }
        t => return Err(Error::format(&cfg_name, "peft_type", format!("{t:?} is not supported (LORA, VERA, MISS, BONE, LOKR, RANDLORA)"))),
    };
    // RandLoRA files repeat the shared bases under every layer: they must equal the shared ones.
    let mut layer_copies: Vec<(String, Vec<f32>)> = Vec::new();
    let mut tensors = Tensors::new();
    for t in st.tensors() {
        let v = to_f32(&t.dtype, st.tensor_data(&t.name)?).map_err(|m| Error::format(&file, &t.name, m))?;
        if let Some(i) = v.iter().position(|x| !x.is_finite()) {
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
                    ("dora", "lora_magnitude_vector" | "lora_magnitude_vector.weight") => "magnitude",
                    ("vera", "vera_lambda_b") => "vera_lambda_b",
                    ("vera", "vera_lambda_d") => "vera_lambda_d",
                    ("miss", "miss_block" | "bone_block") => "miss_block",
                    ("lokr", "lokr_w1") => "lokr_w1",
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
            None => return Err(Error::format(&file, "base_model.randlora_A", "missing: adapters saved with save_projection=False are not supported yet")),
        }
    }
    if method == "randlora" && !tensors.contains_key("shared.randlora_a") {
        return Err(Error::format(&file, "base_model.randlora_A", "missing: adapters saved with save_projection=False are not supported yet"));
    }
    if method == "vera" && !tensors.contains_key("shared.vera_A") && get("save_projection").and_then(Value::as_bool) != Some(false) {
        return Err(Error::format(&file, "base_model.vera_A", "missing, and the config does not say save_projection=false"));
    }
    Ok(NativeAdapter { method: method.into(), hyper, base_fingerprint: None, tensors, source: file })
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
/// DoRA or VeRA native tensors in HF row order (`qk_rows = hf`; convert first otherwise).
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
            let r = n.tensors.iter().find(|(k, _)| k.ends_with(".lora_a")).map(|(_, (s, _))| s[0]).unwrap_or(0);
            let cfg = json!({
                "peft_type": "LORA", "task_type": "CAUSAL_LM", "base_model_name_or_path": base_model_name,
                "r": r, "lora_alpha": json_number(hyper_f("alpha")?), "use_rslora": n.method == "rslora" || n.hyper.get("rslora").is_some_and(|v| v == "true"),
                "use_dora": n.method == "dora", "lora_dropout": 0.0, "bias": "none", "fan_in_fan_out": false,
                "target_modules": modules, "init_lora_weights": true, "inference_mode": true,
                "rank_pattern": {}, "alpha_pattern": {}, "lora_bias": false,
            });
            (cfg, vec![("lora_a".into(), "lora_A.weight".into()), ("lora_b".into(), "lora_B.weight".into()), ("magnitude".into(), "lora_magnitude_vector".into())])
        }
        "vera" => {
            let r = n.tensors.get("shared.vera_A").map(|(s, _)| s[0]).unwrap_or(0);
            let cfg = json!({
                "peft_type": "VERA", "task_type": "CAUSAL_LM", "base_model_name_or_path": base_model_name,
                "r": r, "projection_prng_key": n.hyper.get("projection_prng_key").and_then(|v| v.parse::<u64>().ok()).unwrap_or(0),
                "save_projection": true, "vera_dropout": 0.0, "d_initial": 0.1, "bias": "none", "fan_in_fan_out": false,
                "target_modules": modules, "inference_mode": true,
            });
            (cfg, vec![("vera_lambda_b".into(), "vera_lambda_b".into()), ("vera_lambda_d".into(), "vera_lambda_d".into())])
        }
        "miss" => {
            let r = n.tensors.iter().find(|(k, _)| k.ends_with(".miss_block")).map(|(_, (s, _))| s[0]).unwrap_or(0);
            let cfg = json!({
                "peft_type": "MISS", "task_type": "CAUSAL_LM", "base_model_name_or_path": base_model_name,
                "r": r, "miss_dropout": 0.0, "init_weights": true, "bias": "none", "target_modules": modules, "inference_mode": true,
            });
            (cfg, vec![("miss_block".into(), "miss_block".into())])
        }
        "lokr" => {
            let cfg = json!({
                "peft_type": "LOKR", "task_type": "CAUSAL_LM", "base_model_name_or_path": base_model_name,
                "r": n.hyper.get("r").and_then(|v| v.parse::<u64>().ok()).unwrap_or(0), "alpha": json_number(hyper_f("alpha")?),
                "rank_dropout": 0.0, "module_dropout": 0.0, "decompose_both": false,
                "decompose_factor": n.hyper.get("decompose_factor").and_then(|v| v.parse::<i64>().ok()).unwrap_or(-1),
                "use_effective_conv2d": false, "init_weights": true, "target_modules": modules, "inference_mode": true,
            });
            (cfg, ["lokr_w1", "lokr_w2", "lokr_w2_a", "lokr_w2_b"].iter().map(|k| (k.to_string(), k.to_string())).collect())
        }
        "randlora" => {
            let cfg = json!({
                "peft_type": "RANDLORA", "task_type": "CAUSAL_LM", "base_model_name_or_path": base_model_name,
                "r": n.hyper.get("r").and_then(|v| v.parse::<u64>().ok()).unwrap_or(0), "randlora_alpha": json_number(hyper_f("alpha")?),
                "projection_prng_key": n.hyper.get("projection_prng_key").and_then(|v| v.parse::<u64>().ok()).unwrap_or(0),
                "save_projection": true, "randlora_dropout": 0.0, "sparse": false, "very_sparse": false, "bias": "none", "fan_in_fan_out": false,
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
