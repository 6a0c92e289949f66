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
    let mut max = 0.0f64;
    for j in 0..m.ncols() {
        for &v in m.col(j).iter() {
            max = max.max(v.abs());
        }
    }
    if max == 0.0 || !max.is_finite() {
        return if max == 0.0 { 0.0 } else { f64::INFINITY };
    }
    let e = exponent(max);
    let s = pow2(-e);
    let mut sum = 0.0;
    for j in 0..m.ncols() {
        for &v in m.col(j).iter() {
            sum += (v * s) * (v * s);
        }
    }
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
