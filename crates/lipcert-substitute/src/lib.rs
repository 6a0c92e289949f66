//! lipcert-substitute: local substitute networks around an anchor x0 (paper 004).
//!
//! An attack gives d_adv and a misclassified point; Algorithm 1 (`plan::choose`) replaces the
//! activations of the neurons whose pre-activation varies least over the d_adv-ball by a
//! constant, a line through the anchor and the attack's point, or the linear piece active at
//! the anchor; `build::fold` removes those neurons, so the substitute is a smaller network
//! whose exact distance to the decision boundary estimates the original's. The estimate is
//! not a bound. `sound::certify` (Lemma 1) is the sound path: a certified lower bound on the
//! original's distance from the activation-pattern substitute. A witness of the substitute
//! that the original also misclassifies (re-checked by a forward pass) is a witnessed upper
//! bound on the original's distance.
//!
//! Its own crate because it joins three analyses: bounds (Algorithm 1, delta), verify (the
//! exact boundary search) and spectral (Lipschitz constants of Lemma 1's second case).

pub mod build;
pub mod plan;
pub mod sound;

pub use build::{fold, masked};
pub use plan::{choose, piece, pre_activations, replacement, ChooseOptions, Kind, Layer, Plan, Replacement, Side};
pub use sound::{certify, linf_box, pattern_radius, Certificate};

use lipcert_bounds::{InputSet, Method};
use lipcert_core::{GraphError, Network};
use lipcert_verify::{decision_boundary_with_progress, BoundaryNorm, BoundaryOptions, BoundaryResult};
use std::time::Instant;

#[derive(Clone, Debug)]
pub struct SubstituteOptions {
    pub kind: Kind,
    /// Fraction of the activation neurons replaced, in [0, 1).
    pub gamma: f64,
    /// Fraction of the remaining neurons replaced per round of Algorithm 1, in (0, 1].
    pub gamma0: f64,
    /// Bound propagation of Algorithm 1's rounds.
    pub method: Method,
    /// Each boundary search (the attack, the substitute's, the original's, Lemma 1's): its
    /// timeout, tolerance, seed and input domain.
    pub boundary: BoundaryOptions,
    /// Also run the exact boundary search on the original network (to compare).
    pub compare: bool,
    /// Run Lemma 1 (the certified lower bound on the original's distance).
    pub certify: bool,
}

/// A finished stage, for progress displays.
pub enum Stage<'a> {
    /// Algorithm 1's round: neurons replaced so far, of the target.
    Round { replaced: usize, target: usize },
    /// A named stage starts ("attack", "estimate", "original", "lemma 1").
    Start(&'a str),
}

/// Wall-clock seconds of each stage.
#[derive(Clone, Debug, Default)]
pub struct Times {
    pub attack_s: f64,
    pub choose_s: f64,
    pub fold_s: f64,
    pub estimate_s: f64,
    pub original_s: f64,
    pub certify_s: f64,
}

#[derive(Clone, Debug)]
pub struct SubstituteResult {
    pub kind: Kind,
    pub gamma: f64,
    pub gamma0: f64,
    pub label: usize,
    /// Activation neurons of the original and of the substitute.
    pub neurons_before: usize,
    pub neurons_after: usize,
    /// Kept neurons per activation node.
    pub kept_per_layer: Vec<usize>,
    pub rounds: usize,
    /// The attack's distance (moved toward x0 and re-checked) and its point.
    pub d_adv: f64,
    /// Which search found the point.
    pub d_adv_by: &'static str,
    pub x_adv: Vec<f64>,
    pub plan: Plan,
    /// The substitute: folded (smaller) when the network is a chain, else the masked form.
    pub network: Network,
    /// Why the substitute is the masked form (None when folded).
    pub not_folded: Option<String>,
    /// The exact boundary search on the substitute: its bracket is the estimate of d_bnd.
    pub estimate: BoundaryResult,
    /// The same search on the original, when asked for.
    pub original: Option<BoundaryResult>,
    /// ||w - x0||_inf for the substitute's witness w when the original misclassifies w too
    /// (a forward pass): d_bnd(original) <= this.
    pub witness_upper: Option<f64>,
    pub certificate: Option<Certificate>,
    pub times: Times,
}

fn check(net: &Network, x0: &[f64], label: usize, opts: &SubstituteOptions) -> Result<(), GraphError> {
    let (n, m) = (net.input_len(), net.output_len());
    if x0.len() != n {
        return Err(GraphError::Data(format!("x0 has {} elements, the model has {n} inputs", x0.len())));
    }
    if label >= m {
        return Err(GraphError::Data(format!("label {label}: the model has {m} outputs (classes 0 to {})", m - 1)));
    }
    if !(0.0..1.0).contains(&opts.gamma) {
        return Err(GraphError::Data(format!("gamma must be in [0, 1), got {}", opts.gamma)));
    }
    if !(opts.gamma0 > 0.0 && opts.gamma0 <= 1.0) {
        return Err(GraphError::Data(format!("gamma0 must be in (0, 1], got {}", opts.gamma0)));
    }
    if !net.nodes.iter().any(|n| matches!(n.op, lipcert_core::Op::Activation(_))) {
        return Err(GraphError::Invalid("the model has no activation node: there is nothing to replace".into()));
    }
    Ok(())
}

/// Builds the substitute of `net` around `x0` for `label` and measures it (see the crate
/// comment).
pub fn substitute(
    net: &Network,
    x0: &[f64],
    label: usize,
    opts: &SubstituteOptions,
    progress: &mut dyn FnMut(Stage),
) -> Result<SubstituteResult, GraphError> {
    check(net, x0, label, opts)?;
    let mut times = Times::default();
    let norm = BoundaryNorm::Inf;
    let y0 = net.forward(x0, 1)?;
    let top = (0..y0.len()).max_by(|&a, &b| y0[a].total_cmp(&y0[b])).unwrap_or(0);
    if top != label {
        return Err(GraphError::Data(format!(
            "the model predicts class {top} at x0, not label {label}: its distance to the boundary is 0"
        )));
    }

    progress(Stage::Start("attack"));
    let t = Instant::now();
    let attack_opts = BoundaryOptions { pgd_only: true, ..opts.boundary.clone() };
    let mut adv = decision_boundary_with_progress(net, x0, label, norm, &attack_opts, &mut |_| {})?;
    let mut d_adv_by = "PGD (bisection on the radius; the point moved toward x0 and re-checked)";
    let mut original = None;
    if adv.witness.is_none() {
        // PGD can miss a boundary that is close (flat gradients at x0, as on some mnistfc
        // anchors): the exact search on the original finds the point instead.
        progress(Stage::Start("attack (PGD found nothing: exact search on the original)"));
        adv = decision_boundary_with_progress(net, x0, label, norm, &opts.boundary, &mut |_| {})?;
        d_adv_by = "the exact boundary search on the original (PGD found no misclassified point)";
        original = opts.compare.then(|| adv.clone());
        times.original_s = t.elapsed().as_secs_f64();
    }
    times.attack_s = t.elapsed().as_secs_f64();
    let Some(x_adv) = adv.witness.clone() else {
        return Err(GraphError::Data(format!(
            "neither PGD nor the exact search found a misclassified point around x0 within {:.1} s: Algorithm 1 \
             needs the attack distance d_adv",
            times.attack_s
        )));
    };
    let d_adv = adv.upper;

    let t = Instant::now();
    let keep_all = Plan::keep_all(net);
    let z0 = pre_activations(net, &keep_all, x0)?;
    let z_adv = pre_activations(net, &keep_all, &x_adv)?;
    let ball = InputSet::Box(linf_box(x0, d_adv, opts.boundary.domain.as_ref()));
    let choose_opts = ChooseOptions { gamma: opts.gamma, gamma0: opts.gamma0, method: opts.method };
    let (plan, rounds) = choose(net, &ball, opts.kind, &z0, &z_adv, &choose_opts, &mut |replaced, target| {
        progress(Stage::Round { replaced, target })
    })?;
    times.choose_s = t.elapsed().as_secs_f64();

    let t = Instant::now();
    let (network, not_folded) = match fold(net, &plan) {
        Ok(g) => (g, None),
        Err(e) => (masked(net, &plan)?.0, Some(e.to_string())),
    };
    times.fold_s = t.elapsed().as_secs_f64();

    progress(Stage::Start("estimate"));
    let t = Instant::now();
    let estimate = decision_boundary_with_progress(&network, x0, label, norm, &opts.boundary, &mut |_| {})?;
    times.estimate_s = t.elapsed().as_secs_f64();
    let witness_upper = match &estimate.witness {
        Some(w) => {
            let y = net.forward(w, 1)?;
            let crossed = (0..y.len()).any(|j| j != label && y[j] >= y[label]);
            crossed.then(|| norm.distance(w, x0))
        }
        None => None,
    };

    let original = if opts.compare && original.is_none() {
        progress(Stage::Start("original"));
        let t = Instant::now();
        let r = decision_boundary_with_progress(net, x0, label, norm, &opts.boundary, &mut |_| {})?;
        times.original_s = t.elapsed().as_secs_f64();
        Some(r)
    } else {
        original
    };

    let certificate = if opts.certify {
        progress(Stage::Start("lemma 1"));
        let t = Instant::now();
        let c = certify(net, &plan, &z0, x0, label, d_adv, &opts.boundary)?;
        times.certify_s = t.elapsed().as_secs_f64();
        Some(c)
    } else {
        None
    };

    Ok(SubstituteResult {
        kind: opts.kind,
        gamma: opts.gamma,
        gamma0: opts.gamma0,
        label,
        neurons_before: plan.neurons(),
        neurons_after: plan.neurons() - plan.replaced(),
        kept_per_layer: plan.kept_per_layer(),
        rounds,
        d_adv,
        d_adv_by,
        x_adv,
        plan,
        network,
        not_folded,
        estimate,
        original,
        witness_upper,
        certificate,
        times,
    })
}
