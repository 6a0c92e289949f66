//! Substitute networks: the folded network is the masked one, both agree with the original at
//! the anchor (and, for the activation-pattern kind, on the whole delta-ball), and Lemma 1's
//! certified lower bound never exceeds the original's exact distance or a witness.

use lipcert_bounds::{value_bounds, InputSet, Method, Options};
use lipcert_core::random::random_mlp;
use lipcert_core::{Activation, Conv2d, Dense, Network, NetworkBuilder, Op, Rng};
use lipcert_substitute::*;
use lipcert_verify::{decision_boundary, BoundaryNorm, BoundaryOptions};
use std::time::Duration;

fn mlp(seed: u64, widths: &[usize], act: Activation) -> Network {
    let mut rng = Rng::new(seed);
    random_mlp(&mut rng, widths, Some(act), |fan_in| 1.7 / (fan_in as f64).sqrt(), 0.3)
}

/// A small convolutional chain: affine input normalization, conv, act, avgpool, pad, conv,
/// act, flatten, dense, act, dense.
fn conv_chain(seed: u64, act: Activation) -> Network {
    let mut rng = Rng::new(seed);
    let mut b = NetworkBuilder::new("x", vec![1, 1, 6, 6]);
    let conv = |rng: &mut Rng, cin: usize, cout: usize| {
        Op::Conv2d(Conv2d {
            weight: rng.normals(cout * cin * 9, 0.6),
            bias: rng.normals(cout, 0.2),
            out_channels: cout,
            in_channels: cin,
            kernel: [3, 3],
            stride: [1, 1],
            pads: [1, 1, 1, 1],
            dilation: [1, 1],
            groups: 1,
        })
    };
    let pool = lipcert_core::Pool2d {
        kernel: [2, 2],
        stride: [2, 2],
        pads: [0, 0, 0, 0],
        dilation: [1, 1],
        count_include_pad: true,
    };
    let mut v = b.push("norm", Op::Affine { scale: rng.normals(36, 1.0), shift: rng.normals(36, 0.2) }, &[0]).unwrap();
    v = b.push("conv1", conv(&mut rng, 1, 3), &[v]).unwrap();
    v = b.push("act1", Op::Activation(act), &[v]).unwrap();
    v = b.push("pool", Op::AvgPool(pool), &[v]).unwrap();
    v = b.push("pad", Op::Pad { pads: vec![0, 0, 1, 0, 0, 0, 0, 1], value: 0.25 }, &[v]).unwrap();
    v = b.push("conv2", conv(&mut rng, 3, 2), &[v]).unwrap();
    v = b.push("act2", Op::Activation(act), &[v]).unwrap();
    let len: usize = b.shape(v).iter().product();
    v = b.push("flatten", Op::Reshape { shape: vec![1, len] }, &[v]).unwrap();
    let dense = |rng: &mut Rng, i: usize, o: usize| {
        Op::Dense(Dense {
            weight: rng.normals(o * i, 1.0 / (i as f64).sqrt()),
            bias: rng.normals(o, 0.2),
            out_features: o,
            in_features: i,
        })
    };
    v = b.push("fc1", dense(&mut rng, len, 7), &[v]).unwrap();
    v = b.push("act3", Op::Activation(act), &[v]).unwrap();
    v = b.push("fc2", dense(&mut rng, 7, 3), &[v]).unwrap();
    b.finish(v, "y").unwrap()
}

/// A plan replacing a random subset (fraction `frac`) by random lines.
fn random_plan(net: &Network, rng: &mut Rng, frac: f64) -> Plan {
    let mut plan = Plan::keep_all(net);
    for layer in &mut plan.layers {
        for r in &mut layer.replaced {
            if rng.uniform() < frac {
                let slope = if rng.uniform() < 0.3 { 0.0 } else { rng.range(-1.0, 1.5) };
                *r = Some(Replacement { slope, offset: rng.range(-0.5, 0.5) });
            }
        }
    }
    plan
}

fn max_diff(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max)
}

#[test]
fn folding_keeps_the_function() {
    let acts = [Activation::Relu, Activation::LeakyRelu { alpha: 0.125 }, Activation::Tanh, Activation::Sigmoid];
    for seed in 0..24u64 {
        let act = acts[seed as usize % acts.len()];
        let net = if seed % 2 == 0 { mlp(seed, &[5, 9, 8, 7, 4], act) } else { conv_chain(seed, act) };
        let mut rng = Rng::new(100 + seed);
        let frac = [0.0, 0.3, 0.7, 1.0][(seed / 2) as usize % 4];
        let plan = random_plan(&net, &mut rng, frac);
        let (m, _) = masked(&net, &plan).unwrap();
        let f = fold(&net, &plan).unwrap();
        assert_eq!(f.output_shape(), net.output_shape());
        let n = net.input_len();
        let x: Vec<f64> = (0..20 * n).map(|_| rng.range(-2.0, 2.0)).collect();
        let (ym, yf) = (m.forward(&x, 20).unwrap(), f.forward(&x, 20).unwrap());
        let scale = ym.iter().fold(1.0f64, |s, v| s.max(v.abs()));
        assert!(
            max_diff(&ym, &yf) <= 1e-10 * scale,
            "seed {seed}: folded differs from masked by {}",
            max_diff(&ym, &yf)
        );
        if frac == 0.0 {
            let y = net.forward(&x, 20).unwrap();
            assert!(max_diff(&y, &yf) <= 1e-10 * scale, "seed {seed}: the folded network without replacements differs");
        }
        // Only kept neurons remain as activations.
        let acts_after: usize = f
            .nodes
            .iter()
            .enumerate()
            .filter(|(_, n)| matches!(n.op, Op::Activation(_)))
            .map(|(k, _)| f.value_len(k + 1))
            .sum();
        assert_eq!(acts_after, plan.neurons() - plan.replaced(), "seed {seed}");
    }
}

#[test]
fn every_kind_equals_the_network_at_the_anchor_and_the_linear_one_at_the_attack_point() {
    for seed in 0..12u64 {
        let net = mlp(seed, &[4, 12, 10, 3], Activation::Relu);
        let mut rng = Rng::new(seed);
        let x0: Vec<f64> = (0..4).map(|_| rng.range(-1.0, 1.0)).collect();
        let xa: Vec<f64> = x0.iter().map(|v| v + rng.range(-0.3, 0.3)).collect();
        let keep = Plan::keep_all(&net);
        let (z0, za) = (pre_activations(&net, &keep, &x0).unwrap(), pre_activations(&net, &keep, &xa).unwrap());
        let set = InputSet::Box(linf_box(&x0, 0.3, None));
        for kind in [Kind::Constant, Kind::Linear, Kind::Pattern] {
            let opts = ChooseOptions { gamma: 0.9, gamma0: 0.2, method: Method::Crown };
            let (plan, _) = choose(&net, &set, kind, &z0, &za, &opts, &mut |_, _| {}).unwrap();
            assert_eq!(plan.replaced(), (0.9 * plan.neurons() as f64).round() as usize);
            let g = fold(&net, &plan).unwrap();
            let (y, yg) = (net.forward(&x0, 1).unwrap(), g.forward(&x0, 1).unwrap());
            assert!(max_diff(&y, &yg) < 1e-10, "seed {seed} {kind:?}: g(x0) != f(x0)");
            if kind == Kind::Linear {
                let (y, yg) = (net.forward(&xa, 1).unwrap(), g.forward(&xa, 1).unwrap());
                assert!(max_diff(&y, &yg) < 1e-10, "seed {seed}: the linear substitute moves f(x_adv)");
            }
        }
    }
}

#[test]
fn the_pattern_substitute_equals_the_network_on_the_delta_ball() {
    let mut checked = 0;
    for seed in 0..16u64 {
        let act = if seed % 3 == 0 { Activation::LeakyRelu { alpha: 0.25 } } else { Activation::Relu };
        let net = mlp(seed, &[3, 10, 10, 3], act);
        let mut rng = Rng::new(50 + seed);
        let x0: Vec<f64> = (0..3).map(|_| rng.range(-1.0, 1.0)).collect();
        let keep = Plan::keep_all(&net);
        let z0 = pre_activations(&net, &keep, &x0).unwrap();
        let set = InputSet::Box(linf_box(&x0, 0.2, None));
        let opts = ChooseOptions { gamma: 0.6, gamma0: 0.25, method: Method::Crown };
        let (plan, _) = choose(&net, &set, Kind::Pattern, &z0, &z0, &opts, &mut |_, _| {}).unwrap();
        let delta = pattern_radius(&net, &plan, &z0, &x0, None, 0.2, 1e-4).unwrap().unwrap();
        if delta <= 0.0 {
            continue;
        }
        checked += 1;
        let (m, pre) = masked(&net, &plan).unwrap();
        let g = fold(&net, &plan).unwrap();
        // By sampling: the masked substitute is the network bit for bit, the folded one to rounding.
        for _ in 0..400 {
            let x: Vec<f64> = x0.iter().map(|c| c + delta * rng.range(-1.0, 1.0)).collect();
            let y = net.forward(&x, 1).unwrap();
            assert_eq!(y, m.forward(&x, 1).unwrap(), "seed {seed}: masked != f inside the delta-ball");
            assert!(max_diff(&y, &g.forward(&x, 1).unwrap()) < 1e-10, "seed {seed}: folded != f inside the delta-ball");
        }
        // By bounds: on the delta-box every replaced neuron keeps its sign.
        let b =
            value_bounds(&m, &InputSet::Box(linf_box(&x0, delta, None)), Method::Crown, &Options::default()).unwrap();
        for (li, layer) in plan.layers.iter().enumerate() {
            for (i, r) in layer.replaced.iter().enumerate() {
                if r.is_some() {
                    let (lo, hi) = (b[pre[li]].lo[i], b[pre[li]].hi[i]);
                    assert!(lo >= 0.0 || hi <= 0.0, "seed {seed}: neuron ({li}, {i}) is unstable on the delta-box");
                }
            }
        }
        // Just outside: some replaced neuron can change sign (delta is the largest radius, to tol).
        assert!(pattern_radius(&net, &plan, &z0, &x0, None, delta, 1e-4).unwrap().unwrap() >= delta * 0.999);
    }
    assert!(checked >= 8, "only {checked} of 16 networks had a positive delta");
}

#[test]
fn the_certified_lower_bound_is_never_above_the_exact_distance() {
    let mut certified = 0;
    for seed in 0..14u64 {
        let net = mlp(seed, &[2, 8, 8, 3], Activation::Relu);
        let mut rng = Rng::new(900 + seed);
        let x0: Vec<f64> = (0..2).map(|_| rng.range(-1.0, 1.0)).collect();
        let y = net.forward(&x0, 1).unwrap();
        let label = (0..3).max_by(|&a, &b| y[a].total_cmp(&y[b])).unwrap();
        let boundary = BoundaryOptions { timeout: Duration::from_secs(10), tol: 1e-4, ..Default::default() };
        let exact = decision_boundary(&net, &x0, label, BoundaryNorm::Inf, &boundary).unwrap();
        if !exact.upper.is_finite() {
            continue;
        }
        for gamma in [0.5, 0.9] {
            let opts = SubstituteOptions {
                kind: Kind::Pattern,
                gamma,
                gamma0: 0.2,
                method: Method::Crown,
                boundary: boundary.clone(),
                compare: false,
                certify: true,
            };
            let r = substitute(&net, &x0, label, &opts, &mut |_| {}).unwrap();
            let c = r.certificate.unwrap();
            if let Some(lower) = c.lower {
                certified += 1;
                // The exact upper is a re-checked witness of the original.
                assert!(lower <= exact.upper, "seed {seed} gamma {gamma}: certified {lower} > witness {}", exact.upper);
            }
            if let Some(u) = r.witness_upper {
                assert!(
                    u >= exact.lower,
                    "seed {seed}: the re-checked witness {u} lies below the proven {}",
                    exact.lower
                );
            }
        }
    }
    assert!(certified >= 10, "only {certified} certificates on 28 cases");
}

#[test]
fn the_constant_substitute_gets_no_certificate() {
    let net = mlp(3, &[2, 8, 8, 3], Activation::Relu);
    let x0 = [0.3, -0.2];
    let y = net.forward(&x0, 1).unwrap();
    let label = (0..3).max_by(|&a, &b| y[a].total_cmp(&y[b])).unwrap();
    let opts = SubstituteOptions {
        kind: Kind::Constant,
        gamma: 0.9,
        gamma0: 0.2,
        method: Method::Crown,
        boundary: BoundaryOptions { timeout: Duration::from_secs(5), ..Default::default() },
        compare: false,
        certify: true,
    };
    let r = substitute(&net, &x0, label, &opts, &mut |_| {}).unwrap();
    let c = r.certificate.unwrap();
    // Positive pre-activations replaced by constants differ from the ReLU on every ball.
    if r.plan
        .layers
        .iter()
        .zip(pre_activations(&net, &Plan::keep_all(&net), &x0).unwrap())
        .any(|(l, z)| l.replaced.iter().zip(&z).any(|(r, z)| r.is_some() && *z > 0.0))
    {
        assert!(c.lower.is_none() && c.reason.is_some());
    }
}

#[test]
fn bad_input_is_one_clear_error() {
    let net = mlp(1, &[2, 6, 3], Activation::Relu);
    let base = SubstituteOptions {
        kind: Kind::Pattern,
        gamma: 0.5,
        gamma0: 0.1,
        method: Method::Crown,
        boundary: BoundaryOptions::default(),
        compare: false,
        certify: false,
    };
    let err = |x: &[f64], label: usize, o: &SubstituteOptions| {
        substitute(&net, x, label, o, &mut |_| {}).unwrap_err().to_string()
    };
    assert!(err(&[0.1, 0.2], 7, &base).contains("label 7"));
    assert!(err(&[0.1, 0.2, 0.3], 0, &base).contains("3 elements"));
    assert!(err(&[0.1, 0.2], 0, &SubstituteOptions { gamma: 1.0, ..base.clone() }).contains("gamma must be in [0, 1)"));
    assert!(err(&[0.1, 0.2], 0, &SubstituteOptions { gamma: -0.1, ..base.clone() }).contains("gamma"));
    let sig = mlp(1, &[2, 6, 3], Activation::Sigmoid);
    let x0 = [0.1, 0.2];
    let y = sig.forward(&x0, 1).unwrap();
    let label = (0..3).max_by(|&a, &b| y[a].total_cmp(&y[b])).unwrap();
    let e = substitute(&sig, &x0, label, &base, &mut |_| {}).unwrap_err().to_string();
    assert!(e.contains("piecewise-linear"), "{e}");
}
