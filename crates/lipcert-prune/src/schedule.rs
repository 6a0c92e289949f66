//! Robustness-aware pruning schedule: the most zeros under a certified deviation budget.
//!
//! Greedy over per-layer sparsity levels: every round tries raising each layer by one level
//! (re-pruning the whole network, since later layers compensate for earlier ones), certifies
//! the deviation of each candidate over the box, and keeps the feasible candidate that buys the
//! most zeros per unit of certified deviation. Every accepted step is certified, so the result
//! is too; the greedy choice is not claimed to be optimal.

use crate::deviation::{certified, CertifyOptions, DeviationError};
use crate::network::{prunable_layers, prune_network, PruneReport};
use crate::pruners::{Method, Pattern, PruneOptions};
use lipcert_core::Network;
use rayon::prelude::*;
use serde::Serialize;
use std::time::{Duration, Instant};

#[derive(Clone, Debug)]
pub struct ScheduleOptions {
    /// Sparsity levels a layer moves through, increasing.
    pub levels: Vec<f64>,
    /// `certify.deadline` is ignored: each candidate gets this long for its box splits (the
    /// bound is valid whenever the splitting stops; more time only tightens it).
    pub certify: CertifyOptions,
    pub candidate_time: Duration,
    pub prune: PruneOptions,
}

impl Default for ScheduleOptions {
    fn default() -> Self {
        ScheduleOptions {
            levels: vec![0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95],
            certify: CertifyOptions::default(),
            candidate_time: Duration::from_secs(2),
            prune: PruneOptions::default(),
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct ScheduleStep {
    pub sparsities: Vec<f64>,
    pub zeros: usize,
    pub certified: f64,
}

pub struct Schedule {
    /// Per prunable layer (see `prunable_layers`).
    pub sparsities: Vec<f64>,
    pub network: Network,
    pub report: PruneReport,
    /// Certified sup ||f - f_hat||_2 over the box for the returned network (<= budget).
    pub certified: f64,
    /// The accepted steps, in order.
    pub steps: Vec<ScheduleStep>,
    pub evaluations: usize,
}

struct Candidate {
    level: Vec<usize>,
    network: Network,
    report: PruneReport,
    certified: f64,
}

#[allow(clippy::too_many_arguments)]
fn evaluate(
    net: &Network,
    calib: &[f64],
    n: usize,
    method: Method,
    level: Vec<usize>,
    lo: &[f64],
    hi: &[f64],
    opts: &ScheduleOptions,
) -> Result<Candidate, DeviationError> {
    let patterns: Vec<Option<Pattern>> =
        level.iter().map(|&l| (l > 0).then(|| Pattern::Unstructured { sparsity: opts.levels[l] })).collect();
    let (network, report) = prune_network(net, calib, n, method, &patterns, &opts.prune)?;
    let certify = CertifyOptions { deadline: Some(Instant::now() + opts.candidate_time), ..opts.certify.clone() };
    let certified = certified(net, &network, lo, hi, &certify)?.l2;
    Ok(Candidate { level, network, report, certified })
}

/// The greedy schedule for a budget `eps` on sup over [lo, hi] of ||f - f_hat||_2.
#[allow(clippy::too_many_arguments)]
pub fn schedule(
    net: &Network,
    calib: &[f64],
    n: usize,
    method: Method,
    lo: &[f64],
    hi: &[f64],
    eps: f64,
    opts: &ScheduleOptions,
) -> Result<Schedule, DeviationError> {
    if !(eps >= 0.0 && eps.is_finite()) {
        return Err(DeviationError::Invalid(format!("the budget must be a finite number >= 0, got {eps}")));
    }
    if opts.levels.first() != Some(&0.0)
        || opts.levels.windows(2).any(|w| w[0] >= w[1])
        || opts.levels.iter().any(|&l| l > 1.0)
    {
        return Err(DeviationError::Invalid("sparsity levels must start at 0 and increase up to at most 1".into()));
    }
    let layers = prunable_layers(net).len();
    let mut current = evaluate(net, calib, n, method, vec![0; layers], lo, hi, opts)?;
    let mut evaluations = 1;
    let mut steps = Vec::new();
    loop {
        let options: Vec<Vec<usize>> = (0..layers)
            .filter(|&i| current.level[i] + 1 < opts.levels.len())
            .map(|i| {
                let mut l = current.level.clone();
                l[i] += 1;
                l
            })
            .collect();
        if options.is_empty() {
            break;
        }
        evaluations += options.len();
        let candidates: Vec<Candidate> = options
            .into_par_iter()
            .map(|level| evaluate(net, calib, n, method, level, lo, hi, opts))
            .collect::<Result<_, _>>()?;
        let gain = |c: &Candidate| {
            let zeros = c.report.zeros.saturating_sub(current.report.zeros) as f64;
            zeros / ((c.certified - current.certified).max(0.0) + 1e-3 * eps + f64::MIN_POSITIVE)
        };
        let Some(best) =
            candidates.into_iter().filter(|c| c.certified <= eps).max_by(|a, b| gain(a).total_cmp(&gain(b)))
        else {
            break;
        };
        current = best;
        steps.push(ScheduleStep {
            sparsities: current.level.iter().map(|&l| opts.levels[l]).collect(),
            zeros: current.report.zeros,
            certified: current.certified,
        });
    }
    Ok(Schedule {
        sparsities: current.level.iter().map(|&l| opts.levels[l]).collect(),
        network: current.network,
        report: current.report,
        certified: current.certified,
        steps,
        evaluations,
    })
}
