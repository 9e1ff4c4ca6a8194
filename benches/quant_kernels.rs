//! Criterion benches of the quantized products per ISA and weight format, at the default model's
//! shapes, single-threaded, in bytes of weights streamed: GEMV (decode, m = 1) and GEMM (prefill,
//! m = 64), with 8-bit activations, plus the fp32-activation GEMV (and Q8_0 weights against Q8_1
//! activations, as adapter factors read a Q4_1 base's); and row dequantization (what training does
//! to every weight panel).
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use graft::kernels::{available_isas, quant::quant_kernels};
use graft::quant::{QuantType, WEIGHT_TYPES};
use std::hint::black_box;

fn weights(t: QuantType, n: usize, rows: usize) -> Vec<u8> {
    let rb = t.row_bytes(n).unwrap();
    let mut w: Vec<u8> = (0..rb * rows).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
    // Finite f16 scales where block formats keep them (offset 0, and 2 for the formats with a min).
    if t.block_size() > 1 {
        let offs: &[usize] = match t {
            QuantType::Q6_K => &[208],
            QuantType::Q4_1 | QuantType::Q5_1 | QuantType::Q4_K | QuantType::Q5_K => &[0, 2],
            _ => &[0],
        };
        for b in w.chunks_exact_mut(t.type_size()) {
            for &o in offs {
                b[o..o + 2].copy_from_slice(&half::f16::from_f32(0.01).to_le_bytes());
            }
        }
    } else if t == QuantType::F32 {
        w.chunks_exact_mut(4).for_each(|c| c.copy_from_slice(&0.5f32.to_le_bytes()));
    }
    w
}

fn products(c: &mut Criterion) {
    let shapes = [(576usize, 1536usize, "576x1536"), (1536, 576, "1536x576")];
    for isa in available_isas() {
        let k = quant_kernels(isa).unwrap();
        let mut g = c.benchmark_group(format!("gemv/{}", isa.name()));
        for t in WEIGHT_TYPES {
            for &(n, rows, name) in &shapes {
                if n % t.block_size() != 0 {
                    continue;
                }
                let w = weights(t, n, rows);
                let x: Vec<f32> = (0..64 * n).map(|i| ((i % 19) as f32 - 9.0) / 7.0).collect();
                let act = t.act_type();
                let arb = act.row_bytes(n).unwrap();
                let mut xq = vec![0u8; 64 * arb];
                for i in 0..64 {
                    k.quantize_act(act, &x[i * n..(i + 1) * n], &mut xq[i * arb..(i + 1) * arb]).unwrap();
                }
                let mut y = vec![0f32; 64 * rows];
                g.throughput(Throughput::Bytes(w.len() as u64));
                g.bench_function(BenchmarkId::new(t.name(), name), |b| b.iter(|| k.gemm(t, n, black_box(&w), rows, &xq[..arb], 1, &mut y, rows).unwrap()));
                g.bench_function(BenchmarkId::new(format!("{}_f32act", t.name()), name), |b| {
                    b.iter(|| k.gemm_f32(t, n, black_box(&w), rows, &x[..n], 1, &mut y, rows).unwrap())
                });
                if t == QuantType::Q8_0 {
                    // The same weights against Q8_1 activations (an adapter's Q8_0 factor on a Q4_1 base).
                    let rb1 = QuantType::Q8_1.row_bytes(n).unwrap();
                    let mut x1 = vec![0u8; rb1];
                    k.quantize_act(QuantType::Q8_1, &x[..n], &mut x1).unwrap();
                    g.bench_function(BenchmarkId::new("Q8_0_q8_1act", name), |b| {
                        b.iter(|| k.gemm_q8_0(QuantType::Q8_1, n, black_box(&w), rows, &x1, 1, &mut y, rows).unwrap())
                    });
                }
                if isa != graft::kernels::Isa::Ref {
                    g.throughput(Throughput::Bytes(w.len() as u64 * 64));
                    g.bench_function(BenchmarkId::new(format!("{}_gemm_m64", t.name()), name), |b| {
                        b.iter(|| k.gemm(t, n, black_box(&w), rows, &xq, 64, &mut y, rows).unwrap())
                    });
                }
            }
        }
        g.finish();
        if isa != graft::kernels::Isa::Ref {
            let (n, rows) = (576, 49152);
            let w = weights(QuantType::Q8_0, n, rows);
            let x: Vec<f32> = (0..n).map(|i| ((i % 19) as f32 - 9.0) / 7.0).collect();
            let mut xq = vec![0u8; QuantType::Q8_0.row_bytes(n).unwrap()];
            k.quantize_act(QuantType::Q8_0, &x, &mut xq).unwrap();
            let mut y = vec![0f32; rows];
            let mut g = c.benchmark_group(format!("gemv_output/{}", isa.name()));
            g.throughput(Throughput::Bytes(w.len() as u64));
            g.bench_function("Q8_0/576x49152", |b| b.iter(|| k.gemm(QuantType::Q8_0, n, black_box(&w), rows, &xq, 1, &mut y, rows).unwrap()));
            g.finish();
        }
    }
}

fn dequantize(c: &mut Criterion) {
    let n = 1536;
    for isa in available_isas() {
        let k = quant_kernels(isa).unwrap();
        let mut g = c.benchmark_group(format!("dequantize/{}", isa.name()));
        for t in [QuantType::Q4_0, QuantType::Q4_1, QuantType::Q8_0, QuantType::Q6_K] {
            let w = weights(t, n, 1);
            let mut y = vec![0f32; n];
            g.throughput(Throughput::Elements(n as u64));
            g.bench_function(BenchmarkId::new(t.name(), n), |b| b.iter(|| k.dequantize_row(t, black_box(&w), &mut y).unwrap()));
        }
        g.finish();
    }
}

criterion_group!(benches, products, dequantize);
criterion_main!(benches);
