//! Lipschitz constants of whole networks: a certified upper bound composed over the graph
//! (per-node constants, products along paths, sums at residual adds), a proven lower bound
//! (the largest slope between two points certified with IBP enclosures, the pairs proposed by
//! a seeded search on Jacobian norms and slopes), and the architecture-based estimate of
//! paper 002 (Prop. 5), which is an estimate and reported as one.

use crate::conv::{conv_norm, ConvOperator, Padding};
use crate::dense::{self, Method, Options};
use faer::MatRef;
use lipcert_bounds::ibp::{ibp, ibp_node, Interval};
use lipcert_core::kernels::{avgpool_divisors, for_each_window};
use lipcert_core::rounding::{down, exponent, gamma, pow2, up, U};
use lipcert_core::{Activation, Conv2d, Dense, GraphError, Network, Op, Pool2d, Rng};
use std::sync::OnceLock;

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
    /// Proven lower bound on the global constant: the largest certified slope between two
    /// points (see `jacobian_lower`).
    pub lower: f64,
    /// The largest f64 Jacobian norm or slope the search found: not a bound (it is what
    /// proposed the certified pairs).
    pub lower_search: f64,
    /// Upper bound on the constant of every value (index = value id) as a function of the input.
    pub value_upper: Vec<f64>,
}

/// Largest |sigma'| of an activation: exact values, rounded up.
pub fn activation_lipschitz(a: Activation) -> f64 {
    match a {
        Activation::Relu | Activation::Tanh => 1.0,
        Activation::LeakyRelu { alpha } | Activation::Elu { alpha } => alpha.abs().max(1.0),
        Activation::Sigmoid => 0.25,
        // GELU'(x) = Phi(x) + x phi(x) peaks where phi(x)(2 - x^2) = 0, at x = sqrt 2 (the f64
        // sqrt 2 is within 1e-16 of it, where the derivative is flat to 1e-32). The margin
        // covers libm's erfc and exp, within a few ulps (as IBP assumes).
        Activation::Gelu { tanh_approx: false } => {
            up(Activation::Gelu { tanh_approx: false }.derivative(2f64.sqrt()) + 1e-14)
        }
        Activation::Gelu { tanh_approx: true } => gelu_tanh_lipschitz(),
    }
}

/// sup |g'| for the tanh-approximated GELU g(x) = x (1 + tanh u) / 2, u = c (x + a x^3),
/// c = sqrt(2 / pi), a = 0.044715, proven by two grids and derivative bounds.
///
/// - x < 0: g(x) - g(-x) = x (u is odd), so g'(x) = 1 - g'(-x); and for x >= 0, with
///   t = tanh u in [0, 1), s = 1 - t^2 and u' > 0, g' = (1 + t) / 2 + x s u' / 2 >= 1/2. So
///   |g'(x)| <= max(1/2, g'(-x) - 1) and sup |g'| = sup_{x >= 0} g'.
/// - x > 4: s <= 4 e^(-2u), and x u' e^(-2u) decreases there (its log-derivative is at most
///   1/x + 2/x - 2u' < 0.75 - 5 < 0), so g' <= 1 + 2 x u' e^(-2u) <= 1 + 4e-4 at x = 4: below
///   g'(1.5) > 1.1. The maximum over [0, 4] is interior (g'(0) = 1/2, g'(4) < 1.0004), where
///   g'' = 0.
/// - On [0, 4]: u' <= 2.52, u'' = 6 a c x <= 0.86, u''' = 6 a c <= 0.22, |t| <= 1, s <= 1 and
///   s' = -2 t s u', t' = s u'. Then g'' = s u' + x s (u'' - 2 t u'^2) / 2 gives |g''| <= M2 =
///   30. Differentiating once more, with w = u'' - 2 t u'^2 (|w| <= 13.6) and
///   w' = u''' - 2 s u'^3 - 4 t u' u'' (|w'| <= 41): g''' = -2 t s u'^2 + s u'' +
///   (s w + x s' w + x s w') / 2, so |g'''| <= 13.6 + (13.6 + 274 + 164) / 2 < M3 = 250.
/// - Coarse grid, spacing h = 1e-4: the maximizer x* has a grid point within h, whose value is
///   at least g'(x*) - M2 h >= best - M2 h; so x* lies within h of the grid points whose value
///   is at least best - M2 h. A fine grid (spacing hf = 1e-7) covers those, and at its point
///   t nearest x*, g'(x*) - g'(t) <= M3 (t - x*)^2 / 2 <= M3 hf^2 / 2 (g''(x*) = 0).
/// - Each f64 evaluation of g' (a few operations and libm's tanh, within a few ulps as IBP
///   assumes; every intermediate below 11 in magnitude) is within 1e-13 of the exact value.
fn gelu_tanh_lipschitz() -> f64 {
    static CONSTANT: OnceLock<f64> = OnceLock::new();
    *CONSTANT.get_or_init(|| {
        let g = Activation::Gelu { tanh_approx: true };
        let (h, hf, m2, m3, eval_err) = (1e-4, 1e-7, 30.0, 250.0, 1e-13);
        let coarse: Vec<f64> = (0..=40_000).map(|i| g.derivative(i as f64 * h)).collect();
        let best = coarse.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let near = |&(_, d): &(usize, &f64)| *d >= best - m2 * h - 2.0 * eval_err;
        let first = coarse.iter().enumerate().find(near).map_or(0, |(i, _)| i);
        let last = coarse.iter().enumerate().rev().find(near).map_or(0, |(i, _)| i);
        let (lo, hi) = ((first as f64 - 1.0) * h, (last as f64 + 1.0) * h);
        let count = ((hi - lo) / hf).ceil() as usize;
        let fine = (0..=count).map(|k| g.derivative(lo + k as f64 * hf)).fold(best, f64::max);
        up(fine + eval_err + 0.5 * m3 * hf * hf)
    })
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
            Op::Dense(_)
            | Op::Conv2d(_)
            | Op::Affine { .. }
            | Op::Activation(_)
            | Op::AvgPool(_)
            | Op::MaxPool(_)
            | Op::Pad { .. }
            | Op::Reshape { .. }
            | Op::Transpose { .. } => up(layers[k].upper * l[node.inputs[0]]),
        };
    }
    l
}

/// Norm of a Jacobian (row-major [m, n]) as an operator in the given norm: the spectral norm
/// (lower end of the dense `exact` bracket) or the largest absolute row sum. The Jacobian is an
/// f64 computation, so this value only ranks candidates; it is never reported as a bound.
fn jacobian_norm(jac: &[f64], m: usize, n: usize, norm: Norm) -> f64 {
    match norm {
        Norm::L2 => {
            let view = MatRef::from_column_major_slice(jac, n, m);
            dense::exact(view).lower
        }
        Norm::Inf => jac.chunks_exact(n).map(|r| r.iter().map(|v| v.abs()).sum::<f64>()).fold(0.0, f64::max),
    }
}

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

/// A proven lower bound on the global Lipschitz constant and the pair of points that proves it.
#[derive(Clone, Debug, PartialEq)]
pub struct LowerBound {
    /// L >= value: ||f(y) - f(x)|| / ||y - x|| over rigorous enclosures of f(x) and f(y),
    /// rounded down (0 when no pair was certified).
    pub value: f64,
    /// The pair (x, y) that gives `value`.
    pub x: Vec<f64>,
    pub y: Vec<f64>,
    /// The largest Jacobian norm or slope the f64 search found. Not a bound: it only proposes
    /// the pairs that are then certified.
    pub search: f64,
}

/// A rigorous enclosure of f(x) at one point: IBP on the point box {x} (lipcert-bounds; sound
/// in real arithmetic for the network as stored, with outward rounding).
pub fn output_enclosure(net: &Network, x: &[f64]) -> Result<Interval, GraphError> {
    let mut values = ibp(net, Interval::new(x.to_vec(), x.to_vec()))?;
    Ok(values.swap_remove(net.output))
}

/// ||v||_2 from f64 values that are exact: the largest magnitude is scaled to [0.5, 1) by an
/// exact power of two, so squares cannot overflow and underflow is far below the rounding
/// term. Rounded up (`upper`) or down. The sum of squares and the square root are within
/// gamma(k + 3) relative of the exact norm.
fn l2_rounded(v: &[f64], upper: bool) -> f64 {
    let s = v.iter().fold(0.0f64, |a, x| a.max(x.abs()));
    if s == 0.0 || !s.is_finite() {
        return if upper { s } else { 0.0 };
    }
    let e = exponent(s);
    let sc = pow2(-e);
    let r = v.iter().map(|x| (x * sc) * (x * sc)).sum::<f64>().sqrt();
    let g = gamma(v.len() + 3);
    if upper {
        up(r * (1.0 + g)) * pow2(e)
    } else {
        down(r * (1.0 - g)) * pow2(e)
    }
}

/// A certified lower bound on ||f(y) - f(x)||_p / ||y - x||_p (p = `norm` on both sides) from
/// an enclosure `diff` of f(y) - f(x). The numerator uses max(0, lo_i, -hi_i) for each output
/// (the smallest |f_i(y) - f_i(x)| it allows), the denominator the computed differences y - x
/// rounded up. Returns 0 when nothing can be certified (equal points, an enclosure that
/// contains 0 in every output, non-finite values, or an overflow).
pub fn certified_slope(norm: Norm, x: &[f64], y: &[f64], diff: &Interval) -> f64 {
    if x.len() != y.len() || !diff.lo.iter().chain(&diff.hi).all(|v| v.is_finite()) {
        return 0.0;
    }
    // The ends of `diff` are exact f64 values: max(0, lo, -hi) is exact.
    let gaps: Vec<f64> = diff.lo.iter().zip(&diff.hi).map(|(l, h)| l.max(-h).max(0.0)).collect();
    let d: Vec<f64> = x.iter().zip(y).map(|(a, b)| b - a).collect();
    let (num, den) = match norm {
        Norm::L2 => (l2_rounded(&gaps, false), l2_rounded(&d, true)),
        Norm::Inf => {
            let num = gaps.iter().fold(0.0f64, |a, g| a.max(*g));
            // The exact |y_i - x_i| is at most |computed| / (1 - u).
            let den = up(d.iter().fold(0.0f64, |a, v| a.max(v.abs())) * (1.0 + 2.0 * U));
            (num, den)
        }
    };
    // Far above any subnormal, so that the scalings by powers of two above were exact.
    if !(num.is_finite() && den.is_finite() && num > 1e-290 && den > 1e-290) {
        return 0.0;
    }
    let s = down(num / den);
    if s.is_finite() {
        s
    } else {
        0.0
    }
}

/// Certifies slopes between points of one network.
struct Slopes<'a> {
    net: &'a Network,
    lin: Network,
    norm: Norm,
}

impl<'a> Slopes<'a> {
    fn new(net: &'a Network, norm: Norm) -> Self {
        Slopes { net, lin: linear_part(net), norm }
    }

    /// IBP enclosures of every value at the point x.
    fn values(&self, x: &[f64]) -> Option<Vec<Interval>> {
        ibp(self.net, Interval::new(x.to_vec(), x.to_vec())).ok()
    }

    /// Certified slope of the pair (x, y) with enclosures `xv`, `yv` of all values: f(y) - f(x)
    /// lies both in the difference of the output enclosures and in `difference_enclosure`;
    /// their intersection is used.
    fn slope(&self, x: &[f64], xv: &[Interval], y: &[f64], yv: &[Interval]) -> f64 {
        let (fx, fy) = (&xv[self.net.output], &yv[self.net.output]);
        let (mut lo, mut hi): (Vec<f64>, Vec<f64>) =
            (0..fx.lo.len()).map(|i| widen(fy.lo[i] - fx.hi[i], fy.hi[i] - fx.lo[i])).unzip();
        if let Some(d) = difference_enclosure(self.net, &self.lin, xv, x, y) {
            for i in 0..lo.len() {
                lo[i] = lo[i].max(d.lo[i]);
                hi[i] = hi[i].min(d.hi[i]);
            }
        }
        certified_slope(self.norm, x, y, &Interval::new(lo, hi))
    }
}

/// A certified lower bound on the slope ||f(y) - f(x)|| / ||y - x|| of one pair (so on the
/// Lipschitz constant in `norm`): IBP enclosures at both points and the propagated enclosure
/// of the difference (`Slopes::slope`).
pub fn pair_slope(net: &Network, norm: Norm, x: &[f64], y: &[f64]) -> f64 {
    let slopes = Slopes::new(net, norm);
    match (slopes.values(x), slopes.values(y)) {
        (Some(xv), Some(yv)) => slopes.slope(x, &xv, y, &yv),
        _ => 0.0,
    }
}

/// The network with every constant term removed (biases, Affine shifts, Pad values): it maps
/// a difference of two inputs of the same linear node to the difference of its outputs.
fn linear_part(net: &Network) -> Network {
    let mut lin = net.clone();
    for node in &mut lin.nodes {
        match &mut node.op {
            Op::Dense(d) => d.bias.iter_mut().for_each(|b| *b = 0.0),
            Op::Conv2d(c) => c.bias.iter_mut().for_each(|b| *b = 0.0),
            Op::Affine { shift, .. } => shift.iter_mut().for_each(|s| *s = 0.0),
            Op::Pad { value, .. } => *value = 0.0,
            // No constant term.
            Op::Activation(_)
            | Op::Add
            | Op::AvgPool(_)
            | Op::MaxPool(_)
            | Op::Reshape { .. }
            | Op::Transpose { .. } => {}
        }
    }
    lin
}

/// Widens a computed lower or upper end outward by a few ulps (one or two roundings).
fn widen(lo: f64, hi: f64) -> (f64, f64) {
    (lo - 4.0 * U * lo.abs() - 1e-300, hi + 4.0 * U * hi.abs() + 1e-300)
}

/// An interval containing sigma'(t) for every t in [l, h] (where sigma is differentiable; by
/// the mean value theorem for absolutely continuous sigma, sigma(b) - sigma(a) = s (b - a)
/// with s in it for all a, b in [l, h]). sigma' is monotone on each side of 0 for ReLU,
/// LeakyReLU, ELU, Sigmoid and Tanh, so the hull of the ends and the one-sided values at 0
/// covers it. GELU: g'(x) + g'(-x) = 1, so g' lies in [1 - L, L]; the exact GELU's g' is
/// monotone between its critical points +-sqrt 2. Evaluations are widened by 1e-15 plus 8 ulps
/// (libm within a few ulps).
fn derivative_range(a: Activation, l: f64, h: f64) -> (f64, f64) {
    let (mut lo, mut hi) = (a.derivative(l).min(a.derivative(h)), a.derivative(l).max(a.derivative(h)));
    let at_zero: &[f64] = match a {
        Activation::Relu => &[0.0, 1.0],
        Activation::LeakyRelu { alpha } | Activation::Elu { alpha } => &[alpha, 1.0],
        Activation::Sigmoid => &[0.25],
        Activation::Tanh => &[1.0],
        Activation::Gelu { tanh_approx: false } => {
            let r2 = 2f64.sqrt();
            let crosses = |c: f64| l <= c + 1e-9 && h >= c - 1e-9;
            if crosses(r2) || crosses(-r2) {
                let big = activation_lipschitz(a);
                return (1.0 - big, big);
            }
            &[]
        }
        Activation::Gelu { tanh_approx: true } => {
            let big = activation_lipschitz(a);
            return (1.0 - big, big);
        }
    };
    if l <= 0.0 && h >= 0.0 {
        for &v in at_zero {
            (lo, hi) = (lo.min(v), hi.max(v));
        }
    }
    (lo - 8.0 * U * lo.abs() - 1e-15, hi + 8.0 * U * hi.abs() + 1e-15)
}

/// A rigorous enclosure of f(y) - f(x), propagated as a difference: linear nodes map it by
/// their linear part (IBP on `lin`, with its rounding terms relative to the difference, not to
/// the values), activations by the mean value theorem (slopes over the hull of the two inputs,
/// whose enclosures are `xv` (IBP at x) and `xv` + the difference), MaxPool by the difference
/// at the window's certified unique maximum, or the range of the differences in the window.
/// Much tighter than subtracting enclosures of f(x) and f(y) on deep networks, where IBP's
/// rounding terms grow with the values. None if a shape does not match.
fn difference_enclosure(net: &Network, lin: &Network, xv: &[Interval], x: &[f64], y: &[f64]) -> Option<Interval> {
    if x.len() != y.len() || xv.len() != net.nodes.len() + 1 {
        return None;
    }
    // The computed y - x is within u relative of the exact difference.
    let (lo, hi) = x.iter().zip(y).map(|(a, b)| widen(b - a, b - a)).unzip();
    let mut dv = vec![Interval::new(lo, hi)];
    for (k, node) in net.nodes.iter().enumerate() {
        let a = &xv[node.inputs[0]];
        let d = &dv[node.inputs[0]];
        let out = match &node.op {
            Op::Activation(act) => {
                let (mut lo, mut hi) = (Vec::with_capacity(d.lo.len()), Vec::with_capacity(d.lo.len()));
                for i in 0..d.lo.len() {
                    // Hull of the two inputs: [a_lo, a_hi] and [a_lo + d_lo, a_hi + d_hi].
                    let (yl, yh) = widen(a.lo[i] + d.lo[i], a.hi[i] + d.hi[i]);
                    let (sl, sh) = derivative_range(*act, a.lo[i].min(yl), a.hi[i].max(yh));
                    let p = [sl * d.lo[i], sl * d.hi[i], sh * d.lo[i], sh * d.hi[i]];
                    if p.iter().any(|v| v.is_nan()) {
                        return None;
                    }
                    let (l, h) = widen(
                        p.iter().cloned().fold(f64::INFINITY, f64::min),
                        p.iter().cloned().fold(f64::NEG_INFINITY, f64::max),
                    );
                    lo.push(l);
                    hi.push(h);
                }
                Interval::new(lo, hi)
            }
            Op::MaxPool(p) => {
                let (in_shape, out_shape) = (&net.shapes[node.inputs[0]], &net.shapes[k + 1]);
                let planes = in_shape[0] * in_shape[1];
                let (hw, ohw) = ([in_shape[2], in_shape[3]], [out_shape[2], out_shape[3]]);
                let (isz, osz) = (hw[0] * hw[1], ohw[0] * ohw[1]);
                let mut lo = vec![0.0; planes * osz];
                let mut hi = vec![0.0; planes * osz];
                for pl in 0..planes {
                    let (ib, ob) = (pl * isz, pl * osz);
                    let mut windows: Vec<Vec<usize>> = vec![vec![]; osz];
                    for_each_window(p, hw, ohw, |o, i| windows[o].push(ib + i));
                    for (o, w) in windows.iter().enumerate() {
                        if w.is_empty() {
                            continue;
                        }
                        // max(a + d) - max(a) lies in [min d, max d]; it is d[i*] when i* is the
                        // certified unique maximum at both points.
                        let y_lo = |i: usize| widen(a.lo[i] + d.lo[i], 0.0).0;
                        let y_hi = |i: usize| widen(0.0, a.hi[i] + d.hi[i]).1;
                        let top = *w.iter().max_by(|&&i, &&j| a.lo[i].total_cmp(&a.lo[j])).unwrap_or(&w[0]);
                        let unique = w.iter().all(|&j| j == top || (a.lo[top] > a.hi[j] && y_lo(top) > y_hi(j)));
                        (lo[ob + o], hi[ob + o]) = if unique {
                            (d.lo[top], d.hi[top])
                        } else {
                            (
                                w.iter().map(|&i| d.lo[i]).fold(f64::INFINITY, f64::min),
                                w.iter().map(|&i| d.hi[i]).fold(f64::NEG_INFINITY, f64::max),
                            )
                        };
                    }
                }
                Interval::new(lo, hi)
            }
            // Linear nodes (and moves): the linear part maps differences to differences.
            Op::Dense(_)
            | Op::Conv2d(_)
            | Op::Affine { .. }
            | Op::Add
            | Op::AvgPool(_)
            | Op::Pad { .. }
            | Op::Reshape { .. }
            | Op::Transpose { .. } => ibp_node(lin, k, &dv),
        };
        // A NaN would be dropped by the min/max folds downstream: give up instead.
        if out.lo.iter().chain(&out.hi).any(|v| v.is_nan()) {
            return None;
        }
        dv.push(out);
    }
    dv.into_iter().nth(net.output)
}

/// The direction in which the Jacobian (row-major [m, n]) stretches most: its top right
/// singular vector (unit l2; from faer's SVD) in l2, or the sign
/// pattern of its largest absolute row (l_inf norm 1). Only proposes pairs: nothing here needs
/// to be exact.
fn stretch_direction(jac: &[f64], m: usize, n: usize, norm: Norm) -> Vec<f64> {
    let rows: Vec<&[f64]> = jac.chunks_exact(n.max(1)).take(m).collect();
    let Some(top) = rows.iter().max_by(|a, b| {
        let key = |r: &[f64]| match norm {
            Norm::L2 => l2(r),
            Norm::Inf => r.iter().map(|v| v.abs()).sum::<f64>(),
        };
        key(a).total_cmp(&key(b))
    }) else {
        return vec![0.0; n];
    };
    match norm {
        // Zero entries do not matter: any sign keeps ||v||_inf = 1.
        Norm::Inf => top.iter().map(|v| v.signum()).collect(),
        Norm::L2 => {
            // faer's SVD; power iteration on J^T J from the longest row if it fails.
            if let Ok(svd) = MatRef::from_row_major_slice(jac, m, n).thin_svd() {
                let sv = svd.S().column_vector();
                if let Some(k) = (0..sv.nrows()).max_by(|&i, &j| sv[i].total_cmp(&sv[j])) {
                    let v: Vec<f64> = svd.V().col(k).iter().copied().collect();
                    let vn = l2(&v);
                    if vn > 0.0 && vn.is_finite() {
                        return v.iter().map(|x| x / vn).collect();
                    }
                }
            }
            let mut v = top.to_vec();
            for _ in 0..200 {
                let vn = l2(&v);
                if vn == 0.0 || !vn.is_finite() {
                    return vec![0.0; n];
                }
                v.iter_mut().for_each(|x| *x /= vn);
                let jv: Vec<f64> = rows.iter().map(|r| r.iter().zip(&v).map(|(a, b)| a * b).sum()).collect();
                let mut w = vec![0.0; n];
                for (r, s) in rows.iter().zip(&jv) {
                    w.iter_mut().zip(r.iter()).for_each(|(wi, ri)| *wi += s * ri);
                }
                v = w;
            }
            let vn = l2(&v);
            if vn == 0.0 || !vn.is_finite() {
                return vec![0.0; n];
            }
            v.iter().map(|x| x / vn).collect()
        }
    }
}

/// Relative steps h of the pairs built around a Jacobian point x: y = x +- h max(1, |x|_inf) v.
/// Long steps keep the rounding of the enclosures small next to f(y) - f(x); short ones keep
/// y in x's linear region (ReLU) or make the secant close to the tangent (smooth networks).
const PAIR_STEPS: [f64; 7] = [1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6, 1e-7];

/// The best certified slope around a Jacobian point x: pairs (x, x + hv), (x, x - hv) and
/// (x - hv, x + hv) for every step h, with v from `stretch_direction`.
fn certify_point(slopes: &Slopes, x: &[f64]) -> Option<(f64, Vec<f64>, Vec<f64>)> {
    let net = slopes.net;
    let (m, n) = (net.output_len(), net.input_len());
    let (_, jac) = net.jacobian(x).ok()?;
    let v = stretch_direction(&jac, m, n, slopes.norm);
    let xv = slopes.values(x)?;
    let scale = x.iter().fold(1.0f64, |a, v| a.max(v.abs()));
    let mut best: Option<(f64, Vec<f64>, Vec<f64>)> = None;
    for h in PAIR_STEPS {
        let s = h * scale;
        let plus: Vec<f64> = x.iter().zip(&v).map(|(a, d)| a + s * d).collect();
        let minus: Vec<f64> = x.iter().zip(&v).map(|(a, d)| a - s * d).collect();
        let (Some(pv), Some(mv)) = (slopes.values(&plus), slopes.values(&minus)) else { continue };
        for (a, av, b, bv) in [(x, &xv, &plus, &pv), (x, &xv, &minus, &mv), (&minus[..], &mv, &plus, &pv)] {
            let slope = slopes.slope(a, av, b, bv);
            if best.as_ref().is_none_or(|(s, _, _)| slope > *s) {
                best = Some((slope, a.to_vec(), b.to_vec()));
            }
        }
    }
    best
}

/// A candidate of the search: a Jacobian point, or a pair of points, with its f64 value.
enum Candidate {
    Point(Vec<f64>),
    Pair(Vec<f64>, Vec<f64>),
}

/// Proven lower bound on the global Lipschitz constant. A seeded search proposes candidates:
/// points x with a large f64 Jacobian norm ||J(x)|| (hill climbing) and, in l2, pairs with a
/// large f64 slope (`ratio_ascent`). Each candidate becomes pairs (x, y) whose slope
/// ||f(y) - f(x)|| / ||y - x|| is certified with rigorous enclosures of f(y) - f(x)
/// (`Slopes::slope`); the bound is the largest certified slope, since L >= every slope.
/// Candidates are certified in decreasing order of their f64 value until the next one's value
/// is within 1e-7 relative of the best certified slope.
pub fn jacobian_lower(net: &Network, norm: Norm, search: &Search) -> LowerBound {
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
    let mut candidates: Vec<(f64, Candidate)> = vec![];
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
        candidates.push((value, Candidate::Point(x)));
        if norm == Norm::L2 {
            // ReLU networks have piecewise-constant Jacobians: also climb the slope between
            // two points, whose gradient is informative everywhere.
            let (ratio, y) = ratio_ascent(net, &start, steps, &mut slope_rng);
            let at_y = eval(&y);
            candidates.push((at_y, Candidate::Point(y.clone())));
            candidates.push((ratio, Candidate::Pair(start, y)));
        }
    }
    candidates.retain(|c| !c.0.is_nan());
    candidates.sort_by(|a, b| b.0.total_cmp(&a.0));
    let search_best = candidates.first().map_or(0.0, |c| c.0);
    let mut best = LowerBound { value: 0.0, x: vec![0.0; n], y: vec![0.0; n], search: search_best };
    let slopes = Slopes::new(net, norm);
    for (value, candidate) in candidates {
        // Candidates within 1e-7 of the best certified slope cannot improve it by more.
        if value <= best.value * (1.0 + 1e-7) {
            break;
        }
        let proven = match candidate {
            Candidate::Point(x) => certify_point(&slopes, &x),
            Candidate::Pair(x, y) => match (slopes.values(&x), slopes.values(&y)) {
                (Some(xv), Some(yv)) => Some((slopes.slope(&x, &xv, &y, &yv), x, y)),
                _ => None,
            },
        };
        if let Some((s, x, y)) = proven.filter(|p| p.0 > best.value) {
            (best.value, best.x, best.y) = (s, x, y);
        }
    }
    best
}

fn l2(v: &[f64]) -> f64 {
    v.iter().map(|x| x * x).sum::<f64>().sqrt()
}

/// Gradient ascent on the slope R(y) = ||f(y) - f(x)|| / ||y - x|| over y (the ratio of
/// thesis eq. 2.3), in f64: it proposes the pair (x, y) with the best slope, which
/// `jacobian_lower` then certifies. Returns (best f64 slope, its point y).
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
        let slope = num / den;
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
    let lower = jacobian_lower(net, norm, search);
    NetworkLipschitz { norm, layers, upper, lower: lower.value.min(upper), lower_search: lower.search, value_upper }
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

/// Certified radii of one sample from Lipschitz constants (paper 002 Prop. 2; thesis eqs.
/// 2.8-2.10).
#[derive(Clone, Debug, PartialEq)]
pub struct Radii {
    pub predicted: usize,
    /// f_y - max_{j != y} f_j from the f64 forward pass (negative when misclassified); for
    /// display only: the radii use the certified margins.
    pub margin: f64,
    /// M / (sqrt 2 L) for l2, M / (2 L) for l_inf, with the certified margin
    /// M = min_{j != y} (lo_y - hi_j); 0 when misclassified or M <= 0.
    pub global: f64,
    /// min_j (lo_y - hi_j) / L(f_y - f_j), with L(f_y - f_j) from the difference of the last
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

/// Radii of one sample with f64 outputs `f`, a rigorous enclosure `bounds` of the outputs at
/// the same input (`output_enclosure`: lo <= f(x) <= hi in real arithmetic) and label `y`.
/// The certified margins are lo_y - hi_j, rounded down; `f` gives the predicted class and the
/// displayed margin.
pub fn radii(f: &[f64], bounds: &Interval, y: usize, lip: &NetworkLipschitz, pairs: Option<&[f64]>) -> Radii {
    let m = f.len();
    let predicted = (0..m).max_by(|&a, &b| f[a].total_cmp(&f[b])).unwrap_or(0);
    let runner_up = (0..m).filter(|&j| j != y).map(|j| f[j]).fold(f64::NEG_INFINITY, f64::max);
    let margin = f[y] - runner_up;
    let zero = Radii { predicted, margin, global: 0.0, pair: 0.0 };
    if predicted != y || y >= m || bounds.lo.len() != m || bounds.hi.len() != m || lip.upper <= 0.0 {
        return zero;
    }
    // A computed difference is within u relative of the exact one: `down` of a positive one is
    // below it. Non-finite bounds certify nothing.
    let gap = |j: usize| {
        let g = bounds.lo[y] - bounds.hi[j];
        if g > 0.0 && g.is_finite() {
            down(g)
        } else {
            0.0
        }
    };
    let certified_margin = (0..m).filter(|&j| j != y).map(gap).fold(f64::INFINITY, f64::min);
    if !(certified_margin > 0.0 && certified_margin.is_finite()) {
        return zero;
    }
    let factor = match lip.norm {
        Norm::L2 => 2f64.sqrt(),
        Norm::Inf => 2.0,
    };
    let global = down(certified_margin / up(factor * lip.upper));
    let pair = pairs.map_or(global, |p| {
        (0..m)
            .filter(|&j| j != y)
            .map(|j| if p[y * m + j] > 0.0 { down(gap(j) / p[y * m + j]) } else { f64::INFINITY })
            .fold(f64::INFINITY, f64::min)
    });
    Radii { predicted, margin, global, pair: pair.max(global) }
}
