//! Training's 8-bit products (`src/train/packed.rs`), each against its f32 twin on a tiny model
//! (F32 weights): the packed projections' forward and input gradient, the vocabulary head, and
//! VeRA's four shared-projection products. Rounding both operands to int8 in blocks of 32 leaves
//! a relative error of about 1/127 per value, so each whole output is within 1.5% (relative L2; 0.75% measured) of
//! the f32 product; a misplaced block, column or scale is far outside that. Splitting a product's
//! columns among threads gives the same bits.
mod adapters_common;
use adapters_common::random_native;
use graft::adapter::Term;
use graft::kernels::adapter::selected as adapter_kernels;
use graft::model::tiny::{write_tiny_llama, Normal, TinySpec};
use graft::model::{LinearKind, Model};
use graft::train::adapter_grad::{vera_backward_down, vera_down, VeraProj};
use graft::train::matmul;
use graft::train::packed::{quantize, vera_key, PackedBase, PackedVera};
use std::sync::Arc;

const TOL: f64 = 0.015;

fn tiny(name: &str) -> Arc<Model> {
    let d = std::env::temp_dir().join(format!("graft-packed-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    let p = d.join("tiny.gguf");
    write_tiny_llama(&p, TinySpec { n_embd: 128, n_ff: 160, ..TinySpec::default() }, 9).unwrap();
    Arc::new(Model::load(&p).unwrap())
}

fn rel_l2(got: &[f32], want: &[f32]) -> f64 {
    assert_eq!(got.len(), want.len());
    let d: f64 = got.iter().zip(want).map(|(a, b)| ((a - b) as f64).powi(2)).sum();
    let n: f64 = want.iter().map(|b| (*b as f64).powi(2)).sum();
    assert!(n > 0.0, "a zero reference proves nothing");
    (d / n).sqrt()
}

#[test]
fn packed_projections_and_head_match_f32() {
    let model = tiny("proj");
    let packed = PackedBase::build(&model, 2).unwrap();
    let k8 = packed.kernels();
    let mut g = Normal::new(1);
    let t = 13;
    let mut lins: Vec<(String, &graft::model::Linear, &graft::train::packed::PackedLinear)> = Vec::new();
    for l in 0..model.config.n_layer {
        for kind in LinearKind::ALL {
            let pl = packed.linear(l, kind).unwrap_or_else(|| panic!("block {l} {kind:?} packed"));
            lins.push((format!("block {l} {kind:?}"), model.weights.blocks[l].linear(kind), pl));
        }
    }
    lins.push(("head".into(), &model.weights.output, packed.output().expect("head packed")));
    for (name, w, pl) in lins {
        let x = g.vec(t * w.n_in, 1.0);
        let (mut y8, mut y32) = (vec![0f32; t * w.n_out], vec![0f32; t * w.n_out]);
        pl.forward(k8, &x, t, &mut y8, 1);
        let mut y8t = vec![0f32; t * w.n_out];
        pl.forward(k8, &x, t, &mut y8t, 3);
        assert_eq!(y8, y8t, "{name} forward: the same bits on 3 threads");
        matmul::forward(w, model.bytes(w), &x, t, &mut y32).unwrap();
        let e = rel_l2(&y8, &y32);
        assert!(e < TOL, "{name} forward: {e}");
        let dy = g.vec(t * w.n_out, 1.0);
        let start = g.vec(t * w.n_in, 0.5);
        let (mut d8, mut d32) = (start.clone(), start.clone());
        let mut d8t = d8.clone();
        pl.backward_dx(k8, &dy, t, &mut d8, 1);
        pl.backward_dx(k8, &dy, t, &mut d8t, 3);
        assert_eq!(d8, d8t, "{name} backward: the same bits on 3 threads");
        matmul::backward_dx(w, model.bytes(w), &dy, t, &mut d32).unwrap();
        let e = rel_l2(&d8, &d32);
        assert!(e < TOL, "{name} backward: {e}");
    }
}

#[test]
fn packed_vera_products_match_f32() {
    let model = tiny("vera");
    let r = 64;
    let ad = random_native(&model, "vera", r, 4, false).build("vera", &model).unwrap();
    let Some(Term::Vera(v)) = &ad.layers[0][LinearKind::Up as usize] else { panic!("a VeRA term") };
    let sh = &v.shared;
    let mut packed = PackedBase::build(&model, 1).unwrap();
    packed.add_vera(&ad);
    let pv: &PackedVera = packed.vera(vera_key(sh)).expect("VeRA packed");
    let k8 = packed.kernels();
    let p = VeraProj { a: &sh.a, bt: &sh.bt, r: sh.r, max_in: sh.max_in, max_out: sh.max_out };
    let ka = adapter_kernels();
    let mut g = Normal::new(2);
    let t = 11;
    // Every width the model's projections use, input and output.
    for (n_in, n_out) in [(128, 128), (128, 160), (160, 128), (128, 64)] {
        let x = g.vec(t * n_in, 1.0);
        let (mut u8, mut u32) = (vec![0f32; t * r], vec![0f32; t * r]);
        pv.down(k8, &quantize(k8, &x, t, n_in), &mut u8, 2);
        vera_down(&x, t, n_in, p, &mut u32);
        assert!(rel_l2(&u8, &u32) < TOL, "down {n_in}: {}", rel_l2(&u8, &u32));
        let ld = g.vec(r, 1.0);
        let (mut w8, mut w32) = (vec![0f32; t * n_out], vec![0f32; t * n_out]);
        pv.up(k8, &u32, t, &ld, n_out, &mut w8, 2);
        ka.up(&u32, r, t, r, Some(&ld), p.bt, p.max_out, n_out, None, 1.0, &mut w32, n_out);
        assert!(rel_l2(&w8, &w32) < TOL, "up {n_out}: {}", rel_l2(&w8, &w32));
        let gy = g.vec(t * n_out, 1.0);
        let (mut v8, mut v32) = (vec![1f32; t * r], vec![0f32; t * r]);
        pv.back_up(k8, &gy, t, n_out, &mut v8, 2);
        ka.down(&gy, n_out, t, p.bt, p.max_out, r, n_out, &mut v32, r);
        assert!(rel_l2(&v8, &v32) < TOL, "back up {n_out}: {}", rel_l2(&v8, &v32));
        let dz = g.vec(t * r, 1.0);
        let start = g.vec(t * n_in, 0.5);
        let (mut d8, mut d32) = (start.clone(), start);
        pv.back_down(k8, &dz, t, n_in, &mut d8, 2);
        vera_backward_down(&dz, t, n_in, p, &mut d32);
        assert!(rel_l2(&d8, &d32) < TOL, "back down {n_in}: {}", rel_l2(&d8, &d32));
    }
}

#[test]
fn vera_of_an_odd_rank_is_left_to_f32() {
    let model = tiny("odd");
    let ad = random_native(&model, "vera", 24, 4, false).build("vera", &model).unwrap();
    let Some(Term::Vera(v)) = &ad.layers[0][0] else { panic!("a VeRA term") };
    let mut packed = PackedBase::build(&model, 1).unwrap();
    packed.add_vera(&ad);
    assert!(packed.vera(vera_key(&v.shared)).is_none());
}
