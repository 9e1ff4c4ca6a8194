//! Quantized kernels: dequantization bit-exact with gguf-py (vectors made by
//! scripts/make_quant_vectors.py), every ISA's products against the reference over odd sizes with a
//! named tolerance per format, and the reference against f64 arithmetic on dequantized values.
mod common;
use common::Rng;
use graft::kernels::quant::{quant_kernels, QuantKernels};
use graft::kernels::{available_isas, Isa};
use graft::quant::{QuantType, WEIGHT_TYPES};
use half::f16;

fn data(name: &str) -> Vec<u8> {
    std::fs::read(format!("{}/tests/data/quant/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

#[test]
fn dequantization_is_bit_exact_with_gguf_py() {
    let r = quant_kernels(Isa::Ref).unwrap();
    for t in WEIGHT_TYPES {
        if t == QuantType::F32 {
            continue;
        }
        let blocks = data(&format!("{}.blocks", t.name()));
        let want: Vec<f32> = data(&format!("{}.f32", t.name())).chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect();
        let mut got = vec![0f32; want.len()];
        r.dequantize_row(t, &blocks, &mut got).unwrap();
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert_eq!(g.to_bits(), w.to_bits(), "{t}: element {i}: {g} vs gguf-py {w}");
        }
    }
}

/// Byte offsets of the f16 scale fields in a block (set to finite values in random blocks).
fn scale_offsets(t: QuantType) -> &'static [usize] {
    match t {
        QuantType::Q4_0 | QuantType::Q5_0 | QuantType::Q8_0 => &[0],
        QuantType::Q4_1 | QuantType::Q5_1 | QuantType::Q4_K | QuantType::Q5_K => &[0, 2],
        QuantType::Q6_K => &[208],
        _ => &[],
    }
}

/// `rows` random rows of `n` elements of format `t` with sane scales.
fn random_rows(t: QuantType, n: usize, rows: usize, rng: &mut Rng) -> Vec<u8> {
    let rb = t.row_bytes(n).unwrap();
    let mut out = vec![0u8; rb * rows];
    match t {
        QuantType::F32 => out.chunks_exact_mut(4).for_each(|c| c.copy_from_slice(&rng.f32().to_le_bytes())),
        QuantType::F16 => out.chunks_exact_mut(2).for_each(|c| c.copy_from_slice(&f16::from_f32(rng.f32()).to_le_bytes())),
        QuantType::BF16 => out.chunks_exact_mut(2).for_each(|c| c.copy_from_slice(&half::bf16::from_f32(rng.f32()).to_le_bytes())),
        _ => {
            out.iter_mut().for_each(|b| *b = rng.u64() as u8);
            for blk in out.chunks_exact_mut(t.type_size()) {
                for &o in scale_offsets(t) {
                    blk[o..o + 2].copy_from_slice(&f16::from_f32(rng.f32() * 0.05).to_le_bytes());
                }
            }
        }
    }
    out
}

fn dequant(k: &QuantKernels, t: QuantType, bytes: &[u8], n: usize) -> Vec<f32> {
    let rb = t.row_bytes(n).unwrap();
    let mut out = vec![0f32; bytes.len() / rb * n];
    for (r, row) in bytes.chunks_exact(rb).enumerate() {
        k.dequantize_row(t, row, &mut out[r * n..(r + 1) * n]).unwrap();
    }
    out
}

fn quantize_rows(k: &QuantKernels, act: QuantType, x: &[f32], n: usize) -> Vec<u8> {
    let rb = act.row_bytes(n).unwrap();
    let mut out = vec![0u8; x.len() / n * rb];
    for (i, row) in x.chunks_exact(n).enumerate() {
        k.quantize_act(act, row, &mut out[i * rb..(i + 1) * rb]).unwrap();
    }
    out
}

/// Tolerance of an ISA variant against the reference, relative to sum |w·x| of the dot product.
/// Integer block dots are exact; only float accumulation order differs (f32 vs the reference's
/// order; dense formats against a double-accumulating reference).
fn tol_variant(t: QuantType) -> f64 {
    match t {
        QuantType::F32 | QuantType::F16 | QuantType::BF16 => 1e-6,
        QuantType::Q4_K | QuantType::Q5_K | QuantType::Q6_K => 2e-6,
        _ => 2e-6,
    }
}

/// Tolerance of the reference products (8-bit activations) against f64 on dequantized weights and
/// dequantized activations: only float rounding of block sums and scales (relative to sum |w·x|).
const TOL_REF_VS_F64: f64 = 1e-5;
/// Loosened for the Q8_1 formats (Q4_1, Q5_1): their min term uses the activation block's sum `s`,
/// which Q8_1 stores as f16 (relative rounding 2^-11 ≈ 4.9e-4 of the m·s term).
const TOL_REF_VS_F64_Q8_1: f64 = 6e-4;
/// The fp32 product (weights dequantized on the fly, f32 activations) against f64 on the original
/// activations.
const TOL_F32_VS_F64: f64 = 1e-6;

const NS_BLOCKS: [usize; 4] = [1, 3, 7, 17];
const ROWS: [usize; 5] = [1, 3, 7, 17, 33];
const MS: [usize; 6] = [1, 2, 3, 5, 7, 9];

fn check(got: &[f32], want: &[f64], mag: &[f64], tol: f64, what: &str) {
    for (i, ((g, w), m)) in got.iter().zip(want).zip(mag).enumerate() {
        let err = (*g as f64 - w).abs() / m.max(1e-3);
        assert!(err <= tol, "{what}: element {i}: {g} vs {w} (rel err {err:e} > {tol:e})");
    }
}

#[test]
fn reference_products_match_f64_on_dequantized_values() {
    let r = quant_kernels(Isa::Ref).unwrap();
    let mut rng = Rng(99);
    for t in WEIGHT_TYPES {
        let act = t.act_type();
        for &nb in &NS_BLOCKS[..3] {
            let n = nb * t.block_size().max(32);
            let (nrows, m) = (7, 3);
            let w = random_rows(t, n, nrows, &mut rng);
            let x: Vec<f32> = (0..m * n).map(|_| rng.f32()).collect();
            let wd = dequant(r, t, &w, n);
            // Products with the activation format.
            let xq = quantize_rows(r, act, &x, n);
            let xd: Vec<f32> = if act == QuantType::F32 { x.clone() } else { dequant_act(r, act, &xq, n) };
            let mut y = vec![0f32; m * nrows];
            r.gemm(t, n, &w, nrows, &xq, m, &mut y, nrows).unwrap();
            let (want, mag) = f64_product(&wd, &xd, n, nrows, m);
            let tol = if act == QuantType::Q8_1 { TOL_REF_VS_F64_Q8_1 } else { TOL_REF_VS_F64 };
            check(&y, &want, &mag, tol, &format!("ref gemm {t} n={n}"));
            // fp32 products.
            r.gemm_f32(t, n, &w, nrows, &x, m, &mut y, nrows).unwrap();
            let (want, mag) = f64_product(&wd, &x, n, nrows, m);
            check(&y, &want, &mag, TOL_F32_VS_F64, &format!("ref gemm_f32 {t} n={n}"));
            // dX = dY·W.
            let dy: Vec<f32> = (0..m * nrows).map(|_| rng.f32()).collect();
            let mut dx = vec![0.5f32; m * n];
            r.gemm_dx(t, n, &w, nrows, &dy, nrows, m, &mut dx, n).unwrap();
            for i in 0..m {
                for k in 0..n {
                    let want: f64 = 0.5 + (0..nrows).map(|rr| dy[i * nrows + rr] as f64 * wd[rr * n + k] as f64).sum::<f64>();
                    let mag: f64 = 0.5 + (0..nrows).map(|rr| (dy[i * nrows + rr] as f64 * wd[rr * n + k] as f64).abs()).sum::<f64>();
                    assert!((dx[i * n + k] as f64 - want).abs() <= 1e-6 * mag, "ref gemm_dx {t} n={n} [{i},{k}]: {} vs {want}", dx[i * n + k]);
                }
            }
        }
    }
}

/// Dequantized activation rows (via the block layout: d at offset 0, int8 quants after the scale
/// fields).
fn dequant_act(_k: &QuantKernels, act: QuantType, xq: &[u8], n: usize) -> Vec<f32> {
    let rb = act.row_bytes(n).unwrap();
    let mut out = Vec::with_capacity(xq.len() / rb * n);
    for row in xq.chunks_exact(rb) {
        for blk in row.chunks_exact(act.type_size()) {
            match act {
                QuantType::Q8_0 | QuantType::Q8_1 => {
                    let d = f16::from_le_bytes([blk[0], blk[1]]).to_f32();
                    let off = if act == QuantType::Q8_0 { 2 } else { 4 };
                    out.extend(blk[off..off + 32].iter().map(|&q| q as i8 as f32 * d));
                }
                QuantType::Q8_K => {
                    let d = f32::from_le_bytes(blk[0..4].try_into().unwrap());
                    out.extend(blk[4..260].iter().map(|&q| q as i8 as f32 * d));
                }
                _ => unreachable!(),
            }
        }
    }
    out
}

fn f64_product(w: &[f32], x: &[f32], n: usize, nrows: usize, m: usize) -> (Vec<f64>, Vec<f64>) {
    let mut want = vec![0f64; m * nrows];
    let mut mag = vec![0f64; m * nrows];
    for i in 0..m {
        for r in 0..nrows {
            for k in 0..n {
                let p = w[r * n + k] as f64 * x[i * n + k] as f64;
                want[i * nrows + r] += p;
                mag[i * nrows + r] += p.abs();
            }
        }
    }
    (want, mag)
}

#[test]
fn every_isa_matches_reference_over_odd_sizes() {
    let r = quant_kernels(Isa::Ref).unwrap();
    let mut rng = Rng(7);
    for isa in available_isas().into_iter().filter(|i| *i != Isa::Ref) {
        let k = quant_kernels(isa).unwrap();
        for t in WEIGHT_TYPES {
            let act = t.act_type();
            for &nb in &NS_BLOCKS {
                let n = nb * t.block_size().max(32);
                for &nrows in &ROWS {
                    let w = random_rows(t, n, nrows, &mut rng);
                    let m = MS[(nb + nrows) % MS.len()];
                    let x: Vec<f32> = (0..m * n).map(|_| rng.f32()).collect();
                    // Same quantized activations for both (quantizers are compared separately).
                    let xq = quantize_rows(r, act, &x, n);
                    let ldy = nrows + 3;
                    let (mut a, mut b) = (vec![7f32; m * ldy], vec![7f32; m * ldy]);
                    r.gemm(t, n, &w, nrows, &xq, m, &mut a, ldy).unwrap();
                    k.gemm(t, n, &w, nrows, &xq, m, &mut b, ldy).unwrap();
                    let wd = dequant(r, t, &w, n);
                    let xd = if act == QuantType::F32 { x.clone() } else { dequant_act(r, act, &xq, n) };
                    let (_, mag) = f64_product(&wd, &xd, n, nrows, m);
                    for i in 0..m {
                        for c in 0..ldy {
                            let (p, q) = (a[i * ldy + c], b[i * ldy + c]);
                            if c >= nrows {
                                assert_eq!(q, 7.0, "{isa:?} gemm {t} wrote outside its rows");
                                continue;
                            }
                            let err = (p - q).abs() as f64 / mag[i * nrows + c].max(1e-3);
                            assert!(err <= tol_variant(t), "{isa:?} gemm {t} n={n} nrows={nrows} m={m} [{i},{c}]: {q} vs ref {p} ({err:e})");
                        }
                    }
                    // fp32 products.
                    r.gemm_f32(t, n, &w, nrows, &x, m, &mut a, ldy).unwrap();
                    k.gemm_f32(t, n, &w, nrows, &x, m, &mut b, ldy).unwrap();
                    let (_, mag) = f64_product(&wd, &x, n, nrows, m);
                    for i in 0..m {
                        for c in 0..nrows {
                            let (p, q) = (a[i * ldy + c], b[i * ldy + c]);
                            let err = (p - q).abs() as f64 / mag[i * nrows + c].max(1e-3);
                            assert!(err <= 2e-6, "{isa:?} gemm_f32 {t} n={n} nrows={nrows} m={m} [{i},{c}]: {q} vs ref {p}");
                        }
                    }
                    // dX.
                    let dy: Vec<f32> = (0..m * nrows).map(|_| rng.f32()).collect();
                    let (mut da, mut db) = (vec![0.25f32; m * n], vec![0.25f32; m * n]);
                    r.gemm_dx(t, n, &w, nrows, &dy, nrows, m, &mut da, n).unwrap();
                    k.gemm_dx(t, n, &w, nrows, &dy, nrows, m, &mut db, n).unwrap();
                    // FMA vs separate multiply-add: relative to sum |dy·w| of each element.
                    for (j, (p, q)) in da.iter().zip(&db).enumerate() {
                        let (i, kk) = (j / n, j % n);
                        let mag: f32 = 0.25 + (0..nrows).map(|rr| (dy[i * nrows + rr] * wd[rr * n + kk]).abs()).sum::<f32>();
                        assert!((p - q).abs() <= 2e-6 * mag, "{isa:?} gemm_dx {t} n={n} nrows={nrows} [{j}]: {q} vs {p}");
                    }
                }
            }
        }
    }
}

/// A row's result does not depend on the rest of the batch (tiles of 4 rows vs single rows).
#[test]
fn products_are_independent_of_batch_size() {
    let mut rng = Rng(3);
    for isa in available_isas() {
        let k = quant_kernels(isa).unwrap();
        for t in WEIGHT_TYPES {
            let n = 3 * t.block_size().max(32);
            let (nrows, m) = (5, 9);
            let w = random_rows(t, n, nrows, &mut rng);
            let x: Vec<f32> = (0..m * n).map(|_| rng.f32()).collect();
            let xq = quantize_rows(k, t.act_type(), &x, n);
            let mut all = vec![0f32; m * nrows];
            k.gemm(t, n, &w, nrows, &xq, m, &mut all, nrows).unwrap();
            let rb = t.act_type().row_bytes(n).unwrap();
            for i in 0..m {
                let mut one = vec![0f32; nrows];
                k.gemm(t, n, &w, nrows, &xq[i * rb..(i + 1) * rb], 1, &mut one, nrows).unwrap();
                assert_eq!(&all[i * nrows..(i + 1) * nrows], &one[..], "{isa:?} {t} row {i}");
            }
        }
    }
}

/// Q8_0 weights against Q8_1 activations (what an adapter's Q8_0 factors read on a Q4_1 base): the
/// bits of the Q8_0 product over the same values, on every ISA and over odd sizes, the reference's
/// within the variant tolerance of f64, and lengths checked.
#[test]
fn q8_0_weights_read_q8_1_activations_as_q8_0() {
    let mut rng = Rng(11);
    let r = quant_kernels(Isa::Ref).unwrap();
    for isa in available_isas() {
        let k = quant_kernels(isa).unwrap();
        for &nb in &NS_BLOCKS {
            let n = nb * 32;
            for &nrows in &ROWS {
                let m = MS[(nb + nrows) % MS.len()];
                let w = random_rows(QuantType::Q8_0, n, nrows, &mut rng);
                let x: Vec<f32> = (0..m * n).map(|_| rng.f32() * 2.0).collect();
                let (x0, x1) = (quantize_rows(k, QuantType::Q8_0, &x, n), quantize_rows(k, QuantType::Q8_1, &x, n));
                let ldy = nrows + 2;
                let (mut a, mut b, mut c) = (vec![7f32; m * ldy], vec![7f32; m * ldy], vec![7f32; m * ldy]);
                k.gemm(QuantType::Q8_0, n, &w, nrows, &x0, m, &mut a, ldy).unwrap();
                k.gemm_q8_0(QuantType::Q8_1, n, &w, nrows, &x1, m, &mut b, ldy).unwrap();
                k.gemm_q8_0(QuantType::Q8_0, n, &w, nrows, &x0, m, &mut c, ldy).unwrap();
                for (j, ((p, q), v)) in a.iter().zip(&b).zip(&c).enumerate() {
                    assert_eq!(p.to_bits(), q.to_bits(), "{isa:?} n={n} nrows={nrows} m={m} [{j}]: Q8_1 activations {q} vs Q8_0 {p}");
                    assert_eq!(p.to_bits(), v.to_bits(), "{isa:?} gemm_q8_0 with Q8_0 activations [{j}]");
                }
                // Against f64 on the dequantized values (the reference's own activations).
                let xr = quantize_rows(r, QuantType::Q8_1, &x, n);
                let mut d = vec![0f32; m * nrows];
                k.gemm_q8_0(QuantType::Q8_1, n, &w, nrows, &xr, m, &mut d, nrows).unwrap();
                let (want, mag) = f64_product(&dequant(r, QuantType::Q8_0, &w, n), &dequant_act(r, QuantType::Q8_1, &xr, n), n, nrows, m);
                for (j, v) in d.iter().enumerate() {
                    let err = (*v as f64 - want[j]).abs() / mag[j].max(1e-3);
                    assert!(err <= tol_variant(QuantType::Q8_0), "{isa:?} n={n} nrows={nrows} m={m} [{j}]: {v} vs f64 {} ({err:e})", want[j]);
                }
            }
        }
        let (w, x1) = (vec![0u8; 34 * 2], vec![0u8; 36]);
        let mut y = vec![0f32; 2];
        assert!(k.gemm_q8_0(QuantType::Q8_1, 32, &w, 2, &x1[..35], 1, &mut y, 2).is_err(), "{isa:?}: short Q8_1 activations");
        assert!(k.gemm_q8_0(QuantType::Q8_1, 32, &w[..67], 2, &x1, 1, &mut y, 2).is_err(), "{isa:?}: short weights");
        assert!(k.gemm_q8_0(QuantType::Q8_K, 256, &w, 0, &x1, 0, &mut y, 2).is_err(), "{isa:?}: Q8_K activations");
        assert!(k.gemm_q8_0(QuantType::Q8_1, 32, &w, 2, &x1, 1, &mut y, 2).is_ok());
    }
}

/// Activation quantizers of every ISA against the reference. The SIMD quantizers follow llama.cpp's
/// AVX2 path (id = 127/amax, round half to even) where the reference follows ggml's scalar one
/// (id = 1/d, roundf): a quant may differ by one step where the scaled value sits near a tie.
#[test]
fn activation_quantizers_match_reference() {
    let r = quant_kernels(Isa::Ref).unwrap();
    let mut rng = Rng(5);
    for isa in available_isas().into_iter().filter(|i| *i != Isa::Ref) {
        let k = quant_kernels(isa).unwrap();
        for act in [QuantType::Q8_0, QuantType::Q8_1, QuantType::Q8_K] {
            for nb in [1, 2, 7, 18] {
                let n = nb * act.block_size();
                let mut x: Vec<f32> = (0..n).map(|_| rng.f32() * 3.0).collect();
                x[0] = 0.0;
                if nb == 7 {
                    x[..act.block_size()].iter_mut().for_each(|v| *v = 0.0); // an all-zero block
                }
                let (a, b) = (quantize_rows(r, act, &x, n), quantize_rows(k, act, &x, n));
                let (da, db) = (dequant_act(r, act, &a, n), dequant_act(k, act, &b, n));
                let bs = act.block_size();
                for (j, (p, q)) in da.iter().zip(&db).enumerate() {
                    let blk = &x[j / bs * bs..(j / bs + 1) * bs];
                    let step = blk.iter().fold(0f32, |m, v| m.max(v.abs())) / 127.0;
                    assert!((p - q).abs() <= step * 1.001 + 1e-7, "{isa:?} {act} element {j}: {q} vs ref {p} (step {step})");
                }
                let diff = da.iter().zip(&db).filter(|(p, q)| p != q).count();
                assert!(diff * 50 <= n, "{isa:?} {act}: {diff} of {n} quants differ from the reference");
            }
        }
    }
}

#[test]
fn wrappers_refuse_bad_lengths() {
    let k = quant_kernels(Isa::Ref).unwrap();
    let w = vec![0u8; 20 * 3];
    let x = vec![0u8; 36];
    let mut y = vec![0f32; 3];
    assert!(k.gemm(QuantType::Q4_1, 33, &w, 3, &x, 1, &mut y, 3).is_err(), "n not a block multiple");
    assert!(k.gemm(QuantType::Q4_1, 32, &w[..59], 3, &x, 1, &mut y, 3).is_err(), "short weights");
    assert!(k.gemm(QuantType::Q4_1, 32, &w, 3, &x[..35], 1, &mut y, 3).is_err(), "short activations");
    assert!(k.gemm(QuantType::Q4_1, 32, &w, 3, &x, 1, &mut y[..2], 3).is_err(), "short output");
    assert!(k.gemm(QuantType::Q4_1, 32, &w, 3, &x, 1, &mut y, 3).is_ok());
    let mut out = vec![0u8; 35];
    assert!(k.quantize_act(QuantType::Q8_1, &[0.0; 32], &mut out).is_err());
    assert!(k.dequantize_row(QuantType::Q8_0, &[0u8; 33], &mut [0f32; 32]).is_err());
}

#[test]
fn every_isa_dequantizes_bit_exactly_like_the_reference() {
    let r = graft::kernels::quant::quant_kernels(Isa::Ref).unwrap();
    let mut rng = Rng(77);
    for isa in available_isas().into_iter().filter(|i| *i != Isa::Ref) {
        let k = graft::kernels::quant::quant_kernels(isa).unwrap();
        for &t in graft::quant::WEIGHT_TYPES.iter() {
            for blocks in [1usize, 3, 18] {
                let n = blocks * t.block_size();
                let w = random_rows(t, n, 5, &mut rng);
                let (a, b) = (dequant(r, t, &w, n), dequant(k, t, &w, n));
                let same = a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits());
                assert!(same, "{isa:?} {t:?} n={n}: dequantization differs from the reference");
            }
        }
    }
}
