//! Differential interval propagation: bounds on f(x) - g(x) for two networks with the same
//! graph and different parameters (an original and its pruned copy), over one input set.
//!
//! Bounding f and g separately, or running CROWN on the network x -> f(x) - g(x), loses the
//! fact that both branches see the same input and mostly the same weights: neither gives 0 for
//! g = f. Here the difference itself is propagated (the idea of ReluDiff, Paulsen et al. 2020):
//! - linear node: W x - W' x' = W (x - x') + (W - W') x' + (b - b'), with x' bounded by g's own
//!   value bounds;
//! - activation: sigma(z) - sigma(z') = s (z - z') for some secant slope s, and every secant
//!   slope lies in the range of sigma' over the hull of both pre-activation intervals;
//! - max pooling: max z - max z' lies between the smallest and the largest z_i - z'_i;
//! - every value's difference is also intersected with [lo_f - hi_g, hi_f - lo_g].
//!
//! For g = f every difference is exactly 0 (up to rounding slack). Rounding is handled as in IBP:
//! every linear step is widened by gamma(k) times the magnitudes of its terms.

use crate::crown::{value_bounds, Method, Options};
use crate::ibp::{abs_conv, abs_dense, linear, Interval, TINY};
use crate::input_set::InputSet;
use lipcert_core::kernels::{
    avgpool_forward, conv_forward, dense_forward, maxpool_forward, pad_scatter_index, transpose_gather_index,
};
use lipcert_core::rounding::{gamma, U};
use lipcert_core::{Activation, Conv2d, Dense, GraphError, Network, Op};

/// Elementwise bounds on f(x) - g(x) for every value (index = value id) over `set`; the
/// pre-activation bounds of f and g come from `method`.
pub fn difference_bounds(
    f: &Network,
    g: &Network,
    set: &InputSet,
    method: Method,
    opts: &Options,
) -> Result<Vec<Interval>, GraphError> {
    same_graph(f, g)?;
    let vf = value_bounds(f, set, method, opts)?;
    let vg = value_bounds(g, set, method, opts)?;
    let n0 = f.input_len();
    let mut d = vec![Interval::new(vec![0.0; n0], vec![0.0; n0])];
    for k in 0..f.nodes.len() {
        let (nf, ng) = (&f.nodes[k], &g.nodes[k]);
        let i0 = nf.inputs[0];
        let (x, xg) = (&d[i0], &vg[i0]);
        let in_shape = &f.shapes[i0];
        let out_shape = &f.shapes[k + 1];
        let mut y = match (&nf.op, &ng.op) {
            (Op::Dense(a), Op::Dense(b)) => {
                let rows = x.lo.len() / a.in_features;
                let delta = Dense {
                    weight: a.weight.iter().zip(&b.weight).map(|(p, q)| p - q).collect(),
                    bias: a.bias.iter().zip(&b.bias).map(|(p, q)| p - q).collect(),
                    ..a.clone()
                };
                let unbiased = Dense { bias: vec![0.0; a.out_features], ..a.clone() };
                let abs = abs_dense(a, false);
                let along = linear(
                    x,
                    |v| dense_forward(&unbiased, v, rows),
                    |v| dense_forward(&abs, v, rows),
                    |v| dense_forward(&abs, v, rows),
                    a.in_features + 1,
                );
                let (dabs, dmag) = (abs_dense(&delta, false), abs_dense(&delta, true));
                // k + 2: the computed W - W' carries one more rounding than the exact difference.
                let across = linear(
                    xg,
                    |v| dense_forward(&delta, v, rows),
                    |v| dense_forward(&dabs, v, rows),
                    |v| dense_forward(&dmag, v, rows),
                    a.in_features + 2,
                );
                sum(&along, &across)
            }
            (Op::Conv2d(a), Op::Conv2d(b)) => {
                let (images, hw, ohw) = (in_shape[0], [in_shape[2], in_shape[3]], [out_shape[2], out_shape[3]]);
                let unbiased = Conv2d { bias: vec![0.0; a.out_channels], ..a.clone() };
                let delta = Conv2d {
                    weight: a.weight.iter().zip(&b.weight).map(|(p, q)| p - q).collect(),
                    bias: a.bias.iter().zip(&b.bias).map(|(p, q)| p - q).collect(),
                    ..a.clone()
                };
                let taps = a.in_channels / a.groups * a.kernel[0] * a.kernel[1];
                let abs = abs_conv(a, false);
                let along = linear(
                    x,
                    |v| conv_forward(&unbiased, v, images, hw, ohw),
                    |v| conv_forward(&abs, v, images, hw, ohw),
                    |v| conv_forward(&abs, v, images, hw, ohw),
                    taps + 1,
                );
                let (dabs, dmag) = (abs_conv(&delta, false), abs_conv(&delta, true));
                let across = linear(
                    xg,
                    |v| conv_forward(&delta, v, images, hw, ohw),
                    |v| conv_forward(&dabs, v, images, hw, ohw),
                    |v| conv_forward(&dmag, v, images, hw, ohw),
                    taps + 2,
                );
                sum(&along, &across)
            }
            (Op::Affine { scale: s, shift: t }, Op::Affine { scale: s2, shift: t2 }) => {
                let (mut lo, mut hi, mut slack) = (vec![], vec![], vec![]);
                for i in 0..s.len() {
                    let ds = s[i] - s2[i];
                    let dt = t[i] - t2[i];
                    let (a1, a2) = (s[i] * x.lo[i], s[i] * x.hi[i]);
                    let (b1, b2) = (ds * xg.lo[i], ds * xg.hi[i]);
                    lo.push(a1.min(a2) + b1.min(b2) + dt);
                    hi.push(a1.max(a2) + b1.max(b2) + dt);
                    let m = a1.abs().max(a2.abs()) + b1.abs().max(b2.abs()) + dt.abs();
                    // The computed ds and dt carry one rounding each, the sums two more.
                    slack.push(8.0 * U * (m + ds.abs() * xg.lo[i].abs().max(xg.hi[i].abs()) + dt.abs()));
                }
                Interval::widened(lo, hi, &slack)
            }
            (Op::Activation(a), Op::Activation(b)) if a == b => {
                let (zf, zg) = (&vf[i0], &vg[i0]);
                let (mut lo, mut hi) = (Vec::with_capacity(x.lo.len()), Vec::with_capacity(x.lo.len()));
                for i in 0..x.lo.len() {
                    let (smin, smax) = slope_range(*a, zf.lo[i].min(zg.lo[i]), zf.hi[i].max(zg.hi[i]));
                    let p = [smin * x.lo[i], smin * x.hi[i], smax * x.lo[i], smax * x.hi[i]];
                    lo.push(p.iter().fold(f64::INFINITY, |m, v| m.min(*v)));
                    hi.push(p.iter().fold(f64::NEG_INFINITY, |m, v| m.max(*v)));
                }
                Interval::widened(lo, hi, &vec![0.0; x.lo.len()])
            }
            (Op::Add, Op::Add) => sum(x, &d[nf.inputs[1]]),
            (Op::AvgPool(p), Op::AvgPool(_)) => {
                let planes = in_shape[0] * in_shape[1];
                let (hw, ohw) = ([in_shape[2], in_shape[3]], [out_shape[2], out_shape[3]]);
                let mag: Vec<f64> = x.lo.iter().zip(&x.hi).map(|(l, h)| l.abs().max(h.abs())).collect();
                let k = p.kernel[0] * p.kernel[1] + 2;
                let slack: Vec<f64> =
                    avgpool_forward(p, &mag, planes, hw, ohw).iter().map(|m| 2.0 * gamma(k) * m).collect();
                Interval::widened(
                    avgpool_forward(p, &x.lo, planes, hw, ohw),
                    avgpool_forward(p, &x.hi, planes, hw, ohw),
                    &slack,
                )
            }
            (Op::MaxPool(p), Op::MaxPool(_)) => {
                let planes = in_shape[0] * in_shape[1];
                let (hw, ohw) = ([in_shape[2], in_shape[3]], [out_shape[2], out_shape[3]]);
                let neg: Vec<f64> = x.lo.iter().map(|v| -v).collect();
                let lo = maxpool_forward(p, &neg, planes, hw, ohw).iter().map(|v| -v).collect();
                Interval::new(lo, maxpool_forward(p, &x.hi, planes, hw, ohw))
            }
            (Op::Pad { pads, value }, Op::Pad { value: v2, .. }) if value == v2 => {
                let index = pad_scatter_index(in_shape, pads);
                let n = f.value_len(k + 1);
                let (mut lo, mut hi) = (vec![0.0; n], vec![0.0; n]);
                for (j, &i) in index.iter().enumerate() {
                    lo[i] = x.lo[j];
                    hi[i] = x.hi[j];
                }
                Interval::new(lo, hi)
            }
            (Op::Reshape { .. }, Op::Reshape { .. }) => x.clone(),
            (Op::Transpose { perm }, Op::Transpose { .. }) => {
                let index = transpose_gather_index(in_shape, perm);
                Interval::new(index.iter().map(|&i| x.lo[i]).collect(), index.iter().map(|&i| x.hi[i]).collect())
            }
            // Every operator is listed (a new one must get its own rule above): here the two
            // models disagree on the operator or on an attribute the rules above fix.
            (
                Op::Dense(_)
                | Op::Conv2d(_)
                | Op::Affine { .. }
                | Op::Activation(_)
                | Op::Add
                | Op::AvgPool(_)
                | Op::MaxPool(_)
                | Op::Pad { .. }
                | Op::Reshape { .. }
                | Op::Transpose { .. },
                _,
            ) => {
                return Err(GraphError::Invalid(format!(
                    "node '{}': the two models differ in this node's fixed attributes ({} vs {})",
                    nf.name,
                    nf.op.kind(),
                    ng.op.kind()
                )))
            }
        };
        // The difference of the two value enclosures bounds it too.
        let (a, b) = (&vf[k + 1], &vg[k + 1]);
        for i in 0..y.lo.len() {
            let lo = (a.lo[i] - b.hi[i]) * if a.lo[i] - b.hi[i] < 0.0 { 1.0 + 4.0 * U } else { 1.0 - 4.0 * U } - TINY;
            let hi = (a.hi[i] - b.lo[i]) * if a.hi[i] - b.lo[i] > 0.0 { 1.0 + 4.0 * U } else { 1.0 - 4.0 * U } + TINY;
            y.lo[i] = y.lo[i].max(lo);
            y.hi[i] = y.hi[i].min(hi);
        }
        d.push(y);
    }
    Ok(d)
}

/// Checks that `f` and `g` are one graph (nodes, operator kinds, wiring, shapes) that may differ
/// in parameters: the precondition of every comparison of a network with its pruned copy.
pub fn same_graph(f: &Network, g: &Network) -> Result<(), GraphError> {
    if f.shapes != g.shapes || f.nodes.len() != g.nodes.len() || f.output != g.output {
        return Err(GraphError::Invalid(
            "the two models do not have the same graph (same nodes, shapes and wiring expected)".into(),
        ));
    }
    if let Some((a, b)) = f.nodes.iter().zip(&g.nodes).find(|(a, b)| a.op.kind() != b.op.kind() || a.inputs != b.inputs)
    {
        return Err(GraphError::Invalid(format!(
            "node '{}' ({}) differs in kind or wiring from node '{}' ({})",
            a.name,
            a.op.kind(),
            b.name,
            b.op.kind()
        )));
    }
    Ok(())
}

fn sum(a: &Interval, b: &Interval) -> Interval {
    let lo: Vec<f64> = a.lo.iter().zip(&b.lo).map(|(x, y)| x + y).collect();
    let hi: Vec<f64> = a.hi.iter().zip(&b.hi).map(|(x, y)| x + y).collect();
    let slack: Vec<f64> = lo.iter().zip(&hi).map(|(l, h): (&f64, &f64)| 2.0 * U * l.abs().max(h.abs())).collect();
    Interval::widened(lo, hi, &slack)
}

/// An interval [smin, smax] holding every secant slope (sigma(z) - sigma(z')) / (z - z') for
/// z, z' in [l, h] (the range of sigma' there, by the mean value theorem), widened for libm.
pub fn slope_range(a: Activation, l: f64, h: f64) -> (f64, f64) {
    let widen = |lo: f64, hi: f64| (lo - 1e-12 * lo.abs() - TINY, hi + 1e-12 * hi.abs() + TINY);
    match a {
        Activation::Relu => {
            if h <= 0.0 {
                (0.0, 0.0)
            } else if l >= 0.0 {
                (1.0, 1.0)
            } else {
                (0.0, 1.0)
            }
        }
        Activation::LeakyRelu { alpha } => {
            if h <= 0.0 {
                (alpha, alpha)
            } else if l >= 0.0 {
                (1.0, 1.0)
            } else {
                (alpha.min(1.0), alpha.max(1.0))
            }
        }
        Activation::Elu { alpha } => {
            // sigma' = alpha e^x on the negative side (monotone in x), 1 on the positive side.
            let mut s = vec![];
            if l < 0.0 {
                s.push(alpha * l.exp());
                s.push(alpha * h.min(0.0).exp());
            }
            if h >= 0.0 {
                s.push(1.0);
            }
            let lo = s.iter().fold(f64::INFINITY, |m, v| m.min(*v));
            let hi = s.iter().fold(f64::NEG_INFINITY, |m, v| m.max(*v));
            widen(lo, hi)
        }
        // sigma' is even, unimodal with its peak at 0.
        Activation::Sigmoid | Activation::Tanh => {
            let peak = a.derivative(0.0f64.clamp(l, h));
            widen(a.derivative(l).min(a.derivative(h)), peak)
        }
        // GELU' ranges over [-0.1290, 1.1289] on the whole line (minimum at -sqrt 2, maximum at
        // sqrt 2); rounded outward. Not tight on narrow intervals, always sound.
        Activation::Gelu { .. } => (-0.13, 1.13),
    }
}
