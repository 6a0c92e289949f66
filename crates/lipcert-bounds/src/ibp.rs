//! Interval bound propagation: for an input box, an elementwise box around every value of the
//! network, sound in real arithmetic and kept sound under f64 rounding by outward widening.
//!
//! Linear nodes use the center/radius form: for x in [c - r, c + r], W x + b lies in
//! [W c + b - |W| r, W c + b + |W| r] (exact interval hull for one linear map). Monotone
//! nodes map endpoints; GELU and non-monotone LeakyReLU add their interior extremum.
//! Rounding: a computed sum of k products is within gamma(k) sum |a_i b_i| of the exact value,
//! so every linear node is widened by gamma(k + 2) |W| (|c| + r) (+ a tiny absolute term);
//! elementwise nodes by a few ulps.

use lipcert_core::kernels::{
    avgpool_forward, conv_forward, dense_forward, maxpool_forward, pad_scatter_index, transpose_gather_index,
};
use lipcert_core::rounding::{gamma, U};
use lipcert_core::{Activation, Conv2d, Dense, GraphError, Network, Op};
use std::sync::OnceLock;

/// Absolute slack that covers gradual underflow.
pub(crate) const TINY: f64 = 1e-300;

/// Elementwise bounds lo <= v <= hi of one value (per-sample length).
#[derive(Clone, Debug, PartialEq)]
pub struct Interval {
    pub lo: Vec<f64>,
    pub hi: Vec<f64>,
}

impl Interval {
    pub fn new(lo: Vec<f64>, hi: Vec<f64>) -> Self {
        Interval { lo, hi }
    }

    pub fn center_radius(&self) -> (Vec<f64>, Vec<f64>) {
        let c = self.lo.iter().zip(&self.hi).map(|(l, h)| 0.5 * l + 0.5 * h).collect::<Vec<_>>();
        // r >= every |x - c| on the box, rounded up.
        let r =
            self.lo.iter().zip(&self.hi).zip(&c).map(|((l, h), c)| ((h - c).max(c - l)) * (1.0 + 4.0 * U)).collect();
        (c, r)
    }

    /// Widens every bound outward by `slack[i]` plus a few ulps of its magnitude.
    pub(crate) fn widened(lo: Vec<f64>, hi: Vec<f64>, slack: &[f64]) -> Self {
        let lo = lo.iter().zip(slack).map(|(v, s)| v - s - 4.0 * U * v.abs() - TINY).collect();
        let hi = hi.iter().zip(slack).map(|(v, s)| v + s + 4.0 * U * v.abs() + TINY).collect();
        Interval { lo, hi }
    }
}

/// |W| with bias |b| (`with_bias`) or 0.
pub(crate) fn abs_dense(d: &Dense, with_bias: bool) -> Dense {
    let bias = if with_bias { d.bias.iter().map(|b| b.abs()).collect() } else { vec![0.0; d.out_features] };
    Dense { weight: d.weight.iter().map(|w| w.abs()).collect(), bias, ..d.clone() }
}

pub(crate) fn abs_conv(c: &Conv2d, with_bias: bool) -> Conv2d {
    let bias = if with_bias { c.bias.iter().map(|b| b.abs()).collect() } else { vec![0.0; c.out_channels] };
    Conv2d { weight: c.weight.iter().map(|w| w.abs()).collect(), bias, ..c.clone() }
}

/// Linear node in center/radius form; `apply` maps a vector (with its bias), `apply_abs` with
/// |W| and no bias, `apply_mag` with |W| and bias |b|; `k` is the number of terms per output.
pub(crate) fn linear(
    x: &Interval,
    apply: impl Fn(&[f64]) -> Vec<f64>,
    apply_abs: impl Fn(&[f64]) -> Vec<f64>,
    apply_mag: impl Fn(&[f64]) -> Vec<f64>,
    k: usize,
) -> Interval {
    let (c, r) = x.center_radius();
    let yc = apply(&c);
    let yr = apply_abs(&r);
    // |W| (|c| + r) + |b| bounds every term's magnitude in both computations.
    let mag: Vec<f64> = c.iter().zip(&r).map(|(c, r)| c.abs() + r).collect();
    let scale = apply_mag(&mag);
    let g = gamma(k + 2);
    let slack: Vec<f64> = yr.iter().zip(&scale).map(|(yr, m)| yr * 2.0 * g + 2.0 * g * m).collect();
    let lo = yc.iter().zip(&yr).map(|(c, r)| c - r).collect();
    let hi = yc.iter().zip(&yr).map(|(c, r)| c + r).collect();
    Interval::widened(lo, hi, &slack)
}

/// The GELU minimum: x* ~ -0.7518 where Phi(x) + x phi(x) = 0, and GELU(x*) (rounded down).
fn gelu_min(tanh_approx: bool) -> (f64, f64) {
    static CACHE: [OnceLock<(f64, f64)>; 2] = [OnceLock::new(), OnceLock::new()];
    *CACHE[tanh_approx as usize].get_or_init(|| {
        let g = Activation::Gelu { tanh_approx };
        // Bisection on the derivative over [-1.5, -0.3], where it changes sign once.
        let (mut a, mut b) = (-1.5f64, -0.3f64);
        for _ in 0..200 {
            let m = 0.5 * (a + b);
            if g.derivative(m) < 0.0 {
                a = m;
            } else {
                b = m;
            }
        }
        let x = 0.5 * (a + b);
        // Near the minimum the function is flat: a tiny margin covers the bracket and rounding.
        (x, g.apply(x) - 1e-12)
    })
}

/// Certified range of activation `a` over [l, h].
pub(crate) fn activation_range(a: Activation, l: f64, h: f64) -> (f64, f64) {
    let monotone = match a {
        Activation::LeakyRelu { alpha } | Activation::Elu { alpha } => alpha >= 0.0,
        Activation::Gelu { .. } => false,
        _ => true,
    };
    let (fl, fh) = (a.apply(l), a.apply(h));
    let (lo, hi) = if monotone {
        (fl, fh)
    } else if let Activation::Gelu { tanh_approx } = a {
        // GELU decreases left of x* and increases right of it.
        let (xm, vm) = gelu_min(tanh_approx);
        (if l <= xm && xm <= h { vm } else { fl.min(fh) }, fl.max(fh))
    } else {
        // LeakyReLU/ELU with a negative slope: V-shaped with its minimum (0) at 0.
        (if l <= 0.0 && 0.0 <= h { 0.0f64.min(fl).min(fh) } else { fl.min(fh) }, fl.max(fh))
    };
    // libm's exp/tanh/erfc are within a few ulps: widen by a few ulps of each value.
    let slack = 4.0 * U * lo.abs().max(hi.abs());
    (lo - slack - 4.0 * U * lo.abs() - TINY, hi + slack + 4.0 * U * hi.abs() + TINY)
}

fn activation(a: Activation, x: &Interval) -> Interval {
    let (lo, hi) = x.lo.iter().zip(&x.hi).map(|(&l, &h)| activation_range(a, l, h)).unzip();
    Interval { lo, hi }
}

/// IBP through the whole network for one input box; returns the bounds of every value
/// (index = value id; value 0 is the input box itself).
pub fn ibp(net: &Network, input: Interval) -> Result<Vec<Interval>, GraphError> {
    check_box(net, &input)?;
    let mut values = vec![input];
    for k in 0..net.nodes.len() {
        let out = ibp_node(net, k, &values);
        values.push(out);
    }
    Ok(values)
}

/// Checks an input box against the network's input length.
pub(crate) fn check_box(net: &Network, input: &Interval) -> Result<(), GraphError> {
    let len = net.input_len();
    if input.lo.len() != len || input.hi.len() != len {
        return Err(GraphError::Data(format!(
            "the input box has {} / {} bounds, expected {len}",
            input.lo.len(),
            input.hi.len()
        )));
    }
    if let Some(i) =
        (0..len).find(|&i| !input.lo[i].is_finite() || !input.hi[i].is_finite() || input.lo[i] > input.hi[i])
    {
        return Err(GraphError::Data(format!(
            "input bound {i} is empty or not finite: [{}, {}]",
            input.lo[i], input.hi[i]
        )));
    }
    Ok(())
}

/// One IBP step: the bounds of node `k`'s output from the bounds `values` of every earlier
/// value (index = value id).
pub fn ibp_node(net: &Network, k: usize, values: &[Interval]) -> Interval {
    let node = &net.nodes[k];
    let x = &values[node.inputs[0]];
    let in_shape = &net.shapes[node.inputs[0]];
    let out_shape = &net.shapes[k + 1];
    {
        match &node.op {
            Op::Dense(d) => {
                let rows = x.lo.len() / d.in_features;
                let (abs, mag) = (abs_dense(d, false), abs_dense(d, true));
                linear(
                    x,
                    |v| dense_forward(d, v, rows),
                    |v| dense_forward(&abs, v, rows),
                    |v| dense_forward(&mag, v, rows),
                    d.in_features + 1,
                )
            }
            Op::Conv2d(c) => {
                let (images, hw, ohw) = (in_shape[0], [in_shape[2], in_shape[3]], [out_shape[2], out_shape[3]]);
                let (abs, mag) = (abs_conv(c, false), abs_conv(c, true));
                let k = c.in_channels / c.groups * c.kernel[0] * c.kernel[1] + 1;
                linear(
                    x,
                    |v| conv_forward(c, v, images, hw, ohw),
                    |v| conv_forward(&abs, v, images, hw, ohw),
                    |v| conv_forward(&mag, v, images, hw, ohw),
                    k,
                )
            }
            Op::Affine { scale, shift } => {
                let (mut lo, mut hi) = (Vec::with_capacity(scale.len()), Vec::with_capacity(scale.len()));
                for i in 0..scale.len() {
                    let (a, b) = (x.lo[i] * scale[i] + shift[i], x.hi[i] * scale[i] + shift[i]);
                    lo.push(a.min(b));
                    hi.push(a.max(b));
                }
                let slack: Vec<f64> = (0..scale.len())
                    .map(|i| 4.0 * U * (x.lo[i].abs().max(x.hi[i].abs()) * scale[i].abs() + shift[i].abs()))
                    .collect();
                Interval::widened(lo, hi, &slack)
            }
            Op::Activation(a) => activation(*a, x),
            Op::Add => {
                let y = &values[node.inputs[1]];
                let lo: Vec<f64> = x.lo.iter().zip(&y.lo).map(|(a, b)| a + b).collect();
                let hi: Vec<f64> = x.hi.iter().zip(&y.hi).map(|(a, b)| a + b).collect();
                let slack: Vec<f64> =
                    lo.iter().zip(&hi).map(|(l, h): (&f64, &f64)| 2.0 * U * l.abs().max(h.abs())).collect();
                Interval::widened(lo, hi, &slack)
            }
            Op::AvgPool(p) => {
                // Nonnegative weights: the average is monotone in every input.
                let planes = in_shape[0] * in_shape[1];
                let (hw, ohw) = ([in_shape[2], in_shape[3]], [out_shape[2], out_shape[3]]);
                let lo = avgpool_forward(p, &x.lo, planes, hw, ohw);
                let hi = avgpool_forward(p, &x.hi, planes, hw, ohw);
                // Rounding is relative to the average of the magnitudes, not of the values.
                let mag: Vec<f64> = x.lo.iter().zip(&x.hi).map(|(l, h)| l.abs().max(h.abs())).collect();
                let k = p.kernel[0] * p.kernel[1] + 2;
                let slack: Vec<f64> =
                    avgpool_forward(p, &mag, planes, hw, ohw).iter().map(|m| 2.0 * gamma(k) * m).collect();
                Interval::widened(lo, hi, &slack)
            }
            Op::MaxPool(p) => {
                // Max is monotone and exact in floating point.
                let planes = in_shape[0] * in_shape[1];
                let (hw, ohw) = ([in_shape[2], in_shape[3]], [out_shape[2], out_shape[3]]);
                Interval::new(maxpool_forward(p, &x.lo, planes, hw, ohw), maxpool_forward(p, &x.hi, planes, hw, ohw))
            }
            Op::Pad { pads, value } => {
                let index = pad_scatter_index(in_shape, pads);
                let n = net.value_len(k + 1);
                let (mut lo, mut hi) = (vec![*value; n], vec![*value; n]);
                for (j, &i) in index.iter().enumerate() {
                    lo[i] = x.lo[j];
                    hi[i] = x.hi[j];
                }
                Interval::new(lo, hi)
            }
            Op::Reshape { .. } => x.clone(),
            Op::Transpose { perm } => {
                let index = transpose_gather_index(in_shape, perm);
                Interval::new(index.iter().map(|&i| x.lo[i]).collect(), index.iter().map(|&i| x.hi[i]).collect())
            }
        }
    }
}

/// Certified lower bounds on f_label(x) - f_j(x) for every class j over the input box
/// (+inf for j = label), through `ibp_spec` (the last dense layer's row differences).
pub fn ibp_margins(net: &Network, input: Interval, label: usize) -> Result<Vec<f64>, GraphError> {
    let m = net.output_len();
    if label >= m {
        return Err(GraphError::Data(format!("label {label} is not below the {m} outputs")));
    }
    let values = ibp(net, input)?;
    let spec: Vec<Vec<f64>> = (0..m)
        .map(|j| {
            let mut c = vec![0.0; m];
            c[label] += 1.0;
            c[j] -= 1.0;
            c
        })
        .collect();
    let mut margins = ibp_spec(net, &values, &spec);
    margins[label] = f64::INFINITY;
    Ok(margins)
}

/// IBP bounds of specification rows: when the output node is dense, c is merged into it and
/// the merged row is bounded over its input box (tighter than combining output bounds).
pub fn ibp_spec(net: &Network, values: &[Interval], spec: &[Vec<f64>]) -> Vec<f64> {
    let last = net.output.checked_sub(1).map(|k| &net.nodes[k]);
    match last.map(|n| (&n.op, n.inputs[0])) {
        Some((Op::Dense(d), z)) if d.out_features == net.output_len() => {
            let (c, r) = values[z].center_radius();
            let n = d.in_features;
            spec.iter()
                .map(|row| {
                    let (mut w, mut wmag) = (vec![0.0; n], vec![0.0; n]);
                    let (mut centre, mut mag) = (0.0, 0.0);
                    for (o, &co) in row.iter().enumerate().filter(|(_, co)| **co != 0.0) {
                        let wr = &d.weight[o * n..(o + 1) * n];
                        for i in 0..n {
                            w[i] += co * wr[i];
                            wmag[i] += (co * wr[i]).abs();
                        }
                        centre += co * d.bias[o];
                        mag += (co * d.bias[o]).abs();
                    }
                    let mut spread = 0.0;
                    for i in 0..n {
                        centre += w[i] * c[i];
                        spread += w[i].abs() * r[i];
                        mag += wmag[i] * (c[i].abs() + r[i]);
                    }
                    // Merging, the dot products and the sums all round.
                    centre - spread - 2.0 * gamma(n + row.len() + 3) * mag - TINY
                })
                .collect()
        }
        _ => {
            let out = &values[net.output];
            spec.iter()
                .map(|row| {
                    let (mut v, mut mag) = (0.0, 0.0);
                    for (j, &cj) in row.iter().enumerate() {
                        let t = if cj >= 0.0 { cj * out.lo[j] } else { cj * out.hi[j] };
                        v += t;
                        mag += t.abs();
                    }
                    v - gamma(row.len() + 2) * mag - TINY
                })
                .collect()
        }
    }
}
