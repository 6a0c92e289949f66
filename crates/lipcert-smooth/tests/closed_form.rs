//! Soundness on classifiers whose smoothed version is known in closed form.
//!
//! The base classifier is linear with logits (u, -u, -100), u = w.x + b: classes 0 and 1 compete
//! and class 2 never wins. Under N(0, sigma^2 I) noise the smoothed probability of class 0 is
//! Phi(u / (sigma |w|)), and by the reflection symmetry u -> -u every smoothed classifier built
//! from a symmetric monotone map (hardmax, softmax, sparsemax, any temperature) has its decision
//! boundary on the hyperplane u = 0. So the true robustness radius of every smoothed classifier
//! here is |u| / |w|, and no certificate may exceed it (except with probability alpha).

use lipcert_core::{Dense, Network, NetworkBuilder, Op};
use lipcert_smooth::stats::{clopper_pearson_lower, norm_cdf, norm_ppf};
use lipcert_smooth::{certify_dataset, predict_dataset, Method, SmoothOptions};

const D: usize = 10;

fn linear(w: &[f64], b: f64) -> Network {
    let mut weight = w.to_vec();
    weight.extend(w.iter().map(|v| -v));
    weight.extend(std::iter::repeat_n(0.0, D));
    let mut nb = NetworkBuilder::new("x", vec![1, D]);
    let dense = Dense { weight, bias: vec![b, -b, -100.0], out_features: 3, in_features: D };
    let y = nb.push("fc", Op::Dense(dense), &[0]).unwrap();
    nb.finish(y, "y").unwrap()
}

fn setup() -> (Network, Vec<f64>, f64) {
    let w: Vec<f64> = (0..D).map(|i| ((i * 7 + 3) % 11) as f64 / 11.0 - 0.4).collect();
    let norm = w.iter().map(|v| v * v).sum::<f64>().sqrt();
    (linear(&w, 0.3), w, norm)
}

/// An input with w.x + b = u (f32-exact values keep the f32 base classifier's u exact enough).
fn point(w: &[f64], norm: f64, u: f64) -> Vec<f64> {
    w.iter().map(|v| ((u - 0.3) * v / (norm * norm)) as f32 as f64).collect()
}

fn true_radius(w: &[f64], x: &[f64]) -> f64 {
    let norm = w.iter().map(|v| v * v).sum::<f64>().sqrt();
    (w.iter().zip(x).map(|(a, b)| a * b).sum::<f64>() + 0.3).abs() / norm
}

fn opts(method: Method, n0: usize, n: usize, alpha: f64, seed: u64) -> SmoothOptions {
    SmoothOptions {
        method,
        sigma: 0.5,
        n0,
        n,
        alpha,
        batch: 512,
        seed,
        lipschitz: Some(2f64.sqrt() * 1.0), // set per test
        lvm_t_count: 8,
        ..SmoothOptions::default()
    }
}

#[test]
fn every_method_stays_below_the_true_radius_and_cohen_is_tight() {
    let (net, w, norm) = setup();
    let sigma = 0.5;
    // True radii from 0.02 to 1.5 (pA from 0.52 to 0.9987), both classes.
    let us: Vec<f64> = [0.02, 0.1, 0.3, 0.6, 1.0, 1.5].iter().flat_map(|r| [r * norm, -r * norm]).collect();
    let x: Vec<f64> = us.iter().flat_map(|&u| point(&w, norm, u)).collect();
    let labels: Vec<usize> = us.iter().map(|&u| if u > 0.0 { 0 } else { 1 }).collect();
    // The network's l2 Lipschitz constant: |W|_2 = sqrt(2) |w| (rows w, -w, 0).
    let lipschitz = 2f64.sqrt() * norm;
    for method in [Method::Cohen, Method::TwoSided, Method::Cpm, Method::Lipschitz, Method::Lvm] {
        let mut o = opts(method, 100, 20_000, 0.001, 5);
        o.lipschitz = Some(lipschitz);
        let rep = certify_dataset(&net, &x, &labels, &o, &|_| {}).unwrap();
        for s in &rep.per_sample {
            let truth = true_radius(&w, &x[s.idx * D..(s.idx + 1) * D]);
            assert!(s.radius <= truth, "{method:?} sample {}: certified {} > true radius {truth}", s.idx, s.radius);
            if s.predict >= 0 {
                assert_eq!(s.predict as usize, labels[s.idx], "{method:?}: a certified prediction must be right here");
            }
        }
        // Well inside the certifiable range, every method certifies a good part of the radius.
        let far = rep.per_sample.iter().filter(|s| true_radius(&w, &x[s.idx * D..][..D]) > 0.5 * sigma);
        for s in far {
            let truth = true_radius(&w, &x[s.idx * D..][..D]);
            assert!(
                s.radius > 0.5 * truth.min(3.0 * sigma),
                "{method:?} sample {}: radius {} of {truth}",
                s.idx,
                s.radius
            );
        }
    }
    // Cohen with many samples is near-tight: at least the radius it certifies from a count
    // of class A four standard deviations below its mean n pA (0.003% of runs go below), and
    // that is within 0.06 of the true radius sigma Phi^-1(pA) here.
    let n = 200_000u64;
    let o = opts(Method::Cohen, 100, n as usize, 0.001, 1);
    let rep = certify_dataset(&net, &x, &labels, &o, &|_| {}).unwrap();
    for s in &rep.per_sample {
        let truth = true_radius(&w, &x[s.idx * D..][..D]);
        let pa = norm_cdf(truth / sigma);
        assert!((sigma * norm_ppf(pa) - truth).abs() < 1e-9);
        let low_count = n as f64 * pa - 4.0 * (n as f64 * pa * (1.0 - pa)).sqrt();
        let expected = sigma * norm_ppf(clopper_pearson_lower(low_count.floor() as u64, n, 0.001));
        if truth >= 0.1 {
            assert!(truth - expected < 0.06, "sample {}: the test's own slack {expected} vs {truth}", s.idx);
            assert!(s.radius >= expected, "sample {}: {} vs true {truth} (at least {expected})", s.idx, s.radius);
        }
    }
    assert!(rep.curve.windows(2).all(|p| p[0].certified >= p[1].certified));
}

/// Over many seeds, a certificate exceeds the true radius with frequency at most alpha.
#[test]
fn wrong_certificates_are_as_rare_as_alpha() {
    let (net, w, norm) = setup();
    let sigma = 0.5;
    // pA = 0.8: true radius sigma Phi^-1(0.8).
    let truth = sigma * norm_ppf(0.8);
    let x = point(&w, norm, truth * norm);
    assert!((true_radius(&w, &x) - truth).abs() < 1e-6);
    let alpha = 0.2;
    let runs = 400u64;
    let xs: Vec<f64> = (0..runs).flat_map(|_| x.iter().copied()).collect();
    let labels = vec![0usize; runs as usize];
    for method in [Method::Cohen, Method::TwoSided, Method::Cpm] {
        // Each row has its own noise stream (keyed by its index), so rows are independent runs.
        let rep = certify_dataset(&net, &xs, &labels, &opts(method, 10, 100, alpha, 11), &|_| {}).unwrap();
        let wrong = rep.per_sample.iter().filter(|s| s.radius > truth + 1e-6).count() as f64 / runs as f64;
        let slack = 3.0 * (alpha * (1.0 - alpha) / runs as f64).sqrt();
        assert!(wrong <= alpha + slack, "{method:?}: {wrong} of certificates wrong at alpha {alpha}");
        if method == Method::Cohen {
            // The test has power: one-sided Clopper-Pearson at n = 100 errs about 10% of the time here.
            assert!(wrong >= 0.03, "{method:?}: {wrong}");
        }
    }
}

#[test]
fn predict_abstains_near_the_boundary_and_answers_far_from_it() {
    let (net, w, norm) = setup();
    let x: Vec<f64> = [1e-4, 1.0, -1.0].iter().flat_map(|&u| point(&w, norm, u * norm)).collect();
    let o = SmoothOptions { n: 1000, alpha: 0.001, sigma: 0.5, ..SmoothOptions::default() };
    let rep = predict_dataset(&net, &x, Some(&[0, 0, 1]), &o, &|_| {}).unwrap();
    let p: Vec<i64> = rep.per_sample.iter().map(|r| r.predict).collect();
    assert_eq!(p, vec![-1, 0, 1]);
    assert_eq!(rep.accuracy, Some(2.0 / 3.0));
}

#[test]
fn bad_options_are_errors() {
    let (net, w, norm) = setup();
    let x = point(&w, norm, 1.0);
    let bad = [
        SmoothOptions { sigma: 0.0, ..SmoothOptions::default() },
        SmoothOptions { sigma: f64::NAN, ..SmoothOptions::default() },
        SmoothOptions { alpha: 1.0, ..SmoothOptions::default() },
        SmoothOptions { n0: 200, n: 100, ..SmoothOptions::default() },
        SmoothOptions { method: Method::Lipschitz, lipschitz: None, ..SmoothOptions::default() },
    ];
    for o in bad {
        assert!(certify_dataset(&net, &x, &[0], &o, &|_| {}).is_err());
    }
    let o = SmoothOptions { n: 100, ..SmoothOptions::default() };
    assert!(certify_dataset(&net, &x, &[3], &o, &|_| {}).is_err(), "label out of range");
    assert!(certify_dataset(&net, &x[..5], &[0], &o, &|_| {}).is_err(), "shape mismatch");
}

#[test]
fn certifying_in_shards_gives_the_results_of_one_run() {
    let (net, w, norm) = setup();
    let us = [0.05, -0.2, 0.4, 0.01, -0.6, 0.3, 0.15];
    let x: Vec<f64> = us.iter().flat_map(|&u| point(&w, norm, u * norm)).collect();
    let labels: Vec<usize> = us.iter().map(|&u| usize::from(u < 0.0)).collect();
    for method in [Method::Cohen, Method::Cpm] {
        let o = SmoothOptions { sigma: 0.5, n0: 50, n: 2000, method, ..SmoothOptions::default() };
        let whole = certify_dataset(&net, &x, &labels, &o, &|_| {}).unwrap();
        let mut sharded = vec![];
        for (start, end) in [(0, 3), (3, 4), (4, 7)] {
            let shard = SmoothOptions { first_index: start, ..o.clone() };
            let r = certify_dataset(&net, &x[start * D..end * D], &labels[start..end], &shard, &|_| {}).unwrap();
            sharded.extend(r.per_sample);
        }
        let key = |s: &lipcert_smooth::SampleResult| (s.idx, s.predict, s.radius.to_bits());
        assert_eq!(whole.per_sample.iter().map(key).collect::<Vec<_>>(), sharded.iter().map(key).collect::<Vec<_>>());
        // A shard that started at 0 again would reuse sample 0's noise: different radii.
        let restarted = certify_dataset(&net, &x[3 * D..], &labels[3..], &o, &|_| {}).unwrap();
        let radii = |r: &[lipcert_smooth::SampleResult]| r.iter().map(|s| s.radius).collect::<Vec<_>>();
        assert_ne!(radii(&restarted.per_sample), radii(&whole.per_sample[3..]));
    }
    let o = SmoothOptions { sigma: 0.5, n: 2000, first_index: 5, ..SmoothOptions::default() };
    let p = predict_dataset(&net, &x[..2 * D], None, &o, &|_| {}).unwrap();
    assert_eq!(p.per_sample.iter().map(|r| r.idx).collect::<Vec<_>>(), vec![5, 6]);
}
