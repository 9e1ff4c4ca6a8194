//! The CUDA backend (`graft::cuda`).
//!
//! Run everywhere: `Cuda::open` fails with a clear error (no panic) where there is no GPU, no
//! driver, or no CUDA in the build; with the `cuda` feature, every kernel entry point is present in
//! the embedded PTX and the fatbins are real fatbins.
//!
//! GPU tests (`gpu_*`): each kernel against graft's CPU reference with a named tolerance. Where no
//! GPU can be opened they print `SKIP: <reason>` and return. UNVERIFIED: they were written without
//! a GPU and have never run on one; the first run on a GPU is their first test too.
mod common;
use common::Rng;
use graft::cuda::{embedded_modules, ptx_entries, AttnDims, Cuda, Device, BUILT_WITH_CUDA, NOT_BUILT};
use graft::kernels::{adapter::adapter_kernels, ops::op_kernels, quant::quant_kernels, Isa};
use graft::quant::{QuantType, WEIGHT_TYPES};

/// Every `extern "C"` kernel of csrc/cuda/*.cu, per file. A kernel that disappears from a build
/// (renamed, `#if`-ed out, a macro instantiation dropped) fails `embedded_kernels_are_all_there`.
const FORMATS: [&str; 11] = ["f32", "f16", "bf16", "q4_0", "q4_1", "q5_0", "q5_1", "q8_0", "q4_K", "q5_K", "q6_K"];

fn expected_kernels() -> Vec<(&'static str, Vec<String>)> {
    let per_format = |f: &dyn Fn(&str) -> String| FORMATS.iter().map(|x| f(x)).collect::<Vec<_>>();
    let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    vec![
        ("adamw", names(&["graft_cu_sumsq_f32", "graft_cu_adamw_f32"])),
        ("adapter", names(&["graft_cu_adapter_down_f32", "graft_cu_adapter_up_f32", "graft_cu_adapter_up_q8_0"])),
        ("add", names(&["graft_cu_add_f32", "graft_cu_scale_f32"])),
        (
            "attention",
            names(&["graft_cu_attention_f32", "graft_cu_attention_backward_dq_f32", "graft_cu_attention_backward_dkv_f32"]),
        ),
        ("bgmv", names(&["graft_cu_bgmv_down_f32", "graft_cu_bgmv_up_f32"])),
        ("cross_entropy", names(&["graft_cu_cross_entropy_forward_f32", "graft_cu_cross_entropy_backward_f32"])),
        ("dequant", per_format(&|f| format!("graft_cu_get_rows_{f}"))),
        ("gemm", per_format(&|f| format!("graft_cu_gemm_{f}_f32"))),
        ("gemm_dx", per_format(&|f| format!("graft_cu_gemm_dx_{f}"))),
        ("gemv", per_format(&|f| format!("graft_cu_gemv_{f}_f32"))),
        ("rmsnorm", names(&["graft_cu_rmsnorm_f32", "graft_cu_rmsnorm_backward_f32"])),
        ("rope", names(&["graft_cu_rope_f32", "graft_cu_rope_backward_f32"])),
        ("sample", names(&["graft_cu_argmax_f32", "graft_cu_softmax_f32"])),
        ("sgemm", names(&["graft_cu_sgemm_f32"])),
        ("swiglu", names(&["graft_cu_silu_gate_f32", "graft_cu_silu_gate_backward_f32"])),
        (
            "vera",
            names(&["graft_cu_vera_out_f32", "graft_cu_vera_dlambda_b_f32", "graft_cu_vera_dv_f32", "graft_cu_vera_dlambda_d_f32"]),
        ),
    ]
}

#[test]
fn open_errors_cleanly_without_a_gpu() {
    match Cuda::open(0) {
        Ok(c) => println!("CUDA device 0 opened: {:?}", c.info()),
        Err(e) => {
            let msg = e.to_string();
            println!("Cuda::open(0): {msg}");
            if BUILT_WITH_CUDA {
                assert!(
                    msg.contains("no CUDA driver found (libcuda.so.1)") || msg.contains("no CUDA device 0") || msg.contains("CUDA driver:"),
                    "unclear error: {msg}"
                );
            } else {
                assert!(msg.contains(NOT_BUILT), "{msg}");
            }
        }
    }
    // A device that cannot exist is refused on every machine.
    let e = Cuda::open(1 << 20).err().expect("device 1048576 opened");
    let msg = e.to_string();
    assert!(
        msg.contains(NOT_BUILT) || msg.contains("no CUDA driver found") || msg.contains("no CUDA device 1048576"),
        "{msg}"
    );
    assert!(Device::parse("cuda:1048576").unwrap().check().is_err());
    assert!(Device::Cpu.check().is_ok());
}

#[test]
fn cli_device_cuda_gives_the_backend_error() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_graft"))
        .args(["run", "--device", "cuda", "-p", "hi", "-n", "1", "-m", "/nonexistent.gguf"])
        .output()
        .expect("running graft");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    // The device is checked before the model is read: the error names the device, not the file.
    assert!(err.contains("--device cuda:0:") && !err.contains("nonexistent"), "{err}");
    assert!(
        err.contains(NOT_BUILT) || err.contains("no CUDA driver found") || err.contains("no CUDA device 0") || err.contains("not written yet"),
        "{err}"
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_graft")).args(["run", "--device", "tpu", "-p", "hi"]).output().unwrap();
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("unknown device"));
}

#[test]
fn embedded_kernels_are_all_there() {
    let mods = embedded_modules();
    if !BUILT_WITH_CUDA {
        assert!(mods.is_empty());
        println!("SKIP: built without the `cuda` feature: no kernels embedded");
        return;
    }
    let want = expected_kernels();
    let got: Vec<&str> = mods.iter().map(|m| m.name).collect();
    let want_files: Vec<&str> = want.iter().map(|(f, _)| *f).collect();
    assert_eq!(got, want_files, "csrc/cuda/*.cu files");
    for (m, (_, names)) in mods.iter().zip(&want) {
        assert!(m.ptx.contains(".target sm_80"), "{}: PTX not for compute_80", m.name);
        let entries = ptx_entries(m.ptx);
        assert_eq!(entries, names.iter().map(String::as_str).collect::<Vec<_>>(), "{}.cu entry points", m.name);
        // A fatbin starts with its magic 0xBA55ED50 (little-endian) and is bigger than its PTX alone
        // would make it only if cubins are in it: check the magic and that each name appears in it
        // (cubin symbol tables hold the names uncompressed).
        assert!(m.fatbin.len() > 16 && m.fatbin[..4] == [0x50, 0xED, 0x55, 0xBA], "{}: not a fatbin", m.name);
        for n in names {
            let found = m.fatbin.windows(n.len()).any(|w| w == n.as_bytes());
            assert!(found, "{}: {n} not in the fatbin", m.name);
        }
    }
}

// ------------------------------------------------------------------ GPU tests (UNVERIFIED)

fn gpu() -> Option<Cuda> {
    match Cuda::open(0) {
        Ok(c) => Some(c),
        Err(e) => {
            println!("SKIP: {e}");
            None
        }
    }
}

/// `nrows` rows of `n` elements of `ty`: the gguf-py test blocks (tests/data/quant) repeated, so
/// every format's real bit patterns; F32 rows are random.
fn weights(ty: QuantType, n: usize, nrows: usize, rng: &mut Rng) -> Vec<u8> {
    if ty == QuantType::F32 {
        return rng.vec(n * nrows, 1.0).iter().flat_map(|v| v.to_le_bytes()).collect();
    }
    let blocks = std::fs::read(format!("{}/tests/data/quant/{}.blocks", env!("CARGO_MANIFEST_DIR"), ty.name())).unwrap();
    let len = ty.row_bytes(n).unwrap() * nrows;
    blocks.iter().copied().cycle().skip(ty.type_size() * 3).take(len).collect()
}

fn dequant(ty: QuantType, n: usize, nrows: usize, w: &[u8]) -> Vec<f32> {
    let r = quant_kernels(Isa::Ref).unwrap();
    let stride = ty.row_bytes(n).unwrap();
    let mut out = vec![0f32; n * nrows];
    for (row, o) in w.chunks_exact(stride).zip(out.chunks_exact_mut(n)) {
        r.dequantize_row(ty, row, o).unwrap();
    }
    out
}

/// Products: f32 sums on the GPU (in a different order) against the CPU reference's double sums,
/// so the error is bounded by a multiple of f32 epsilon times sum |w·x| (n <= 768 here).
const TOL_PRODUCT: f64 = 1e-5;

#[test]
fn gpu_dequantization_is_bit_exact() {
    let Some(c) = gpu() else { return };
    for ty in WEIGHT_TYPES {
        let mut rng = Rng(7);
        let (n, nrows) = (if ty.block_size() == 256 { 512 } else { 96 }, 5);
        let w = weights(ty, n, nrows, &mut rng);
        let want = dequant(ty, n, nrows, &w);
        let wd = c.upload(&w).unwrap();
        let ids = c.upload(&[4i32, 0, 2]).unwrap();
        let mut y = c.zeros::<f32>(3 * n).unwrap();
        c.get_rows(ty, n, nrows, &wd, Some(&ids), 3, &mut y).unwrap();
        let got = c.download(&y).unwrap();
        for (i, &r) in [4usize, 0, 2].iter().enumerate() {
            for k in 0..n {
                let (g, w) = (got[i * n + k], want[r * n + k]);
                assert_eq!(g.to_bits(), w.to_bits(), "{ty}: row {r} element {k}: GPU {g} vs CPU {w}");
            }
        }
    }
}

#[test]
fn gpu_matmul_and_dx_match_the_cpu_reference() {
    let Some(c) = gpu() else { return };
    let cpu = quant_kernels(Isa::Ref).unwrap();
    for ty in WEIGHT_TYPES {
        let bs = ty.block_size().max(32);
        for (n, nrows, m) in [(bs, 1, 1), (3 * bs, 7, 2), (2 * bs, 65, 67), (bs, 130, 5)] {
            let mut rng = Rng(11 + n as u64);
            let w = weights(ty, n, nrows, &mut rng);
            let wf = dequant(ty, n, nrows, &w);
            let x = rng.vec(m * n, 1.0);
            let mut want = vec![0f32; m * nrows];
            cpu.gemm_f32(ty, n, &w, nrows, &x, m, &mut want, nrows).unwrap();
            let (wd, xd) = (c.upload(&w).unwrap(), c.upload(&x).unwrap());
            let mut yd = c.zeros::<f32>(m * nrows).unwrap();
            c.matmul(ty, n, nrows, &wd, &xd, m, &mut yd).unwrap();
            let got = c.download(&yd).unwrap();
            for i in 0..m {
                for r in 0..nrows {
                    let mag: f64 = (0..n).map(|k| (wf[r * n + k] as f64 * x[i * n + k] as f64).abs()).sum();
                    let (g, e) = (got[i * nrows + r] as f64, want[i * nrows + r] as f64);
                    assert!((g - e).abs() <= TOL_PRODUCT * mag + 1e-30, "{ty} n {n} nrows {nrows} m {m}: y[{i}][{r}] GPU {g} vs CPU {e}");
                }
            }
            // dX += dY·W onto a non-zero dX.
            let dy = rng.vec(m * nrows, 1.0);
            let dx0 = rng.vec(m * n, 1.0);
            let mut want = dx0.clone();
            cpu.gemm_dx(ty, n, &w, nrows, &dy, nrows, m, &mut want, n).unwrap();
            let dyd = c.upload(&dy).unwrap();
            let mut dxd = c.upload(&dx0).unwrap();
            c.matmul_dx(ty, n, nrows, &wd, &dyd, m, &mut dxd).unwrap();
            let got = c.download(&dxd).unwrap();
            for i in 0..m {
                for k in 0..n {
                    let mag: f64 = (0..nrows).map(|r| (wf[r * n + k] as f64 * dy[i * nrows + r] as f64).abs()).sum::<f64>() + dx0[i * n + k].abs() as f64;
                    let (g, e) = (got[i * n + k] as f64, want[i * n + k] as f64);
                    assert!((g - e).abs() <= TOL_PRODUCT * mag + 1e-30, "{ty} dx n {n} nrows {nrows} m {m}: [{i}][{k}] GPU {g} vs CPU {e}");
                }
            }
        }
    }
}

/// Element-wise ops: the same f32 formula, libm vs CUDA's expf / sincosf / powf (within 2 ulp).
const TOL_ELEMENTWISE: f32 = 1e-5;

fn close(what: &str, got: &[f32], want: &[f32], tol: f32) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() <= tol * w.abs().max(1.0), "{what}: [{i}] GPU {g} vs CPU {w}");
    }
}

#[test]
fn gpu_rmsnorm_rope_silu_match_the_cpu() {
    let Some(c) = gpu() else { return };
    let ops = op_kernels(Isa::Ref).unwrap();
    let mut rng = Rng(3);
    // RMSNorm, 3 rows of 577.
    let (n, rows) = (577, 3);
    let (x, w) = (rng.vec(n * rows, 1.0), rng.vec(n, 1.0));
    let mut want = vec![0f32; n * rows];
    let mut rstd = vec![0f32; rows];
    graft::train::ops::rmsnorm_forward(&x, &w, 1e-5, &mut want, &mut rstd);
    let (xd, wd) = (c.upload(&x).unwrap(), c.upload(&w).unwrap());
    let mut yd = c.zeros::<f32>(n * rows).unwrap();
    let mut rd = c.zeros::<f32>(rows).unwrap();
    c.rmsnorm(&xd, Some(&wd), &mut yd, Some(&mut rd), n, rows, 1e-5).unwrap();
    close("rmsnorm", &c.download(&yd).unwrap(), &want, TOL_ELEMENTWISE);
    close("rmsnorm rstd", &c.download(&rd).unwrap(), &rstd, TOL_ELEMENTWISE);
    // RoPE, both layouts, forward and inverse, positions up to 3000.
    let (nh, hd, nrot, t) = (3, 64, 48, 4);
    let pos = [0i32, 1, 17, 3000];
    for neox in [false, true] {
        for inverse in [false, true] {
            let x = rng.vec(t * nh * hd, 1.0);
            let mut want = x.clone();
            for (i, row) in want.chunks_exact_mut(nh * hd).enumerate() {
                ops.rope(row, nh, hd, nrot, pos[i] as usize, 10000.0, neox, inverse);
            }
            let mut xd = c.upload(&x).unwrap();
            let pd = c.upload(&pos).unwrap();
            c.rope(&mut xd, &pd, t, nh, hd, nrot, 10000.0, neox, inverse).unwrap();
            // Angles up to 3000 rad: an ulp of difference in theta moves sin/cos by ~2.4e-4 · |x|.
            close(&format!("rope neox {neox} inverse {inverse}"), &c.download(&xd).unwrap(), &want, 1e-3);
        }
    }
    // SiLU gate.
    let (g, u) = (rng.vec(1000, 1.0).iter().map(|v| v * 8.0).collect::<Vec<_>>(), rng.vec(1000, 1.0));
    let mut want = g.clone();
    ops.silu_gate(&mut want, &u);
    let mut gd = c.upload(&g).unwrap();
    c.silu_gate(&mut gd, &c.upload(&u).unwrap(), 1000).unwrap();
    close("silu_gate", &c.download(&gd).unwrap(), &want, TOL_ELEMENTWISE);
}

#[test]
fn gpu_attention_matches_the_training_reference() {
    let Some(c) = gpu() else { return };
    for (nh, nkv, hd, t) in [(3, 1, 8, 7), (4, 2, 64, 33), (9, 3, 64, 300)] {
        let mut rng = Rng(5 + t as u64);
        let (q, k, v) = (rng.vec(t * nh * hd, 1.0), rng.vec(t * nkv * hd, 1.0), rng.vec(t * nkv * hd, 1.0));
        let shape = graft::train::ops::AttnShape { n_head: nh, n_head_kv: nkv, head_dim: hd };
        let mut probs = vec![0f32; nh * t * t];
        let mut out = vec![0f32; t * nh * hd];
        graft::train::ops::attention_forward(&q, &k, &v, shape, &mut probs, &mut out);
        let pos: Vec<i32> = (0..t as i32).collect();
        let (qd, kd, vd, pd) = (c.upload(&q).unwrap(), c.upload(&k).unwrap(), c.upload(&v).unwrap(), c.upload(&pos).unwrap());
        let mut probs_d = c.zeros::<f32>(nh * t * t).unwrap();
        let mut out_d = c.zeros::<f32>(t * nh * hd).unwrap();
        let dims = AttnDims { n_head: nh, n_head_kv: nkv, head_dim: hd };
        c.attention(&qd, &kd, &vd, &pd, t, t, dims, &mut probs_d, &mut out_d).unwrap();
        // Scores summed in another order, then exp: 1e-5 relative on probabilities and outputs.
        close("attention probs", &c.download(&probs_d).unwrap(), &probs, 1e-5);
        close("attention out", &c.download(&out_d).unwrap(), &out, 1e-5);
    }
}

#[test]
fn gpu_argmax_adapters_cross_entropy_match_the_cpu() {
    let Some(c) = gpu() else { return };
    let mut rng = Rng(9);
    // argmax: ties resolve to the first index, as graft::model::sampler::argmax.
    let (n, rows) = (49_152, 3);
    let mut logits = rng.vec(n * rows, 1.0);
    logits[100] = 5.0;
    logits[40_000] = 5.0;
    logits[n + 7] = 9.0;
    let want: Vec<i32> = logits.chunks_exact(n).map(|r| graft::model::sampler::argmax(r) as i32).collect();
    let ld = c.upload(&logits).unwrap();
    let mut od = c.zeros::<i32>(rows).unwrap();
    c.argmax(&ld, n, rows, &mut od).unwrap();
    assert_eq!(c.download(&od).unwrap(), want);
    assert_eq!(want[0], 100);
    // Adapter down / up (LoRA and VeRA's scalings) against the reference C kernels.
    let ad = adapter_kernels(Isa::Ref).unwrap();
    let (m, r, nin, nout) = (5, 16, 576, 1536);
    let (x, a, bt) = (rng.vec(m * nin, 1.0), rng.vec(r * nin, 1.0), rng.vec(r * nout, 1.0));
    let (ts, os) = (rng.vec(r, 1.0), rng.vec(nout, 1.0));
    let mut t = vec![0f32; m * r];
    ad.down(&x, nin, m, &a, nin, r, nin, &mut t, r);
    let y0 = rng.vec(m * nout, 1.0);
    let mut want = y0.clone();
    ad.up(&t, r, m, r, Some(&ts), &bt, nout, nout, Some(&os), 0.5, &mut want, nout);
    let (xd, adev, btd) = (c.upload(&x).unwrap(), c.upload(&a).unwrap(), c.upload(&bt).unwrap());
    let mut td = c.zeros::<f32>(m * r).unwrap();
    c.adapter_down(&xd, m, &adev, r, nin, &mut td).unwrap();
    close("adapter down", &c.download(&td).unwrap(), &t, 1e-4);
    let mut yd = c.upload(&y0).unwrap();
    let (tsd, osd) = (c.upload(&ts).unwrap(), c.upload(&os).unwrap());
    c.adapter_up(&td, m, r, Some(&tsd), &btd, nout, Some(&osd), 0.5, &mut yd).unwrap();
    close("adapter up", &c.download(&yd).unwrap(), &want, 1e-4);
    // Cross-entropy with a masked row.
    let (v, t) = (1000, 4);
    let logits = rng.vec(v * t, 1.0).iter().map(|x| x * 10.0).collect::<Vec<_>>();
    let targets = [Some(3u32), None, Some(999), Some(0)];
    let mut want = vec![0f32; t];
    graft::train::ops::cross_entropy_forward(&logits, &targets, &mut want);
    let tg: Vec<i32> = targets.iter().map(|t| t.map_or(-1, |v| v as i32)).collect();
    let mut ld = c.zeros::<f32>(t).unwrap();
    c.cross_entropy(&c.upload(&logits).unwrap(), v, t, &c.upload(&tg).unwrap(), &mut ld).unwrap();
    close("cross-entropy", &c.download(&ld).unwrap(), &want, 1e-5);
}
