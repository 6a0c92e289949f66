//! Lipschitz constants of whole networks: a certified upper bound composed over the graph
//! (per-node constants, products along paths, sums at residual adds), a lower bound from the
//! largest Jacobian norm found by a seeded search, and the architecture-based estimate of
//! paper 002 (Prop. 5), which is an estimate and reported as one.

use crate::conv::{conv_norm, ConvOperator, Padding};
use crate::dense::{self, Method, Options};
use faer::MatRef;
use lipcert_core::kernels::{avgpool_divisors, for_each_window};
use lipcert_core::rounding::{down, gamma, up};
use lipcert_core::{Activation, Conv2d, Dense, Network, Op, Pool2d, Rng};

/// The norm on inputs and outputs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Norm {
    L2,
    Inf,
}

impl Norm {
    pub fn name(self) -> &'static str {
        match self {
            Norm::L2 => "2",
            Norm::Inf => "inf",
        }
    }
}

/// Lipschitz constant of one node's operator (upper certified; lower when known).
#[derive(Clone, Debug)]
pub struct LayerBound {
    pub name: String,
    pub op: &'static str,
    pub upper: f64,
    /// A certified lower bound on the operator's own constant, when lipcert computes one.
    pub lower: Option<f64>,
}

/// The network's Lipschitz analysis for one norm.
#[derive(Clone, Debug)]
pub struct NetworkLipschitz {
    pub norm: Norm,
    pub layers: Vec<LayerBound>,
    /// Certified upper bound on the global constant (graph composition of the layer bounds).
    pub upper: f64,
    /// Lower bound: the largest Jacobian norm found (see `jacobian_lower`).
    pub lower: f64,
    /// Upper bound on the constant of every value (index = value id) as a function of the input.
    pub value_upper: Vec<f64>,
}

/// Largest |sigma'| of an activation: exact values, rounded up.
pub fn activation_lipschitz(a: Activation) -> f64 {
    match a {
        Activation::Relu | Activation::Tanh => 1.0,
        Activation::LeakyRelu { alpha } | Activation::Elu { alpha } => alpha.abs().max(1.0),
        Activation::Sigmoid => 0.25,
        // GELU'(x) = Phi(x) + x phi(x) peaks where phi(x)(2 - x^2) = 0, at x = sqrt 2.
        Activation::Gelu { tanh_approx: false } => up(Activation::Gelu { tanh_approx: false }.derivative(2f64.sqrt())),
        // The tanh approximation: maximize on a fine grid, then refine; the derivative varies by
        // less than 1e-9 between grid points near the peak (checked in the tests).
        Activation::Gelu { tanh_approx: true } => {
            let g = Activation::Gelu { tanh_approx: true };
            let mut best = (0.0f64, 0.0f64);
            for i in 0..=40_000 {
                let x = i as f64 * 1e-4;
                let d = g.derivative(x);
                if d > best.1 {
                    best = (x, d);
                }
            }
            up(best.1 + 1e-9)
        }
    }
}

/// Induced-norm bracket (upper, certified lower if any) of a dense layer's weight matrix.
pub fn dense_bound(d: &Dense, norm: Norm) -> (f64, Option<f64>) {
    match norm {
        Norm::L2 => {
            // Row-major [out, in] is the column-major view of W^T: same norm.
            let view = MatRef::from_column_major_slice(&d.weight, d.in_features, d.out_features);
            // Dense layers are cheap next to the network: ask for a 1e-10 bracket, so that the
            // product bound is the product of exact norms to ~1e-9.
            let b = dense::spectral_norm(view, Method::Auto, Options { iters: None, tol: Some(1e-10), seed: 0 });
            (b.upper, Some(b.lower))
        }
        Norm::Inf => {
            // Induced l_inf norm: the largest absolute row sum (exact, rounded up).
            let rows = d.weight.chunks_exact(d.in_features.max(1));
            let s = rows.map(|r| r.iter().map(|v| v.abs()).sum::<f64>()).fold(0.0, f64::max);
            (up(s * (1.0 + gamma(d.in_features + 1))), Some(down(s * (1.0 - gamma(d.in_features + 1)))))
        }
    }
}

/// The convolution as an operator: dilation and groups are expanded into a dense kernel
/// (zeros between taps, zeros between groups), which is the same linear map.
fn conv_operator(c: &Conv2d, h: usize, w: usize) -> ConvOperator {
    let kh = c.dilation[0] * (c.kernel[0] - 1) + 1;
    let kw = c.dilation[1] * (c.kernel[1] - 1) + 1;
    let (cig, cog) = (c.in_channels / c.groups, c.out_channels / c.groups);
    let mut kernel = vec![0.0; c.out_channels * c.in_channels * kh * kw];
    for o in 0..c.out_channels {
        let g = o / cog;
        for ci in 0..cig {
            let cin = g * cig + ci;
            for a in 0..c.kernel[0] {
                for b in 0..c.kernel[1] {
                    let v = c.weight[((o * cig + ci) * c.kernel[0] + a) * c.kernel[1] + b];
                    kernel[((o * c.in_channels + cin) * kh + a * c.dilation[0]) * kw + b * c.dilation[1]] = v;
                }
            }
        }
    }
    ConvOperator {
        kernel,
        c_out: c.out_channels,
        c_in: c.in_channels,
        kh,
        kw,
        h,
        w,
        stride: c.stride,
        padding: Padding::Zeros(c.pads),
    }
}

/// Induced-norm bracket (upper, certified lower if any) of a convolution on inputs of `in_shape`.
pub fn conv_bound(c: &Conv2d, in_shape: &[usize], norm: Norm) -> (f64, Option<f64>) {
    let (h, w) = (in_shape[2], in_shape[3]);
    let op = conv_operator(c, h, w);
    match norm {
        Norm::L2 => {
            // Pads of at least the kernel size are outside the embedding argument: bound the
            // operator by the full convolution (pads k - 1), of which it is a sub-window.
            let mut op = op;
            if let Padding::Zeros(p) = op.padding {
                let clamp = [p[0].min(op.kh - 1), p[1].min(op.kw - 1), p[2].min(op.kh - 1), p[3].min(op.kw - 1)];
                if clamp != p {
                    op.padding = Padding::Zeros([op.kh - 1, op.kw - 1, op.kh - 1, op.kw - 1]);
                }
            }
            match conv_norm(&op, Method::Auto, Options { iters: None, tol: Some(1e-4), seed: 0 }) {
                Ok(b) => (b.upper, Some(b.lower)),
                Err(_) => (f64::INFINITY, None),
            }
        }
        Norm::Inf => {
            // Each output sums at most all taps of its channel: max_o sum |K[o]| (exact when
            // an output sees the whole kernel, which padding <= k - 1 with h, w >= k ensures).
            let per = op.c_in * op.kh * op.kw;
            let s = op.kernel.chunks_exact(per).map(|k| k.iter().map(|v| v.abs()).sum::<f64>()).fold(0.0, f64::max);
            (up(s * (1.0 + gamma(per + 1))), None)
        }
    }
}

/// Pooling as an operator on one plane: for each input, the weights of the windows that read
/// it; the l2 bound is sqrt(max column sum * max row sum) of the (nonnegative) weight matrix.
fn avgpool_bound(p: &Pool2d, hw: [usize; 2], ohw: [usize; 2], norm: Norm) -> f64 {
    if norm == Norm::Inf {
        return 1.0;
    }
    let div = avgpool_divisors(p, hw, ohw);
    let mut col = vec![0.0f64; hw[0] * hw[1]];
    let mut row = vec![0.0f64; ohw[0] * ohw[1]];
    for_each_window(p, hw, ohw, |o, i| {
        col[i] += 1.0 / div[o];
        row[o] += 1.0 / div[o];
    });
    let (c, r) = (col.iter().cloned().fold(0.0, f64::max), row.iter().cloned().fold(0.0, f64::max));
    up((c * r).sqrt() * (1.0 + gamma(p.kernel[0] * p.kernel[1] + 4)))
}

/// Max pooling: |max a - max b| <= max |a - b|, so the l2 constant is at most the square root of
/// the largest number of windows that read one input.
fn maxpool_bound(p: &Pool2d, hw: [usize; 2], ohw: [usize; 2], norm: Norm) -> f64 {
    if norm == Norm::Inf {
        return 1.0;
    }
    let mut count = vec![0usize; hw[0] * hw[1]];
    for_each_window(p, hw, ohw, |_, i| count[i] += 1);
    up((*count.iter().max().unwrap_or(&1) as f64).sqrt())
}

/// Lipschitz constant of one node's operator (with respect to each of its inputs).
pub fn layer_bound(net: &Network, k: usize, norm: Norm) -> LayerBound {
    let node = &net.nodes[k];
    let in_shape = &net.shapes[node.inputs[0]];
    let out_shape = &net.shapes[k + 1];
    let exact = |v: f64| (v, Some(v));
    let (upper, lower) = match &node.op {
        Op::Dense(d) => dense_bound(d, norm),
        Op::Conv2d(c) => conv_bound(c, in_shape, norm),
        Op::Affine { scale, .. } => exact(scale.iter().fold(0.0f64, |m, s| m.max(s.abs()))),
        Op::Activation(a) => exact(activation_lipschitz(*a)),
        // Each input enters with slope 1; the composition adds the two paths.
        Op::Add => exact(1.0),
        Op::AvgPool(p) => (avgpool_bound(p, [in_shape[2], in_shape[3]], [out_shape[2], out_shape[3]], norm), None),
        Op::MaxPool(p) => (maxpool_bound(p, [in_shape[2], in_shape[3]], [out_shape[2], out_shape[3]], norm), None),
        // Padding, reshapes and transposes move or copy values: isometries.
        Op::Pad { .. } | Op::Reshape { .. } | Op::Transpose { .. } => exact(1.0),
    };
    LayerBound { name: node.name.clone(), op: node.op.kind(), upper, lower }
}

/// Upper bounds for every value: L(input) = 1, L(node) = c * L(input) for one input, and
/// L(a + b) <= L(a) + L(b) at an Add (residual blocks: L_main + L_skip).
pub fn compose(net: &Network, layers: &[LayerBound]) -> Vec<f64> {
    let mut l = vec![0.0f64; net.shapes.len()];
    l[0] = 1.0;
    for (k, node) in net.nodes.iter().enumerate() {
        l[k + 1] = match node.op {
            Op::Add => up(l[node.inputs[0]] + l[node.inputs[1]]),
            _ => up(layers[k].upper * l[node.inputs[0]]),
        };
    }
    l
}

/// Norm of a Jacobian (row-major [m, n]) as an operator in the given norm: the spectral norm
/// (certified lower bound of the computed matrix) or the largest absolute row sum.
fn jacobian_norm(jac: &[f64], m: usize, n: usize, norm: Norm) -> f64 {
    match norm {
        Norm::L2 => {
            let view = MatRef::from_column_major_slice(jac, n, m);
            dense::exact(view).lower
        }
        Norm::Inf => {
            let s = jac.chunks_exact(n).map(|r| r.iter().map(|v| v.abs()).sum::<f64>()).fold(0.0, f64::max);
            down(s * (1.0 - gamma(n + 1)))
        }
    }
}

/// Relative allowance for the rounding of the f64 backward pass that computes a Jacobian
/// (documented in docs/GUARANTEES.md; far above the observed differences).
pub const JACOBIAN_ROUNDING_ALLOWANCE: f64 = 1e-8;

/// The seeded search for the lower bound: `starts` random points (uniform in [0, 1] and
/// standard normal, alternately) plus the given `points`, each followed by `steps` of hill
/// climbing on ||J(x)|| with shrinking random moves.
#[derive(Clone, Debug, Default)]
pub struct Search {
    pub starts: usize,
    pub steps: usize,
    pub seed: u64,
    pub points: Vec<Vec<f64>>,
}

/// Lower bound on the global Lipschitz constant: L >= ||J(x)|| at any point where the network
/// is differentiable, maximized by `search`. Returns (lower bound, best point).
pub fn jacobian_lower(net: &Network, norm: Norm, search: &Search) -> (f64, Vec<f64>) {
    let (m, n) = (net.output_len(), net.input_len());
    let (starts, steps) = (search.starts, search.steps);
    let mut rng = Rng::new(search.seed);
    // A separate stream for the slope ascent keeps the hill climbing reproducible on its own.
    let mut slope_rng = Rng::new(search.seed ^ 0x51_09e5);
    let eval = |x: &[f64]| -> f64 { net.jacobian(x).map(|(_, j)| jacobian_norm(&j, m, n, norm)).unwrap_or(0.0) };
    let mut points: Vec<Vec<f64>> = search.points.clone();
    for s in 0..starts {
        points.push((0..n).map(|_| if s % 2 == 0 { rng.uniform() } else { rng.normal() }).collect());
    }
    let mut best = (0.0, vec![0.0; n]);
    for start in points {
        let (mut x, mut value) = (start.clone(), eval(&start));
        let mut radius = 0.5;
        for _ in 0..steps {
            let candidate: Vec<f64> = x.iter().map(|v| v + radius * rng.normal() / (n as f64).sqrt()).collect();
            let v = eval(&candidate);
            if v > value {
                (x, value) = (candidate, v);
            } else {
                radius *= 0.8;
            }
        }
        if value > best.0 {
            best = (value, x);
        }
        if norm == Norm::L2 {
            // ReLU networks have piecewise-constant Jacobians: also climb the slope between
            // two points, whose gradient is informative everywhere.
            let (ratio, y) = ratio_ascent(net, &start, steps, &mut slope_rng);
            let at_y = eval(&y);
            if ratio.max(at_y) > best.0 {
                best = (ratio.max(at_y), y);
            }
        }
    }
    (down(best.0 * (1.0 - JACOBIAN_ROUNDING_ALLOWANCE)), best.1)
}

fn l2(v: &[f64]) -> f64 {
    v.iter().map(|x| x * x).sum::<f64>().sqrt()
}

/// Gradient ascent on the slope R(y) = ||f(y) - f(x)|| / ||y - x|| over y (the ratio of
/// thesis eq. 2.3): every pair gives L >= R, so the best slope found is a lower bound once the
/// rounding of the two forward passes is subtracted. Returns (best slope, its point y).
fn ratio_ascent(net: &Network, x: &[f64], steps: usize, rng: &mut Rng) -> (f64, Vec<f64>) {
    let Ok(fx) = net.forward(x, 1) else { return (0.0, x.to_vec()) };
    let n = x.len();
    let dir: Vec<f64> = (0..n).map(|_| rng.normal()).collect();
    let dn = l2(&dir).max(f64::MIN_POSITIVE);
    let mut y: Vec<f64> = x.iter().zip(&dir).map(|(a, d)| a + 0.1 * d / dn).collect();
    let mut best = (0.0, y.clone());
    for _ in 0..steps.max(1) {
        let Ok(trace) = net.trace(&y, 1) else { break };
        let fy = trace.output(net).to_vec();
        let df: Vec<f64> = fy.iter().zip(&fx).map(|(a, b)| a - b).collect();
        let d: Vec<f64> = y.iter().zip(x).map(|(a, b)| a - b).collect();
        let (num, den) = (l2(&df), l2(&d));
        if den == 0.0 {
            break;
        }
        // The outputs carry a relative rounding of about FORWARD_ROUNDING_ALLOWANCE each.
        let scale = fx.iter().chain(&fy).fold(1.0f64, |m, v| m.max(v.abs()));
        let slope = (num - 2.0 * FORWARD_ROUNDING_ALLOWANCE * scale * (df.len() as f64).sqrt()).max(0.0) / den;
        if slope > best.0 {
            best = (slope, y.clone());
        }
        // d/dy of |df|^2 / |d|^2 = 2 (J^T df |d|^2 - |df|^2 d) / |d|^4.
        let Ok(grads) = net.vjp(&trace, &df, false) else { break };
        let grad: Vec<f64> = grads.input.iter().zip(&d).map(|(g, di)| g * den * den - num * num * di).collect();
        let gn = l2(&grad);
        if gn == 0.0 || !gn.is_finite() {
            break;
        }
        for (yi, gi) in y.iter_mut().zip(&grad) {
            *yi += 0.3 * den * gi / gn;
        }
    }
    best
}

/// Full analysis: per-layer constants, the composed upper bound, and the search lower bound.
pub fn network_lipschitz(net: &Network, norm: Norm, search: &Search) -> NetworkLipschitz {
    let layers: Vec<LayerBound> = (0..net.nodes.len()).map(|k| layer_bound(net, k, norm)).collect();
    let value_upper = compose(net, &layers);
    let upper = value_upper[net.output];
    let (lower, _) = jacobian_lower(net, norm, search);
    NetworkLipschitz { norm, layers, upper, lower: lower.min(upper), value_upper }
}

/// Paper 002, Prop. 5: `E[L] = 2 sqrt(d) / sqrt((d + n)(d + m)) prod(alpha_l) q^(M-1)
/// (sqrt n + sqrt m)` for an M-layer MLP of hidden width d, with alpha_l measured from the
/// weights (`Var W_l = 2 alpha_l^2 / (n_l + n_{l-1})`) and `q^2 = Var[sigma'(x)]`, x ~ N(0, 1).
/// An estimate of the typical constant, not a bound. None when the network is not an MLP
/// (dense layers separated by one activation type, reshapes and input affine maps allowed).
pub fn architecture_estimate(net: &Network) -> Option<f64> {
    let dense: Vec<&Dense> =
        net.nodes.iter().filter_map(|n| if let Op::Dense(d) = &n.op { Some(d) } else { None }).collect();
    let acts: Vec<Activation> =
        net.nodes.iter().filter_map(|n| if let Op::Activation(a) = n.op { Some(a) } else { None }).collect();
    let other = net.nodes.iter().any(|n| matches!(n.op, Op::Conv2d(_) | Op::Add | Op::AvgPool(_) | Op::MaxPool(_)));
    if dense.len() < 2 || other || acts.len() + 1 != dense.len() || acts.iter().any(|a| *a != acts[0]) {
        return None;
    }
    let (n, m) = (dense[0].in_features as f64, dense[dense.len() - 1].out_features as f64);
    let hidden: Vec<f64> = dense[..dense.len() - 1].iter().map(|d| d.out_features as f64).collect();
    let d = hidden.iter().sum::<f64>() / hidden.len() as f64;
    let alpha_product: f64 = dense
        .iter()
        .map(|l| {
            let k = l.weight.len() as f64;
            let mean = l.weight.iter().sum::<f64>() / k;
            let var = l.weight.iter().map(|w| (w - mean).powi(2)).sum::<f64>() / k;
            (var * (l.in_features + l.out_features) as f64 / 2.0).sqrt()
        })
        .product();
    let q = derivative_std(acts[0]);
    let layers = dense.len() as i32;
    Some(2.0 * d.sqrt() / ((d + n) * (d + m)).sqrt() * alpha_product * q.powi(layers - 1) * (n.sqrt() + m.sqrt()))
}

/// sqrt(Var[sigma'(x)]) for x ~ N(0, 1), by quadrature (ReLU: exactly 1/2).
fn derivative_std(a: Activation) -> f64 {
    if a == Activation::Relu {
        return 0.5;
    }
    let (mut s1, mut s2, mut w) = (0.0, 0.0, 0.0);
    let steps = 20_000;
    for i in 0..=steps {
        let x = -10.0 + 20.0 * i as f64 / steps as f64;
        let p = (-0.5 * x * x).exp();
        let d = a.derivative(x);
        s1 += p * d;
        s2 += p * d * d;
        w += p;
    }
    let mean = s1 / w;
    (s2 / w - mean * mean).max(0.0).sqrt()
}

/// Relative allowance for the rounding of the f64 forward pass in a margin (documented).
pub const FORWARD_ROUNDING_ALLOWANCE: f64 = 1e-9;

/// Certified radii of one sample from Lipschitz constants (paper 002 Prop. 2; thesis eqs.
/// 2.8-2.10).
#[derive(Clone, Debug, PartialEq)]
pub struct Radii {
    pub predicted: usize,
    /// f_y - max_{j != y} f_j (negative when misclassified).
    pub margin: f64,
    /// M / (sqrt 2 L) for l2, M / (2 L) for l_inf; 0 when misclassified.
    pub global: f64,
    /// min_j (f_y - f_j) / L(f_y - f_j), with L(f_y - f_j) from the difference of the last
    /// dense layer's rows; never below `global`.
    pub pair: f64,
}

/// Pairwise constants L(f_y - f_j) for every (y, j), row-major [m, m], when the output node
/// is a dense layer: ||w_y - w_j|| (dual norm: 2 for l2, 1 for l_inf) times the constant of
/// the layer's input. None otherwise (callers then use the global radius only).
pub fn pair_constants(net: &Network, lip: &NetworkLipschitz) -> Option<Vec<f64>> {
    let k = net.output.checked_sub(1)?;
    let Op::Dense(d) = &net.nodes[k].op else { return None };
    let prefix = lip.value_upper[net.nodes[k].inputs[0]];
    let (m, n) = (d.out_features, d.in_features);
    let row = |i: usize| &d.weight[i * n..(i + 1) * n];
    let mut out = vec![0.0; m * m];
    for y in 0..m {
        for j in 0..m {
            let diff = row(y).iter().zip(row(j)).map(|(a, b)| (a - b).abs());
            let dual = match lip.norm {
                Norm::L2 => diff.map(|v| v * v).sum::<f64>().sqrt(),
                Norm::Inf => diff.sum::<f64>(),
            };
            out[y * m + j] = up(up(dual * (1.0 + gamma(n + 2))) * prefix);
        }
    }
    Some(out)
}

/// Radii of one sample with outputs `f` and label `y`.
pub fn radii(f: &[f64], y: usize, lip: &NetworkLipschitz, pairs: Option<&[f64]>) -> Radii {
    let m = f.len();
    let predicted = (0..m).max_by(|&a, &b| f[a].total_cmp(&f[b])).unwrap_or(0);
    let allowance = FORWARD_ROUNDING_ALLOWANCE * f.iter().fold(1.0f64, |a, v| a.max(v.abs()));
    let runner_up = (0..m).filter(|&j| j != y).map(|j| f[j]).fold(f64::NEG_INFINITY, f64::max);
    let margin = f[y] - runner_up;
    let certified_margin = margin - 2.0 * allowance;
    if predicted != y || certified_margin <= 0.0 || lip.upper <= 0.0 {
        return Radii { predicted, margin, global: 0.0, pair: 0.0 };
    }
    let factor = match lip.norm {
        Norm::L2 => 2f64.sqrt(),
        Norm::Inf => 2.0,
    };
    let global = down(certified_margin / up(factor * lip.upper));
    let pair = pairs.map_or(global, |p| {
        (0..m)
            .filter(|&j| j != y)
            .map(|j| {
                let gap = f[y] - f[j] - 2.0 * allowance;
                if p[y * m + j] > 0.0 {
                    down(gap / p[y * m + j])
                } else {
                    f64::INFINITY
                }
            })
            .fold(f64::INFINITY, f64::min)
    });
    Radii { predicted, margin, global, pair: pair.max(global) }
}
