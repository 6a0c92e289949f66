//! ReLU-splitting branch and bound (`relu_bab`) and the split bounds under it
//! (`lipcert_bounds::bound_with_splits`): the bounds hold on sampled points of each subdomain,
//! splits never loosen them, infeasible splits are detected, and branch and bound agrees with
//! the MILP back end and with sampling on random networks. Every `sat` is re-checked here.

use lipcert_bounds::{bound_with_splits, InputSet, Interval, Options, Parent, Split, SplitBounds, SplitOptions, Warm};
use lipcert_core::random::random_mlp;
use lipcert_core::{Activation, Network, Rng};
use lipcert_verify::{milp_verify, relu_bab, verify, BoxProperty, MilpOptions, ReluBabOptions, Verdict, VerifyOptions};
use std::time::{Duration, Instant};

mod common;
use common::{benchmark_net, check_sat, dot, property_boxes, random_atoms, uniform_points};

/// Values feeding ReLU nodes.
fn relu_inputs(net: &Network) -> Vec<usize> {
    net.nodes
        .iter()
        .filter(|n| matches!(n.op, lipcert_core::Op::Activation(Activation::Relu)))
        .map(|n| n.inputs[0])
        .collect()
}

/// A random box property: 1 to 3 conjunctions of 1 or 2 atoms, each d near the sampled range
/// of its atom (so both answers occur). Returns the property and the sampled points' outputs.
fn random_property(rng: &mut Rng, net: &Network, n: usize, m: usize) -> (BoxProperty, Vec<f64>, Vec<f64>) {
    let lo: Vec<f64> = (0..n).map(|_| rng.range(-1.0, 0.0)).collect();
    let hi: Vec<f64> = lo.iter().map(|l| l + rng.range(0.2, 1.0)).collect();
    let xs = uniform_points(rng, &lo, &hi, 3000);
    let ys = net.forward(&xs, 3000).unwrap();
    let any_of = random_atoms(rng, &ys, m, 3, (-0.2, 0.08));
    (BoxProperty::new(lo, hi, any_of), xs, ys)
}

/// ReLU branch and bound against the MILP back end (exact) and against sampling: never
/// `unsat` where a sampled point violates the property, and the same answer as the MILP
/// whenever both are definite. Disjunctions of conjunctions exercise the closing rule.
#[test]
fn relu_bab_agrees_with_milp_and_sampling() {
    let mut rng = Rng::new(77);
    let (mut agree, mut counts) = (0, [0usize; 3]);
    let cases = 40;
    for case in 0..cases {
        let n = 3 + rng.below(4);
        let m = 2 + rng.below(2);
        let widths: Vec<usize> = if case % 2 == 0 { vec![n, 10, 10, m] } else { vec![n, 8, 8, 8, m] };
        let net = random_mlp(&mut rng, &widths, Some(Activation::Relu), |_| 1.0, 0.5);
        let (p, _, ys) = random_property(&mut rng, &net, n, m);
        let violated = ys.chunks(m).any(|y| p.unsafe_.loss(y) <= 0.0);
        // Every third case also exercises filtered smart branching; every fifth the clamps alone.
        let opts = ReluBabOptions {
            deadline: Instant::now() + Duration::from_secs(10),
            branch_candidates: if case % 3 == 0 { 3 } else { 1 },
            beta: case % 5 != 0,
            ..Default::default()
        };
        let (v, stats) = relu_bab(&net, &p, &opts).unwrap();
        let what = format!("case {case}");
        check_sat(&net, &p, &v, &what);
        assert!(!(violated && v == Verdict::Unsat), "{what}: unsat but sampling found a violation");
        let mo = MilpOptions { deadline: Some(Instant::now() + Duration::from_secs(10)), ..Default::default() };
        let exact = milp_verify(&net, &p, &mo).unwrap().verdict;
        check_sat(&net, &p, &exact, &what);
        match (v.word(), exact.word()) {
            ("sat", "unsat") | ("unsat", "sat") => {
                panic!("{what}: relu_bab says {}, the MILP {} ({stats:?})", v.word(), exact.word())
            }
            (a, b) if a == b => agree += 1,
            _ => {}
        }
        if !matches!(v, Verdict::Sat { .. } | Verdict::Unsat) {
            println!("{what}: {v:?} ({stats:?}), the MILP: {}", exact.word());
        }
        counts[match v.word() {
            "sat" => 0,
            "unsat" => 1,
            _ => 2,
        }] += 1;
    }
    println!(
        "relu_bab: {} sat, {} unsat, {} undecided; agrees with the MILP on {agree}",
        counts[0], counts[1], counts[2]
    );
    assert_eq!(counts[2], 0, "every small case should be decided in time");
    assert_eq!(agree, cases);
    assert!(counts[0] >= 5 && counts[1] >= 5, "both answers should occur: {counts:?}");
}

/// Random split sets on random networks: the bounds with splits hold on every sampled point
/// that satisfies the splits (spec rows and the clamped pre-activation intervals), they are
/// never looser than the bounds without splits, and splitting a neuron against its sign over
/// the whole box is infeasible.
#[test]
fn split_bounds_hold_tighten_and_detect_infeasibility() {
    let mut rng = Rng::new(5);
    let (mut checked_points, mut subdomains, mut infeasible, mut tighter) = (0usize, 0usize, 0usize, 0usize);
    let mut raw_looser = 0usize;
    for case in 0..30 {
        let n = 2 + rng.below(4);
        let m = 2;
        let net = random_mlp(&mut rng, &[n, 12, 12, m], Some(Activation::Relu), |_| 1.0, 0.5);
        let lo: Vec<f64> = (0..n).map(|_| rng.range(-1.0, 0.0)).collect();
        let hi: Vec<f64> = lo.iter().map(|l| l + rng.range(0.3, 1.5)).collect();
        let set = InputSet::Box(Interval::new(lo.clone(), hi.clone()));
        let spec: Vec<Vec<f64>> = (0..3).map(|_| (0..m).map(|_| rng.range(-1.0, 1.0)).collect()).collect();
        for (beta, iterations) in [(false, 0), (true, 8)] {
            let opts = SplitOptions {
                crown: Options { alpha_iterations: iterations, ..Options::default() },
                beta,
                ..SplitOptions::default()
            };
            let root = bound_with_splits(&net, &set, &spec, &[], None, None, &opts).unwrap().unwrap();
            let pre = &root.pre_activation;
            let root_parent = Parent { pre_activation: pre, splits: &[] };
            let mut unstable = Vec::new();
            let mut stable = Vec::new();
            for v in relu_inputs(&net) {
                let iv = pre[v].as_ref().unwrap();
                for j in 0..iv.lo.len() {
                    if iv.lo[j] < 0.0 && iv.hi[j] > 0.0 {
                        unstable.push((v, j));
                    } else if iv.lo[j] > 0.0 {
                        stable.push(Split { value: v, index: j, active: false });
                    } else if iv.hi[j] < 0.0 {
                        stable.push(Split { value: v, index: j, active: true });
                    }
                }
            }
            // Against the sign over the whole box: infeasible (alone and with other splits).
            for s in stable.iter().take(3) {
                let mut splits = vec![*s];
                if let Some(&(v, j)) = unstable.first() {
                    splits.insert(0, Split { value: v, index: j, active: true });
                }
                let r = bound_with_splits(&net, &set, &spec, &splits, Some(root_parent), None, &opts).unwrap();
                assert!(r.is_none(), "case {case}: a split against a stable sign is not detected");
                infeasible += 1;
            }
            if unstable.is_empty() {
                continue;
            }
            let xs = uniform_points(&mut rng, &lo, &hi, 2000);
            let trace = net.trace(&xs, 2000).unwrap();
            for _ in 0..6 {
                let k = 1 + rng.below(3.min(unstable.len()));
                let mut splits: Vec<Split> = Vec::new();
                for _ in 0..k {
                    let (v, j) = unstable[rng.below(unstable.len())];
                    if !splits.iter().any(|s| s.value == v && s.index == j) {
                        splits.push(Split { value: v, index: j, active: rng.below(2) == 0 });
                    }
                }
                // Without the parent's bounds (counted), then with them (asserted below).
                if let Some(raw) =
                    bound_with_splits(&net, &set, &spec, &splits, Some(root_parent), None, &opts).unwrap()
                {
                    raw_looser += raw.spec_lower.iter().zip(&root.spec_lower).filter(|(s, u)| s < u).count();
                }
                let warm = Warm { beta: Vec::new(), ..root.warm.clone() };
                let Some(b): Option<SplitBounds> =
                    bound_with_splits(&net, &set, &spec, &splits, Some(root_parent), Some(&warm), &opts).unwrap()
                else {
                    // Only allowed when no sampled point satisfies the splits.
                    let any = (0..2000).any(|i| sat_splits(&net, &trace.values, i, &splits));
                    assert!(!any, "case {case}: feasible splits {splits:?} reported infeasible");
                    continue;
                };
                subdomains += 1;
                for (r, (s, u)) in b.spec_lower.iter().zip(&root.spec_lower).enumerate() {
                    assert!(s >= u, "case {case} row {r}: split bound {s} looser than the unsplit {u}");
                    tighter += (s > u) as usize;
                }
                for i in (0..2000).filter(|&i| sat_splits(&net, &trace.values, i, &splits)) {
                    checked_points += 1;
                    let y = &trace.values[net.output][i * m..(i + 1) * m];
                    for (r, c) in spec.iter().enumerate() {
                        assert!(
                            dot(c, y) >= b.spec_lower[r] - 1e-9,
                            "case {case}: c.y = {} below the split bound {}",
                            dot(c, y),
                            b.spec_lower[r]
                        );
                    }
                    for v in relu_inputs(&net) {
                        let iv = b.pre_activation[v].as_ref().unwrap();
                        let len = iv.lo.len();
                        for j in 0..len {
                            let z = trace.values[v][i * len + j];
                            assert!(
                                iv.lo[j] - 1e-9 <= z && z <= iv.hi[j] + 1e-9,
                                "case {case}: value {v}[{j}] outside"
                            );
                        }
                    }
                }
            }
        }
    }
    println!(
        "{subdomains} subdomains, {checked_points} points checked, {infeasible} infeasible, {tighter} rows tighter; \
         without the parent's bounds {raw_looser} rows came out looser"
    );
    assert!(subdomains > 100 && checked_points > 10_000 && infeasible > 10 && tighter > 50);
}

fn sat_splits(net: &Network, values: &[Vec<f64>], i: usize, splits: &[Split]) -> bool {
    splits.iter().all(|s| {
        let len = net.value_len(s.value);
        let z = values[s.value][i * len + s.index];
        if s.active {
            z >= 0.0
        } else {
            z <= 0.0
        }
    })
}

/// mnist-net_256x2 instances that input splitting cannot touch (784 inputs), decided through
/// `verify` (ReLU branch and bound first): unsat at eps 0.03 and sat at eps 0.05.
#[test]
fn mnist_instances_through_relu_bab() {
    let Some((net, dir)) = benchmark_net("mnistfc", "mnist-net_256x2.onnx") else {
        return;
    };
    for (prop, answer) in
        [("prop_13_0.03.vnnlib", "unsat"), ("prop_9_0.03.vnnlib", "unsat"), ("prop_0_0.05.vnnlib", "sat")]
    {
        let props = property_boxes(&dir.join(prop));
        let opts = VerifyOptions { timeout: Duration::from_secs(20), ..Default::default() };
        let (v, stats) = verify(&net, &props, &opts).unwrap();
        println!("{prop}: {} in {:.2} s, {} ReLU subdomains", v.word(), stats.time_s, stats.relu_domains);
        check_sat(&net, &props[0], &v, prop);
        assert_eq!(v.word(), answer, "{prop}");
        assert!(stats.relu_domains > 0, "{prop}: ReLU branch and bound was not used");
    }
}

/// `deadline_without_milp`: where the root leaves more unstable neurons than a MILP may take
/// (none allowed here), the search runs on to the later deadline; where a MILP can follow (any
/// number allowed), it stops at `deadline` and leaves the rest to it.
#[test]
fn the_search_keeps_the_time_no_milp_can_use() {
    let Some((net, dir)) = benchmark_net("mnistfc", "mnist-net_256x6.onnx") else {
        return;
    };
    let props = property_boxes(&dir.join("prop_1_0.03.vnnlib"));
    for (limit, want) in [(0, 3.0), (usize::MAX, 1.5)] {
        let now = Instant::now();
        let opts = ReluBabOptions {
            deadline: now + Duration::from_millis(1500),
            deadline_without_milp: Some(now + Duration::from_secs(3)),
            milp_max_binaries: limit,
            ..ReluBabOptions::default()
        };
        let (v, stats) = relu_bab(&net, &props[0], &opts).unwrap();
        let t = now.elapsed().as_secs_f64();
        println!("limit {limit}: {} after {t:.2} s, {} subdomains", v.word(), stats.domains);
        assert_eq!(v, Verdict::Timeout, "mnist-net_256x6 prop_1_0.03 is open after 3 s");
        assert!(t >= want && t < want + 0.5, "limit {limit}: stopped at {t:.2} s, expected {want} s");
    }
}
