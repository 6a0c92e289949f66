//! Convolution spectral norms against the exact norm of the explicit convolution matrix,
//! built here from the index formulas (independently of the library's convolution code).

use faer::Mat;
use lipcert_core::Rng;
use lipcert_spectral::conv::{conv_norm, ConvOperator, Padding};
use lipcert_spectral::{Method, Options};
use proptest::prelude::*;

/// Explicit matrix of y[o, i, j] = sum K[o, c, a, b] x[c, i s + a - p_top, j s + b - p_left]
/// (zero padding), or with indices taken modulo H, W (circular, no padding offset).
fn explicit(op: &ConvOperator) -> Mat<f64> {
    let (h, w) = (op.h, op.w);
    let (pt, pl, oh, ow) = match op.padding {
        Padding::Circular => (0, 0, h.div_ceil(op.stride[0]), w.div_ceil(op.stride[1])),
        Padding::Zeros(p) => {
            (p[0], p[1], (h + p[0] + p[2] - op.kh) / op.stride[0] + 1, (w + p[1] + p[3] - op.kw) / op.stride[1] + 1)
        }
    };
    let mut m = Mat::<f64>::zeros(op.c_out * oh * ow, op.c_in * h * w);
    for o in 0..op.c_out {
        for i in 0..oh {
            for j in 0..ow {
                let row = (o * oh + i) * ow + j;
                for c in 0..op.c_in {
                    for a in 0..op.kh {
                        for b in 0..op.kw {
                            let k = op.kernel[((o * op.c_in + c) * op.kh + a) * op.kw + b];
                            let (y, x) = (
                                (i * op.stride[0] + a) as isize - pt as isize,
                                (j * op.stride[1] + b) as isize - pl as isize,
                            );
                            let (y, x) = match op.padding {
                                Padding::Circular => (y.rem_euclid(h as isize), x.rem_euclid(w as isize)),
                                Padding::Zeros(_) => (y, x),
                            };
                            if y >= 0 && (y as usize) < h && x >= 0 && (x as usize) < w {
                                m[(row, (c * h + y as usize) * w + x as usize)] += k;
                            }
                        }
                    }
                }
            }
        }
    }
    m
}

fn random_op(rng: &mut Rng, c_out: usize, c_in: usize, k: usize, n: usize, stride: usize, zeros: bool) -> ConvOperator {
    let padding = if zeros {
        Padding::Zeros([rng.below(k), rng.below(k), rng.below(k), rng.below(k)])
    } else {
        Padding::Circular
    };
    ConvOperator {
        kernel: (0..c_out * c_in * k * k).map(|_| rng.normal()).collect(),
        c_out,
        c_in,
        kh: k,
        kw: k,
        h: n,
        w: n,
        stride: [stride, stride],
        padding,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn every_bracket_contains_the_explicit_matrix_norm(
        seed in any::<u64>(), c_out in 1usize..9, c_in in 1usize..9, k in prop_oneof![Just(1usize), Just(3), Just(5)],
        n in 5usize..13, stride in 1usize..3, zeros in any::<bool>(),
    ) {
        let mut rng = Rng::new(seed);
        let op = random_op(&mut rng, c_out, c_in, k, n, stride, zeros);
        let exact = explicit(&op).singular_values().unwrap()[0];
        for method in [Method::Gram, Method::Auto, Method::Exact, Method::Power] {
            let b = conv_norm(&op, method, Options { iters: None, tol: Some(1e-8), seed }).unwrap();
            let slack = 1e-12 * exact.max(1e-300);
            prop_assert!(b.lower <= exact + slack, "{method:?} lower {} > exact {exact} ({op:?})", b.lower);
            prop_assert!(b.upper >= exact - slack, "{method:?} upper {} < exact {exact}", b.upper);
        }
    }
}

#[test]
fn largest_cases_16_channels_and_16x16_inputs() {
    let mut rng = Rng::new(77);
    for (c, n, stride, zeros) in
        [(16, 8, 1, true), (16, 8, 2, false), (4, 16, 1, true), (4, 16, 2, true), (8, 16, 1, false)]
    {
        let op = random_op(&mut rng, c, c, 3, n, stride, zeros);
        let exact = explicit(&op).singular_values().unwrap()[0];
        let b = conv_norm(&op, Method::Gram, Options { iters: None, tol: Some(1e-8), seed: 0 }).unwrap();
        assert!(b.lower <= exact * (1.0 + 1e-12) && b.upper >= exact * (1.0 - 1e-12), "{b:?} vs {exact}");
    }
}

#[test]
fn circular_gram_at_convergence_equals_the_exact_circular_norm() {
    let mut rng = Rng::new(5);
    // Stride 2 on even inputs folds the spectrum; the per-block norms stay exact.
    for (c, k, n, stride) in [(8, 3, 12, 1), (16, 3, 8, 1), (4, 5, 10, 1), (6, 1, 7, 1), (5, 3, 10, 2), (8, 3, 8, 2)] {
        let op = random_op(&mut rng, c, c, k, n, stride, false);
        let exact = explicit(&op).singular_values().unwrap()[0];
        let per_block = conv_norm(&op, Method::Exact, Options::default()).unwrap();
        let gram = conv_norm(&op, Method::Gram, Options { iters: None, tol: Some(1e-11), seed: 0 }).unwrap();
        for b in [&per_block, &gram] {
            assert!((b.upper / exact - 1.0).abs() <= 1e-9 && (b.lower / exact - 1.0).abs() <= 1e-9, "{b:?} vs {exact}");
        }
    }
}

#[test]
fn zero_padding_bound_is_tight_and_circular_value_is_not_a_bound() {
    // Zero padding differs from circular padding on the same grid: the plain circular norm can
    // fall below the zero-padded norm (thesis Table A.0.3 shows 4.39 < 4.41), so lipcert bounds
    // zero padding with the circular norm on an enlarged grid. Small inputs show it quickly.
    let mut rng = Rng::new(11);
    let mut circular_below = 0;
    for _ in 0..200 {
        let (c_out, c_in, n) = (1 + rng.below(2), 1 + rng.below(2), 3 + rng.below(4));
        let mut op = random_op(&mut rng, c_out, c_in, 3, n, 1, true);
        op.padding = Padding::Zeros([1, 1, 1, 1]);
        let exact = explicit(&op).singular_values().unwrap()[0];
        let b = conv_norm(&op, Method::Gram, Options { iters: None, tol: Some(1e-8), seed: 0 }).unwrap();
        assert!(b.upper >= exact && b.lower <= exact && b.upper / exact < 2.0, "{b:?} vs {exact}");
        let circ = ConvOperator { padding: Padding::Circular, ..op.clone() };
        if conv_norm(&circ, Method::Exact, Options::default()).unwrap().upper < exact * (1.0 - 1e-9) {
            circular_below += 1;
        }
    }
    assert!(circular_below > 0, "expected cases where the plain circular norm is below the zero-padded norm");
    println!("plain circular norm below the zero-padded norm in {circular_below} of 200 cases");
}

#[test]
fn bad_operators_are_errors() {
    let mut rng = Rng::new(1);
    let mut op = random_op(&mut rng, 2, 2, 3, 4, 1, false);
    op.h = 2;
    assert!(conv_norm(&op, Method::Gram, Options::default()).unwrap_err().contains("larger"));
    let mut op = random_op(&mut rng, 2, 2, 3, 4, 1, true);
    op.padding = Padding::Zeros([3, 0, 0, 0]);
    assert!(conv_norm(&op, Method::Gram, Options::default()).unwrap_err().contains("pads"));
    let big = random_op(&mut rng, 16, 16, 3, 32, 1, true);
    assert!(conv_norm(&big, Method::Exact, Options::default()).unwrap_err().contains("4096"));
}

#[test]
fn norm2_toep_bounds_every_padding_and_stride() {
    use lipcert_spectral::conv::toeplitz_bound;
    let mut rng = Rng::new(21);
    let mut ratios = vec![];
    for case in 0..40 {
        let (c_out, c_in, k) = (1 + rng.below(6), 1 + rng.below(6), [1, 3, 5][case % 3]);
        let (n, stride) = (6 + rng.below(6), 1 + rng.below(2));
        let op = random_op(&mut rng, c_out, c_in, k, n, stride, case % 2 == 0);
        let exact = explicit(&op).singular_values().unwrap()[0];
        for t in 1..=3 {
            let bound = toeplitz_bound(&op, t).unwrap();
            assert!(bound >= exact * (1.0 - 1e-12), "t={t}: {bound} < exact {exact} for {op:?}");
            if t == 3 {
                ratios.push(bound / exact);
            }
        }
    }
    ratios.sort_by(f64::total_cmp);
    println!(
        "norm2_toep (3 iterations) / exact: median {:.3}, max {:.3}",
        ratios[ratios.len() / 2],
        ratios[ratios.len() - 1]
    );
    assert!(toeplitz_bound(&random_op(&mut rng, 2, 2, 3, 8, 1, true), 5).is_err());
}

/// The grid (per side) that keeps the symbol bound's curvature constant below 0.5 with margin.
fn grid_for(k: usize) -> usize {
    (8 * (k - 1)).max(1)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, failure_persistence: None, ..ProptestConfig::default() })]

    /// The symbol bound from a coarse grid holds for every input size, padding and stride.
    #[test]
    fn symbol_bound_holds_for_every_input_size_padding_and_stride(
        seed in any::<u64>(), c_out in 1usize..7, c_in in 1usize..7, k in prop_oneof![Just(1usize), Just(3), Just(5)],
        n in 3usize..13, stride in 1usize..3, zeros in any::<bool>(), extra in 0usize..9,
    ) {
        use lipcert_spectral::conv::conv_norm_on_grid;
        let mut rng = Rng::new(seed);
        let op = random_op(&mut rng, c_out, c_in, k, n.max(k), stride, zeros);
        let exact = explicit(&op).singular_values().unwrap()[0];
        let grid = grid_for(k) + extra;
        let (b, symbol) = conv_norm_on_grid(&op, [grid, grid + extra % 3], Method::Gram, Options { iters: None, tol: Some(1e-8), seed }).unwrap();
        let slack = 1e-12 * exact.max(1e-300);
        prop_assert!(b.upper >= exact - slack, "symbol upper {} < exact {exact} ({op:?}, grid {grid})", b.upper);
        prop_assert!(b.lower <= exact + slack, "lower {} > exact {exact}", b.lower);
        prop_assert!(symbol.factor >= 1.0 && symbol.upper >= symbol.on_grid.upper);
    }
}

/// Single-channel kernel: max over the n x n grid of |E(2 pi u / n, 2 pi v / n)|, by a direct DFT.
fn grid_max_modulus(k: &[f64], kh: usize, kw: usize, n: usize) -> f64 {
    let mut best = 0.0f64;
    for u in 0..n {
        for v in 0..n {
            let (mut re, mut im) = (0.0, 0.0);
            for a in 0..kh {
                for b in 0..kw {
                    let angle = -std::f64::consts::TAU * ((u * a) as f64 + (v * b) as f64) / n as f64;
                    re += k[a * kw + b] * angle.cos();
                    im += k[a * kw + b] * angle.sin();
                }
            }
            best = best.max((re * re + im * im).sqrt());
        }
    }
    best
}

#[test]
fn printed_thm_3_7_1_and_3_7_3_factors_fail_and_the_symbol_bound_holds() {
    use lipcert_spectral::conv::symbol_bound;
    // Thesis Thm. 3.7.1 with t = 1 (Frobenius readout of a 1 x 1 block is |D|): a zero-padded
    // layer on n x n is claimed to satisfy sigma <= (1 / (1 - 2 floor(k/2) / n))^(1/2) max |D|.
    let k1 = [0.856, -0.421, 0.845];
    let kernel: Vec<f64> = k1.iter().flat_map(|a| k1.iter().map(move |b| a * b)).collect();
    let op = ConvOperator {
        kernel: kernel.clone(),
        c_out: 1,
        c_in: 1,
        kh: 3,
        kw: 3,
        h: 3,
        w: 3,
        stride: [1, 1],
        padding: Padding::Zeros([2, 2, 2, 2]),
    };
    let exact = explicit(&op).singular_values().unwrap()[0];
    let printed_3_7_1 = (1.0f64 / (1.0 - 2.0 / 3.0)).sqrt() * grid_max_modulus(&kernel, 3, 3, 3);
    assert!(exact > 1.05 * printed_3_7_1, "Thm 3.7.1 as printed: {printed_3_7_1} vs exact {exact}");
    let opts = Options { iters: None, tol: Some(1e-10), seed: 0 };
    let symbol = symbol_bound(&op, [16, 16], Method::Gram, opts).unwrap();
    assert!(symbol.upper >= exact, "{symbol:?} vs {exact}");

    // Thesis Thm. 3.7.3 (reduced input size n0 = 3 or 5, t = 1) for the circular layer on 6 x 6,
    // whose norm is |E(pi, pi)| = 9 for the kernel [1, -1, 1] x [1, -1, 1].
    let kernel: Vec<f64> = (0..9).map(|i| if (i / 3 + i % 3) % 2 == 0 { 1.0 } else { -1.0 }).collect();
    let circ = ConvOperator { kernel: kernel.clone(), h: 6, w: 6, padding: Padding::Circular, ..op.clone() };
    let exact = explicit(&circ).singular_values().unwrap()[0];
    assert!((exact - 9.0).abs() < 1e-9);
    for n0 in [3usize, 5] {
        let printed_3_7_3 = (1.0f64 / (1.0 - 2.0 / n0 as f64)).sqrt() * grid_max_modulus(&kernel, 3, 3, n0);
        assert!(printed_3_7_3 < exact, "Thm 3.7.3 as printed at n0 = {n0}: {printed_3_7_3} vs {exact}");
    }
    let symbol = symbol_bound(&circ, [16, 16], Method::Gram, opts).unwrap();
    assert!(symbol.upper >= exact * (1.0 - 1e-12), "{symbol:?}");
    println!(
        "printed Thm 3.7.1 (n = 3): {printed_3_7_1:.4} < exact {:.4}; symbol bound on 16 x 16: {:.4}",
        explicit(&op).singular_values().unwrap()[0],
        symbol_bound(&op, [16, 16], Method::Gram, opts).unwrap().upper
    );
}

#[test]
fn symbol_bound_is_tight_on_large_inputs_and_refuses_coarse_grids() {
    use lipcert_spectral::conv::{conv_norm_on_grid, curvature_constant, symbol_bound};
    let mut rng = Rng::new(9);
    let op = random_op(&mut rng, 8, 8, 3, 40, 1, true);
    let opts = Options { iters: None, tol: Some(1e-9), seed: 0 };
    // Reference: the zero-padded norm through the enlarged circular grid (tested above against
    // explicit matrices); the symbol bound on 64 x 64 is within its factor of it.
    let reference = conv_norm(&op, Method::Gram, opts).unwrap();
    let (b, symbol) = conv_norm_on_grid(&op, [64, 64], Method::Gram, opts).unwrap();
    assert!(
        b.upper >= reference.lower && b.upper <= reference.upper * symbol.factor * (1.0 + 1e-8),
        "{b:?} {reference:?}"
    );
    assert!(symbol.factor < 1.011, "{symbol:?}");
    assert!(
        (curvature_constant(3, 3, [64, 64]) - std::f64::consts::PI.powi(2) / 2.0 * (4.0f64 / 64.0).powi(2)).abs()
            < 1e-15
    );
    assert_eq!(curvature_constant(1, 1, [1, 1]), 0.0);
    let err = symbol_bound(&op, [8, 8], Method::Gram, opts).unwrap_err();
    assert!(err.contains("too coarse") && err.contains("13x13"), "{err}");
}

#[test]
fn the_curvature_factor_is_needed_and_sufficient_off_grid() {
    use lipcert_spectral::conv::symbol_bound;
    // Modulated kernels put the symbol's peak at frequencies of a 12 x 12 or 14 x 14 input that
    // a 16 x 16 or 17 x 17 grid misses: the plain grid maximum then falls below the circular
    // layer's norm, and the corrected bound must not.
    let opts = Options { iters: None, tol: Some(1e-10), seed: 0 };
    let (mut grid_below, mut cases) = (0, 0);
    for n in [12usize, 14] {
        for j in 1..n / 2 {
            for (grid, phase) in [(16usize, 0.0f64), (17, 0.7)] {
                let theta = std::f64::consts::TAU * j as f64 / n as f64;
                let kernel: Vec<f64> =
                    (0..9).map(|i| (theta * (i / 3) as f64 + phase).cos() * (theta * (i % 3) as f64).cos()).collect();
                let op = ConvOperator {
                    kernel,
                    c_out: 1,
                    c_in: 1,
                    kh: 3,
                    kw: 3,
                    h: n,
                    w: n,
                    stride: [1, 1],
                    padding: Padding::Circular,
                };
                let exact = explicit(&op).singular_values().unwrap()[0];
                let symbol = symbol_bound(&op, [grid, grid], Method::Gram, opts).unwrap();
                assert!(symbol.upper >= exact * (1.0 - 1e-12), "n={n} j={j} grid={grid}: {symbol:?} < {exact}");
                grid_below += usize::from(symbol.on_grid.upper < exact * (1.0 - 1e-9));
                cases += 1;
            }
        }
    }
    println!("the plain grid maximum is below the layer's norm in {grid_below} of {cases} cases");
    assert!(grid_below > 0);
}

#[test]
fn window_lower_bound_on_large_inputs_is_below_the_norm_and_close_to_it() {
    use lipcert_spectral::conv::{conv_norm_on_grid, lower_window, LOWER_WINDOW};
    let mut rng = Rng::new(4);
    let opts = Options { iters: None, tol: Some(1e-9), seed: 0 };
    for (zeros, n) in [(true, LOWER_WINDOW + 4), (false, LOWER_WINDOW + 10)] {
        let op = random_op(&mut rng, 4, 4, 3, n, 1, zeros);
        assert!(lower_window(&op).is_some());
        let reference = conv_norm(&op, Method::Gram, opts).unwrap();
        let (b, _) = conv_norm_on_grid(&op, [64, 64], Method::Gram, opts).unwrap();
        assert!(b.lower <= reference.upper, "{b:?} vs {reference:?}");
        assert!(b.lower >= 0.99 * reference.lower, "{b:?} vs {reference:?}");
    }
    // Small inputs and strides use the real operator.
    assert!(lower_window(&random_op(&mut rng, 2, 2, 3, LOWER_WINDOW + 3, 1, true)).is_none());
    assert!(lower_window(&random_op(&mut rng, 2, 2, 3, 200, 2, true)).is_none());
}
