//! Measures the cost of one empty parallel region of graft's thread pool.
use std::time::Instant;
fn main() {
    let pool = graft::pool::Pool::new(2);
    let n = 200_000;
    let t0 = Instant::now();
    for _ in 0..n {
        pool.run(|_, _| {});
    }
    println!("empty region: {:.2} µs", t0.elapsed().as_secs_f64() * 1e6 / n as f64);
}
