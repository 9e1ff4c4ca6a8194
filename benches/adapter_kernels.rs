//! Criterion benches of the adapter kernels per ISA, single-threaded, at the default model's widths
//! (d = 576 and 1536): the down-projection T = X·Aᵀ (A: r×d) and the up-projection Y += s·T·BT
//! (BT: r×d, with tscale and oscale, as VeRA runs it), at decode (m = 1) and prefill (m = 128), for
//! r = 16 and 256, in bytes of A or BT read (GFLOP/s at m = 1 = GB/s / 2); and the same up-projection
//! with BT stored as Q8_0 rows (`up_q8_0`, 34 bytes per 32 columns, GFLOP/s at m = 1 = GB/s · 1.88).
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use graft::kernels::adapter::{adapter_kernels, quantize_rows_q8_0};
use graft::kernels::available_isas;
use std::hint::black_box;

fn filled(n: usize, seed: usize) -> Vec<f32> {
    (0..n).map(|i| ((i.wrapping_mul(2654435761).wrapping_add(seed) >> 7) % 201) as f32 / 100.0 - 1.0).collect()
}

fn adapter(c: &mut Criterion) {
    for isa in available_isas() {
        let k = adapter_kernels(isa).unwrap();
        let mut g = c.benchmark_group(format!("adapter/{}", isa.name()));
        // The scalar reference takes up to a fifth of a second per prefill call; 20 samples keep a
        // brief run brief.
        g.sample_size(20);
        for &m in &[1usize, 128] {
            for &r in &[16usize, 256] {
                for &d in &[576usize, 1536] {
                    let x = filled(m * d, 1);
                    let a = filled(r * d, 2);
                    let mut t = vec![0f32; m * r];
                    g.throughput(Throughput::Bytes((r * d * 4) as u64));
                    g.bench_function(BenchmarkId::new(format!("down_m{m}_r{r}"), d), |b| {
                        b.iter(|| k.down(black_box(&x), d, m, &a, d, r, d, &mut t, r))
                    });
                    let tin = filled(m * r, 3);
                    let tscale = filled(r, 4);
                    let bt = filled(r * d, 5);
                    let oscale = filled(d, 6);
                    let mut y = vec![0f32; m * d];
                    g.bench_function(BenchmarkId::new(format!("up_m{m}_r{r}"), d), |b| {
                        b.iter(|| k.up(black_box(&tin), r, m, r, Some(&tscale), &bt, d, d, Some(&oscale), 0.5, &mut y, d))
                    });
                    let btq = quantize_rows_q8_0(&bt, r, d);
                    let stride = d / 32 * 34;
                    g.throughput(Throughput::Bytes(btq.len() as u64));
                    g.bench_function(BenchmarkId::new(format!("up_q8_0_m{m}_r{r}"), d), |b| {
                        b.iter(|| k.up_q8_0(black_box(&tin), r, m, r, Some(&tscale), &btq, stride, 0, d, Some(&oscale), 0.5, &mut y, d))
                    });
                }
            }
        }
        g.finish();
    }
}

criterion_group!(benches, adapter);
criterion_main!(benches);
