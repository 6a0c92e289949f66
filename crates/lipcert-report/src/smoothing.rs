//! The smoothing section: Cohen et al.'s certificate of the smoothed classifier (randomized
//! smoothing, `lipcert smooth certify`) at sigma 0.12, 0.25 and 0.5, with as many noise
//! samples per point as the budget share allows (at most 10^4, at least 10^3).
//!
//! These radii certify the SMOOTHED classifier g(x) = argmax_c P(f(x + noise) = c), each
//! with probability at least 1 - alpha over the sampling noise; not the network f itself.

use crate::points::Points;
use crate::{Progress, Skipped};
use lipcert_core::Network;
use lipcert_smooth::{certify_dataset, Method, SmoothOptions, SmoothReport};
use serde::Serialize;
use std::time::Instant;

pub const SIGMAS: [f64; 3] = [0.12, 0.25, 0.5];
const MAX_N: usize = 10_000;
const MIN_N: usize = 1_000;
const N0: usize = 100;
const ALPHA: f64 = 0.001;

#[derive(Clone, Debug, Serialize)]
pub struct SmoothingSection {
    pub method: &'static str,
    pub alpha: f64,
    pub points: usize,
    /// One report per sigma that fitted the budget.
    pub runs: Vec<SmoothReport>,
    #[serde(skip)]
    pub skipped: Vec<Skipped>,
}

pub fn run(
    net: &Network,
    points: &Points,
    max_points: usize,
    seed: u64,
    deadline: Instant,
    progress: &(dyn Fn(Progress) + Sync),
) -> SmoothingSection {
    let k = points.len().min(max_points);
    let len = net.input_len();
    let (x, labels) = (&points.x[..k * len], &points.labels[..k]);
    let mut runs = vec![];
    let mut skipped = vec![];
    let base = SmoothOptions { method: Method::Cohen, n0: N0, alpha: ALPHA, seed, ..SmoothOptions::default() };
    // The rate of noisy forward passes, measured on one point, sizes n to the time left.
    let probe = SmoothOptions { n: MIN_N, sigma: SIGMAS[1], ..base.clone() };
    let rate = match certify_dataset(net, &x[..len], &labels[..1], &probe, &|_| {}) {
        Ok(r) => r.noise_samples_per_s.max(1.0),
        Err(e) => {
            skipped.push(Skipped { analysis: "smoothing".into(), reason: e.to_string() });
            return SmoothingSection { method: "cohen", alpha: ALPHA, points: k, runs, skipped };
        }
    };
    for (i, &sigma) in SIGMAS.iter().enumerate() {
        progress(Progress { analysis: "smoothing", done: i, total: SIGMAS.len() });
        let left = deadline.saturating_duration_since(Instant::now()).as_secs_f64();
        let per_run = left / (SIGMAS.len() - i) as f64;
        let n = ((per_run * rate / k as f64) as usize).saturating_sub(N0).min(MAX_N);
        if n < MIN_N {
            skipped.push(Skipped {
                analysis: format!("smoothing at sigma {sigma}"),
                reason: format!(
                    "not run: {per_run:.1} s left allow {n} noise samples per point at {rate:.0} samples/s (at least {MIN_N} needed)"
                ),
            });
            continue;
        }
        let opts = SmoothOptions { sigma, n, ..base.clone() };
        match certify_dataset(net, x, labels, &opts, &|_| {}) {
            Ok(r) => runs.push(r),
            Err(e) => skipped.push(Skipped { analysis: format!("smoothing at sigma {sigma}"), reason: e.to_string() }),
        }
    }
    progress(Progress { analysis: "smoothing", done: SIGMAS.len(), total: SIGMAS.len() });
    SmoothingSection { method: "cohen", alpha: ALPHA, points: k, runs, skipped }
}
