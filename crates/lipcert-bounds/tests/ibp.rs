//! IBP soundness: on random networks that use every node type and random input boxes, no
//! sampled point (10^4 per case, corners and random points) leaves the bounds of any value.

use lipcert_bounds::{ibp, Interval};
use lipcert_core::random::random_network;
use lipcert_core::Rng;

#[test]
fn no_sampled_point_leaves_the_bounds() {
    let mut rng = Rng::new(17);
    for case in 0..12 {
        let net = random_network(&mut rng);
        let n = net.input_len();
        // Small and large boxes.
        let radius = if case % 2 == 0 { 0.01 } else { 1.0 };
        let c: Vec<f64> = (0..n).map(|_| rng.range(-1.0, 1.0)).collect();
        let r: Vec<f64> = (0..n).map(|_| radius * rng.uniform()).collect();
        let lo: Vec<f64> = c.iter().zip(&r).map(|(c, r)| c - r).collect();
        let hi: Vec<f64> = c.iter().zip(&r).map(|(c, r)| c + r).collect();
        let bounds = ibp(&net, Interval::new(lo.clone(), hi.clone())).unwrap();
        let samples = 10_000;
        let mut x = Vec::with_capacity(samples * n);
        for s in 0..samples {
            for i in 0..n {
                // The first samples are corners (each coordinate at an end), then uniform points.
                let t = if s < 2_000 { (rng.uniform() < 0.5) as u8 as f64 } else { rng.uniform() };
                // Clamped: lo + t (hi - lo) can round one ulp past hi.
                x.push((lo[i] + t * (hi[i] - lo[i])).clamp(lo[i], hi[i]));
            }
        }
        let trace = net.trace(&x, samples).unwrap();
        for (v, b) in bounds.iter().enumerate() {
            let len = net.value_len(v);
            for (s, row) in trace.values[v].chunks(len).enumerate() {
                for (i, &val) in row.iter().enumerate() {
                    assert!(
                        b.lo[i] <= val && val <= b.hi[i],
                        "case {case}, value {v} ({}), sample {s}, element {i}: {val} outside [{}, {}]",
                        net.value_names[v],
                        b.lo[i],
                        b.hi[i]
                    );
                }
            }
        }
    }
}

#[test]
fn a_point_box_gives_tight_bounds_around_the_forward_pass() {
    let mut rng = Rng::new(4);
    let net = random_network(&mut rng);
    let x: Vec<f64> = (0..net.input_len()).map(|_| rng.range(-1.0, 1.0)).collect();
    let bounds = ibp(&net, Interval::new(x.clone(), x.clone())).unwrap();
    let y = net.forward(&x, 1).unwrap();
    let out = &bounds[net.output];
    for (i, v) in y.iter().enumerate() {
        assert!(out.lo[i] <= *v && *v <= out.hi[i]);
        assert!(out.hi[i] - out.lo[i] <= 1e-9 * (1.0 + v.abs()), "point box widened to {}", out.hi[i] - out.lo[i]);
    }
}

#[test]
fn malformed_boxes_are_errors() {
    let net = random_network(&mut Rng::new(1));
    let n = net.input_len();
    assert!(ibp(&net, Interval::new(vec![0.0; n - 1], vec![0.0; n - 1])).is_err());
    let mut lo = vec![0.0; n];
    lo[3] = 1.0;
    assert!(ibp(&net, Interval::new(lo, vec![0.0; n])).unwrap_err().to_string().contains("bound 3"));
    assert!(ibp(&net, Interval::new(vec![f64::NAN; n], vec![0.0; n])).is_err());
}

#[test]
fn margin_bounds_hold_and_beat_subtracted_output_bounds() {
    use lipcert_bounds::ibp_margins;
    let mut rng = Rng::new(9);
    for case in 0..8 {
        let net = random_network(&mut rng);
        let n = net.input_len();
        let c: Vec<f64> = (0..n).map(|_| rng.range(-1.0, 1.0)).collect();
        let eps = 0.02;
        let (lo, hi): (Vec<f64>, Vec<f64>) = (c.iter().map(|v| v - eps).collect(), c.iter().map(|v| v + eps).collect());
        let label = case % 3;
        let margins = ibp_margins(&net, Interval::new(lo.clone(), hi.clone()), label).unwrap();
        let out = &ibp(&net, Interval::new(lo.clone(), hi.clone())).unwrap()[net.output];
        for _ in 0..3000 {
            let x: Vec<f64> = lo.iter().zip(&hi).map(|(l, h)| (l + rng.uniform() * (h - l)).clamp(*l, *h)).collect();
            let y = net.forward(&x, 1).unwrap();
            for j in 0..3 {
                if j != label {
                    assert!(
                        margins[j] <= y[label] - y[j],
                        "case {case}: margin bound {} > {}",
                        margins[j],
                        y[label] - y[j]
                    );
                }
            }
        }
        for j in (0..3).filter(|&j| j != label) {
            assert!(margins[j] >= out.lo[label] - out.hi[j] - 1e-12, "the spec bound must not be looser");
        }
    }
}
