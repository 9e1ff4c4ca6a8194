//! Criterion benches of the 8-bit integer products per ISA, single-threaded, at training's shapes
//! on the default model: 256 rows (one sequence) against a packed 576×576 and 1536×576 projection
//! (forward: K = 576 and 1536 summed), in multiply-adds (`Throughput::Elements`, so the figure
//! reads as MAC/s); and the quantization of those 256 rows. The f32 kernels training used before
//! them are `adapter/*/down_m128_*` in benches/adapter_kernels.rs.
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use graft::kernels::available_isas;
use graft::kernels::int8::{int8_kernels, PackedMatrix, QuantizedRows};
use std::hint::black_box;

fn filled(n: usize, seed: usize) -> Vec<f32> {
    (0..n).map(|i| ((i.wrapping_mul(2654435761).wrapping_add(seed) >> 7) % 201) as f32 / 100.0 - 1.0).collect()
}

fn int8(c: &mut Criterion) {
    let m = 256;
    for isa in available_isas() {
        let k8 = int8_kernels(isa).unwrap();
        let mut g = c.benchmark_group(format!("int8/{}", isa.name()));
        // The scalar reference takes about a second per call at these sizes.
        g.sample_size(10);
        for &(n, k) in &[(576usize, 576usize), (1536, 576), (576, 1536)] {
            let x = filled(m * k, 1);
            let w = filled(n * k, 2);
            let mut q = QuantizedRows::default();
            k8.quantize_rows(&x, k, m, k / 32, &mut q);
            let mut p = PackedMatrix::zeros(n, k / 32);
            k8.pack(&w, k, 1, n, k / 32, &mut p, 0, 0);
            let mut y = vec![0f32; m * n];
            g.throughput(Throughput::Elements((m * n * k) as u64));
            g.bench_function(BenchmarkId::new(format!("gemm_m{m}_k{k}"), n), |b| b.iter(|| k8.gemm(black_box(&q), &p, n, 0, k / 32, &mut y, n, false)));
            if n == 576 {
                g.throughput(Throughput::Elements((m * k) as u64));
                g.bench_function(BenchmarkId::new(format!("quantize_m{m}"), k), |b| b.iter(|| k8.quantize_rows(black_box(&x), k, m, k / 32, &mut q)));
            }
        }
        g.finish();
    }
}

criterion_group!(benches, int8);
criterion_main!(benches);
