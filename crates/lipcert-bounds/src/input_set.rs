//! The sets of inputs that bounds and attacks range over.

use crate::ibp::Interval;
use lipcert_core::GraphError;

/// A set of network inputs (per-sample, flattened in C order).
#[derive(Clone, Debug)]
pub enum InputSet {
    /// lo <= x <= hi elementwise. An l_inf ball clipped to a domain is a box.
    Box(Interval),
    /// ||x - center||_2 <= radius. The domain (for example [0, 1] pixels) is used by attacks to
    /// stay valid; bounds use the ball itself (a superset of ball ∩ domain, hence still sound)
    /// except IBP, which uses the ball's bounding box intersected with the domain.
    L2Ball { center: Vec<f64>, radius: f64, domain: Option<Interval> },
}

impl InputSet {
    /// The l_inf ball of radius `eps` around `center`, intersected with `domain` when given.
    pub fn linf_ball(center: &[f64], eps: f64, domain: Option<&Interval>) -> Result<Self, GraphError> {
        check_radius(eps)?;
        let mut lo: Vec<f64> = center.iter().map(|c| c - eps).collect();
        let mut hi: Vec<f64> = center.iter().map(|c| c + eps).collect();
        if let Some(d) = domain {
            check_len(&d.lo, center.len(), "domain")?;
            for i in 0..lo.len() {
                lo[i] = lo[i].max(d.lo[i]);
                hi[i] = hi[i].min(d.hi[i]);
                if lo[i] > hi[i] {
                    return Err(GraphError::Data(format!(
                        "input element {i}: the ball around {} does not meet the domain [{}, {}]",
                        center[i], d.lo[i], d.hi[i]
                    )));
                }
            }
        }
        Ok(InputSet::Box(Interval::new(lo, hi)))
    }

    pub fn l2_ball(center: &[f64], radius: f64, domain: Option<&Interval>) -> Result<Self, GraphError> {
        check_radius(radius)?;
        if let Some(d) = domain {
            check_len(&d.lo, center.len(), "domain")?;
        }
        Ok(InputSet::L2Ball { center: center.to_vec(), radius, domain: domain.cloned() })
    }

    pub fn len(&self) -> usize {
        match self {
            InputSet::Box(b) => b.lo.len(),
            InputSet::L2Ball { center, .. } => center.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// An elementwise box that contains the set (for IBP and error bounds).
    pub fn bounding_box(&self) -> Interval {
        match self {
            InputSet::Box(b) => b.clone(),
            InputSet::L2Ball { center, radius, domain } => {
                // c +- r rounds to nearest: widen by an ulp of the result.
                let pad = |v: f64| v.abs() * f64::EPSILON;
                let mut lo: Vec<f64> = center.iter().map(|c| c - radius - pad(c - radius)).collect();
                let mut hi: Vec<f64> = center.iter().map(|c| c + radius + pad(c + radius)).collect();
                if let Some(d) = domain {
                    for i in 0..lo.len() {
                        lo[i] = lo[i].max(d.lo[i]);
                        hi[i] = hi[i].min(d.hi[i]).max(lo[i]);
                    }
                }
                Interval::new(lo, hi)
            }
        }
    }

    /// Moves `x` into the set: the nearest point for boxes; for an l2 ball, the ball
    /// projection followed by clipping to the domain (not the exact projection onto the
    /// intersection), shrunk towards the center until the rounded point is verifiably inside.
    pub fn project(&self, x: &mut [f64]) {
        match self {
            InputSet::Box(b) => {
                for ((v, l), h) in x.iter_mut().zip(&b.lo).zip(&b.hi) {
                    *v = v.clamp(*l, *h);
                }
            }
            InputSet::L2Ball { center, radius, domain } => {
                let clip = |x: &mut [f64]| {
                    if let Some(d) = domain {
                        for ((v, l), h) in x.iter_mut().zip(&d.lo).zip(&d.hi) {
                            *v = v.clamp(*l, *h);
                        }
                    }
                };
                let norm = x.iter().zip(center).map(|(v, c)| (v - c) * (v - c)).sum::<f64>().sqrt();
                // Rounding can leave c + (x - c) s an ulp outside the ball when |c| >> radius:
                // shrink a little more each time until the rounded point is inside.
                let mut s = if norm > *radius { radius / norm } else { 1.0 };
                let original = x.to_vec();
                for attempt in 0..40 {
                    for ((v, o), c) in x.iter_mut().zip(&original).zip(center) {
                        *v = c + (o - c) * s;
                    }
                    clip(x);
                    if self.contains(x) {
                        return;
                    }
                    s *= 1.0 - (1e-15 * 4f64.powi(attempt)).min(0.5);
                }
                // Last resort: the center, clipped (in the set whenever the domain holds the center).
                x.copy_from_slice(center);
                clip(x);
            }
        }
    }

    /// Whether `x` lies in the set (the check used to re-validate counterexamples).
    pub fn contains(&self, x: &[f64]) -> bool {
        match self {
            InputSet::Box(b) => x.iter().zip(&b.lo).zip(&b.hi).all(|((v, l), h)| l <= v && v <= h),
            InputSet::L2Ball { center, radius, domain } => {
                let norm2 = x.iter().zip(center).map(|(v, c)| (v - c) * (v - c)).sum::<f64>();
                let in_domain = match domain {
                    Some(d) => x.iter().zip(&d.lo).zip(&d.hi).all(|((v, l), h)| l <= v && v <= h),
                    None => true,
                };
                norm2.sqrt() <= *radius && in_domain
            }
        }
    }
}

fn check_radius(r: f64) -> Result<(), GraphError> {
    if !(r.is_finite() && r >= 0.0) {
        return Err(GraphError::Data(format!("the radius must be finite and non-negative, got {r}")));
    }
    Ok(())
}

fn check_len(v: &[f64], len: usize, what: &str) -> Result<(), GraphError> {
    if v.len() != len {
        return Err(GraphError::Data(format!("the {what} has {} elements, expected {len}", v.len())));
    }
    Ok(())
}
