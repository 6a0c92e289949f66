//! The robustness report: one call ([`run`]) that runs the analyses that fit a model and the
//! inputs it was given within a time budget, and gathers every number in one serializable
//! struct ([`Report`]). The CLI writes that struct as `report.json` and renders it with
//! [`html::render`] as a self-contained page; other front ends render the same struct.
//!
//! Each analysis is one section with its own result struct, filled by its own module:
//! [`summary`] (the model), [`lipschitz`] (per-layer and global brackets), [`robustness`]
//! (per-sample certified radii by every method and the certified-accuracy curves they give),
//! [`verification`] (VNN-LIB verdicts), [`boundary`] (distance-to-boundary brackets) and
//! [`smoothing`] (randomized-smoothing certificates of the smoothed classifier) and
//! [`deviation`] (a pruned model's deviation). A new analysis adds a module, a field of
//! [`Report`] and a section of [`html`].

pub mod boundary;
pub mod deviation;
pub mod html;
pub mod lipschitz;
pub mod plot;
pub mod points;
pub mod robustness;
pub mod smoothing;
pub mod summary;
pub mod verification;

use lipcert_core::Network;
use serde::Serialize;
use std::time::{Duration, Instant};

pub use points::{Points, PointsSource};

/// What the report is given besides the model.
pub struct Inputs {
    /// Sample points with labels (from files, VNN-LIB box centres, a box, or the default).
    pub points: Points,
    /// VNN-LIB properties to verify: (file name, property).
    pub properties: Vec<(String, lipcert_io::vnnlib::Property)>,
    /// A box to bound deviation over (and where `points` may have come from).
    pub state_box: Option<StateBox>,
    /// A pruned version of the model: (file name, network).
    pub pruned: Option<(String, Network)>,
}

/// A box of inputs and a phrase that says where it came from.
#[derive(Clone, Debug, Serialize)]
pub struct StateBox {
    pub lo: Vec<f64>,
    pub hi: Vec<f64>,
    pub source: String,
}

#[derive(Clone, Debug)]
pub struct Options {
    /// Wall-clock budget of the whole report.
    pub budget: Duration,
    pub seed: u64,
    /// The largest number of points whose radii are computed (the first ones are used).
    pub max_points: usize,
    /// Points whose distance to the boundary is bracketed.
    pub boundary_points: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options { budget: Duration::from_secs(120), seed: 0, max_points: 50, boundary_points: 3 }
    }
}

/// Progress of a report: which analysis runs, and how many of its steps are done.
pub struct Progress<'a> {
    pub analysis: &'a str,
    pub done: usize,
    pub total: usize,
}

/// An analysis that did not run, or ran only in part, and why.
#[derive(Clone, Debug, Serialize)]
pub struct Skipped {
    pub analysis: String,
    pub reason: String,
}

/// Every number of the report.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub lipcert_version: &'static str,
    pub budget_s: f64,
    pub time_s: f64,
    pub model: summary::ModelSummary,
    pub points: points::PointsSummary,
    /// l2 and l_inf brackets.
    pub lipschitz: Vec<lipschitz::LipschitzSection>,
    pub robustness: Option<robustness::RobustnessSection>,
    pub smoothing: Option<smoothing::SmoothingSection>,
    pub verification: Option<verification::VerificationSection>,
    pub boundary: Option<boundary::BoundarySection>,
    pub deviation: Option<deviation::DeviationSection>,
    pub skipped: Vec<Skipped>,
}

/// The time left of a budget, handed out to the analyses in order.
pub struct Budget {
    deadline: Instant,
}

impl Budget {
    pub fn new(total: Duration) -> Self {
        Budget { deadline: Instant::now() + total }
    }

    pub fn left(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }

    /// `fraction` of the time left, as a deadline.
    pub fn share(&self, fraction: f64) -> Instant {
        Instant::now() + self.left().mul_f64(fraction.clamp(0.0, 1.0))
    }
}

/// Runs the report. Errors are bad inputs (sizes that do not fit the model); an analysis
/// that cannot run on this model is listed in `skipped` instead.
pub fn run(
    imported: &lipcert_io::Imported,
    file: &str,
    inputs: &Inputs,
    opts: &Options,
    progress: &(dyn Fn(Progress) + Sync),
) -> Result<Report, String> {
    let start = Instant::now();
    let net = &imported.network;
    let budget = Budget::new(opts.budget);
    let mut skipped = vec![];
    inputs.points.check(net)?;
    let model = summary::summarize(imported, file);
    progress(Progress { analysis: "lipschitz", done: 0, total: 2 });
    let lipschitz = lipschitz::both_norms(net, opts.seed, &inputs.points);
    progress(Progress { analysis: "lipschitz", done: 2, total: 2 });

    let robustness = if net.output_len() < 2 {
        skipped.push(Skipped {
            analysis: "robustness".into(),
            reason: format!("the model has {} output; certified accuracy needs a classifier", net.output_len()),
        });
        None
    } else {
        // The radii are the main course: 40% of the budget.
        let linf = lipschitz.iter().find(|l| l.norm == "inf");
        let r = robustness::run(net, &inputs.points, linf, opts, budget.share(0.4), progress);
        skipped.extend(r.skipped.iter().cloned());
        Some(r)
    };

    // Randomized smoothing (l2, of the smoothed classifier): 15% of the time left.
    let smoothing = (net.output_len() >= 2 && !inputs.points.is_empty()).then(|| {
        let r = smoothing::run(net, &inputs.points, opts.max_points, opts.seed, budget.share(0.15), progress);
        skipped.extend(r.skipped.iter().cloned());
        r
    });

    let verification = (!inputs.properties.is_empty()).then(|| {
        let r = verification::run(net, &inputs.properties, opts.seed, budget.share(0.4), progress);
        skipped.extend(r.skipped.iter().cloned());
        r
    });

    let boundary = if net.output_len() >= 2 && opts.boundary_points > 0 && !inputs.points.labels.is_empty() {
        let share = if inputs.pruned.is_some() { 0.5 } else { 0.9 };
        let r = boundary::run(net, &inputs.points, opts, budget.share(share), progress);
        skipped.extend(r.skipped.iter().cloned());
        Some(r)
    } else {
        None
    };

    let deviation = match &inputs.pruned {
        Some((name, pruned)) => {
            let b = inputs.state_box.clone().unwrap_or_else(|| inputs.points.hull());
            match deviation::run(net, name, pruned, &b, opts, budget.share(0.95), progress) {
                Ok(d) => Some(d),
                Err(e) => {
                    skipped.push(Skipped { analysis: "deviation".into(), reason: e });
                    None
                }
            }
        }
        None => None,
    };
    Ok(Report {
        lipcert_version: env!("CARGO_PKG_VERSION"),
        budget_s: opts.budget.as_secs_f64(),
        time_s: start.elapsed().as_secs_f64(),
        model,
        points: inputs.points.summary(),
        lipschitz,
        robustness,
        smoothing,
        verification,
        boundary,
        deviation,
        skipped,
    })
}
