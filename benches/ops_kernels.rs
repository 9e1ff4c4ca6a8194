//! Criterion benches of the op kernels per ISA, at the default model's shapes, in bytes processed.
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use graft::kernels::{available_isas, ops::op_kernels};
use half::f16;
use std::hint::black_box;

fn ops(c: &mut Criterion) {
    let d = 576;
    let ff = 1536;
    let x: Vec<f32> = (0..ff).map(|i| ((i * 37 % 101) as f32 - 50.0) / 25.0).collect();
    let w: Vec<f32> = (0..ff).map(|i| 1.0 + (i % 7) as f32 / 10.0).collect();
    let keys: Vec<f16> = (0..512 * 64).map(|i| f16::from_f32(((i * 13 % 97) as f32 - 48.0) / 50.0)).collect();
    for isa in available_isas() {
        let k = op_kernels(isa).unwrap();
        let mut g = c.benchmark_group(format!("ops/{}", isa.name()));
        g.throughput(Throughput::Bytes((d * 4) as u64));
        let mut y = vec![0f32; d];
        g.bench_function(BenchmarkId::new("rmsnorm", d), |b| b.iter(|| k.rmsnorm(black_box(&x[..d]), Some(&w[..d]), &mut y, 1e-5)));
        g.throughput(Throughput::Bytes((ff * 8) as u64));
        let mut gate = x.clone();
        g.bench_function(BenchmarkId::new("silu_gate", ff), |b| b.iter(|| { gate.copy_from_slice(&x); k.silu_gate(black_box(&mut gate), &w) }));
        g.throughput(Throughput::Bytes(512 * 4));
        let mut s = x[..512].to_vec();
        g.bench_function(BenchmarkId::new("softmax", 512), |b| b.iter(|| { s.copy_from_slice(&x[..512]); k.softmax(black_box(&mut s)) }));
        g.throughput(Throughput::Bytes((d * 4) as u64));
        let mut q = x[..d].to_vec();
        g.bench_function(BenchmarkId::new("rope_9x64", d), |b| b.iter(|| k.rope(black_box(&mut q), 9, 64, 64, 300, 1e5, false, false)));
        g.throughput(Throughput::Bytes((keys.len() * 2) as u64));
        let q16: Vec<f16> = keys[..64].to_vec();
        g.bench_function(BenchmarkId::new("attn_scores_f16_512x64", 512), |b| {
            b.iter(|| {
                let mut acc = 0.0;
                for j in 0..512 {
                    acc += k.dot_f16(&q16, &keys[j * 64..(j + 1) * 64]);
                }
                black_box(acc)
            })
        });
        g.finish();
    }
}

criterion_group!(benches, ops);
criterion_main!(benches);
