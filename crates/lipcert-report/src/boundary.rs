//! The boundary section: certified brackets on the l_inf distance to the decision boundary
//! (`lipcert boundary`) for the first few points, the time left shared among them.

use crate::points::Points;
use crate::{Options, Progress, Skipped};
use lipcert_bounds::Interval;
use lipcert_core::Network;
use lipcert_verify::boundary::{decision_boundary, BoundaryNorm, BoundaryOptions};
use serde::Serialize;
use std::time::{Duration, Instant};

#[derive(Clone, Debug, Serialize)]
pub struct BoundaryRow {
    pub index: usize,
    pub label: usize,
    /// Proven: d_bnd >= lower.
    pub lower: f64,
    pub lower_by: &'static str,
    /// Witnessed: d_bnd <= upper (None: no misclassified point was found).
    pub upper: Option<f64>,
    pub upper_by: &'static str,
    pub closed: bool,
    pub note: Option<String>,
    pub time_s: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct BoundarySection {
    pub norm: &'static str,
    pub rows: Vec<BoundaryRow>,
    #[serde(skip)]
    pub skipped: Vec<Skipped>,
}

const MIN_TIMEOUT_S: f64 = 0.5;

pub fn run(
    net: &Network,
    points: &Points,
    opts: &Options,
    deadline: Instant,
    progress: &(dyn Fn(Progress) + Sync),
) -> BoundarySection {
    let n = points.len().min(opts.boundary_points);
    let mut rows = vec![];
    let mut skipped = vec![];
    for i in 0..n {
        progress(Progress { analysis: "boundary", done: i, total: n });
        let left = deadline.saturating_duration_since(Instant::now()).as_secs_f64();
        let timeout = left / (n - i) as f64;
        if timeout < MIN_TIMEOUT_S {
            skipped.push(Skipped {
                analysis: format!("boundary of point {i}"),
                reason: format!("not run: {timeout:.2} s of the budget were left for it"),
            });
            continue;
        }
        let x = points.row(i);
        let domain = points.clip.map(|(lo, hi)| Interval::new(vec![lo; x.len()], vec![hi; x.len()]));
        let bopts =
            BoundaryOptions { timeout: Duration::from_secs_f64(timeout), tol: 1e-2, domain, ..Default::default() };
        match decision_boundary(net, x, points.labels[i], BoundaryNorm::Inf, &bopts) {
            Ok(r) => rows.push(BoundaryRow {
                index: i,
                label: points.labels[i],
                lower: r.lower,
                lower_by: r.lower_by.name(),
                upper: r.upper.is_finite().then_some(r.upper),
                upper_by: r.upper_by.name(),
                closed: r.closed,
                note: r.note,
                time_s: r.time_s,
            }),
            Err(e) => skipped.push(Skipped { analysis: format!("boundary of point {i}"), reason: e.to_string() }),
        }
    }
    progress(Progress { analysis: "boundary", done: n, total: n });
    BoundarySection { norm: "inf", rows, skipped }
}
