//! Spectral norm (largest singular value) of a dense matrix, as a certified bracket
//! [lower, upper] that holds in real arithmetic despite floating-point rounding.
//!
//! - `exact`: SVD (faer); the bracket comes from the backward-error model of the SVD.
//! - `power`: power iteration; a certified lower bound only.
//! - `gram`: certified Gram iteration (Delattre, thesis ch. 3, Alg. 4) with exact power-of-two
//!   rescaling and the rounding error of every product carried into the bound. Two readouts
//!   turn an iterate G_t into an upper bound on lambda_max(G_t), walked back to sigma_1:
//!   a deflated 2x2 block readout (far tighter than the Frobenius readout once the top
//!   eigenvalue dominates), and, in the adaptive mode, an eigenvalue certificate: Lanczos for
//!   the top Ritz value theta, then a Cholesky factorization of mu I - G_t with
//!   mu = theta (1 + s), whose success proves lambda_max(G_t) <= mu (rounding included).
//!   A lambda-relative slack s on G_t costs only about s / 2^t on sigma_1, so every product
//!   makes the certificate easier; Lanczos gets about one product's worth of steps per
//!   iterate. The lower bound is ||A x|| / ||x|| for the readout's vector (certified).
//! - `auto`: the SVD for tiny matrices, else adaptive `gram`.

use faer::linalg::matmul::triangular::{matmul as tri_matmul, BlockStructure};
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
/// than `tol` (relative), whichever the caller sets; the adaptive mode stops at 30 products.
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
    // Row-major views (a row-major .npy seen as tall) go in as they are: faer's x86 kernel packs
    // both layouts, and on 2000 x 1000 the product on the view (16 ms) beats copying to
    // column-major first (10-14 ms for the copy alone).
    let work = x.nrows() * x.ncols() * x.ncols() / 2;
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

/// The most Gram products `gram` runs: the t-th iterate's bound carries the factor
/// rank^(1/2^t), below f64's resolution long before t = 64, so more products only add
/// rounding error and time.
pub const MAX_GRAM_PRODUCTS: usize = 64;

/// `gram`: certified Gram iteration. With `opts.iters` it runs that many Gram products (at most
/// [`MAX_GRAM_PRODUCTS`], and fewer once the bracket stops narrowing at the rounding floor);
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
        (Some(n), _) => (n.clamp(1, MAX_GRAM_PRODUCTS), 0.0),
        (None, t) => (30, t.unwrap_or(1e-6)),
    };
    // ||G_t^2||_F / ||G_t||_F^2 of the previous step: near 1 once one eigenvalue dominates.
    let mut concentration = 0.0;
    let mut best_width = f64::INFINITY;
    let mut best: Option<Bracket> = None;
    // Two q x q buffers, allocated once: the next iterate (ping-pong, no page faults per
    // product) and the Cholesky factor of the eigenvalue readout.
    let mut spare: Option<Mat<f64>> = None;
    let mut t = 1;
    loop {
        // The iterate G_t is used as 2^-e G_t (an exact power-of-two scale near unit norm); the
        // scale is applied in place only when a readout needs it, else inside the next product.
        let e = exponent(fro_g);
        let fro_gs = fro_g * pow2(-e);
        levels.push(Level { product_error, next_exponent: e });
        let last = t >= max_iters;
        let mut scaled_in_place = false;
        // The block readout costs a few passes over G and only succeeds once the top eigenvalue
        // carries most of the Frobenius norm, so iterates before that skip it (speed only).
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
            // Every readout is certified, so the brackets of all iterates intersect.
            if let Some(best) = &best {
                bracket.lower = bracket.lower.max(best.lower);
                bracket.upper = bracket.upper.min(best.upper);
            }
            let width = bracket.relative_width();
            // Past the rounding floor the width stops shrinking: return the best bracket (also
            // with a fixed number of products: more of them cannot narrow it, only cost time).
            let stalled = (width > 0.5 * best_width && t > 3) || width == 0.0;
            if last || (opts.iters.is_none() && width < tol) || stalled {
                return bracket;
            }
            best_width = best_width.min(width);
            best = Some(bracket.clone());
        }
        if opts.iters.is_none() {
            if !scaled_in_place {
                scale_in_place(&mut g, pow2(-e));
                scaled_in_place = true;
            }
            let work = spare.get_or_insert_with(|| Mat::zeros(q, q));
            let upper = |mu: f64| up(chain_back(&levels, mu) * pow2(e0));
            let lower = |x: &Col<f64>| scaled.lower(x, fro_a, e0);
            if let Some(bracket) = eigen_readout(&g, t, tol, work, opts.seed, upper, lower) {
                return bracket;
            }
        }
        product_error = up(gamma(q) * fro_gs * fro_gs) + UNDERFLOW_SLACK;
        let mut next = spare.take().unwrap_or_else(|| Mat::zeros(q, q));
        gram_product_into(&mut next, g.as_ref(), if scaled_in_place { 1.0 } else { pow2(-2 * e) });
        spare = Some(std::mem::replace(&mut g, next));
        fro_g = frobenius_fast(&g);
        concentration = fro_g / (fro_gs * fro_gs);
        t += 1;
    }
}

/// Lanczos steps allowed per iterate: about the cost of one more Gram product, which takes
/// q^3 multiply-adds at full speed where a step takes q^2 at memory speed (about q / 20 steps
/// per product on this class of machine: 7.6 ms against 0.33 ms at q = 1000).
fn lanczos_budget(q: usize) -> usize {
    (q / 16).clamp(12, 120)
}

/// The eigenvalue readout of an iterate G (scaled near unit norm) at Gram level t: `upper`
/// maps a certified mu >= lambda_max(G) to an upper bound on sigma_1 and `lower` a vector to
/// a certified lower bound. Returns a bracket narrower than `tol`, or None
/// when Lanczos does not settle within its budget or the certificate cannot resolve the width.
fn eigen_readout(
    g: &Mat<f64>,
    t: usize,
    tol: f64,
    work: &mut Mat<f64>,
    seed: u64,
    upper: impl Fn(f64) -> f64,
    lower: impl Fn(&Col<f64>) -> f64,
) -> Option<Bracket> {
    let q = g.nrows();
    // sigma_1 is lambda_max(G_t)^(1/2^t) up to exact scales: a lambda-relative slack s moves the
    // sigma upper bound by about s / 2^t.
    let mut slack = 0.75 * tol * pow2(t as i32);
    // The certificate takes 4 gamma(q+1) tr(mu I - G) off the diagonal, which must stay below
    // mu s; mu is about lambda_max <= ||G||_F, so tr(mu I - G) / mu <= q - tr(G) / ||G||_F.
    let trace: f64 = (0..q).map(|i| g[(i, i)]).sum();
    let floor = 4.0 * gamma(q + 1) * (q as f64 - trace / frobenius_fast(g)).max(1.0);
    if slack < 1.2 * floor {
        return None;
    }
    let ritz = lanczos_top(g, 0.2 * slack, lanczos_budget(q), seed);
    if !ritz.settled || ritz.theta.is_nan() || ritz.theta <= 0.0 {
        return None;
    }
    let mut best_lower = lower(&ritz.vector);
    for _ in 0..4 {
        let mu = up(ritz.theta * (1.0 + slack));
        if !certify_upper(g, mu, work) {
            // theta was further below lambda_max than the slack.
            slack *= 4.0;
            continue;
        }
        // Inverse iteration with the certificate's factor sharpens the vector.
        let mut z = ritz.vector.as_mat().to_owned();
        for _ in 0..2 {
            cholesky_solve(work, &mut z);
            let nz = z.col(0).norm_l2();
            if !(nz > 0.0 && nz.is_finite()) {
                break;
            }
            z *= faer::Scale(1.0 / nz);
        }
        best_lower = best_lower.max(lower(&z.col(0).to_owned()));
        let u = upper(mu);
        let bracket = Bracket { lower: best_lower.min(u), upper: u, method: "gram", iters: t };
        if bracket.relative_width() < tol {
            return Some(bracket);
        }
        // Too wide: the slack (or the rounding errors of the chain) dominates; a smaller slack
        // helps while the certificate can still resolve it.
        if 0.5 * slack < 1.2 * floor {
            return None;
        }
        slack *= 0.5;
    }
    None
}

/// A scaled by 2^-e (exact) in a new column-major matrix, and an upper bound on its
/// Frobenius norm (the scaled bound of A's).
fn scaled_copy(a: MatRef<'_, f64>, e: i32, fro_a: f64) -> (Mat<f64>, f64) {
    let s = pow2(-e);
    (Mat::from_fn(a.nrows(), a.ncols(), |i, j| a[(i, j)] * s), fro_a * s)
}

/// The top Ritz pair from Lanczos; `settled` says whether it met its tolerance.
struct Ritz {
    theta: f64,
    vector: Col<f64>,
    settled: bool,
}

/// Top Ritz pair of symmetric G by Lanczos with full reorthogonalization, stopping when the
/// top Ritz value changes by at most `rel_tol * theta` between checks (every 5 steps), or its
/// residual is that small, or after `max_steps` (not settled).
fn lanczos_top(g: &Mat<f64>, rel_tol: f64, max_steps: usize, seed: u64) -> Ritz {
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
                // With k = n the Krylov space is the whole space: the Ritz value is exact too.
                if settled || residual <= rel_tol * theta.abs() || bn <= f64::EPSILON * a.abs() || k == n {
                    return Ritz { theta: best.0, vector: best.1, settled: true };
                }
            }
        }
        beta.push(bn);
        if bn == 0.0 {
            break;
        }
        basis.push(w * (1.0 / bn));
    }
    // An invariant subspace (bn = 0) was found: its top Ritz value is exact.
    let settled = beta.last() == Some(&0.0);
    Ritz { theta: best.0, vector: best.1, settled }
}

/// Attempts to certify lambda_max(G) <= mu by a Cholesky factorization of mu I - G, in `work`
/// (q x q; on success its lower triangle holds the factor).
/// Floating-point Cholesky of a symmetric X that runs to completion gives X + dX = R^T R with
/// ||dX||_2 <= gamma(n+1) / (1 - gamma(n+1)) tr(X) (Demmel 1989; Rump 2006), whatever the order
/// of its sums (faer's blocked version included). We factor X = B - c I with B <= mu I - G
/// (diagonal rounded down) and c = 4 gamma(n+1) tr(B) + tiny, so success proves
/// mu I - G >= B > 0.
fn certify_upper(g: &Mat<f64>, mu: f64, work: &mut Mat<f64>) -> bool {
    use faer::linalg::cholesky::llt::factor::{cholesky_in_place, cholesky_in_place_scratch};
    let n = g.nrows();
    let diag: Vec<f64> = (0..n).map(|i| mu - g[(i, i)]).collect();
    if diag.iter().any(|&d| d.is_nan() || d <= 0.0) {
        return false;
    }
    let trace: f64 = up(diag.iter().sum::<f64>() * (1.0 + gamma(n + 2)));
    let c = up(4.0 * gamma(n + 1) * trace) + 1e-290;
    // Only the lower triangle is read by the factorization.
    for j in 0..n {
        // Round down twice: (mu - g_jj) and then - c.
        work[(j, j)] = (diag[j] * (1.0 - 2.0 * U) - c) * (1.0 - 2.0 * U);
        for i in j + 1..n {
            work[(i, j)] = -g[(i, j)];
        }
    }
    let par = par(n * n * n / 3);
    let mut mem = faer::dyn_stack::MemBuffer::new(cholesky_in_place_scratch::<f64>(n, par, Default::default()));
    let stack = faer::dyn_stack::MemStack::new(&mut mem);
    let ok = cholesky_in_place(work.as_mut(), Default::default(), par, stack, Default::default()).is_ok();
    ok && (0..n).all(|i| work[(i, i)].is_finite() && work[(i, i)] > 0.0)
}

/// z <- (L L^T)^-1 z with the factor in the lower triangle of `l`.
fn cholesky_solve(l: &Mat<f64>, z: &mut Mat<f64>) {
    use faer::linalg::triangular_solve::{solve_lower_triangular_in_place, solve_upper_triangular_in_place};
    solve_lower_triangular_in_place(l.as_ref(), z.as_mut(), Par::Seq);
    solve_upper_triangular_in_place(l.transpose(), z.as_mut(), Par::Seq);
}

/// `auto`: the fastest certified route for the requested width (see the module docs).
pub fn auto(a: MatRef<'_, f64>, opts: Options) -> Bracket {
    // Tiny matrices: the SVD is instant. A fixed iteration count asks for Gram iteration.
    if opts.iters.is_none() && a.nrows().max(a.ncols()) <= 32 {
        exact(a)
    } else {
        gram(a, opts)
    }
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

/// The top singular pair (u, v) of the row-major `[m, n]` matrix `w`, from faer's thin SVD.
/// Where sigma_1 is simple, u v^T is the gradient of sigma_1 (the limit of every certified
/// bracket above) with respect to W. None for an empty matrix or a failed SVD.
pub fn top_singular_pair(w: &[f64], m: usize, n: usize) -> Option<(Vec<f64>, Vec<f64>)> {
    if m == 0 || n == 0 || w.len() != m * n {
        return None;
    }
    let a = Mat::from_fn(m, n, |i, j| w[i * n + j]);
    let svd = a.thin_svd().ok()?;
    // Singular values come in non-increasing order: column 0 is the top pair.
    let u = (0..m).map(|i| svd.U()[(i, 0)]).collect();
    let v = (0..n).map(|j| svd.V()[(j, 0)]).collect();
    Some((u, v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cholesky_certificate_never_certifies_below_lambda_max() {
        // Gram matrices of random matrices, some nearly singular and some with a repeated top
        // eigenvalue; lambda_max from faer's symmetric eigensolver (accurate to ~1e-15 relative).
        let mut rng = lipcert_core::Rng::new(11);
        for (k, (p, q)) in [(60, 50), (200, 120), (40, 90), (300, 200)].into_iter().enumerate() {
            let mut a = Mat::<f64>::from_fn(p, q, |_, _| rng.normal());
            if k == 1 {
                // Two equal top singular values: copy column 0 onto column 1.
                for i in 0..p {
                    a[(i, 1)] = a[(i, 0)];
                }
            }
            let g = a.transpose() * &a;
            let eig = g.self_adjoint_eigen(Side::Lower).unwrap();
            let lambda = (0..q).map(|i| eig.S()[i]).fold(f64::NEG_INFINITY, f64::max);
            let mut work = Mat::zeros(q, q);
            for below in [1e-4, 1e-9, 1e-12] {
                assert!(!certify_upper(&g, lambda * (1.0 - below), &mut work), "{p}x{q}: certified below lambda_max");
            }
            assert!(certify_upper(&g, lambda * (1.0 + 1e-6), &mut work), "{p}x{q}: 1e-6 above lambda_max refused");
            // The factor left in `work` solves with mu I - G: the residual of one solve is small.
            let mu = lambda * (1.0 + 1e-3);
            assert!(certify_upper(&g, mu, &mut work));
            let b = Mat::<f64>::from_fn(q, 1, |_, _| rng.normal());
            let mut z = b.clone();
            cholesky_solve(&work, &mut z);
            let shifted = Mat::<f64>::from_fn(q, q, |i, j| if i == j { mu } else { 0.0 }) - &g;
            let residual = (&shifted * &z - &b).norm_l2() / b.norm_l2();
            assert!(residual < 1e-3, "{p}x{q}: residual {residual}");
        }
    }

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
