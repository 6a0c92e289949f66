//! The verifier never gives a wrong answer: on known benchmark answers, and on small random
//! ReLU networks checked by dense sampling (a sampled violation forbids `unsat`; every `sat`
//! carries a counterexample that a fresh forward pass confirms).

use lipcert_bounds::{Atom, Interval, Unsafe};
use lipcert_core::{Network, Rng};
use lipcert_verify::{verify, BoxProperty, Verdict, VerifyOptions};
use std::time::Duration;

mod common;
use common::{grid_outputs, property_boxes, random_2d_problem, verdict_index};

fn check_sat(net: &Network, props: &[BoxProperty], v: &Verdict, what: &str) {
    if let Verdict::Sat { x, y } = v {
        let fresh = net.forward(x, 1).unwrap();
        assert_eq!(&fresh, y, "{what}: reported output differs from a fresh forward pass");
        let ok = props.iter().any(|p| {
            x.iter().zip(&p.input.lo).zip(&p.input.hi).all(|((v, l), h)| l <= v && v <= h)
                && p.unsafe_.loss(&fresh) <= 0.0
        });
        assert!(ok, "{what}: the counterexample does not violate the property");
    }
}

#[test]
fn known_benchmark_answers_are_never_contradicted() {
    let Some(bench) = lipcert_io::testing::benchmarks_dir() else {
        return;
    };
    let known = std::fs::read_to_string(bench.join("../known_answers.csv")).expect("known_answers.csv");
    // The test category and a fixed handful of ACAS Xu instances (sat and unsat) with small timeouts.
    let chosen = [
        ("acasxu", "ACASXU_run2a_1_1_batch_2000.onnx", "prop_1.vnnlib"),
        ("acasxu", "ACASXU_run2a_1_2_batch_2000.onnx", "prop_2.vnnlib"),
        ("acasxu", "ACASXU_run2a_2_1_batch_2000.onnx", "prop_2.vnnlib"),
        ("acasxu", "ACASXU_run2a_1_7_batch_2000.onnx", "prop_3.vnnlib"),
        ("acasxu", "ACASXU_run2a_1_8_batch_2000.onnx", "prop_4.vnnlib"),
        ("acasxu", "ACASXU_run2a_2_2_batch_2000.onnx", "prop_1.vnnlib"),
        ("mnistfc", "mnist-net_256x2.onnx", "prop_7_0.03.vnnlib"),
        ("mnistfc", "mnist-net_256x2.onnx", "prop_0_0.03.vnnlib"),
    ];
    let list: Vec<(String, String, String, String)> = known
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            let pick = f[0] == "test" || chosen.iter().any(|c| c.0 == f[0] && c.1 == f[1] && c.2 == f[2]);
            pick.then(|| (f[0].to_string(), f[1].to_string(), f[2].to_string(), f[3].to_string()))
        })
        .collect();
    let mut solved = 0;
    for (cat, onnx, prop, answer) in &list {
        let dir = bench.join(cat);
        let net = lipcert_io::import_file(&dir.join(onnx)).unwrap().network;
        let props = property_boxes(&dir.join(prop));
        let opts = VerifyOptions { timeout: Duration::from_secs(10), ..Default::default() };
        let (v, stats) = verify(&net, &props, &opts).unwrap();
        let what = format!("{cat}/{onnx}/{prop}");
        println!("{what}: {} (expected {answer}), {} boxes, {:.2} s", v.word(), stats.boxes, stats.time_s);
        check_sat(&net, &props, &v, &what);
        match (v.word(), answer.as_str()) {
            ("sat", "unsat") | ("unsat", "sat") => panic!("{what}: WRONG ANSWER {} (known {answer})", v.word()),
            (w, a) if w == a => solved += 1,
            _ => {}
        }
    }
    assert!(solved >= 10, "only {solved} of {} instances solved", list.len());
}

/// On 2-input random networks, a 201 x 201 grid decides the truth up to the grid's resolution:
/// a grid point in the unsafe region forbids `unsat`; `sat` must come with a valid point.
#[test]
fn random_small_networks_agree_with_dense_sampling() {
    let mut rng = Rng::new(99);
    let mut counts = [0usize; 4];
    for case in 0..30 {
        let (net, lo, hi) = random_2d_problem(&mut rng, &[8, 8, 3]);
        // Unsafe: y_0 - y_1 <= d with d around the observed range, so both answers occur.
        let ys = grid_outputs(&net, &lo, &hi);
        let margins: Vec<f64> = ys.chunks(3).map(|y| y[0] - y[1]).collect();
        let min = margins.iter().cloned().fold(f64::INFINITY, f64::min);
        let d = min + rng.range(-0.3, 0.3);
        let props = vec![BoxProperty {
            input: Interval::new(lo, hi),
            unsafe_: Unsafe { any_of: vec![vec![Atom { c: vec![1.0, -1.0, 0.0], d }]] },
        }];
        let opts = VerifyOptions { timeout: Duration::from_secs(20), ..Default::default() };
        let (v, _) = verify(&net, &props, &opts).unwrap();
        check_sat(&net, &props, &v, &format!("case {case}"));
        if min <= d {
            assert_ne!(v, Verdict::Unsat, "case {case}: a grid point violates the property (min {min} <= d {d})");
        }
        counts[verdict_index(&v)] += 1;
    }
    println!("sat {}, unsat {}, unknown {}, timeout {}", counts[0], counts[1], counts[2], counts[3]);
    assert!(counts[0] > 0 && counts[1] > 0, "both answers should occur: {counts:?}");
    assert_eq!(counts[2] + counts[3], 0, "small 2-input problems must be decided: {counts:?}");
}
