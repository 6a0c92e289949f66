//! Branch and bound over ReLU splits (for high-dimensional inputs such as MNIST, where input
//! splitting is hopeless): the input box stays whole and the search splits unstable ReLU-like
//! neurons into their active (z >= 0) and inactive (z <= 0) halves.
//!
//! - Bounds: `lipcert_bounds::bound_with_splits`, alpha-CROWN with optimized intermediate bounds
//!   at the root, then per subdomain clamped intermediate bounds (CROWN, intersected with the
//!   parent's) and jointly optimized slopes and split multipliers (beta-CROWN) on the
//!   specification rows, warm-started from the parent's. A child also keeps its parent's bound
//!   of every atom (the parent's subdomain contains it), so bounds never loosen down the tree.
//! - A subdomain is closed when every conjunction of the unsafe region has an atom refuted there
//!   (its lower bound of c . y exceeds d), or when its splits are infeasible. The two children of
//!   a split cover the parent (every point has z >= 0 or z <= 0), so when every leaf is closed
//!   the property holds on the whole box.
//! - Order: best first, the subdomain whose hardest open conjunction has the lowest bound goes
//!   first; `batch` subdomains are split per round and their children bounded in parallel.
//! - Branching: BaBSR-style intercept score, sum over the rows of open atoms of
//!   max(-lambda, 0) * (-l u / (u - l)) (lambda: the row's coefficient on the ReLU output; the
//!   chord's intercept that the split removes), plus a small share of |lambda| min(u, -l).
//! - Counterexamples: each bounded subdomain's minimizing inputs of its rows, and PGD at 2 s,
//!   8 s, 32 s, ... into the search; every one is re-checked by a forward pass (`confirm`).
//! - A subdomain without unstable neurons left (the network is linear on it) goes to the MILP
//!   back end with its clamped bounds (no binaries: one LP); undecided, the answer is `Unknown`.

use crate::{confirm, milp, Atoms, BoxProperty, MilpOptions, Verdict};
use lipcert_bounds::Options;
use lipcert_bounds::{
    attack, bound_with_splits, split_value_bounds, Atom, AttackMethod, AttackOptions, InputSet, Interval, Parent,
    Split, SplitBounds, SplitOptions, Unsafe, Warm,
};
use lipcert_core::{GraphError, Network, ValueId};
use rayon::prelude::*;
use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Branching weight of the open atoms other than the hardest.
const ROW_WEIGHT: f64 = 0.01;

#[derive(Clone, Debug)]
pub struct ReluBabOptions {
    /// The search stops with `Timeout` here (or at `deadline_without_milp`, see there).
    pub deadline: Instant,
    /// A later deadline for when no MILP can follow this search: the MILP does not support
    /// the network, or the root leaves more than `milp_max_binaries` unstable neurons. The
    /// verifier keeps the time after `deadline` for that MILP; without one it would be left
    /// unused (docs/GUARANTEES.md, "Timeouts").
    pub deadline_without_milp: Option<Instant>,
    /// The most binaries the MILP after this search takes (see `deadline_without_milp`).
    pub milp_max_binaries: usize,
    /// Subdomains split per round (their children are bounded in parallel).
    pub batch: usize,
    /// Root: alpha-CROWN steps (intermediate bounds and rows).
    pub root_alpha_iterations: usize,
    /// Subdomains: joint alpha-beta steps on the specification rows, warm-started from the
    /// parent's slopes and multipliers (5 steps warm covered more ground on mnist-net_256x2 than
    /// 10 or 20).
    pub alpha_iterations: usize,
    /// beta-CROWN multipliers for the splits (otherwise the clamps alone).
    pub beta: bool,
    /// Branching: the top candidates by the BaBSR-style score whose children are bounded
    /// cheaply to pick the best (filtered smart branching, lite); 1 uses the score alone (on
    /// mnist-net_256x2 prop 1 at eps 0.03, 3 candidates did not pay for their cost).
    pub branch_candidates: usize,
    /// Open subdomains kept at most; beyond, the answer is `Unknown`. Each holds its
    /// pre-activation bounds and its rows' slopes (mnist-net_256x2 with 9 rows: about 45 kB).
    /// At 180 to 320 subdomains per second on 2 cores (mnist-net_256x6 to 256x2), 60 s leave
    /// a few thousand open.
    pub max_domains: usize,
    pub seed: u64,
}

impl Default for ReluBabOptions {
    fn default() -> Self {
        ReluBabOptions {
            deadline: Instant::now() + Duration::from_secs(60),
            deadline_without_milp: None,
            milp_max_binaries: 0,
            batch: 8,
            root_alpha_iterations: 20,
            alpha_iterations: 5,
            beta: true,
            branch_candidates: 1,
            max_domains: 20_000,
            seed: 0,
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct ReluBabStats {
    /// Subdomains bounded (the root included).
    pub domains: usize,
    /// Of those, closed because their splits were infeasible.
    pub infeasible: usize,
    pub max_depth: usize,
    /// Open subdomains when the search stopped.
    pub open: usize,
    /// Subdomains without unstable neurons handed to the MILP back end.
    pub milp_leaves: usize,
    pub time_s: f64,
}

/// An open subdomain.
struct Domain {
    splits: Vec<Split>,
    /// The subdomain's bounds of the values that feed nonlinear nodes (shared by both children).
    pre: Arc<Vec<Option<Interval>>>,
    /// Per atom: the best certified lower bound of c . y - d here (-inf when not computed).
    slack: Vec<f64>,
    /// Conjunctions not refuted here.
    open: Vec<usize>,
    /// The lowest best-atom slack over the open conjunctions (popped lowest first).
    priority: f64,
    /// The neuron to split next.
    branch: (ValueId, usize),
    /// Optimized slopes and multipliers of the rows `warm_ids` (atom ids): the children's start.
    warm: Warm,
    warm_ids: Vec<usize>,
}

/// When the search stops, given the open root: `deadline`, or `deadline_without_milp` where no
/// MILP can follow (it does not encode the network, or the root's unstable neurons, on a ReLU
/// network the binaries of its encoding, are more than it takes).
fn search_deadline(net: &Network, opts: &ReluBabOptions, root: &Domain) -> Instant {
    let unstable: usize =
        root.pre.iter().flatten().map(|b| b.lo.iter().zip(&b.hi).filter(|(l, h)| **l < 0.0 && **h > 0.0).count()).sum();
    match opts.deadline_without_milp {
        Some(later) if milp::milp_supported(net).is_err() || unstable > opts.milp_max_binaries => {
            opts.deadline.max(later)
        }
        _ => opts.deadline,
    }
}

/// The parent's optimized slopes and multipliers for the rows `ids`, with a zero multiplier for
/// the one new split (the last).
pub(crate) fn remap_warm(from: &Warm, from_ids: &[usize], ids: &[usize], splits: usize) -> Warm {
    let (mf, m) = (from_ids.len(), ids.len());
    let rows: Vec<Option<usize>> = ids.iter().map(|a| from_ids.iter().position(|b| b == a)).collect();
    let alpha = from
        .alpha
        .iter()
        .map(|a| {
            a.as_ref().map(|a| {
                let len = a.len() / mf.max(1);
                let mut out = vec![f64::NAN; m * len];
                for (i, r) in rows.iter().enumerate() {
                    if let Some(r) = r {
                        out[i * len..(i + 1) * len].copy_from_slice(&a[r * len..(r + 1) * len]);
                    }
                }
                out
            })
        })
        .collect();
    let old = splits.saturating_sub(1);
    let mut beta = vec![0.0; m * splits];
    if from.beta.len() == mf * old {
        for (i, r) in rows.iter().enumerate() {
            if let Some(r) = r {
                beta[i * splits..i * splits + old].copy_from_slice(&from.beta[r * old..(r + 1) * old]);
            }
        }
    }
    let lower = rows.iter().map(|r| r.and_then(|r| from.lower.get(r).copied()).unwrap_or(f64::NEG_INFINITY)).collect();
    Warm { alpha, beta, lower }
}

impl PartialEq for Domain {
    fn eq(&self, other: &Self) -> bool {
        self.priority.total_cmp(&other.priority) == Ordering::Equal
    }
}
impl Eq for Domain {}
impl PartialOrd for Domain {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Domain {
    // BinaryHeap is a max-heap: the lowest priority compares greatest.
    fn cmp(&self, other: &Self) -> Ordering {
        other.priority.total_cmp(&self.priority)
    }
}

/// An open subdomain on which every ReLU-like neuron is stable or split.
struct Leaf {
    splits: Vec<Split>,
    pre: Arc<Vec<Option<Interval>>>,
    open: Vec<usize>,
}

/// What bounding one subdomain gave.
enum Bounded {
    Closed {
        infeasible: bool,
    },
    Counterexample(Vec<f64>, Vec<f64>),
    /// Open, with no unstable neuron left to split.
    Linear(Leaf),
    Open(Domain),
}

struct Problem<'a> {
    net: &'a Network,
    p: &'a BoxProperty,
    set: InputSet,
    atoms: Vec<&'a Atom>,
    /// Per conjunction: its atoms' ids.
    index: Vec<Vec<usize>>,
    /// Branching candidates tried by filtered smart branching (1: the BaBSR score alone).
    fsb: usize,
}

impl<'a> Problem<'a> {
    fn new(net: &'a Network, p: &'a BoxProperty) -> Self {
        let Atoms { list: atoms, conj: index } = Atoms::new(&p.unsafe_);
        Problem { net, p, set: InputSet::Box(p.input.clone()), atoms, index, fsb: 1 }
    }

    /// The open conjunctions given per-atom slacks (a conjunction is refuted when some atom's
    /// slack is > 0), and the priority (lowest best-atom slack over the open ones).
    fn open(&self, candidates: &[usize], slack: &[f64]) -> (Vec<usize>, f64) {
        let mut open = Vec::new();
        let mut priority = f64::INFINITY;
        for &k in candidates {
            let best = self.index[k].iter().map(|&i| slack[i]).fold(f64::NEG_INFINITY, f64::max);
            if best <= 0.0 || self.index[k].is_empty() {
                open.push(k);
                priority = priority.min(best);
            }
        }
        (open, priority)
    }

    /// Bounds the subdomain `splits` (a child of a domain with `parent` bounds and `slack`).
    fn bound(
        &self,
        splits: Vec<Split>,
        parent: Option<&Domain>,
        slack: &[f64],
        candidates: &[usize],
        opts: &SplitOptions,
    ) -> Result<Bounded, GraphError> {
        // The atoms of the candidate conjunctions that are not refuted yet.
        let mut ids: Vec<usize> = candidates.iter().flat_map(|&k| self.index[k].iter().copied()).collect();
        ids.sort_unstable();
        ids.dedup();
        ids.retain(|&i| slack[i] <= 0.0);
        let spec: Vec<Vec<f64>> = ids.iter().map(|&i| self.atoms[i].c.clone()).collect();
        let warm = parent.map(|d| remap_warm(&d.warm, &d.warm_ids, &ids, splits.len()));
        let pre = parent.map(|d| Parent { pre_activation: &d.pre, splits: &d.splits });
        let Some(b) = bound_with_splits(self.net, &self.set, &spec, &splits, pre, warm.as_ref(), opts)? else {
            return Ok(Bounded::Closed { infeasible: true });
        };
        let mut slack = slack.to_vec();
        for (r, &i) in ids.iter().enumerate() {
            slack[i] = slack[i].max(b.spec_lower[r] - self.atoms[i].d);
        }
        let (open, priority) = self.open(candidates, &slack);
        if open.is_empty() {
            return Ok(Bounded::Closed { infeasible: false });
        }
        // The rows' minimizers are points of the box: cheap attack candidates.
        let n = self.net.input_len();
        for r in 0..ids.len() {
            let x = &b.minimizers[r * n..(r + 1) * n];
            if let Some(y) = confirm(self.net, self.p, x)? {
                return Ok(Bounded::Counterexample(x.to_vec(), y));
            }
        }
        // Rows of the open atoms, weighted: the atom with the lowest slack counts fully, the
        // others a little (splits that help the hardest atom first).
        let worst = (0..ids.len()).map(|r| slack[ids[r]]).fold(f64::INFINITY, f64::min);
        let rows: Vec<(usize, f64)> = (0..ids.len())
            .filter(|&r| slack[ids[r]] <= 0.0)
            .map(|r| (r, if slack[ids[r]] <= worst { 1.0 } else { ROW_WEIGHT }))
            .collect();
        let pre = Arc::new(b.pre_activation.clone());
        let candidates = branch_candidates(&b, &splits, &rows, self.fsb.max(1));
        let branch = if candidates.len() <= 1 {
            candidates.first().copied()
        } else {
            // Filtered smart branching (lite): bound both children of each candidate cheaply
            // (CROWN slopes, the clamp only, the worst atom's row) and keep the candidate
            // whose worse child is best.
            let r = (0..ids.len()).min_by(|&a, &b| slack[ids[a]].total_cmp(&slack[ids[b]])).unwrap_or(0);
            let row = vec![self.atoms[ids[r]].c.clone()];
            let cheap = SplitOptions {
                crown: Options { alpha_iterations: 0, ..Options::default() },
                beta: false,
                recompute_intermediate: false,
                ..SplitOptions::default()
            };
            let own = Parent { pre_activation: &pre, splits: &splits };
            let mut best: Option<((ValueId, usize), f64, f64)> = None;
            for &(v, j) in &candidates {
                let mut child = [f64::INFINITY; 2];
                for (c, active) in child.iter_mut().zip([true, false]) {
                    let mut sp = splits.clone();
                    sp.push(Split { value: v, index: j, active });
                    if let Some(cb) = bound_with_splits(self.net, &self.set, &row, &sp, Some(own), None, &cheap)? {
                        *c = cb.spec_lower[0];
                    }
                }
                let (lo, hi) = (child[0].min(child[1]), child[0].max(child[1]));
                if best.is_none_or(|(_, bl, bh)| lo > bl || (lo == bl && hi > bh)) {
                    best = Some(((v, j), lo, hi));
                }
            }
            best.map(|b| b.0)
        };
        match branch {
            Some(branch) => {
                Ok(Bounded::Open(Domain { splits, pre, slack, open, priority, branch, warm: b.warm, warm_ids: ids }))
            }
            None => Ok(Bounded::Linear(Leaf { splits, pre, open })),
        }
    }
}

/// The `k` unstable, unsplit neurons with the largest BaBSR-style intercept scores over the
/// weighted `rows`, best first.
fn branch_candidates(b: &SplitBounds, splits: &[Split], rows: &[(usize, f64)], k: usize) -> Vec<(ValueId, usize)> {
    let m = b.spec_lower.len();
    let mut all: Vec<((ValueId, usize), f64)> = Vec::new();
    for (v, coef) in b.coefficients.iter().enumerate() {
        let (Some(coef), Some(Some(iv))) = (coef, b.pre_activation.get(v)) else {
            continue;
        };
        let len = iv.lo.len();
        if m == 0 || coef.len() != m * len {
            continue;
        }
        for j in 0..len {
            let (l, u) = (iv.lo[j], iv.hi[j]);
            if !(l < 0.0 && u > 0.0) || splits.iter().any(|s| s.value == v && s.index == j) {
                continue;
            }
            let intercept = -l * u / (u - l);
            let mut score = 0.0;
            for &(r, w) in rows {
                let lambda = coef[r * len + j];
                score += w * ((-lambda).max(0.0) * intercept + 1e-3 * lambda.abs() * u.min(-l));
            }
            // Ties (all scores 0) still pick a neuron: the widest.
            all.push(((v, j), score + 1e-12 * (u - l)));
        }
    }
    all.sort_by(|a, b| b.1.total_cmp(&a.1));
    all.into_iter().take(k).map(|(n, _)| n).collect()
}

/// Decides `p` by ReLU-splitting branch and bound on the whole input box (see the module doc).
pub fn relu_bab(net: &Network, p: &BoxProperty, opts: &ReluBabOptions) -> Result<(Verdict, ReluBabStats), GraphError> {
    let start = Instant::now();
    let mut stats = ReluBabStats::default();
    let done = |v: Verdict, mut stats: ReluBabStats| {
        stats.time_s = start.elapsed().as_secs_f64();
        Ok((v, stats))
    };
    if p.unsafe_.any_of.is_empty() {
        return done(Verdict::Unsat, stats);
    }
    let mut prob = Problem::new(net, p);
    prob.fsb = opts.branch_candidates;
    let all: Vec<usize> = (0..p.unsafe_.any_of.len()).collect();
    let root_opts = SplitOptions {
        crown: Options {
            alpha_iterations: opts.root_alpha_iterations,
            deadline: Some(opts.deadline),
            ..Options::default()
        },
        beta: false,
        alpha_intermediate: true,
        ..SplitOptions::default()
    };
    let mut sub_opts = SplitOptions {
        crown: Options { alpha_iterations: opts.alpha_iterations, deadline: Some(opts.deadline), ..Options::default() },
        beta: opts.beta,
        alpha_intermediate: false,
        recompute_intermediate: true,
        ..SplitOptions::default()
    };
    let slack0 = vec![f64::NEG_INFINITY; prob.atoms.len()];
    let mut heap = BinaryHeap::new();
    let mut linear: Vec<Leaf> = Vec::new();
    stats.domains += 1;
    // CROWN first: it refutes easy properties at a fraction of alpha-CROWN's cost.
    let crown_opts = SplitOptions {
        crown: Options { alpha_iterations: 0, ..Options::default() },
        beta: false,
        alpha_intermediate: false,
        ..SplitOptions::default()
    };
    let root = match prob.bound(Vec::new(), None, &slack0, &all, &crown_opts)? {
        Bounded::Open(_) | Bounded::Linear(_) => prob.bound(Vec::new(), None, &slack0, &all, &root_opts)?,
        decided => decided,
    };
    let mut deadline = opts.deadline;
    match root {
        Bounded::Closed { infeasible } => {
            stats.infeasible += infeasible as usize;
            return done(Verdict::Unsat, stats);
        }
        Bounded::Counterexample(x, y) => return done(Verdict::Sat { x, y }, stats),
        Bounded::Linear(leaf) => linear.push(leaf),
        Bounded::Open(d) => {
            deadline = search_deadline(net, opts, &d);
            sub_opts.crown.deadline = Some(deadline);
            heap.push(d)
        }
    }
    let run_attack = |restarts: usize, seed: u64| -> Result<Option<Verdict>, GraphError> {
        let o = AttackOptions { restarts, steps: 50, seed, deadline: Some(deadline), ..AttackOptions::default() };
        let r = attack(net, &prob.set, &p.unsafe_, AttackMethod::Pgd, &o)?;
        match r.counterexample {
            Some(x) => Ok(confirm(net, p, &x)?.map(|y| Verdict::Sat { x, y })),
            None => Ok(None),
        }
    };
    let mut next_attack = (Duration::from_secs(2), 40usize, 1u64);
    while !heap.is_empty() {
        if Instant::now() >= deadline {
            stats.open = heap.len() + linear.len();
            return done(Verdict::Timeout, stats);
        }
        if heap.len() > opts.max_domains {
            stats.open = heap.len() + linear.len();
            return done(
                Verdict::Unknown(format!("ReLU branch and bound stopped at {} open subdomains", heap.len())),
                stats,
            );
        }
        if start.elapsed() >= next_attack.0 {
            if let Some(v) = run_attack(next_attack.1, opts.seed.wrapping_add(1000 + next_attack.2))? {
                return done(v, stats);
            }
            next_attack = (next_attack.0 * 4, (next_attack.1 * 4).min(2000), next_attack.2 + 1);
        }
        let take = opts.batch.max(1).min(heap.len());
        let parents: Vec<Domain> = (0..take).filter_map(|_| heap.pop()).collect();
        let jobs: Vec<(&Domain, bool)> = parents.iter().flat_map(|d| [(d, true), (d, false)]).collect();
        let results: Vec<Result<Bounded, GraphError>> = jobs
            .into_par_iter()
            .map(|(d, active)| {
                let mut splits = d.splits.clone();
                splits.push(Split { value: d.branch.0, index: d.branch.1, active });
                prob.bound(splits, Some(d), &d.slack, &d.open, &sub_opts)
            })
            .collect();
        stats.domains += results.len();
        for r in results {
            match r? {
                Bounded::Closed { infeasible } => stats.infeasible += infeasible as usize,
                Bounded::Counterexample(x, y) => return done(Verdict::Sat { x, y }, stats),
                Bounded::Linear(leaf) => linear.push(leaf),
                Bounded::Open(d) => {
                    stats.max_depth = stats.max_depth.max(d.splits.len());
                    heap.push(d);
                }
            }
        }
    }
    // Subdomains where every neuron is stable: the network is affine there, so the MILP has no
    // binaries (one LP over the clamped bounds).
    for Leaf { splits, pre, open } in &linear {
        if Instant::now() >= deadline {
            stats.open = linear.len();
            return done(Verdict::Timeout, stats);
        }
        stats.milp_leaves += 1;
        let Some(vb) = split_value_bounds(net, &prob.set, splits, Some(Parent { pre_activation: pre, splits }))? else {
            continue;
        };
        let sub = BoxProperty {
            input: p.input.clone(),
            unsafe_: Unsafe { any_of: open.iter().map(|&k| p.unsafe_.any_of[k].clone()).collect() },
        };
        let mo = MilpOptions { deadline: Some(deadline), ..MilpOptions::default() };
        match milp::milp_verify_with_bounds(net, &sub, &vb, &mo).map(|r| r.verdict) {
            Ok(Verdict::Unsat) => {}
            Ok(Verdict::Sat { x, .. }) if confirm(net, p, &x)?.is_some() => {
                let y = confirm(net, p, &x)?.expect("confirmed");
                return done(Verdict::Sat { x, y }, stats);
            }
            other => {
                stats.open = 1;
                let why = match other {
                    Err(e) => format!(" (the MILP back end: {e})"),
                    _ => String::new(),
                };
                return done(
                    Verdict::Unknown(format!(
                        "a subdomain with every ReLU fixed (or none to split) is neither refuted nor falsified{why}"
                    )),
                    stats,
                );
            }
        }
    }
    done(Verdict::Unsat, stats)
}
