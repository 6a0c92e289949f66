//! Spectral norm (largest singular value) of a dense matrix, as a certified bracket
//! [lower, upper] that holds in real arithmetic despite floating-point rounding.
//!
//! - `exact`: SVD (faer); the bracket comes from the backward-error model of the SVD.
//! - `power`: power iteration; a certified lower bound only.
//! - `gram`: Gram iteration (Delattre, thesis ch. 3, Alg. 4) with exact power-of-two
//!   rescaling, rounding errors of every product carried into the bound, and a deflated
//!   2x2 block readout that is far tighter than the Frobenius readout once the top
//!   eigenvalue dominates; the lower bound comes from a refined dominant column.
//! - `auto`: one Gram product G = A^T A, Lanczos on G for the top Ritz pair, then a
//!   Cholesky factorization of mu I - G that certifies lambda_max(G) <= mu (with its rounding
//!   error accounted for); falls back to `gram` when the requested width is below what the
//!   Cholesky certificate can resolve.

use faer::linalg::matmul::triangular::{matmul as tri_matmul, BlockStructure};
use faer::linalg::solvers::Solve;
use faer::{Accum, Col, Mat, MatRef, Par, Side};
use lipcert_core::rounding::{down, exponent, frobenius_upper, gamma, pow2, up, U};
use lipcert_core::Rng;

/// How a bracket was computed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Exact,
    Power,
    Gram,
    Auto,
}

impl Method {
    pub fn name(self) -> &'static str {
        match self {
            Method::Exact => "exact",
            Method::Power => "power",
            Method::Gram => "gram",
            Method::Auto => "auto",
        }
    }
}

/// A certified bracket lower <= sigma_1 <= upper (upper is +inf when the method gives none).
#[derive(Clone, Debug, PartialEq)]
pub struct Bracket {
    pub lower: f64,
    pub upper: f64,
    /// The method that produced the bracket (`auto` reports the one it used).
    pub method: &'static str,
    /// Iterations: Gram products, power steps, or Lanczos steps.
    pub iters: usize,
}

impl Bracket {
    /// upper / lower - 1 (infinite when there is no upper bound or lower is 0).
    pub fn relative_width(&self) -> f64 {
        if self.lower > 0.0 {
            self.upper / self.lower - 1.0
        } else if self.upper == 0.0 {
            0.0
        } else {
            f64::INFINITY
        }
    }
}

/// Stopping rule: a fixed number of iterations, or iterate until the bracket is narrower
/// than `tol` (relative), whichever the caller sets; `max_iters` caps the adaptive mode.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    pub iters: Option<usize>,
    pub tol: Option<f64>,
    pub seed: u64,
}

impl Default for Options {
    fn default() -> Self {
        Options { iters: None, tol: Some(1e-6), seed: 0 }
    }
}

/// Parallelism for products of this many multiply-adds.
fn par(work: usize) -> Par {
    // Inside a rayon task (per-frequency blocks) the outer loop already uses every thread.
    if work > 1 << 18 && rayon::current_thread_index().is_none() {
        Par::rayon(0)
    } else {
        Par::Seq
    }
}

/// The matrix oriented tall (rows >= cols), so that A^T A is the smaller Gram matrix.
fn tall(a: MatRef<'_, f64>) -> MatRef<'_, f64> {
    if a.nrows() >= a.ncols() {
        a
    } else {
        a.transpose()
    }
}

/// alpha X^T X (symmetric; alpha a power of two): only the lower triangle is computed, then
/// mirrored. Scaling inside the product is exact and saves a pass over the data.
fn gram_product(x: MatRef<'_, f64>, alpha: f64) -> Mat<f64> {
    let mut g = Mat::<f64>::zeros(x.ncols(), x.ncols());
    gram_product_into(&mut g, x, alpha);
    g
}

/// As `gram_product`, into an existing q x q buffer (every entry is overwritten).
fn gram_product_into(g: &mut Mat<f64>, x: MatRef<'_, f64>, alpha: f64) {
    let work = x.nrows() * x.ncols() * x.ncols() / 2;
    if x.row_stride() != 1 && work > 1 << 18 {
        // A row-major view (a row-major .npy seen as tall): the triangular product on it is
        // about 5x slower than on a column-major copy, which costs one pass over the data.
        let copy = x.to_owned();
        return gram_product_into(g, copy.as_ref(), alpha);
    }
    tri_matmul(
        g.as_mut(),
        BlockStructure::TriangularLower,
        Accum::Replace,
        x.transpose(),
        BlockStructure::Rectangular,
        x,
        BlockStructure::Rectangular,
        alpha,
        par(work),
    );
    mirror_lower(g);
}

/// Absolute error that covers gradual underflow inside one product (at most 2^-1074 per
/// operation, for matrices far smaller than 2^700 entries).
const UNDERFLOW_SLACK: f64 = 1e-300;

/// Upper bound on ||G||_F in one pass, for iterates already scaled near unit norm; falls back
/// to the overflow-safe two-pass version when the quick sum leaves the safe range.
fn frobenius_fast(g: &Mat<f64>) -> f64 {
    use rayon::prelude::*;
    let sum: f64 = (0..g.ncols()).into_par_iter().map(|j| g.col(j).iter().map(|v| v * v).sum::<f64>()).sum();
    if sum.is_finite() && sum > 1e-280 {
        up(sum.sqrt() * (1.0 + gamma(g.nrows() * g.ncols() + 2)))
    } else {
        frobenius_upper(g.as_ref())
    }
}

/// The matrix scaled by 2^-e0 for computing with: `a` itself with the scale applied inside
/// products (`exp` = e0) at ordinary magnitudes, or an exactly scaled copy (`exp` = 0) at
/// extreme ones, where intermediate sums could overflow or underflow.
struct Scaled<'a> {
    view: MatRef<'a, f64>,
    copy: Option<Mat<f64>>,
    exp: i32,
}

impl<'a> Scaled<'a> {
    fn new(a: MatRef<'a, f64>, e0: i32, fro_a: f64) -> Self {
        if e0.abs() > 400 {
            Scaled { view: a, copy: Some(scaled_copy(a, e0, fro_a).0), exp: 0 }
        } else {
            Scaled { view: a, copy: None, exp: e0 }
        }
    }
    fn matrix(&self) -> MatRef<'_, f64> {
        self.copy.as_ref().map_or(self.view, |c| c.as_ref())
    }
    /// (2^-e0 A)^T (2^-e0 A).
    fn gram(&self) -> Mat<f64> {
        gram_product(self.matrix(), pow2(-2 * self.exp))
    }
    /// Certified lower bound on sigma_1(A) (true units) from a vector.
    fn lower(&self, x: &Col<f64>, fro_a: f64, e0: i32) -> f64 {
        match &self.copy {
            Some(c) => down(certified_lower(c.as_ref(), x, fro_a * pow2(-e0)) * pow2(e0)),
            None => certified_lower(self.view, x, fro_a),
        }
    }
}

/// Copies the lower triangle onto the upper one, in tiles so both sides stay in cache.
fn mirror_lower(g: &mut Mat<f64>) {
    const TILE: usize = 64;
    let n = g.nrows();
    for jb in (0..n).step_by(TILE) {
        for ib in (0..=jb).step_by(TILE) {
            for j in jb..(jb + TILE).min(n) {
                for i in ib..(ib + TILE).min(j) {
                    g[(i, j)] = g[(j, i)];
                }
            }
        }
    }
}

/// Multiplies every entry by `s` (a power of two: exact).
fn scale_in_place(g: &mut Mat<f64>, s: f64) {
    use rayon::prelude::*;
    g.par_col_iter_mut().for_each(|c| c.iter_mut().for_each(|v| *v *= s));
}

/// Certified lower bound on sigma_1(A) from any vector: ||A x|| / ||x||, with the rounding
/// of the product and the norms accounted for. `fro_a` is an upper bound on ||A||_F.
pub fn certified_lower(a: MatRef<'_, f64>, x: &Col<f64>, fro_a: f64) -> f64 {
    let xn2: f64 = x.iter().map(|v| v * v).sum();
    if xn2 == 0.0 || !xn2.is_finite() {
        return 0.0;
    }
    let y = a * x;
    let yn: f64 = y.iter().map(|v| v * v).sum::<f64>().sqrt();
    let xn = xn2.sqrt();
    // ||fl(Ax) - Ax|| <= gamma(n) ||A||_F ||x||; the norms are within gamma(len + 2) relative.
    let y_low = down(yn * (1.0 - gamma(a.nrows() + 2)));
    let x_up = up(xn * (1.0 + gamma(a.ncols() + 2)));
    let err = up(gamma(a.ncols()) * fro_a * x_up);
    down((y_low - err).max(0.0) / x_up)
}

/// `exact`: the largest singular value from faer's SVD, widened by the backward-error model
/// of Golub-Kahan bidiagonalization + QR: the computed singular values are those of A + E with
/// ||E||_2 <= p(m, n) u ||A||_2, and Weyl's inequality moves each by at most ||E||_2. We take
/// p(m, n) = 32 max(m, n) (documented in docs/GUARANTEES.md).
pub fn exact(a: MatRef<'_, f64>) -> Bracket {
    let a = tall(a);
    if a.nrows() == 0 || a.ncols() == 0 {
        return Bracket { lower: 0.0, upper: 0.0, method: "exact", iters: 0 };
    }
    let f = frobenius_upper(a);
    if f == 0.0 {
        return Bracket { lower: 0.0, upper: 0.0, method: "exact", iters: 0 };
    }
    // Scale by a power of two so that extreme magnitudes cannot overflow inside the SVD.
    let e = exponent(f);
    let (scaled, _) = scaled_copy(a, e, f);
    let s = scaled.singular_values().map(|v| v.first().copied().unwrap_or(0.0)).unwrap_or(f64::NAN);
    if !s.is_finite() {
        return Bracket { lower: 0.0, upper: up(f), method: "exact", iters: 0 };
    }
    let eta = 32.0 * a.nrows().max(a.ncols()) as f64 * U;
    let upper = up(s / (1.0 - eta)) * pow2(e);
    let lower = down(s - eta * s / (1.0 - eta)) * pow2(e);
    Bracket { lower, upper: upper.min(up(f)), method: "exact", iters: 0 }
}

/// `power`: power iteration on A^T A from a seeded random start; certified lower bound only.
/// Stops after `iters` steps, or when the estimate changes by less than tol / 10.
pub fn power(a: MatRef<'_, f64>, opts: Options) -> Bracket {
    let a = tall(a);
    let q = a.ncols();
    let f = frobenius_upper(a);
    if q == 0 || f == 0.0 {
        return Bracket { lower: 0.0, upper: f64::INFINITY, method: "power", iters: 0 };
    }
    // Work on A scaled by an exact power of two so that A^T A x cannot overflow.
    let e0 = exponent(f);
    let (a_owned, f_scaled) = scaled_copy(a, e0, f);
    let a = a_owned.as_ref();
    let mut rng = Rng::new(opts.seed);
    let mut x = Col::from_fn(q, |_| rng.normal());
    let max_iters = opts.iters.unwrap_or(10_000);
    let (mut prev, mut it) = (0.0, 0);
    while it < max_iters {
        it += 1;
        let y = a * &x;
        let z = a.transpose() * &y;
        let n = z.norm_l2();
        if n == 0.0 || !n.is_finite() {
            break;
        }
        x = z * (1.0 / n);
        let est = y.norm_l2();
        if opts.iters.is_none() && (est - prev).abs() <= opts.tol.unwrap_or(1e-6) * 0.1 * est {
            break;
        }
        prev = est;
    }
    let lower = down(certified_lower(a, &x, f_scaled) * pow2(e0));
    Bracket { lower, upper: f64::INFINITY, method: "power", iters: it }
}

/// One level of the Gram chain: the bound on the rounding error of the product that produced
/// the next level, and the power-of-two exponent that the next level was scaled by.
pub(crate) struct Level {
    pub(crate) product_error: f64,
    pub(crate) next_exponent: i32,
}

/// Upper bound on sigma_1 of the (scaled) input from an upper bound on lambda_max of the
/// last (scaled) Gram iterate, walking the chain back:
/// lambda_max(G_t)^2 <= sigma_1(G_t)^2 = lambda_max(G_t^T G_t) <= 2^e lambda_max(G_{t+1}) + ||E_t||.
pub(crate) fn chain_back(levels: &[Level], top: f64) -> f64 {
    let mut b = top.max(0.0);
    for level in levels.iter().rev() {
        b = up((up(b * pow2(level.next_exponent)) + level.product_error).sqrt());
    }
    b
}

/// Certified upper bound on lambda_max(G) for a symmetric matrix G from a vector x:
/// in the basis (x, x-perp), G = [[a, b^T], [b, C]] with ||b|| = ||G x - a x|| = r and
/// lambda_max(C) <= ||P G P||_F = c, so lambda_max(G) <= lambda_max([[a, r], [r, c]]).
/// `fro` is an upper bound on ||G||_F. Rounding errors of a, r, c are bounded by delta.
/// Also says whether the block structure helped (c < a), i.e. whether refining x can pay off.
fn block_bound(g: &Mat<f64>, x: &Col<f64>, fro: f64) -> (f64, bool) {
    let n = g.nrows();
    let xx: f64 = x.iter().map(|v| v * v).sum();
    if xx == 0.0 {
        return (fro, false);
    }
    let xn = xx.sqrt();
    let u = x * (1.0 / xn);
    let y = g * &u;
    let a = u.iter().zip(y.iter()).map(|(p, q)| p * q).sum::<f64>();
    let r = y.iter().zip(u.iter()).map(|(yi, ui)| (yi - a * ui).powi(2)).sum::<f64>().sqrt();
    let (us, ys): (Vec<f64>, Vec<f64>) = (u.iter().copied().collect(), y.iter().copied().collect());
    let mut c2 = 0.0f64;
    for (j, col) in g.col_iter().enumerate() {
        let (uj, yj) = (us[j], ys[j]);
        for ((gij, ui), yi) in col.iter().zip(&us).zip(&ys) {
            let d = gij - ui * yj - yi * uj + a * ui * uj;
            c2 += d * d;
        }
    }
    let c = c2.sqrt();
    // Each of a, r, c is a sum of at most n products of terms bounded by ||G||_F (u is unit
    // to within (n + 2) u); 16 (n + 8) u ||G||_F covers them, and c adds its n^2-term sum.
    let delta = 16.0 * (n as f64 + 8.0) * U * fro;
    let (a, r, c) = (a + delta, r + 2.0 * delta, up(c * (1.0 + gamma(n * n + 2)) + 4.0 * delta + 16.0 * U * fro));
    let half = up((a + c) / 2.0);
    let disc = up((up(((a - c) / 2.0).powi(2)) + up(r * r)).sqrt());
    // The readout is effective once c < a: then a sharper x tightens it further.
    (up(half + disc).min(fro), c < a - 2.0 * delta)
}

/// `steps` normalized multiplications of x by G.
fn power_steps(g: &Mat<f64>, mut x: Col<f64>, steps: usize) -> Col<f64> {
    for _ in 0..steps {
        let y = g * &x;
        let n = y.norm_l2();
        if n == 0.0 || !n.is_finite() {
            break;
        }
        x = y * (1.0 / n);
    }
    x
}

/// Dominant column of G, refined by a few multiplications with G.
fn refined_column(g: &Mat<f64>, steps: usize) -> Col<f64> {
    // Squared norms in one plain pass (faer's norm_l2 rescales against overflow, which the
    // iterates, scaled near unit norm, do not need; this only picks a start vector).
    let best = g
        .col_iter()
        .map(|c| c.iter().map(|v| v * v).sum::<f64>())
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .map_or(0, |(i, _)| i);
    power_steps(g, g.col(best).to_owned(), steps)
}

/// `gram`: certified Gram iteration. With `opts.iters` it runs that many Gram products;
/// otherwise it stops when upper / lower - 1 < tol (at most 30 products).
pub fn gram(a: MatRef<'_, f64>, opts: Options) -> Bracket {
    let a = tall(a);
    let (p, q) = (a.nrows(), a.ncols());
    let fro_a = frobenius_upper(a);
    if q == 0 || fro_a == 0.0 {
        return Bracket { lower: 0.0, upper: 0.0, method: "gram", iters: 0 };
    }
    if !fro_a.is_finite() {
        return Bracket { lower: 0.0, upper: f64::INFINITY, method: "gram", iters: 0 };
    }
    let e0 = exponent(fro_a);
    let scaled = Scaled::new(a, e0, fro_a);
    let fro_s = fro_a * pow2(-e0);
    let mut levels = vec![];
    let mut g = scaled.gram();
    let mut fro_g = frobenius_upper(g.as_ref());
    let mut product_error = up(gamma(p) * fro_s * fro_s) + UNDERFLOW_SLACK;
    let (max_iters, tol) = match (opts.iters, opts.tol) {
        (Some(n), _) => (n.max(1), 0.0),
        (None, t) => (30, t.unwrap_or(1e-6)),
    };
    // ||G_t^2||_F / ||G_t||_F^2 of the previous step: near 1 once one eigenvalue dominates.
    let mut concentration = 0.0;
    let mut best_width = f64::INFINITY;
    let mut spare: Option<Mat<f64>> = None;
    let mut t = 1;
    loop {
        // The iterate G_t is used as 2^-e G_t (an exact power-of-two scale near unit norm); the
        // scale is applied in place only when the readout needs it, else inside the next product.
        let e = exponent(fro_g);
        let fro_gs = fro_g * pow2(-e);
        levels.push(Level { product_error, next_exponent: e });
        let last = t >= max_iters;
        let mut scaled_in_place = false;
        // The readout costs a few passes over G and only succeeds once the top eigenvalue carries
        // most of the Frobenius norm, so iterates before that skip it (this affects speed only).
        if last || concentration >= 0.3 {
            scale_in_place(&mut g, pow2(-e));
            scaled_in_place = true;
            let readout = |x: &Col<f64>| {
                let (top, effective) = block_bound(&g, x, fro_gs);
                let upper = up(chain_back(&levels, top) * pow2(e0));
                (Bracket { lower: scaled.lower(x, fro_a, e0).min(upper), upper, method: "gram", iters: t }, effective)
            };
            let mut x = refined_column(&g, 2);
            let (mut bracket, effective) = readout(&x);
            // Once the block readout works, a sharper vector (a few products with G, O(n^2)
            // each) narrows the bracket far more cheaply than another Gram product (O(n^3)).
            for _ in 0..3 {
                if !effective || opts.iters.is_some() || bracket.relative_width() < tol {
                    break;
                }
                x = power_steps(&g, x, 3);
                let (sharper, _) = readout(&x);
                let improved = sharper.relative_width() < 0.5 * bracket.relative_width();
                bracket = Bracket {
                    lower: bracket.lower.max(sharper.lower),
                    upper: bracket.upper.min(sharper.upper),
                    ..sharper
                };
                if !improved {
                    break;
                }
            }
            let width = bracket.relative_width();
            // Past the rounding floor the width stops shrinking: return the best bracket.
            let stalled = opts.iters.is_none() && width > 0.5 * best_width && t > 3;
            if last || (opts.iters.is_none() && width < tol) || stalled {
                return bracket;
            }
            best_width = best_width.min(width);
        }
        product_error = up(gamma(q) * fro_gs * fro_gs) + UNDERFLOW_SLACK;
        // Ping-pong between two buffers: no allocation (and no page faults) per product.
        let mut next = spare.take().unwrap_or_else(|| Mat::zeros(q, q));
        gram_product_into(&mut next, g.as_ref(), if scaled_in_place { 1.0 } else { pow2(-2 * e) });
        spare = Some(std::mem::replace(&mut g, next));
        fro_g = frobenius_fast(&g);
        concentration = fro_g / (fro_gs * fro_gs);
        t += 1;
    }
}

/// A scaled by 2^-e (exact) in a new column-major matrix, and an upper bound on its
/// Frobenius norm (the scaled bound of A's).
fn scaled_copy(a: MatRef<'_, f64>, e: i32, fro_a: f64) -> (Mat<f64>, f64) {
    let s = pow2(-e);
    (Mat::from_fn(a.nrows(), a.ncols(), |i, j| a[(i, j)] * s), fro_a * s)
}

/// Top Ritz pair of symmetric G by Lanczos with full reorthogonalization, stopping when the
/// top Ritz value changes by at most `rel_tol * theta` between checks (every 5 steps), or its
/// residual is that small (or after `max_steps`). Returns (theta, vector, steps).
fn lanczos_top(g: &Mat<f64>, rel_tol: f64, max_steps: usize, seed: u64) -> (f64, Col<f64>, usize) {
    let n = g.nrows();
    let mut rng = Rng::new(seed);
    let mut q = Col::from_fn(n, |_| rng.normal());
    q = &q * (1.0 / q.norm_l2());
    let mut basis: Vec<Col<f64>> = vec![q];
    let (mut alpha, mut beta): (Vec<f64>, Vec<f64>) = (vec![], vec![]);
    let mut best = (0.0, basis[0].clone());
    let steps = max_steps.min(n);
    for k in 1..=steps {
        let mut w = g * basis.last().expect("basis");
        let a: f64 = w.iter().zip(basis[k - 1].iter()).map(|(x, y)| x * y).sum();
        alpha.push(a);
        // Full reorthogonalization (twice is enough) keeps the Ritz values honest.
        for _ in 0..2 {
            for b in &basis {
                let d: f64 = w.iter().zip(b.iter()).map(|(x, y)| x * y).sum();
                w -= b * d;
            }
        }
        let bn = w.norm_l2();
        let check = k % 5 == 0 || k == steps || bn <= f64::EPSILON * a.abs();
        if check {
            let t = Mat::from_fn(k, k, |i, j| {
                if i == j {
                    alpha[i]
                } else if i + 1 == j || j + 1 == i {
                    beta[i.min(j)]
                } else {
                    0.0
                }
            });
            if let Ok(eig) = t.self_adjoint_eigen(Side::Lower) {
                let s = eig.S();
                let top = (0..k).max_by(|&i, &j| s[i].total_cmp(&s[j])).unwrap_or(0);
                let theta = s[top];
                let v = eig.U().col(top);
                let mut x = Col::<f64>::zeros(n);
                for (i, b) in basis.iter().enumerate().take(k) {
                    x += b * v[i];
                }
                let residual = bn * v[k - 1].abs();
                // Ritz values converge from below much faster than Ritz vectors: stop when the
                // value has settled (the caller sharpens the vector by inverse iteration).
                let settled = (theta - best.0).abs() <= rel_tol * theta.abs();
                best = (theta, x);
                if settled || residual <= rel_tol * theta.abs() || bn <= f64::EPSILON * a.abs() {
                    return (best.0, best.1, k);
                }
            }
        }
        beta.push(bn);
        if bn == 0.0 {
            break;
        }
        basis.push(w * (1.0 / bn));
    }
    (best.0, best.1, steps)
}

/// Attempts to certify lambda_max(G) <= mu by a Cholesky factorization of mu I - G.
/// Floating-point Cholesky of a symmetric X that runs to completion gives X + dX = R^T R with
/// ||dX||_2 <= gamma(n+1) / (1 - gamma(n+1)) tr(X) (Demmel 1989; Rump 2006). We factor
/// X = B - c I with B <= mu I - G (diagonal rounded down) and c = 4 gamma(n+1) tr(B) + tiny,
/// so success proves mu I - G >= B > 0. Returns the factorization for inverse iteration.
fn certify_upper(g: &Mat<f64>, mu: f64) -> Option<faer::linalg::solvers::Llt<f64>> {
    let n = g.nrows();
    let diag: Vec<f64> = (0..n).map(|i| mu - g[(i, i)]).collect();
    if diag.iter().any(|&d| d.is_nan() || d <= 0.0) {
        return None;
    }
    let trace: f64 = up(diag.iter().sum::<f64>() * (1.0 + gamma(n + 2)));
    let c = up(4.0 * gamma(n + 1) * trace) + 1e-290;
    let x = Mat::from_fn(n, n, |i, j| {
        if i == j {
            // Round down twice: (mu - g_ii) and then - c.
            (diag[i] * (1.0 - 2.0 * U) - c) * (1.0 - 2.0 * U)
        } else {
            -g[(i, j)]
        }
    });
    let llt = x.llt(Side::Lower).ok()?;
    let l = llt.L();
    (0..n).all(|i| l[(i, i)].is_finite() && l[(i, i)] > 0.0).then_some(llt)
}

/// `auto`: the fastest certified route for the requested width (see the module docs).
pub fn auto(a: MatRef<'_, f64>, opts: Options) -> Bracket {
    let at = tall(a);
    let (p, q) = (at.nrows(), at.ncols());
    let tol = opts.tol.unwrap_or(1e-6);
    // Tiny matrices: the SVD is instant. A fixed iteration count asks for Gram iteration.
    if q <= 16 || opts.iters.is_some() {
        return if opts.iters.is_some() { gram(a, opts) } else { exact(a) };
    }
    let fro_a = frobenius_upper(at);
    if fro_a == 0.0 || !fro_a.is_finite() {
        return gram(a, opts);
    }
    // The Cholesky certificate cannot resolve widths below ~ its rounding margin.
    let floor = 8.0 * gamma(q + 1) * q as f64;
    if tol < 2.0 * floor {
        return gram(a, opts);
    }
    let e0 = exponent(fro_a);
    let scaled = Scaled::new(at, e0, fro_a);
    let fro_s = fro_a * pow2(-e0);
    let g = scaled.gram();
    let product_error = up(gamma(p) * fro_s * fro_s) + UNDERFLOW_SLACK;
    let (theta, x, steps) = lanczos_top(&g, tol * 0.2, 400, opts.seed);
    if theta.is_nan() || theta <= 0.0 {
        return gram(a, opts);
    }
    // Lower bounds in the scaled units of G (scaling by 2^-e0 is exact).
    let mut lower = scaled.lower(&x, fro_a, e0) * pow2(-e0);
    // lambda-relative slack: sigma-relative width tol needs about 2 tol in lambda.
    let mut slack = 1.5 * tol;
    for _ in 0..4 {
        let mu = up(lower.max(theta.sqrt()).powi(2) * (1.0 + slack));
        if let Some(llt) = certify_upper(&g, mu) {
            // Inverse iteration with the certificate's factor sharpens the vector for the lower bound.
            let mut z = x.clone();
            for _ in 0..2 {
                let mut rhs = z.as_mat().to_owned();
                llt.solve_in_place(rhs.as_mut());
                let nz = rhs.col(0).norm_l2();
                if !(nz > 0.0 && nz.is_finite()) {
                    break;
                }
                z = rhs.col(0) * (1.0 / nz);
            }
            lower = lower.max(scaled.lower(&z, fro_a, e0) * pow2(-e0));
            let upper = up((mu + product_error).sqrt());
            let s = pow2(e0);
            let bracket =
                Bracket { lower: down(lower * s).min(upper * s), upper: up(upper * s), method: "auto", iters: steps };
            if bracket.relative_width() < tol {
                return bracket;
            }
            slack *= 0.5;
        } else {
            slack *= 4.0;
        }
    }
    gram(a, opts)
}

/// Dispatches to a method.
pub fn spectral_norm(a: MatRef<'_, f64>, method: Method, opts: Options) -> Bracket {
    match method {
        Method::Exact => exact(a),
        Method::Power => power(a, opts),
        Method::Gram => gram(a, opts),
        Method::Auto => auto(a, opts),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gram_product_equals_the_full_product() {
        // Column-major and row-major (transposed view) inputs; scaled by 2^-3.
        let mut rng = lipcert_core::Rng::new(3);
        for (p, q) in [(300, 1100), (40, 513), (7, 9)] {
            let x = Mat::<f64>::from_fn(p, q, |_, _| rng.normal());
            let xt = x.transpose().to_owned();
            let full = x.transpose() * &x * 0.125;
            let scale = full.norm_max();
            for view in [x.as_ref(), xt.as_ref().transpose()] {
                let g = gram_product(view, 0.125);
                assert!((&g - &full).norm_max() <= 1e-13 * scale * p as f64, "{p} x {q}");
            }
        }
    }
}
