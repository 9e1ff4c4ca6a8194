//! AdamW with warm-up, cosine decay, clipping and accumulation, against an f64 reference written
//! from torch.optim.AdamW's update (decoupled decay: p ← p·(1 − lr·wd) − lr·m̂/(√v̂ + eps)).
use graft::train::optim::{AdamW, AdamWConfig};

fn cfg() -> AdamWConfig {
    AdamWConfig { lr: 0.01, beta1: 0.9, beta2: 0.99, eps: 1e-8, weight_decay: 0.1, warmup_steps: 3, total_steps: 10, min_lr_ratio: 0.1, clip_norm: 0.0 }
}

#[test]
fn schedule_warms_up_then_follows_the_cosine() {
    let c = cfg();
    let lrs: Vec<f32> = (0..12).map(|s| c.lr_at(s)).collect();
    for (s, want) in [(0, 0.01 / 3.0), (1, 0.02 / 3.0), (2, 0.01)] {
        assert!((lrs[s] - want).abs() < 1e-7, "warm-up step {s}: {}", lrs[s]);
    }
    assert!((lrs[3] - 0.01).abs() < 1e-7, "cosine starts at the peak");
    // Half-way through the 7 decay steps: floor + (1 - floor)/2.
    let half = 0.01 * (0.1 + 0.9 * 0.5 * (1.0 + (std::f64::consts::PI * 3.5 / 7.0).cos())) as f32;
    assert!((c.lr_at(3) - 0.01).abs() < 1e-7 && (c.lr_at(10) - 0.001).abs() < 1e-7, "ends at the floor");
    assert!(lrs.windows(2).skip(3).all(|w| w[1] <= w[0]), "decays monotonically");
    assert!(half > 0.001 && half < 0.01);
    assert!((lrs[11] - 0.001).abs() < 1e-7, "stays at the floor past total_steps");
}

/// torch-style AdamW in f64 on one tensor.
fn reference(c: &AdamWConfig, p0: &[f64], grads: &[Vec<f64>]) -> Vec<f64> {
    let (mut p, mut m, mut v) = (p0.to_vec(), vec![0.0; p0.len()], vec![0.0; p0.len()]);
    for (t, g) in grads.iter().enumerate() {
        let lr = c.lr_at(t as u64) as f64;
        let (b1, b2) = (c.beta1 as f64, c.beta2 as f64);
        for i in 0..p.len() {
            p[i] *= 1.0 - lr * c.weight_decay as f64;
            m[i] = b1 * m[i] + (1.0 - b1) * g[i];
            v[i] = b2 * v[i] + (1.0 - b2) * g[i] * g[i];
            let mh = m[i] / (1.0 - b1.powi(t as i32 + 1));
            let vh = v[i] / (1.0 - b2.powi(t as i32 + 1));
            p[i] -= lr * mh / (vh.sqrt() + c.eps as f64);
        }
    }
    p
}

#[test]
fn steps_match_the_reference() {
    let c = cfg();
    let p0: Vec<f32> = (0..7).map(|i| (i as f32 - 3.0) * 0.3).collect();
    let grads: Vec<Vec<f32>> = (0..6).map(|s| (0..7).map(|i| ((i * 5 + s * 3) % 7) as f32 * 0.1 - 0.3).collect()).collect();
    let mut p = p0.clone();
    let mut opt = AdamW::new(c, &[7]);
    for g in &grads {
        opt.step(&mut [&mut p], &[g], 1).unwrap();
    }
    let want = reference(&c, &p0.iter().map(|x| *x as f64).collect::<Vec<_>>(), &grads.iter().map(|g| g.iter().map(|x| *x as f64).collect()).collect::<Vec<_>>());
    for (a, b) in p.iter().zip(&want) {
        assert!((*a as f64 - b).abs() < 1e-6, "{a} vs {b}");
    }
    assert_eq!(opt.steps(), 6);
}

#[test]
fn clipping_accumulation_and_resume() {
    let mut c = cfg();
    c.clip_norm = 1.0;
    c.weight_decay = 0.0;
    // Norm 10 clipped to 1: the same as passing the gradient divided by 10.
    let g: Vec<f32> = vec![6.0, 8.0];
    let (mut p1, mut p2) = (vec![1.0f32, 1.0], vec![1.0f32, 1.0]);
    let info = AdamW::new(c, &[2]).step(&mut [&mut p1], &[&g], 1).unwrap();
    assert!((info.grad_norm - 10.0).abs() < 1e-5);
    let mut c2 = c;
    c2.clip_norm = 0.0;
    AdamW::new(c2, &[2]).step(&mut [&mut p2], &[&[0.6, 0.8]], 1).unwrap();
    assert_eq!(p1, p2);
    // Accumulating two micro-batches (summed) is their average.
    let (mut p3, mut p4) = (vec![1.0f32, -1.0], vec![1.0f32, -1.0]);
    AdamW::new(c2, &[2]).step(&mut [&mut p3], &[&[0.4, 0.2]], 2).unwrap();
    AdamW::new(c2, &[2]).step(&mut [&mut p4], &[&[0.2, 0.1]], 1).unwrap();
    assert_eq!(p3, p4);
    // A non-finite gradient changes nothing.
    let mut opt = AdamW::new(c, &[2]);
    let mut p5 = vec![1.0f32, 2.0];
    assert!(opt.step(&mut [&mut p5], &[&[f32::NAN, 0.0]], 1).is_err());
    assert_eq!((p5.clone(), opt.steps()), (vec![1.0, 2.0], 0));
    // Resuming from the state continues exactly.
    let mut a = AdamW::new(c, &[2]);
    let mut pa = vec![0.5f32, -0.5];
    a.step(&mut [&mut pa], &[&[0.3, -0.1]], 1).unwrap();
    let (step, m, v) = a.state();
    let mut b = AdamW::from_state(c, step, m.to_vec(), v.to_vec()).unwrap();
    let mut pb = pa.clone();
    a.step(&mut [&mut pa], &[&[0.1, 0.2]], 1).unwrap();
    b.step(&mut [&mut pb], &[&[0.1, 0.2]], 1).unwrap();
    assert_eq!(pa, pb);
}
