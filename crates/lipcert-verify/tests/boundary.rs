//! Distance to the decision boundary: the bracket is ordered (CROWN radius <= lower <= upper <=
//! PGD radius), `lower` survives dense sampling of its ball, `upper` is the distance of a
//! re-checked misclassified witness, the bracket closes to `tol` where exact search can run,
//! and it matches closed forms on linear classifiers.

use lipcert_bounds::{Interval, Unsafe};
use lipcert_core::random::random_mlp;
use lipcert_core::{Activation, Dense, Network, NetworkBuilder, Op, Rng};
use lipcert_verify::{decision_boundary, BoundaryNorm, BoundaryOptions, BoundaryResult, LowerProof, UpperSource};
use std::time::Duration;

mod common;
use common::benchmark_net;

/// Rounding allowance when comparing radii computed along different paths.
const SLACK: f64 = 1e-12;

fn misclassified(net: &Network, x: &[f64], label: usize) -> bool {
    let y = net.forward(x, 1).unwrap();
    Unsafe::misclassified(label, net.output_len()).loss(&y) <= 0.0
}

/// The invariants every result must satisfy, whatever the network.
fn check_bracket(net: &Network, x0: &[f64], label: usize, r: &BoundaryResult, what: &str) {
    let tol = |v: f64| SLACK * v.abs().max(1e-300);
    assert!(r.crown_radius <= r.lower + tol(r.lower), "{what}: crown {} > lower {}", r.crown_radius, r.lower);
    assert!(r.lower <= r.upper, "{what}: lower {} > upper {}", r.lower, r.upper);
    assert!(r.upper <= r.pgd_radius + tol(r.pgd_radius), "{what}: upper {} > pgd radius {}", r.upper, r.pgd_radius);
    match (&r.witness, r.upper.is_finite()) {
        (Some(w), true) => {
            assert!(misclassified(net, w, label), "{what}: the witness is not misclassified");
            assert_eq!(r.norm.distance(w, x0), r.upper, "{what}: the witness is not at distance upper");
            let y = net.forward(w, 1).unwrap();
            assert_eq!(r.witness_output.as_ref(), Some(&y), "{what}: witness output differs from a fresh pass");
        }
        (None, false) => assert_eq!(r.upper_by, UpperSource::None, "{what}"),
        (w, _) => panic!("{what}: witness {} with upper {}", w.is_some(), r.upper),
    }
    let phases = r.crown_calls + r.pgd_calls + r.verify_calls;
    assert_eq!(phases, r.probes.len(), "{what}: calls do not add up to the probes");
}

/// Uniform points of the l_inf box or (by a uniform direction and radius) the l2 ball of
/// radius `eps` around x0, none of which may be misclassified when eps is a proven lower bound.
fn sample_ball(net: &Network, x0: &[f64], label: usize, norm: BoundaryNorm, eps: f64, rng: &mut Rng, what: &str) {
    let n = x0.len();
    let k = 2000;
    let mut xs = Vec::with_capacity(k * n);
    for _ in 0..k {
        let p: Vec<f64> = match norm {
            BoundaryNorm::Inf => x0.iter().map(|c| c + eps * rng.range(-1.0, 1.0)).collect(),
            BoundaryNorm::L2 => {
                let dir = rng.normals(n, 1.0);
                let len = dir.iter().map(|v| v * v).sum::<f64>().sqrt();
                let s = eps * rng.uniform().powf(1.0 / n as f64) / len;
                x0.iter().zip(&dir).map(|(c, d)| c + s * d).collect()
            }
        };
        xs.extend(p);
    }
    let ys = net.forward(&xs, k).unwrap();
    let u = Unsafe::misclassified(label, net.output_len());
    let bad = ys.chunks(net.output_len()).filter(|y| u.loss(y) <= 0.0).count();
    assert_eq!(bad, 0, "{what}: {bad} sampled points within the proven radius {eps} are misclassified");
}

#[test]
fn random_mlps_give_ordered_certified_brackets() {
    let mut rng = Rng::new(2024);
    let mut closed = [0usize; 2];
    for case in 0..12 {
        let net = random_mlp(&mut rng, &[3, 8, 8, 3], Some(Activation::Relu), |_| 1.0, 0.5);
        let x0: Vec<f64> = (0..3).map(|_| rng.range(-1.0, 1.0)).collect();
        let y0 = net.forward(&x0, 1).unwrap();
        let label = (0..3).max_by(|&a, &b| y0[a].total_cmp(&y0[b])).unwrap();
        let opts = BoundaryOptions { timeout: Duration::from_secs(5), ..Default::default() };
        let mut results = Vec::new();
        for (k, norm) in [BoundaryNorm::Inf, BoundaryNorm::L2].into_iter().enumerate() {
            let what = format!("case {case}, l_{}", norm.name());
            let r = decision_boundary(&net, &x0, label, norm, &opts).unwrap();
            println!(
                "{what}: [{:.6}, {:.6}] crown {:.6} pgd {:.6}, {} verify calls, {:.3} s",
                r.lower, r.upper, r.crown_radius, r.pgd_radius, r.verify_calls, r.time_s
            );
            check_bracket(&net, &x0, label, &r, &what);
            assert!(r.lower > 0.0, "{what}: a correctly classified point has a positive proven radius");
            assert!(r.upper.is_finite(), "{what}: no witness");
            sample_ball(&net, &x0, label, norm, r.lower, &mut rng, &what);
            if norm == BoundaryNorm::Inf {
                assert!(r.exact_search);
                assert!(r.closed || r.timed_out, "{what}: not closed without a timeout: {:?}", r.note);
            }
            if r.closed {
                assert!(r.upper - r.lower <= opts.tol * r.upper, "{what}");
                closed[k] += 1;
            }
            results.push(r);
        }
        // d_inf <= d_2 <= sqrt(n) d_inf, so the two brackets must be compatible.
        let (inf, l2) = (&results[0], &results[1]);
        assert!(inf.lower <= l2.upper, "case {case}: d_inf >= {} but d_2 <= {}", inf.lower, l2.upper);
        assert!(l2.lower <= 3f64.sqrt() * inf.upper * (1.0 + SLACK), "case {case}: l2 lower above sqrt(3) d_inf");
        // Unsat l_inf boxes lift the l2 lower bound to within tol of d_inf when CROWN's l2
        // radius is below it.
        if inf.closed && !l2.timed_out && inf.lower > l2.crown_radius * (1.0 + 9.0 * opts.tol) {
            assert!(
                l2.lower >= inf.lower - 2.0 * opts.tol * l2.upper,
                "case {case}: l2 lower {} well below the proven d_inf {}",
                l2.lower,
                inf.lower
            );
        }
    }
    println!("closed: l_inf {}, l2 {}", closed[0], closed[1]);
    assert!(closed[0] >= 10, "exact search should close most l_inf brackets: {closed:?}");
}

#[test]
fn a_misclassified_point_is_at_distance_zero() {
    let mut rng = Rng::new(5);
    let net = random_mlp(&mut rng, &[3, 8, 8, 3], Some(Activation::Relu), |_| 1.0, 0.5);
    let x0 = vec![0.2, -0.4, 0.7];
    let y0 = net.forward(&x0, 1).unwrap();
    let label = (0..3).min_by(|&a, &b| y0[a].total_cmp(&y0[b])).unwrap();
    let r = decision_boundary(&net, &x0, label, BoundaryNorm::Inf, &BoundaryOptions::default()).unwrap();
    assert_eq!((r.lower, r.upper), (0.0, 0.0));
    assert_eq!(r.witness.as_deref(), Some(&x0[..]));
    assert_eq!(r.upper_by, UpperSource::Clean);
    assert!(r.closed && r.probes.is_empty() && r.margin < 0.0);
    assert_ne!(r.predicted, label);
}

/// Two classes, one dense layer: y_0 - y_1 = a.x + c, so the distance to the boundary is
/// (a.x0 + c) / ||a||_dual (l_1 for l_inf, l_2 for l2).
fn linear(a: &[f64], c: f64) -> Network {
    let n = a.len();
    let mut weight = a.to_vec();
    weight.extend(vec![0.0; n]);
    let d = Dense { weight, bias: vec![c, 0.0], out_features: 2, in_features: n };
    let mut b = NetworkBuilder::new("x", vec![1, n]);
    let v = b.push("dense", Op::Dense(d), &[b.input()]).unwrap();
    b.finish(v, "y").unwrap()
}

#[test]
fn linear_classifiers_match_the_closed_form() {
    let mut rng = Rng::new(7);
    for (case, n) in [2usize, 5, 40].into_iter().enumerate() {
        let a: Vec<f64> = (0..n).map(|_| rng.range(-1.0, 1.0)).collect();
        let x0: Vec<f64> = (0..n).map(|_| rng.range(-1.0, 1.0)).collect();
        let ax: f64 = a.iter().zip(&x0).map(|(a, x)| a * x).sum();
        let c = 0.7 - ax; // margin 0.7 at x0
        let net = linear(&a, c);
        for norm in [BoundaryNorm::Inf, BoundaryNorm::L2] {
            let dual = match norm {
                BoundaryNorm::Inf => a.iter().map(|v| v.abs()).sum::<f64>(),
                BoundaryNorm::L2 => a.iter().map(|v| v * v).sum::<f64>().sqrt(),
            };
            let exact = 0.7 / dual;
            let opts = BoundaryOptions { timeout: Duration::from_secs(10), ..Default::default() };
            let r = decision_boundary(&net, &x0, 0, norm, &opts).unwrap();
            let what = format!("case {case} (n = {n}), l_{}", norm.name());
            println!("{what}: exact {exact:.9}, [{:.9}, {:.9}], {} probes", r.lower, r.upper, r.probes.len());
            check_bracket(&net, &x0, 0, &r, &what);
            assert!(r.lower <= exact * (1.0 + 1e-9) && exact <= r.upper * (1.0 + 1e-9), "{what}: exact {exact}");
            assert!(r.closed, "{what}: {:?}", r.note);
            assert!(r.upper - r.lower <= opts.tol * r.upper, "{what}");
            assert!(r.note.is_none(), "{what}: {:?}", r.note);
        }
    }
}

#[test]
fn a_domain_without_misclassified_points_gives_an_infinite_distance() {
    // y_0 - y_1 = x_0 + x_1 + 3 >= 1 on [-1, 1]^2: no point of the domain is misclassified.
    let net = linear(&[1.0, 1.0], 3.0);
    let domain = Interval::new(vec![-1.0; 2], vec![1.0; 2]);
    for norm in [BoundaryNorm::Inf, BoundaryNorm::L2] {
        let opts = BoundaryOptions { domain: Some(domain.clone()), ..Default::default() };
        let r = decision_boundary(&net, &[0.5, -0.25], 0, norm, &opts).unwrap();
        assert!(r.lower.is_infinite() && r.upper.is_infinite() && r.closed, "l_{}: {r:?}", norm.name());
        assert!(r.witness.is_none());
    }
    // Clipped to [-1, 1]^2 the nearest misclassified point of x_0 + x_1 + 1.5 is at (-1, -0.5)
    // from (0, 0) in l_inf... distance 0.75 = 1.5 / 2 (the l_inf closed form, inside the domain).
    let net = linear(&[1.0, 1.0], 1.5);
    let opts = BoundaryOptions { domain: Some(domain), ..Default::default() };
    let r = decision_boundary(&net, &[0.0, 0.0], 0, BoundaryNorm::Inf, &opts).unwrap();
    check_bracket(&net, &[0.0, 0.0], 0, &r, "clipped");
    assert!(r.lower <= 0.75 && 0.75 <= r.upper && r.closed, "{r:?}");
    let w = r.witness.unwrap();
    assert!(w.iter().all(|v| (-1.0..=1.0).contains(v)), "the witness leaves the domain: {w:?}");
}

#[test]
fn bad_arguments_are_errors() {
    let net = linear(&[1.0, 1.0], 1.0);
    let opts = BoundaryOptions::default();
    let e = decision_boundary(&net, &[0.0], 0, BoundaryNorm::Inf, &opts).unwrap_err().to_string();
    assert!(e.contains("1 elements") && e.contains("2 inputs"), "{e}");
    let e = decision_boundary(&net, &[0.0, f64::NAN], 0, BoundaryNorm::Inf, &opts).unwrap_err().to_string();
    assert!(e.contains("element 1") && e.contains("NaN"), "{e}");
    let e = decision_boundary(&net, &[0.0, 0.0], 2, BoundaryNorm::Inf, &opts).unwrap_err().to_string();
    assert!(e.contains("label 2"), "{e}");
    let opts = BoundaryOptions { domain: Some(Interval::new(vec![0.5; 2], vec![1.0; 2])), ..Default::default() };
    let e = decision_boundary(&net, &[0.0, 0.7], 0, BoundaryNorm::Inf, &opts).unwrap_err().to_string();
    assert!(e.contains("outside the domain"), "{e}");
}

/// mnist-net_256x2 at the center of prop_0_0.03's input box (label 8), in a few seconds: the
/// bracket is valid and at least as tight as CROWN and PGD; the witness is a real misclassified
/// image.
#[test]
fn mnist_bracket_is_valid() {
    let Some((net, dir)) = benchmark_net("mnistfc", "mnist-net_256x2.onnx") else {
        return;
    };
    let p = lipcert_io::vnnlib::Property::read(&dir.join("prop_0_0.03.vnnlib")).unwrap();
    let (lo, hi, _) = p.input_boxes().remove(0);
    let x0: Vec<f64> = lo.iter().zip(&hi).map(|(l, h)| 0.5 * l + 0.5 * h).collect();
    let y0 = net.forward(&x0, 1).unwrap();
    let label = (0..10).max_by(|&a, &b| y0[a].total_cmp(&y0[b])).unwrap();
    assert_eq!(label, 8, "the property's comment says label 8");
    let opts = BoundaryOptions { timeout: Duration::from_secs(8), ..Default::default() };
    let r = decision_boundary(&net, &x0, label, BoundaryNorm::Inf, &opts).unwrap();
    println!(
        "mnist-net_256x2 prop_0 center: [{}, {}] ({}), crown {}, pgd {}, {} verify calls, {:.2} s",
        r.lower,
        r.upper,
        r.lower_by.describe(),
        r.crown_radius,
        r.pgd_radius,
        r.verify_calls,
        r.time_s
    );
    check_bracket(&net, &x0, label, &r, "mnist");
    assert!(r.crown_radius > 0.005, "CROWN certifies a ball of radius {}", r.crown_radius);
    assert!(r.upper.is_finite() && r.upper < 0.05, "PGD finds a misclassified image within 0.05: {}", r.upper);
    assert!(r.time_s < 15.0, "the search overran its 8 s timeout: {} s", r.time_s);
    if r.lower_by == LowerProof::VerifyMilp || r.lower_by == LowerProof::Verify {
        assert!(r.lower > r.crown_radius);
    }
    let mut rng = Rng::new(1);
    sample_ball(&net, &x0, label, BoundaryNorm::Inf, r.lower, &mut rng, "mnist");
}
