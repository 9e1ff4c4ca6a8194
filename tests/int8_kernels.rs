//! The 8-bit integer products (`csrc/kernels_int8.h`) of every ISA: quantization bit for bit
//! against the documented rule, packing of a matrix and of its transpose, and the product against
//! an exact computation from the int8 values (f64) and against the scalar reference, over odd
//! sizes, block ranges, padded strides and accumulation.
mod common;
use common::Rng;
use graft::kernels::int8::{int8_kernels, PackedMatrix, QuantizedRows, BLOCK};
use graft::kernels::{available_isas, Isa};

/// The products differ from the exact value of their int8 operands only by the rounding of the f32
/// block scaling and sum: at most kb ≤ 50 terms, each within 2⁻²³ relative, so 1e-5 of the sum of
/// the blocks' magnitudes leaves room while a wrong byte (≥ 1/127 of a block's size) is far out.
const TOL_REL_SUM: f64 = 1e-5;

/// Values with a spread of magnitudes (one block all zero when `zero_blocks`).
fn values(rng: &mut Rng, n: usize, zero_blocks: bool) -> Vec<f32> {
    let mut v: Vec<f32> = (0..n).map(|i| rng.f32() * (1.0 + (i % 7) as f32) * 0.3).collect();
    if zero_blocks && n >= 2 * BLOCK {
        v[BLOCK..2 * BLOCK].fill(0.0);
    }
    v
}

/// The documented rule: s = amax/127, q = round_ties_even(x · (127/amax)).
fn quantize_block(x: &[f32]) -> (f32, Vec<i8>) {
    let amax = x.iter().fold(0f32, |m, v| m.max(v.abs()));
    if amax == 0.0 {
        return (0.0, vec![0; x.len()]);
    }
    let id = 127.0f32 / amax;
    (amax / 127.0, x.iter().map(|&v| (v * id).round_ties_even() as i8).collect())
}

#[test]
fn quantize_rows_follow_the_rule_on_every_isa() {
    let mut rng = Rng(7);
    for isa in available_isas() {
        let k8 = int8_kernels(isa).unwrap();
        for (m, kb, ldx) in [(1, 1, 32), (3, 2, 70), (5, 18, 576), (2, 48, 1600)] {
            let x = values(&mut rng, ldx * m, true);
            let mut q = QuantizedRows::default();
            k8.quantize_rows(&x, ldx, m, kb, &mut q);
            assert_eq!((q.rows(), q.blocks()), (m, kb));
            for i in 0..m {
                for b in 0..kb {
                    let (s, want) = quantize_block(&x[i * ldx + b * BLOCK..i * ldx + (b + 1) * BLOCK]);
                    assert_eq!(q.row_scales(i)[b].to_bits(), s.to_bits(), "{isa:?} m={m} kb={kb}: scale of row {i} block {b}");
                    assert_eq!(&q.row(i)[b * BLOCK..(b + 1) * BLOCK], &want[..], "{isa:?} m={m} kb={kb}: row {i} block {b}");
                }
            }
        }
    }
}

/// `c[i][j] = Σ_k a[i][k]·w[j][k]` computed from the int8 values in f64, and its error bound.
#[allow(clippy::too_many_arguments)]
fn exact(a: &[f32], lda: usize, m: usize, w: &[f32], n: usize, k: usize, b0: usize, kb: usize) -> (Vec<f64>, Vec<f64>) {
    let (mut want, mut bound) = (vec![0f64; m * n], vec![0f64; m * n]);
    for i in 0..m {
        for j in 0..n {
            for b in b0..b0 + kb {
                let (sa, qa) = quantize_block(&a[i * lda + b * BLOCK..i * lda + (b + 1) * BLOCK]);
                let (sw, qw) = quantize_block(&w[j * k + b * BLOCK..j * k + (b + 1) * BLOCK]);
                let dot: i64 = qa.iter().zip(&qw).map(|(&x, &y)| x as i64 * y as i64).sum();
                want[i * n + j] += dot as f64 * sa as f64 * sw as f64;
                bound[i * n + j] += (dot as f64 * sa as f64 * sw as f64).abs();
            }
        }
    }
    (want, bound)
}

#[test]
fn gemm_matches_exact_int8_products_on_every_isa() {
    let mut rng = Rng(11);
    let isas = available_isas();
    for &(m, n, kb) in &[(1usize, 1usize, 1usize), (3, 15, 2), (4, 16, 3), (5, 17, 1), (7, 33, 4), (9, 47, 18), (4, 64, 5), (13, 31, 2), (2, 70, 3), (6, 49, 2), (3, 100, 2), (2, 16, 1)] {
        let k = kb * BLOCK;
        let lda = k + 3;
        let a = values(&mut rng, m * lda, true);
        let w = values(&mut rng, n * k, true);
        let ldc = n + 2;
        for &(b0, kbr) in &[(0, kb), (kb / 2, kb - kb / 2)] {
            if kbr == 0 {
                continue;
            }
            let (want, bound) = exact(&a, lda, m, &w, n, k, b0, kbr);
            let mut ref_out = None;
            for &isa in &isas {
                let k8 = int8_kernels(isa).unwrap();
                let mut q = QuantizedRows::default();
                k8.quantize_rows(&a, lda, m, kb, &mut q);
                let mut p = PackedMatrix::zeros(n, kb);
                k8.pack(&w, k, 1, n, kb, &mut p, 0, 0);
                for accumulate in [false, true] {
                    let mut c = vec![0.5f32; m * ldc];
                    k8.gemm(&q, &p, n, b0, kbr, &mut c, ldc, accumulate);
                    for i in 0..m {
                        for j in 0..n {
                            let base = if accumulate { 0.5 } else { 0.0 };
                            let got = c[i * ldc + j] as f64 - base;
                            let e = (got - want[i * n + j]).abs();
                            assert!(e <= TOL_REL_SUM * bound[i * n + j] + 1e-6, "{isa:?} m={m} n={n} kb={kb} b0={b0} acc={accumulate}: c[{i}][{j}] = {got} vs {} (bound {})", want[i * n + j], bound[i * n + j]);
                        }
                        for j in n..ldc {
                            assert_eq!(c[i * ldc + j], 0.5, "{isa:?}: padding column {j} of row {i} written");
                        }
                    }
                    if !accumulate {
                        match &ref_out {
                            None if isa == Isa::Ref => ref_out = Some(c.clone()),
                            Some(r) => {
                                for (idx, (x, y)) in c.iter().zip(r.iter()).enumerate() {
                                    let e = (x - y).abs() as f64;
                                    assert!(e <= 2.0 * TOL_REL_SUM * bound[(idx / ldc) * n + (idx % ldc).min(n - 1)] + 1e-6, "{isa:?} vs ref at {idx}: {x} vs {y}");
                                }
                            }
                            None => {}
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn packing_a_transpose_by_strides_equals_packing_the_transposed_copy() {
    let mut rng = Rng(5);
    for isa in available_isas() {
        let k8 = int8_kernels(isa).unwrap();
        // W is rows × cols; Wᵀ packed: columns = cols, K = rows.
        let (rows, cols) = (96usize, 40usize);
        let w = values(&mut rng, rows * cols, false);
        let wt: Vec<f32> = (0..cols * rows).map(|i| w[(i % rows) * cols + i / rows]).collect();
        let kb = rows / BLOCK;
        let mut by_strides = PackedMatrix::zeros(cols, kb);
        // In two block ranges, as training packs a long K in chunks.
        k8.pack(&w, 1, cols, cols, 1, &mut by_strides, 0, 0);
        k8.pack(&w[BLOCK * cols..], 1, cols, cols, kb - 1, &mut by_strides, 0, 1);
        let mut copy = PackedMatrix::zeros(cols, kb);
        // And the copy in two column ranges (whole groups, then the rest).
        k8.pack(&wt, rows, 1, 32, kb, &mut copy, 0, 0);
        k8.pack(&wt[32 * rows..], rows, 1, cols - 32, kb, &mut copy, 2, 0);
        let a = values(&mut rng, 3 * rows, false);
        let mut q = QuantizedRows::default();
        k8.quantize_rows(&a, rows, 3, kb, &mut q);
        let (mut c1, mut c2) = (vec![0f32; 3 * cols], vec![0f32; 3 * cols]);
        k8.gemm(&q, &by_strides, cols, 0, kb, &mut c1, cols, false);
        k8.gemm(&q, &copy, cols, 0, kb, &mut c2, cols, false);
        assert_eq!(c1, c2, "{isa:?}");
        let (want, bound) = exact(&a, rows, 3, &wt, cols, rows, 0, kb);
        for (i, (&g, (&w, &b))) in c1.iter().zip(want.iter().zip(&bound)).enumerate() {
            assert!((g as f64 - w).abs() <= TOL_REL_SUM * b + 1e-6, "{isa:?} output {i}: {g} vs {w}");
        }
    }
}

#[test]
#[should_panic(expected = "outside")]
fn gemm_refuses_a_block_range_past_the_matrix() {
    let k8 = int8_kernels(Isa::Ref).unwrap();
    let mut q = QuantizedRows::default();
    k8.quantize_rows(&[0.0; 64], 64, 1, 2, &mut q);
    let p = PackedMatrix::zeros(16, 2);
    k8.gemm(&q, &p, 16, 1, 2, &mut [0.0; 16], 16, false);
}

#[test]
#[should_panic(expected = "do not fit")]
fn pack_refuses_columns_past_the_matrix() {
    let k8 = int8_kernels(Isa::Ref).unwrap();
    let mut p = PackedMatrix::zeros(20, 1);
    k8.pack(&[0.0; 32 * 32], 32, 1, 20, 1, &mut p, 1, 0);
}

/// A sub-block (rows from `row0`, columns from a group of 16) through `gemm_raw` equals that part
/// of the whole product, bit for bit (every output is computed alone, whatever the tiling).
#[test]
fn gemm_raw_computes_a_sub_block_of_the_product() {
    let mut rng = Rng(21);
    for isa in available_isas() {
        let k8 = int8_kernels(isa).unwrap();
        let (m, n, kb) = (9usize, 70usize, 3usize);
        let a = values(&mut rng, m * kb * BLOCK, false);
        let w = values(&mut rng, n * kb * BLOCK, false);
        let mut q = QuantizedRows::default();
        k8.quantize_rows(&a, kb * BLOCK, m, kb, &mut q);
        let mut p = PackedMatrix::zeros(n, kb);
        k8.pack(&w, kb * BLOCK, 1, n, kb, &mut p, 0, 0);
        let mut full = vec![0f32; m * n];
        k8.gemm(&q, &p, n, 0, kb, &mut full, n, false);
        for &(row0, rows, c0, cols) in &[(0usize, 1usize, 0usize, 5usize), (1, 2, 16, 40), (5, 4, 48, 22), (8, 1, 64, 6)] {
            let ldc = cols + 1;
            let mut part = vec![7f32; rows * ldc];
            // SAFETY: part holds rows × ldc floats, ldc >= cols, exclusively borrowed.
            unsafe { k8.gemm_raw(&q, row0, rows, &p, c0, cols, 0, kb, part.as_mut_ptr(), ldc, false) };
            for i in 0..rows {
                for j in 0..cols {
                    assert_eq!(part[i * ldc + j].to_bits(), full[(row0 + i) * n + c0 + j].to_bits(), "{isa:?} ({row0},{c0}) + ({i},{j})");
                }
                assert_eq!(part[i * ldc + cols], 7.0, "{isa:?}: column past the block written");
            }
        }
    }
}

/// Every ISA packs a matrix and its transpose (and a strided view neither) bit for bit as the
/// reference does, zero blocks and a partial last group included.
#[test]
fn packing_is_bit_exact_with_the_reference_on_every_isa() {
    let mut rng = Rng(33);
    let reference = int8_kernels(Isa::Ref).unwrap();
    for &(n, kb) in &[(1usize, 1usize), (16, 2), (21, 3), (40, 1), (70, 2)] {
        let k = kb * BLOCK;
        let mut w = values(&mut rng, n * k, false);
        w[..BLOCK].fill(0.0); // column 0's first block all zero
        let wt: Vec<f32> = (0..k * n).map(|i| w[(i % n) * k + i / n]).collect(); // [k][n]
        // (label, data, ld_n, ld_k)
        let wide: Vec<f32> = (0..k * 2 * n).map(|i| if i % 2 == 0 { wt[i / 2] } else { 9.0 }).collect(); // [k][2n], every other column
        let views: [(&str, &[f32], usize, usize); 3] = [("rows", &w, k, 1), ("transposed", &wt, 1, n), ("strided", &wide, 2, 2 * n)];
        for (label, data, ld_n, ld_k) in views {
            let mut want = PackedMatrix::zeros(n, kb);
            reference.pack(data, ld_n, ld_k, n, kb, &mut want, 0, 0);
            for isa in available_isas() {
                let mut got = PackedMatrix::zeros(n, kb);
                int8_kernels(isa).unwrap().pack(data, ld_n, ld_k, n, kb, &mut got, 0, 0);
                assert!(got == want, "{isa:?} {label} n={n} kb={kb}");
            }
        }
    }
}
