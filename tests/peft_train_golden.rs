//! One training step against PEFT's: on the tiny llama of `scripts/make_peft_train_fixtures.py`
//! (saved as GGUF and as transformers' safetensors), a LoRA and a VeRA adapter with random
//! non-zero weights, one sequence with masked labels. graft's logits, loss, adapter gradients and
//! the tensors after one AdamW step match PEFT's (torch 2.15 CPU, fp32) within the tolerances
//! below: the two differ only in the order of f32 sums.
use graft::adapter::native::qk_perm;
use graft::adapter::peft::hf_module;
use graft::adapter::{load, Adapter, AdapterSet, Term};
use graft::format::safetensors::SafeTensorsFile;
use graft::model::{LinearKind, Logits, Model, Numerics, Runner, SeqInput};
use graft::train::backprop::{loss_and_grad, Grads, TermGrad};
use graft::train::data::Sequence;
use graft::train::optim::{AdamW, AdamWConfig};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Logits: largest difference over the largest magnitude.
const TOL_LOGITS: f32 = 1e-5;
/// Loss: relative.
const TOL_LOSS: f64 = 1e-5;
/// Gradients: per tensor, largest difference over the tensor's largest magnitude.
const TOL_GRAD: f32 = 1e-4;
/// Tensors after the AdamW step: largest difference, absolute (the step is about lr = 1e-2 per element).
const TOL_STEP: f32 = 1e-5;

fn data() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/peft_train")
}

fn tensors(p: &Path) -> HashMap<String, (Vec<usize>, Vec<f32>)> {
    let f = SafeTensorsFile::open(p).unwrap();
    f.tensors()
        .iter()
        .map(|t| {
            let b = f.tensor_data(&t.name).unwrap();
            assert_eq!(t.dtype, "F32", "{}", t.name);
            (t.name.clone(), (t.shape.clone(), b.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect()))
        })
        .collect()
}

fn rel(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    let m = b.iter().fold(1e-12f32, |m, v| m.max(v.abs()));
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max) / m
}

/// For each GGUF row of projection `kind`, the HF row (q/k are permuted; others the identity).
fn rows(model: &Model, kind: LinearKind, n_out: usize) -> Vec<usize> {
    match kind {
        LinearKind::Q => qk_perm(n_out, model.config.n_head),
        LinearKind::K => qk_perm(n_out, model.config.n_head_kv),
        _ => (0..n_out).collect(),
    }
}

fn sequence() -> Sequence {
    let j: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(data().join("batch.json")).unwrap()).unwrap();
    let toks: Vec<u32> = j["tokens"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect();
    let labels: Vec<i64> = j["labels"].as_array().unwrap().iter().map(|v| v.as_i64().unwrap()).collect();
    // transformers shifts inside: position i predicts labels[i + 1]; the last position predicts nothing.
    let targets = (0..toks.len()).map(|i| labels.get(i + 1).filter(|&&l| l >= 0).map(|&l| l as u32)).collect();
    Sequence { input: toks, targets }
}

/// `(ours, peft's)` pairs of every trainable tensor of `ad`, PEFT's mapped to graft's layout.
fn pairs<'a>(model: &Model, ad: &'a mut Adapter, g: Option<&'a Grads>, peft: &HashMap<String, (Vec<usize>, Vec<f32>)>) -> Vec<(String, Vec<f32>, Vec<f32>)> {
    let mut out = Vec::new();
    for l in 0..model.config.n_layer {
        for kind in LinearKind::ALL {
            let p = format!("base_model.model.model.layers.{l}.{}", hf_module(kind));
            let get = |n: &str| peft.get(n).unwrap_or_else(|| panic!("PEFT tensor {n} missing")).1.clone();
            let ours: Vec<Vec<f32>> = match (g, &ad.layers[l][kind as usize]) {
                (Some(g), _) => match g.layers[l][kind as usize].as_ref().unwrap() {
                    TermGrad::LowRank { da, dbt } => vec![da.clone(), dbt.clone()],
                    TermGrad::Vera { dlambda_d, dlambda_b } => vec![dlambda_d.clone(), dlambda_b.clone()],
                },
                (None, Some(Term::LowRank(lr))) => vec![lr.a.to_vec(), lr.bt.to_vec()],
                (None, Some(Term::Vera(v))) => vec![v.lambda_d.clone(), v.lambda_b.clone()],
                _ => panic!("unexpected term"),
            };
            match ad.layers[l][kind as usize].as_ref().unwrap() {
                Term::LowRank(lr) => {
                    let (r, no) = (lr.r, lr.n_out);
                    let b = get(&format!("{p}.lora_B.weight"));
                    let perm = rows(model, kind, no);
                    let mut bt = vec![0f32; r * no];
                    for j in 0..r {
                        for (gr, &hr) in perm.iter().enumerate() {
                            bt[j * no + gr] = b[hr * r + j];
                        }
                    }
                    out.push((format!("{p}.lora_A"), ours[0].clone(), get(&format!("{p}.lora_A.weight"))));
                    out.push((format!("{p}.lora_B"), ours[1].clone(), bt));
                }
                Term::Vera(v) => {
                    let lb = get(&format!("{p}.vera_lambda_b"));
                    let perm = rows(model, kind, v.n_out);
                    out.push((format!("{p}.vera_lambda_d"), ours[0].clone(), get(&format!("{p}.vera_lambda_d"))));
                    out.push((format!("{p}.vera_lambda_b"), ours[1].clone(), perm.iter().map(|&h| lb[h]).collect()));
                }
                Term::Dora(_) | Term::MissBat(_) => unreachable!("LoRA and VeRA only"),
            }
        }
    }
    out
}

#[test]
fn the_gguf_and_safetensors_bases_hold_the_same_weights() {
    let model = Model::load(data().join("tiny-llama.gguf")).unwrap();
    let st = tensors(&data().join("model.safetensors"));
    let kq = graft::kernels::quant::selected();
    for l in 0..model.config.n_layer {
        for kind in LinearKind::ALL {
            let w = model.weights.blocks[l].linear(kind);
            let name = format!("model.layers.{l}.{}.weight", hf_module(kind));
            let (shape, hf) = &st[&name];
            assert_eq!(shape, &vec![w.n_out, w.n_in], "{name}");
            let mut ours = vec![0f32; w.n_in];
            for (gr, &hr) in rows(&model, kind, w.n_out).iter().enumerate() {
                kq.dequantize_row(w.ty, &model.bytes(w)[gr * w.row_bytes()..(gr + 1) * w.row_bytes()], &mut ours).unwrap();
                assert_eq!(&ours[..], &hf[hr * w.n_in..(hr + 1) * w.n_in], "{name} row {hr}");
            }
        }
    }
}

fn check(method: &str) {
    let model = Arc::new(Model::load(data().join("tiny-llama.gguf")).unwrap());
    let dir = data().join(method);
    let mut ad = load::load(&dir, &model).unwrap();
    let seq = sequence();
    // Logits before the step.
    let mut runner = Runner::with_numerics(model.clone(), 1, Numerics::F32);
    let mut c = runner.new_cache();
    c.set_adapters(AdapterSet::fixed(&[(Arc::new(ad.clone()), 1.0)]));
    let logits = runner.forward(&mut [SeqInput { tokens: &seq.input, cache: &mut c, logits: Logits::All }]).unwrap().to_vec();
    let peft_logits: Vec<f32> = std::fs::read(dir.join("logits.f32")).unwrap().chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect();
    let dl = rel(&logits, &peft_logits);
    assert!(dl < TOL_LOGITS, "{method}: logits differ by {dl} of their largest");
    // Loss and gradients.
    let mut g = Grads::zeros_for(&ad).unwrap();
    let loss = loss_and_grad(&model, &ad, &seq, &mut g).unwrap() as f64;
    let j: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join("step.json")).unwrap()).unwrap();
    let peft_loss = j["loss"].as_f64().unwrap();
    assert!((loss - peft_loss).abs() <= TOL_LOSS * peft_loss, "{method}: loss {loss}, PEFT {peft_loss}");
    let grads = tensors(&dir.join("grads.safetensors"));
    let gp = pairs(&model, &mut ad, Some(&g), &grads);
    assert_eq!(gp.len(), grads.len(), "{method}: every PEFT gradient compared");
    for (name, ours, theirs) in &gp {
        let d = rel(ours, theirs);
        assert!(d < TOL_GRAD, "{method}: gradient of {name} differs by {d} of its largest");
        assert!(theirs.iter().any(|v| v.abs() > 1e-4), "{method}: PEFT's gradient of {name} is zero");
    }
    // One AdamW step (torch.optim.AdamW: lr 1e-2, weight decay 0.01, no clipping).
    let cfg = AdamWConfig { lr: 1e-2, weight_decay: 0.01, clip_norm: 0.0, warmup_steps: 0, total_steps: 1, ..AdamWConfig::default() };
    let gflat: Vec<Vec<f32>> = gp.iter().map(|(_, o, _)| o.clone()).collect();
    let mut opt = AdamW::new(cfg, &gflat.iter().map(Vec::len).collect::<Vec<_>>());
    {
        let mut params: Vec<&mut [f32]> = Vec::new();
        for t in ad.layers.iter_mut().flatten().flatten() {
            match t {
                Term::LowRank(lr) => {
                    params.push(&mut lr.a);
                    params.push(&mut lr.bt);
                }
                Term::Vera(v) => {
                    params.push(&mut v.lambda_d);
                    params.push(&mut v.lambda_b);
                }
                Term::Dora(_) | Term::MissBat(_) => unreachable!("LoRA and VeRA only"),
            }
        }
        let grefs: Vec<&[f32]> = gflat.iter().map(|v| v.as_slice()).collect();
        opt.step(&mut params, &grefs, 1).unwrap();
    }
    let after = tensors(&dir.join("after.safetensors"));
    for (name, ours, theirs) in pairs(&model, &mut ad, None, &after) {
        let d = ours.iter().zip(&theirs).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
        assert!(d < TOL_STEP, "{method}: {name} after the step differs by {d}");
    }
}

#[test]
fn lora_step_matches_peft() {
    check("lora");
}

#[test]
fn vera_step_matches_peft() {
    check("vera");
}
