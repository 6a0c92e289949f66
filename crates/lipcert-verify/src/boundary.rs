//! Distance to the decision boundary (paper 004's "algorithm D"): a certified bracket
//! `lower <= d_bnd(x0) <= upper` on
//!
//! d_bnd(x0) = inf { ||x - x0|| : x in the domain, y_j(x) - y_label(x) >= 0 for some j != label },
//!
//! the radius of the largest ball around x0 (intersected with the domain, if any) on which the
//! network keeps `label` strictly on top. Ties count as misclassified, as in
//! `Unsafe::misclassified`. With no misclassified point in the domain, d_bnd is +inf.
//!
//! **The bracket.**
//! - `lower` is always proven: 0 (trivially), the CROWN radius (the largest radius found by
//!   bisection at which CROWN shows every margin y_label - y_j > 0 over the ball), or the
//!   largest radius at which the complete verifier (`crate::verify`) answered `unsat` for the
//!   l_inf box around x0. A ball of radius r on which no point is misclassified gives
//!   d_bnd >= r. The boxes are rounded outward, so they contain the exact ball.
//! - `upper` is always witnessed: the distance ||x - x0|| (computed in f64) of a point x of the
//!   domain that a fresh forward pass shows misclassified. Such points come from PGD and from
//!   `verify`'s `sat` answers. Each is first moved toward x0: the first misclassified point of
//!   the segment from x0 to it, located by a grid and bisection of forward passes. The actual
//!   distance of that point is used, not the radius of the ball it was found in. `witness` is
//!   that point.
//!
//! **The search.**
//! 1. PGD from a first-order guess (min_j margin_j / ||grad margin_j||_dual at x0): the radius
//!    doubles until PGD finds a witness, or halves while it still does.
//! 2. CROWN: bisection on the radius between 0 and the witness (`crown_radius`).
//! 3. PGD again: bisection between the CROWN radius and the witness; when no witness is known
//!    yet, a geometric grid of radii above the CROWN radius (`pgd_radius` is the smallest
//!    radius at which PGD succeeded).
//! 4. Exact search (l_inf): `verify` at probes between `lower` and `upper`, each call with half
//!    of the remaining time. `verify`'s cost grows steeply with the radius (on mnistfc its MILP
//!    takes 1.6 s at one radius and over 30 s at 1.1 times it), so the first probe lies 1/8 of
//!    the way up and the fraction doubles after each `unsat`, up to 1/2 (bisection). `unsat`
//!    raises `lower`, `sat` lowers `upper`, and an undecided answer (unknown, timeout) halves
//!    the fraction. With no witness yet, probes go up geometrically from `lower`.
//!    The search stops when `upper - lower <= tol * max(upper, 1e-12)` (`closed`), at the
//!    timeout, or after 3 undecided answers in a row.
//! - For the l2 norm, `verify` (boxes only) cannot decide a ball. The bracket is CROWN's l2
//!   radius and PGD's l2 distance, and `verify` is used only on l_inf boxes of radius r, which
//!   contain the l2 ball of radius r: `unsat` proves d_2 >= r. That helps in low dimension,
//!   where d_inf is close to d_2 (one probe just above the CROWN radius tells whether it can).
//!   `exact_search` is false. The bracket still closes when its ends meet, as on networks that
//!   are linear near x0.
//! - If x0 itself is misclassified (`label` is not strictly on top), d_bnd = 0 and the witness
//!   is x0.
//! - With a domain, a ball that covers the whole domain and is certified robust proves
//!   d_bnd = +inf (`lower` is +inf).
//!
//! **What backs `lower`.** CROWN's bounds carry their own rounding-error accounting. A
//! `verify` `unsat` is as trustworthy as `verify`'s: certified CROWN / alpha-CROWN bounds on a
//! partition of the box, or the MILP back end, whose refutation is a floating-point argument
//! with a margin (see docs/GUARANTEES.md); `lower_by` says which.
//!
//! Every new witness is checked against the proven lower bound; a witness closer than `lower`
//! would expose an unsound bound and ends the search with an error.

use crate::{verify, BoxProperty, Verdict, VerifyOptions};
use lipcert_bounds::{attack, margins, AttackMethod, AttackOptions, InputSet, Interval, Method, Options, Unsafe};
use lipcert_core::rounding::{next_down, next_up};
use lipcert_core::{GraphError, Network};
use std::time::{Duration, Instant};

/// The norm of the perturbation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BoundaryNorm {
    /// l_inf: max_i |x_i - x0_i|.
    Inf,
    /// l2: the Euclidean norm.
    L2,
}

impl BoundaryNorm {
    /// "inf" or "2".
    pub fn name(self) -> &'static str {
        match self {
            BoundaryNorm::Inf => "inf",
            BoundaryNorm::L2 => "2",
        }
    }

    /// ||a - b|| in this norm, computed in f64.
    pub fn distance(self, a: &[f64], b: &[f64]) -> f64 {
        let d = a.iter().zip(b).map(|(x, y)| (x - y).abs());
        match self {
            BoundaryNorm::Inf => d.fold(0.0, f64::max),
            BoundaryNorm::L2 => d.map(|v| v * v).sum::<f64>().sqrt(),
        }
    }

    /// The dual norm of a gradient (for the first-order estimate of the distance).
    fn dual(self, g: &[f64]) -> f64 {
        match self {
            BoundaryNorm::Inf => g.iter().map(|v| v.abs()).sum(),
            BoundaryNorm::L2 => g.iter().map(|v| v * v).sum::<f64>().sqrt(),
        }
    }
}

#[derive(Clone, Debug)]
pub struct BoundaryOptions {
    /// Wall-clock budget of the whole search; the bracket found so far is returned when it runs out.
    pub timeout: Duration,
    /// Stop when upper - lower <= tol * max(upper, 1e-12). Also the relative resolution of the
    /// CROWN and PGD bisections.
    pub tol: f64,
    /// Valid inputs (for example [0, 1] for images): d_bnd only counts points of the domain.
    pub domain: Option<Interval>,
    /// PGD at each radius of the upper-bound search (the seed is varied per call).
    pub attack: AttackOptions,
    /// Template of the `verify` calls of the exact search; `timeout` is set per call.
    pub verify: VerifyOptions,
    /// Only the PGD phases (the witnessed upper side): no CROWN and no exact search, so
    /// `lower` stays 0. For the attack distance d_adv of substitute networks.
    pub pgd_only: bool,
}

impl Default for BoundaryOptions {
    fn default() -> Self {
        BoundaryOptions {
            timeout: Duration::from_secs(60),
            tol: 1e-3,
            domain: None,
            attack: AttackOptions::default(),
            // Near the boundary the root box of a high-dimensional input usually has more
            // unstable neurons than verify's default MILP limit; the per-call time limit
            // bounds the cost instead.
            verify: VerifyOptions { milp_max_binaries: 256, ..VerifyOptions::default() },
            pgd_only: false,
        }
    }
}

/// Which step of the search a probe belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// CROWN on the ball (lower side).
    Crown,
    /// PGD on the ball (upper side).
    Pgd,
    /// The complete verifier on the l_inf box (both sides).
    Verify,
}

impl Phase {
    pub fn name(self) -> &'static str {
        match self {
            Phase::Crown => "crown",
            Phase::Pgd => "pgd",
            Phase::Verify => "verify",
        }
    }
}

/// What one probe at one radius found.
#[derive(Clone, Debug, PartialEq)]
pub enum ProbeOutcome {
    /// CROWN shows every margin positive over the ball: d_bnd >= eps.
    Certified,
    /// CROWN leaves some margin bound <= 0 (proves nothing).
    NotCertified,
    /// A misclassified point, re-checked by a forward pass, at this distance from x0.
    Counterexample { distance: f64 },
    /// PGD found no misclassified point (proves nothing).
    NotFound,
    /// `verify` answered unsat: d_bnd >= eps. `milp`: the MILP back end decided part of it.
    Unsat { milp: bool },
    /// `verify` answered unknown or timeout (the reason).
    Undecided(String),
}

impl ProbeOutcome {
    /// A short word for tables and JSON.
    pub fn word(&self) -> &'static str {
        match self {
            ProbeOutcome::Certified => "certified",
            ProbeOutcome::NotCertified => "not certified",
            ProbeOutcome::Counterexample { .. } => "counterexample",
            ProbeOutcome::NotFound => "not found",
            ProbeOutcome::Unsat { .. } => "unsat",
            ProbeOutcome::Undecided(_) => "undecided",
        }
    }
}

/// One probe of the search: a method run at one radius.
#[derive(Clone, Debug)]
pub struct Probe {
    pub phase: Phase,
    pub eps: f64,
    pub outcome: ProbeOutcome,
    pub time_s: f64,
}

/// What proves the lower bound.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LowerProof {
    /// Nothing beyond lower = 0.
    Trivial,
    /// CROWN certifies every margin on the ball of radius `lower`.
    Crown,
    /// `verify` answered unsat on the box of radius `lower` with CROWN / alpha-CROWN bounds.
    Verify,
    /// `verify` answered unsat on the box of radius `lower`, partly through the MILP back end.
    VerifyMilp,
}

impl LowerProof {
    /// A short name for JSON.
    pub fn name(self) -> &'static str {
        match self {
            LowerProof::Trivial => "trivial",
            LowerProof::Crown => "crown",
            LowerProof::Verify => "verify",
            LowerProof::VerifyMilp => "verify-milp",
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            LowerProof::Trivial => "trivial (0)",
            LowerProof::Crown => "CROWN certifies every margin",
            LowerProof::Verify => "verify: unsat on the l_inf box (certified bounds)",
            LowerProof::VerifyMilp => "verify: unsat on the l_inf box (MILP)",
        }
    }
}

/// Where the witness of the upper bound comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpperSource {
    /// No misclassified point was found: upper is +inf.
    None,
    /// x0 itself is misclassified.
    Clean,
    Pgd,
    Verify,
}

impl UpperSource {
    /// A short name for JSON.
    pub fn name(self) -> &'static str {
        match self {
            UpperSource::None => "none",
            UpperSource::Clean => "clean",
            UpperSource::Pgd => "pgd",
            UpperSource::Verify => "verify",
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            UpperSource::None => "no misclassified point found",
            UpperSource::Clean => "x0 itself is misclassified",
            UpperSource::Pgd => "PGD counterexample moved toward x0, re-checked",
            UpperSource::Verify => "verify counterexample moved toward x0, re-checked",
        }
    }
}

#[derive(Clone, Debug)]
pub struct BoundaryResult {
    pub norm: BoundaryNorm,
    pub label: usize,
    /// The model's class at x0 (the first largest output).
    pub predicted: usize,
    /// y_label - max_{j != label} y_j at x0 (<= 0: x0 is misclassified).
    pub margin: f64,
    /// Proven: d_bnd >= lower (+inf when the whole domain is shown robust).
    pub lower: f64,
    pub lower_by: LowerProof,
    /// Witnessed: d_bnd <= upper = ||witness - x0|| (+inf when no misclassified point was found).
    pub upper: f64,
    pub upper_by: UpperSource,
    /// The misclassified point at distance `upper`, and the network's output there.
    pub witness: Option<Vec<f64>>,
    pub witness_output: Option<Vec<f64>>,
    /// The largest radius at which CROWN certified the ball (0 when it never did).
    pub crown_radius: f64,
    /// The smallest ball radius at which PGD found a misclassified point (+inf when it never did).
    pub pgd_radius: f64,
    /// upper - lower <= tol * max(upper, 1e-12), or both infinite.
    pub closed: bool,
    /// The search stopped at the timeout.
    pub timed_out: bool,
    /// Whether exact search by `verify` was available (l_inf only).
    pub exact_search: bool,
    /// Why the bracket is not closed, when it is not (and other remarks).
    pub note: Option<String>,
    pub crown_calls: usize,
    pub pgd_calls: usize,
    pub verify_calls: usize,
    pub crown_time_s: f64,
    pub pgd_time_s: f64,
    pub verify_time_s: f64,
    pub time_s: f64,
    /// Every probe, in order.
    pub probes: Vec<Probe>,
}

/// Reported after every probe.
pub struct Progress<'a> {
    pub probe: &'a Probe,
    pub lower: f64,
    pub upper: f64,
    pub elapsed_s: f64,
}

/// The certified bracket on the distance from `x0` to the decision boundary of `label`.
pub fn decision_boundary(
    net: &Network,
    x0: &[f64],
    label: usize,
    norm: BoundaryNorm,
    opts: &BoundaryOptions,
) -> Result<BoundaryResult, GraphError> {
    decision_boundary_with_progress(net, x0, label, norm, opts, &mut |_| {})
}

/// `decision_boundary`, calling `progress` after every probe.
pub fn decision_boundary_with_progress(
    net: &Network,
    x0: &[f64],
    label: usize,
    norm: BoundaryNorm,
    opts: &BoundaryOptions,
    progress: &mut dyn FnMut(&Progress),
) -> Result<BoundaryResult, GraphError> {
    let start = Instant::now();
    check(net, x0, label, opts)?;
    let m = net.output_len();
    let y0 = net.forward(x0, 1)?;
    if let Some(j) = y0.iter().position(|v| !v.is_finite()) {
        return Err(GraphError::Data(format!("the network's output {j} at x0 is {}", y0[j])));
    }
    let predicted = (0..m).max_by(|&a, &b| y0[a].total_cmp(&y0[b]).then(b.cmp(&a))).unwrap_or(0);
    let unsafe_ = Unsafe::misclassified(label, m);
    let margin = unsafe_.loss(&y0);
    let mut s = Search {
        net,
        x0,
        label,
        norm,
        opts,
        unsafe_,
        start,
        deadline: start + opts.timeout,
        lower: 0.0,
        lower_by: LowerProof::Trivial,
        upper: f64::INFINITY,
        upper_by: UpperSource::None,
        witness: None,
        crown_radius: 0.0,
        pgd_radius: f64::INFINITY,
        probes: Vec::new(),
        progress,
        timed_out: false,
        note: None,
    };
    if margin <= 0.0 {
        // x0 is already on the other side (or on the boundary).
        s.upper = 0.0;
        s.upper_by = UpperSource::Clean;
        s.witness = Some((x0.to_vec(), y0));
    } else {
        s.run()?;
    }
    Ok(s.finish(predicted, margin))
}

fn check(net: &Network, x0: &[f64], label: usize, opts: &BoundaryOptions) -> Result<(), GraphError> {
    let (n, m) = (net.input_len(), net.output_len());
    if x0.len() != n {
        return Err(GraphError::Data(format!("x0 has {} elements, the network has {n} inputs", x0.len())));
    }
    if let Some(i) = x0.iter().position(|v| !v.is_finite()) {
        return Err(GraphError::Data(format!("x0 element {i} is {}", x0[i])));
    }
    if label >= m {
        return Err(GraphError::Data(format!("label {label} is not below the {m} outputs")));
    }
    if !(opts.tol >= 0.0 && opts.tol.is_finite()) {
        return Err(GraphError::Data(format!("the tolerance must be finite and non-negative, got {}", opts.tol)));
    }
    if let Some(d) = &opts.domain {
        if d.lo.len() != n || d.hi.len() != n {
            return Err(GraphError::Data(format!(
                "the domain has {} lower and {} upper bounds, the network has {n} inputs",
                d.lo.len(),
                d.hi.len()
            )));
        }
        if let Some(i) = (0..n).find(|&i| !(d.lo[i] <= x0[i] && x0[i] <= d.hi[i])) {
            return Err(GraphError::Data(format!(
                "x0 element {i} ({}) is outside the domain [{}, {}]",
                x0[i], d.lo[i], d.hi[i]
            )));
        }
    }
    Ok(())
}

/// Most bisection steps of the CROWN and PGD phases (each also stops at `tol`).
const MAX_BISECTIONS: usize = 60;
/// The exact search gives up after this many undecided `verify` answers in a row.
const MAX_UNDECIDED: usize = 3;
/// PGD radii tried above the CROWN radius when the doubling search found no witness.
const PGD_GRID: usize = 24;
/// The exact search's first probe lies this fraction of the way from `lower` to `upper`: the
/// cost of `verify` grows steeply with the radius, so it starts low and doubles the fraction
/// (up to 1/2, bisection) after every `unsat`.
const FIRST_FRACTION: f64 = 0.125;

/// The l_inf box of radius eps around x0, rounded outward (so it contains the exact ball),
/// clipped to the domain.
pub fn linf_box(x0: &[f64], eps: f64, domain: Option<&Interval>) -> Interval {
    let mut lo: Vec<f64> = x0.iter().map(|c| next_down(c - eps)).collect();
    let mut hi: Vec<f64> = x0.iter().map(|c| next_up(c + eps)).collect();
    if let Some(d) = domain {
        for i in 0..lo.len() {
            lo[i] = lo[i].max(d.lo[i]);
            hi[i] = hi[i].min(d.hi[i]);
        }
    }
    Interval::new(lo, hi)
}

struct Search<'a, 'p> {
    net: &'a Network,
    x0: &'a [f64],
    label: usize,
    norm: BoundaryNorm,
    opts: &'a BoundaryOptions,
    unsafe_: Unsafe,
    start: Instant,
    deadline: Instant,
    lower: f64,
    lower_by: LowerProof,
    upper: f64,
    upper_by: UpperSource,
    /// The witness of `upper` and the output there.
    witness: Option<(Vec<f64>, Vec<f64>)>,
    crown_radius: f64,
    pgd_radius: f64,
    probes: Vec<Probe>,
    progress: &'p mut dyn FnMut(&Progress),
    timed_out: bool,
    note: Option<String>,
}

impl Search<'_, '_> {
    fn out_of_time(&mut self) -> bool {
        if Instant::now() >= self.deadline {
            self.timed_out = true;
        }
        self.timed_out
    }

    /// Whether the bracket meets the tolerance.
    fn closed(&self) -> bool {
        if self.upper.is_infinite() {
            return self.lower.is_infinite();
        }
        self.upper - self.lower <= self.opts.tol * self.upper.max(1e-12)
    }

    /// The l_inf box of radius eps around x0, rounded outward (so it contains the exact ball),
    /// clipped to the domain.
    fn linf_box(&self, eps: f64) -> Interval {
        linf_box(self.x0, eps, self.opts.domain.as_ref())
    }

    fn ball(&self, eps: f64) -> Result<InputSet, GraphError> {
        match self.norm {
            BoundaryNorm::Inf => Ok(InputSet::Box(self.linf_box(eps))),
            BoundaryNorm::L2 => InputSet::l2_ball(self.x0, eps, self.opts.domain.as_ref()),
        }
    }

    /// The radius of a ball around x0 that contains the whole domain (None without a domain).
    fn domain_radius(&self) -> Option<f64> {
        let d = self.opts.domain.as_ref()?;
        let far: Vec<f64> = (0..self.x0.len()).map(|i| (self.x0[i] - d.lo[i]).max(d.hi[i] - self.x0[i])).collect();
        let r = match self.norm {
            BoundaryNorm::Inf => far.iter().cloned().fold(0.0, f64::max),
            BoundaryNorm::L2 => far.iter().map(|v| v * v).sum::<f64>().sqrt() * (1.0 + 1e-12),
        };
        Some(next_up(r))
    }

    fn record(&mut self, phase: Phase, eps: f64, outcome: ProbeOutcome, t0: Instant) {
        self.probes.push(Probe { phase, eps, outcome, time_s: t0.elapsed().as_secs_f64() });
        let p = Progress {
            probe: self.probes.last().expect("just pushed"),
            lower: self.lower,
            upper: self.upper,
            elapsed_s: self.start.elapsed().as_secs_f64(),
        };
        (self.progress)(&p);
    }

    /// Re-checks a candidate (in the domain, misclassified by a fresh forward pass) and keeps it
    /// when it is the closest so far. Returns its distance, or None when it does not re-check.
    fn offer(&mut self, x: Vec<f64>, source: UpperSource) -> Result<Option<f64>, GraphError> {
        if let Some(d) = &self.opts.domain {
            if !x.iter().zip(&d.lo).zip(&d.hi).all(|((v, l), h)| l <= v && v <= h) {
                return Ok(None);
            }
        }
        let y = self.net.forward(&x, 1)?;
        // NaN never counts as misclassified.
        if self.unsafe_.loss(&y).is_nan() || self.unsafe_.loss(&y) > 0.0 {
            return Ok(None);
        }
        let (x, y) = self.toward_x0(x, y)?;
        let dist = self.norm.distance(&x, self.x0);
        // A misclassified point strictly inside a ball proven robust means an unsound bound.
        let inside = match self.norm {
            BoundaryNorm::Inf => InputSet::Box(self.linf_box(self.lower)).contains(&x),
            BoundaryNorm::L2 => dist < self.lower * (1.0 - 4.0 * f64::EPSILON),
        };
        if self.lower > 0.0 && inside {
            return Err(GraphError::Invalid(format!(
                "internal error: a misclassified point at distance {dist} lies in the ball of radius {} proven \
                 robust ({})",
                self.lower,
                self.lower_by.describe()
            )));
        }
        if dist < self.upper {
            self.upper = dist;
            self.upper_by = source;
            self.witness = Some((x, y));
        }
        Ok(Some(dist))
    }

    /// A misclassified point on the segment from x0 to `x` (a misclassified point with output
    /// `y`), near its first crossing of the boundary: the first of 32 evenly spaced points that
    /// is misclassified, then bisection between it and the point before, to f64 resolution.
    /// Every point is checked by a forward pass; the segment stays in the domain (clipped
    /// against rounding). Returns `x` itself when nothing closer re-checks.
    fn toward_x0(&self, x: Vec<f64>, y: Vec<f64>) -> Result<(Vec<f64>, Vec<f64>), GraphError> {
        let at = |t: f64| -> Vec<f64> {
            let mut p: Vec<f64> = self.x0.iter().zip(&x).map(|(a, b)| a + t * (b - a)).collect();
            if t == 1.0 {
                p.copy_from_slice(&x);
            }
            if let Some(d) = &self.opts.domain {
                for ((v, l), h) in p.iter_mut().zip(&d.lo).zip(&d.hi) {
                    *v = v.clamp(*l, *h);
                }
            }
            p
        };
        const GRID: usize = 32;
        let ts: Vec<f64> = (1..=GRID).map(|k| k as f64 / GRID as f64).collect();
        let points: Vec<f64> = ts.iter().flat_map(|&t| at(t)).collect();
        let ys = self.net.forward(&points, GRID)?;
        let m = self.net.output_len();
        let first = (0..GRID).find(|&k| self.unsafe_.loss(&ys[k * m..(k + 1) * m]) <= 0.0);
        let (mut good, mut bad, mut best) = match first {
            Some(k) => {
                let p = points[k * self.x0.len()..(k + 1) * self.x0.len()].to_vec();
                let yk = ys[k * m..(k + 1) * m].to_vec();
                (if k == 0 { 0.0 } else { ts[k - 1] }, ts[k], (p, yk))
            }
            None => (0.0, 1.0, (x.clone(), y)),
        };
        for _ in 0..60 {
            let mid = 0.5 * (good + bad);
            if !(good < mid && mid < bad) {
                break;
            }
            let p = at(mid);
            let yp = self.net.forward(&p, 1)?;
            if self.unsafe_.loss(&yp) <= 0.0 {
                bad = mid;
                best = (p, yp);
            } else {
                good = mid;
            }
        }
        // The batched pass may differ from a single-sample one in the last bits: re-check.
        let fresh = self.net.forward(&best.0, 1)?;
        if self.unsafe_.loss(&fresh) <= 0.0 {
            Ok((best.0, fresh))
        } else {
            let y = self.net.forward(&x, 1)?;
            Ok((x, y))
        }
    }

    fn prove(&mut self, eps: f64, by: LowerProof) -> Result<(), GraphError> {
        if let Some((x, _)) = &self.witness {
            let inside = match self.norm {
                BoundaryNorm::Inf => InputSet::Box(self.linf_box(eps)).contains(x),
                BoundaryNorm::L2 => self.upper < eps * (1.0 - 4.0 * f64::EPSILON),
            };
            if inside {
                return Err(GraphError::Invalid(format!(
                    "internal error: {} at radius {eps}, but a misclassified point lies at distance {}",
                    by.describe(),
                    self.upper
                )));
            }
        }
        if eps > self.lower {
            self.lower = eps;
            self.lower_by = by;
        }
        Ok(())
    }

    /// CROWN on the ball of radius eps: whether every margin is certified positive.
    fn crown(&mut self, eps: f64) -> Result<bool, GraphError> {
        let t0 = Instant::now();
        let set = self.ball(eps)?;
        let mg = margins(self.net, &set, self.label, Method::Crown, &Options::default())?;
        let ok = mg.iter().all(|&v| v > 0.0);
        if ok {
            self.crown_radius = self.crown_radius.max(eps);
            self.prove(eps, LowerProof::Crown)?;
        }
        self.record(Phase::Crown, eps, if ok { ProbeOutcome::Certified } else { ProbeOutcome::NotCertified }, t0);
        Ok(ok)
    }

    /// PGD on the ball of radius eps: the distance of the re-checked point it finds, if any.
    fn pgd(&mut self, eps: f64) -> Result<Option<f64>, GraphError> {
        let t0 = Instant::now();
        let set = self.ball(eps)?;
        let calls = self.probes.iter().filter(|p| p.phase == Phase::Pgd).count() as u64;
        let opts = AttackOptions { seed: self.opts.attack.seed.wrapping_add(calls), ..self.opts.attack.clone() };
        let r = attack(self.net, &set, &self.unsafe_, AttackMethod::Pgd, &opts)?;
        let found = match r.counterexample {
            Some(x) => self.offer(x, UpperSource::Pgd)?,
            None => None,
        };
        if found.is_some() {
            self.pgd_radius = self.pgd_radius.min(eps);
        }
        let outcome = match found {
            Some(distance) => ProbeOutcome::Counterexample { distance },
            None => ProbeOutcome::NotFound,
        };
        self.record(Phase::Pgd, eps, outcome, t0);
        Ok(found)
    }

    /// PGD bisection between `lo` (where PGD found nothing) and the witness, when there is one.
    fn pgd_bisection(&mut self, mut lo: f64) -> Result<(), GraphError> {
        if !self.upper.is_finite() {
            return Ok(());
        }
        for _ in 0..MAX_BISECTIONS {
            if self.upper - lo <= self.opts.tol * self.upper || self.out_of_time() {
                break;
            }
            let mid = 0.5 * (lo + self.upper);
            if self.pgd(mid)?.is_none() {
                lo = mid;
            }
        }
        Ok(())
    }

    /// The complete verifier on the l_inf box of radius eps, with this much time.
    fn verify(&mut self, eps: f64, time: Duration) -> Result<ProbeOutcome, GraphError> {
        let t0 = Instant::now();
        let prop = BoxProperty { input: self.linf_box(eps), unsafe_: self.unsafe_.clone() };
        let opts = VerifyOptions { timeout: time, ..self.opts.verify.clone() };
        let (verdict, stats) = verify(self.net, &[prop], &opts)?;
        let outcome = match verdict {
            Verdict::Unsat => {
                let milp = stats.milp_decided > 0;
                self.prove(eps, if milp { LowerProof::VerifyMilp } else { LowerProof::Verify })?;
                ProbeOutcome::Unsat { milp }
            }
            Verdict::Sat { x, .. } => match self.offer(x, UpperSource::Verify)? {
                Some(distance) => ProbeOutcome::Counterexample { distance },
                None => ProbeOutcome::Undecided("verify's counterexample did not re-check".into()),
            },
            Verdict::Unknown(r) => ProbeOutcome::Undecided(r),
            Verdict::Timeout => ProbeOutcome::Undecided(format!("timeout after {:.3} s", time.as_secs_f64())),
        };
        self.record(Phase::Verify, eps, outcome.clone(), t0);
        Ok(outcome)
    }

    /// A first-order guess of the distance: min_j margin_j / ||grad margin_j||_dual at x0.
    fn estimate(&self) -> Result<f64, GraphError> {
        let y0 = self.net.forward(self.x0, 1)?;
        let trace = self.net.trace(self.x0, 1)?;
        let mut best = f64::INFINITY;
        for j in (0..y0.len()).filter(|&j| j != self.label) {
            let mut seed = vec![0.0; y0.len()];
            seed[self.label] = 1.0;
            seed[j] = -1.0;
            let g = self.net.vjp(&trace, &seed, false)?.input;
            let est = (y0[self.label] - y0[j]) / self.norm.dual(&g);
            if est.is_finite() && est > 0.0 {
                best = best.min(est);
            }
        }
        if best.is_finite() {
            return Ok(best);
        }
        // A flat network near x0: start from the scale of the input.
        Ok(1e-2 * self.x0.iter().fold(1.0f64, |m, v| m.max(v.abs())))
    }

    fn run(&mut self) -> Result<(), GraphError> {
        let cap = self.domain_radius();
        // 1. PGD: the radius where it first finds a misclassified point, by doubling or halving
        //    from the first-order estimate.
        let guess = self.estimate()?;
        let mut eps = guess;
        if let Some(c) = cap {
            eps = eps.min(c);
        }
        let mut failed = 0.0f64; // the largest radius at which PGD found nothing
        for _ in 0..MAX_BISECTIONS {
            if self.out_of_time() {
                break;
            }
            if self.pgd(eps)?.is_some() {
                break;
            }
            failed = failed.max(eps);
            if cap.is_some_and(|c| eps >= c) {
                break;
            }
            eps = cap.map_or(2.0 * eps, |c| (2.0 * eps).min(c));
        }
        if self.upper.is_finite() && failed == 0.0 {
            for _ in 0..MAX_BISECTIONS {
                if self.out_of_time() {
                    break;
                }
                let e = 0.5 * self.upper;
                if self.pgd(e)?.is_none() {
                    failed = e;
                    break;
                }
            }
        }

        if self.opts.pgd_only {
            self.note = Some("PGD only (pgd_only): no lower bound was searched".into());
            return self.pgd_bisection(failed);
        }
        // 2. CROWN: bisection on the radius below the witness (or below the largest radius PGD
        //    tried, when it found nothing).
        let mut hi = if self.upper.is_finite() { self.upper } else { failed };
        if !self.upper.is_finite() && hi > 0.0 && !self.out_of_time() && self.crown(hi)? {
            if cap.is_some_and(|c| hi >= c) {
                // The ball contains the whole domain, and no point of it is misclassified.
                self.lower = f64::INFINITY;
                return Ok(());
            }
            hi = f64::INFINITY;
        }
        let mut lo = self.lower;
        for _ in 0..MAX_BISECTIONS {
            if !hi.is_finite() || hi - lo <= self.opts.tol * hi || self.out_of_time() {
                break;
            }
            let mid = if lo == 0.0 {
                0.25 * hi
            } else if hi > 2.0 * lo {
                (lo * hi).sqrt()
            } else {
                0.5 * (lo + hi)
            };
            if self.crown(mid)? {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        if !self.upper.is_finite() && self.lower > 0.0 {
            // 3a. PGD found nothing on its doubling radii: try a finer geometric grid above the
            //     CROWN radius (PGD is not monotone in the radius; large balls can hide what
            //     smaller ones show).
            let top = cap.unwrap_or(f64::INFINITY).min(if failed > 0.0 { failed } else { f64::INFINITY });
            let mut e = self.lower;
            for _ in 0..PGD_GRID {
                e *= 1.25;
                if e > top || self.out_of_time() || self.pgd(e)?.is_some() {
                    break;
                }
            }
        }
        // 3. PGD: bisection between the larger of the CROWN radius and PGD's failures, and
        //    the witness.
        self.pgd_bisection(failed.max(self.lower))?;

        // 4. Exact search with the complete verifier: bisection for l_inf; for l2, boxes that
        //    contain the l2 ball (useful in low dimension).
        if self.norm == BoundaryNorm::L2 {
            self.linf_boxes_for_l2()?;
            if !self.closed() && self.note.is_none() {
                self.note = Some(if self.upper.is_finite() {
                    "l2: the complete verifier decides boxes only, so the bracket is not closed by exact search \
                     (lower: CROWN's l2 radius or an unsat l_inf box; upper: PGD's distance)"
                        .into()
                } else {
                    "l2: PGD found no misclassified point, and the complete verifier decides boxes only: no upper \
                     bound"
                        .into()
                });
            }
            return Ok(());
        }
        self.exact_search(cap, guess)
    }

    /// l2: the l_inf box of radius r contains the l2 ball of radius r, so `unsat` on it proves
    /// d_2 >= r (d_2 >= d_inf). This helps where d_inf is close to d_2, in low dimension. The
    /// first probe lies just above the proven radius: `sat` there means d_inf is below it, and
    /// boxes cannot help; otherwise bisection below the l2 witness and the smallest box found
    /// `sat`. Counterexamples from `sat` boxes are offered as l2 witnesses as well.
    fn linf_boxes_for_l2(&mut self) -> Result<(), GraphError> {
        if self.lower <= 0.0 || !self.upper.is_finite() {
            return Ok(());
        }
        let mut ceiling = self.upper; // d_inf <= ceiling
        let first_probe = self.lower * (1.0 + 8.0 * self.opts.tol.max(1e-6));
        let mut p = first_probe;
        let mut frac = 0.5;
        let mut undecided = 0;
        while !self.closed() && !self.out_of_time() && undecided < MAX_UNDECIDED {
            let top = ceiling.min(self.upper);
            if !(p > self.lower && p < top) || top - self.lower <= self.opts.tol * self.upper {
                break;
            }
            let remaining = self.deadline.saturating_duration_since(Instant::now());
            let first = p == first_probe;
            match self.verify(p, remaining / 2)? {
                ProbeOutcome::Counterexample { .. } if first => break,
                ProbeOutcome::Counterexample { .. } => {
                    ceiling = p;
                    frac = 0.5;
                    undecided = 0;
                }
                ProbeOutcome::Undecided(_) => {
                    undecided += 1;
                    frac *= 0.5;
                }
                _ => {
                    frac = 0.5;
                    undecided = 0;
                }
            }
            p = self.lower + frac * (ceiling.min(self.upper) - self.lower);
        }
        Ok(())
    }

    /// Bisection with `verify` between `lower` and `upper` (doubling above `lower` while no
    /// witness is known). An undecided answer moves the next probe closer to `lower`.
    fn exact_search(&mut self, cap: Option<f64>, guess: f64) -> Result<(), GraphError> {
        let mut frac = FIRST_FRACTION;
        let mut undecided = 0;
        let mut last_reason = String::new();
        while !self.closed() {
            if self.out_of_time() {
                break;
            }
            if undecided >= MAX_UNDECIDED {
                self.note = Some(format!(
                    "the exact search stopped after {MAX_UNDECIDED} undecided verify calls in a row (last: {last_reason})"
                ));
                break;
            }
            let remaining = self.deadline.saturating_duration_since(Instant::now());
            let mut p = if self.upper.is_finite() {
                self.lower + frac * (self.upper - self.lower)
            } else if self.lower > 0.0 {
                self.lower * (1.0 + 2.0 * frac)
            } else {
                2.0 * frac * guess
            };
            if let Some(c) = cap {
                p = p.min(c);
            }
            if !(p > self.lower && p < self.upper) {
                break;
            }
            match self.verify(p, remaining / 2)? {
                ProbeOutcome::Unsat { .. } => {
                    if cap.is_some_and(|c| p >= c) {
                        // The box is the whole domain, and no point of it is misclassified.
                        self.lower = f64::INFINITY;
                        break;
                    }
                    frac = (2.0 * frac).min(0.5);
                }
                ProbeOutcome::Undecided(r) => {
                    undecided += 1;
                    last_reason = r;
                    frac *= 0.5;
                    continue;
                }
                _ => {}
            }
            undecided = 0;
        }
        if !self.closed() && self.note.is_none() && !self.upper.is_finite() && !self.timed_out {
            self.note = Some("no misclassified point found: no upper bound".into());
        }
        Ok(())
    }
    fn finish(self, predicted: usize, margin: f64) -> BoundaryResult {
        let closed = self.closed();
        let sum = |ph: Phase| self.probes.iter().filter(|p| p.phase == ph).map(|p| p.time_s).sum::<f64>();
        let count = |ph: Phase| self.probes.iter().filter(|p| p.phase == ph).count();
        let note = if closed {
            None
        } else if self.timed_out && self.note.is_none() {
            Some(format!("stopped at the timeout ({:.1} s)", self.opts.timeout.as_secs_f64()))
        } else {
            self.note.clone()
        };
        let (witness, witness_output) = match self.witness {
            Some((x, y)) => (Some(x), Some(y)),
            None => (None, None),
        };
        BoundaryResult {
            norm: self.norm,
            label: self.label,
            predicted,
            margin,
            lower: self.lower,
            lower_by: self.lower_by,
            upper: self.upper,
            upper_by: self.upper_by,
            witness,
            witness_output,
            crown_radius: self.crown_radius,
            pgd_radius: self.pgd_radius,
            closed,
            timed_out: self.timed_out,
            exact_search: self.norm == BoundaryNorm::Inf,
            note,
            crown_calls: count(Phase::Crown),
            pgd_calls: count(Phase::Pgd),
            verify_calls: count(Phase::Verify),
            crown_time_s: sum(Phase::Crown),
            pgd_time_s: sum(Phase::Pgd),
            verify_time_s: sum(Phase::Verify),
            time_s: self.start.elapsed().as_secs_f64(),
            probes: self.probes,
        }
    }
}
