//! Helpers shared by the verifier tests.

use lipcert_bounds::InputSet;
use lipcert_core::{Network, Rng};
use lipcert_verify::{BoxProperty, Verdict};

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
