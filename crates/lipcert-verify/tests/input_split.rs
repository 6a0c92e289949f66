//! The input-splitting branch and bound on properties with several atoms: conjunctions (one
//! refuted atom refutes the conjunction) and disjunctions (every conjunction must be refuted),
//! with alpha-CROWN and its warm starts from the first sub-box on. On 2-input random networks a
//! 201 x 201 grid decides the truth up to its resolution: a grid point in the unsafe region
//! forbids `unsat`, and `sat` must come with a point that a fresh forward pass confirms.

use lipcert_bounds::{Atom, Interval, Unsafe};
use lipcert_core::{Network, Rng};
use lipcert_verify::{verify, BoxProperty, Verdict, VerifyOptions};
use std::time::Duration;

mod common;
use common::{check_sat, grid_outputs, random_2d_problem, verdict_index};

fn grid(net: &Network, lo: &[f64], hi: &[f64]) -> Vec<Vec<f64>> {
    grid_outputs(net, lo, hi).chunks(net.output_len()).map(|y| y.to_vec()).collect()
}

fn check(net: &Network, props: &[BoxProperty], ys: &[Vec<f64>], what: &str, counts: &mut [usize; 4]) {
    for opts in [
        VerifyOptions { timeout: Duration::from_secs(20), ..Default::default() },
        VerifyOptions {
            timeout: Duration::from_secs(20),
            sub_alpha_after: Duration::ZERO,
            batch: 3,
            ..Default::default()
        },
    ] {
        let (v, _) = verify(net, props, &opts).unwrap();
        check_sat(net, &props[0], &v, what);
        let violated = ys.iter().any(|y| props[0].unsafe_.loss(y) <= 0.0);
        if violated {
            assert_ne!(v, Verdict::Unsat, "{what}: a grid point violates the property");
        }
        counts[verdict_index(&v)] += 1;
    }
}

fn row(k: usize, i: usize, j: usize) -> Vec<f64> {
    let mut c = vec![0.0; k];
    c[i] = 1.0;
    c[j] = -1.0;
    c
}

#[test]
fn conjunctions_and_disjunctions_agree_with_dense_sampling() {
    let mut rng = Rng::new(7);
    let mut counts = [0usize; 4];
    for case in 0..24 {
        let (net, lo, hi) = random_2d_problem(&mut rng, &[10, 10, 4]);
        let ys = grid(&net, &lo, &hi);
        // Thresholds near the observed minima of y_j - y_0, so both answers occur.
        let min = |j: usize| ys.iter().map(|y| y[j] - y[0]).fold(f64::INFINITY, f64::min);
        let d: Vec<f64> = (1..4).map(|j| min(j) + rng.range(-0.3, 0.3)).collect();
        let atoms: Vec<Atom> = (1..4).map(|j| Atom { c: row(4, j, 0), d: d[j - 1] }).collect();
        let any_of = if case % 2 == 0 {
            // y_0 is (nearly) the largest: one conjunction of three atoms.
            vec![atoms.clone()]
        } else {
            // Some y_j is (nearly) below y_0: three conjunctions of one atom, one shared twice.
            vec![vec![atoms[0].clone()], vec![atoms[1].clone(), atoms[0].clone()], vec![atoms[2].clone()]]
        };
        let props = vec![BoxProperty { input: Interval::new(lo, hi), unsafe_: Unsafe { any_of } }];
        check(&net, &props, &ys, &format!("case {case}"), &mut counts);
    }
    println!("sat {}, unsat {}, unknown {}, timeout {}", counts[0], counts[1], counts[2], counts[3]);
    assert!(counts[0] > 0 && counts[1] > 0, "both answers should occur: {counts:?}");
    assert_eq!(counts[2] + counts[3], 0, "small 2-input problems must be decided: {counts:?}");
}
