//! Soundness (property tests that try to break the brackets) and exactness of the dense
//! spectral-norm methods. References: singular values built into the matrix (A = U S V^T with
//! orthogonal U, V), or faer's SVD on generic matrices, both used with a tolerance far above
//! their own rounding error and far below the widths being tested.

use faer::Mat;
use lipcert_core::Rng;
use lipcert_spectral::dense::{auto, exact, gram, power, Options};
use lipcert_spectral::Bracket;
use proptest::prelude::*;

fn gaussian(rng: &mut Rng, m: usize, n: usize) -> Mat<f64> {
    Mat::from_fn(m, n, |_, _| rng.normal())
}

/// A random orthogonal n x n matrix (Q of a Gaussian matrix's QR).
fn orthogonal(rng: &mut Rng, n: usize) -> Mat<f64> {
    gaussian(rng, n, n).qr().compute_Q()
}

/// U diag(s) V^T with the given singular values (padded with zeros).
fn with_singular_values(rng: &mut Rng, m: usize, n: usize, s: &[f64]) -> Mat<f64> {
    let (u, v) = (orthogonal(rng, m), orthogonal(rng, n));
    let d = Mat::from_fn(m, n, |i, j| if i == j && i < s.len() { s[i] } else { 0.0 });
    &u * &d * v.transpose()
}

/// The bracket contains the reference, up to the reference's own relative accuracy `acc`.
fn contains(b: &Bracket, reference: f64, acc: f64) -> bool {
    b.lower <= reference * (1.0 + acc) && b.upper >= reference * (1.0 - acc) && b.lower <= b.upper
}

/// Every method; the last bool says whether the call asked for a 1e-8 bracket.
fn all_methods(a: &Mat<f64>, seed: u64) -> Vec<(Bracket, bool)> {
    let o = Options { iters: None, tol: Some(1e-8), seed };
    vec![
        (exact(a.as_ref()), true),
        (power(a.as_ref(), Options { iters: Some(50), ..o }), false),
        (gram(a.as_ref(), o), true),
        (gram(a.as_ref(), Options { iters: Some(3), ..o }), false),
        (auto(a.as_ref(), o), true),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 60, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn brackets_contain_built_in_singular_values(
        seed in any::<u64>(), m in 1usize..40, n in 1usize..40, repeated in 1usize..4, rank_drop in 0usize..3,
        log_scale in prop_oneof![Just(0.0), Just(150.0), Just(-150.0), -5.0f64..5.0],
    ) {
        let mut rng = Rng::new(seed);
        let k = m.min(n);
        // Top singular value repeated `repeated` times, then decreasing, last ones zero.
        let scale = 10f64.powf(log_scale);
        let mut s: Vec<f64> = (0..k).map(|i| if i < repeated { 1.0 } else { rng.range(0.0, 0.99) }).collect();
        s.sort_by(|a, b| b.total_cmp(a));
        for v in s.iter_mut().rev().take(rank_drop.min(k.saturating_sub(1))) {
            *v = 0.0;
        }
        let a = with_singular_values(&mut rng, m, n, &s) * faer::Scale(scale);
        // The built matrix's largest singular value is s_1 to within its construction rounding.
        let acc = 64.0 * (m + n) as f64 * f64::EPSILON;
        for (b, _) in all_methods(&a, seed) {
            prop_assert!(b.lower.is_finite() && !b.upper.is_nan(), "{b:?}");
            prop_assert!(contains(&b, scale, acc), "{b:?} misses sigma_1 = {scale}");
        }
    }

    #[test]
    fn brackets_contain_the_svd_value_of_gaussian_matrices(seed in any::<u64>(), m in 1usize..120, n in 1usize..120) {
        let mut rng = Rng::new(seed);
        let a = gaussian(&mut rng, m, n);
        let reference = a.singular_values().unwrap()[0];
        for (b, _) in all_methods(&a, seed) {
            prop_assert!(contains(&b, reference, 1e-12), "{b:?} misses {reference}");
        }
    }
}

#[test]
fn zero_and_extreme_matrices_do_not_overflow() {
    let z = Mat::<f64>::zeros(5, 3);
    for (b, _) in all_methods(&z, 0) {
        assert_eq!((b.lower, b.upper.min(0.0)), (0.0, 0.0), "{b:?}");
    }
    let mut rng = Rng::new(9);
    for scale in [1e150, 1e-150, 1e300, 1e-300] {
        let a = gaussian(&mut rng, 30, 20) * faer::Scale(scale);
        for (b, tight) in all_methods(&a, 1) {
            let upper_ok = b.upper.is_finite() || b.method == "power";
            assert!(b.lower > 0.0 && upper_ok && b.lower <= b.upper, "scale {scale}: {b:?}");
            assert!(!tight || b.relative_width() < 1e-8, "scale {scale}: {b:?}");
        }
    }
}

#[test]
fn complex_like_block_structure_with_equal_top_values() {
    // [[A, -B], [B, A]] is the real form of a complex matrix A + iB: its singular values come
    // in equal pairs, the hardest case for a single-vector readout.
    let mut rng = Rng::new(4);
    let (a, b) = (gaussian(&mut rng, 12, 9), gaussian(&mut rng, 12, 9));
    let m = Mat::from_fn(24, 18, |i, j| {
        let (bi, bj) = (i / 12, j / 9);
        let (ii, jj) = (i % 12, j % 9);
        match (bi, bj) {
            (0, 0) | (1, 1) => a[(ii, jj)],
            (0, 1) => -b[(ii, jj)],
            _ => b[(ii, jj)],
        }
    });
    let reference = m.singular_values().unwrap()[0];
    for (b, _) in all_methods(&m, 2) {
        assert!(contains(&b, reference, 1e-12), "{b:?} misses {reference}");
    }
}

#[test]
fn gram_reaches_the_svd_value_within_1e10_in_12_products_on_2000x1000() {
    let mut rng = Rng::new(2026);
    let a = gaussian(&mut rng, 2000, 1000);
    let reference = a.singular_values().unwrap()[0];
    let b = gram(a.as_ref(), Options { iters: None, tol: Some(1e-10), seed: 0 });
    assert!(b.iters <= 12, "{b:?}");
    assert!(contains(&b, reference, 1e-13), "{b:?} vs {reference}");
    assert!(b.upper / reference - 1.0 <= 1e-10 && 1.0 - b.lower / reference <= 1e-10, "{b:?} vs {reference}");
    let fixed = gram(a.as_ref(), Options { iters: Some(12), tol: None, seed: 0 });
    assert!(fixed.relative_width() <= 1e-10, "{fixed:?}");
    let quick = auto(a.as_ref(), Options { iters: None, tol: Some(1e-6), seed: 0 });
    assert!(quick.relative_width() < 1e-6 && contains(&quick, reference, 1e-13), "{quick:?}");
}
