//! CROWN, crown-pure and alpha-CROWN soundness: on random networks that use every node type,
//! over random boxes and l2 balls, no sampled point (10^4 per case: corners, uniform points, and
//! points pushed by projected gradient descent towards each row's minimum) goes below a
//! certified lower bound of a specification row or outside the output bounds. Also: exactness
//! on purely linear networks and the tightness order IBP <= CROWN <= alpha-CROWN.

use lipcert_bounds::{bound, ibp, InputSet, Interval, Method, Options};
use lipcert_core::random::{random_mlp, random_network};
use lipcert_core::{Activation, Network, Rng};

const METHODS: [Method; 4] = [Method::Ibp, Method::CrownPure, Method::Crown, Method::AlphaCrown];

fn random_spec(rng: &mut Rng, out: usize, rows: usize) -> Vec<Vec<f64>> {
    (0..rows).map(|_| (0..out).map(|_| rng.range(-1.0, 1.0)).collect()).collect()
}

/// Points of the set: the first fifth are box corners (or ball boundary points), the rest uniform.
fn sample(rng: &mut Rng, set: &InputSet, count: usize) -> Vec<f64> {
    let n = set.len();
    let mut x = Vec::with_capacity(count * n);
    for s in 0..count {
        let mut p: Vec<f64> = match set {
            InputSet::Box(b) => (0..n)
                .map(|i| {
                    let t = if s < count / 5 { (rng.uniform() < 0.5) as u8 as f64 } else { rng.uniform() };
                    b.lo[i] + t * (b.hi[i] - b.lo[i])
                })
                .collect(),
            InputSet::L2Ball { center, radius, .. } => {
                let d: Vec<f64> = (0..n).map(|_| rng.range(-1.0, 1.0)).collect();
                let norm = d.iter().map(|v| v * v).sum::<f64>().sqrt().max(1e-300);
                let r = if s < count / 5 { *radius } else { radius * rng.uniform() };
                center.iter().zip(&d).map(|(c, d)| c + r * d / norm).collect()
            }
        };
        set.project(&mut p);
        x.extend(p);
    }
    x
}

/// Projected gradient descent on c . f(x) from a few starts: the points that come closest
/// to each row's minimum, where an unsound bound would show first.
fn descend(net: &Network, set: &InputSet, c: &[f64], rng: &mut Rng) -> Vec<f64> {
    let n = set.len();
    let starts = 8;
    let mut x = sample(rng, set, starts);
    let bbox = set.bounding_box();
    let mut found = Vec::new();
    for step in 0..40 {
        let trace = net.trace(&x, starts).unwrap();
        let seed: Vec<f64> = (0..starts).flat_map(|_| c.iter().copied()).collect();
        let g = net.vjp(&trace, &seed, false).unwrap().input;
        let scale = 0.5 * 0.9f64.powi(step);
        for s in 0..starts {
            let xs = &mut x[s * n..(s + 1) * n];
            let gs = &g[s * n..(s + 1) * n];
            match set {
                InputSet::Box(_) => {
                    for i in 0..n {
                        xs[i] -= scale * (bbox.hi[i] - bbox.lo[i]) * gs[i].signum();
                    }
                }
                InputSet::L2Ball { radius, .. } => {
                    let norm = gs.iter().map(|v| v * v).sum::<f64>().sqrt().max(1e-300);
                    for i in 0..n {
                        xs[i] -= scale * radius * gs[i] / norm;
                    }
                }
            }
            set.project(xs);
        }
        found.extend_from_slice(&x);
    }
    found
}

fn check_case(net: &Network, set: &InputSet, spec: &[Vec<f64>], rng: &mut Rng, what: &str) {
    check_case_with(net, set, spec, rng, what, &Options { alpha_iterations: 8, ..Options::default() });
}

fn check_case_with(net: &Network, set: &InputSet, spec: &[Vec<f64>], rng: &mut Rng, what: &str, opts: &Options) {
    let results: Vec<_> = METHODS.iter().map(|&m| bound(net, set, spec, m, opts).unwrap()).collect();
    let mut x = sample(rng, set, 10_000);
    for c in spec {
        x.extend(descend(net, set, c, rng));
    }
    let out_len = net.output_len();
    let points = x.len() / set.len();
    let y = net.forward(&x, points).unwrap();
    for b in &results {
        for (p, yp) in y.chunks(out_len).enumerate() {
            for (j, v) in yp.iter().enumerate() {
                assert!(
                    b.lower[j] <= *v && *v <= b.upper[j],
                    "{what}, {}: point {p}, output {j} = {v} outside [{}, {}]",
                    b.method.name(),
                    b.lower[j],
                    b.upper[j]
                );
            }
            for (r, c) in spec.iter().enumerate() {
                let cy: f64 = c.iter().zip(yp).map(|(a, b)| a * b).sum();
                assert!(
                    b.spec_lower[r] <= cy,
                    "{what}, {}: point {p}, row {r}: c.y = {cy} below the bound {}",
                    b.method.name(),
                    b.spec_lower[r]
                );
            }
        }
    }
}

#[test]
fn no_sampled_point_breaks_any_bound_on_boxes() {
    let mut rng = Rng::new(2024);
    for case in 0..8 {
        let net = random_network(&mut rng);
        let n = net.input_len();
        let radius = [0.002, 0.05, 0.3, 1.0][case % 4];
        let c: Vec<f64> = (0..n).map(|_| rng.range(-1.0, 1.0)).collect();
        let lo: Vec<f64> = c.iter().map(|c| c - radius * rng.uniform()).collect();
        let hi: Vec<f64> = c.iter().map(|c| c + radius * rng.uniform()).collect();
        let spec = random_spec(&mut rng, net.output_len(), 3);
        check_case(&net, &InputSet::Box(Interval::new(lo, hi)), &spec, &mut rng, &format!("box case {case}"));
    }
}

/// Past the deadline the engine skips its CROWN passes: every method still returns sound
/// bounds (no NaN from relaxing a neuron without CROWN bounds), and crown and alpha-crown fall
/// back to exactly IBP's specification bounds.
#[test]
fn a_passed_deadline_leaves_sound_ibp_bounds() {
    let mut rng = Rng::new(77);
    let opts = Options { alpha_iterations: 8, deadline: Some(std::time::Instant::now()), ..Options::default() };
    for case in 0..4 {
        let net = random_network(&mut rng);
        let n = net.input_len();
        let c: Vec<f64> = (0..n).map(|_| rng.range(-1.0, 1.0)).collect();
        let lo: Vec<f64> = c.iter().map(|c| c - 0.1 * rng.uniform()).collect();
        let hi: Vec<f64> = c.iter().map(|c| c + 0.1 * rng.uniform()).collect();
        let set = InputSet::Box(Interval::new(lo, hi));
        let spec = random_spec(&mut rng, net.output_len(), 3);
        check_case_with(&net, &set, &spec, &mut rng, &format!("deadline case {case}"), &opts);
        let ibp = bound(&net, &set, &spec, Method::Ibp, &opts).unwrap();
        for m in [Method::Crown, Method::AlphaCrown] {
            let b = bound(&net, &set, &spec, m, &opts).unwrap();
            assert_eq!(b.spec_lower, ibp.spec_lower, "case {case}, {}: not IBP's bounds", m.name());
        }
        let pure = bound(&net, &set, &spec, Method::CrownPure, &opts).unwrap();
        assert!(pure.lower.iter().chain(&pure.upper).all(|v| !v.is_nan()), "case {case}: crown-pure NaN");
    }
}

#[test]
fn no_sampled_point_breaks_any_bound_on_l2_balls() {
    let mut rng = Rng::new(77);
    for case in 0..6 {
        let net = random_network(&mut rng);
        let n = net.input_len();
        let c: Vec<f64> = (0..n).map(|_| rng.range(-1.0, 1.0)).collect();
        let radius = [0.01, 0.2, 1.0][case % 3];
        let domain = (case % 2 == 0).then(|| Interval::new(vec![-1.0; n], vec![1.0; n]));
        let set = InputSet::l2_ball(&c, radius, domain.as_ref()).unwrap();
        let spec = random_spec(&mut rng, net.output_len(), 3);
        check_case(&net, &set, &spec, &mut rng, &format!("l2 case {case}"));
    }
}

/// A network with every activation on a dense stack, each on its own layer, over wide boxes
/// (intervals spanning the curvature of every function).
#[test]
fn every_activation_is_relaxed_soundly_on_wide_boxes() {
    let mut rng = Rng::new(5);
    for &act in lipcert_core::random::ALL_ACTIVATIONS.iter() {
        let net = random_mlp(&mut rng, &[6, 8, 8, 4], Some(act), |_| 1.5, 0.5);
        for radius in [0.1, 1.0, 4.0] {
            let lo = vec![-radius; 6];
            let hi = vec![radius; 6];
            let spec = random_spec(&mut rng, 4, 4);
            check_case(&net, &InputSet::Box(Interval::new(lo, hi)), &spec, &mut rng, &format!("{act:?} r {radius}"));
        }
    }
}

/// Without nonlinearities CROWN is exact: its bound equals the minimum over the box corners.
#[test]
fn crown_is_exact_on_linear_networks() {
    let mut rng = Rng::new(9);
    let net = random_mlp(&mut rng, &[4, 6, 5, 3], None, |_| 1.0, 1.0);
    let lo: Vec<f64> = (0..4).map(|_| rng.range(-1.0, 0.0)).collect();
    let hi: Vec<f64> = lo.iter().map(|l| l + rng.uniform()).collect();
    let spec = random_spec(&mut rng, 3, 5);
    let got =
        bound(&net, &InputSet::Box(Interval::new(lo.clone(), hi.clone())), &spec, Method::Crown, &Options::default())
            .unwrap();
    let corners: Vec<f64> =
        (0..16).flat_map(|m| (0..4).map(move |i| if m >> i & 1 == 1 { 1.0 } else { 0.0 })).collect();
    let x: Vec<f64> = corners.chunks(4).flat_map(|t| (0..4).map(|i| lo[i] + t[i] * (hi[i] - lo[i]))).collect();
    let y = net.forward(&x, 16).unwrap();
    for (r, c) in spec.iter().enumerate() {
        let min = y.chunks(3).map(|yp| c.iter().zip(yp).map(|(a, b)| a * b).sum::<f64>()).fold(f64::INFINITY, f64::min);
        assert!(got.spec_lower[r] <= min && min - got.spec_lower[r] < 1e-12, "row {r}: {} vs {min}", got.spec_lower[r]);
    }
}

/// On ReLU networks CROWN is never looser than IBP, and alpha-CROWN never looser than CROWN.
#[test]
fn tightness_order_on_relu_networks() {
    let mut rng = Rng::new(31);
    for case in 0..6 {
        let net = random_mlp(
            &mut rng,
            &[10, 20, 20, 20, 5],
            Some(Activation::Relu),
            |fan_in| 1.0 / (fan_in as f64).sqrt(),
            0.1,
        );
        let c: Vec<f64> = (0..10).map(|_| rng.range(-1.0, 1.0)).collect();
        let eps = 0.05 * (1 + case) as f64;
        let set = InputSet::linf_ball(&c, eps, None).unwrap();
        let spec = random_spec(&mut rng, 5, 4);
        let opts = Options::default();
        let ibp_b = bound(&net, &set, &spec, Method::Ibp, &opts).unwrap();
        let crown = bound(&net, &set, &spec, Method::Crown, &opts).unwrap();
        let alpha = bound(&net, &set, &spec, Method::AlphaCrown, &opts).unwrap();
        let pure = bound(&net, &set, &spec, Method::CrownPure, &opts).unwrap();
        for r in 0..spec.len() {
            assert!(crown.spec_lower[r] >= ibp_b.spec_lower[r] - 1e-9, "case {case} row {r}: crown below ibp");
            assert!(alpha.spec_lower[r] >= crown.spec_lower[r], "case {case} row {r}: alpha below crown");
            assert!(crown.spec_lower[r].is_finite() && pure.spec_lower[r].is_finite());
        }
        // The IBP bounds of every value come from the same definitions as `ibp`.
        let direct = ibp(&net, set.bounding_box()).unwrap();
        assert_eq!(direct[net.output].lo, ibp_b.lower);
    }
}

/// Every relaxation line pair encloses its activation on [l, u]: checked on 2001 points per
/// interval (ends included) for every activation and intervals from tiny to huge, on both
/// sides of 0 and across it; alpha-CROWN's slope range keeps the lower line valid too.
#[test]
fn relaxation_lines_enclose_every_activation() {
    use lipcert_bounds::relax::relax_activation;
    let mut rng = Rng::new(8);
    let mut acts = lipcert_core::random::ALL_ACTIVATIONS.to_vec();
    acts.extend([
        Activation::LeakyRelu { alpha: -0.5 },
        Activation::LeakyRelu { alpha: 2.0 },
        Activation::Elu { alpha: 2.5 },
    ]);
    for act in acts {
        for case in 0..300 {
            let scale = [1e-6, 1e-2, 0.5, 3.0, 30.0][case % 5];
            let (a, b) = (rng.range(-2.0, 2.0) * scale, rng.range(-2.0, 2.0) * scale);
            let (l, u) = (a.min(b), a.max(b));
            let r = relax_activation(act, l, u);
            let lines = r.lines;
            let slopes: Vec<f64> = match r.alpha_range {
                Some((lo, hi)) => vec![lines.ls, lo, hi, 0.5 * (lo + hi)],
                None => vec![lines.ls],
            };
            for i in 0..=2000 {
                let x = if i == 2000 { u } else { l + (u - l) * i as f64 / 2000.0 };
                let f = act.apply(x);
                assert!(lines.us * x + lines.ub >= f, "{act:?} [{l}, {u}] at {x}: upper line below f = {f}");
                for &s in &slopes {
                    let lb = if r.alpha_range.is_some() { 0.0 } else { lines.lb };
                    assert!(s * x + lb <= f, "{act:?} [{l}, {u}] at {x}: lower line (slope {s}) above f = {f}");
                }
            }
        }
    }
}
