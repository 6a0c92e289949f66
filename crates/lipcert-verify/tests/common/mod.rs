//! Helpers shared by the verifier tests.

// Each test binary compiles this module and uses a subset of it.
#![allow(dead_code)]

use lipcert_bounds::InputSet;
use lipcert_core::{Network, Rng};
use lipcert_io::vnnlib::Property;
use lipcert_verify::{BoxProperty, Verdict};
use std::path::{Path, PathBuf};

/// A network of a VNN-COMP 2021 category and the category's directory, or None (with the
/// reason printed) where ../shared is absent.
pub fn benchmark_net(category: &str, onnx: &str) -> Option<(Network, PathBuf)> {
    let dir = lipcert_io::testing::benchmarks_dir()?.join(category);
    let net = lipcert_io::import_file(&dir.join(onnx)).unwrap().network;
    Some((net, dir))
}

/// A VNN-LIB file's cases as the verifier's box properties.
pub fn property_boxes(path: &Path) -> Vec<BoxProperty> {
    let p = Property::read(path).unwrap();
    p.regions().into_iter().map(|r| BoxProperty::new(r.lo, r.hi, r.any_of)).collect()
}

/// A `sat` answer must come with a point of the box whose fresh forward pass is unsafe.
pub fn check_sat(net: &Network, p: &BoxProperty, v: &Verdict, what: &str) {
    if let Verdict::Sat { x, y } = v {
        assert!(InputSet::Box(p.input.clone()).contains(x), "{what}: counterexample outside the box");
        let fresh = net.forward(x, 1).unwrap();
        assert_eq!(&fresh, y, "{what}: reported output differs from a fresh forward pass");
        assert!(p.unsafe_.loss(&fresh) <= 0.0, "{what}: the counterexample does not violate the property");
    }
}

/// `n` points drawn uniformly from the box [lo, hi], concatenated.
pub fn uniform_points(rng: &mut Rng, lo: &[f64], hi: &[f64], n: usize) -> Vec<f64> {
    (0..n).flat_map(|_| lo.iter().zip(hi).map(|(l, h)| rng.range(*l, *h)).collect::<Vec<_>>()).collect()
}

pub fn dot(c: &[f64], y: &[f64]) -> f64 {
    c.iter().zip(y).map(|(a, b)| a * b).sum()
}

/// The outputs (concatenated) at the 201 x 201 grid points of a 2-input box, row by row.
pub fn grid_outputs(net: &Network, lo: &[f64], hi: &[f64]) -> Vec<f64> {
    let mut xs = Vec::with_capacity(2 * 201 * 201);
    for i in 0..=200 {
        for j in 0..=200 {
            xs.push(lo[0] + (hi[0] - lo[0]) * i as f64 / 200.0);
            xs.push(lo[1] + (hi[1] - lo[1]) * j as f64 / 200.0);
        }
    }
    net.forward(&xs, 201 * 201).unwrap()
}

/// 1 to `max_conj` conjunctions of 1 or 2 random atoms c . y <= d over `m` outputs, each d at
/// min + (max - min) * U(d_range) of the atom's values on the sampled outputs `ys`, so that
/// both answers occur.
pub fn random_atoms(
    rng: &mut Rng,
    ys: &[f64],
    m: usize,
    max_conj: usize,
    d_range: (f64, f64),
) -> Vec<Vec<(Vec<f64>, f64)>> {
    (0..1 + rng.below(max_conj))
        .map(|_| {
            (0..1 + rng.below(2))
                .map(|_| {
                    let c: Vec<f64> = (0..m).map(|_| rng.range(-1.0, 1.0)).collect();
                    let vals: Vec<f64> = ys.chunks(m).map(|y| dot(&c, y)).collect();
                    let (min, max) =
                        vals.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(*v), b.max(*v)));
                    (c, min + (max - min) * rng.range(d_range.0, d_range.1))
                })
                .collect()
        })
        .collect()
}

/// A random 2-input ReLU network with the given layer widths after the input, and a random box
/// of side 0.1 to 1 per input inside [-1, 1].
pub fn random_2d_problem(rng: &mut Rng, widths: &[usize]) -> (Network, Vec<f64>, Vec<f64>) {
    let layers: Vec<usize> = std::iter::once(2).chain(widths.iter().copied()).collect();
    let net = lipcert_core::random::random_mlp(rng, &layers, Some(lipcert_core::Activation::Relu), |_| 1.0, 0.5);
    let lo = vec![rng.range(-1.0, 0.0), rng.range(-1.0, 0.0)];
    let hi = vec![lo[0] + rng.range(0.1, 1.0), lo[1] + rng.range(0.1, 1.0)];
    (net, lo, hi)
}

/// Index of a verdict in [sat, unsat, unknown, timeout] counters.
pub fn verdict_index(v: &Verdict) -> usize {
    match v {
        Verdict::Sat { .. } => 0,
        Verdict::Unsat => 1,
        Verdict::Unknown(_) => 2,
        Verdict::Timeout => 3,
    }
}
