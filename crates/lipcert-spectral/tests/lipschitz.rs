//! Network Lipschitz bounds: soundness on random networks with every operator (no pair of
//! points, no Jacobian may exceed the upper bound), exactness of the product bound on a real
//! MLP, lower <= upper on every benchmark network, and soundness of the certified radii.

use faer::MatRef;
use lipcert_core::random::random_network;
use lipcert_core::{Activation, Network, Rng};
use lipcert_spectral::lipschitz::{activation_lipschitz, network_lipschitz, pair_constants, radii, Norm, Search};

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
                let r = radii(&f, label, &lip, pairs.as_deref());
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
