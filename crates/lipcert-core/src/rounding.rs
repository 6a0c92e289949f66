//! Floating-point error bounds used to keep certified quantities certified after rounding,
//! shared by every analysis (spectral norms, Lipschitz bounds, bound propagation).
//!
//! Model: IEEE f64 with round-to-nearest, unit roundoff u = 2^-53. A sum of k products,
//! in any order and with or without FMA, is within gamma(k) * sum |a_i b_i| of the exact value
//! (Higham, Accuracy and Stability of Numerical Algorithms, 2nd ed., Lemma 3.1 / eq. 3.5).

use faer::MatRef;

/// Unit roundoff of f64.
pub const U: f64 = f64::EPSILON / 2.0;

/// gamma(k) = k u / (1 - k u).
pub fn gamma(k: usize) -> f64 {
    let ku = k as f64 * U;
    ku / (1.0 - ku)
}

/// Rounds a non-negative computed value up to cover the rounding of the last few operations.
pub fn up(x: f64) -> f64 {
    x * (1.0 + 8.0 * U) + f64::MIN_POSITIVE
}

/// Rounds a non-negative computed value down (never below 0).
pub fn down(x: f64) -> f64 {
    (x * (1.0 - 8.0 * U) - f64::MIN_POSITIVE).max(0.0)
}

/// An upper bound on the Frobenius norm of `m`, without overflow or underflow: the entries
/// are scaled by an exact power of two near the largest magnitude before squaring.
pub fn frobenius_upper(m: MatRef<'_, f64>) -> f64 {
    use rayon::prelude::*;
    // The norm does not depend on orientation: walk the contiguous direction (a row-major
    // view read by columns is ~5x slower on large matrices).
    let m = if m.col_stride().unsigned_abs() == 1 && m.row_stride().unsigned_abs() != 1 { m.transpose() } else { m };
    // Eight independent lanes per column let the compiler vectorize both passes; sums in any
    // order stay within the gamma bound below.
    fn lanes(col: faer::ColRef<'_, f64>, f: impl Fn(f64) -> f64, fold: impl Fn(f64, f64) -> f64) -> f64 {
        let mut acc = [0.0f64; 8];
        match col.try_as_col_major() {
            Some(c) => {
                let chunks = c.as_slice().chunks_exact(8);
                let rest = chunks.remainder();
                for chunk in chunks {
                    for (a, v) in acc.iter_mut().zip(chunk) {
                        *a = fold(*a, f(*v));
                    }
                }
                for (a, v) in acc.iter_mut().zip(rest) {
                    *a = fold(*a, f(*v));
                }
            }
            None => {
                for (k, v) in col.iter().enumerate() {
                    acc[k & 7] = fold(acc[k & 7], f(*v));
                }
            }
        }
        acc.into_iter().fold(0.0, &fold)
    }
    let work = m.nrows() * m.ncols();
    let cols = |f: &(dyn Fn(faer::ColRef<'_, f64>) -> f64 + Sync), fold: fn(f64, f64) -> f64| -> f64 {
        if work > 1 << 16 {
            (0..m.ncols()).into_par_iter().map(|j| f(m.col(j))).reduce(|| 0.0, fold)
        } else {
            (0..m.ncols()).map(|j| f(m.col(j))).fold(0.0, fold)
        }
    };
    // f64::max skips NaN entries; they make the sum (and the result) NaN.
    let max = cols(&|c| lanes(c, f64::abs, f64::max), f64::max);
    if max == 0.0 {
        return 0.0;
    }
    if !max.is_finite() {
        return f64::INFINITY;
    }
    let e = exponent(max);
    let s = pow2(-e);
    let sum = cols(&|c| lanes(c, |v| (v * s) * (v * s), |a, b| a + b), |a, b| a + b);
    up(sum.sqrt() * (1.0 + gamma(m.nrows() * m.ncols() + 2))) * pow2(e)
}

/// The exponent e with x * 2^-e in [0.5, 1) (for finite x > 0). Scaling by 2^-e is exact.
pub fn exponent(x: f64) -> i32 {
    if x <= 0.0 || !x.is_finite() {
        return 0;
    }
    let bits = x.to_bits();
    let raw = ((bits >> 52) & 0x7ff) as i32;
    if raw == 0 {
        // Subnormal: normalize first.
        return exponent(x * 2f64.powi(64)) - 64;
    }
    raw - 1022
}

/// 2^e as f64 (exact for -1074 <= e <= 1023; split so that large |e| does not overflow).
pub fn pow2(e: i32) -> f64 {
    if e.abs() > 1000 {
        2f64.powi(e / 2) * 2f64.powi(e - e / 2)
    } else {
        2f64.powi(e)
    }
}

/// The next f64 above `x` (x itself for +inf and NaN): outward rounding of a single value.
pub fn next_up(x: f64) -> f64 {
    if x.is_nan() || x == f64::INFINITY {
        x
    } else if x == 0.0 {
        f64::from_bits(1)
    } else if x > 0.0 {
        f64::from_bits(x.to_bits() + 1)
    } else {
        f64::from_bits(x.to_bits() - 1)
    }
}

/// The next f64 below `x` (x itself for -inf and NaN).
pub fn next_down(x: f64) -> f64 {
    -next_up(-x)
}

#[cfg(test)]
mod tests {
    use super::*;
    use faer::Mat;

    #[test]
    fn frobenius_upper_bounds_the_norm_in_every_layout_and_scale() {
        let mut rng = crate::Rng::new(5);
        for (m, n) in [(1, 1), (7, 3), (300, 400), (1000, 70)] {
            for scale in [1.0, 1e-300, 1e300, 1e-160] {
                let a = Mat::<f64>::from_fn(m, n, |_, _| rng.normal() * scale);
                let at = a.transpose().to_owned();
                // Reference: exact squares in f64 after an exact rescaling, summed in f64 with
                // a relative error far below the bound's own gamma(mn) margin.
                let s = pow2(-exponent(scale));
                let exact = (a.col_iter().flat_map(|c| c.iter().map(|v| (v * s) * (v * s)).collect::<Vec<_>>()))
                    .sum::<f64>()
                    .sqrt()
                    / s;
                for f in [frobenius_upper(a.as_ref()), frobenius_upper(at.as_ref().transpose())] {
                    assert!(f >= exact && f <= exact * (1.0 + 1e-9), "{m}x{n} at {scale:e}: {f} vs {exact}");
                }
            }
        }
        let mut a = Mat::<f64>::zeros(3, 3);
        assert_eq!(frobenius_upper(a.as_ref()), 0.0);
        a[(1, 2)] = f64::NAN;
        a[(0, 0)] = 1.0;
        assert!(frobenius_upper(a.as_ref()).is_nan());
        a[(1, 2)] = f64::INFINITY;
        assert_eq!(frobenius_upper(a.as_ref()), f64::INFINITY);
    }
}
