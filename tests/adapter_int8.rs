//! VeRA's shared projections through the int8 products at inference (q8 numerics on CPUs with fast
//! int8, `VeraQ8::int8`): the adapter's effect on the logits, for a prefill of several rows and for
//! a one-row decode step, tracks the f32 numerics' within 10% (relative L2). Measured on this tiny
//! model at r = 32 (one block of 32 for `λ_d ⊙ Â·x`): 6.2% prefill, 2.2% decode with the int8
//! products, 3.9% / 1.7% with the Q8_0 path they replace (which keeps `λ_d ⊙ Â·x` in f32); the
//! base products of the q8 numerics round activations too. On the default model a trained VeRA's
//! GPL-3 perplexity moves by 0.08% (BENCHMARKS.md).
mod adapters_common;
use adapters_common::random_native;
use graft::adapter::{Adapter, AdapterSet, Term};
use graft::model::tiny::{write_tiny_llama, TinySpec};
use graft::model::{Logits, Model, Numerics, Runner, SeqInput};
use std::sync::Arc;

fn rel_l2(a: &[f32], b: &[f32]) -> f64 {
    let d: f64 = a.iter().zip(b).map(|(x, y)| ((x - y) as f64).powi(2)).sum();
    let n: f64 = b.iter().map(|y| (*y as f64).powi(2)).sum();
    (d / n).sqrt()
}

/// Logits of a 6-token prefill then of one decode step.
fn logits(model: &Arc<Model>, nm: Numerics, ad: Option<&Arc<Adapter>>) -> (Vec<f32>, Vec<f32>) {
    let mut runner = Runner::with_numerics(model.clone(), 2, nm);
    let mut c = runner.new_cache();
    if let Some(a) = ad {
        c.set_adapters(AdapterSet::fixed(&[(a.clone(), 1.0)]));
    }
    let toks: Vec<u32> = (0..6).map(|i| (i * 37 + 11) % 256).collect();
    let pre = runner.forward(&mut [SeqInput { tokens: &toks, cache: &mut c, logits: Logits::All }]).unwrap().to_vec();
    let dec = runner.forward(&mut [SeqInput { tokens: &[42], cache: &mut c, logits: Logits::All }]).unwrap().to_vec();
    (pre, dec)
}

#[test]
fn vera_int8_products_track_f32() {
    let d = std::env::temp_dir().join(format!("graft-adapter-int8-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    let p = d.join("tiny.gguf");
    write_tiny_llama(&p, TinySpec { n_embd: 128, n_ff: 160, ..TinySpec::default() }, 3).unwrap();
    let model = Arc::new(Model::load(&p).unwrap());
    let ad = Arc::new(random_native(&model, "vera", 32, 5, false).build("vera", &model).unwrap());
    let Some(Term::Vera(v)) = &ad.layers[0][0] else { panic!("a VeRA term") };
    let packed = v.shared.q8.as_ref().is_some_and(|q| q.int8.is_some());
    assert_eq!(packed, graft::kernels::int8::selected().fast, "int8 copies exactly where the CPU has fast int8 products");
    let (b32, bd32) = logits(&model, Numerics::F32, None);
    let (a32, ad32) = logits(&model, Numerics::F32, Some(&ad));
    let (b8, bd8) = logits(&model, Numerics::Q8, None);
    let (a8, ad8) = logits(&model, Numerics::Q8, Some(&ad));
    for (what, (w8, wo8), (w32, wo32)) in [("prefill", (&a8, &b8), (&a32, &b32)), ("decode", (&ad8, &bd8), (&ad32, &bd32))] {
        let e8: Vec<f32> = w8.iter().zip(wo8.iter()).map(|(x, y)| x - y).collect();
        let e32: Vec<f32> = w32.iter().zip(wo32.iter()).map(|(x, y)| x - y).collect();
        assert!(e32.iter().any(|v| v.abs() > 1e-2), "{what}: the adapter changes the logits");
        let e = rel_l2(&e8, &e32);
        assert!(e < 0.1, "{what}: the adapter's effect with q8 numerics is {e} (relative L2) from f32's");
    }
}
