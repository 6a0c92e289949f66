//! Statistics for randomized smoothing: the standard normal CDF and quantile, the regularized
//! incomplete beta function and its inverse, Clopper-Pearson bounds, the binomial test used by
//! PREDICT, and the empirical Bernstein and Hoeffding bounds for [0, 1]-valued samples.
//!
//! All bounds here are one-sided at the risk given: `P(true value < lower) <= risk`.

use std::f64::consts::{FRAC_1_SQRT_2, PI};

/// Standard normal CDF Phi(x), accurate to a few ulp (via erfc, no cancellation in the tails).
pub fn norm_cdf(x: f64) -> f64 {
    0.5 * libm::erfc(-x * FRAC_1_SQRT_2)
}

/// Standard normal density.
pub fn norm_pdf(x: f64) -> f64 {
    (-0.5 * x * x).exp() / (2.0 * PI).sqrt()
}

/// Standard normal quantile Phi^-1(p) for p in [0, 1] (-inf at 0, +inf at 1, NaN outside).
/// Acklam's rational approximation (relative error 1.2e-9) refined by one Halley step on
/// erfc, which brings it to about 1e-15 relative.
pub fn norm_ppf(p: f64) -> f64 {
    if p.is_nan() || !(0.0..=1.0).contains(&p) {
        return f64::NAN;
    }
    if p == 0.0 {
        return f64::NEG_INFINITY;
    }
    if p == 1.0 {
        return f64::INFINITY;
    }
    const A: [f64; 6] = [
        -3.969_683_028_665_376e1,
        2.209_460_984_245_205e2,
        -2.759_285_104_469_687e2,
        1.383_577_518_672_69e2,
        -3.066_479_806_614_716e1,
        2.506_628_277_459_239,
    ];
    const B: [f64; 5] = [
        -5.447_609_879_822_406e1,
        1.615_858_368_580_409e2,
        -1.556_989_798_598_866e2,
        6.680_131_188_771_972e1,
        -1.328_068_155_288_572e1,
    ];
    const C: [f64; 6] = [
        -7.784_894_002_430_293e-3,
        -3.223_964_580_411_365e-1,
        -2.400_758_277_161_838,
        -2.549_732_539_343_734,
        4.374_664_141_464_968,
        2.938_163_982_698_783,
    ];
    const D: [f64; 4] =
        [7.784_695_709_041_462e-3, 3.224_671_290_700_398e-1, 2.445_134_137_142_996, 3.754_408_661_907_416];
    const P_LOW: f64 = 0.02425;
    let tail = |q: f64| {
        let t = (-2.0 * q.ln()).sqrt();
        (((((C[0] * t + C[1]) * t + C[2]) * t + C[3]) * t + C[4]) * t + C[5])
            / ((((D[0] * t + D[1]) * t + D[2]) * t + D[3]) * t + 1.0)
    };
    let x = if p < P_LOW {
        tail(p)
    } else if p <= 1.0 - P_LOW {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    } else {
        -tail(1.0 - p)
    };
    // Halley refinement. In the upper half, work with the upper tail 1 - Phi(x) = Phi(-x)
    // against 1 - p so that small upper-tail probabilities keep their relative accuracy.
    let e = if p < 0.5 { norm_cdf(x) - p } else { (1.0 - p) - norm_cdf(-x) };
    let u = e * (2.0 * PI).sqrt() * (0.5 * x * x).exp();
    x - u / (1.0 + 0.5 * x * u)
}

/// lgamma(x) - ((x - 1/2) ln x - x + ln sqrt(2 pi)) for x >= 10 (Stirling series).
fn lgamma_correction(x: f64) -> f64 {
    let z = 1.0 / (x * x);
    (1.0 / 12.0
        + z * (-1.0 / 360.0
            + z * (1.0 / 1260.0 + z * (-1.0 / 1680.0 + z * (1.0 / 1188.0 + z * (-691.0 / 360_360.0 + z / 156.0))))))
        / x
}

/// ln Beta(a, b), without the cancellation of lgamma(a) + lgamma(b) - lgamma(a + b) for large
/// arguments (the approach of R's lbeta): Stirling corrections for the large arguments.
fn ln_beta(a: f64, b: f64) -> f64 {
    const LN_SQRT_2PI: f64 = 0.918_938_533_204_672_8;
    let (p, q) = (a.min(b), a.max(b));
    if p >= 10.0 {
        let corr = lgamma_correction(p) + lgamma_correction(q) - lgamma_correction(p + q);
        -0.5 * q.ln() + LN_SQRT_2PI + corr + (p - 0.5) * (p / (p + q)).ln() + q * (-p / (p + q)).ln_1p()
    } else if q >= 10.0 {
        let corr = lgamma_correction(q) - lgamma_correction(p + q);
        libm::lgamma(p) + corr + p - p * (p + q).ln() + (q - 0.5) * (-p / (p + q)).ln_1p()
    } else {
        libm::lgamma(p) + libm::lgamma(q) - libm::lgamma(p + q)
    }
}

/// Continued fraction of the incomplete beta function (modified Lentz), valid for
/// x < (a + 1) / (a + b + 2).
fn beta_cf(x: f64, a: f64, b: f64) -> f64 {
    const TINY: f64 = 1e-300;
    let (qab, qap, qam) = (a + b, a + 1.0, a - 1.0);
    let mut c = 1.0;
    let mut d = 1.0 - qab * x / qap;
    if d.abs() < TINY {
        d = TINY;
    }
    d = 1.0 / d;
    let mut h = d;
    for m in 1..100_000 {
        let m = m as f64;
        let m2 = 2.0 * m;
        let aa = m * (b - m) * x / ((qam + m2) * (a + m2));
        d = 1.0 + aa * d;
        if d.abs() < TINY {
            d = TINY;
        }
        c = 1.0 + aa / c;
        if c.abs() < TINY {
            c = TINY;
        }
        d = 1.0 / d;
        h *= d * c;
        let aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2));
        d = 1.0 + aa * d;
        if d.abs() < TINY {
            d = TINY;
        }
        c = 1.0 + aa / c;
        if c.abs() < TINY {
            c = TINY;
        }
        d = 1.0 / d;
        let del = d * c;
        h *= del;
        if (del - 1.0).abs() < 1e-16 {
            break;
        }
    }
    h
}

/// The regularized incomplete beta function and its complement, `(I_x(a, b), 1 - I_x(a, b))`,
/// each computed directly (without cancellation) on its own side.
pub fn beta_inc_pair(x: f64, a: f64, b: f64) -> (f64, f64) {
    if x <= 0.0 {
        return (0.0, 1.0);
    }
    if x >= 1.0 {
        return (1.0, 0.0);
    }
    // Integer parameters (every Clopper-Pearson bound): I_x(a, b) = P(Bin(a + b - 1, x) >= a),
    // summed term by term (positive terms, no cancellation; the continued fraction loses up to
    // 1e-11 relative for very unequal parameters).
    if a.fract() == 0.0 && b.fract() == 0.0 && a + b <= 1e9 {
        if let Some(t) = binomial_tails((a + b - 1.0) as u64, a as u64, x) {
            return (t.1, t.0);
        }
    }
    let ln_front = a * x.ln() + b * (-x).ln_1p() - ln_beta(a, b);
    if x < (a + 1.0) / (a + b + 2.0) {
        let i = (ln_front.exp() * beta_cf(x, a, b) / a).clamp(0.0, 1.0);
        (i, 1.0 - i)
    } else {
        let j = (ln_front.exp() * beta_cf(1.0 - x, b, a) / b).clamp(0.0, 1.0);
        (1.0 - j, j)
    }
}

/// `(P(X < k), P(X >= k))` for X ~ Bin(n, x), 1 <= k <= n, as sums of positive terms
/// walking outward from k. None when k is more than 25 standard deviations from the mean
/// (one tail is then below 1e-130 and the caller's continued fraction is accurate enough).
fn binomial_tails(n: u64, k: u64, x: f64) -> Option<(f64, f64)> {
    let (nf, kf) = (n as f64, k as f64);
    let sd = (nf * x * (1.0 - x)).sqrt();
    if (kf - nf * x).abs() > 25.0 * sd + 20.0 {
        return None;
    }
    // ln pmf(k) = ln C(n, k) + k ln x + (n - k) ln(1 - x), with ln C(n, k) = -ln(n + 1) - ln B(k + 1, n - k + 1).
    let ln_pmf = -(nf + 1.0).ln() - ln_beta(kf + 1.0, nf - kf + 1.0) + kf * x.ln() + (nf - kf) * (-x).ln_1p();
    let pk = ln_pmf.exp();
    let odds = x / (1.0 - x);
    // Upper tail: j = k, k + 1, ..., n.
    let (mut upper, mut term, mut j) = (pk, pk, k);
    while j < n {
        term *= (n - j) as f64 / (j + 1) as f64 * odds;
        j += 1;
        upper += term;
        if term <= 1e-17 * upper && (j as f64) > nf * x {
            break;
        }
    }
    // Lower tail: j = k - 1, ..., 0.
    let (mut lower, mut term, mut j) = (0.0, pk, k);
    while j > 0 {
        term *= j as f64 / ((n - j + 1) as f64 * odds);
        j -= 1;
        lower += term;
        if term <= 1e-17 * lower && (j as f64) < nf * x {
            break;
        }
    }
    let total = lower + upper;
    (total > 0.0 && total.is_finite()).then(|| (lower / total, upper / total))
}

/// Regularized incomplete beta function I_x(a, b) (the Beta(a, b) CDF at x).
pub fn beta_inc(x: f64, a: f64, b: f64) -> f64 {
    beta_inc_pair(x, a, b).0
}

/// Solves `tail(x) = target` on [0, 1] where `lower` says which tail: the CDF I_x(a, b)
/// (increasing) or its complement (decreasing). Safeguarded Newton: each step keeps a bracket
/// and falls back to bisection (geometric near 0) when Newton leaves it.
fn beta_solve(target: f64, a: f64, b: f64, lower: bool) -> f64 {
    let lnb = ln_beta(a, b);
    // Start from the mean, clamped inside (0, 1).
    let mut x = (a / (a + b)).clamp(1e-12, 1.0 - 1e-12);
    let (mut lo, mut hi) = (0.0f64, 1.0f64);
    for _ in 0..400 {
        let (i, j) = beta_inc_pair(x, a, b);
        // g increasing in x in both cases.
        let g = if lower { i - target } else { target - j };
        if g == 0.0 {
            return x;
        }
        if g < 0.0 {
            lo = x;
        } else {
            hi = x;
        }
        let pdf = ((a - 1.0) * x.ln() + (b - 1.0) * (-x).ln_1p() - lnb).exp();
        let mut next = x - g / pdf;
        if next <= lo || next >= hi || !next.is_finite() {
            next = if lo > 0.0 && hi / lo > 4.0 { (lo * hi).sqrt() } else { 0.5 * (lo + hi) };
            if lo == 0.0 {
                next = hi * 0.25;
            }
        }
        if (next - x).abs() <= 4.0 * f64::EPSILON * x.max(f64::MIN_POSITIVE) || hi - lo <= f64::EPSILON * hi {
            return next;
        }
        x = next;
    }
    x
}

/// Beta(a, b) quantile: the x with I_x(a, b) = p.
pub fn beta_ppf(p: f64, a: f64, b: f64) -> f64 {
    if p <= 0.0 {
        return 0.0;
    }
    if p >= 1.0 {
        return 1.0;
    }
    beta_solve(p, a, b, true)
}

/// Beta(a, b) inverse survival function: the x with 1 - I_x(a, b) = q (accurate for small q).
pub fn beta_isf(q: f64, a: f64, b: f64) -> f64 {
    if q <= 0.0 {
        return 1.0;
    }
    if q >= 1.0 {
        return 0.0;
    }
    beta_solve(q, a, b, false)
}

/// One-sided Clopper-Pearson lower bound at risk `risk` for `k` successes in `n` trials:
/// `P(p < lower) <= risk`. Equals statsmodels' `proportion_confint(k, n, 2 * risk, "beta")[0]`
/// (the form Cohen et al. use).
pub fn clopper_pearson_lower(k: u64, n: u64, risk: f64) -> f64 {
    if k == 0 {
        return 0.0;
    }
    beta_ppf(risk, k as f64, (n - k + 1) as f64)
}

/// One-sided Clopper-Pearson upper bound at risk `risk`: `P(p > upper) <= risk`.
pub fn clopper_pearson_upper(k: u64, n: u64, risk: f64) -> f64 {
    if k >= n {
        return 1.0;
    }
    beta_isf(risk, (k + 1) as f64, (n - k) as f64)
}

/// Two-sided binomial test p-value of `k` successes in `n` trials against p = 1/2 (as
/// `scipy.stats.binomtest(k, n, 0.5).pvalue`): `min(1, 2 P(X >= max(k, n - k)))`.
pub fn binom_test_half(k: u64, n: u64) -> f64 {
    if n == 0 {
        return 1.0;
    }
    let k = k.max(n - k);
    if 2 * k == n {
        return 1.0;
    }
    // P(X >= k) for X ~ Bin(n, 1/2) is I_{1/2}(k, n - k + 1).
    (2.0 * beta_inc(0.5, k as f64, (n - k + 1) as f64)).min(1.0)
}

/// Empirical Bernstein deviation (Maurer and Pontil 2009, Thm 4) for n i.i.d. samples in
/// [0, 1] with unbiased sample variance `var` (ddof = 1): with probability >= 1 - risk,
/// `E Z - mean <= shift` (one-sided; apply it to 1 - Z for the other side).
pub fn bernstein_shift(var: f64, n: u64, risk: f64) -> f64 {
    if n < 2 {
        return f64::INFINITY;
    }
    let l = (2.0 / risk).ln();
    let n = n as f64;
    (2.0 * var.max(0.0) * l / n).sqrt() + 7.0 * l / (3.0 * (n - 1.0))
}

/// Hoeffding deviation for n samples in [0, 1], one-sided at `risk`.
pub fn hoeffding_shift(n: u64, risk: f64) -> f64 {
    ((1.0 / risk).ln() / (2.0 * n as f64)).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rel(a: f64, b: f64) -> f64 {
        if a == b {
            0.0
        } else {
            (a - b).abs() / b.abs().max(1e-300)
        }
    }

    #[test]
    fn normal_quantile_matches_scipy() {
        // scipy.stats.norm.ppf / cdf (scipy 1.17.1).
        let cases: [(f64, f64); 12] = [
            (1e-300, -37.0470962993612),
            (1e-20, -9.262340089798409),
            (1e-10, -6.361340902404056),
            (1e-5, -4.264890793922825),
            (0.001, -3.090232306167813),
            (0.02425, -1.972961051311885),
            (0.1, -1.2815515655446004),
            (0.3, -0.5244005127080409),
            (0.5, 0.0),
            (0.75, 0.6744897501960817),
            (0.975, 1.959963984540054),
            (0.999999, 4.753424308817087),
        ];
        for (p, want) in cases {
            let got = norm_ppf(p);
            assert!(rel(got, want) < 1e-14 || (got - want).abs() < 1e-15, "ppf({p}) = {got}, scipy {want}");
        }
        assert!(rel(norm_ppf(1.0 - 1e-12), 7.0344869100478356) < 1e-13);
        assert_eq!(norm_ppf(0.0), f64::NEG_INFINITY);
        assert_eq!(norm_ppf(1.0), f64::INFINITY);
        assert!(norm_ppf(-0.1).is_nan() && norm_ppf(1.1).is_nan());
        for (x, want) in [(-10.0, 7.61985302416047e-24), (-1.0, 0.15865525393145707), (2.5, 0.9937903346742238)] {
            assert!(rel(norm_cdf(x), want) < 1e-14, "cdf({x})");
        }
        // Round trip across the range.
        for i in 1..1000 {
            let p = i as f64 / 1000.0;
            assert!(rel(norm_cdf(norm_ppf(p)), p) < 1e-14, "round trip at {p}");
        }
    }

    #[test]
    fn clopper_pearson_matches_scipy_beta_ppf() {
        // scipy.stats.beta.ppf(risk, k, n - k + 1) and beta.ppf(1 - risk, k + 1, n - k)
        // (upper computed as beta.isf(risk, k + 1, n - k)), scipy 1.17.1.
        let lower: [(u64, u64, f64, f64); 8] = [
            (1, 10, 0.05, 0.005116196891823701),
            (5, 10, 0.05, 0.2224411010081294),
            (10, 10, 0.05, 0.7411344491069477),
            (990, 1000, 0.001, 0.9760361871553114),
            (100000, 100000, 0.001, 0.9999309248330094),
            (99000, 100000, 0.001, 0.9889893403774748),
            (50, 100, 0.0001, 0.31618534678685883),
            (3, 100000, 0.001, 1.905351014095313e-06),
        ];
        for (k, n, risk, want) in lower {
            let got = clopper_pearson_lower(k, n, risk);
            assert!(rel(got, want) < 1e-12, "lower({k}, {n}, {risk}) = {got}, scipy {want}");
        }
        let upper: [(u64, u64, f64, f64); 6] = [
            (0, 10, 0.05, 0.2588655508930523),
            (0, 100000, 0.001, 6.907516699060702e-05),
            (5, 10, 0.05, 0.7775588989918706),
            (10, 1000, 0.0001, 0.027516597370886537),
            (1, 100, 0.001, 0.08862688870395757),
            (99999, 100000, 0.001, 0.9999999899949967),
        ];
        for (k, n, risk, want) in upper {
            let got = clopper_pearson_upper(k, n, risk);
            assert!(rel(got, want) < 1e-12, "upper({k}, {n}, {risk}) = {got}, scipy {want}");
        }
        // A grid over n, k and risk: scipy beta.ppf(risk, k, n - k + 1), beta.isf(risk, k + 1, n - k).
        let grid: [(u64, u64, f64, f64, f64); 60] = [
            (1, 20, 1.000000e-02, 0.0005023905522584738, 0.2887903679930198),
            (1, 20, 1.000000e-04, 5.000237515438639e-06, 0.4533054648366903),
            (6, 20, 1.000000e-02, 0.09754220969565289, 0.5828637182899612),
            (6, 20, 1.000000e-04, 0.040172802345151845, 0.7233932306427161),
            (10, 20, 1.000000e-02, 0.2389596365165064, 0.7610403634834936),
            (10, 20, 1.000000e-04, 0.13483291277605342, 0.8651670872239465),
            (19, 20, 1.000000e-02, 0.7112096320069802, 0.9994976094477416),
            (19, 20, 1.000000e-04, 0.5466945351633097, 0.9999949997624845),
            (20, 20, 1.000000e-02, 0.7943282347242815, 1.0),
            (20, 20, 1.000000e-04, 0.6309573444801932, 1.0),
            (1, 137, 1.000000e-02, 7.335742493149872e-05, 0.047469988287492104),
            (1, 137, 1.000000e-04, 7.299632396596124e-07, 0.08252514350573413),
            (45, 137, 1.000000e-02, 0.23770083374820994, 0.4294667636632846),
            (45, 137, 1.000000e-04, 0.19148863742767575, 0.489357748134145),
            (68, 137, 1.000000e-02, 0.3946910529797536, 0.5982268028610882),
            (68, 137, 1.000000e-04, 0.3385376842171145, 0.6546711292920624),
            (135, 137, 1.000000e-02, 0.9400597065022731, 0.9989122712279673),
            (135, 137, 1.000000e-04, 0.9026491925997043, 0.999895907737381),
            (136, 137, 1.000000e-02, 0.952530011712508, 0.9999266425750685),
            (136, 137, 1.000000e-04, 0.9174748564942659, 0.9999992700367604),
            (1, 1000, 1.000000e-02, 1.0050285349045254e-05, 0.006619668395648626),
            (1, 1000, 1.000000e-04, 1.0000499533285847e-07, 0.011693354636513041),
            (333, 1000, 1.000000e-02, 0.2985532025144255, 0.3687863405165782),
            (333, 1000, 1.000000e-04, 0.27888009471898056, 0.39033718450641647),
            (500, 1000, 1.000000e-02, 0.46277806676099753, 0.5372219332390025),
            (500, 1000, 1.000000e-04, 0.44091927610355663, 0.5590807238964434),
            (980, 1000, 1.000000e-02, 0.9671138455507957, 0.9888736505417346),
            (980, 1000, 1.000000e-04, 0.958035256636411, 0.9925150772687655),
            (999, 1000, 1.000000e-02, 0.9933803316043514, 0.9999899497146509),
            (999, 1000, 1.000000e-04, 0.988306645363487, 0.9999998999950047),
            (1, 10000, 1.000000e-02, 1.0050330803040597e-06, 0.00066364809101296),
            (1, 10000, 1.000000e-04, 1.0000499983330834e-08, 0.0011750050546064357),
            (3333, 10000, 1.000000e-02, 0.3223515275437624, 0.3443806683848577),
            (3333, 10000, 1.000000e-04, 0.3158848342618775, 0.3510348606373329),
            (5000, 10000, 1.000000e-02, 0.48832014464126117, 0.5116798553587388),
            (5000, 10000, 1.000000e-04, 0.4813618577575426, 0.5186381422424574),
            (9800, 10000, 1.000000e-02, 0.9764974413182713, 0.9831164337176245),
            (9800, 10000, 1.000000e-04, 0.9742702154135479, 0.9848010365815584),
            (9999, 10000, 1.000000e-02, 0.9993363519089871, 0.9999989949669197),
            (9999, 10000, 1.000000e-04, 0.9988249949453936, 0.9999999899995),
            (1, 100000, 1.000000e-02, 1.0050335348455206e-07, 6.638164924268007e-05),
            (1, 100000, 1.000000e-04, 1.0000500028335335e-09, 0.00011755738964216792),
            (33333, 100000, 1.000000e-02, 0.32986372799536545, 0.33680943553789994),
            (33333, 100000, 1.000000e-04, 0.32779716902756323, 0.3388947185243844),
            (50000, 100000, 1.000000e-02, 0.4963167802022496, 0.5036832197977503),
            (50000, 100000, 1.000000e-04, 0.49411493712322674, 0.5058850628767733),
            (98000, 100000, 1.000000e-02, 0.9789459557530862, 0.9810159579517931),
            (98000, 100000, 1.000000e-04, 0.9783021870648718, 0.9816057024748555),
            (99999, 100000, 1.000000e-02, 0.9999336183507573, 0.9999998994966465),
            (99999, 100000, 1.000000e-04, 0.9998824426103579, 0.99999999899995),
            (1, 1000000, 1.000000e-02, 1.0050335802996816e-08, 6.638333353341805e-06),
            (1, 1000000, 1.000000e-04, 1.0000500032835784e-10, 1.1756307994760744e-05),
            (333333, 1000000, 1.000000e-02, 0.3322365083046931, 0.33443080627192234),
            (333333, 1000000, 1.000000e-04, 0.3315809383694116, 0.3350882476219185),
            (500000, 1000000, 1.000000e-02, 0.49883632792948496, 0.501163672070515),
            (500000, 1000000, 1.000000e-04, 0.4981399986566578, 0.5018600013433422),
            (980000, 1000000, 1.000000e-02, 0.9796719128846727, 0.9803242955471607),
            (980000, 1000000, 1.000000e-04, 0.9794742365972905, 0.9805165788744672),
            (999999, 1000000, 1.000000e-02, 0.9999933616666467, 0.9999999899496642),
            (999999, 1000000, 1.000000e-04, 0.9999882436920052, 0.999999999899995),
        ];
        for (k, n, risk, lo, up) in grid {
            let (l, u) = (clopper_pearson_lower(k, n, risk), clopper_pearson_upper(k, n, risk));
            assert!(rel(l, lo) < 1e-12, "lower({k}, {n}, {risk}) = {l}, scipy {lo}");
            assert!(rel(u, up) < 1e-12, "upper({k}, {n}, {risk}) = {u}, scipy {up}");
        }
        assert_eq!(clopper_pearson_lower(0, 10, 0.05), 0.0);
        assert_eq!(clopper_pearson_upper(10, 10, 0.05), 1.0);
    }

    #[test]
    fn binomial_test_and_bernstein_match_references() {
        // scipy.stats.binomtest(k, n, 0.5).pvalue
        for (k, n, want) in [(60u64, 100u64, 0.05688793364098089), (30, 100, 7.85013964559367e-05), (50, 100, 1.0)] {
            assert!(rel(binom_test_half(k, n), want) < 1e-12, "binomtest({k}, {n})");
        }
        // The notes' example: S_n = 0.0074007, n = 1e4, risk 1e-3 -> 0.005128; Hoeffding 0.018585.
        assert!((bernstein_shift(0.0074007, 10_000, 1e-3) - 0.005128).abs() < 1e-6);
        assert!((hoeffding_shift(10_000, 1e-3) - 0.018585).abs() < 1e-6);
    }
}
