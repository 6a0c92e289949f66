//! Differential bounds on f(x) - g(x): sound on random networks that use every node type, with
//! g a pruned or perturbed copy of f (no sampled point leaves the bounds of any value), exactly
//! zero-width (up to rounding slack) when g = f, and never looser than the difference of the
//! separate enclosures.

use lipcert_bounds::diff::slope_range;
use lipcert_bounds::{difference_bounds, value_bounds, InputSet, Interval, Method, Options};
use lipcert_core::random::{random_network, ALL_ACTIVATIONS};
use lipcert_core::{Network, Op, Rng};

/// A copy of `net` with about `p` of its dense/conv weights zeroed and the rest nudged.
fn perturbed(net: &Network, rng: &mut Rng, p: f64, nudge: f64) -> Network {
    let mut g = net.clone();
    for node in &mut g.nodes {
        let w = match &mut node.op {
            Op::Dense(d) => &mut d.weight,
            Op::Conv2d(c) => &mut c.weight,
            Op::Affine { scale, .. } => scale,
            _ => continue,
        };
        for v in w.iter_mut() {
            if rng.uniform() < p {
                *v = 0.0;
            } else {
                *v *= 1.0 + nudge * rng.range(-1.0, 1.0);
            }
        }
    }
    g
}

fn random_box(rng: &mut Rng, n: usize, radius: f64) -> (Vec<f64>, Vec<f64>) {
    let c: Vec<f64> = (0..n).map(|_| rng.range(-1.0, 1.0)).collect();
    let r: Vec<f64> = (0..n).map(|_| radius * rng.uniform()).collect();
    (c.iter().zip(&r).map(|(c, r)| c - r).collect(), c.iter().zip(&r).map(|(c, r)| c + r).collect())
}

#[test]
fn no_sampled_difference_leaves_the_bounds() {
    let mut rng = Rng::new(5);
    for case in 0..10 {
        let f = random_network(&mut rng);
        let g = perturbed(&f, &mut rng, 0.3, if case % 2 == 0 { 0.0 } else { 0.2 });
        let n = f.input_len();
        let (lo, hi) = random_box(&mut rng, n, if case % 3 == 0 { 0.02 } else { 0.5 });
        let set = InputSet::Box(Interval::new(lo.clone(), hi.clone()));
        let method = if case % 2 == 0 { Method::Ibp } else { Method::Crown };
        let d = difference_bounds(&f, &g, &set, method, &Options::default()).unwrap();
        let samples = 3000;
        let x: Vec<f64> = (0..samples * n)
            .map(|i| {
                let t = if i / n < 500 { (rng.uniform() < 0.5) as u8 as f64 } else { rng.uniform() };
                (lo[i % n] + t * (hi[i % n] - lo[i % n])).clamp(lo[i % n], hi[i % n])
            })
            .collect();
        let (tf, tg) = (f.trace(&x, samples).unwrap(), g.trace(&x, samples).unwrap());
        for (v, b) in d.iter().enumerate() {
            let len = f.value_len(v);
            for (s, (rf, rg)) in tf.values[v].chunks(len).zip(tg.values[v].chunks(len)).enumerate() {
                for i in 0..len {
                    let diff = rf[i] - rg[i];
                    // The sampled values carry the forward passes' own rounding (a few ulps).
                    let tol = 1e-13 * (rf[i].abs() + rg[i].abs());
                    assert!(
                        b.lo[i] - tol <= diff && diff <= b.hi[i] + tol,
                        "case {case}, value {v} ({}), sample {s}, element {i}: {diff} outside [{}, {}]",
                        f.value_names[v],
                        b.lo[i],
                        b.hi[i]
                    );
                }
            }
        }
    }
}

#[test]
fn identical_networks_have_zero_difference_and_beat_separate_enclosures() {
    let mut rng = Rng::new(8);
    for _ in 0..5 {
        let f = random_network(&mut rng);
        let (lo, hi) = random_box(&mut rng, f.input_len(), 0.5);
        let set = InputSet::Box(Interval::new(lo, hi));
        let d = difference_bounds(&f, &f, &set, Method::Crown, &Options::default()).unwrap();
        let out = &d[f.output];
        let width = out.lo.iter().zip(&out.hi).map(|(l, h)| h - l).fold(0.0f64, f64::max);
        assert!(width < 1e-9, "g = f: output difference width {width}");
        // A small perturbation: the differential bound is tighter than [lo_f - hi_g, hi_f - lo_g].
        let g = perturbed(&f, &mut rng, 0.05, 0.0);
        let d = difference_bounds(&f, &g, &set, Method::Crown, &Options::default()).unwrap();
        let vf = value_bounds(&f, &set, Method::Crown, &Options::default()).unwrap();
        let vg = value_bounds(&g, &set, Method::Crown, &Options::default()).unwrap();
        let (a, b, o) = (&vf[f.output], &vg[f.output], &d[f.output]);
        for i in 0..o.lo.len() {
            assert!(o.hi[i] - o.lo[i] <= (a.hi[i] - b.lo[i]) - (a.lo[i] - b.hi[i]) + 1e-12);
        }
    }
}

#[test]
fn different_graphs_are_refused() {
    let mut rng = Rng::new(1);
    let f = random_network(&mut rng);
    let g = random_network(&mut rng);
    let set = InputSet::Box(Interval::new(vec![0.0; f.input_len()], vec![0.1; f.input_len()]));
    assert!(difference_bounds(&f, &g, &set, Method::Ibp, &Options::default()).is_err());
}

#[test]
fn slope_ranges_hold_every_secant() {
    let mut rng = Rng::new(2);
    for a in ALL_ACTIVATIONS {
        for _ in 0..2000 {
            let (p, q) = (rng.range(-6.0, 6.0), rng.range(-6.0, 6.0));
            let (l, h) = (p.min(q), p.max(q));
            let (smin, smax) = slope_range(a, l, h);
            let (z, z2) = (rng.range(l, h), rng.range(l, h));
            if (z - z2).abs() < 1e-6 {
                continue;
            }
            let s = (a.apply(z) - a.apply(z2)) / (z - z2);
            // The secant is computed in floating point: allow its rounding.
            let tol = 1e-9 / (z - z2).abs();
            assert!(smin - tol <= s && s <= smax + tol, "{a:?} on [{l}, {h}]: secant {s} outside [{smin}, {smax}]");
        }
    }
}
