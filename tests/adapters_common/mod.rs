//! Random adapters for the adapter tests.
#![allow(dead_code)]
use graft::adapter::methods::{Hyper, Tensors};
use graft::adapter::native::NativeAdapter;
use graft::model::tiny::Normal;
use graft::model::{LinearKind, Model};

/// Random native tensors of `method` on every projection of every block.
pub fn random_native(model: &Model, method: &str, r: usize, seed: u64, hf_rows: bool) -> NativeAdapter {
    let mut g = Normal::new(seed);
    let mut t = Tensors::new();
    let mut hyper = Hyper::new();
    let (mut max_in, mut max_out) = (0, 0);
    for (l, blk) in model.weights.blocks.iter().enumerate() {
        for kind in LinearKind::ALL {
            let w = blk.linear(kind);
            let p = format!("blk.{l}.{}", kind.gguf_name());
            max_in = max_in.max(w.n_in);
            max_out = max_out.max(w.n_out);
            match method {
                "lora" | "rslora" | "dora" => {
                    t.insert(format!("{p}.lora_a"), (vec![r, w.n_in], g.vec(r * w.n_in, 0.2).into()));
                    t.insert(format!("{p}.lora_b"), (vec![w.n_out, r], g.vec(w.n_out * r, 0.2).into()));
                    if method == "dora" {
                        t.insert(format!("{p}.magnitude"), (vec![w.n_out], (0..w.n_out).map(|_| 0.8 + 0.1 * g.sample().abs()).collect()));
                    }
                }
                "vera" => {
                    t.insert(format!("{p}.vera_lambda_d"), (vec![r], g.vec(r, 0.5).into()));
                    t.insert(format!("{p}.vera_lambda_b"), (vec![w.n_out], g.vec(w.n_out, 0.5).into()));
                }
                m => panic!("no generator for {m}"),
            }
        }
    }
    match method {
        "lora" | "dora" => {
            hyper.insert("alpha".into(), "3".into());
        }
        "rslora" => {
            hyper.insert("alpha".into(), "3".into());
            hyper.insert("rslora".into(), "true".into());
        }
        "vera" => {
            t.insert("shared.vera_A".into(), (vec![r, max_in], g.vec(r * max_in, 0.3).into()));
            t.insert("shared.vera_B".into(), (vec![max_out, r], g.vec(max_out * r, 0.3).into()));
        }
        _ => {}
    }
    if hf_rows {
        hyper.insert("qk_rows".into(), "hf".into());
    }
    NativeAdapter { method: method.into(), hyper, base_fingerprint: None, tensors: t, source: format!("<random {method}>") }
}


/// Native tensors of one of the methods written by their own modules (their seeded `init` on every
/// projection they apply to), with every stored value except seeds and indices perturbed so that
/// the adapter is far from its (often zero) initial delta.
pub fn random_native_by_init(model: &Model, method: &str, r: usize, seed: u32) -> NativeAdapter {
    use graft::adapter::methods::{
        blocklora::BlockLoraLayer, lamda::LamdaLayer, lokr::LokrLayer, loldu::LolduLayer, loraxs::LoraXsLayer, lorta::{LortaLayer, LortaShared},
        miss::MissLayer, nola::NolaLayer, randlora::{RandLoraLayer, RandLoraShared}, LayerMethod,
    };
    use graft::adapter::native::dequantize;
    use graft::adapter::rng::Rounding;
    use std::sync::Arc;
    let cfg = &model.config;
    let alpha = 2.0;
    let mut t = Tensors::new();
    let mut hyper = Hyper::new();
    hyper.insert("alpha".into(), alpha.to_string());
    let (mut max_in, mut max_out) = (0, 0);
    for blk in &model.weights.blocks {
        for kind in LinearKind::ALL {
            max_in = max_in.max(blk.linear(kind).n_in);
            max_out = max_out.max(blk.linear(kind).n_out);
        }
    }
    let rl_shared = Arc::new(RandLoraShared::generate(r, max_out, max_in, seed, Rounding::Bf16));
    let lorta_shared = Arc::new(LortaShared::init(cfg.n_embd, cfg.head_dim, cfg.n_head, 4, model.weights.blocks.len(), r, alpha, 1.0, seed));
    if method == "randlora" {
        rl_shared.save(&mut t);
    }
    if method == "lorta" {
        lorta_shared.save(&mut t);
    }
    for (l, blk) in model.weights.blocks.iter().enumerate() {
        for kind in LinearKind::ALL {
            let w = blk.linear(kind);
            let (ni, no) = (w.n_in, w.n_out);
            let p = format!("blk.{l}.{}", kind.gguf_name());
            let w0: Vec<f64> = dequantize(model, l, kind).unwrap().iter().map(|v| *v as f64).collect();
            let s = seed + l as u32 * 7 + kind as u32;
            match method {
                "lora-xs" => LoraXsLayer::init_xs(&w0, ni, no, r, alpha, s).unwrap().save(&p, &mut t),
                "loldu" => LolduLayer::init(&w0, ni, no, r, alpha).unwrap().save(&p, &mut t),
                "nola" => NolaLayer::init(ni, no, r, 6, 5, alpha, s).save(&p, &mut t),
                "miss" => MissLayer::init(ni, no, r).save(&p, &mut t),
                "miss-bat" | "miss-bat-hf" => MissLayer::init_bat(ni, no, r).save(&p, &mut t),
                "lokr" => LokrLayer::init(ni, no, r, alpha, -1, s).save(&p, &mut t),
                "lamda" => LamdaLayer::init(ni, no, r, alpha, s).save(&p, &mut t),
                "block-lora" => BlockLoraLayer::init(ni, no, r, 2, alpha, s).save(&p, &mut t),
                "randlora" => RandLoraLayer::init(rl_shared.clone(), ni, no, alpha).unwrap().save(&p, &mut t),
                "lorta" => {
                    // LoRTA's tensor covers the attention projections with n_head heads (q, o).
                    let m = match kind {
                        LinearKind::Q => 0,
                        LinearKind::O => 3,
                        _ => continue,
                    };
                    LortaLayer::new(lorta_shared.clone(), l, m).unwrap().save(&p, &mut t)
                }
                m => panic!("no init for {m}"),
            }
        }
    }
    if method == "lokr" {
        hyper.insert("r".into(), r.to_string());
    }
    let mut g = Normal::new(seed as u64 + 99);
    for (name, (_, v)) in t.iter_mut() {
        if name.contains("seed") || name.ends_with("index") {
            continue;
        }
        let scale = v.iter().fold(0f32, |m, x| m.max(x.abs())).max(0.1);
        for x in v.iter_mut() {
            *x += 0.3 * scale * g.sample();
        }
    }
    // MiSS "bat" is MiSS with three-axis blocks; "-hf": its attn_q / attn_k rows in HF order.
    if method == "miss-bat-hf" {
        hyper.insert("qk_rows".into(), "hf".into());
    }
    let stored = if method.starts_with("miss-bat") { "miss" } else { method };
    NativeAdapter { method: stored.into(), hyper, base_fingerprint: None, tensors: t, source: format!("<random {method}>") }
}
