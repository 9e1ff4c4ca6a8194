//! The base products of training on one projection of the default model (t = 256 rows): f32
//! dequantized panels (what training uses) against the per-row `gemm_f32` kernels and the q8 GEMM of
//! inference, forward and dX. `cargo run --release --example train_matmul`
use graft::kernels::quant;
use graft::model::{LinearKind, Model};
use graft::train::matmul;
use std::time::Instant;
fn main() {
    let model = Model::load("models/SmolLM2-135M-Instruct.Q4_1.gguf").unwrap();
    let t = 256;
    for kind in [LinearKind::Up, LinearKind::Down] {
        let w = model.weights.blocks[3].linear(kind);
        let x: Vec<f32> = (0..t * w.n_in).map(|i| ((i * 7919) % 1000) as f32 / 1000.0 - 0.5).collect();
        let mut y = vec![0f32; t * w.n_out];
        let macs = (t * w.n_in * w.n_out) as f64;
        let kq = quant::selected();
        let run = |name: &str, f: &mut dyn FnMut()| {
            f();
            let t0 = Instant::now();
            for _ in 0..5 { f(); }
            let s = t0.elapsed().as_secs_f64() / 5.0;
            println!("{kind:?} {name}: {:.2} ms, {:.1} GMAC/s", s * 1e3, macs / s / 1e9);
        };
        run("f32 panels fwd", &mut || matmul::forward(w, model.bytes(w), &x, t, &mut y).unwrap());
        run("gemm_f32 fwd", &mut || kq.gemm_f32(w.ty, w.n_in, model.bytes(w), w.n_out, &x, t, &mut y, w.n_out).unwrap());
        let at = kq.mat(w.ty).unwrap().act;
        let rb = at.row_bytes(w.n_in).unwrap();
        let mut a = vec![0u8; t * rb];
        run("q8 gemm fwd (incl. quantize)", &mut || {
            for i in 0..t { kq.quantize_act(at, &x[i * w.n_in..(i + 1) * w.n_in], &mut a[i * rb..(i + 1) * rb]).unwrap(); }
            kq.gemm(w.ty, w.n_in, model.bytes(w), w.n_out, &a, t, &mut y, w.n_out).unwrap()
        });
        let dy = y.clone();
        let mut dx = vec![0f32; t * w.n_in];
        run("f32 panels dx", &mut || matmul::backward_dx(w, model.bytes(w), &dy, t, &mut dx).unwrap());

    }
}
