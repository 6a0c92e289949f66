//! How far can the pruned network's output move? sup over a box S of ||f(s) - f_hat(s)||_2.
//!
//! Three answers, from loose-and-instant to tight-and-searched:
//! - [`closed_form`]: paper 000's Theorem 2 / Corollary 1 in a *sound* form. The printed
//!   corollary sums C_k,max ||dW_k|| with constants from the unpruned norms, which is only
//!   first-order correct (../shared/notes, 000 note 6); we telescope instead: through a layer,
//!   ||W h - W_hat h_hat|| <= ||W|| ||h - h_hat|| + ||dW|| ||h_hat|| + ||db||, with ||h_hat||
//!   bounded over the box by the *pruned* network. Activations enter through their Lipschitz
//!   constant L and |sigma(0)| (||sigma(z)|| <= L ||z|| + |sigma(0)| sqrt(n)), so GELU (L ~ 1.13)
//!   and sigmoid (sigma(0) = 1/2) are covered rather than refused.
//! - [`certified`]: two bound propagations intersected: CROWN / alpha-CROWN on the difference
//!   network x -> f(x) - f_hat(x) (both branches read the same input), and the differential
//!   propagation of lipcert_bounds::diff (exact for unchanged weights, so it goes to 0 with the
//!   pruning); refined by splitting the input box.
//! - [`observed_max`]: the largest deviation actually found (sampling, then projected gradient
//!   ascent). Not a bound: a lower bound on the true supremum, the yardstick for the other two.

use lipcert_bounds::diff::same_graph;
use lipcert_bounds::{bound, difference_bounds, InputSet, Interval, Method, Options};
use lipcert_core::rounding::{gamma, up};
use lipcert_core::{Dense, GraphError, Network, NetworkBuilder, Op, Rng};
use lipcert_spectral::lipschitz::{activation_lipschitz, conv_bound, dense_bound, Norm};
use rayon::prelude::*;
use serde::Serialize;
use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::time::Instant;

#[derive(Debug, thiserror::Error)]
pub enum DeviationError {
    #[error("{0}")]
    Invalid(String),
    #[error("the closed-form bound covers chains of Dense, Conv, Affine, activation, Reshape, Transpose and Pad nodes; node '{node}' is {kind}")]
    Unsupported { node: String, kind: &'static str },
    #[error(transparent)]
    Graph(#[from] GraphError),
    #[error(transparent)]
    Prune(#[from] crate::pruners::PruneError),
}

/// One layer's share of the closed-form bound.
#[derive(Clone, Debug, Serialize)]
pub struct LayerTerm {
    pub node: String,
    /// Certified upper bounds on ||W||_2 and ||W_hat||_2.
    pub w_norm: f64,
    pub w_hat_norm: f64,
    /// Certified upper bound on ||W - W_hat||_2.
    pub dw_norm: f64,
    /// C_k,max generalized: sup over the box of ||f(s) - f_k(s)|| <= c_max ||dW_k||_2 when only
    /// this layer is pruned (Theorem 2 with activation constants).
    pub c_max: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct ClosedForm {
    /// Sound: sup over the box of ||f - f_hat||_2 is at most this.
    pub bound: f64,
    /// The printed Corollary 1, sum_k C_k,max ||dW_k||: first-order only, NOT a bound.
    pub printed_first_order: f64,
    pub layers: Vec<LayerTerm>,
}

/// A step of the chain, with the norms both recursions need.
enum Step {
    Linear {
        node: String,
        w: f64,
        w_hat: f64,
        dw: f64,
        b: f64,
        b_hat: f64,
        db: f64,
    },
    Activation {
        lip: f64,
        at_zero: f64,
        n: usize,
    },
    /// Constant padding adds |value| sqrt(#padded) to the norm of a value, nothing to differences.
    Pad {
        extra: f64,
    },
}

/// Upper bound on ||v||_2: a sum of n squares is within gamma(n) of the exact one; the margin
/// also covers one rounding per entry when v is a computed difference.
fn l2(v: &[f64]) -> f64 {
    up(v.iter().map(|x| x * x).sum::<f64>().sqrt() * (1.0 + gamma(v.len() + 4)))
}

/// The norm of a computed difference W - W' bounds the exact one's up to the rounding of each
/// entry (|E| <= u |W - W'| elementwise, so ||E||_2 <= ||E||_F <= u sqrt(entries) ||W - W'||_2).
fn exact_difference_norm(computed: f64, entries: usize) -> f64 {
    up(computed * (1.0 + f64::EPSILON * (entries as f64).sqrt()))
}

fn chain(a: &Network, b: &Network) -> Result<Vec<Step>, DeviationError> {
    same_graph(a, b)?;
    let mut steps = Vec::new();
    for (k, (x, y)) in a.nodes.iter().zip(&b.nodes).enumerate() {
        if x.inputs != [k] {
            return Err(DeviationError::Invalid(format!(
                "the closed-form bound needs a chain of layers; node '{}' does not read the previous node",
                x.name
            )));
        }
        let in_shape = &a.shapes[k];
        let out_len = a.value_len(k + 1);
        let linear = |w: f64, w_hat: f64, dw: f64, b: &[f64], b_hat: &[f64], repeat: usize| {
            let db: Vec<f64> = b.iter().zip(b_hat).map(|(p, q)| p - q).collect();
            let scale = (repeat as f64).sqrt();
            Step::Linear {
                node: x.name.clone(),
                w,
                w_hat,
                dw,
                b: up(l2(b) * scale),
                b_hat: up(l2(b_hat) * scale),
                db: up(l2(&db) * scale),
            }
        };
        steps.push(match (&x.op, &y.op) {
            (Op::Dense(p), Op::Dense(q)) => {
                let delta = Dense {
                    weight: p.weight.iter().zip(&q.weight).map(|(u, v)| u - v).collect(),
                    bias: vec![0.0; p.out_features],
                    ..p.clone()
                };
                let dw = if delta.weight.iter().all(|&v| v == 0.0) {
                    0.0
                } else {
                    exact_difference_norm(dense_bound(&delta, Norm::L2).0, delta.weight.len())
                };
                // The dense layer acts on the last axis: rows of a [.., in] value share it.
                let repeat = out_len / p.out_features;
                linear(dense_bound(p, Norm::L2).0, dense_bound(q, Norm::L2).0, dw, &p.bias, &q.bias, repeat)
            }
            (Op::Conv2d(p), Op::Conv2d(q)) => {
                let mut delta = p.clone();
                delta.weight = p.weight.iter().zip(&q.weight).map(|(u, v)| u - v).collect();
                let dw = if delta.weight.iter().all(|&v| v == 0.0) {
                    0.0
                } else {
                    exact_difference_norm(conv_bound(&delta, in_shape, Norm::L2).0, delta.weight.len())
                };
                let repeat = out_len / p.out_channels;
                linear(
                    conv_bound(p, in_shape, Norm::L2).0,
                    conv_bound(q, in_shape, Norm::L2).0,
                    dw,
                    &p.bias,
                    &q.bias,
                    repeat,
                )
            }
            (Op::Affine { scale: s, shift: t }, Op::Affine { scale: s2, shift: t2 }) => {
                let max_abs = |v: &[f64]| v.iter().fold(0.0f64, |m, x| m.max(x.abs()));
                let ds: Vec<f64> = s.iter().zip(s2).map(|(u, v)| u - v).collect();
                linear(max_abs(s), max_abs(s2), up(max_abs(&ds)), t, t2, 1)
            }
            (Op::Activation(p), Op::Activation(q)) if p == q => {
                Step::Activation { lip: activation_lipschitz(*p), at_zero: p.apply(0.0).abs(), n: out_len }
            }
            (Op::Reshape { .. }, _) | (Op::Transpose { .. }, _) => continue,
            (Op::Pad { value, .. }, Op::Pad { value: v2, .. }) if value == v2 => {
                Step::Pad { extra: up(value.abs() * ((out_len - a.value_len(k)) as f64).sqrt()) }
            }
            // Every operator is listed, so that a new one must get a rule: residual adds and
            // pooling have none yet, and mismatched pairs (or pads) have no common bound.
            (
                Op::Dense(_)
                | Op::Conv2d(_)
                | Op::Affine { .. }
                | Op::Activation(_)
                | Op::Add
                | Op::AvgPool(_)
                | Op::MaxPool(_)
                | Op::Pad { .. },
                _,
            ) => return Err(DeviationError::Unsupported { node: x.name.clone(), kind: x.op.kind() }),
        });
    }
    Ok(steps)
}

/// sup over the box [lo, hi] of ||s||_2.
fn box_norm(lo: &[f64], hi: &[f64]) -> f64 {
    l2(&lo.iter().zip(hi).map(|(l, h)| l.abs().max(h.abs())).collect::<Vec<_>>())
}

fn check_box(net: &Network, lo: &[f64], hi: &[f64]) -> Result<(), DeviationError> {
    if lo.len() != net.input_len() || hi.len() != net.input_len() {
        return Err(DeviationError::Invalid(format!(
            "the box has {} and {} bounds, the model {} inputs",
            lo.len(),
            hi.len(),
            net.input_len()
        )));
    }
    if let Some(i) = (0..lo.len()).find(|&i| !lo[i].is_finite() || !hi[i].is_finite() || lo[i] > hi[i]) {
        return Err(DeviationError::Invalid(format!(
            "box element {i}: [{}, {}] is not a finite interval",
            lo[i], hi[i]
        )));
    }
    Ok(())
}

/// The closed-form bound (sound) and the paper's printed first-order sum (not a bound).
pub fn closed_form(original: &Network, pruned: &Network, lo: &[f64], hi: &[f64]) -> Result<ClosedForm, DeviationError> {
    check_box(original, lo, hi)?;
    let steps = chain(original, pruned)?;
    let s = box_norm(lo, hi);
    // Two sound recursions (the roles of W and W_hat swapped); both bound the same quantity.
    // (delta, a_hat): ||h - h_hat|| <= ||W|| delta + ||dW|| ||h_hat|| + ||db||.
    let (mut d1, mut a_hat) = (0.0f64, s);
    // (delta, a): ||h - h_hat|| <= ||W_hat|| delta + ||dW|| ||h|| + ||db||.
    let (mut d2, mut a) = (0.0f64, s);
    // Per linear step: the norm bound of its input in the original network, for C_k,max.
    let mut input_norm = Vec::new();
    for step in &steps {
        match *step {
            Step::Linear { w, w_hat, dw, b, b_hat, db, .. } => {
                input_norm.push(a);
                d1 = up(up(up(w * d1) + up(dw * a_hat)) + db);
                d2 = up(up(up(w_hat * d2) + up(dw * a)) + db);
                a_hat = up(up(w_hat * a_hat) + b_hat);
                a = up(up(w * a) + b);
            }
            Step::Activation { lip, at_zero, n } => {
                let offset = up(at_zero * (n as f64).sqrt());
                d1 = up(lip * d1);
                d2 = up(lip * d2);
                a_hat = up(up(lip * a_hat) + offset);
                a = up(up(lip * a) + offset);
            }
            Step::Pad { extra } => {
                a_hat = up(a_hat + extra);
                a = up(a + extra);
            }
        }
    }
    // C_k,max: the input norm of layer k times the gains of everything after it.
    let mut layers = Vec::new();
    let mut gain_after = 1.0f64;
    let mut li = input_norm.len();
    for step in steps.iter().rev() {
        match step {
            Step::Linear { node, w, w_hat, dw, .. } => {
                li -= 1;
                layers.push(LayerTerm {
                    node: node.clone(),
                    w_norm: *w,
                    w_hat_norm: *w_hat,
                    dw_norm: *dw,
                    c_max: up(gain_after * input_norm[li]),
                });
                gain_after = up(gain_after * w);
            }
            Step::Activation { lip, .. } => gain_after = up(gain_after * lip),
            Step::Pad { .. } => {}
        }
    }
    layers.reverse();
    let printed = layers.iter().map(|l| l.c_max * l.dw_norm).sum();
    Ok(ClosedForm { bound: d1.min(d2), printed_first_order: printed, layers })
}

/// The network x -> f(x) - g(x) (both read x). Bound propagation on it keeps the correlation
/// between the two branches that bounding f and g separately would lose.
pub fn difference_network(f: &Network, g: &Network) -> Result<Network, DeviationError> {
    if f.input_shape() != g.input_shape() || f.output_shape() != g.output_shape() {
        return Err(DeviationError::Invalid(format!(
            "the models differ in shape: inputs {:?} and {:?}, outputs {:?} and {:?}",
            f.input_shape(),
            g.input_shape(),
            f.output_shape(),
            g.output_shape()
        )));
    }
    let mut b = NetworkBuilder::new(f.input_name(), f.input_shape().to_vec());
    let mut outs = Vec::new();
    for (prefix, net) in [("original/", f), ("pruned/", g)] {
        let mut id = vec![0usize; net.shapes.len()];
        for (k, node) in net.nodes.iter().enumerate() {
            let inputs: Vec<usize> = node.inputs.iter().map(|&v| id[v]).collect();
            id[k + 1] = b.push(format!("{prefix}{}", node.name), node.op.clone(), &inputs)?;
        }
        outs.push(id[net.output]);
    }
    let m = f.output_len();
    let neg = b.push("pruned/negate", Op::Affine { scale: vec![-1.0; m], shift: vec![0.0; m] }, &[outs[1]])?;
    let diff = b.push("difference", Op::Add, &[outs[0], neg])?;
    Ok(b.finish(diff, "difference")?)
}

#[derive(Clone, Debug)]
pub struct CertifyOptions {
    pub method: Method,
    /// Input-box splits (each one more bound computation on each half). Splitting helps on
    /// low-dimensional inputs (controllers, ACAS Xu); on images it does little.
    pub splits: usize,
    pub deadline: Option<Instant>,
    pub bounds: Options,
}

impl Default for CertifyOptions {
    fn default() -> Self {
        CertifyOptions { method: Method::Crown, splits: 0, deadline: None, bounds: Options::default() }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Certified {
    /// Certified: sup over the box of ||f - f_hat||_2 <= l2.
    pub l2: f64,
    /// Certified: sup over the box of |f_j - f_hat_j| <= per_output[j].
    pub per_output: Vec<f64>,
    pub method: &'static str,
    /// Boxes bounded (1 + 2 per split).
    pub boxes: usize,
}

struct Leaf {
    l2: f64,
    per_output: Vec<f64>,
    lo: Vec<f64>,
    hi: Vec<f64>,
}

impl PartialEq for Leaf {
    fn eq(&self, other: &Self) -> bool {
        self.l2.total_cmp(&other.l2) == Ordering::Equal
    }
}
impl Eq for Leaf {}
impl PartialOrd for Leaf {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Leaf {
    fn cmp(&self, other: &Self) -> Ordering {
        self.l2.total_cmp(&other.l2)
    }
}

/// Both sound bounds on one box, intersected: CROWN on the difference network and the
/// differential propagation (which is exact for unchanged layers).
fn bound_leaf(pair: &Pair, lo: Vec<f64>, hi: Vec<f64>, opts: &CertifyOptions) -> Result<Leaf, DeviationError> {
    let set = InputSet::Box(Interval::new(lo.clone(), hi.clone()));
    let b = bound(&pair.diff, &set, &[], opts.method, &opts.bounds)?;
    let d = difference_bounds(pair.f, pair.g, &set, opts.method, &opts.bounds)?;
    let out = &d[pair.f.output];
    let per_output: Vec<f64> = (0..out.lo.len())
        .map(|j| {
            let (l, h) = (b.lower[j].max(out.lo[j]), b.upper[j].min(out.hi[j]));
            l.abs().max(h.abs())
        })
        .collect();
    Ok(Leaf { l2: l2(&per_output), per_output, lo, hi })
}

struct Pair<'a> {
    f: &'a Network,
    g: &'a Network,
    diff: Network,
}

/// Certified bound on sup over [lo, hi] of ||f(s) - g(s)||_2. The bound is the worst leaf of
/// a partition of the box; the worst leaf is split first.
pub fn certified(
    f: &Network,
    g: &Network,
    lo: &[f64],
    hi: &[f64],
    opts: &CertifyOptions,
) -> Result<Certified, DeviationError> {
    check_box(f, lo, hi)?;
    let pair = Pair { f, g, diff: difference_network(f, g)? };
    let width: Vec<f64> = lo.iter().zip(hi).map(|(l, h)| h - l).collect();
    let mut heap = BinaryHeap::new();
    heap.push(bound_leaf(&pair, lo.to_vec(), hi.to_vec(), opts)?);
    let mut boxes = 1;
    for _ in 0..opts.splits {
        if opts.deadline.is_some_and(|d| Instant::now() >= d) {
            break;
        }
        let worst = heap.pop().expect("the partition is never empty");
        // Split where the leaf is widest relative to the whole box.
        let dim = (0..lo.len()).filter(|&i| width[i] > 0.0).max_by(|&i, &j| {
            ((worst.hi[i] - worst.lo[i]) / width[i]).total_cmp(&((worst.hi[j] - worst.lo[j]) / width[j]))
        });
        let Some(dim) = dim else {
            heap.push(worst);
            break;
        };
        let mid = 0.5 * (worst.lo[dim] + worst.hi[dim]);
        let (mut left_hi, mut right_lo) = (worst.hi.clone(), worst.lo.clone());
        left_hi[dim] = mid;
        right_lo[dim] = mid;
        let (a, b) = rayon::join(
            || bound_leaf(&pair, worst.lo.clone(), left_hi, opts),
            || bound_leaf(&pair, right_lo, worst.hi.clone(), opts),
        );
        heap.push(a?);
        heap.push(b?);
        boxes += 2;
    }
    let m = f.output_len();
    let per_output = heap.iter().fold(vec![0.0f64; m], |mut acc, leaf| {
        acc.iter_mut().zip(&leaf.per_output).for_each(|(a, b)| *a = a.max(*b));
        acc
    });
    let l2 = heap.peek().map_or(0.0, |leaf| leaf.l2);
    Ok(Certified { l2, per_output, method: opts.method.name(), boxes })
}

#[derive(Clone, Debug, Serialize)]
pub struct Observed {
    /// The largest ||f(s) - f_hat(s)||_2 found (a lower bound on the supremum).
    pub max: f64,
    /// Where it was found.
    pub at: Vec<f64>,
    pub samples: usize,
    pub ascent_starts: usize,
    pub ascent_steps: usize,
}

/// Uniform samples of the box, then projected sign-gradient ascent on ||d||^2 from the best
/// samples (plus random starts) with a halving step.
pub fn observed_max(
    f: &Network,
    g: &Network,
    lo: &[f64],
    hi: &[f64],
    samples: usize,
    seed: u64,
) -> Result<Observed, DeviationError> {
    check_box(f, lo, hi)?;
    let diff = &difference_network(f, g)?;
    let n_in = diff.input_len();
    let m = diff.output_len();
    const BATCH: usize = 4096;
    const STARTS: usize = 16;
    const STEPS: usize = 100;
    let batches = samples.div_ceil(BATCH);
    // Every batch draws from its own seeded stream: the result does not depend on threads.
    let best: Vec<(f64, Vec<f64>)> = (0..batches)
        .into_par_iter()
        .map(|bi| -> Result<Vec<(f64, Vec<f64>)>, DeviationError> {
            let count = BATCH.min(samples - bi * BATCH);
            let mut rng = Rng::new(seed ^ (bi as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
            let x: Vec<f64> = (0..count * n_in).map(|i| rng.range(lo[i % n_in], hi[i % n_in])).collect();
            let y = diff.forward(&x, count)?;
            let mut scored: Vec<(f64, Vec<f64>)> = y
                .chunks_exact(m)
                .zip(x.chunks_exact(n_in))
                .map(|(d, s)| (d.iter().map(|v| v * v).sum::<f64>().sqrt(), s.to_vec()))
                .collect();
            scored.sort_by(|a, b| b.0.total_cmp(&a.0));
            scored.truncate(STARTS);
            Ok(scored)
        })
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .flatten()
        .collect();
    let mut best = best;
    best.sort_by(|a, b| b.0.total_cmp(&a.0));
    let (mut top, mut at) = best.first().cloned().unwrap_or((0.0, lo.to_vec()));
    // Ascent from the best samples and from as many random points.
    let mut rng = Rng::new(seed.wrapping_add(1));
    let mut starts: Vec<Vec<f64>> = best.iter().take(STARTS / 2).map(|(_, s)| s.clone()).collect();
    while starts.len() < STARTS {
        starts.push((0..n_in).map(|i| rng.range(lo[i], hi[i])).collect());
    }
    let n = starts.len();
    let mut x: Vec<f64> = starts.concat();
    let mut step = 0.25;
    for it in 0..STEPS {
        let trace = diff.trace(&x, n)?;
        let d = trace.output(diff).to_vec();
        for (dj, s) in d.chunks_exact(m).zip(x.chunks_exact(n_in)) {
            let norm = dj.iter().map(|v| v * v).sum::<f64>().sqrt();
            if norm > top {
                top = norm;
                at = s.to_vec();
            }
        }
        if it + 1 == STEPS {
            break;
        }
        let grad = diff.vjp(&trace, &d, false)?.input;
        for (i, (v, g)) in x.iter_mut().zip(&grad).enumerate() {
            let k = i % n_in;
            *v = (*v + step * (hi[k] - lo[k]) * g.signum()).clamp(lo[k], hi[k]);
        }
        if it % 20 == 19 {
            step *= 0.5;
        }
    }
    Ok(Observed { max: top, at, samples, ascent_starts: n, ascent_steps: STEPS })
}
