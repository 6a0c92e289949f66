//! lipcert-verify: complete verification of properties "no input in the box reaches the unsafe
//! region" (VNN-LIB), where the unsafe region is a disjunction of conjunctions of linear atoms
//! c . y <= d over the outputs.
//!
//! Answers are never wrong by construction:
//! - `Sat` only with a counterexample re-checked by a fresh forward pass (in the box, all atoms
//!   of one conjunction hold);
//! - `Unsat` only when every sub-box of a partition of every input box has every conjunction
//!   refuted by a certified CROWN / alpha-CROWN bound (some atom's lower bound of c . y > d),
//!   or by the MILP back end with a margin above HiGHS's floating-point tolerances (`milp`;
//!   that refutation is not a rounding-error certificate, see docs/GUARANTEES.md), or when
//!   every leaf of a ReLU-split tree over a box is refuted or infeasible (`relu_bab`).
//!
//! Search: PGD first, then branch and bound by input splitting (best for low-dimensional inputs
//! such as ACAS Xu): a sub-box that is neither refuted nor falsified is halved along the input
//! with the largest smear |d(c . y)/dx_i| (hi_i - lo_i) of its most promising atom (the
//! geometric mean of the gradient at the center and of its enclosure over the sub-box, as in
//! ReluVal's smear), or along an input much wider relative to the whole box (`split_balance`).
//! Sub-boxes are processed in parallel batches; each keeps its parent's certified bounds (a
//! child's bound is never looser) and starts alpha-CROWN from its parent's slopes. Where
//! splitting cannot go on (the root of a box with more than `max_split_inputs` free inputs, or a
//! sub-box too narrow to halve), a box that CROWN does not refute goes to the exact MILP back end
//! (`milp`, HiGHS) when its CROWN intermediate bounds leave at most `milp_max_binaries`
//! binaries; `milp_split_max_binaries` (off by default) does the same for sub-boxes inside the
//! search.
//!
//! Boxes with more than `max_split_inputs` free inputs (MNIST) first go to branch and bound over
//! ReLU splits (`relu_bab`: beta-CROWN bounds on subdomains of the whole box) for
//! `relu_bab_share` of the time; what it leaves undecided goes to the root bounds and the MILP
//! (on alpha-CROWN intermediate bounds there) with the rest.

pub mod boundary;
pub mod milp;
pub mod relu_bab;

pub use boundary::{
    decision_boundary, decision_boundary_with_progress, linf_box, BoundaryNorm, BoundaryOptions, BoundaryResult,
    LowerProof, Phase, Probe, ProbeOutcome, Progress, UpperSource,
};
pub use milp::{
    milp_binaries, milp_minimize, milp_supported, milp_verify, milp_verify_with_bounds, MilpOptions, MilpOutcome,
    Minimum,
};
pub use relu_bab::{relu_bab, ReluBabOptions, ReluBabStats};

use lipcert_bounds::{
    attack, bound, bound_with_splits, value_bounds, Atom, AttackMethod, AttackOptions, InputSet, Interval, Method,
    Options, SplitOptions, Unsafe, Warm,
};
use lipcert_core::{Activation, GraphError, Network, Op};
use rayon::prelude::*;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One input box and the unsafe region over it.
#[derive(Clone, Debug)]
pub struct BoxProperty {
    pub input: Interval,
    pub unsafe_: Unsafe,
}

impl BoxProperty {
    /// From an input box and conjunctions of `(c, d)` atoms (c . y <= d), as VNN-LIB gives them.
    pub fn new(lo: Vec<f64>, hi: Vec<f64>, any_of: Vec<Vec<(Vec<f64>, f64)>>) -> Self {
        BoxProperty { input: Interval::new(lo, hi), unsafe_: Unsafe::from_pairs(any_of) }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Verdict {
    /// A counterexample: the input and the network's output there.
    Sat {
        x: Vec<f64>,
        y: Vec<f64>,
    },
    Unsat,
    Unknown(String),
    Timeout,
}

impl Verdict {
    /// The VNN-COMP word for the answer.
    pub fn word(&self) -> &'static str {
        match self {
            Verdict::Sat { .. } => "sat",
            Verdict::Unsat => "unsat",
            Verdict::Unknown(_) => "unknown",
            Verdict::Timeout => "timeout",
        }
    }
}

#[derive(Clone, Debug)]
pub struct VerifyOptions {
    pub timeout: Duration,
    /// Input splitting is used up to this many inputs that are not fixed (width 0).
    pub max_split_inputs: usize,
    /// Sub-boxes bounded per parallel batch.
    pub batch: usize,
    pub seed: u64,
    /// Where input splitting cannot go on (the root of a box with more than `max_split_inputs`
    /// free inputs, or a sub-box too narrow to halve in f64), a box that CROWN does not refute
    /// goes to the MILP back end (`milp`) when its CROWN intermediate bounds leave at most this
    /// many binary variables (unstable ReLU-like neurons, max-pool candidates). 0: never. There
    /// it is the last resort and gets the remaining time, so the limit only bounds the model's
    /// size (memory), not the time.
    pub milp_max_binaries: usize,
    /// Inside the input-splitting search, a sub-box that CROWN does not refute goes to the MILP
    /// when it needs at most this many binaries (at most a quarter of `timeout` each; undecided,
    /// it is split as usual). Counting costs one more CROWN pass per such sub-box, and on ACAS
    /// Xu splitting is faster than the MILP, so the default is 0 (off).
    pub milp_split_max_binaries: usize,
    /// Sub-boxes are bounded by alpha-CROWN (`sub_alpha_iterations` steps on the intermediate
    /// bounds and on the rows, the rows' slopes warm-started from the parent's) once the search
    /// has run this long; before that, CROWN alone keeps easy properties fast.
    pub sub_alpha_after: Duration,
    pub sub_alpha_iterations: usize,
    /// Boxes with more than `max_split_inputs` free inputs first go to ReLU-splitting branch
    /// and bound (`relu_bab`) for this fraction of the remaining time; what it leaves undecided
    /// goes to the root bounds and the MILP back end with the rest. 0: off.
    pub relu_bab_share: f64,
    /// Input splitting: a sub-box is halved along its widest input (relative to the whole box)
    /// instead of the one with the largest smear when that input is more than this many times
    /// wider (relatively). A smear taken at the center (networks that are not chains of dense,
    /// affine and ReLU nodes) can stay near 0 along an input over which the network still
    /// varies a lot, and the search then halves the other inputs to no end (ACAS Xu 3_7 prop 1
    /// with the center smear: input 2 at its full width after 21 splits, bound -224). 0: off.
    pub split_balance: f64,
}

impl Default for VerifyOptions {
    fn default() -> Self {
        VerifyOptions {
            timeout: Duration::from_secs(60),
            max_split_inputs: 16,
            batch: 64,
            seed: 0,
            milp_max_binaries: 4096,
            milp_split_max_binaries: 0,
            sub_alpha_after: Duration::from_secs(1),
            sub_alpha_iterations: 5,
            relu_bab_share: 0.8,
            split_balance: 64.0,
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct Stats {
    /// Sub-boxes bounded (the roots included).
    pub boxes: usize,
    pub max_depth: usize,
    /// Sub-boxes handed to the MILP back end, and how many of them it decided.
    pub milp_calls: usize,
    pub milp_decided: usize,
    /// Subdomains bounded by ReLU-splitting branch and bound.
    pub relu_domains: usize,
    pub time_s: f64,
}

/// A sub-box with the conjunctions not yet refuted on it.
struct Node {
    lo: Vec<f64>,
    hi: Vec<f64>,
    open: Vec<usize>,
    depth: usize,
    /// Per distinct atom of the property (`Atoms::list`): a lower bound of c . y certified over
    /// a box that contains this one (the parent's), or -inf.
    lower: Arc<Vec<f64>>,
    /// The parent's optimized alpha-CROWN slopes (a warm start), for its rows.
    warm: Option<Arc<WarmRows>>,
}

/// An enclosure of max |d(c . y)/dx_i| over a box, per input: the gradient carried backward in
/// interval arithmetic with each ReLU's derivative in {1}, {0} or [0, 1] from its input bounds
/// `pre` (per value id) over the box, as ReluVal's smear. `None` unless the network is a chain
/// of dense, affine, ReLU and reshape nodes (then the smear at the center is used). For
/// branching only.
fn gradient_bound(net: &Network, pre: &[Option<Interval>], c: &[f64]) -> Option<Vec<f64>> {
    let (mut lo, mut hi) = (c.to_vec(), c.to_vec());
    if net.output != net.nodes.len() {
        return None;
    }
    for (k, node) in net.nodes.iter().enumerate().rev() {
        if node.inputs.len() != 1 || node.inputs[0] != k {
            return None;
        }
        match &node.op {
            Op::Dense(d) if lo.len() == d.out_features => {
                let (mut l, mut h) = (vec![0.0; d.in_features], vec![0.0; d.in_features]);
                for o in 0..d.out_features {
                    let w = &d.weight[o * d.in_features..(o + 1) * d.in_features];
                    for i in 0..d.in_features {
                        let (a, b) = (w[i] * lo[o], w[i] * hi[o]);
                        l[i] += a.min(b);
                        h[i] += a.max(b);
                    }
                }
                (lo, hi) = (l, h);
            }
            Op::Affine { scale, .. } if scale.len() == lo.len() => {
                for ((l, h), s) in lo.iter_mut().zip(hi.iter_mut()).zip(scale) {
                    let (a, b) = (*l * s, *h * s);
                    (*l, *h) = (a.min(b), a.max(b));
                }
            }
            Op::Activation(Activation::Relu) => {
                let b = pre.get(k)?.as_ref()?;
                if b.lo.len() != lo.len() {
                    return None;
                }
                for j in 0..lo.len() {
                    if b.hi[j] <= 0.0 {
                        (lo[j], hi[j]) = (0.0, 0.0);
                    } else if b.lo[j] < 0.0 {
                        (lo[j], hi[j]) = (lo[j].min(0.0), hi[j].max(0.0));
                    }
                }
            }
            Op::Reshape { .. } => {}
            // No gradient enclosure for these (or a shape the arms above do not take): the
            // caller falls back to the center gradient.
            Op::Dense(_)
            | Op::Conv2d(_)
            | Op::Affine { .. }
            | Op::Activation(_)
            | Op::Add
            | Op::AvgPool(_)
            | Op::MaxPool(_)
            | Op::Pad { .. }
            | Op::Transpose { .. } => return None,
        }
    }
    (lo.len() == net.input_len()).then(|| lo.iter().zip(&hi).map(|(l, h)| l.abs().max(h.abs())).collect())
}

/// alpha-CROWN slopes per node, `[rows, node input length]`, for the atoms `rows`.
struct WarmRows {
    rows: Vec<usize>,
    warm: Warm,
}

/// The distinct atoms of a property and, per conjunction, the indices of its atoms.
pub(crate) struct Atoms<'p> {
    pub(crate) list: Vec<&'p Atom>,
    pub(crate) conj: Vec<Vec<usize>>,
}

impl<'p> Atoms<'p> {
    pub(crate) fn new(u: &'p Unsafe) -> Self {
        let mut list: Vec<&Atom> = Vec::new();
        let conj = u
            .any_of
            .iter()
            .map(|c| {
                c.iter()
                    .map(|a| {
                        list.iter().position(|b| *b == a).unwrap_or_else(|| {
                            list.push(a);
                            list.len() - 1
                        })
                    })
                    .collect()
            })
            .collect();
        Atoms { list, conj }
    }
}

enum Outcome {
    Refuted,
    /// Refuted by the MILP back end.
    MilpRefuted,
    /// Not refuted, no counterexample, and too narrow to split further in f64; `true` when the
    /// MILP back end was tried and left it undecided.
    Stuck(bool),
    /// The verifier's time ran out before this box was decided.
    OutOfTime,
    Counterexample(Vec<f64>, Vec<f64>),
    /// Split; `true` when the MILP back end was tried on the sub-box and left it undecided.
    Split(Node, Node, bool),
}

/// Verifies every input box of a property; `Sat` as soon as one box has a counterexample.
pub fn verify(net: &Network, property: &[BoxProperty], opts: &VerifyOptions) -> Result<(Verdict, Stats), GraphError> {
    // Each call gets its own worker threads (RAYON_NUM_THREADS, else one per core). In a shared
    // pool a thread waiting for its parallel jobs runs other calls' jobs meanwhile, and a long
    // one (a MILP solve inside a sub-box job) overran this call's timeout: 8.2 s for 3 s, beside
    // other verifications in one process. Starting two threads costs well under a millisecond.
    let pool = rayon::ThreadPoolBuilder::new()
        .build()
        .map_err(|e| GraphError::Invalid(format!("cannot start the verifier's worker threads: {e}")))?;
    pool.install(|| verify_in_pool(net, property, opts))
}

fn verify_in_pool(
    net: &Network,
    property: &[BoxProperty],
    opts: &VerifyOptions,
) -> Result<(Verdict, Stats), GraphError> {
    let start = Instant::now();
    let mut stats = Stats::default();
    let mut undecided: Option<Verdict> = None;
    for p in property {
        let v = verify_box(net, p, opts, start, &mut stats)?;
        match v {
            Verdict::Sat { .. } => {
                stats.time_s = start.elapsed().as_secs_f64();
                return Ok((v, stats));
            }
            Verdict::Unsat => {}
            other => undecided = undecided.or(Some(other)),
        }
    }
    stats.time_s = start.elapsed().as_secs_f64();
    Ok((undecided.unwrap_or(Verdict::Unsat), stats))
}

/// Re-checks a candidate: in the box and in the unsafe region by a fresh forward pass.
fn confirm(net: &Network, p: &BoxProperty, x: &[f64]) -> Result<Option<Vec<f64>>, GraphError> {
    if !InputSet::Box(p.input.clone()).contains(x) {
        return Ok(None);
    }
    let y = net.forward(x, 1)?;
    Ok((p.unsafe_.loss(&y) <= 0.0).then_some(y))
}

fn verify_box(
    net: &Network,
    p: &BoxProperty,
    opts: &VerifyOptions,
    start: Instant,
    stats: &mut Stats,
) -> Result<Verdict, GraphError> {
    let n = p.input.lo.len();
    if p.unsafe_.any_of.is_empty() {
        return Ok(Verdict::Unsat);
    }
    // 1. An attack finds most violated properties at once. On low-dimensional inputs PGD is
    // so cheap (ACAS Xu: 1000 restarts of 50 steps in 0.2 s) that many restarts pay off.
    let set = InputSet::Box(p.input.clone());
    let restarts = if n <= opts.max_split_inputs { 1000 } else { 10 };
    let run_attack = |restarts: usize, seed: u64| -> Result<Option<Verdict>, GraphError> {
        let deadline = Some(start + opts.timeout);
        let o = AttackOptions { restarts, steps: 50, seed, deadline, ..AttackOptions::default() };
        let r = attack(net, &set, &p.unsafe_, AttackMethod::Pgd, &o)?;
        match r.counterexample {
            Some(x) => Ok(confirm(net, p, &x)?.map(|y| Verdict::Sat { x, y })),
            None => Ok(None),
        }
    };
    if let Some(v) = run_attack(restarts, opts.seed)? {
        return Ok(v);
    }
    // Longer searches return to the attack with 4x the restarts (at most 20000) at 2 s, 8 s,
    // 32 s, ... (a few percent of the time), since some counterexamples hide in small regions.
    let mut next_attack = (Duration::from_secs(2), restarts * 4, 1u64);
    // 2. Branch and bound over input splits.
    let free = (0..n).filter(|&i| p.input.hi[i] > p.input.lo[i]).count();
    let splittable = free <= opts.max_split_inputs;
    // 2a. Too many inputs to split: ReLU splitting first.
    let mut relu_bab_note: Option<String> = None;
    if !splittable && opts.relu_bab_share > 0.0 {
        let remaining = opts.timeout.saturating_sub(start.elapsed());
        let deadline = Instant::now() + remaining.mul_f64(opts.relu_bab_share.min(1.0));
        let ro = ReluBabOptions {
            deadline,
            deadline_without_milp: Some(start + opts.timeout),
            milp_max_binaries: opts.milp_max_binaries,
            seed: opts.seed,
            ..ReluBabOptions::default()
        };
        let (v, s) = relu_bab(net, p, &ro)?;
        stats.boxes += s.domains;
        stats.relu_domains += s.domains;
        stats.max_depth = stats.max_depth.max(s.max_depth);
        stats.milp_calls += s.milp_leaves;
        match v {
            Verdict::Sat { .. } | Verdict::Unsat => return Ok(v),
            Verdict::Timeout if start.elapsed() >= opts.timeout => return Ok(Verdict::Timeout),
            Verdict::Unknown(why) => relu_bab_note = Some(why),
            Verdict::Timeout => {}
        }
    }
    let atoms = Atoms::new(&p.unsafe_);
    let root = Node {
        lo: p.input.lo.clone(),
        hi: p.input.hi.clone(),
        open: (0..p.unsafe_.any_of.len()).collect(),
        depth: 0,
        lower: Arc::new(vec![f64::NEG_INFINITY; atoms.list.len()]),
        warm: None,
    };
    let mut stack = vec![root];
    while !stack.is_empty() {
        if start.elapsed() >= opts.timeout {
            return Ok(Verdict::Timeout);
        }
        if start.elapsed() >= next_attack.0 {
            if let Some(v) = run_attack(next_attack.1, opts.seed.wrapping_add(next_attack.2))? {
                return Ok(v);
            }
            next_attack = (next_attack.0 * 4, (next_attack.1 * 4).min(20_000), next_attack.2 + 1);
        }
        let take = opts.batch.max(1).min(stack.len());
        let batch: Vec<Node> = stack.split_off(stack.len() - take);
        let outcomes: Vec<Result<Outcome, GraphError>> =
            batch.into_par_iter().map(|node| process(net, p, &atoms, node, opts, splittable, start)).collect();
        stats.boxes += take;
        for o in outcomes {
            match o? {
                Outcome::Refuted => {}
                Outcome::MilpRefuted => {
                    stats.milp_calls += 1;
                    stats.milp_decided += 1;
                }
                Outcome::OutOfTime => return Ok(Verdict::Timeout),
                Outcome::Stuck(milp) => {
                    stats.milp_calls += milp as usize;
                    if start.elapsed() >= opts.timeout {
                        return Ok(Verdict::Timeout);
                    }
                    return Ok(Verdict::Unknown(format!(
                        "a sub-box too narrow to split in f64 is neither refuted nor falsified{}",
                        if milp { " (the MILP back end did not decide it)" } else { "" }
                    )));
                }
                Outcome::Counterexample(x, y) => return Ok(Verdict::Sat { x, y }),
                Outcome::Split(a, b, milp) => {
                    stats.milp_calls += milp as usize;
                    stats.max_depth = stats.max_depth.max(a.depth);
                    if !splittable {
                        if start.elapsed() >= opts.timeout {
                            return Ok(Verdict::Timeout);
                        }
                        return Ok(whole_box_unknown(net, opts, milp, free, relu_bab_note.as_deref()));
                    }
                    stack.push(a);
                    stack.push(b);
                }
            }
        }
    }
    Ok(Verdict::Unsat)
}

/// The answer for a box that input splitting cannot take, when neither alpha-CROWN, ReLU
/// branch and bound (`relu_bab`: why it stopped) nor the MILP decided it.
fn whole_box_unknown(
    net: &Network,
    opts: &VerifyOptions,
    milp_tried: bool,
    free: usize,
    relu_bab: Option<&str>,
) -> Verdict {
    let milp = if milp_tried {
        " (the MILP back end did not decide it in time)".to_string()
    } else if let Err(e) = milp::milp_supported(net) {
        format!(" (the MILP back end does not support this network: {e})")
    } else {
        format!(" (the MILP back end takes up to {} binaries)", opts.milp_max_binaries)
    };
    let bab = relu_bab.map(|why| format!(": {why}")).unwrap_or_default();
    Verdict::Unknown(format!(
        "not refuted by alpha-CROWN over the whole box{milp}, and input splitting is limited to {} free inputs \
         ({free} here); ReLU branch and bound did not decide it either{bab}",
        opts.max_split_inputs
    ))
}

/// Bounds one sub-box: refutes conjunctions, looks for a counterexample, or splits.
fn process(
    net: &Network,
    p: &BoxProperty,
    atoms: &Atoms,
    node: Node,
    opts: &VerifyOptions,
    splittable: bool,
    start: Instant,
) -> Result<Outcome, GraphError> {
    let seed = opts.seed;
    let n = node.lo.len();
    let set = InputSet::Box(Interval::new(node.lo.clone(), node.hi.clone()));
    // The distinct atoms of the open conjunctions (indices into `atoms.list`), as specification
    // rows.
    let mut rows: Vec<usize> = node.open.iter().flat_map(|&k| atoms.conj[k].iter().copied()).collect();
    rows.sort_unstable();
    rows.dedup();
    let spec: Vec<Vec<f64>> = rows.iter().map(|&g| atoms.list[g].c.clone()).collect();
    // Every bound below holds on this box, and so do the parent's: keep the largest.
    let mut lower: Vec<f64> = rows.iter().map(|&g| node.lower[g]).collect();
    let refuted_open = |lower: &[f64]| -> Vec<usize> {
        // A conjunction is refuted when one of its atoms cannot hold anywhere in the box.
        node.open
            .iter()
            .copied()
            .filter(|&k| {
                !atoms.conj[k].iter().any(|g| {
                    let r = rows.binary_search(g).expect("an atom of an open conjunction");
                    lower[r] > atoms.list[*g].d
                })
            })
            .collect()
    };
    // The optimized slopes (a warm start for the children).
    let mut warm_out: Option<Arc<WarmRows>> = None;
    // This box's own bounds (without the parent's), for branching: the parent's can keep an
    // atom "closest to refuted" long after another one is closer on the sub-box (ACAS Xu 4_3
    // prop 3: 5083 sub-boxes instead of 193).
    let mut own: Vec<f64> = vec![f64::NEG_INFINITY; spec.len()];
    // The box's pre-activation bounds (for the gradient enclosure).
    let mut pre: Option<Vec<Option<Interval>>> = None;
    let alpha = node.depth == 0 || start.elapsed() >= opts.sub_alpha_after;
    // alpha-CROWN stops optimizing at the timeout (on mnist-net_256x6 the root's alpha-CROWN
    // and the MILP's value bounds after ReLU branch and bound take about 1 s each).
    let bound_opts = Options { deadline: Some(start + opts.timeout), ..Options::default() };
    let mut run_split_bound = |iterations: usize, lower: &mut Vec<f64>| -> Result<(), GraphError> {
        // One engine run: alpha-CROWN on the intermediate bounds and on the specification
        // rows, the rows' slopes warm-started from the parent's (the intermediate ones start
        // from CROWN's); with 0 iterations it is CROWN (lipcert's intersected rule).
        let warm = match (&node.warm, iterations > 0) {
            (Some(w), true) => relu_bab::remap_warm(&w.warm, &w.rows, &rows, 0),
            _ => Warm::default(),
        };
        let so = SplitOptions {
            crown: Options { alpha_iterations: iterations, ..bound_opts.clone() },
            beta: false,
            alpha_intermediate: iterations > 0,
            ..SplitOptions::default()
        };
        // Without splits the subdomain is the whole (non-empty) box: `None` does not occur,
        // and would only leave the bounds as they are.
        if let Some(b) = bound_with_splits(net, &set, &spec, &[], None, Some(&warm), &so)? {
            for (l, v) in lower.iter_mut().zip(&b.spec_lower) {
                *l = l.max(*v);
            }
            own = b.spec_lower.clone();
            pre = Some(b.pre_activation);
            if iterations > 0 {
                warm_out = Some(Arc::new(WarmRows {
                    rows: rows.clone(),
                    warm: Warm { alpha: b.warm.alpha, ..Warm::default() },
                }));
            }
        }
        Ok(())
    };
    if node.depth == 0 {
        // The root gets alpha-CROWN (with optimized intermediate bounds) when CROWN does not
        // refute it.
        for m in [Method::Crown, Method::AlphaCrown] {
            let b = bound(net, &set, &spec, m, &bound_opts)?;
            for (l, v) in lower.iter_mut().zip(&b.spec_lower) {
                *l = l.max(*v);
            }
            if refuted_open(&lower).is_empty() {
                return Ok(Outcome::Refuted);
            }
        }
        if splittable {
            // One more CROWN run, for the pre-activation bounds the smear's gradient enclosure
            // needs (alpha steps here, as a warm start for the children, measured no faster).
            run_split_bound(0, &mut lower)?;
        }
        // The root has no parent: all of its bounds are its own.
        own.clone_from(&lower);
    } else {
        // Sub-boxes: CROWN alone keeps easy properties fast; once the search has run for
        // `sub_alpha_after`, alpha-CROWN in the same single engine run (before, CROWN and
        // then alpha-CROWN ran three more engines for the same sub-box).
        let its = if alpha { opts.sub_alpha_iterations } else { 0 };
        run_split_bound(its, &mut lower)?;
    }
    let open = refuted_open(&lower);
    if open.is_empty() {
        return Ok(Outcome::Refuted);
    }
    let own_slack: Vec<f64> = rows.iter().zip(&own).map(|(&g, l)| l - atoms.list[g].d).collect();
    let sub = BoxProperty {
        input: set.bounding_box(),
        unsafe_: Unsafe { any_of: open.iter().map(|&k| p.unsafe_.any_of[k].clone()).collect() },
    };
    // The center first.
    let center: Vec<f64> = node.lo.iter().zip(&node.hi).map(|(l, h)| 0.5 * l + 0.5 * h).collect();
    if let Some(y) = confirm(net, p, &center)? {
        return Ok(Outcome::Counterexample(center, y));
    }
    // A short attack inside the sub-box every few levels (it costs more than the bounds).
    if node.depth % 4 == 3 {
        let small = AttackOptions {
            restarts: 3,
            steps: 15,
            seed: seed ^ (node.depth as u64) << 32,
            deadline: Some(start + opts.timeout),
            ..AttackOptions::default()
        };
        let r = attack(net, &set, &sub.unsafe_, AttackMethod::Pgd, &small)?;
        if let Some(x) = r.counterexample {
            if let Some(y) = confirm(net, p, &x)? {
                return Ok(Outcome::Counterexample(x, y));
            }
        }
    }
    // Split along the largest smear s_i (hi_i - lo_i) of the atom closest to being refuted (of
    // the open ones), with s_i the geometric mean of |d(c . y)/dx_i| at the center and of its
    // enclosure over the sub-box (`gradient_bound`; the center alone where that is not
    // available), unless another input is far wider relative to the whole box
    // (`split_balance`). On ACAS Xu (116 s timeouts): the center alone took 17.1 s on 3_7
    // prop 1 and 30.3 s on 4_2 prop 2, the enclosure alone 0.4 s and 6.7 s but 5.4 s on 1_1
    // prop 3 (center: 1.0 s); the mean 0.4 s, 4.8 s and 1.1 s. (The largest |a_i| (hi_i - lo_i)
    // of the atom's linear lower bound a . x + b, as alpha-beta-CROWN's input split, took 4x
    // more sub-boxes than the center smear on 3_6 prop 1.)
    let best = open
        .iter()
        .flat_map(|&k| atoms.conj[k].iter())
        .map(|g| rows.binary_search(g).expect("an atom of an open conjunction"))
        .max_by(|&a, &b| own_slack[a].total_cmp(&own_slack[b]))
        .unwrap_or(0);
    let width: Vec<f64> = node.lo.iter().zip(&node.hi).map(|(l, h)| h - l).collect();
    let trace = net.trace(&center, 1)?;
    let at_center = net.vjp(&trace, &spec[best], false)?.input;
    let score: Vec<f64> = match pre.as_ref().and_then(|pre| gradient_bound(net, pre, &spec[best])) {
        Some(g) => g.iter().zip(&at_center).map(|(g, c)| (g * c.abs()).sqrt()).collect(),
        None => at_center,
    };
    let mut dim = (0..width.len())
        .filter(|&i| width[i] > 0.0)
        .max_by(|&i, &j| {
            (score[i].abs() * width[i] + 1e-12 * width[i]).total_cmp(&(score[j].abs() * width[j] + 1e-12 * width[j]))
        })
        .unwrap_or(0);
    if opts.split_balance > 0.0 {
        let rel = |i: usize| width[i] / (p.input.hi[i] - p.input.lo[i]);
        if let Some(w) = (0..n).filter(|&i| width[i] > 0.0).max_by(|&i, &j| rel(i).total_cmp(&rel(j))) {
            if rel(w) > opts.split_balance * rel(dim) {
                dim = w;
            }
        }
    }
    let mid = 0.5 * node.lo[dim] + 0.5 * node.hi[dim];
    let can_split = node.lo[dim] < mid && mid < node.hi[dim] && (splittable || node.depth > 0);
    // The MILP back end on a sub-box with few binaries. Where splitting cannot go on (too many
    // free inputs at the root, or a sub-box too narrow to halve) it is the last resort and gets
    // the remaining time; inside the search it gets a quarter of the timeout.
    let limit = if can_split { opts.milp_split_max_binaries } else { opts.milp_max_binaries };
    let mut milp_tried = false;
    if limit > 0 && milp::milp_supported(net).is_ok() {
        // The last-resort MILP on a whole box gets alpha-CROWN intermediate bounds: tighter
        // big-M constants and fewer binaries (mnist-net_256x2 prop 13 at eps 0.03: 49 binaries
        // instead of 61, 3.5 s instead of 13.5 s).
        let m = if can_split || node.depth > 0 { Method::Crown } else { Method::AlphaCrown };
        if start.elapsed() >= opts.timeout {
            return Ok(Outcome::OutOfTime);
        }
        let vb = value_bounds(net, &set, m, &bound_opts)?;
        // (Bounds past the deadline are IBP's: building a MILP from them would overrun it.)
        if start.elapsed() >= opts.timeout {
            return Ok(Outcome::OutOfTime);
        }
        if milp::milp_binaries(net, &vb).is_ok_and(|b| b <= limit) {
            let end = start + opts.timeout;
            let deadline = if can_split { end.min(Instant::now() + opts.timeout / 4) } else { end };
            let mo = MilpOptions { deadline: Some(deadline), ..MilpOptions::default() };
            // A counterexample is confirmed by the MILP code (forward pass, in the sub-box);
            // `confirm` re-checks it against the whole box.
            // The MILP failing to encode the sub-box (non-finite bounds) leaves it to splitting.
            match milp_verify_with_bounds(net, &sub, &vb, &mo).map(|r| r.verdict) {
                Ok(Verdict::Unsat) => return Ok(Outcome::MilpRefuted),
                // Out of the verification's own time (not just the MILP's share).
                Ok(Verdict::Timeout) if deadline == end => return Ok(Outcome::OutOfTime),
                Ok(Verdict::Sat { x, y }) if confirm(net, p, &x)?.is_some() => {
                    return Ok(Outcome::Counterexample(x, y))
                }
                _ => milp_tried = true,
            }
        }
    }
    if !(node.lo[dim] < mid && mid < node.hi[dim]) {
        return Ok(Outcome::Stuck(milp_tried));
    }
    let mut all = (*node.lower).clone();
    for (&g, l) in rows.iter().zip(&lower) {
        all[g] = all[g].max(*l);
    }
    let all = Arc::new(all);
    let warm_out = warm_out.or(node.warm);
    let (mut a, mut b) = (
        Node {
            lo: node.lo.clone(),
            hi: node.hi.clone(),
            open: open.clone(),
            depth: node.depth + 1,
            lower: all.clone(),
            warm: warm_out.clone(),
        },
        Node { lo: node.lo, hi: node.hi, open, depth: node.depth + 1, lower: all, warm: warm_out },
    );
    // Both halves include mid: the two closed boxes cover the parent.
    a.hi[dim] = mid;
    b.lo[dim] = mid;
    Ok(Outcome::Split(a, b, milp_tried))
}

#[cfg(test)]
mod tests {
    use super::*;
    use lipcert_core::random::random_mlp;
    use lipcert_core::Rng;

    /// The smear's gradient enclosure holds at sampled points of the box (it only steers the
    /// branching, but a wrong enclosure would steer it badly).
    #[test]
    fn gradient_bound_encloses_sampled_gradients() {
        let mut rng = Rng::new(5);
        for case in 0..20 {
            let net = random_mlp(&mut rng, &[3, 12, 12, 4], Some(Activation::Relu), |_| 1.0, 0.5);
            let lo: Vec<f64> = (0..3).map(|_| rng.range(-1.0, 0.0)).collect();
            let hi: Vec<f64> = lo.iter().map(|l| l + rng.range(0.05, 1.0)).collect();
            let set = InputSet::Box(Interval::new(lo.clone(), hi.clone()));
            let pre: Vec<Option<Interval>> =
                value_bounds(&net, &set, Method::Crown, &Options::default()).unwrap().into_iter().map(Some).collect();
            let c = vec![1.0, -1.0, 0.5, 0.0];
            let g = gradient_bound(&net, &pre, &c).expect("a chain of dense and ReLU nodes");
            for _ in 0..200 {
                let x: Vec<f64> = lo.iter().zip(&hi).map(|(l, h)| rng.range(*l, *h)).collect();
                let trace = net.trace(&x, 1).unwrap();
                let gx = net.vjp(&trace, &c, false).unwrap().input;
                for i in 0..3 {
                    assert!(gx[i].abs() <= g[i] * (1.0 + 1e-9) + 1e-12, "case {case}: |{}| > {}", gx[i], g[i]);
                }
            }
        }
    }
}
