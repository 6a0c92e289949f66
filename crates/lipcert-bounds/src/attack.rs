//! Adversarial attacks (FGSM, PGD): the upper side of robustness.
//!
//! An attack searches an input set for a point whose output lies in the unsafe region, given in
//! the VNN-LIB form: a disjunction of conjunctions of linear atoms `c . y <= d`. A point it
//! returns is a counterexample, re-checked by a fresh single-sample forward pass. Finding none
//! proves nothing: attack results are estimates, never bounds.
//!
//! Objective: loss(y) = min over conjunctions of max over their atoms of (c . y - d).
//! - The point is unsafe exactly when loss <= 0, so the search is a minimization and its best
//!   value says how close it came.
//! - For untargeted misclassification the loss is the margin y_label - max_{j != label} y_j (the
//!   Carlini-Wagner margin loss). Unlike cross-entropy it does not saturate, and it applies to
//!   any property, not only to classifiers.
//! - Its subgradient is c of the active atom (the argmax within the argmin conjunction). One
//!   batched vector-Jacobian product per step, seeded with that c, gives every restart its input
//!   gradient.
//!
//! Steps:
//! - Boxes (l_inf) take signed steps scaled per coordinate by the box's half-width, so boxes
//!   whose coordinates differ in scale by orders of magnitude (ACAS Xu) are searched evenly.
//!   l2 balls take steps along the normalized gradient. Every step is followed by the
//!   projection onto the set (`InputSet::project`, checked with `contains`).
//! - Step lengths are fractions of the set's radius: the half-width per coordinate for boxes,
//!   the radius for l2 balls.
//! - Restart 0 starts at the center of the set; the others start at random points of it.
//!   All restarts go through one batched forward pass per step, and the attack stops as soon as
//!   any restart reaches loss <= 0.
//!
//! Schedule. The default, `Mixed { patience: 5 }`, runs two step regimes side by side over
//! alternate restarts, because each finds counterexamples that the other misses:
//! - Even restarts (the center among them) halve on plateau, as in Auto-PGD (Croce and Hein
//!   2020). They start with a step of the full radius. After 5 steps without a new best, a
//!   restart halves its step and goes back to its best point. The large early steps jump between
//!   regions of the set, then the halving refines the best one.
//! - Odd restarts use Madry et al.'s small steps (2.5 eps / steps) with a cosine decay. The
//!   small steps follow narrow valleys, and the small last steps settle instead of oscillating.
//!
//! Measured on the 34 known-sat VNN-COMP 2021 instances of mnistfc, acasxu and test, over seeds
//! 0 to 4 (counterexamples found):
//!
//! | schedule | 10 restarts x 50 steps | 200 restarts x 200 steps |
//! |---|---|---|
//! | halving only | 25-26 | 28-29 |
//! | cosine only | 23-25 | 27-29 |
//! | mixed | 24-26 | 29-32 |
//!
//! The two regimes succeed on different instances:
//! - Small steps never found mnistfc prop_9_0.05, even with 2000 restarts. Halving finds it with
//!   10.
//! - On ACAS Xu 1_2, 1_4 and 1_6 (property 2), small steps at 200 x 200 found the counterexample
//!   with every seed. Halving alone found it with at most 2 of the 5 seeds.

use crate::ibp::Interval;
use crate::input_set::InputSet;
use lipcert_core::{GraphError, Network, Rng};

/// One linear output atom c . y <= d (the unsafe side).
#[derive(Clone, Debug, PartialEq)]
pub struct Atom {
    pub c: Vec<f64>,
    pub d: f64,
}

impl Atom {
    /// c . y - d, which is <= 0 on the unsafe side (NaN when `y` has the wrong length).
    pub fn value(&self, y: &[f64]) -> f64 {
        if y.len() != self.c.len() {
            return f64::NAN;
        }
        self.c.iter().zip(y).map(|(c, y)| c * y).sum::<f64>() - self.d
    }
}

/// The unsafe output region: a point y is unsafe when, for some conjunction, all its atoms hold.
/// An empty conjunction holds everywhere; an empty `any_of` is unsafe nowhere.
#[derive(Clone, Debug, PartialEq)]
pub struct Unsafe {
    pub any_of: Vec<Vec<Atom>>,
}

/// c = e_a - e_b over `len` outputs, d = 0: y_a - y_b <= 0.
fn difference(a: usize, b: usize, len: usize) -> Atom {
    let mut c = vec![0.0; len];
    c[a] += 1.0;
    c[b] -= 1.0;
    Atom { c, d: 0.0 }
}

impl Unsafe {
    /// From conjunctions of `(c, d)` atoms (c . y <= d), as VNN-LIB regions give them.
    pub fn from_pairs(any_of: Vec<Vec<(Vec<f64>, f64)>>) -> Self {
        Unsafe {
            any_of: any_of.into_iter().map(|conj| conj.into_iter().map(|(c, d)| Atom { c, d }).collect()).collect(),
        }
    }

    /// Untargeted misclassification of `label` among `m` classes:
    /// any_of = [[y_label - y_j <= 0] for j != label] (c = e_label - e_j, d = 0).
    /// A label >= m gives atoms of m + 1 coefficients, which `attack` rejects.
    pub fn misclassified(label: usize, m: usize) -> Self {
        let (label, len) = if label < m { (label, m) } else { (m, m + 1) };
        Unsafe { any_of: (0..m).filter(|&j| j != label).map(|j| vec![difference(label, j, len)]).collect() }
    }

    /// Targeted: y_label - y_target <= 0.
    /// A class >= m gives an atom of m + 1 coefficients, which `attack` rejects.
    pub fn targeted(label: usize, target: usize, m: usize) -> Self {
        let len = if label < m && target < m { m } else { m + 1 };
        Unsafe { any_of: vec![vec![difference(label.min(m), target.min(m), len)]] }
    }

    /// The violation loss: min over conjunctions of max over its atoms of (c.y - d); the point is
    /// unsafe iff loss <= 0. NaN when any atom's value is NaN (never unsafe).
    pub fn loss(&self, y: &[f64]) -> f64 {
        self.active(y).0
    }

    /// The loss and the active atom (argmax within the argmin conjunction), whose `c` is the
    /// loss's subgradient with respect to y. None when no atom is active (an empty
    /// conjunction or an empty disjunction, or a NaN value).
    pub fn active(&self, y: &[f64]) -> (f64, Option<&Atom>) {
        let mut best: (f64, Option<&Atom>) = (f64::INFINITY, None);
        for conj in &self.any_of {
            let mut worst: (f64, Option<&Atom>) = (f64::NEG_INFINITY, None);
            for atom in conj {
                let v = atom.value(y);
                if v.is_nan() {
                    return (f64::NAN, None);
                }
                if worst.1.is_none() || v > worst.0 {
                    worst = (v, Some(atom));
                }
            }
            if worst.0 < best.0 {
                best = worst;
            }
        }
        best
    }

    /// Checks that every atom has `outputs` finite coefficients and a finite bound.
    pub fn check(&self, outputs: usize) -> Result<(), GraphError> {
        for (k, conj) in self.any_of.iter().enumerate() {
            for (a, atom) in conj.iter().enumerate() {
                if atom.c.len() != outputs {
                    return Err(GraphError::Data(format!(
                        "unsafe region: atom {a} of conjunction {k} has {} coefficients, the network has {outputs} outputs",
                        atom.c.len()
                    )));
                }
                if let Some(v) = atom.c.iter().chain([&atom.d]).find(|v| !v.is_finite()) {
                    return Err(GraphError::Data(format!(
                        "unsafe region: atom {a} of conjunction {k} has a non-finite coefficient or bound ({v})"
                    )));
                }
            }
        }
        Ok(())
    }
}

/// How the step length changes over a PGD run (see the module documentation for the choice).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StepSchedule {
    /// The same step at every iteration. Default step: 2.5 / steps radii.
    Constant,
    /// step_t = step * (1 + cos(pi t / steps)) / 2: large steps to explore, small ones to settle.
    /// Default step: 2.5 / steps radii.
    Cosine,
    /// Halve a restart's step after `patience` (at least 1) steps without improving its best
    /// loss, and move it back to its best point (as in Auto-PGD). Default step: 1 radius.
    Halving { patience: usize },
    /// Even restarts (the center among them) use `Halving { patience }`, odd ones `Cosine`, each
    /// with its own default step. The default, with patience 5.
    Mixed { patience: usize },
}

impl StepSchedule {
    /// The step (in radii) used when `AttackOptions::step_size` is None. `Mixed` has no single
    /// default: each restart uses that of its own schedule (`of_restart`); this returns the
    /// halving one.
    pub fn default_step(&self, steps: usize) -> f64 {
        match self {
            StepSchedule::Halving { .. } | StepSchedule::Mixed { .. } => 1.0,
            StepSchedule::Constant | StepSchedule::Cosine => 2.5 / steps.max(1) as f64,
        }
    }

    /// The schedule that restart `r` follows.
    pub fn of_restart(&self, r: usize) -> StepSchedule {
        match *self {
            StepSchedule::Mixed { .. } if r % 2 == 1 => StepSchedule::Cosine,
            StepSchedule::Mixed { patience } => StepSchedule::Halving { patience },
            other => other,
        }
    }
}

#[derive(Clone, Debug)]
pub struct AttackOptions {
    /// Starting points: the center of the set, then random points of it (at least 1 is used).
    pub restarts: usize,
    /// PGD iterations per restart (FGSM takes one step).
    pub steps: usize,
    /// Step length as a fraction of the set's radius (per coordinate for boxes: the half-width;
    /// for l2 balls: the radius). None: the schedule's `default_step`. FGSM jumps to the point
    /// of the set that minimizes the linearized loss and, when this is given, also tries this step.
    pub step_size: Option<f64>,
    pub seed: u64,
    pub schedule: StepSchedule,
    /// PGD takes no step after this instant (a verification's timeout must not wait for the
    /// restarts, which take seconds on conv nets).
    pub deadline: Option<std::time::Instant>,
}

impl Default for AttackOptions {
    fn default() -> Self {
        AttackOptions {
            restarts: 10,
            steps: 50,
            step_size: None,
            seed: 0,
            schedule: StepSchedule::Mixed { patience: 5 },
            deadline: None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// Fast gradient sign method: one gradient per starting point, then one step to the corner
    /// of the set the gradient points to (from the center this is the classic FGSM step of the
    /// full radius).
    Fgsm,
    /// Projected gradient descent with random restarts.
    Pgd,
}

#[derive(Clone, Debug)]
pub struct AttackResult {
    /// An input in the set whose output is unsafe, re-checked: `set.contains(x)` and
    /// `loss(forward(x)) <= 0` by a fresh single-sample forward pass.
    pub counterexample: Option<Vec<f64>>,
    /// The network's output at the counterexample (from that fresh forward pass).
    pub output: Option<Vec<f64>>,
    /// The smallest loss seen (<= 0 exactly when a counterexample was found; +inf when the
    /// unsafe region is empty).
    pub best_loss: f64,
    /// The point with the smallest loss; always in the set.
    pub best_x: Vec<f64>,
    /// Samples passed through the network (a batched pass over n points counts n; the backward
    /// passes that go with them are not counted separately).
    pub evaluations: usize,
}

/// Searches `set` for an input whose output is in `unsafe_`.
pub fn attack(
    net: &Network,
    set: &InputSet,
    unsafe_: &Unsafe,
    method: Method,
    opts: &AttackOptions,
) -> Result<AttackResult, GraphError> {
    let geom = Geometry::new(net, set)?;
    unsafe_.check(net.output_len())?;
    if let Some(s) = opts.step_size {
        if !(s.is_finite() && s >= 0.0) {
            return Err(GraphError::Data(format!("the step size must be finite and non-negative, got {s}")));
        }
    }
    let n = opts.restarts.max(1);
    let mut rng = Rng::new(opts.seed);
    let mut starts = Vec::with_capacity(n * geom.len);
    for r in 0..n {
        let mut x = if r == 0 { geom.center() } else { geom.random_point(&mut rng) };
        geom.project(&mut x);
        starts.extend(x);
    }
    let mut search = Search::new(net, set, unsafe_, &starts, n);
    match method {
        Method::Fgsm => fgsm(&mut search, &geom, starts, n, opts)?,
        Method::Pgd => pgd(&mut search, &geom, starts, n, opts)?,
    }
    Ok(search.finish())
}

/// The input set, validated against the network: starting points, steps and projections.
struct Geometry<'a> {
    set: &'a InputSet,
    len: usize,
}

fn finite_interval(b: &Interval, len: usize, what: &str) -> Result<(), GraphError> {
    if b.lo.len() != len || b.hi.len() != len {
        return Err(GraphError::Data(format!(
            "the {what} has {} lower and {} upper bounds, the network has {len} inputs",
            b.lo.len(),
            b.hi.len()
        )));
    }
    for (i, (l, h)) in b.lo.iter().zip(&b.hi).enumerate() {
        if !(l.is_finite() && h.is_finite() && l <= h) {
            return Err(GraphError::Data(format!(
                "the {what} at input element {i} is [{l}, {h}]: bounds must be finite with lo <= hi"
            )));
        }
    }
    Ok(())
}

impl<'a> Geometry<'a> {
    /// Validates the set against the network (project and clamp must never see bad bounds).
    fn new(net: &Network, set: &'a InputSet) -> Result<Self, GraphError> {
        let len = net.input_len();
        match set {
            InputSet::Box(b) => finite_interval(b, len, "input box")?,
            InputSet::L2Ball { center, radius, domain } => {
                if center.len() != len {
                    return Err(GraphError::Data(format!(
                        "the l2 ball's center has {} elements, the network has {len} inputs",
                        center.len()
                    )));
                }
                if let Some(i) = center.iter().position(|c| !c.is_finite()) {
                    return Err(GraphError::Data(format!(
                        "the l2 ball's center is {} at input element {i}",
                        center[i]
                    )));
                }
                if !(radius.is_finite() && *radius >= 0.0) {
                    return Err(GraphError::Data(format!(
                        "the l2 ball's radius must be finite and non-negative, got {radius}"
                    )));
                }
                if let Some(d) = domain {
                    finite_interval(d, len, "l2 ball's domain")?;
                    if let Some(i) = (0..len).find(|&i| !(d.lo[i] <= center[i] && center[i] <= d.hi[i])) {
                        return Err(GraphError::Data(format!(
                            "the l2 ball's center {} at input element {i} lies outside its domain [{}, {}]",
                            center[i], d.lo[i], d.hi[i]
                        )));
                    }
                }
            }
        }
        Ok(Geometry { set, len })
    }

    fn center(&self) -> Vec<f64> {
        match self.set {
            InputSet::Box(b) => b.lo.iter().zip(&b.hi).map(|(l, h)| 0.5 * l + 0.5 * h).collect(),
            InputSet::L2Ball { center, .. } => center.clone(),
        }
    }

    /// Uniform in a box; in an l2 ball, a uniform direction at a uniform radius (not uniform in
    /// volume, which in high dimension would put almost every start on the sphere).
    fn random_point(&self, rng: &mut Rng) -> Vec<f64> {
        match self.set {
            InputSet::Box(b) => b.lo.iter().zip(&b.hi).map(|(l, h)| l + (h - l) * rng.uniform()).collect(),
            InputSet::L2Ball { center, radius, .. } => {
                let dir = rng.normals(self.len, 1.0);
                let norm = dir.iter().map(|v| v * v).sum::<f64>().sqrt();
                let s = if norm > 0.0 { radius * rng.uniform() / norm } else { 0.0 };
                center.iter().zip(&dir).map(|(c, v)| c + s * v).collect()
            }
        }
    }

    /// `InputSet::project`, made sure to land in the set. For l2 balls it shrinks by 4 ulps,
    /// which the rounding of c + (x - c) s can undo when |c| is much larger than the radius (the
    /// point then stays 1 ulp outside); shrink further towards the center until `contains`
    /// holds. The center itself is in the set (checked in `new`).
    fn project(&self, x: &mut [f64]) {
        self.set.project(x);
        if let InputSet::L2Ball { center, .. } = self.set {
            let mut shrink = 16.0 * f64::EPSILON;
            while !self.set.contains(x) {
                if shrink >= 0.5 {
                    x.copy_from_slice(center);
                    break;
                }
                x.iter_mut().zip(center).for_each(|(v, c)| *v = c + (*v - c) * (1.0 - shrink));
                shrink *= 4.0;
            }
        }
    }

    /// One descent step of `alpha` radii against the gradient `g`, then the projection.
    fn step(&self, x: &mut [f64], g: &[f64], alpha: f64) {
        match self.set {
            InputSet::Box(b) => {
                for (((v, g), l), h) in x.iter_mut().zip(g).zip(&b.lo).zip(&b.hi) {
                    *v -= alpha * (0.5 * h - 0.5 * l) * sign(*g);
                }
            }
            InputSet::L2Ball { radius, .. } => {
                let norm = g.iter().map(|v| v * v).sum::<f64>().sqrt();
                if norm.is_finite() && norm > 0.0 {
                    let s = alpha * radius / norm;
                    x.iter_mut().zip(g).for_each(|(v, g)| *v -= s * g);
                }
            }
        }
        self.project(x);
    }

    /// The point of the set that minimizes the loss linearized at `x` with gradient `g`: the box
    /// corner the gradient's sign points to (coordinates with a zero gradient stay), or the
    /// point of the l2 sphere against the gradient (then clipped to the domain).
    fn corner(&self, x: &[f64], g: &[f64]) -> Vec<f64> {
        let mut p = match self.set {
            InputSet::Box(b) => x
                .iter()
                .zip(g)
                .zip(b.lo.iter().zip(&b.hi))
                .map(|((&v, &g), (&l, &h))| match sign(g) {
                    s if s > 0.0 => l,
                    s if s < 0.0 => h,
                    _ => v,
                })
                .collect(),
            InputSet::L2Ball { center, .. } => {
                let mut p = center.clone();
                self.step(&mut p, g, 1.0);
                p
            }
        };
        self.project(&mut p);
        p
    }
}

/// Sign with NaN -> 0 (a NaN gradient component moves nothing).
fn sign(g: f64) -> f64 {
    if g > 0.0 {
        1.0
    } else if g < 0.0 {
        -1.0
    } else {
        0.0
    }
}

/// The state of a search: the best point of every restart and the confirmed counterexample.
struct Search<'a> {
    net: &'a Network,
    set: &'a InputSet,
    unsafe_: &'a Unsafe,
    len: usize,
    best_loss: Vec<f64>,
    best_x: Vec<f64>,
    evaluations: usize,
    /// (x, fresh output, fresh loss).
    found: Option<(Vec<f64>, Vec<f64>, f64)>,
}

impl<'a> Search<'a> {
    fn new(net: &'a Network, set: &'a InputSet, unsafe_: &'a Unsafe, starts: &[f64], n: usize) -> Self {
        Search {
            net,
            set,
            unsafe_,
            len: net.input_len(),
            best_loss: vec![f64::INFINITY; n],
            best_x: starts.to_vec(),
            evaluations: 0,
            found: None,
        }
    }

    /// Records the points `xs` with outputs `ys`; point i belongs to restart `owner(i)`.
    /// Returns, per point, whether it improved its restart's best loss.
    fn observe(&mut self, xs: &[f64], ys: &[f64], owner: impl Fn(usize) -> usize) -> Vec<bool> {
        let m = self.net.output_len();
        let len = self.len;
        let k = ys.len().checked_div(m).unwrap_or(0);
        self.evaluations += k;
        (0..k)
            .map(|i| {
                let loss = self.unsafe_.loss(&ys[i * m..(i + 1) * m]);
                let r = owner(i);
                // NaN never improves.
                let better = loss < self.best_loss[r];
                if better {
                    self.best_loss[r] = loss;
                    self.best_x[r * len..(r + 1) * len].copy_from_slice(&xs[i * len..(i + 1) * len]);
                }
                better
            })
            .collect()
    }

    /// Re-checks, with a fresh single-sample forward pass, every restart whose best loss is
    /// <= 0, best first. Returns true once one is confirmed.
    fn confirm(&mut self) -> Result<bool, GraphError> {
        if self.found.is_some() {
            return Ok(true);
        }
        let mut candidates: Vec<usize> = (0..self.best_loss.len()).filter(|&r| self.best_loss[r] <= 0.0).collect();
        candidates.sort_by(|&a, &b| self.best_loss[a].total_cmp(&self.best_loss[b]));
        for r in candidates {
            let x = self.best_x[r * self.len..(r + 1) * self.len].to_vec();
            let y = self.net.forward(&x, 1)?;
            self.evaluations += 1;
            let loss = self.unsafe_.loss(&y);
            if self.set.contains(&x) && loss <= 0.0 {
                self.found = Some((x, y, loss));
                return Ok(true);
            }
            // Rounding put the batched value just below zero: keep the fresh one and go on.
            self.best_loss[r] = if loss.is_nan() || !self.set.contains(&x) { f64::INFINITY } else { loss };
        }
        Ok(false)
    }

    /// One seed row per sample: c of the active atom of its output (zero when none is active).
    fn seeds(&self, ys: &[f64]) -> Vec<f64> {
        let m = self.net.output_len();
        let mut seed = vec![0.0; ys.len()];
        if m == 0 {
            return seed;
        }
        for (row, y) in seed.chunks_exact_mut(m).zip(ys.chunks_exact(m)) {
            if let (_, Some(atom)) = self.unsafe_.active(y) {
                row.copy_from_slice(&atom.c);
            }
        }
        seed
    }

    fn finish(self) -> AttackResult {
        if let Some((x, y, loss)) = self.found {
            return AttackResult {
                counterexample: Some(x.clone()),
                output: Some(y),
                best_loss: loss,
                best_x: x,
                evaluations: self.evaluations,
            };
        }
        let mut r = 0;
        for (i, l) in self.best_loss.iter().enumerate() {
            if *l < self.best_loss[r] {
                r = i;
            }
        }
        AttackResult {
            counterexample: None,
            output: None,
            best_loss: self.best_loss[r],
            best_x: self.best_x[r * self.len..(r + 1) * self.len].to_vec(),
            evaluations: self.evaluations,
        }
    }
}

fn fgsm(s: &mut Search, geom: &Geometry, x0: Vec<f64>, n: usize, opts: &AttackOptions) -> Result<(), GraphError> {
    let len = geom.len;
    let trace = s.net.trace(&x0, n)?;
    let y = trace.output(s.net);
    s.observe(&x0, y, |i| i);
    if s.confirm()? {
        return Ok(());
    }
    let g = s.net.vjp(&trace, &s.seeds(y), false)?.input;
    drop(trace);
    let mut points = Vec::with_capacity(2 * n * len);
    let mut owners = Vec::with_capacity(2 * n);
    for r in 0..n {
        let (x, g) = (&x0[r * len..(r + 1) * len], &g[r * len..(r + 1) * len]);
        points.extend(geom.corner(x, g));
        owners.push(r);
        if let Some(alpha) = opts.step_size {
            let mut p = x.to_vec();
            geom.step(&mut p, g, alpha);
            points.extend(p);
            owners.push(r);
        }
    }
    let y = s.net.forward(&points, owners.len())?;
    s.observe(&points, &y, |i| owners[i]);
    s.confirm()?;
    Ok(())
}

fn pgd(s: &mut Search, geom: &Geometry, mut x: Vec<f64>, n: usize, opts: &AttackOptions) -> Result<(), GraphError> {
    let len = geom.len;
    let steps = opts.steps;
    let schedules: Vec<StepSchedule> = (0..n).map(|r| opts.schedule.of_restart(r)).collect();
    let base: Vec<f64> = schedules.iter().map(|sc| opts.step_size.unwrap_or_else(|| sc.default_step(steps))).collect();
    let mut scale = vec![1.0; n];
    let mut stale = vec![0usize; n];
    for t in 0..steps {
        if opts.deadline.is_some_and(|d| std::time::Instant::now() >= d) {
            break;
        }
        let trace = s.net.trace(&x, n)?;
        let y = trace.output(s.net);
        let improved = s.observe(&x, y, |i| i);
        if s.confirm()? {
            return Ok(());
        }
        let g = s.net.vjp(&trace, &s.seeds(y), false)?.input;
        drop(trace);
        let cosine = 0.5 * (1.0 + (std::f64::consts::PI * t as f64 / steps as f64).cos());
        for r in 0..n {
            let xr = &mut x[r * len..(r + 1) * len];
            let decay = match schedules[r] {
                StepSchedule::Cosine => cosine,
                StepSchedule::Halving { patience } => {
                    stale[r] = if improved[r] { 0 } else { stale[r] + 1 };
                    if stale[r] >= patience.max(1) {
                        // Back to the best point; its gradient comes with the next pass.
                        scale[r] *= 0.5;
                        stale[r] = 0;
                        xr.copy_from_slice(&s.best_x[r * len..(r + 1) * len]);
                        continue;
                    }
                    1.0
                }
                _ => 1.0,
            };
            geom.step(xr, &g[r * len..(r + 1) * len], base[r] * decay * scale[r]);
        }
    }
    // The last iterate needs no gradient.
    let y = s.net.forward(&x, n)?;
    s.observe(&x, &y, |i| i);
    s.confirm()?;
    Ok(())
}
