//! Sound linear relaxations of activations and max pooling over pre-activation bounds:
//! lines `lower(x) <= f(x) <= upper(x)` for every x in [l, u], valid for the exact function
//! and kept valid under rounding by small outward shifts of the intercepts.

use crate::ibp::{activation_range, TINY};
use lipcert_core::rounding::U;
use lipcert_core::Activation;

/// Grid intervals used to bound f(x) - s x for smooth activations.
const GRID: usize = 32;

/// Lower line `ls x + lb` and upper line `us x + ub` of one element.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Lines {
    pub ls: f64,
    pub lb: f64,
    pub us: f64,
    pub ub: f64,
}

impl Lines {
    fn exact(s: f64) -> Self {
        Lines { ls: s, lb: 0.0, us: s, ub: 0.0 }
    }
}

/// The relaxation of one element together with the range of admissible lower slopes when the
/// lower line may be chosen freely through the origin (unstable ReLU-like neurons: alpha-CROWN
/// optimizes that slope; any slope in the range gives a valid lower line s x).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Relaxed {
    pub lines: Lines,
    pub alpha_range: Option<(f64, f64)>,
}

/// sup |f''|: bounds the error of locating the extremum of f(x) - s x on a grid.
fn second_derivative_bound(a: Activation) -> f64 {
    match a {
        Activation::Relu | Activation::LeakyRelu { .. } => 0.0,
        Activation::Elu { alpha } => alpha.abs(),
        // 2 phi(0) = 0.79788...; the tanh form peaks at the same value (checked numerically).
        Activation::Gelu { .. } => 0.8,
        // 1 / (6 sqrt 3) = 0.09623
        Activation::Sigmoid => 0.097,
        // 4 / (3 sqrt 3) = 0.76980
        Activation::Tanh => 0.77,
    }
}

/// The relaxation of activation `a` over [l, u].
pub fn relax_activation(a: Activation, l: f64, u: f64) -> Relaxed {
    match a {
        Activation::Relu => relax_leaky(0.0, l, u),
        Activation::LeakyRelu { alpha } if (0.0..=1.0).contains(&alpha) => relax_leaky(alpha, l, u),
        // Sound for any function with the curvature bound of `second_derivative_bound`.
        Activation::LeakyRelu { .. }
        | Activation::Elu { .. }
        | Activation::Gelu { .. }
        | Activation::Sigmoid
        | Activation::Tanh => Relaxed { lines: relax_smooth(a, l, u), alpha_range: None },
    }
}

/// CROWN's relaxation of max(x, alpha x) for 0 <= alpha <= 1 (ReLU for alpha = 0): exact
/// when stable; otherwise the chord above and the adaptive lower slope (1 when u > -l, else
/// alpha, as in CROWN and auto_LiRPA) through the origin.
fn relax_leaky(alpha: f64, l: f64, u: f64) -> Relaxed {
    if l >= 0.0 {
        return Relaxed { lines: Lines::exact(1.0), alpha_range: None };
    }
    if u <= 0.0 {
        return Relaxed { lines: Lines::exact(alpha), alpha_range: None };
    }
    // Chord through (l, alpha l) and (u, u): slope (u - alpha l) / (u - l).
    let us = (u - alpha * l) / (u - l);
    let ub = alpha * l - us * l;
    // Rounding of the slope and intercept moves the line by a few ulps of (u - l).
    let ub = ub + 8.0 * U * (u - l) + TINY;
    let ls = if u > -l { 1.0 } else { alpha };
    Relaxed { lines: Lines { ls, lb: 0.0, us, ub }, alpha_range: Some((alpha, 1.0)) }
}

/// Smooth (or piecewise smooth) activations: candidate slopes (the chord, the tangent slopes
/// at l, u and the midpoint, and 0); for each, the extreme values of h(x) = f(x) - s x over
/// [l, u] are bounded from a grid of 33 points plus the kink at 0: an interior extremum x* has
/// h'(x*) = 0, so the nearest grid point is within sup|f''| (delta/2)^2 / 2 of it. The lower
/// line keeps the candidate that is highest at the midpoint, the upper one the lowest (this
/// minimizes the area between line and curve).
fn relax_smooth(a: Activation, l: f64, u: f64) -> Lines {
    let (flo, fhi) = activation_range(a, l, u);
    let width = u - l;
    let mid = 0.5 * (l + u);
    // Slope 0: the range itself.
    let mut best = Lines { ls: 0.0, lb: flo, us: 0.0, ub: fhi };
    if width.is_nan() || width <= 0.0 || !width.is_finite() {
        return best;
    }
    let m2 = second_derivative_bound(a);
    let delta = width / GRID as f64;
    let mut xs: Vec<f64> = (0..=GRID).map(|i| if i == GRID { u } else { l + delta * i as f64 }).collect();
    if l < 0.0 && 0.0 < u {
        xs.push(0.0);
    }
    let fs: Vec<f64> = xs.iter().map(|&x| a.apply(x)).collect();
    let fmax = fs.iter().fold(0.0f64, |m, f| m.max(f.abs()));
    let xmax = l.abs().max(u.abs());
    let grid_err = m2 * delta * delta / 8.0;
    let chord = (a.apply(u) - a.apply(l)) / width;
    for s in [chord, a.derivative(l), a.derivative(u), a.derivative(mid)] {
        if !s.is_finite() {
            continue;
        }
        let (mut hmin, mut hmax) = (f64::INFINITY, f64::NEG_INFINITY);
        for (x, f) in xs.iter().zip(&fs) {
            let h = f - s * x;
            hmin = hmin.min(h);
            hmax = hmax.max(h);
        }
        // libm is within a few ulps of f; s x and the subtraction round too.
        let slack = grid_err + 16.0 * U * (fmax + s.abs() * xmax) + TINY;
        let (lb, ub) = (hmin - slack, hmax + slack);
        if s * mid + lb > best.ls * mid + best.lb {
            best.ls = s;
            best.lb = lb;
        }
        if s * mid + ub < best.us * mid + best.ub {
            best.us = s;
            best.ub = ub;
        }
    }
    best
}

/// Max pooling relaxation of one output element from the bounds of its window's inputs
/// (indices into the input value): below, the input with the largest lower bound; above, that
/// input exactly when it dominates every other input, otherwise the largest upper bound.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MaxRelaxed {
    pub lower_src: usize,
    /// `Some(i)`: y <= x_i (and then y = x_i); `None`: y <= `upper_const`.
    pub upper_src: Option<usize>,
    pub upper_const: f64,
}

pub fn relax_max(window: &[usize], lo: &[f64], hi: &[f64]) -> MaxRelaxed {
    let mut best = window[0];
    for &i in window {
        if lo[i] > lo[best] {
            best = i;
        }
    }
    let others_hi = window.iter().filter(|&&i| i != best).map(|&i| hi[i]).fold(f64::NEG_INFINITY, f64::max);
    let top = window.iter().map(|&i| hi[i]).fold(f64::NEG_INFINITY, f64::max);
    let upper_src = if lo[best] >= others_hi { Some(best) } else { None };
    MaxRelaxed { lower_src: best, upper_src, upper_const: top }
}
