//! The sound path from a substitute back to the original network (paper 004, Lemma 1).
//!
//! If f = g on the ball B_delta(x0) (within the input domain), then every point of the ball
//! that g classifies as the label, f does too, so a proven lower bound r of g's distance to
//! the boundary *inside that ball* is one for f: d_bnd(f) >= min(r, delta). Beyond delta,
//! Lemma 1's second case extends it: for z in B_eps let z~ be its projection on B_delta
//! (coordinates clipped, ||z - z~||_inf <= eps - delta, and z~ stays in a box domain); then
//! m_j^f(z) >= m_j^f(z~) - L_j (eps - delta) = m_j^g(z~) - L_j (eps - delta), which is at
//! least V_j - L_j (eps - delta), with V_j a certified lower bound of g's margin y_label - y_j on
//! B_delta and L_j the l_inf Lipschitz constant of f's margin. So f is robust on B_eps for
//! eps < delta + min_j V_j / L_j. This needs only f's constant, and it implies the printed
//! condition V_g(eps) >= 2 (L_f + L_g)(eps - delta) (whose proof's projection (eps/delta) z is
//! a slip, see ../shared/notes).
//!
//! For the activation-pattern substitute, f = g on every ball where each replaced neuron keeps
//! its sign: by induction over the layers, the pre-activations of f and g agree there, and each
//! replaced activation equals its linear piece. Bound propagation on the masked substitute
//! shows the signs; delta is the largest radius (bisection) where it does.

use crate::build::masked;
use crate::plan::{piece, Plan, Side};
use lipcert_bounds::{margins, value_bounds, InputSet, Interval, Method, Options};
use lipcert_core::rounding::down;
use lipcert_core::{GraphError, Network};
use lipcert_spectral::lipschitz::{network_lipschitz, pair_constants, Norm, Search};
pub use lipcert_verify::linf_box;
use lipcert_verify::{decision_boundary, BoundaryNorm, BoundaryOptions};
use std::time::Instant;

/// A certified lower bound on the ORIGINAL network's l_inf distance to the decision boundary.
#[derive(Clone, Debug)]
pub struct Certificate {
    /// f = g on the delta-box (0 when the substitute is not the network's linear piece).
    pub delta: f64,
    /// d_bnd(f) >= lower; None when Lemma 1 gives nothing (see `reason`).
    pub lower: Option<f64>,
    /// How `lower` was proven.
    pub by: String,
    pub reason: Option<String>,
    /// Lemma 1 case 2: how far beyond delta the Lipschitz extension reaches (0 when unused).
    pub extension: f64,
    pub time_s: f64,
}

/// The signs the replaced neurons must keep, or why the substitute differs from the network
/// on every ball (a replacement that is not the activation's linear piece at x0).
fn sides(plan: &Plan, z0: &[Vec<f64>]) -> Result<Vec<(usize, usize, Side)>, String> {
    let mut out = Vec::new();
    let mut other = 0;
    for (li, layer) in plan.layers.iter().enumerate() {
        for (i, r) in layer.replaced.iter().enumerate() {
            let Some(r) = r else { continue };
            match piece(layer.activation, z0[li][i]) {
                Some((p, side)) if p == *r => out.push((li, i, side)),
                _ => other += 1,
            }
        }
    }
    if other > 0 {
        return Err(format!(
            "{other} of the {} replaced neurons are replaced by a function other than the activation's linear piece \
             at x0, so the substitute differs from the network on every ball around x0 (Lemma 1 needs f = g on a \
             ball; use --kind act)",
            plan.replaced()
        ));
    }
    Ok(out)
}

/// Lemma 1's delta: the largest radius (to relative `tol`) at which CROWN bounds on the masked
/// substitute show every replaced neuron keeping its sign; the search starts at `start`.
pub fn pattern_radius(
    net: &Network,
    plan: &Plan,
    z0: &[Vec<f64>],
    x0: &[f64],
    domain: Option<&Interval>,
    start: f64,
    tol: f64,
) -> Result<Result<f64, String>, GraphError> {
    let sides = match sides(plan, z0) {
        Ok(s) => s,
        Err(reason) => return Ok(Err(reason)),
    };
    let (g, pre) = masked(net, plan)?;
    let keeps = |r: f64| -> Result<bool, GraphError> {
        let set = InputSet::Box(linf_box(x0, r, domain));
        let b = value_bounds(&g, &set, Method::Crown, &Options::default())?;
        Ok(sides.iter().all(|&(li, i, side)| match side {
            Side::NonNegative => b[pre[li]].lo[i] >= 0.0,
            Side::NonPositive => b[pre[li]].hi[i] <= 0.0,
        }))
    };
    let (mut lo, mut hi) = (0.0, start.max(1e-12));
    for _ in 0..60 {
        if !keeps(hi)? {
            break;
        }
        lo = hi;
        let covers = |d: &Interval| (0..x0.len()).all(|i| x0[i] - hi <= d.lo[i] && x0[i] + hi >= d.hi[i]);
        if domain.is_some_and(covers) {
            return Ok(Ok(lo)); // the box holds the whole domain: every larger radius keeps the signs
        }
        hi *= 2.0;
    }
    for _ in 0..60 {
        if hi - lo <= tol * hi {
            break;
        }
        let mid = if lo == 0.0 { 0.25 * hi } else { 0.5 * (lo + hi) };
        if keeps(mid)? {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    Ok(Ok(lo))
}

/// l_inf Lipschitz constants of f's margins y_label - y_j (pairwise from the output layer
/// when it is dense, else twice the network's constant).
fn margin_constants(net: &Network, label: usize) -> Vec<f64> {
    let lip = network_lipschitz(net, Norm::Inf, &Search::default());
    let m = net.output_len();
    match pair_constants(net, &lip) {
        Some(p) => (0..m).map(|j| p[label * m + j]).collect(),
        None => vec![2.0 * lip.upper; m],
    }
}

/// Lemma 1 for the plan: delta, then a certified lower bound on the original network's l_inf
/// distance to the boundary of `label` (see the module comment). `start`: where the delta
/// search begins (the attack distance); `opts`: the boundary search run on the masked
/// substitute inside the delta-box (its domain is replaced by that box).
pub fn certify(
    net: &Network,
    plan: &Plan,
    z0: &[Vec<f64>],
    x0: &[f64],
    label: usize,
    start: f64,
    opts: &BoundaryOptions,
) -> Result<Certificate, GraphError> {
    let t0 = Instant::now();
    let domain = opts.domain.as_ref();
    let none = |delta: f64, reason: String| Certificate {
        delta,
        lower: None,
        by: String::new(),
        reason: Some(reason),
        extension: 0.0,
        time_s: t0.elapsed().as_secs_f64(),
    };
    let delta = match pattern_radius(net, plan, z0, x0, domain, start, opts.tol.max(1e-6))? {
        Ok(d) if d > 0.0 => d,
        Ok(_) => {
            return Ok(none(
                0.0,
                "bound propagation shows no ball on which every replaced neuron keeps its sign".into(),
            ))
        }
        Err(reason) => return Ok(none(0.0, reason)),
    };
    let ball = linf_box(x0, delta, domain);
    let (g, _) = masked(net, plan)?;
    let inside = BoundaryOptions { domain: Some(ball.clone()), ..opts.clone() };
    let r = decision_boundary(&g, x0, label, BoundaryNorm::Inf, &inside)?;
    if r.lower.is_finite() {
        let by = format!("{} on the masked substitute inside the delta-box, where f = g", r.lower_by.describe());
        let reason = (r.lower <= 0.0).then(|| "nothing proven inside the delta-box".to_string());
        return Ok(Certificate {
            delta,
            lower: (r.lower > 0.0).then_some(r.lower.min(delta)),
            by,
            reason,
            extension: 0.0,
            time_s: t0.elapsed().as_secs_f64(),
        });
    }
    // No point of the delta-box is misclassified: d_bnd(f) >= delta, and Lemma 1 case 2.
    let v = margins(&g, &InputSet::Box(ball), label, Method::Crown, &Options::default())?;
    let l = margin_constants(net, label);
    let extension = (0..v.len())
        .filter(|&j| j != label)
        .map(|j| {
            if v[j] > 0.0 && l[j] > 0.0 {
                down(v[j] / l[j])
            } else if l[j] == 0.0 {
                f64::INFINITY
            } else {
                0.0
            }
        })
        .fold(f64::INFINITY, f64::min);
    let extension = if extension.is_finite() { extension } else { 0.0 };
    Ok(Certificate {
        delta,
        lower: Some(down(delta + extension)),
        by: "the delta-box has no misclassified point of the masked substitute (= f there), extended by Lemma 1 \
             case 2: CROWN margins on the delta-box over f's l_inf Lipschitz constants"
            .into(),
        reason: None,
        extension,
        time_s: t0.elapsed().as_secs_f64(),
    })
}
