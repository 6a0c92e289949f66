//! Closed-loop episodes and the comparison of an original and a pruned controller.
//!
//! Episodes run in lockstep: at each step every episode's state goes through the policy in
//! one batched forward pass, then each plant takes one RK4 step with the saturated action.
//!
//! The comparison runs both controllers from the same initial states and reports:
//! - the *pointwise* action deviation `||f(x) - f_hat(x)||` at every state `x` visited by
//!   either closed loop (raw network outputs, before saturation). A certified bound on
//!   `sup_{x in state box} ||f(x) - f_hat(x)||` must dominate it at every visited state that
//!   lies in the state box; `bound_exceeded` counts the states where it does not;
//! - the closed-loop action deviation `||sat(f(s_t)) - sat(f_hat(s_hat_t))||` between the two
//!   trajectories, and the trajectory deviation `max_t ||s_t - s_hat_t||`;
//! - per controller: the return (sum of stage costs, lower is better), constraint
//!   violations, success and whether the states stayed in the state box.

use crate::dynamics::{in_box, saturate, System};
use crate::error::ControlError;
use lipcert_core::{Network, Rng};
use serde::Serialize;

/// An episode succeeds when no constraint is violated and the final goal error (see
/// [`System::goal_error`]) is at most this.
pub const SUCCESS_TOLERANCE: f64 = 0.1;

/// A state-feedback controller evaluated on batches of states.
pub trait Policy: Sync {
    fn input_len(&self) -> usize;
    fn output_len(&self) -> usize;
    /// Actions for `n` states (`[n, input_len]` -> `[n, output_len]`), before saturation.
    fn act_batch(&self, states: &[f64], n: usize) -> Result<Vec<f64>, ControlError>;
}

impl Policy for Network {
    fn input_len(&self) -> usize {
        Network::input_len(self)
    }
    fn output_len(&self) -> usize {
        Network::output_len(self)
    }
    fn act_batch(&self, states: &[f64], n: usize) -> Result<Vec<f64>, ControlError> {
        Ok(self.forward(states, n)?)
    }
}

/// Checks that a policy maps the system's states to its actions.
pub fn check_policy(sys: &dyn System, policy: &dyn Policy, what: &str) -> Result<(), ControlError> {
    if policy.input_len() != sys.state_dim() || policy.output_len() != sys.action_dim() {
        return Err(ControlError(format!(
            "{what} maps {} inputs to {} outputs; {} has {} states and {} actions",
            policy.input_len(),
            policy.output_len(),
            sys.name(),
            sys.state_dim(),
            sys.action_dim()
        )));
    }
    Ok(())
}

/// `n` initial states drawn uniformly from the system's initial box.
pub fn sample_initial_states(sys: &dyn System, n: usize, seed: u64) -> Vec<Vec<f64>> {
    let mut rng = Rng::new(seed);
    let b = sys.initial_box();
    (0..n).map(|_| b.iter().map(|&(lo, hi)| rng.range(lo, hi)).collect()).collect()
}

/// The `2^state_dim` corners of the initial box (the hardest starts for most systems).
pub fn initial_corners(sys: &dyn System) -> Vec<Vec<f64>> {
    let b = sys.initial_box();
    (0..1usize << b.len())
        .map(|mask| b.iter().enumerate().map(|(i, &(lo, hi))| if mask >> i & 1 == 1 { hi } else { lo }).collect())
        .collect()
}

/// One closed-loop episode.
#[derive(Clone, Debug, Serialize)]
pub struct Trajectory {
    /// `steps + 1` states, the initial one first.
    pub states: Vec<Vec<f64>>,
    /// The policy's outputs, one per step.
    pub raw_actions: Vec<Vec<f64>>,
    /// The saturated actions applied to the plant.
    pub actions: Vec<Vec<f64>>,
}

/// Runs `policy` in closed loop from each initial state for `steps` steps.
pub fn rollout(
    sys: &dyn System,
    policy: &dyn Policy,
    initial: &[Vec<f64>],
    steps: usize,
) -> Result<Vec<Trajectory>, ControlError> {
    check_policy(sys, policy, "the policy")?;
    let (n, m) = (sys.state_dim(), sys.action_dim());
    let bounds = sys.action_bounds();
    let mut trajs: Vec<Trajectory> = initial
        .iter()
        .map(|s| {
            if s.len() != n {
                return Err(ControlError(format!("an initial state has {} values, expected {n}", s.len())));
            }
            Ok(Trajectory { states: vec![s.clone()], raw_actions: vec![], actions: vec![] })
        })
        .collect::<Result<_, _>>()?;
    let dt = sys.dt();
    let mut batch = Vec::with_capacity(trajs.len() * n);
    for k in 0..steps {
        batch.clear();
        for t in &trajs {
            batch.extend_from_slice(t.states.last().expect("initial state"));
        }
        let raw = policy.act_batch(&batch, trajs.len())?;
        let time = k as f64 * dt;
        for (t, a) in trajs.iter_mut().zip(raw.chunks_exact(m)) {
            let mut applied = a.to_vec();
            saturate(&mut applied, &bounds);
            let next = crate::dynamics::rk4_step(sys, time, t.states.last().expect("initial state"), &applied, dt);
            t.raw_actions.push(a.to_vec());
            t.actions.push(applied);
            t.states.push(next);
        }
    }
    Ok(trajs)
}

/// The outcome of one episode.
#[derive(Clone, Debug, Serialize)]
pub struct EpisodeSummary {
    /// Return: the sum of the stage costs (lower is better).
    pub cost: f64,
    /// States (after the initial one) that violate a constraint.
    pub violations: usize,
    pub first_violation: Option<usize>,
    /// Whether every state stayed in the state box.
    pub in_box: bool,
    pub steps_outside_box: usize,
    pub final_goal_error: f64,
    /// No violation and a final goal error of at most [`SUCCESS_TOLERANCE`].
    pub success: bool,
}

pub fn summarize(sys: &dyn System, t: &Trajectory) -> EpisodeSummary {
    let cost = t.states.iter().zip(&t.actions).fold(0.0, |c, (s, a)| c + sys.stage_cost(s, a));
    let violated: Vec<usize> = t
        .states
        .iter()
        .enumerate()
        .skip(1)
        .filter(|(_, s)| sys.constraint_margins(s).iter().any(|&m| m < 0.0 || m.is_nan()))
        .map(|(k, _)| k)
        .collect();
    let state_box = sys.state_box();
    let outside = t.states.iter().filter(|s| !in_box(s, &state_box)).count();
    let final_goal_error = sys.goal_error(t.states.last().expect("initial state"));
    EpisodeSummary {
        cost,
        violations: violated.len(),
        first_violation: violated.first().copied(),
        in_box: outside == 0,
        steps_outside_box: outside,
        final_goal_error,
        success: violated.is_empty() && final_goal_error <= SUCCESS_TOLERANCE,
    }
}

/// Closed-loop statistics of one policy over a set of episodes.
#[derive(Clone, Debug, Serialize)]
pub struct Evaluation {
    pub episodes: usize,
    pub steps: usize,
    pub success_rate: f64,
    pub mean_cost: f64,
    /// Violating states summed over the episodes, and the episodes with any.
    pub violations: usize,
    pub episodes_with_violations: usize,
    pub all_in_box: bool,
    pub max_final_goal_error: f64,
    pub per_episode: Vec<EpisodeSummary>,
}

fn aggregate(per_episode: Vec<EpisodeSummary>, steps: usize) -> Evaluation {
    let e = per_episode.len().max(1) as f64;
    Evaluation {
        episodes: per_episode.len(),
        steps,
        success_rate: per_episode.iter().filter(|s| s.success).count() as f64 / e,
        mean_cost: per_episode.iter().map(|s| s.cost).sum::<f64>() / e,
        violations: per_episode.iter().map(|s| s.violations).sum(),
        episodes_with_violations: per_episode.iter().filter(|s| s.violations > 0).count(),
        all_in_box: per_episode.iter().all(|s| s.in_box),
        max_final_goal_error: per_episode.iter().map(|s| s.final_goal_error).fold(0.0, f64::max),
        per_episode,
    }
}

/// Runs a policy from each initial state and summarizes the episodes.
pub fn evaluate(
    sys: &dyn System,
    policy: &dyn Policy,
    initial: &[Vec<f64>],
    steps: usize,
) -> Result<Evaluation, ControlError> {
    let trajs = rollout(sys, policy, initial, steps)?;
    Ok(aggregate(trajs.iter().map(|t| summarize(sys, t)).collect(), steps))
}

/// Norm on actions for the bound check.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Norm {
    L2,
    Inf,
}

impl Norm {
    pub fn of(self, v: impl Iterator<Item = f64>) -> f64 {
        match self {
            Norm::L2 => v.map(|x| x * x).sum::<f64>().sqrt(),
            Norm::Inf => v.fold(0.0, |m, x| m.max(x.abs())),
        }
    }
}

fn dist(a: &[f64], b: &[f64], norm: Norm) -> f64 {
    norm.of(a.iter().zip(b).map(|(x, y)| x - y))
}

#[derive(Clone, Debug)]
pub struct CompareOptions {
    pub steps: usize,
    /// A bound on `||f(x) - f_hat(x)||` over the state box to check the deviations against.
    pub bound: Option<f64>,
    /// The norm of that bound (the per-step deviation series use it too).
    pub bound_norm: Norm,
    /// Keep the full traces of the first this many episodes (for plots).
    pub keep_traces: usize,
}

impl CompareOptions {
    pub fn new(steps: usize) -> Self {
        CompareOptions { steps, bound: None, bound_norm: Norm::L2, keep_traces: 0 }
    }
}

/// Full per-step data of one compared episode.
#[derive(Clone, Debug, Serialize)]
pub struct ComparisonTraces {
    pub original: Trajectory,
    pub pruned: Trajectory,
    /// Per step t: `max(||f(s_t) - f_hat(s_t)||, ||f(s_hat_t) - f_hat(s_hat_t)||)` (bound norm).
    pub action_dev: Vec<f64>,
    /// Per step t: `||a_t - a_hat_t||` between the applied actions (bound norm).
    pub closed_loop_action_dev: Vec<f64>,
    /// Per state t: `||s_t - s_hat_t||_2`.
    pub state_dev: Vec<f64>,
}

/// Deviations between the two controllers in one episode.
#[derive(Clone, Debug, Serialize)]
pub struct EpisodeDeviation {
    pub initial_state: Vec<f64>,
    /// Pointwise action deviation, maximum over the states of both trajectories (l2 and l_inf).
    pub max_action_dev: f64,
    pub max_action_dev_inf: f64,
    /// The same over the visited states that lie in the state box only.
    pub max_action_dev_in_box: f64,
    pub max_closed_loop_action_dev: f64,
    /// `max_t ||s_t - s_hat_t||_2` and the final one.
    pub max_state_dev: f64,
    pub final_state_dev: f64,
    /// Pruned cost minus original cost.
    pub cost_difference: f64,
    /// Visited in-box states where the pointwise deviation exceeds the bound.
    pub bound_exceeded: usize,
}

/// Original against pruned controller over the same initial states.
#[derive(Clone, Debug, Serialize)]
pub struct Comparison {
    pub system: String,
    pub episodes: usize,
    pub steps: usize,
    pub bound: Option<f64>,
    pub bound_norm: Norm,
    pub original: Evaluation,
    pub pruned: Evaluation,
    pub max_action_dev: f64,
    pub max_action_dev_inf: f64,
    pub max_action_dev_in_box: f64,
    pub max_closed_loop_action_dev: f64,
    pub max_state_dev: f64,
    /// Mean over episodes of the pruned cost minus the original cost.
    pub mean_cost_difference: f64,
    /// Visited in-box states checked against the bound, and those where it was exceeded.
    pub states_checked: usize,
    pub bound_exceeded: usize,
    /// Whether both closed loops stayed in the state box in every episode.
    pub all_in_box: bool,
    pub per_episode: Vec<EpisodeDeviation>,
    /// Full traces of the first `keep_traces` episodes.
    pub traces: Vec<ComparisonTraces>,
}

/// Runs `original` and `pruned` from the same initial states and compares them.
pub fn compare(
    sys: &dyn System,
    original: &dyn Policy,
    pruned: &dyn Policy,
    initial: &[Vec<f64>],
    opts: &CompareOptions,
) -> Result<Comparison, ControlError> {
    check_policy(sys, original, "the original policy")?;
    check_policy(sys, pruned, "the pruned policy")?;
    let m = sys.action_dim();
    let a = rollout(sys, original, initial, opts.steps)?;
    let b = rollout(sys, pruned, initial, opts.steps)?;
    let state_box = sys.state_box();
    let norm = opts.bound_norm;
    let mut per_episode = Vec::with_capacity(initial.len());
    let mut traces = Vec::new();
    let mut states_checked = 0;
    for (e, (ta, tb)) in a.iter().zip(&b).enumerate() {
        // Both policies at the pruned trajectory's states (the original ones already have the
        // original policy's outputs there, and vice versa).
        let flat = |t: &Trajectory| -> Vec<f64> { t.states[..opts.steps].iter().flatten().copied().collect() };
        let orig_on_b = original.act_batch(&flat(tb), opts.steps)?;
        let pruned_on_a = pruned.act_batch(&flat(ta), opts.steps)?;
        let mut dev = EpisodeDeviation {
            initial_state: initial[e].clone(),
            max_action_dev: 0.0,
            max_action_dev_inf: 0.0,
            max_action_dev_in_box: 0.0,
            max_closed_loop_action_dev: 0.0,
            max_state_dev: 0.0,
            final_state_dev: 0.0,
            cost_difference: 0.0,
            bound_exceeded: 0,
        };
        let mut action_dev = Vec::with_capacity(opts.steps);
        let mut closed_dev = Vec::with_capacity(opts.steps);
        for t in 0..opts.steps {
            let pairs = [
                (&ta.states[t], &ta.raw_actions[t][..], &pruned_on_a[t * m..(t + 1) * m]),
                (&tb.states[t], &orig_on_b[t * m..(t + 1) * m], &tb.raw_actions[t][..]),
            ];
            let mut step_dev: f64 = 0.0;
            for (s, fa, fb) in pairs {
                let (l2, inf) = (dist(fa, fb, Norm::L2), dist(fa, fb, Norm::Inf));
                let d = if norm == Norm::L2 { l2 } else { inf };
                dev.max_action_dev = dev.max_action_dev.max(l2);
                dev.max_action_dev_inf = dev.max_action_dev_inf.max(inf);
                step_dev = step_dev.max(d);
                if in_box(s, &state_box) {
                    states_checked += 1;
                    dev.max_action_dev_in_box = dev.max_action_dev_in_box.max(l2);
                    if opts.bound.is_some_and(|bound| d > bound) {
                        dev.bound_exceeded += 1;
                    }
                }
            }
            action_dev.push(step_dev);
            let c = dist(&ta.actions[t], &tb.actions[t], norm);
            dev.max_closed_loop_action_dev = dev.max_closed_loop_action_dev.max(c);
            closed_dev.push(c);
        }
        let state_dev: Vec<f64> = ta.states.iter().zip(&tb.states).map(|(x, y)| dist(x, y, Norm::L2)).collect();
        dev.max_state_dev = state_dev.iter().copied().fold(0.0, f64::max);
        dev.final_state_dev = *state_dev.last().expect("initial state");
        per_episode.push(dev);
        if e < opts.keep_traces {
            traces.push(ComparisonTraces {
                original: ta.clone(),
                pruned: tb.clone(),
                action_dev,
                closed_loop_action_dev: closed_dev,
                state_dev,
            });
        }
    }
    let original_eval = aggregate(a.iter().map(|t| summarize(sys, t)).collect(), opts.steps);
    let pruned_eval = aggregate(b.iter().map(|t| summarize(sys, t)).collect(), opts.steps);
    for (d, (x, y)) in per_episode.iter_mut().zip(original_eval.per_episode.iter().zip(&pruned_eval.per_episode)) {
        d.cost_difference = y.cost - x.cost;
    }
    let max = |f: fn(&EpisodeDeviation) -> f64| per_episode.iter().map(f).fold(0.0, f64::max);
    Ok(Comparison {
        system: sys.name().into(),
        episodes: initial.len(),
        steps: opts.steps,
        bound: opts.bound,
        bound_norm: norm,
        max_action_dev: max(|d| d.max_action_dev),
        max_action_dev_inf: max(|d| d.max_action_dev_inf),
        max_action_dev_in_box: max(|d| d.max_action_dev_in_box),
        max_closed_loop_action_dev: max(|d| d.max_closed_loop_action_dev),
        max_state_dev: max(|d| d.max_state_dev),
        mean_cost_difference: per_episode.iter().map(|d| d.cost_difference).sum::<f64>()
            / per_episode.len().max(1) as f64,
        states_checked,
        bound_exceeded: per_episode.iter().map(|d| d.bound_exceeded).sum(),
        all_in_box: original_eval.all_in_box && pruned_eval.all_in_box,
        original: original_eval,
        pruned: pruned_eval,
        per_episode,
        traces,
    })
}
