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
                    t.insert(format!("{p}.lora_a"), (vec![r, w.n_in], g.vec(r * w.n_in, 0.2)));
                    t.insert(format!("{p}.lora_b"), (vec![w.n_out, r], g.vec(w.n_out * r, 0.2)));
                    if method == "dora" {
                        t.insert(format!("{p}.magnitude"), (vec![w.n_out], (0..w.n_out).map(|_| 0.8 + 0.1 * g.next().abs()).collect()));
                    }
                }
                "vera" => {
                    t.insert(format!("{p}.vera_lambda_d"), (vec![r], g.vec(r, 0.5)));
                    t.insert(format!("{p}.vera_lambda_b"), (vec![w.n_out], g.vec(w.n_out, 0.5)));
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
            t.insert("shared.vera_A".into(), (vec![r, max_in], g.vec(r * max_in, 0.3)));
            t.insert("shared.vera_B".into(), (vec![max_out, r], g.vec(max_out * r, 0.3)));
        }
        _ => {}
    }
    if hf_rows {
        hyper.insert("qk_rows".into(), "hf".into());
    }
    NativeAdapter { method: method.into(), hyper, base_fingerprint: None, tensors: t, source: format!("<random {method}>") }
}

