//! Maps from logits to the (scaled) probability simplex: hardmax, softmax and the generalized
//! sparsemax of thesis Algorithm 7 (Euclidean projection onto {p >= 0, sum p = r}).

use serde::Serialize;

/// The map tau applied to temperature-scaled logits z / T.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SimplexMap {
    Hardmax,
    Softmax,
    Sparsemax,
}

impl SimplexMap {
    pub fn name(self) -> &'static str {
        match self {
            SimplexMap::Hardmax => "hardmax",
            SimplexMap::Softmax => "softmax",
            SimplexMap::Sparsemax => "sparsemax",
        }
    }

    /// tau(z / t) into `out` (same length as z); sparsemax projects onto the unit simplex.
    pub fn apply(self, z: &[f32], t: f64, out: &mut [f64]) {
        match self {
            SimplexMap::Hardmax => {
                out.fill(0.0);
                out[argmax(z)] = 1.0;
            }
            SimplexMap::Softmax => {
                let m = z.iter().cloned().fold(f32::NEG_INFINITY, f32::max) as f64;
                let mut s = 0.0;
                for (o, &v) in out.iter_mut().zip(z) {
                    *o = ((v as f64 - m) / t).exp();
                    s += *o;
                }
                out.iter_mut().for_each(|o| *o /= s);
            }
            SimplexMap::Sparsemax => {
                for (o, &v) in out.iter_mut().zip(z) {
                    *o = v as f64 / t;
                }
                project_simplex_in_place(out, 1.0);
            }
        }
    }
}

/// Index of the first maximum (NaN never wins).
pub fn argmax(z: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in z.iter().enumerate() {
        if v > z[best] || z[best].is_nan() {
            best = i;
        }
    }
    best
}

/// Thesis Algorithm 7, generalized sparsemax: the Euclidean projection of z onto the scaled
/// simplex {p >= 0, sum p = r} (Condat 2016). 1-Lipschitz in l2.
pub fn generalized_sparsemax(z: &[f64], r: f64) -> Vec<f64> {
    let mut p = z.to_vec();
    project_simplex_in_place(&mut p, r);
    p
}

fn project_simplex_in_place(z: &mut [f64], r: f64) {
    let mut sorted: Vec<f64> = z.to_vec();
    sorted.sort_by(|a, b| b.total_cmp(a));
    // kappa = max { k : r + k z_(k) > sum_{j <= k} z_(j) }, rho = (sum_{j <= kappa} z_(j) - r) / kappa.
    let (mut cum, mut rho) = (0.0, 0.0);
    for (k, &v) in sorted.iter().enumerate() {
        cum += v;
        let kk = (k + 1) as f64;
        if r + kk * v > cum {
            rho = (cum - r) / kk;
        }
    }
    z.iter_mut().for_each(|v| *v = (*v - rho).max(0.0));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generalized_sparsemax_matches_the_notes() {
        let z = [1.0, 0.5, -0.2];
        let close = |a: &[f64], b: &[f64]| a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-4);
        assert!(close(&generalized_sparsemax(&z, 0.5), &[0.5, 0.0, 0.0]));
        assert!(close(&generalized_sparsemax(&z, 1.0), &[0.75, 0.25, 0.0]));
        assert!(close(&generalized_sparsemax(&z, 1.5), &[1.0, 0.5, 0.0]));
        assert!(close(&generalized_sparsemax(&z, 3.0), &[1.5667, 1.0667, 0.3667]));
        assert!(close(&generalized_sparsemax(&[0.3, 0.1, 0.1, -1.0], 1.0), &[0.4667, 0.2667, 0.2667, 0.0]));
        let mut out = [0.0; 3];
        SimplexMap::Softmax.apply(&[1.0, 2.0, 3.0], 1.0, &mut out);
        assert!((out[2] - 0.6652409557748219).abs() < 1e-7);
        SimplexMap::Hardmax.apply(&[1.0, 3.0, 3.0], 1.0, &mut out);
        assert_eq!(out, [0.0, 1.0, 0.0]);
    }
}
