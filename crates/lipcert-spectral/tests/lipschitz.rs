//! Network Lipschitz bounds: soundness on random networks with every operator (no pair of
//! points, no Jacobian may exceed the upper bound), exactness of the product bound on a real
//! MLP, the proven lower bound (below the upper bound, below the exact constant of linear
//! networks, close to the f64 search value), lower <= upper on every benchmark network, and
//! soundness of the certified radii.

use faer::MatRef;
use lipcert_core::random::{random_mlp, random_network, ALL_ACTIVATIONS};
use lipcert_core::rounding::{down, gamma, up};
use lipcert_core::{Activation, Network, Rng};
use lipcert_spectral::dense;
use lipcert_spectral::lipschitz::{
    activation_lipschitz, certified_slope, jacobian_lower, network_lipschitz, output_enclosure, pair_constants,
    pair_slope, radii, Norm, Radii, Search,
};
use proptest::prelude::*;

fn norm_of(v: &[f64], norm: Norm) -> f64 {
    match norm {
        Norm::L2 => v.iter().map(|x| x * x).sum::<f64>().sqrt(),
        Norm::Inf => v.iter().fold(0.0, |m, x| m.max(x.abs())),
    }
}

#[test]
fn upper_bound_is_never_exceeded_on_random_networks() {
    let mut rng = Rng::new(3);
    for case in 0..12 {
        let net = random_network(&mut rng);
        let n = net.input_len();
        for norm in [Norm::L2, Norm::Inf] {
            let lip = network_lipschitz(&net, norm, &Search { starts: 2, steps: 5, seed: case, points: vec![] });
            assert!(lip.lower <= lip.upper && lip.lower > 0.0, "case {case} {norm:?}: {} > {}", lip.lower, lip.upper);
            let mut worst = 0.0f64;
            for i in 0..1500 {
                let x: Vec<f64> = (0..n).map(|_| rng.range(-2.0, 2.0)).collect();
                // Far pairs and very close pairs (local slopes).
                let scale = if i % 2 == 0 { 1.0 } else { 1e-4 };
                let y: Vec<f64> = x.iter().map(|v| v + scale * rng.normal()).collect();
                let (fx, fy) = (net.forward(&x, 1).unwrap(), net.forward(&y, 1).unwrap());
                let d_out: Vec<f64> = fx.iter().zip(&fy).map(|(a, b)| a - b).collect();
                let d_in: Vec<f64> = x.iter().zip(&y).map(|(a, b)| a - b).collect();
                worst = worst.max(norm_of(&d_out, norm) / norm_of(&d_in, norm));
            }
            assert!(worst <= lip.upper * (1.0 + 1e-9), "case {case} {norm:?}: ratio {worst} > upper {}", lip.upper);
        }
    }
}

#[test]
fn product_bound_of_mnist_256x2_equals_product_of_exact_norms() {
    let Some(dir) = lipcert_io::testing::benchmarks_dir() else { return };
    let net = lipcert_io::import_file(&dir.join("mnistfc/mnist-net_256x2.onnx")).unwrap().network;
    let lip = network_lipschitz(&net, Norm::L2, &Search { starts: 1, steps: 1, seed: 0, points: vec![] });
    let mut product = 1.0;
    for node in &net.nodes {
        if let lipcert_core::Op::Dense(d) = &node.op {
            let m = MatRef::from_column_major_slice(&d.weight, d.in_features, d.out_features);
            product *= m.singular_values().unwrap()[0];
        }
    }
    assert!((lip.upper / product - 1.0).abs() <= 1e-9, "{} vs {product}", lip.upper);
}

#[test]
fn lower_is_below_upper_on_every_benchmark_network() {
    let Some(dir) = lipcert_io::testing::benchmarks_dir() else { return };
    let mut models = vec![];
    for cat in std::fs::read_dir(&dir).unwrap() {
        let mut stack = vec![cat.unwrap().path()];
        while let Some(p) = stack.pop() {
            if p.is_dir() {
                stack.extend(std::fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
            } else if p.extension().is_some_and(|e| e == "onnx") && !p.to_string_lossy().contains("ACASXU_run2a_") {
                models.push(p);
            }
        }
    }
    // ACAS Xu: three of the 45 networks share the architecture of all.
    for i in ["1_1", "3_5", "5_9"] {
        models.push(dir.join(format!("acasxu/ACASXU_run2a_{i}_batch_2000.onnx")));
    }
    for path in models {
        let net: Network = lipcert_io::import_file(&path).unwrap().network;
        for norm in [Norm::L2, Norm::Inf] {
            let lip = network_lipschitz(&net, norm, &Search { starts: 2, steps: 4, seed: 0, points: vec![] });
            assert!(lip.lower > 0.0 && lip.lower <= lip.upper && lip.upper.is_finite(), "{}: {lip:?}", path.display());
        }
    }
}

#[test]
fn certified_radii_hold_under_sampled_perturbations() {
    let mut rng = Rng::new(8);
    for case in 0..6 {
        let net = random_network(&mut rng);
        let n = net.input_len();
        for norm in [Norm::L2, Norm::Inf] {
            let lip = network_lipschitz(&net, norm, &Search { starts: 1, steps: 1, seed: case, points: vec![] });
            let pairs = pair_constants(&net, &lip);
            assert!(pairs.is_some(), "random networks end with a dense layer");
            let mut certified = 0;
            for _ in 0..40 {
                let x: Vec<f64> = (0..n).map(|_| rng.range(-1.0, 1.0)).collect();
                let f = net.forward(&x, 1).unwrap();
                let label = (0..3).max_by(|&a, &b| f[a].total_cmp(&f[b])).unwrap();
                let r = radii(&f, &output_enclosure(&net, &x).unwrap(), label, &lip, pairs.as_deref());
                assert!(r.pair >= r.global && r.global >= 0.0);
                if r.pair <= 0.0 {
                    continue;
                }
                certified += 1;
                for _ in 0..50 {
                    let d: Vec<f64> = (0..n).map(|_| rng.normal()).collect();
                    let scale = 0.999 * r.pair / norm_of(&d, norm);
                    let y: Vec<f64> = x.iter().zip(&d).map(|(a, b)| a + scale * b).collect();
                    let g = net.forward(&y, 1).unwrap();
                    let pred = (0..3).max_by(|&a, &b| g[a].total_cmp(&g[b])).unwrap();
                    assert_eq!(pred, label, "perturbation inside the certified radius changed the class");
                }
            }
            assert!(certified > 0, "no sample was certified: the test would be vacuous");
        }
    }
}

#[test]
fn activation_constants_bound_every_slope() {
    for a in lipcert_core::random::ALL_ACTIVATIONS {
        let c = activation_lipschitz(a);
        let worst = (0..2_000_001).map(|i| -10.0 + i as f64 * 1e-5).map(|x| a.derivative(x).abs()).fold(0.0, f64::max);
        assert!(worst <= c && worst >= c * (1.0 - 1e-6), "{a:?}: max slope {worst} vs constant {c}");
    }
    assert!((activation_lipschitz(Activation::Gelu { tanh_approx: false }) - 1.128904).abs() < 1e-6);
}

fn search(starts: usize, steps: usize, seed: u64) -> Search {
    Search { starts, steps, seed, points: vec![] }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// The proven lower bound never exceeds the certified upper bound (before the clamp in
    /// `network_lipschitz`), on random MLPs with every activation, in both norms.
    #[test]
    fn proven_lower_is_below_certified_upper_on_random_mlps(
        seed in 0u64..1_000_000,
        act in 0usize..ALL_ACTIVATIONS.len(),
        hidden in 1usize..4,
    ) {
        let mut rng = Rng::new(seed);
        let mut widths = vec![2 + rng.below(10)];
        widths.extend((0..hidden).map(|_| 2 + rng.below(14)));
        widths.push(1 + rng.below(4));
        let net = random_mlp(&mut rng, &widths, Some(ALL_ACTIVATIONS[act]), |k| (6.0 / k as f64).sqrt(), 0.5);
        for norm in [Norm::L2, Norm::Inf] {
            let lip = network_lipschitz(&net, norm, &search(2, 5, seed));
            let lower = jacobian_lower(&net, norm, &search(2, 5, seed));
            prop_assert!(lower.value <= lip.upper, "{widths:?} {norm:?}: {} > {}", lower.value, lip.upper);
            prop_assert_eq!(lower.value.min(lip.upper), lip.lower);
        }
    }
}

/// A one-layer linear network's constant is known exactly: the spectral norm (l2) or the
/// largest absolute row sum (l_inf). The proven lower bound never exceeds it (its certified
/// upper end), and it is within 1e-9 of it (a linear map's slope is the same everywhere).
#[test]
fn proven_lower_never_exceeds_the_exact_constant_of_a_linear_network() {
    let mut rng = Rng::new(21);
    for case in 0..40 {
        let (n, m) = (1 + rng.below(40), 1 + rng.below(12));
        let scale = [1e-3, 1.0, 1e3][case % 3];
        let net = random_mlp(&mut rng, &[n, m], None, |_| scale, scale);
        let lipcert_core::Op::Dense(d) = &net.nodes[0].op else { unreachable!() };
        for norm in [Norm::L2, Norm::Inf] {
            let exact_upper = match norm {
                Norm::L2 => dense::exact(MatRef::from_column_major_slice(&d.weight, n, m)).upper,
                Norm::Inf => {
                    let s = d.weight.chunks(n).map(|r| r.iter().map(|v| v.abs()).sum::<f64>()).fold(0.0, f64::max);
                    up(s * (1.0 + gamma(n + 1)))
                }
            };
            let lower = jacobian_lower(&net, norm, &search(2, 3, case as u64));
            assert!(lower.value <= exact_upper, "case {case} {norm:?}: {} > {exact_upper}", lower.value);
            assert!(
                lower.value >= exact_upper * (1.0 - 1e-9),
                "case {case} {norm:?}: {} << {exact_upper}",
                lower.value
            );
        }
    }
}

/// On random networks with every operator, the proven lower bound is within 1e-6 relative of
/// the largest f64 Jacobian norm or slope the search found (what the bound was before).
#[test]
fn proven_lower_is_close_to_the_search_value() {
    let mut rng = Rng::new(5);
    let mut worst = 0.0f64;
    for case in 0..12 {
        let net = random_network(&mut rng);
        for norm in [Norm::L2, Norm::Inf] {
            let lower = jacobian_lower(&net, norm, &search(2, 5, case));
            assert!(lower.value > 0.0 && lower.search > 0.0, "case {case} {norm:?}: {lower:?}");
            worst = worst.max(1.0 - lower.value / lower.search);
        }
    }
    assert!(worst <= 1e-6, "proven lower bound {worst:e} below the search value");
}

/// A certified slope is at most, and within 1e-12 of, the plain f64 slope on a pair far
/// apart; 0 on equal points or an enclosure of the difference that contains 0.
#[test]
fn certified_slope_edge_cases() {
    let mut rng = Rng::new(2);
    let net = random_mlp(&mut rng, &[3, 5, 2], Some(Activation::Tanh), |_| 1.0, 0.1);
    let (x, y) = (vec![0.1, 0.2, 0.3], vec![0.4, 0.2, 0.3]);
    for norm in [Norm::L2, Norm::Inf] {
        assert_eq!(pair_slope(&net, norm, &x, &x), 0.0);
        let wide = lipcert_bounds::Interval::new(vec![-1.0, -1e-9], vec![1e-9, 1.0]);
        assert_eq!(certified_slope(norm, &x, &y, &wide), 0.0);
        let (a, b) = (net.forward(&x, 1).unwrap(), net.forward(&y, 1).unwrap());
        let plain = norm_of(&[a[0] - b[0], a[1] - b[1]], norm) / norm_of(&[0.3, 0.0, 0.0], norm);
        let s = pair_slope(&net, norm, &x, &y);
        assert!(s <= plain && s >= plain * (1.0 - 1e-12), "{norm:?}: {s} vs {plain}");
    }
}

/// Radii from the f64 margins, with the old relative allowance of 1e-9 of max(1, max |f|) per
/// output (`allowance` 1e-9) or without any (`allowance` 0).
fn f64_radii(f: &[f64], y: usize, norm: Norm, upper: f64, pairs: Option<&[f64]>, allowance: f64) -> (f64, f64) {
    let m = f.len();
    let a = allowance * f.iter().fold(1.0f64, |a, v| a.max(v.abs()));
    let gap = |j: usize| f[y] - f[j] - 2.0 * a;
    let margin = (0..m).filter(|&j| j != y).map(gap).fold(f64::INFINITY, f64::min);
    if margin <= 0.0 {
        return (0.0, 0.0);
    }
    let factor = if norm == Norm::L2 { 2f64.sqrt() } else { 2.0 };
    let global = down(margin / up(factor * upper));
    let pair = pairs.map_or(global, |p| {
        (0..m).filter(|&j| j != y).map(|j| down(gap(j) / p[y * m + j])).fold(f64::INFINITY, f64::min)
    });
    (global, pair.max(global))
}

/// The certified radii (enclosure margins) are never larger than the radii from the plain f64
/// margins, and differ from the old allowance-based radii by less than 1e-6 relative.
#[test]
fn certified_radii_are_never_above_the_f64_radii() {
    let mut rng = Rng::new(13);
    let (mut compared, mut worst_vs_old) = (0, 0.0f64);
    for case in 0..8 {
        let net = random_network(&mut rng);
        let n = net.input_len();
        for norm in [Norm::L2, Norm::Inf] {
            let lip = network_lipschitz(&net, norm, &search(1, 1, case));
            let pairs = pair_constants(&net, &lip);
            for _ in 0..40 {
                let x: Vec<f64> = (0..n).map(|_| rng.range(-1.0, 1.0)).collect();
                let f = net.forward(&x, 1).unwrap();
                let label = (0..f.len()).max_by(|&a, &b| f[a].total_cmp(&f[b])).unwrap();
                let r: Radii = radii(&f, &output_enclosure(&net, &x).unwrap(), label, &lip, pairs.as_deref());
                let plain = f64_radii(&f, label, norm, lip.upper, pairs.as_deref(), 0.0);
                let old = f64_radii(&f, label, norm, lip.upper, pairs.as_deref(), 1e-9);
                assert!(r.global <= plain.0 && r.pair <= plain.1, "case {case}: {r:?} vs f64 {plain:?}");
                if old.1 > 0.0 {
                    compared += 1;
                    worst_vs_old = worst_vs_old.max((r.pair / old.1 - 1.0).abs());
                }
            }
        }
    }
    assert!(compared > 50, "only {compared} samples had a positive radius");
    assert!(worst_vs_old <= 1e-6, "certified radii differ from the old ones by {worst_vs_old:e}");
}
