//! The MILP back end against independent answers: branch and bound on CROWN bounds, dense
//! sampling, CROWN's certified lower bounds, and known benchmark answers. Every `sat` carries
//! a point that a fresh forward pass confirms.

use lipcert_bounds::{bound, InputSet, Interval, Method, Options};
use lipcert_core::random::{random_mlp, random_network};
use lipcert_core::{Activation, Network, Op, Rng};
use lipcert_io::vnnlib::Property;
use lipcert_verify::{milp_minimize, milp_verify, verify, BoxProperty, MilpOptions, Verdict, VerifyOptions};
use std::time::{Duration, Instant};

mod common;
use common::{check_sat, dot, random_atoms, uniform_points};

fn milp_opts(secs: u64) -> MilpOptions {
    MilpOptions { deadline: Some(Instant::now() + Duration::from_secs(secs)), ..Default::default() }
}

/// MILP alone, branch and bound alone, and branch and bound with the MILP inside the search
/// agree whenever they give definite answers; a sampled violation forbids `unsat`.
#[test]
fn milp_agrees_with_branch_and_bound_on_random_networks() {
    let mut rng = Rng::new(2024);
    let cases = 60;
    let (mut both_definite, mut agree, mut milp_counts) = (0, 0, [0usize; 4]);
    let (mut milp_time, mut bab_time) = (0.0, 0.0);
    for case in 0..cases {
        let n = 2 + rng.below(3);
        let m = 2 + rng.below(2);
        let net = random_mlp(&mut rng, &[n, 8, 8, m], Some(Activation::Relu), |_| 1.0, 0.5);
        let lo: Vec<f64> = (0..n).map(|_| rng.range(-1.0, 0.0)).collect();
        let hi: Vec<f64> = lo.iter().map(|l| l + rng.range(0.1, 1.0)).collect();
        let xs = uniform_points(&mut rng, &lo, &hi, 4000);
        let ys = net.forward(&xs, 4000).unwrap();
        // One or two conjunctions of one or two random atoms; each d near the sampled minimum
        // of its atom, so that both answers occur.
        let any_of = random_atoms(&mut rng, &ys, m, 2, (-0.15, 0.1));
        let p = BoxProperty::new(lo, hi, any_of);
        let sampled_violation = ys.chunks(m).any(|y| p.unsafe_.loss(y) <= 0.0);

        let t = Instant::now();
        let milp = milp_verify(&net, &p, &milp_opts(20)).unwrap();
        milp_time += t.elapsed().as_secs_f64();
        let plain = VerifyOptions {
            timeout: Duration::from_secs(20),
            milp_max_binaries: 0,
            milp_split_max_binaries: 0,
            ..Default::default()
        };
        let t = Instant::now();
        let (bab, _) = verify(&net, std::slice::from_ref(&p), &plain).unwrap();
        bab_time += t.elapsed().as_secs_f64();
        let inside = VerifyOptions { milp_split_max_binaries: 64, ..plain.clone() };
        let (mixed, stats) = verify(&net, std::slice::from_ref(&p), &inside).unwrap();

        let what = format!("case {case} (n {n}, m {m}, {} binaries)", milp.binaries);
        for (v, who) in [(&milp.verdict, "milp"), (&bab, "bab"), (&mixed, "bab+milp")] {
            check_sat(&net, &p, v, &format!("{what} {who}"));
            if sampled_violation {
                assert_ne!(*v, Verdict::Unsat, "{what}: {who} says unsat but a sampled point violates the property");
            }
        }
        let definite = |v: &Verdict| matches!(v, Verdict::Sat { .. } | Verdict::Unsat);
        for other in [&bab, &mixed] {
            if definite(&milp.verdict) && definite(other) {
                assert_eq!(milp.verdict.word(), other.word(), "{what}: MILP and branch and bound disagree");
            }
        }
        if definite(&milp.verdict) && definite(&bab) {
            both_definite += 1;
            agree += (milp.verdict.word() == bab.word()) as usize;
        }
        if stats.milp_calls > 0 {
            assert!(stats.milp_decided <= stats.milp_calls);
        }
        milp_counts[match milp.verdict {
            Verdict::Sat { .. } => 0,
            Verdict::Unsat => 1,
            Verdict::Unknown(_) => 2,
            Verdict::Timeout => 3,
        }] += 1;
    }
    println!(
        "{cases} cases: MILP sat {}, unsat {}, unknown {}, timeout {}; both definite {both_definite}, agree \
         {agree}; MILP {milp_time:.2} s, branch and bound {bab_time:.2} s",
        milp_counts[0], milp_counts[1], milp_counts[2], milp_counts[3]
    );
    assert!(milp_counts[0] > 0 && milp_counts[1] > 0, "both answers should occur: {milp_counts:?}");
    assert!(milp_counts[2] + milp_counts[3] <= 2, "small MILPs should be decided: {milp_counts:?}");
    assert!(both_definite >= cases * 9 / 10, "only {both_definite} of {cases} cases decided by both");
}

/// Minimum of c . y over a box for random 1- and 2-input networks: the MILP minimum lies below
/// every grid value, is attained by its point (forward pass), is within the grid's resolution
/// of the best grid value, and is above CROWN's certified lower bound.
#[test]
fn milp_minimum_matches_dense_grids_and_crown() {
    let mut rng = Rng::new(7);
    let mut worst_gap = 0.0f64;
    for case in 0..16 {
        let n = 1 + case % 2;
        let m = 2 + rng.below(2);
        let net = random_mlp(&mut rng, &[n, 8, 8, m], Some(Activation::Relu), |_| 1.2, 0.5);
        let lo: Vec<f64> = (0..n).map(|_| rng.range(-1.0, 0.0)).collect();
        let hi: Vec<f64> = lo.iter().map(|l| l + rng.range(0.2, 1.5)).collect();
        let c: Vec<f64> = (0..m).map(|_| rng.range(-1.0, 1.0)).collect();
        // The grid: 20001 points on a line, or 301 x 301 in the plane.
        let steps = if n == 1 { 20000 } else { 300 };
        let mut xs = Vec::new();
        if n == 1 {
            xs.extend((0..=steps).map(|i| lo[0] + (hi[0] - lo[0]) * i as f64 / steps as f64));
        } else {
            for i in 0..=steps {
                for j in 0..=steps {
                    xs.push(lo[0] + (hi[0] - lo[0]) * i as f64 / steps as f64);
                    xs.push(lo[1] + (hi[1] - lo[1]) * j as f64 / steps as f64);
                }
            }
        }
        let count = xs.len() / n;
        let vals: Vec<f64> = net.forward(&xs, count).unwrap().chunks(m).map(|y| dot(&c, y)).collect();
        let grid_min = vals.iter().cloned().fold(f64::INFINITY, f64::min);
        // The grid's resolution: a piecewise-linear function moves at most about its largest
        // step between neighbours within one cell.
        let side = steps + 1;
        let mut step = 0.0f64;
        for k in 0..count {
            if n == 1 {
                if k + 1 < count {
                    step = step.max((vals[k + 1] - vals[k]).abs());
                }
            } else {
                let (i, j) = (k / side, k % side);
                if j + 1 < side {
                    step = step.max((vals[k + 1] - vals[k]).abs());
                }
                if i + 1 < side {
                    step = step.max((vals[k + side] - vals[k]).abs());
                }
            }
        }
        let min = milp_minimize(&net, &lo, &hi, &c, &milp_opts(20)).unwrap();
        let crown = crown_lower(&net, &lo, &hi, &c);
        let tol = 1e-6 * (1.0 + grid_min.abs());
        let what = format!("case {case} (n {n}, m {m}, {} binaries, status {})", min.binaries, min.status);
        assert!(min.optimal, "{what}: not solved to optimality");
        assert!(
            InputSet::Box(Interval::new(lo.clone(), hi.clone())).contains(&min.x),
            "{what}: minimizer outside the box"
        );
        assert!(min.lower <= grid_min + tol, "{what}: MILP lower bound {} above a grid value {grid_min}", min.lower);
        assert!(
            min.value <= grid_min + tol,
            "{what}: MILP minimizer value {} above a grid value {grid_min}",
            min.value
        );
        assert!(
            min.value >= min.lower - tol,
            "{what}: attained value {} below the MILP bound {}",
            min.value,
            min.lower
        );
        assert!(
            grid_min - min.value <= 2.0 * step + tol,
            "{what}: MILP minimum {} far below the grid's {grid_min}",
            min.value
        );
        assert!(min.value >= crown - tol, "{what}: attained value {} below CROWN's certified bound {crown}", min.value);
        assert!(min.lower >= crown - tol, "{what}: MILP bound {} below CROWN's {crown}", min.lower);
        worst_gap = worst_gap.max(grid_min - min.value);
        println!("{what}: MILP {:.6}, grid {grid_min:.6}, CROWN {crown:.6}", min.value);
    }
    println!("largest grid minus MILP minimum: {worst_gap:.3e}");
}

/// Every operator of the IR (convolutions, residual add, pad, average and max pooling,
/// transpose, reshape, dense; ReLU and LeakyReLU): the MILP minimum is attained by its point
/// (the encoding is exact), lies below every sampled value and above CROWN's bound.
#[test]
fn milp_encodes_every_piecewise_linear_operator_exactly() {
    let mut rng = Rng::new(11);
    for case in 0..4 {
        let mut net = random_network(&mut rng);
        // Only ReLU-like activations.
        for node in net.nodes.iter_mut() {
            if let Op::Activation(a) = &mut node.op {
                if !matches!(a, Activation::Relu | Activation::LeakyRelu { .. }) {
                    *a = if case % 2 == 0 { Activation::Relu } else { Activation::LeakyRelu { alpha: 0.25 } };
                }
            }
        }
        let len = net.input_len();
        let center: Vec<f64> = (0..len).map(|_| rng.range(-1.0, 1.0)).collect();
        let eps = 0.012;
        let lo: Vec<f64> = center.iter().map(|v| v - eps).collect();
        let hi: Vec<f64> = center.iter().map(|v| v + eps).collect();
        let c: Vec<f64> = (0..net.output_len()).map(|_| rng.range(-1.0, 1.0)).collect();
        let t = Instant::now();
        let min = milp_minimize(&net, &lo, &hi, &c, &milp_opts(20)).unwrap();
        let secs = t.elapsed().as_secs_f64();
        let xs = uniform_points(&mut rng, &lo, &hi, 2000);
        let sampled = net.forward(&xs, 2000).unwrap().chunks(c.len()).map(|y| dot(&c, y)).fold(f64::INFINITY, f64::min);
        let crown = crown_lower(&net, &lo, &hi, &c);
        let tol = 1e-6 * (1.0 + sampled.abs());
        let what = format!("case {case} ({} binaries, status {}, {secs:.2} s)", min.binaries, min.status);
        println!(
            "{what}: MILP {:.6} (attained minus bound {:.1e}), sampled {sampled:.6}, CROWN {crown:.6}",
            min.value,
            min.value - min.lower
        );
        assert!(min.optimal, "{what}: not solved to optimality");
        assert!(
            min.value <= sampled + tol,
            "{what}: MILP minimizer value {} above a sampled value {sampled}",
            min.value
        );
        assert!(
            (min.value - min.lower).abs() <= tol,
            "{what}: attained {} differs from the MILP optimum {}",
            min.value,
            min.lower
        );
        assert!(min.lower >= crown - tol, "{what}: MILP bound {} below CROWN's {crown}", min.lower);
    }
}

#[test]
fn milp_rejects_smooth_activations() {
    let mut rng = Rng::new(3);
    let net = random_mlp(&mut rng, &[2, 4, 2], Some(Activation::Tanh), |_| 1.0, 0.5);
    let p = BoxProperty::new(vec![0.0; 2], vec![1.0; 2], vec![vec![(vec![1.0, -1.0], 0.0)]]);
    let err = milp_verify(&net, &p, &MilpOptions::default()).unwrap_err().to_string();
    assert!(err.contains("MILP supports piecewise-linear networks only (node act0 is Tanh)"), "{err}");
    // verify() still works on such networks (the MILP is skipped).
    let (v, _) = verify(&net, &[p], &VerifyOptions { timeout: Duration::from_secs(10), ..Default::default() }).unwrap();
    assert!(matches!(v, Verdict::Sat { .. } | Verdict::Unsat), "{v:?}");
}

#[test]
fn milp_honours_the_deadline() {
    let mut rng = Rng::new(5);
    let net = random_mlp(&mut rng, &[2, 8, 8, 2], Some(Activation::Relu), |_| 1.0, 0.5);
    let p = BoxProperty::new(vec![-1.0; 2], vec![1.0; 2], vec![vec![(vec![1.0, -1.0], -100.0)]]);
    let past = MilpOptions { deadline: Some(Instant::now()), ..Default::default() };
    assert_eq!(milp_verify(&net, &p, &past).unwrap().verdict, Verdict::Timeout);
    assert_eq!(milp_verify(&net, &p, &milp_opts(10)).unwrap().verdict, Verdict::Unsat);
}

/// ACAS Xu instances with known answers, solved by the MILP alone: two `sat` ones on their
/// whole boxes, and an `unsat` one on a quarter of its box (unsat on the box implies unsat on
/// every part of it).
#[test]
fn milp_alone_agrees_with_known_acasxu_answers() {
    let Some(bench) = lipcert_io::testing::benchmarks_dir() else {
        return;
    };
    let known = std::fs::read_to_string(bench.join("../known_answers.csv")).expect("known_answers.csv");
    let cases = [("1_7", "prop_3", false), ("1_8", "prop_4", false), ("1_4", "prop_4", true)];
    for (id, prop, quarter) in cases {
        let onnx = format!("ACASXU_run2a_{id}_batch_2000.onnx");
        let answer = known
            .lines()
            .find_map(|l| {
                let f: Vec<&str> = l.split(',').collect();
                (f[0] == "acasxu" && f[1] == onnx && f[2] == format!("{prop}.vnnlib")).then(|| f[3].to_string())
            })
            .expect("a known answer");
        let dir = bench.join("acasxu");
        let net = lipcert_io::import_file(&dir.join(&onnx)).unwrap().network;
        let regions = Property::read(&dir.join(format!("{prop}.vnnlib"))).unwrap().regions();
        assert_eq!(regions.len(), 1);
        let r = regions.into_iter().next().unwrap();
        let (lo, mut hi) = (r.lo, r.hi);
        if quarter {
            // The lower halves of the two widest inputs.
            let mut dims: Vec<usize> = (0..lo.len()).collect();
            dims.sort_by(|&a, &b| (hi[b] - lo[b]).total_cmp(&(hi[a] - lo[a])));
            for &d in &dims[..2] {
                hi[d] = 0.5 * lo[d] + 0.5 * hi[d];
            }
        }
        let p = BoxProperty::new(lo, hi, r.any_of);
        let t = Instant::now();
        let out = milp_verify(&net, &p, &milp_opts(25)).unwrap();
        let what = format!("acasxu {id} {prop}{}", if quarter { " (quarter box)" } else { "" });
        println!(
            "{what}: {} (known {answer}), {} binaries, {:.2} s",
            out.verdict.word(),
            out.binaries,
            t.elapsed().as_secs_f64()
        );
        check_sat(&net, &p, &out.verdict, &what);
        assert_eq!(out.verdict.word(), answer, "{what}: {:?}", out.verdict);
    }
}

/// CROWN's certified lower bound of c . y over the box [lo, hi].
fn crown_lower(net: &Network, lo: &[f64], hi: &[f64], c: &[f64]) -> f64 {
    let set = InputSet::Box(Interval::new(lo.to_vec(), hi.to_vec()));
    bound(net, &set, &[c.to_vec()], Method::Crown, &Options::default()).unwrap().spec_lower[0]
}
