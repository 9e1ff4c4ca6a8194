//! Small dense f64 linear algebra the initialisations need, written to be deterministic (same
//! input, same bits, on every machine): a one-sided Jacobi SVD, a randomised truncated SVD on top of
//! it for large matrices, and an LU with partial pivoting stopped after a given number of steps.
//! Matrices are row-major slices.
use crate::adapter::rng::Mt19937;

/// `C = A·B` with `A` `[m, k]`, `B` `[k, n]`, in f64.
pub fn matmul(a: &[f64], b: &[f64], m: usize, k: usize, n: usize) -> Vec<f64> {
    assert_eq!(a.len(), m * k);
    assert_eq!(b.len(), k * n);
    let mut c = vec![0f64; m * n];
    for i in 0..m {
        let row = &mut c[i * n..(i + 1) * n];
        for (p, &av) in a[i * k..(i + 1) * k].iter().enumerate() {
            if av == 0.0 {
                continue;
            }
            for (cv, &bv) in row.iter_mut().zip(&b[p * n..(p + 1) * n]) {
                *cv += av * bv;
            }
        }
    }
    c
}

/// The transpose of a `[m, n]` matrix.
pub fn transpose<T: Copy + Default>(a: &[T], m: usize, n: usize) -> Vec<T> {
    assert_eq!(a.len(), m * n);
    let mut t = vec![T::default(); m * n];
    for i in 0..m {
        for j in 0..n {
            t[j * m + i] = a[i * n + j];
        }
    }
    t
}

/// f32 values widened to f64.
pub fn f64s(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| x as f64).collect()
}

/// f64 values rounded to f32.
pub fn f32s(v: &[f64]) -> Vec<f32> {
    v.iter().map(|&x| x as f32).collect()
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    // Eight partial sums in a fixed order (the compiler keeps them in vector lanes; a single
    // running sum would wait on each addition): deterministic, as Rust never fuses or reorders
    // floating-point operations by itself.
    let mut acc = [0f64; 8];
    let (ac, bc) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f64 = ac.remainder().iter().zip(bc.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in ac.zip(bc) {
        for k in 0..8 {
            acc[k] += x[k] * y[k];
        }
    }
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + tail
}

/// A thin singular value decomposition `A ≈ U·diag(s)·Vᵀ` of a `[m, n]` matrix, with `k` triplets
/// ordered by decreasing singular value.
#[derive(Clone, Debug)]
pub struct Svd {
    /// Rows of `A`.
    pub m: usize,
    /// Columns of `A`.
    pub n: usize,
    /// Number of triplets kept.
    pub k: usize,
    /// Left singular vectors as columns, `[m, k]`.
    pub u: Vec<f64>,
    /// Singular values, decreasing, `[k]`.
    pub s: Vec<f64>,
    /// Right singular vectors as rows, `[k, n]`.
    pub vt: Vec<f64>,
}

/// One-sided (Hestenes) Jacobi on the columns `c` (each of length `rows`): returns the rotated
/// columns (`A·V`, mutually orthogonal) and `V`'s columns.
fn jacobi_columns(rows: usize, mut c: Vec<Vec<f64>>) -> (Vec<Vec<f64>>, Vec<Vec<f64>>) {
    let n = c.len();
    let mut v: Vec<Vec<f64>> = (0..n)
        .map(|j| {
            let mut e = vec![0f64; n];
            e[j] = 1.0;
            e
        })
        .collect();
    let tol = f64::EPSILON * (rows.max(1) as f64);
    for _sweep in 0..80 {
        let mut rotated = false;
        for p in 0..n {
            for q in p + 1..n {
                let alpha = dot(&c[p], &c[p]);
                let beta = dot(&c[q], &c[q]);
                let gamma = dot(&c[p], &c[q]);
                if gamma == 0.0 || gamma.abs() <= tol * (alpha * beta).sqrt() {
                    continue;
                }
                rotated = true;
                let zeta = (beta - alpha) / (2.0 * gamma);
                let t = zeta.signum() / (zeta.abs() + (1.0 + zeta * zeta).sqrt());
                let cs = 1.0 / (1.0 + t * t).sqrt();
                let sn = cs * t;
                let (lo, hi) = c.split_at_mut(q);
                for (x, y) in lo[p].iter_mut().zip(hi[0].iter_mut()) {
                    let (a, b) = (*x, *y);
                    *x = cs * a - sn * b;
                    *y = sn * a + cs * b;
                }
                let (lo, hi) = v.split_at_mut(q);
                for (x, y) in lo[p].iter_mut().zip(hi[0].iter_mut()) {
                    let (a, b) = (*x, *y);
                    *x = cs * a - sn * b;
                    *y = sn * a + cs * b;
                }
            }
        }
        if !rotated {
            break;
        }
    }
    (c, v)
}

/// The index of the first entry of largest magnitude.
fn argmax_abs(v: &[f64]) -> usize {
    let mut best = 0;
    for (i, x) in v.iter().enumerate() {
        if x.abs() > v[best].abs() {
            best = i;
        }
    }
    best
}

impl Svd {
    /// Fixes each triplet's sign so that the entry of largest magnitude of `u_j` (the first such
    /// entry, and `v_j`'s when `u_j` is zero) is positive.
    fn fix_signs(&mut self) {
        let (m, n, k) = (self.m, self.n, self.k);
        for j in 0..k {
            let uj: Vec<f64> = (0..m).map(|i| self.u[i * k + j]).collect();
            let neg = if uj.iter().any(|&x| x != 0.0) {
                uj[argmax_abs(&uj)] < 0.0
            } else {
                let vj = &self.vt[j * n..(j + 1) * n];
                vj[argmax_abs(vj)] < 0.0
            };
            if neg {
                for i in 0..m {
                    self.u[i * k + j] = -self.u[i * k + j];
                }
                for x in &mut self.vt[j * n..(j + 1) * n] {
                    *x = -*x;
                }
            }
        }
    }

    /// Keeps the first `r` triplets.
    pub fn truncate(mut self, r: usize) -> Svd {
        let r = r.min(self.k);
        let mut u = vec![0f64; self.m * r];
        for i in 0..self.m {
            u[i * r..(i + 1) * r].copy_from_slice(&self.u[i * self.k..i * self.k + r]);
        }
        self.u = u;
        self.s.truncate(r);
        self.vt.truncate(r * self.n);
        self.k = r;
        self
    }

    /// `U·diag(s)·Vᵀ`, `[m, n]`.
    pub fn reconstruct(&self) -> Vec<f64> {
        let (m, n, k) = (self.m, self.n, self.k);
        let mut us = self.u.clone();
        for i in 0..m {
            for j in 0..k {
                us[i * k + j] *= self.s[j];
            }
        }
        matmul(&us, &self.vt, m, k, n)
    }
}

/// The full thin SVD (`k = min(m, n)`) of a `[m, n]` matrix by one-sided Jacobi, run on `A` when
/// `m ≥ n` and on `Aᵀ` otherwise. Deterministic: singular values sorted decreasing (ties keep
/// column order), each triplet's sign fixed so that the largest-magnitude entry of `u_j` is
/// positive. A zero singular value gets a zero vector on the longer side (`u_j` when `m ≥ n`, else
/// `v_j`); the other one is still a unit vector.
pub fn svd(a: &[f64], m: usize, n: usize) -> Svd {
    assert_eq!(a.len(), m * n);
    let k = m.min(n);
    // Columns of the tall orientation.
    let (rows, cols) = if m >= n { (m, n) } else { (n, m) };
    let c: Vec<Vec<f64>> = if m >= n {
        (0..n).map(|j| (0..m).map(|i| a[i * n + j]).collect()).collect()
    } else {
        (0..m).map(|i| a[i * n..(i + 1) * n].to_vec()).collect()
    };
    let (c, v) = jacobi_columns(rows, c);
    let sig: Vec<f64> = c.iter().map(|x| dot(x, x).sqrt()).collect();
    let mut order: Vec<usize> = (0..cols).collect();
    order.sort_by(|&x, &y| sig[y].partial_cmp(&sig[x]).unwrap_or(std::cmp::Ordering::Equal));
    let (mut u, mut s, mut vt) = (vec![0f64; m * k], vec![0f64; k], vec![0f64; k * n]);
    for (j, &src) in order.iter().enumerate() {
        s[j] = sig[src];
        // Tall side: the normalised rotated column; other side: the rotation's column.
        let tall: Vec<f64> = if sig[src] > 0.0 { c[src].iter().map(|x| x / sig[src]).collect() } else { vec![0f64; rows] };
        let (uj, vj) = if m >= n { (tall, v[src].clone()) } else { (v[src].clone(), tall) };
        for i in 0..m {
            u[i * k + j] = uj[i];
        }
        vt[j * n..(j + 1) * n].copy_from_slice(&vj);
    }
    let mut out = Svd { m, n, k, u, s, vt };
    out.fix_signs();
    out
}

/// Orthonormalises columns in place by modified Gram–Schmidt, twice; a column that vanishes
/// becomes zero.
fn orthonormalise(cols: &mut [Vec<f64>]) {
    for c in 0..cols.len() {
        let (done, rest) = cols.split_at_mut(c);
        let y = &mut rest[0];
        for _ in 0..2 {
            for q in done.iter() {
                let p = dot(q, y);
                for (yv, qv) in y.iter_mut().zip(q) {
                    *yv -= p * qv;
                }
            }
        }
        let nrm = dot(y, y).sqrt();
        if nrm > 1e-300 {
            for yv in y.iter_mut() {
                *yv /= nrm;
            }
        } else {
            y.iter_mut().for_each(|v| *v = 0.0);
        }
    }
}

/// The top `r` triplets of a `[m, n]` matrix by a randomised range finder (Halko et al., the
/// scheme of scikit-learn's `randomized_svd`): `q = min(r + 10, min(m, n))` Gaussian probes from
/// [`Mt19937::new`]`(seed)` ([`Mt19937::normal`], not numpy's stream), `n_iter` power iterations
/// with re-orthonormalisation, then the exact [`svd`] of the small projected matrix. Deterministic,
/// but an approximation (good when the spectrum decays past rank `r`).
pub fn svd_top(a: &[f64], m: usize, n: usize, r: usize, n_iter: usize, seed: u32) -> Svd {
    assert_eq!(a.len(), m * n);
    let q = (r + 10).min(m.min(n));
    let mut rng = Mt19937::new(seed);
    let omega: Vec<Vec<f64>> = (0..q).map(|_| (0..n).map(|_| rng.normal()).collect()).collect();
    // Both products pass over A once, a row at a time (the probes stay in cache), rather than once
    // per probe; each output element is summed in the same order either way.
    let a_times = |cols: &[Vec<f64>]| -> Vec<Vec<f64>> {
        let mut out = vec![vec![0f64; m]; cols.len()];
        for i in 0..m {
            let row = &a[i * n..(i + 1) * n];
            for (o, w) in out.iter_mut().zip(cols) {
                o[i] = dot(row, w);
            }
        }
        out
    };
    let at_times = |cols: &[Vec<f64>]| -> Vec<Vec<f64>> {
        let mut out = vec![vec![0f64; n]; cols.len()];
        for i in 0..m {
            let row = &a[i * n..(i + 1) * n];
            for (z, y) in out.iter_mut().zip(cols) {
                let yi = y[i];
                if yi == 0.0 {
                    continue;
                }
                for (zv, &av) in z.iter_mut().zip(row) {
                    *zv += yi * av;
                }
            }
        }
        out
    };
    let mut qm = a_times(&omega);
    orthonormalise(&mut qm);
    for _ in 0..n_iter {
        let mut z = at_times(&qm);
        orthonormalise(&mut z);
        qm = a_times(&z);
        orthonormalise(&mut qm);
    }
    // B = Qᵀ A, [q, n]: row c is (Aᵀ q_c)ᵀ.
    let bt = at_times(&qm);
    let b: Vec<f64> = bt.concat();
    let sb = svd(&b, q, n);
    // U = Q · U_b.
    let mut u = vec![0f64; m * sb.k];
    for i in 0..m {
        for j in 0..sb.k {
            u[i * sb.k + j] = (0..q).map(|c| qm[c][i] * sb.u[c * sb.k + j]).sum();
        }
    }
    let mut out = Svd { m, n, k: sb.k, u, s: sb.s, vt: sb.vt }.truncate(r);
    out.fix_signs();
    out
}

/// The top `r` triplets: the exact [`svd`] when `min(m, n) ≤ 256`, else [`svd_top`] with 10 power
/// iterations (scikit-learn's `TruncatedSVD(n_iter=10)` setting) and `seed`.
pub fn svd_truncated(a: &[f64], m: usize, n: usize, r: usize, seed: u32) -> Svd {
    if m.min(n) <= 256 {
        svd(a, m, n).truncate(r)
    } else {
        svd_top(a, m, n, r, 10, seed)
    }
}

/// The first `steps` steps of an LU factorisation with partial pivoting, `A = P·L·U`
/// (`torch.linalg.lu`'s convention; pivot = first row of largest magnitude, as LAPACK's `getrf`).
#[derive(Clone, Debug)]
pub struct LuSteps {
    /// Rows of `A`.
    pub m: usize,
    /// Columns of `A`.
    pub n: usize,
    /// Elimination steps done.
    pub steps: usize,
    /// `P·L[:, :steps]`, `[m, steps]`: the first columns of `L` with rows in `A`'s original order.
    /// Later pivoting steps permute `P` and `L` together, so this product is final after `steps`
    /// steps.
    pub pl: Vec<f64>,
    /// `U[:steps]`, `[steps, n]` (upper trapezoidal, not unit).
    pub u: Vec<f64>,
    /// `perm[i]`: the original row now at position `i` after the first `steps` swaps.
    pub perm: Vec<usize>,
}

/// Runs `steps ≤ min(m, n)` elimination steps of partial-pivoting LU on the `[m, n]` matrix `a`.
/// Errors with the step index when a pivot column is entirely zero (the factor would divide by
/// zero).
pub fn lu_steps(a: &[f64], m: usize, n: usize, steps: usize) -> Result<LuSteps, usize> {
    assert_eq!(a.len(), m * n);
    assert!(steps <= m.min(n), "at most min(m, n) steps");
    let mut w = a.to_vec();
    let mut perm: Vec<usize> = (0..m).collect();
    for k in 0..steps {
        let mut p = k;
        for i in k + 1..m {
            if w[i * n + k].abs() > w[p * n + k].abs() {
                p = i;
            }
        }
        if w[p * n + k] == 0.0 {
            return Err(k);
        }
        if p != k {
            for j in 0..n {
                w.swap(k * n + j, p * n + j);
            }
            perm.swap(k, p);
        }
        let piv = w[k * n + k];
        for i in k + 1..m {
            let l = w[i * n + k] / piv;
            w[i * n + k] = l;
            if l == 0.0 {
                continue;
            }
            for j in k + 1..n {
                w[i * n + j] -= l * w[k * n + j];
            }
        }
    }
    let mut pl = vec![0f64; m * steps];
    for (pos, &orig) in perm.iter().enumerate() {
        for j in 0..steps {
            pl[orig * steps + j] = match pos.cmp(&j) {
                std::cmp::Ordering::Greater => w[pos * n + j],
                std::cmp::Ordering::Equal => 1.0,
                std::cmp::Ordering::Less => 0.0,
            };
        }
    }
    let mut u = vec![0f64; steps * n];
    for k in 0..steps {
        for j in k..n {
            u[k * n + j] = w[k * n + j];
        }
    }
    Ok(LuSteps { m, n, steps, pl, u, perm })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rand_mat(m: usize, n: usize, seed: u32) -> Vec<f64> {
        let mut r = Mt19937::new(seed);
        (0..m * n).map(|_| r.normal()).collect()
    }

    fn max_abs_diff(a: &[f64], b: &[f64]) -> f64 {
        a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max)
    }

    fn check_orthonormal_cols(u: &[f64], m: usize, k: usize, skip_zero: bool) {
        for p in 0..k {
            for q in 0..k {
                let d: f64 = (0..m).map(|i| u[i * k + p] * u[i * k + q]).sum();
                let zero_p = (0..m).all(|i| u[i * k + p] == 0.0);
                if skip_zero && zero_p {
                    continue;
                }
                let want = if p == q { 1.0 } else { 0.0 };
                if skip_zero && (0..m).all(|i| u[i * k + q] == 0.0) {
                    continue;
                }
                assert!((d - want).abs() < 1e-12, "cols {p},{q}: {d}");
            }
        }
    }

    #[test]
    fn svd_reconstructs_and_is_orthonormal() {
        for &(m, n) in &[(20usize, 12usize), (12, 20), (7, 7), (1, 5), (5, 1), (33, 17)] {
            let a = rand_mat(m, n, (m * 100 + n) as u32);
            let s = svd(&a, m, n);
            assert_eq!(s.k, m.min(n));
            assert!(max_abs_diff(&s.reconstruct(), &a) < 1e-12, "{m}x{n}");
            assert!(s.s.windows(2).all(|w| w[0] >= w[1]));
            check_orthonormal_cols(&s.u, m, s.k, false);
            let v = transpose(&s.vt, s.k, n);
            check_orthonormal_cols(&v, n, s.k, false);
            // Sign convention.
            for j in 0..s.k {
                let uj: Vec<f64> = (0..m).map(|i| s.u[i * s.k + j]).collect();
                assert!(uj[argmax_abs(&uj)] > 0.0);
            }
        }
    }

    #[test]
    fn svd_known_values() {
        // Q1·diag(5, 3, 0.5)·Q2ᵀ with Q1, Q2 permutation-with-sign matrices.
        let a = [0.0, 0.0, -3.0, 5.0, 0.0, 0.0, 0.0, 0.5, 0.0, 0.0, 0.0, 0.0];
        let s = svd(&a, 4, 3);
        assert!(max_abs_diff(&s.s, &[5.0, 3.0, 0.5]) < 1e-14);
        // Rank-deficient: a zero singular value and a zero left vector.
        let b = [1.0, 2.0, 2.0, 4.0, 3.0, 6.0];
        let s = svd(&b, 3, 2);
        assert!((s.s[0] - (70f64).sqrt()).abs() < 1e-12 && s.s[1].abs() < 1e-12);
        assert!(max_abs_diff(&s.reconstruct(), &b) < 1e-12);
        // Deterministic.
        let a = rand_mat(20, 12, 9);
        let (x, y) = (svd(&a, 20, 12), svd(&a, 20, 12));
        assert_eq!(x.u, y.u);
        assert_eq!(x.vt, y.vt);
    }

    #[test]
    fn randomized_top_matches_exact_on_decaying_spectrum() {
        let (m, n, r) = (70usize, 50usize, 4usize);
        // A = U diag(2^-j) Vᵀ from the SVD of a random matrix.
        let base = svd(&rand_mat(m, n, 1), m, n);
        let mut s = base.clone();
        for (j, v) in s.s.iter_mut().enumerate() {
            *v = 0.5f64.powi(j as i32);
        }
        let a = s.reconstruct();
        let top = svd_top(&a, m, n, r, 10, 42);
        let exact = svd(&a, m, n).truncate(r);
        assert!(max_abs_diff(&top.s, &exact.s) < 1e-10, "{:?} {:?}", top.s, exact.s);
        assert!(max_abs_diff(&top.reconstruct(), &exact.reconstruct()) < 1e-9);
        assert!(max_abs_diff(&top.u, &exact.u) < 1e-8);
    }

    #[test]
    fn lu_full_reconstructs_and_partial_agrees() {
        for &(m, n) in &[(20usize, 12usize), (12, 20), (9, 9)] {
            let a = rand_mat(m, n, 5 + m as u32);
            let k = m.min(n);
            let lu = lu_steps(&a, m, n, k).unwrap();
            let pl_u = matmul(&lu.pl, &lu.u, m, k, n);
            assert!(max_abs_diff(&pl_u, &a) < 1e-12, "{m}x{n}");
            // |L| ≤ 1 (partial pivoting) and P·L's leading part is unit lower after permutation.
            assert!(lu.pl.iter().all(|v| v.abs() <= 1.0));
            // A prefix of the steps gives the same P·L columns and U rows.
            for r in 1..=k {
                let p = lu_steps(&a, m, n, r).unwrap();
                for i in 0..m {
                    for j in 0..r {
                        assert_eq!(p.pl[i * r + j], lu.pl[i * k + j]);
                    }
                }
                assert_eq!(p.u[..], lu.u[..r * n]);
            }
        }
        // Pivoting picks the largest magnitude: [[1, 2], [3, 4]] pivots on row 1.
        let lu = lu_steps(&[1.0, 2.0, 3.0, 4.0], 2, 2, 2).unwrap();
        assert_eq!(lu.perm, vec![1, 0]);
        assert_eq!(lu.u, vec![3.0, 4.0, 0.0, 2.0 - (1.0 / 3.0) * 4.0]);
        assert_eq!(lu_steps(&[0.0, 1.0, 0.0, 2.0], 2, 2, 1).unwrap_err(), 0);
    }
}
