//! CROWN and alpha-CROWN: backward linear bound propagation (Zhang et al. 2018; Xu et al. 2021).
//!
//! To bound a row `a . v` of some value v from below, the row is carried backward through the
//! graph: through a linear node it becomes `(a W) . x + a . b`; through a nonlinear node each
//! coefficient picks the relaxation line that keeps the inequality (the lower line where the
//! coefficient is >= 0, the upper line where it is < 0); at the input the linear function is
//! minimized over the input set. Relaxations need bounds on the nonlinear node's input, which
//! come from the same procedure run on every earlier pre-activation value ("intermediate
//! bounds"). The three variants differ only there (see docs/GUARANTEES.md):
//! - `crown-pure`: every intermediate bound by CROWN alone (the textbook algorithm), except
//!   where IBP is exact (`ibp_exact_values`: the first layer after a box), which CROWN would
//!   only repeat with more rounding;
//! - `crown` (default): the IBP step from the previous (already tightened) bounds, intersected
//!   with CROWN for every neuron the IBP step leaves unstable (ReLU-like inputs; all neurons for
//!   smooth activations and max pooling);
//! - `alpha-crown`: `crown`'s intermediate bounds, then the lower slopes of the unstable
//!   ReLU-like neurons are optimized per output row by projected Adam ascent on the bound.
//!
//! Rounding: every step of the backward pass adds its worst-case rounding error (gamma(k) times
//! the magnitudes, using the IBP enclosure of each value) to a per-row error term that is
//! subtracted at the end, so the returned lower bounds hold for the exact network.

use crate::ibp::{abs_conv, abs_dense, check_box, ibp_node, ibp_spec, Interval, TINY};
use crate::input_set::InputSet;
use crate::relax::{relax_activation, relax_max, MaxRelaxed, Relaxed};
use lipcert_core::kernels::{avgpool_forward, conv_forward, dense_forward, for_each_window, pad_scatter_index};
use lipcert_core::rounding::{gamma, U};
use lipcert_core::{Activation, GraphError, Network, Op, ValueId};
use rayon::prelude::*;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Ibp,
    CrownPure,
    Crown,
    AlphaCrown,
}

impl Method {
    pub fn name(self) -> &'static str {
        match self {
            Method::Ibp => "ibp",
            Method::CrownPure => "crown-pure",
            Method::Crown => "crown",
            Method::AlphaCrown => "alpha-crown",
        }
    }
}

#[derive(Clone, Debug)]
pub struct Options {
    /// alpha-CROWN: projected Adam steps on the slopes.
    pub alpha_iterations: usize,
    /// alpha-CROWN: Adam learning rate (of the first step).
    pub alpha_lr: f64,
    /// alpha-CROWN: the learning rate is multiplied by this after every step.
    pub alpha_lr_decay: f64,
    /// Rows carried backward together (memory is rows x the largest value length).
    pub block_rows: usize,
    /// alpha-CROWN: also optimize separate slopes for every intermediate bound.
    pub alpha_intermediate: bool,
    /// Stop refining at this instant; what is returned is still sound, only looser. alpha-CROWN
    /// stops optimizing (every iterate's bound is sound, the best so far is kept), and a block
    /// of CROWN rows started after it is not run: intermediate neurons keep their IBP bounds,
    /// specification and output rows get -inf (+inf), so crown and alpha-crown return IBP's
    /// bounds for them (crown-pure the infinite ones). So the engine finishes within
    /// about one block's backward pass of the deadline, also on conv nets where one CROWN pass
    /// takes seconds (docs/GUARANTEES.md, "Timeouts").
    pub deadline: Option<std::time::Instant>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            alpha_iterations: 20,
            // Chosen against auto_LiRPA's alpha-CROWN (docs/ARCHITECTURE.md, "alpha-CROWN step").
            alpha_lr: 0.3,
            alpha_lr_decay: 0.98,
            block_rows: 64,
            alpha_intermediate: true,
            deadline: None,
        }
    }
}

/// Certified bounds on the network's outputs and on linear specifications over an input set.
#[derive(Clone, Debug)]
pub struct Bounds {
    pub method: Method,
    /// Per output element.
    pub lower: Vec<f64>,
    pub upper: Vec<f64>,
    /// Per specification row c: a lower bound of c . y.
    pub spec_lower: Vec<f64>,
}

/// Bounds of the outputs and of `spec` rows (each of the output's length) over `set`.
pub fn bound(
    net: &Network,
    set: &InputSet,
    spec: &[Vec<f64>],
    method: Method,
    opts: &Options,
) -> Result<Bounds, GraphError> {
    let out_len = net.output_len();
    if let Some((i, c)) = spec.iter().enumerate().find(|(_, c)| c.len() != out_len || c.iter().any(|v| !v.is_finite()))
    {
        return Err(GraphError::Data(format!(
            "specification row {i} has {} finite coefficients, expected {out_len}",
            c.iter().filter(|v| v.is_finite()).count()
        )));
    }
    // Both results are certified: keep the tighter side of each.
    let tighter = |a: Bounds, b: Bounds| Bounds {
        method,
        lower: a.lower.iter().zip(&b.lower).map(|(x, y)| x.max(*y)).collect(),
        upper: a.upper.iter().zip(&b.upper).map(|(x, y)| x.min(*y)).collect(),
        spec_lower: a.spec_lower.iter().zip(&b.spec_lower).map(|(x, y)| x.max(*y)).collect(),
    };
    match method {
        // CROWN's bound is not monotone in the intermediate bounds (the adaptive slopes can
        // flip), so the intersected intermediate bounds are not always better than auto_LiRPA's
        // rule (IBP for stable neurons, CROWN alone for the rest): run both, keep the tighter.
        // The two share every CROWN pass up to the first value where their bounds differ.
        Method::Crown => {
            let (ours, theirs) = Engine::twin(net, set, opts)?;
            let b = engine_bounds(&ours, spec, method);
            Ok(match theirs {
                Some(t) => tighter(b, engine_bounds(&t, spec, method)),
                None => b,
            })
        }
        // Every alpha-CROWN iterate is a valid bound, and keeping crown's too makes alpha-CROWN
        // never looser than crown.
        Method::AlphaCrown => Ok(tighter(
            bound(net, set, spec, Method::Crown, opts)?,
            bound_once(net, set, spec, Method::AlphaCrown, true, opts)?,
        )),
        _ => bound_once(net, set, spec, method, true, opts),
    }
}

/// Sound elementwise bounds of every value of the network (index = value id) over `set`, as
/// the engine computes them for `method` (the intermediate bounds a MILP encoding or a
/// branch-and-bound split needs). `Crown` uses lipcert's intersected rule.
pub fn value_bounds(
    net: &Network,
    set: &InputSet,
    method: Method,
    opts: &Options,
) -> Result<Vec<Interval>, GraphError> {
    Ok(Engine::new(net, set, method, true, opts, &[], None, true)?.enclosure)
}

/// CROWN with lipcert's intersected intermediate bounds only (one engine run instead of
/// `bound`'s two): half the cost, occasionally looser. For branch and bound on many sub-boxes.
pub fn bound_crown_fast(
    net: &Network,
    set: &InputSet,
    spec: &[Vec<f64>],
    opts: &Options,
) -> Result<Bounds, GraphError> {
    bound_once(net, set, spec, Method::Crown, true, opts)
}

/// A ReLU split decision: element `index` of value `value` (the input of a ReLU or LeakyReLU
/// node) is restricted to `>= 0` (`active`) or `<= 0` (inactive).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Split {
    pub value: ValueId,
    pub index: usize,
    pub active: bool,
}

#[derive(Clone, Debug)]
pub struct SplitOptions {
    /// `alpha_iterations` and `alpha_lr` drive the joint alpha(-beta) optimization of the
    /// specification rows (0 iterations: CROWN with the split clamps only).
    pub crown: Options,
    /// beta-CROWN: optimize a Lagrange multiplier per split and row jointly with the slopes.
    pub beta: bool,
    /// Adam learning rate of the multipliers.
    pub beta_lr: f64,
    /// alpha-CROWN for the intermediate bounds that are (re)computed (costly; for the root).
    pub alpha_intermediate: bool,
    /// With `parent` bounds: recompute (CROWN with the clamps) the intermediate bounds after
    /// the earliest split that the parent does not have. Otherwise every intermediate bound is
    /// the parent's (clamped), as in beta-CROWN, and the splits reach the other neurons through
    /// the multipliers only.
    pub recompute_intermediate: bool,
}

impl Default for SplitOptions {
    fn default() -> Self {
        SplitOptions {
            crown: Options { alpha_iterations: 10, ..Options::default() },
            beta: true,
            beta_lr: 0.05,
            alpha_intermediate: false,
            recompute_intermediate: true,
        }
    }
}

/// Bounds over the part of an input box where every split holds (a subdomain).
#[derive(Clone, Debug)]
pub struct SplitBounds {
    /// Per specification row c: a lower bound of c . y over the subdomain.
    pub spec_lower: Vec<f64>,
    /// Per value id: sound bounds over the subdomain of every value that feeds a nonlinear node
    /// (split elements clamped); `None` for the others. Pass them in a `Parent` for a child.
    pub pre_activation: Vec<Option<Interval>>,
    /// Per value id of a ReLU-like node's input: each specification row's backward coefficient
    /// on that node's output, `[rows, length]`, at the row's best iterate (for branching).
    pub coefficients: Vec<Option<Vec<f64>>>,
    /// Per specification row: the input minimizing its relaxed bound, `[rows, input length]`.
    pub minimizers: Vec<f64>,
    /// The optimized slopes and multipliers of each row's best iterate (a warm start for the
    /// children).
    pub warm: Warm,
}

/// What a parent subdomain knows about the rows: a starting point for the alpha-beta
/// optimization, per node lower slopes `[rows, node input length]` (used where admissible,
/// clamped into the admissible range) and multipliers `[rows, splits]` in the order of the
/// splits given (negative or non-finite ones count as 0); and `lower`, per row (or empty), a
/// lower bound already certified over a superset of the subdomain, kept when tighter. CROWN is
/// not monotone in the intermediate bounds (adaptive slopes can flip), so a split bound alone
/// can come out looser than its parent's; with `lower` it never does.
#[derive(Clone, Debug, Default)]
pub struct Warm {
    pub alpha: Vec<Option<Vec<f64>>>,
    pub beta: Vec<f64>,
    pub lower: Vec<f64>,
}

/// A parent subdomain's bounds for `bound_with_splits` on a child: the `pre_activation` of a
/// `bound_with_splits` call with `splits`, every one of which the child must also have (so the
/// parent's subdomain contains the child's and its bounds hold there).
#[derive(Clone, Copy, Debug)]
pub struct Parent<'p> {
    pub pre_activation: &'p [Option<Interval>],
    pub splits: &'p [Split],
}

fn check_splits(net: &Network, splits: &[Split], parent: Option<Parent>) -> Result<(), GraphError> {
    if let Some(p) = parent {
        if p.pre_activation.len() != net.shapes.len() || p.splits.iter().any(|s| !splits.contains(s)) {
            return Err(GraphError::Data(
                "the parent's bounds are not for this network, or the parent has a split the subdomain lacks".into(),
            ));
        }
        for (v, iv) in p.pre_activation.iter().enumerate() {
            if iv.as_ref().is_some_and(|iv| iv.lo.len() != net.value_len(v) || iv.hi.len() != net.value_len(v)) {
                return Err(GraphError::Data(format!("the parent's bounds of value {v} have the wrong length")));
            }
        }
    }
    for s in splits {
        let ok = net.nodes.iter().any(|n| n.inputs[0] == s.value && is_piecewise_linear(&n.op))
            && s.index < net.value_len(s.value);
        if !ok {
            return Err(GraphError::Data(format!(
                "split on element {} of value {}: not an element of a ReLU-like node's input",
                s.index, s.value
            )));
        }
    }
    Ok(())
}

/// CROWN / alpha-CROWN / beta-CROWN bounds of `spec` rows over the subdomain of the input set
/// `set` where every split holds; `Ok(None)` when the splits are infeasible there (some
/// enclosure over the subdomain came out empty, so no point of the set satisfies them:
/// vacuously verified).
///
/// Each split's pre-activation interval is clamped to its side before the ReLU is relaxed, so
/// its relaxation is exact (identity or zero), and every later intermediate bound is
/// recomputed with the clamped relaxations (CROWN, intersected with the IBP step and with
/// `parent`'s bounds). Values up to the earliest split the parent lacks take `parent`'s bounds
/// unchanged.
/// With `opts.beta` the rows also carry the split constraints with optimized multipliers.
/// `warm.lower` must hold on a superset of this subdomain (e.g. the parent's `spec_lower`).
pub fn bound_with_splits(
    net: &Network,
    set: &InputSet,
    spec: &[Vec<f64>],
    splits: &[Split],
    parent: Option<Parent>,
    warm: Option<&Warm>,
    opts: &SplitOptions,
) -> Result<Option<SplitBounds>, GraphError> {
    let out_len = net.output_len();
    if let Some((i, _)) = spec.iter().enumerate().find(|(_, c)| c.len() != out_len || c.iter().any(|v| !v.is_finite()))
    {
        return Err(GraphError::Data(format!("specification row {i} is not {out_len} finite coefficients")));
    }
    check_splits(net, splits, parent)?;
    let crown = Options { alpha_intermediate: opts.alpha_intermediate, ..opts.crown.clone() };
    let engine = Engine::new(net, set, Method::AlphaCrown, true, &crown, splits, parent, opts.recompute_intermediate)?;
    if engine.infeasible {
        return Ok(None);
    }
    let m = spec.len();
    let flat: Vec<f64> = spec.iter().flatten().copied().collect();
    let (lower, rec, minimizers, mut next) = if m == 0 {
        (Vec::new(), vec![None; net.nodes.len()], Vec::new(), Warm::default())
    } else {
        let beta_splits: &[Split] = if opts.beta { splits } else { &[] };
        let o = engine.optimize(net.output, flat, m, beta_splits, opts.beta_lr, true, warm);
        (o.best, o.rec, o.x, o.warm)
    };
    let mut spec_lower: Vec<f64> =
        ibp_spec(net, &engine.enclosure, spec).iter().zip(&lower).map(|(a, b)| a.max(*b)).collect();
    if let Some(w) = warm.filter(|w| w.lower.len() == m) {
        for (s, l) in spec_lower.iter_mut().zip(&w.lower) {
            *s = s.max(*l);
        }
    }
    next.lower = spec_lower.clone();
    let mut pre_activation = vec![None; net.shapes.len()];
    let mut coefficients = vec![None; net.shapes.len()];
    for (k, node) in net.nodes.iter().enumerate() {
        if is_nonlinear(&node.op) {
            pre_activation[node.inputs[0]] = Some(engine.enclosure[node.inputs[0]].clone());
        }
        if is_piecewise_linear(&node.op) {
            coefficients[node.inputs[0]] = Some(rec[k].clone().unwrap_or_else(|| vec![0.0; m * net.value_len(k + 1)]));
        }
    }
    Ok(Some(SplitBounds { spec_lower, pre_activation, coefficients, minimizers, warm: next }))
}

/// Sound bounds of every value over the subdomain of `set` where the splits hold (as
/// `bound_with_splits` computes them, CROWN intermediate bounds), for a MILP encoding of the
/// subdomain; `Ok(None)` when the splits are infeasible.
pub fn split_value_bounds(
    net: &Network,
    set: &InputSet,
    splits: &[Split],
    parent: Option<Parent>,
) -> Result<Option<Vec<Interval>>, GraphError> {
    check_splits(net, splits, parent)?;
    let opts = Options::default();
    let engine = Engine::new(net, set, Method::Crown, true, &opts, splits, parent, true)?;
    Ok((!engine.infeasible).then_some(engine.enclosure))
}

/// One run. `intersect`: CROWN's intermediate bounds are intersected with the IBP step
/// (lipcert's rule); otherwise they replace it (auto_LiRPA's rule).
fn bound_once(
    net: &Network,
    set: &InputSet,
    spec: &[Vec<f64>],
    method: Method,
    intersect: bool,
    opts: &Options,
) -> Result<Bounds, GraphError> {
    let engine = Engine::new(net, set, method, intersect, opts, &[], None, true)?;
    Ok(engine_bounds(&engine, spec, method))
}

/// The output and specification bounds of a built engine.
fn engine_bounds(engine: &Engine, spec: &[Vec<f64>], method: Method) -> Bounds {
    let net = engine.net;
    let out_len = net.output_len();
    if method == Method::Ibp {
        let out = &engine.enclosure[net.output];
        return Bounds {
            method,
            lower: out.lo.clone(),
            upper: out.hi.clone(),
            spec_lower: ibp_spec(net, &engine.enclosure, spec),
        };
    }
    // Rows: the specification, then +e_j and -e_j for every output.
    let mut rows: Vec<Vec<f64>> = spec.to_vec();
    for sign in [1.0, -1.0] {
        for j in 0..out_len {
            let mut r = vec![0.0; out_len];
            r[j] = sign;
            rows.push(r);
        }
    }
    let lower = engine.lower_rows(net.output, &rows, method == Method::AlphaCrown);
    let m = spec.len();
    let out = &engine.enclosure[net.output];
    // Both enclosures are sound: keep the tighter side (except for the textbook crown-pure).
    let pure = method == Method::CrownPure;
    Bounds {
        method,
        lower: (0..out_len).map(|j| if pure { lower[m + j] } else { lower[m + j].max(out.lo[j]) }).collect(),
        upper: (0..out_len)
            .map(|j| if pure { -lower[m + out_len + j] } else { (-lower[m + out_len + j]).min(out.hi[j]) })
            .collect(),
        // crown and alpha-crown also keep IBP's bound where it is tighter; crown-pure stays
        // the textbook value.
        spec_lower: if method == Method::CrownPure {
            lower[..m].to_vec()
        } else {
            ibp_spec(net, &engine.enclosure, spec).iter().zip(&lower[..m]).map(|(a, b)| a.max(*b)).collect()
        },
    }
}

/// Certified lower bounds of y_label - y_j for every class j (+inf at j = label).
pub fn margins(
    net: &Network,
    set: &InputSet,
    label: usize,
    method: Method,
    opts: &Options,
) -> Result<Vec<f64>, GraphError> {
    let m = net.output_len();
    if label >= m {
        return Err(GraphError::Data(format!("label {label} is not below the {m} outputs")));
    }
    let others: Vec<usize> = (0..m).filter(|&j| j != label).collect();
    let spec: Vec<Vec<f64>> = others
        .iter()
        .map(|&j| {
            let mut c = vec![0.0; m];
            c[label] = 1.0;
            c[j] = -1.0;
            c
        })
        .collect();
    let b = bound(net, set, &spec, method, opts)?;
    let mut out = vec![f64::INFINITY; m];
    for (&j, v) in others.iter().zip(b.spec_lower) {
        out[j] = v;
    }
    Ok(out)
}

#[derive(Clone)]
enum Relax {
    Elementwise(Vec<Relaxed>),
    Max(Vec<MaxRelaxed>),
}

/// Per-node, per-row lower slopes for alpha-CROWN (`[rows, node input length]`).
type Slopes = Vec<Option<Vec<f64>>>;

#[derive(Clone)]
struct Engine<'a> {
    net: &'a Network,
    set: &'a InputSet,
    opts: &'a Options,
    /// Sound elementwise bounds of every value.
    enclosure: Vec<Interval>,
    /// max |v| over the enclosure, per value (rounding-error magnitudes).
    mag: Vec<Vec<f64>>,
    relax: Vec<Option<Relax>>,
    /// alpha-CROWN with optimized intermediate bounds.
    optimize_intermediate: bool,
    /// Linear nodes: the bias over the output value, if any.
    bias: Vec<Option<Vec<f64>>>,
    /// Linear nodes: per output element, the factor that bounds one backward step's rounding.
    lin_err: Vec<Option<Vec<f64>>>,
    /// ReLU split constraints per value id: (element, active).
    splits: Vec<Vec<(usize, bool)>>,
    /// A split made some pre-activation interval empty: the subdomain has no point.
    infeasible: bool,
    /// crown-pure: the CROWN-only bounds of the values that feed nonlinear nodes (its
    /// relaxations use them instead of the enclosure).
    pure_bounds: Vec<Option<Interval>>,
}

/// What `Engine::build`'s node loop needs to know besides the engine.
struct BuildPlan<'p> {
    method: Method,
    /// Per value: (feeds a nonlinear node, every such consumer is piecewise linear).
    feeds: Vec<(bool, bool)>,
    ibp_exact: Vec<bool>,
    parent: Option<Parent<'p>>,
    /// The earliest value with a split the parent lacks.
    first_split: Option<ValueId>,
    recompute: bool,
    /// CROWN's intermediate bounds are intersected with the IBP step (lipcert's rule);
    /// otherwise they replace it for the selected elements (auto_LiRPA's rule).
    intersect: bool,
}

/// One value's bounds before the intermediate-bound rule combines them.
struct Candidate {
    /// The IBP step, with the parent's bounds intersected in.
    ibp: Interval,
    /// CROWN's bounds of the selected elements, where CROWN runs.
    crown: Option<CrownPart>,
}

struct CrownPart {
    select: Vec<usize>,
    lo: Vec<f64>,
    hi: Vec<f64>,
}

/// Lagrange multipliers of split constraints (beta-CROWN) for a block of `m` rows:
/// `values[i * splits.len() + s] >= 0` for row i and split s.
struct Betas<'b> {
    splits: &'b [Split],
    values: &'b [f64],
}

/// alpha(-beta)-CROWN on one block: the best bound per row, with (when asked) the backward
/// coefficients on every nonlinear node's output and the minimizing input of that best iterate.
struct Optimized {
    best: Vec<f64>,
    /// Per node, `[rows, node output length]`.
    rec: Vec<Option<Vec<f64>>>,
    /// `[rows, input length]`.
    x: Vec<f64>,
    /// The slopes and multipliers of each row's best iterate (when `detail`).
    warm: Warm,
}

/// Result of one backward pass over a block of rows.
struct Backward {
    lower: Vec<f64>,
    /// Coefficients on the input, `[rows, input_len]`.
    input: Vec<f64>,
    /// Coefficients on each nonlinear node's output (only when recording).
    recorded: Vec<Option<Vec<f64>>>,
}

fn is_nonlinear(op: &Op) -> bool {
    matches!(op, Op::Activation(_) | Op::MaxPool(_))
}

/// Per value: whether its IBP interval is the exact range of each element over a box input
/// (in real arithmetic). That holds up to and including the first node that mixes elements
/// (Dense, Conv2d, AvgPool) when only elementwise maps and permutations come before and after
/// it: each element is then one affine function of the input box. CROWN there would find the
/// same interval plus its rounding terms, so it is skipped (for mnistfc's first layer, the
/// largest backward product of the intermediate bounds).
fn ibp_exact_values(net: &Network) -> Vec<bool> {
    // The number of mixing nodes on the path from the input; None: not one affine map of it.
    let mut mixes: Vec<Option<u32>> = vec![None; net.shapes.len()];
    mixes[0] = Some(0);
    for (k, node) in net.nodes.iter().enumerate() {
        let m = mixes[node.inputs[0]];
        mixes[k + 1] = match &node.op {
            Op::Dense(_) | Op::Conv2d(_) | Op::AvgPool(_) => m.map(|c| c + 1),
            Op::Affine { .. } | Op::Pad { .. } | Op::Reshape { .. } | Op::Transpose { .. } => m,
            Op::Add | Op::Activation(_) | Op::MaxPool(_) => None,
        };
    }
    mixes.iter().map(|m| m.is_some_and(|c| c <= 1)).collect()
}

fn is_piecewise_linear(op: &Op) -> bool {
    matches!(op, Op::Activation(Activation::Relu) | Op::Activation(Activation::LeakyRelu { .. }))
}

impl<'a> Engine<'a> {
    /// `splits` clamp pre-activation intervals (see `bound_with_splits`); `parent` holds sound
    /// bounds (over a superset of the subdomain) of the values that feed nonlinear nodes:
    /// they are intersected in, and up to the earliest split value (everywhere unless
    /// `recompute`) they replace CROWN.
    #[allow(clippy::too_many_arguments)]
    fn new(
        net: &'a Network,
        set: &'a InputSet,
        method: Method,
        intersect: bool,
        opts: &'a Options,
        splits: &[Split],
        parent: Option<Parent>,
        recompute: bool,
    ) -> Result<Self, GraphError> {
        let (e, plan) = Self::start(net, set, method, intersect, opts, splits, parent, recompute)?;
        Ok(e.build(&plan, false).0)
    }

    /// `crown` with both intermediate-bound rules: lipcert's (intersected) engine, and
    /// auto_LiRPA's where its bounds differ anywhere (see `build`).
    fn twin(net: &'a Network, set: &'a InputSet, opts: &'a Options) -> Result<(Self, Option<Self>), GraphError> {
        let (e, plan) = Self::start(net, set, Method::Crown, true, opts, &[], None, true)?;
        Ok(e.build(&plan, true))
    }

    /// The checked inputs and the empty engine, before any node is bounded.
    #[allow(clippy::too_many_arguments)]
    fn start<'p>(
        net: &'a Network,
        set: &'a InputSet,
        method: Method,
        intersect: bool,
        opts: &'a Options,
        splits: &[Split],
        parent: Option<Parent<'p>>,
        recompute: bool,
    ) -> Result<(Self, BuildPlan<'p>), GraphError> {
        let len = net.input_len();
        if set.len() != len {
            return Err(GraphError::Data(format!("the input set has {} elements, expected {len}", set.len())));
        }
        if let InputSet::L2Ball { center, .. } = set {
            if center.iter().any(|v| !v.is_finite()) {
                return Err(GraphError::Data("the l2 ball's center is not finite".into()));
            }
        }
        let input_box = set.bounding_box();
        check_box(net, &input_box)?;
        let nodes = net.nodes.len();
        let mag0 = input_box.lo.iter().zip(&input_box.hi).map(|(l, h)| l.abs().max(h.abs())).collect();
        let mut e = Engine {
            net,
            set,
            opts,
            enclosure: vec![input_box],
            mag: vec![mag0],
            relax: (0..nodes).map(|_| None).collect(),
            optimize_intermediate: method == Method::AlphaCrown && opts.alpha_intermediate,
            bias: vec![None; nodes],
            lin_err: vec![None; nodes],
            splits: vec![Vec::new(); net.shapes.len()],
            infeasible: false,
            pure_bounds: vec![None; net.shapes.len()],
        };
        for s in splits {
            e.splits[s.value].push((s.index, s.active));
        }
        // The earliest value with a split the parent lacks: bounds before it cannot change.
        let first_split = splits.iter().filter(|s| parent.is_none_or(|p| !p.splits.contains(s))).map(|s| s.value).min();
        // Which values feed a nonlinear node, and whether all such consumers are piecewise linear.
        let mut feeds = vec![(false, true); net.shapes.len()];
        for node in &net.nodes {
            if is_nonlinear(&node.op) {
                let f = &mut feeds[node.inputs[0]];
                f.0 = true;
                f.1 &= is_piecewise_linear(&node.op);
            }
        }
        let ibp_exact = match set {
            InputSet::Box(_) => ibp_exact_values(net),
            InputSet::L2Ball { .. } => vec![false; net.shapes.len()],
        };
        Ok((e, BuildPlan { method, feeds, ibp_exact, parent, first_split, recompute, intersect }))
    }

    /// The node loop of `new`: bounds every value in order. With `twin`, also the engine of
    /// the other intermediate-bound rule (`intersect` false), sharing every CROWN pass up to the
    /// first value where the two rules give different bounds; `None` when they never do (the
    /// two engines would be identical).
    fn build(mut self, plan: &BuildPlan, twin: bool) -> (Self, Option<Self>) {
        let mut other: Option<Self> = None;
        for k in 0..self.net.nodes.len() {
            if plan.method == Method::Ibp {
                let b = ibp_node(self.net, k, &self.enclosure);
                self.enclosure.push(b);
                continue;
            }
            if let Some(o) = other.as_mut() {
                o.prepare_node(k);
                let cand = o.candidate(k, plan);
                let b = o.combine(k, plan, &cand, false);
                o.commit(k, plan, &cand, b);
            }
            self.prepare_node(k);
            let cand = self.candidate(k, plan);
            let b = self.combine(k, plan, &cand, plan.intersect);
            if twin && other.is_none() {
                let b_other = self.combine(k, plan, &cand, false);
                if b_other != b {
                    let mut o = self.clone();
                    o.commit(k, plan, &cand, b_other);
                    other = Some(o);
                }
            }
            self.commit(k, plan, &cand, b);
            if self.infeasible {
                break;
            }
        }
        (self, other)
    }

    /// The relaxation of a nonlinear node k (crown-pure relaxes with CROWN-only bounds, the
    /// others with the enclosure), or the bias and rounding factors of a linear one.
    fn prepare_node(&mut self, k: usize) {
        let node = &self.net.nodes[k];
        if is_nonlinear(&node.op) {
            let src = self.pure_bounds[node.inputs[0]].as_ref().unwrap_or(&self.enclosure[node.inputs[0]]);
            self.relax[k] = Some(self.relaxation(k, src));
        } else {
            self.prepare_linear(k);
        }
    }

    /// Node k's output before the intermediate-bound rule combines them: the IBP step (with
    /// the parent's bounds intersected in) and CROWN's bounds of the elements that need them.
    fn candidate(&self, k: usize, plan: &BuildPlan) -> Candidate {
        let net = self.net;
        let mut b = ibp_node(net, k, &self.enclosure);
        let v = k + 1;
        // The parent's bounds hold on the subdomain. Up to the earliest split value they are
        // what CROWN would compute again (no split lies before them), so CROWN is skipped.
        let reuse = plan.parent.and_then(|p| p.pre_activation.get(v)).and_then(|o| o.as_ref());
        if let Some(pb) = reuse {
            for j in 0..b.lo.len() {
                b.lo[j] = b.lo[j].max(pb.lo[j]);
                b.hi[j] = b.hi[j].min(pb.hi[j]);
            }
        }
        let skip_crown = reuse.is_some() && (!plan.recompute || plan.first_split.is_none_or(|s| v <= s));
        let crown = (plan.feeds[v].0 && !skip_crown && !plan.ibp_exact[v]).then(|| {
            let select: Vec<usize> = if plan.method != Method::CrownPure && plan.feeds[v].1 {
                (0..b.lo.len()).filter(|&j| b.lo[j] < 0.0 && b.hi[j] > 0.0 && !self.split_at(v, j)).collect()
            } else {
                (0..b.lo.len()).collect()
            };
            let (lo, hi) = self.crown_bounds(v, &select, false, &b);
            CrownPart { select, lo, hi }
        });
        Candidate { ibp: b, crown }
    }

    /// Whether element j of value v is a split neuron.
    fn split_at(&self, v: ValueId, j: usize) -> bool {
        self.splits[v].iter().any(|&(i, _)| i == j)
    }

    /// A candidate combined by the intermediate-bound rule: CROWN intersected with the IBP step
    /// (`intersect`) or replacing it, then (alpha-CROWN with optimized intermediate bounds)
    /// alpha-CROWN intersected in for the neurons left unstable.
    fn combine(&self, k: usize, plan: &BuildPlan, cand: &Candidate, intersect: bool) -> Interval {
        let v = k + 1;
        let mut b = cand.ibp.clone();
        let Some(c) = &cand.crown else {
            return b;
        };
        for (&j, (&l, &h)) in c.select.iter().zip(c.lo.iter().zip(&c.hi)) {
            (b.lo[j], b.hi[j]) = if intersect { (b.lo[j].max(l), b.hi[j].min(h)) } else { (l, h) };
        }
        if self.optimize_intermediate {
            // alpha-CROWN for the neurons CROWN leaves unstable (or every neuron for smooth
            // activations, whose relaxations depend on the bounds everywhere).
            let select: Vec<usize> = if plan.feeds[v].1 {
                (0..b.lo.len()).filter(|&j| b.lo[j] < 0.0 && b.hi[j] > 0.0 && !self.split_at(v, j)).collect()
            } else {
                c.select.clone()
            };
            let (lo, hi) = self.crown_bounds(v, &select, true, &b);
            for (&j, (l, h)) in select.iter().zip(lo.into_iter().zip(hi)) {
                b.lo[j] = b.lo[j].max(l);
                b.hi[j] = b.hi[j].min(h);
            }
        }
        b
    }

    /// Makes `b` node k's output bounds: split neurons clamped to their side (which makes the
    /// ReLU's relaxation exact; an empty interval means no point of the subdomain satisfies the
    /// splits), and crown-pure's CROWN-only bounds kept for the relaxations.
    fn commit(&mut self, k: usize, plan: &BuildPlan, cand: &Candidate, mut b: Interval) {
        let v = k + 1;
        if let (Method::CrownPure, Some(c)) = (plan.method, &cand.crown) {
            let mut pure = Interval::new(vec![f64::NEG_INFINITY; b.lo.len()], vec![f64::INFINITY; b.lo.len()]);
            for (&j, (&l, &h)) in c.select.iter().zip(c.lo.iter().zip(&c.hi)) {
                pure.lo[j] = l;
                pure.hi[j] = h;
            }
            self.pure_bounds[v] = Some(pure);
        }
        for &(j, active) in &self.splits[v] {
            if active {
                b.lo[j] = b.lo[j].max(0.0);
            } else {
                b.hi[j] = b.hi[j].min(0.0);
            }
            if b.lo[j] > b.hi[j] || b.lo[j].is_nan() || b.hi[j].is_nan() {
                self.infeasible = true;
            }
        }
        // Every bound holds on the subdomain, so an empty intersection anywhere also shows that
        // no point of the box satisfies the splits.
        if self.splits.iter().any(|s| !s.is_empty()) && b.lo.iter().zip(&b.hi).any(|(l, h)| l > h) {
            self.infeasible = true;
        }
        if self.infeasible {
            return;
        }
        self.mag.push(b.lo.iter().zip(&b.hi).map(|(l, h)| l.abs().max(h.abs())).collect());
        self.enclosure.push(b);
    }

    fn relaxation(&self, k: usize, x: &Interval) -> Relax {
        let net = self.net;
        let node = &net.nodes[k];
        match &node.op {
            Op::Activation(a) => {
                Relax::Elementwise(x.lo.iter().zip(&x.hi).map(|(&l, &u)| relax_activation(*a, l, u)).collect())
            }
            Op::MaxPool(p) => {
                let (s, o) = (&net.shapes[node.inputs[0]], &net.shapes[k + 1]);
                let (planes, hw, ohw) = (s[0] * s[1], [s[2], s[3]], [o[2], o[3]]);
                let mut windows: Vec<Vec<usize>> = vec![Vec::new(); ohw[0] * ohw[1]];
                for_each_window(p, hw, ohw, |out, inp| windows[out].push(inp));
                let mut rel = Vec::with_capacity(planes * windows.len());
                for plane in 0..planes {
                    for w in &windows {
                        let idx: Vec<usize> = w.iter().map(|i| plane * hw[0] * hw[1] + i).collect();
                        rel.push(relax_max(&idx, &x.lo, &x.hi));
                    }
                }
                Relax::Max(rel)
            }
            Op::Dense(_)
            | Op::Conv2d(_)
            | Op::Affine { .. }
            | Op::Add
            | Op::AvgPool(_)
            | Op::Pad { .. }
            | Op::Reshape { .. }
            | Op::Transpose { .. } => unreachable!("not a nonlinear node"),
        }
    }

    /// The bias over the output and the rounding factors of a linear node's backward step:
    /// gamma(terms) |W| |x| for the coefficient product and gamma(len) |b| for the bias dot.
    fn prepare_linear(&mut self, k: usize) {
        let net = self.net;
        let node = &net.nodes[k];
        let x = &self.mag[node.inputs[0]];
        let (s, o) = (&net.shapes[node.inputs[0]], &net.shapes[k + 1]);
        let len_out = net.value_len(k + 1);
        let gb = gamma(len_out + 2);
        let (bias, err): (Option<Vec<f64>>, Option<Vec<f64>>) = match &node.op {
            Op::Dense(d) => {
                let rows = x.len() / d.in_features;
                let bias: Vec<f64> = (0..rows).flat_map(|_| d.bias.iter().copied()).collect();
                let g = gamma(d.out_features + 2);
                let w = dense_forward(&abs_dense(d, false), x, rows);
                (Some(bias.clone()), Some(w.iter().zip(&bias).map(|(w, b)| g * w + gb * b.abs()).collect()))
            }
            Op::Conv2d(c) => {
                let spatial = o[2] * o[3];
                let bias: Vec<f64> =
                    (0..o[0]).flat_map(|_| c.bias.iter().flat_map(|&b| std::iter::repeat_n(b, spatial))).collect();
                let g = gamma(c.out_channels / c.groups * c.kernel[0] * c.kernel[1] + 2);
                let w = conv_forward(&abs_conv(c, false), x, s[0], [s[2], s[3]], [o[2], o[3]]);
                (Some(bias.clone()), Some(w.iter().zip(&bias).map(|(w, b)| g * w + gb * b.abs()).collect()))
            }
            Op::Affine { scale, shift } => (
                Some(shift.clone()),
                Some(x.iter().zip(scale).zip(shift).map(|((x, a), b)| gamma(2) * a.abs() * x + gb * b.abs()).collect()),
            ),
            Op::AvgPool(p) => {
                let g = gamma(p.kernel[0] * p.kernel[1] + 3);
                let w = avgpool_forward(p, x, s[0] * s[1], [s[2], s[3]], [o[2], o[3]]);
                (None, Some(w.iter().map(|w| g * w).collect()))
            }
            Op::Pad { pads, value } if *value != 0.0 => {
                let mut bias = vec![*value; len_out];
                for i in pad_scatter_index(s, pads) {
                    bias[i] = 0.0;
                }
                let err = bias.iter().map(|b| gb * b.abs()).collect();
                (Some(bias), Some(err))
            }
            // Exact in real arithmetic, and carried backward without arithmetic: no bias and no
            // rounding term here (Add's two coefficient paths are summed, with their rounding,
            // where they meet).
            Op::Pad { .. } | Op::Reshape { .. } | Op::Transpose { .. } | Op::Add => (None, None),
            // Nonlinear nodes are relaxed instead (`relaxation`); nothing to prepare.
            Op::Activation(_) | Op::MaxPool(_) => (None, None),
        };
        self.bias[k] = bias;
        self.lin_err[k] = err;
    }

    /// CROWN (or, with `optimize`, alpha-CROWN) lower and upper bounds of the selected
    /// elements of value `v`; past the deadline, the rest keep `known` (bounds they already have).
    fn crown_bounds(&self, v: ValueId, select: &[usize], optimize: bool, known: &Interval) -> (Vec<f64>, Vec<f64>) {
        let len = self.net.value_len(v);
        let block = self.opts.block_rows.max(1);
        let results: Vec<(Vec<f64>, Vec<f64>)> = select
            .par_chunks(block.div_ceil(2).max(1))
            .map(|chunk| {
                if self.past_deadline() {
                    return (
                        chunk.iter().map(|&j| known.lo[j]).collect(),
                        chunk.iter().map(|&j| known.hi[j]).collect(),
                    );
                }
                let m = 2 * chunk.len();
                let mut rows = vec![0.0; m * len];
                for (i, &j) in chunk.iter().enumerate() {
                    rows[i * len + j] = 1.0;
                    rows[(chunk.len() + i) * len + j] = -1.0;
                }
                let low = if optimize {
                    self.alpha_optimize(v, rows, m)
                } else {
                    self.backward(v, rows, m, None, None, false).lower
                };
                let (l, u) = low.split_at(chunk.len());
                (l.to_vec(), u.iter().map(|x| -x).collect())
            })
            .collect();
        let mut lo = Vec::with_capacity(select.len());
        let mut hi = Vec::with_capacity(select.len());
        for (l, h) in results {
            lo.extend(l);
            hi.extend(h);
        }
        (lo, hi)
    }

    /// Lower bounds of `rows . v` (optionally optimized by alpha-CROWN), in blocks in parallel;
    /// -inf for the blocks past the deadline.
    fn lower_rows(&self, v: ValueId, rows: &[Vec<f64>], optimize: bool) -> Vec<f64> {
        let block = self.opts.block_rows.max(1);
        let parts: Vec<Vec<f64>> = rows
            .par_chunks(block)
            .map(|chunk| {
                if self.past_deadline() {
                    return vec![f64::NEG_INFINITY; chunk.len()];
                }
                let flat: Vec<f64> = chunk.iter().flatten().copied().collect();
                if optimize {
                    self.alpha_optimize(v, flat, chunk.len())
                } else {
                    self.backward(v, flat, chunk.len(), None, None, false).lower
                }
            })
            .collect();
        parts.concat()
    }

    fn past_deadline(&self) -> bool {
        self.opts.deadline.is_some_and(|d| std::time::Instant::now() >= d)
    }

    /// One backward pass of `m` rows from value `start` to the input.
    fn backward(
        &self,
        start: ValueId,
        rows: Vec<f64>,
        m: usize,
        alpha: Option<&Slopes>,
        beta: Option<&Betas>,
        record: bool,
    ) -> Backward {
        let net = self.net;
        let mut coef: Vec<Option<Vec<f64>>> = vec![None; start + 1];
        coef[start] = Some(rows);
        let mut bias = vec![0.0f64; m];
        let mut err = vec![0.0f64; m];
        let mut recorded: Vec<Option<Vec<f64>>> = vec![None; net.nodes.len()];
        for k in (0..start).rev() {
            if let (Some(bt), true) = (beta, k + 1 < start) {
                self.inject_beta(k + 1, bt, m, &mut coef, &mut err);
            }
            let Some(a) = coef[k + 1].take() else {
                continue;
            };
            let node = &net.nodes[k];
            let len_out = a.len() / m;
            let len_in = net.value_len(node.inputs[0]);
            let x_mag = &self.mag[node.inputs[0]];
            let grads: Vec<Vec<f64>> = match &self.relax[k] {
                Some(Relax::Elementwise(rel)) => {
                    let slopes = alpha.and_then(|s| s[k].as_ref());
                    let mut g = vec![0.0; a.len()];
                    for i in 0..m {
                        let row = &a[i * len_out..(i + 1) * len_out];
                        let out = &mut g[i * len_out..(i + 1) * len_out];
                        let al = slopes.map(|s| &s[i * len_out..(i + 1) * len_out]);
                        let (mut b, mut e) = (0.0f64, 0.0f64);
                        // Rows are often sparse (a neuron's receptive field, inactive ReLUs):
                        // runs of 8 zeros are skipped with one test (±0 differ only in the sign
                        // bit, which the shift drops).
                        for (run, cs) in row.chunks(8).enumerate() {
                            if cs.iter().fold(0u64, |acc, c| acc | (c.to_bits() << 1)) == 0 {
                                continue;
                            }
                            for (jj, &c) in cs.iter().enumerate() {
                                let j = run * 8 + jj;
                                if c == 0.0 {
                                    continue;
                                }
                                let r = &rel[j];
                                let (s, t) = if c > 0.0 {
                                    let s = match (al, r.alpha_range) {
                                        (Some(al), Some(_)) => al[j],
                                        _ => r.lines.ls,
                                    };
                                    (s, r.lines.lb)
                                } else {
                                    (r.lines.us, r.lines.ub)
                                };
                                out[j] = c * s;
                                b += c * t;
                                e += c.abs() * (s.abs() * x_mag[j] + t.abs());
                            }
                        }
                        err[i] += gamma(len_out + 2) * e + U * (bias[i].abs() + b.abs());
                        bias[i] += b;
                    }
                    if record {
                        recorded[k] = Some(a);
                    }
                    vec![g]
                }
                Some(Relax::Max(rel)) => {
                    let mut g = vec![0.0; m * len_in];
                    for i in 0..m {
                        let gi = &mut g[i * len_in..(i + 1) * len_in];
                        let (mut b, mut e) = (0.0f64, 0.0f64);
                        for (j, r) in rel.iter().enumerate() {
                            let c = a[i * len_out + j];
                            if c > 0.0 {
                                gi[r.lower_src] += c;
                                e += c * x_mag[r.lower_src];
                            } else if c < 0.0 {
                                match r.upper_src {
                                    Some(s) => {
                                        gi[s] += c;
                                        e += -c * x_mag[s];
                                    }
                                    None => {
                                        b += c * r.upper_const;
                                        e += (c * r.upper_const).abs();
                                    }
                                }
                            }
                        }
                        err[i] += gamma(len_out + 2) * e + U * (bias[i].abs() + b.abs());
                        bias[i] += b;
                    }
                    if record {
                        recorded[k] = Some(a);
                    }
                    vec![g]
                }
                None => {
                    for i in 0..m {
                        let row = &a[i * len_out..(i + 1) * len_out];
                        if let Some(le) = &self.lin_err[k] {
                            err[i] += row.iter().zip(le).map(|(c, e)| c.abs() * e).sum::<f64>();
                        }
                        if let Some(bv) = &self.bias[k] {
                            let b: f64 = row.iter().zip(bv).map(|(c, b)| c * b).sum();
                            err[i] += U * (bias[i].abs() + b.abs());
                            bias[i] += b;
                        }
                    }
                    if let Op::Reshape { .. } = node.op {
                        // The same coefficients under the input's shape: moved, not copied.
                        vec![a]
                    } else if let Some(g) = dense_vjp_live_columns(&node.op, &a) {
                        vec![g]
                    } else {
                        net.linear_vjp(k, &a, m).expect("a node without relaxation is linear")
                    }
                }
            };
            for (&v, g) in node.inputs.iter().zip(grads) {
                match &mut coef[v] {
                    Some(acc) => {
                        // Summing two paths rounds: u (|acc| + |g|) |v|.
                        let len_v = acc.len() / m;
                        for i in 0..m {
                            let (ar, gr) = (&mut acc[i * len_v..(i + 1) * len_v], &g[i * len_v..(i + 1) * len_v]);
                            let mut e = 0.0;
                            for ((x, y), mv) in ar.iter_mut().zip(gr).zip(&self.mag[v]) {
                                e += (x.abs() + y.abs()) * mv;
                                *x += y;
                            }
                            err[i] += U * e;
                        }
                    }
                    slot @ None => *slot = Some(g),
                }
            }
        }
        if let (Some(bt), true) = (beta, start > 0) {
            self.inject_beta(0, bt, m, &mut coef, &mut err);
        }
        let input = coef[0].take().unwrap_or_else(|| vec![0.0; m * net.input_len()]);
        let lower = self.concretize(&input, m, &bias, &err);
        Backward { lower, input, recorded }
    }

    /// min over the input set of a_i . x + bias_i, minus every accumulated rounding error.
    fn concretize(&self, a: &[f64], m: usize, bias: &[f64], err: &[f64]) -> Vec<f64> {
        let len = self.net.input_len();
        let box_cr = match self.set {
            InputSet::Box(b) => Some(b.center_radius()),
            InputSet::L2Ball { .. } => None,
        };
        (0..m)
            .map(|i| {
                let row = &a[i * len..(i + 1) * len];
                let (value, mag) = match self.set {
                    InputSet::Box(_) => {
                        let (c, r) = box_cr.as_ref().expect("box");
                        let (mut v, mut mag) = (bias[i], bias[i].abs());
                        for ((a, c), r) in row.iter().zip(c).zip(r) {
                            v += a * c - a.abs() * r;
                            mag += a.abs() * (c.abs() + r);
                        }
                        (v, gamma(2 * len + 3) * mag)
                    }
                    InputSet::L2Ball { center, radius, .. } => {
                        let (mut v, mut mag, mut sq) = (bias[i], bias[i].abs(), 0.0);
                        for (a, c) in row.iter().zip(center) {
                            v += a * c;
                            mag += (a * c).abs();
                            sq += a * a;
                        }
                        let norm = sq.sqrt() * (1.0 + gamma(len + 4));
                        (v - radius * norm, gamma(len + 3) * (mag + radius * norm))
                    }
                };
                // The error sums themselves round: a relative 1e-10 more covers that.
                value - (err[i] + mag) * (1.0 + 1e-10) - TINY
            })
            .collect()
    }

    /// Adds the split constraints on value `v` to the rows (beta-CROWN): a row bounds
    /// c . y - sum_s beta_s sigma_s z_s, where sigma_s z_s >= 0 on the subdomain (sigma = +1 for
    /// an active split, z >= 0; -1 for an inactive one, z <= 0), so for beta >= 0 its lower bound
    /// is also one of c . y there. The addition rounds: u (|a| + beta) |z|.
    fn inject_beta(&self, v: ValueId, bt: &Betas, m: usize, coef: &mut [Option<Vec<f64>>], err: &mut [f64]) {
        let n = bt.splits.len();
        let len = self.net.value_len(v);
        for (si, s) in bt.splits.iter().enumerate() {
            if s.value != v {
                continue;
            }
            let slot = coef[v].get_or_insert_with(|| vec![0.0; m * len]);
            for i in 0..m {
                let b = bt.values[i * n + si];
                if b == 0.0 {
                    continue;
                }
                let c = &mut slot[i * len + s.index];
                err[i] += U * (c.abs() + b) * self.mag[v][s.index];
                *c += if s.active { -b } else { b };
            }
        }
    }

    /// alpha-CROWN on one block of rows: projected Adam ascent on the lower slopes of unstable
    /// ReLU-like neurons, starting from CROWN's slopes; returns the best bound seen per row
    /// (every iterate is a valid bound, so the maximum is too).
    fn alpha_optimize(&self, start: ValueId, rows: Vec<f64>, m: usize) -> Vec<f64> {
        self.optimize(start, rows, m, &[], 0.0, false, None).best
    }

    /// alpha-CROWN, and with `splits` also beta-CROWN: the multipliers of the split constraints
    /// (from 0 or from `warm`, kept non-negative, Adam with rate `beta_lr`) are optimized
    /// jointly with the slopes. The gradient in a multiplier is -sigma z at the row's minimizer
    /// of the relaxed network (the envelope argument again). `detail`: keep the coefficients,
    /// minimizer, slopes and multipliers of each row's best iterate.
    #[allow(clippy::too_many_arguments)]
    fn optimize(
        &self,
        start: ValueId,
        rows: Vec<f64>,
        m: usize,
        splits: &[Split],
        beta_lr: f64,
        detail: bool,
        warm: Option<&Warm>,
    ) -> Optimized {
        let mut alpha: Slopes = self
            .relax
            .iter()
            .map(|r| match r {
                Some(Relax::Elementwise(rel)) if rel.iter().any(|r| r.alpha_range.is_some()) => {
                    Some((0..m).flat_map(|_| rel.iter().map(|r| r.lines.ls)).collect())
                }
                _ => None,
            })
            .collect();
        // The neurons with a free lower slope, per node.
        let unstable: Vec<Vec<usize>> = self
            .relax
            .iter()
            .map(|r| match r {
                Some(Relax::Elementwise(rel)) => (0..rel.len()).filter(|&j| rel[j].alpha_range.is_some()).collect(),
                _ => Vec::new(),
            })
            .collect();
        let all_splits = splits.len();
        let splits: Vec<Split> = splits.iter().copied().filter(|s| s.value < start).collect();
        let ns = splits.len();
        let mut beta = vec![0.0f64; m * ns];
        // Warm start: any slope in the admissible range and any beta >= 0 give valid bounds,
        // so the starting point only affects how good the bound gets.
        if let Some(w) = warm {
            for (k, al) in alpha.iter_mut().enumerate() {
                let (Some(al), Some(Some(wa)), Some(Relax::Elementwise(rel))) = (al, w.alpha.get(k), &self.relax[k])
                else {
                    continue;
                };
                if wa.len() != al.len() {
                    continue;
                }
                let len = rel.len();
                for &j in &unstable[k] {
                    let (lo, hi) = rel[j].alpha_range.expect("unstable neuron");
                    for row in 0..m {
                        let v = wa[row * len + j];
                        if v.is_finite() {
                            al[row * len + j] = v.clamp(lo, hi);
                        }
                    }
                }
            }
            if ns == all_splits && w.beta.len() == m * ns {
                for (b, v) in beta.iter_mut().zip(&w.beta) {
                    *b = if v.is_finite() { v.max(0.0) } else { 0.0 };
                }
            }
        }
        let (mut bm1, mut bm2) = (vec![0.0f64; m * ns], vec![0.0f64; m * ns]);
        let free = unstable.iter().any(|u| !u.is_empty()) || ns > 0;
        let iterations = if free { self.opts.alpha_iterations } else { 0 };
        let mut first: Slopes = alpha.iter().map(|a| a.as_ref().map(|v| vec![0.0; v.len()])).collect();
        let mut second = first.clone();
        let (b1, b2, eps) = (0.9f64, 0.999f64, 1e-8);
        let mut best = vec![f64::NEG_INFINITY; m];
        let input_len = self.net.input_len();
        let mut best_rec: Vec<Option<Vec<f64>>> = vec![None; self.net.nodes.len()];
        let mut best_x = if detail { vec![0.0; m * input_len] } else { Vec::new() };
        let mut best_alpha: Slopes = if detail { alpha.clone() } else { Vec::new() };
        let mut best_beta = if detail { beta.clone() } else { Vec::new() };
        for it in 0..=iterations {
            let betas = Betas { splits: &splits, values: &beta };
            let bw = self.backward(start, rows.clone(), m, Some(&alpha), (ns > 0).then_some(&betas), true);
            if detail {
                let x = self.minimizer(&bw.input, m);
                for i in (0..m).filter(|&i| bw.lower[i] > best[i]) {
                    best_x[i * input_len..(i + 1) * input_len].copy_from_slice(&x[i * input_len..(i + 1) * input_len]);
                    best_beta[i * ns..(i + 1) * ns].copy_from_slice(&beta[i * ns..(i + 1) * ns]);
                    for (ba, a) in best_alpha.iter_mut().zip(&alpha) {
                        if let (Some(ba), Some(a)) = (ba, a) {
                            let len = a.len() / m;
                            ba[i * len..(i + 1) * len].copy_from_slice(&a[i * len..(i + 1) * len]);
                        }
                    }
                    for (k, r) in bw.recorded.iter().enumerate() {
                        if let Some(r) = r {
                            let len = r.len() / m;
                            let slot = best_rec[k].get_or_insert_with(|| vec![0.0; r.len()]);
                            slot[i * len..(i + 1) * len].copy_from_slice(&r[i * len..(i + 1) * len]);
                        }
                    }
                }
            }
            for (b, l) in best.iter_mut().zip(&bw.lower) {
                *b = b.max(*l);
            }
            if it == iterations || self.past_deadline() {
                break;
            }
            let values = self.relaxed_forward(start, &bw, &alpha, m);
            let t = (it + 1) as i32;
            let (c1, c2) = (1.0 - b1.powi(t), 1.0 - b2.powi(t));
            let lr = self.opts.alpha_lr * self.opts.alpha_lr_decay.powi(it as i32);
            for k in 0..self.net.nodes.len() {
                let (Some(al), Some(Relax::Elementwise(rel)), Some(rec)) =
                    (&mut alpha[k], &self.relax[k], &bw.recorded[k])
                else {
                    continue;
                };
                let x = &values[self.net.nodes[k].inputs[0]];
                let (m1, m2) = (first[k].as_mut().unwrap(), second[k].as_mut().unwrap());
                let len = rel.len();
                for &j in &unstable[k] {
                    let (lo, hi) = rel[j].alpha_range.expect("unstable neuron");
                    for row in 0..m {
                        let idx = row * len + j;
                        // d bound / d slope = coefficient x (value of the pre-activation at the
                        // minimizer); only where the lower line is in use.
                        let g = if rec[idx] > 0.0 { rec[idx] * x[idx] } else { 0.0 };
                        m1[idx] = b1 * m1[idx] + (1.0 - b1) * g;
                        m2[idx] = b2 * m2[idx] + (1.0 - b2) * g * g;
                        let step = lr * (m1[idx] / c1) / ((m2[idx] / c2).sqrt() + eps);
                        al[idx] = (al[idx] + step).clamp(lo, hi);
                    }
                }
            }
            for (si, s) in splits.iter().enumerate() {
                let len = self.net.value_len(s.value);
                let z = &values[s.value];
                for row in 0..m {
                    let idx = row * ns + si;
                    // d bound / d beta = -sigma z at the minimizer.
                    let zv = z[row * len + s.index];
                    let g = if s.active { -zv } else { zv };
                    bm1[idx] = b1 * bm1[idx] + (1.0 - b1) * g;
                    bm2[idx] = b2 * bm2[idx] + (1.0 - b2) * g * g;
                    let step = beta_lr * (bm1[idx] / c1) / ((bm2[idx] / c2).sqrt() + eps);
                    beta[idx] = (beta[idx] + step).max(0.0);
                }
            }
        }
        Optimized {
            best,
            rec: best_rec,
            x: best_x,
            warm: Warm { alpha: best_alpha, beta: best_beta, lower: Vec::new() },
        }
    }

    /// Each row's minimizing input over the set of the linear function with input
    /// coefficients `input` (`[rows, input length]`).
    fn minimizer(&self, input: &[f64], m: usize) -> Vec<f64> {
        let len = self.net.input_len();
        let mut x0 = vec![0.0; m * len];
        for i in 0..m {
            let a = &input[i * len..(i + 1) * len];
            let xi = &mut x0[i * len..(i + 1) * len];
            match self.set {
                InputSet::Box(b) => {
                    for j in 0..len {
                        xi[j] = if a[j] > 0.0 {
                            b.lo[j]
                        } else if a[j] < 0.0 {
                            b.hi[j]
                        } else {
                            0.5 * (b.lo[j] + b.hi[j])
                        };
                    }
                }
                InputSet::L2Ball { center, radius, .. } => {
                    let norm = a.iter().map(|v| v * v).sum::<f64>().sqrt();
                    for j in 0..len {
                        xi[j] = center[j] - if norm > 0.0 { radius * a[j] / norm } else { 0.0 };
                    }
                }
            }
        }
        x0
    }

    /// The relaxed network evaluated at each row's minimizing input: by the envelope
    /// argument, the bound's derivative with respect to a coefficient on value v is v's value
    /// here. Linear nodes run as usual; nonlinear ones use the line each row selected.
    fn relaxed_forward(&self, start: ValueId, bw: &Backward, alpha: &Slopes, m: usize) -> Vec<Vec<f64>> {
        let net = self.net;
        let x0 = self.minimizer(&bw.input, m);
        let mut values = vec![x0];
        for (k, node) in net.nodes.iter().enumerate().take(start) {
            let x = &values[node.inputs[0]];
            let y = match (&self.relax[k], &bw.recorded[k]) {
                (Some(Relax::Elementwise(rel)), rec) => {
                    let len = rel.len();
                    (0..x.len())
                        .map(|idx| {
                            let r = &rel[idx % len];
                            let c = rec.as_ref().map_or(1.0, |rec| rec[idx]);
                            if c > 0.0 {
                                let s = match (&alpha[k], r.alpha_range) {
                                    (Some(al), Some(_)) => al[idx],
                                    _ => r.lines.ls,
                                };
                                s * x[idx] + r.lines.lb
                            } else {
                                r.lines.us * x[idx] + r.lines.ub
                            }
                        })
                        .collect()
                }
                (Some(Relax::Max(rel)), rec) => {
                    let (len_in, len_out) = (x.len() / m, rel.len());
                    let mut y = vec![0.0; m * len_out];
                    for i in 0..m {
                        for (j, r) in rel.iter().enumerate() {
                            let c = rec.as_ref().map_or(1.0, |rec| rec[i * len_out + j]);
                            y[i * len_out + j] = if c > 0.0 {
                                x[i * len_in + r.lower_src]
                            } else {
                                r.upper_src.map_or(r.upper_const, |s| x[i * len_in + s])
                            };
                        }
                    }
                    y
                }
                (None, _) => {
                    let inputs: Vec<&[f64]> = node.inputs.iter().map(|&v| values[v].as_slice()).collect();
                    net.eval_node_batch(k, &inputs, m)
                }
            };
            values.push(y);
        }
        values
    }
}

/// `a W` for a dense node (None for any other node), multiplying only the columns of `a` that
/// are nonzero in some row. Behind a ReLU layer the columns of its stably inactive neurons are
/// zero in every row (their relaxation has slope 0), so their rows of W need no work. The
/// dropped terms are exact zeros: the sums are the same up to the order of the others, and the
/// rounding terms (`lin_err`, from |a| and the layer) still bound them.
fn dense_vjp_live_columns(op: &Op, a: &[f64]) -> Option<Vec<f64>> {
    let Op::Dense(d) = op else {
        return None;
    };
    let (out, inp) = (d.out_features, d.in_features);
    if out == 0 {
        return None;
    }
    let rows = a.len() / out;
    let mut live = vec![false; out];
    for row in a.chunks_exact(out) {
        live.iter_mut().zip(row).for_each(|(l, &c)| *l |= c != 0.0);
    }
    let live: Vec<usize> = (0..out).filter(|&j| live[j]).collect();
    // Gathering costs a copy of a and of W's live rows: only worth it for many dead columns.
    if 4 * live.len() > 3 * out {
        return None;
    }
    let n = live.len();
    let mut a_live = Vec::with_capacity(rows * n);
    for row in a.chunks_exact(out) {
        a_live.extend(live.iter().map(|&j| row[j]));
    }
    let mut w_live = Vec::with_capacity(n * inp);
    for &j in &live {
        w_live.extend_from_slice(&d.weight[j * inp..(j + 1) * inp]);
    }
    let mut g = vec![0.0; rows * inp];
    let par = lipcert_core::kernels::par_for(rows * n * inp);
    lipcert_core::kernels::gemm(&mut g, &a_live, false, &w_live, false, (rows, n, inp), false, par);
    Some(g)
}

#[cfg(test)]
mod tests {
    use super::*;
    use lipcert_core::{kernels::dense_backward, Dense, Rng};

    /// Skipping dead columns gives the full product (to rounding), and is declined when most
    /// columns are live or the node is not dense.
    #[test]
    fn live_column_product_equals_the_full_product() {
        let mut rng = Rng::new(5);
        for case in 0..30 {
            let (out, inp, rows) = (4 + rng.below(60), 1 + rng.below(50), 1 + rng.below(9));
            let d = Dense {
                weight: rng.normals(out * inp, 1.0),
                bias: vec![0.0; out],
                out_features: out,
                in_features: inp,
            };
            let dead_share = [0.0, 0.3, 0.6, 0.9, 1.0][case % 5];
            let dead: Vec<bool> = (0..out).map(|_| rng.uniform() < dead_share).collect();
            let a: Vec<f64> = (0..rows * out).map(|i| if dead[i % out] { 0.0 } else { rng.range(-2.0, 2.0) }).collect();
            let full = dense_backward(&d, &a, rows);
            match dense_vjp_live_columns(&Op::Dense(d.clone()), &a) {
                Some(g) => {
                    assert!(4 * dead.iter().filter(|&&x| !x).count() <= 3 * out, "case {case}: taken with few dead");
                    for (x, y) in g.iter().zip(&full) {
                        assert!((x - y).abs() <= 1e-12 * (1.0 + y.abs()), "case {case}: {x} vs {y}");
                    }
                    assert_eq!(g.len(), full.len());
                }
                None => assert!(4 * dead.iter().filter(|&&x| !x).count() > 3 * out, "case {case}: declined"),
            }
        }
        assert!(dense_vjp_live_columns(&Op::Add, &[0.0; 4]).is_none());
    }

    /// `crown`'s shared build of both intermediate-bound rules gives exactly what two separate
    /// runs give, whether the rules part early, late or never (random networks with every
    /// operator, and ReLU MLPs on boxes of several widths).
    #[test]
    fn twin_build_equals_two_separate_runs() {
        use lipcert_core::random::{random_mlp, random_network};
        let mut rng = Rng::new(77);
        let mut parted = 0;
        for case in 0..24 {
            let net = if case % 2 == 0 {
                random_network(&mut rng)
            } else {
                random_mlp(&mut rng, &[6, 12, 12, 12, 4], Some(Activation::Relu), |f| 2.0 / (f as f64).sqrt(), 0.3)
            };
            let n = net.input_len();
            let radius = [0.01, 0.1, 0.5, 2.0][case % 4];
            let c: Vec<f64> = (0..n).map(|_| rng.range(-1.0, 1.0)).collect();
            let set = InputSet::Box(Interval::new(
                c.iter().map(|c| c - radius).collect(),
                c.iter().map(|c| c + radius).collect(),
            ));
            let spec: Vec<Vec<f64>> = (0..2).map(|_| rng.normals(net.output_len(), 1.0)).collect();
            let opts = Options::default();
            let ours = bound_once(&net, &set, &spec, Method::Crown, true, &opts).unwrap();
            let theirs = bound_once(&net, &set, &spec, Method::Crown, false, &opts).unwrap();
            let both = bound(&net, &set, &spec, Method::Crown, &opts).unwrap();
            let max = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x.max(*y)).collect::<Vec<f64>>();
            let min = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x.min(*y)).collect::<Vec<f64>>();
            assert_eq!(both.spec_lower, max(&ours.spec_lower, &theirs.spec_lower), "case {case}");
            assert_eq!(both.lower, max(&ours.lower, &theirs.lower), "case {case}");
            assert_eq!(both.upper, min(&ours.upper, &theirs.upper), "case {case}");
            parted += usize::from(Engine::twin(&net, &set, &opts).unwrap().1.is_some());
        }
        // Both branches of the shared build ran.
        assert!(parted > 0 && parted < 24, "the rules parted on {parted} of 24 cases");
    }
}
