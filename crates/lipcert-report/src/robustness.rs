//! The robustness section: for every point, the l_inf radius each method certifies (Lipschitz
//! margin, IBP, CROWN, alpha-CROWN) and the smallest radius at which PGD finds a misclassified
//! point, then certified and adversarial accuracy as functions of the radius.
//!
//! A certified radius R is the largest radius of a bisection at which the method proved every
//! margin positive; the ball of any smaller radius is a subset, so the point is robust for every
//! r <= R. Stopping a bisection early (at the deadline) keeps R sound and only makes it smaller.
//! The PGD radius is the distance of a re-checked misclassified point: the true robust radius
//! is below it.

use crate::lipschitz::LipschitzSection;
use crate::points::Points;
use crate::{Options, Progress, Skipped};
use lipcert_bounds::{attack, margins, AttackMethod, AttackOptions, InputSet, Interval, Method, Unsafe};
use lipcert_core::Network;
use lipcert_spectral::lipschitz::{output_enclosure, pair_constants, radii};
use rayon::prelude::*;
use serde::Serialize;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

/// The methods, in the order they run (cheapest first).
pub const METHODS: [&str; 5] = ["lipschitz", "pgd", "ibp", "crown", "alpha-crown"];

/// Bisection steps of the certified radii (each halves the bracket).
const BISECTION_STEPS: usize = 8;
/// alpha-CROWN starts from CROWN's radius (its bound is never below CROWN's): fewer steps.
const ALPHA_STEPS: usize = 5;

#[derive(Clone, Debug, Serialize)]
pub struct SampleRadii {
    pub index: usize,
    pub label: usize,
    pub predicted: usize,
    /// Certified l_inf radii (0 for a misclassified point; None: the method did not run).
    pub lipschitz: Option<f64>,
    pub ibp: Option<f64>,
    pub crown: Option<f64>,
    pub alpha_crown: Option<f64>,
    /// Distance of the closest misclassified point PGD found (None: none found up to
    /// `max_radius`, or PGD did not run).
    pub pgd: Option<f64>,
}

impl SampleRadii {
    pub fn get(&self, method: &str) -> Option<f64> {
        match method {
            "lipschitz" => self.lipschitz,
            "ibp" => self.ibp,
            "crown" => self.crown,
            "alpha-crown" => self.alpha_crown,
            "pgd" => self.pgd,
            _ => None,
        }
    }
    fn correct(&self) -> bool {
        self.label == self.predicted
    }
}

/// Accuracy of one method at the table's radii.
#[derive(Clone, Debug, Serialize)]
pub struct AccuracyRow {
    pub method: String,
    /// "certified" (a lower bound on robust accuracy) or "adversarial" (PGD: an upper bound).
    pub kind: &'static str,
    /// Fraction of points at each of `RobustnessSection::radii`.
    pub accuracy: Vec<f64>,
    /// Seconds spent on this method over all points.
    pub time_s: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct RobustnessSection {
    pub norm: &'static str,
    pub points: usize,
    pub clean_accuracy: f64,
    /// The largest radius searched (the clip range's width, or max(1, max |x|)).
    pub max_radius: f64,
    pub radii: Vec<f64>,
    pub rows: Vec<AccuracyRow>,
    pub samples: Vec<SampleRadii>,
    pub time_s: f64,
    #[serde(skip)]
    pub skipped: Vec<Skipped>,
}

impl RobustnessSection {
    /// Fraction of points robust at radius r by `method`: certified (radius >= r) or, for
    /// PGD, not broken (no misclassified point within r).
    pub fn accuracy_at(&self, method: &str, r: f64) -> f64 {
        accuracy_at(&self.samples, method, r)
    }
}

fn accuracy_at(samples: &[SampleRadii], method: &str, r: f64) -> f64 {
    let n = samples.len().max(1) as f64;
    let ok = samples
        .iter()
        .filter(|s| {
            s.correct()
                && if method == "pgd" {
                    !matches!(s.pgd, Some(d) if d <= r)
                } else {
                    s.get(method).is_some_and(|v| v >= r)
                }
        })
        .count();
    ok as f64 / n
}

/// The l_inf ball of radius eps around x, clipped to the valid range.
fn ball(x: &[f64], eps: f64, clip: Option<(f64, f64)>) -> Result<InputSet, String> {
    let domain = clip.map(|(lo, hi)| Interval::new(vec![lo; x.len()], vec![hi; x.len()]));
    InputSet::linf_ball(x, eps, domain.as_ref()).map_err(|e| e.to_string())
}

/// The largest radius in [lo, hi) at which `certifies` holds, by bisection (lo is assumed
/// certified; hi is tested first when `test_hi`). Stops at the deadline.
fn bisect(
    mut lo: f64,
    mut hi: f64,
    steps: usize,
    test_hi: bool,
    deadline: Instant,
    certifies: impl Fn(f64) -> Result<bool, String>,
) -> Result<f64, String> {
    if test_hi && certifies(hi)? {
        return Ok(hi);
    }
    for _ in 0..steps {
        if Instant::now() >= deadline {
            break;
        }
        let mid = 0.5 * (lo + hi);
        if certifies(mid)? {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    Ok(lo)
}

struct Ctx<'a> {
    net: &'a Network,
    points: &'a Points,
    clip: Option<(f64, f64)>,
    max_radius: f64,
    deadline: Instant,
    seed: u64,
}

impl Ctx<'_> {
    fn certified_margin(&self, i: usize, eps: f64, method: Method) -> Result<bool, String> {
        let set = ball(self.points.row(i), eps, self.clip)?;
        let opts = lipcert_bounds::Options { deadline: Some(self.deadline), ..Default::default() };
        let m = margins(self.net, &set, self.points.labels[i], method, &opts).map_err(|e| e.to_string())?;
        Ok(m.iter().all(|&v| v > 0.0))
    }

    /// The closest misclassified point found within eps, as its distance.
    fn pgd_at(&self, i: usize, eps: f64) -> Result<Option<f64>, String> {
        let x = self.points.row(i);
        let set = ball(x, eps, self.clip)?;
        let opts = AttackOptions { restarts: 3, steps: 30, seed: self.seed + i as u64, ..Default::default() };
        let unsafe_ = Unsafe::misclassified(self.points.labels[i], self.net.output_len());
        let r = attack(self.net, &set, &unsafe_, AttackMethod::Pgd, &opts).map_err(|e| e.to_string())?;
        Ok(r.counterexample.map(|c| c.iter().zip(x).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max)))
    }

    fn pgd_radius(&self, i: usize) -> Result<Option<f64>, String> {
        let Some(mut hi) = self.pgd_at(i, self.max_radius)? else { return Ok(None) };
        let mut lo = 0.0;
        for _ in 0..BISECTION_STEPS {
            if Instant::now() >= self.deadline || hi - lo <= 1e-3 * hi {
                break;
            }
            let mid = 0.5 * (lo + hi);
            match self.pgd_at(i, mid)? {
                Some(d) => hi = hi.min(d),
                None => lo = mid,
            }
        }
        Ok(Some(hi))
    }

    /// The upper end of a certified bisection: below PGD's witness, else the largest radius.
    fn ceiling(&self, s: &SampleRadii) -> (f64, bool) {
        match s.pgd {
            Some(d) => (d, false),
            None => (self.max_radius, true),
        }
    }
}

/// Runs every method on every point (methods in order, points in parallel) until `deadline`.
pub fn run(
    net: &Network,
    points: &Points,
    linf: Option<&LipschitzSection>,
    opts: &Options,
    deadline: Instant,
    progress: &(dyn Fn(Progress) + Sync),
) -> RobustnessSection {
    let start = Instant::now();
    let n = points.len().min(opts.max_points);
    let mut skipped = vec![];
    if points.len() > n {
        skipped.push(Skipped {
            analysis: "robustness".into(),
            reason: format!("radii computed for the first {n} of {} points (--max-points)", points.len()),
        });
    }
    let max_radius = match points.clip {
        Some((lo, hi)) => hi - lo,
        None => points.x.iter().fold(1.0f64, |m, v| m.max(v.abs())),
    };
    let ctx = Ctx { net, points, clip: points.clip, max_radius, deadline, seed: opts.seed };
    let predicted = crate::points::predictions(net, &points.x[..n * net.input_len()]).unwrap_or_default();
    let mut samples: Vec<SampleRadii> = (0..n)
        .map(|i| SampleRadii {
            index: i,
            label: points.labels[i],
            predicted: predicted.get(i).copied().unwrap_or(usize::MAX),
            lipschitz: None,
            ibp: None,
            crown: None,
            alpha_crown: None,
            pgd: None,
        })
        .collect();
    let mut times = vec![0.0; METHODS.len()];
    let mut ran = [false; METHODS.len()];
    for (k, &method) in METHODS.iter().enumerate() {
        if method == "lipschitz" && linf.and_then(|l| l.analysis.as_ref()).is_none() {
            continue;
        }
        // alpha-CROWN costs tens of CROWN passes: start it only when that fits.
        let crown_time = times[3];
        let left = deadline.saturating_duration_since(Instant::now()).as_secs_f64();
        if Instant::now() >= deadline || (method == "alpha-crown" && left < 4.0 * crown_time) {
            skipped.push(Skipped {
                analysis: format!("robustness: {method}"),
                reason: format!("not run: {left:.1} s of the report's budget were left for it"),
            });
            continue;
        }
        let t = Instant::now();
        let done = AtomicUsize::new(0);
        let results: Vec<Result<Option<f64>, String>> = samples
            .par_iter()
            .map(|s| {
                let r = one(&ctx, linf, method, s);
                let d = done.fetch_add(1, Ordering::Relaxed) + 1;
                progress(Progress { analysis: method, done: d, total: n });
                r
            })
            .collect();
        for (s, r) in samples.iter_mut().zip(results) {
            let v = match r {
                Ok(v) => v,
                Err(e) => {
                    skipped.push(Skipped { analysis: format!("robustness: {method}"), reason: e });
                    None
                }
            };
            match method {
                "lipschitz" => s.lipschitz = v,
                "pgd" => s.pgd = v,
                "ibp" => s.ibp = v,
                "crown" => s.crown = v,
                _ => s.alpha_crown = v,
            }
        }
        times[k] = t.elapsed().as_secs_f64();
        ran[k] = true;
        if Instant::now() >= deadline {
            skipped.push(Skipped {
                analysis: format!("robustness: {method}"),
                reason: "the budget ran out during this method: its radii are sound but may be loose".into(),
            });
        }
    }
    check_consistency(&samples);
    let scale = samples
        .iter()
        .flat_map(|s| [s.pgd, s.crown, s.alpha_crown, s.ibp, s.lipschitz])
        .flatten()
        .filter(|v| v.is_finite())
        .fold(0.0, f64::max);
    let scale = if scale > 0.0 { scale } else { max_radius };
    let radii: Vec<f64> = [0.0, 0.125, 0.25, 0.5, 0.75, 1.0].iter().map(|f| round2(f * scale)).collect();
    let rows = METHODS
        .iter()
        .zip(ran)
        .zip(&times)
        .filter(|((_, ran), _)| *ran)
        .map(|((&m, _), &t)| AccuracyRow {
            method: m.into(),
            kind: if m == "pgd" { "adversarial" } else { "certified" },
            accuracy: radii.iter().map(|&r| accuracy_at(&samples, m, r)).collect(),
            time_s: t,
        })
        .collect();
    let clean = samples.iter().filter(|s| s.correct()).count() as f64 / n.max(1) as f64;
    RobustnessSection {
        norm: "inf",
        points: n,
        clean_accuracy: clean,
        max_radius,
        radii,
        rows,
        samples,
        time_s: start.elapsed().as_secs_f64(),
        skipped,
    }
}

/// One method on one point.
fn one(ctx: &Ctx, linf: Option<&LipschitzSection>, method: &str, s: &SampleRadii) -> Result<Option<f64>, String> {
    if !s.correct() {
        // Not robust even at radius 0 (x0 itself is a misclassified point).
        return Ok(Some(0.0));
    }
    let i = s.index;
    let (hi, test_hi) = ctx.ceiling(s);
    let cert = |m: Method| move |eps: f64| ctx.certified_margin(i, eps, m);
    Ok(Some(match method {
        "lipschitz" => {
            let lip = linf.and_then(|l| l.analysis.as_ref()).expect("checked by the caller");
            let x = ctx.points.row(i);
            let f = ctx.net.forward(x, 1).map_err(|e| e.to_string())?;
            let bounds = output_enclosure(ctx.net, x).map_err(|e| e.to_string())?;
            let pairs = pair_constants(ctx.net, lip);
            radii(&f, &bounds, s.label, lip, pairs.as_deref()).pair
        }
        "pgd" => return ctx.pgd_radius(i),
        "ibp" => bisect(0.0, hi, BISECTION_STEPS, test_hi, ctx.deadline, cert(Method::Ibp))?,
        "crown" => bisect(0.0, hi, BISECTION_STEPS, test_hi, ctx.deadline, cert(Method::Crown))?,
        _ => {
            let lo = s.crown.unwrap_or(0.0);
            bisect(lo, hi, ALPHA_STEPS, test_hi, ctx.deadline, cert(Method::AlphaCrown))?
        }
    }))
}

/// A certified radius above a PGD witness would mean an unsound bound.
fn check_consistency(samples: &[SampleRadii]) {
    for s in samples {
        if let Some(d) = s.pgd.filter(|_| s.correct()) {
            for m in ["lipschitz", "ibp", "crown", "alpha-crown"] {
                if let Some(r) = s.get(m) {
                    assert!(
                        r <= d * (1.0 + 1e-9),
                        "point {}: {m} certifies radius {r} but PGD found a misclassified point at {d}",
                        s.index
                    );
                }
            }
        }
    }
}

/// Two significant digits (table radii read better rounded).
fn round2(v: f64) -> f64 {
    if v <= 0.0 || !v.is_finite() {
        return v.max(0.0);
    }
    let p = 10f64.powf(v.log10().floor() - 1.0);
    (v / p).round() * p
}
