//! Linearization at the equilibrium and a discrete-time LQR expert.
//!
//! The continuous Jacobians `A = df/ds`, `B = df/da` at `(s_eq, a_eq)` come from central
//! finite differences of the nominal dynamics. They are discretized exactly as the simulator
//! integrates them: one RK4 step of the linear system with the action held, which is
//! `Ad = I + hA + (hA)^2/2 + (hA)^3/6 + (hA)^4/24` and
//! `Bd = h (I + hA/2 + (hA)^2/6 + (hA)^3/24) B`. The discrete Riccati recursion
//! `P <- Q + Ad' P Ad - Ad' P Bd (R + Bd' P Bd)^-1 Bd' P Ad` is iterated from `P = Q` to
//! convergence, and the design is accepted only when the closed loop `Ad - Bd K` has spectral
//! radius below 1 (apart from the system's declared neutral modes).
//!
//! The expert's action is `a = sat(a_eq - K (s - s_eq))`.

use crate::dynamics::{saturate, Bounds, System};
use crate::error::ControlError;
use crate::rollout::Policy;
use serde::Serialize;

/// Row-major dense matrices; the systems here have at most a handful of states.
fn matmul(a: &[f64], b: &[f64], n: usize, k: usize, m: usize) -> Vec<f64> {
    let mut c = vec![0.0; n * m];
    for i in 0..n {
        for l in 0..k {
            let v = a[i * k + l];
            if v != 0.0 {
                for j in 0..m {
                    c[i * m + j] += v * b[l * m + j];
                }
            }
        }
    }
    c
}

fn transpose(a: &[f64], n: usize, m: usize) -> Vec<f64> {
    let mut t = vec![0.0; n * m];
    for i in 0..n {
        for j in 0..m {
            t[j * n + i] = a[i * m + j];
        }
    }
    t
}

fn identity(n: usize) -> Vec<f64> {
    let mut m = vec![0.0; n * n];
    for i in 0..n {
        m[i * n + i] = 1.0;
    }
    m
}

/// Solves `A X = B` (`A` is `n x n`, `B` is `n x m`) by Gaussian elimination with partial
/// pivoting; None when `A` is singular.
fn solve(a: &[f64], b: &[f64], n: usize, m: usize) -> Option<Vec<f64>> {
    let mut a = a.to_vec();
    let mut x = b.to_vec();
    let scale = a.iter().fold(0.0f64, |s, v| s.max(v.abs()));
    for col in 0..n {
        let piv = (col..n).max_by(|&i, &j| a[i * n + col].abs().total_cmp(&a[j * n + col].abs()))?;
        if a[piv * n + col].abs() <= 1e-14 * scale {
            return None;
        }
        if piv != col {
            for j in 0..n {
                a.swap(col * n + j, piv * n + j);
            }
            for j in 0..m {
                x.swap(col * m + j, piv * m + j);
            }
        }
        for i in col + 1..n {
            let f = a[i * n + col] / a[col * n + col];
            if f != 0.0 {
                for j in col..n {
                    a[i * n + j] -= f * a[col * n + j];
                }
                for j in 0..m {
                    x[i * m + j] -= f * x[col * m + j];
                }
            }
        }
    }
    for col in (0..n).rev() {
        for j in 0..m {
            let mut v = x[col * m + j];
            for l in col + 1..n {
                v -= a[col * n + l] * x[l * m + j];
            }
            x[col * m + j] = v / a[col * n + col];
        }
    }
    Some(x)
}

/// The linearization of a system at its equilibrium, continuous and discretized.
#[derive(Clone, Debug, Serialize)]
pub struct Linearization {
    pub states: usize,
    pub actions: usize,
    pub dt: f64,
    /// Continuous-time Jacobians, row-major `n x n` and `n x m`.
    pub a: Vec<f64>,
    pub b: Vec<f64>,
    /// Discrete-time (RK4 with the action held over `dt`) matrices.
    pub ad: Vec<f64>,
    pub bd: Vec<f64>,
}

/// Central finite differences of the nominal dynamics at the equilibrium, then the exact RK4
/// discretization of the linear system.
pub fn linearize(sys: &dyn System) -> Linearization {
    let (n, m) = (sys.state_dim(), sys.action_dim());
    let (se, ae) = sys.equilibrium();
    let mut fp = vec![0.0; n];
    let mut fm = vec![0.0; n];
    let mut a = vec![0.0; n * n];
    let mut b = vec![0.0; n * m];
    for j in 0..n + m {
        let (mut sp, mut sm, mut ap, mut am) = (se.clone(), se.clone(), ae.clone(), ae.clone());
        let x = if j < n { se[j] } else { ae[j - n] };
        let h = 1e-5 * x.abs().max(1.0);
        if j < n {
            sp[j] += h;
            sm[j] -= h;
        } else {
            ap[j - n] += h;
            am[j - n] -= h;
        }
        sys.nominal_dynamics(&sp, &ap, &mut fp);
        sys.nominal_dynamics(&sm, &am, &mut fm);
        for i in 0..n {
            let d = (fp[i] - fm[i]) / (2.0 * h);
            if j < n {
                a[i * n + j] = d;
            } else {
                b[i * m + (j - n)] = d;
            }
        }
    }
    let dt = sys.dt();
    // sum_{k=0}^{4} (hA)^k / k!  and  h sum_{k=0}^{3} (hA)^k / (k+1)!
    let ha: Vec<f64> = a.iter().map(|v| v * dt).collect();
    let mut power = identity(n);
    let mut ad = identity(n);
    let mut phi = identity(n);
    let mut fact = 1.0;
    for k in 1..=4 {
        power = matmul(&power, &ha, n, n, n);
        fact *= k as f64;
        for (d, p) in ad.iter_mut().zip(&power) {
            *d += p / fact;
        }
        if k <= 3 {
            for (d, p) in phi.iter_mut().zip(&power) {
                *d += p / (fact * (k + 1) as f64);
            }
        }
    }
    let bd: Vec<f64> = matmul(&phi, &b, n, n, m).iter().map(|v| v * dt).collect();
    Linearization { states: n, actions: m, dt, a, b, ad, bd }
}

/// A discrete LQR design.
#[derive(Clone, Debug, Serialize)]
pub struct Lqr {
    /// Feedback gain, row-major `m x n`.
    pub k: Vec<f64>,
    /// Solution of the discrete algebraic Riccati equation, row-major `n x n`.
    pub p: Vec<f64>,
    /// Riccati iterations to convergence.
    pub iterations: usize,
    /// Moduli of the closed-loop eigenvalues of `Ad - Bd K`, largest first.
    pub closed_loop_moduli: Vec<f64>,
    /// Largest modulus apart from the declared neutral modes (< 1: stable).
    pub spectral_radius: f64,
    pub state_eq: Vec<f64>,
    pub action_eq: Vec<f64>,
    pub action_bounds: Bounds,
    pub linearization: Linearization,
}

/// Designs the LQR gain of a system with its own weights (see [`System::lqr_weights`]).
pub fn lqr(sys: &dyn System) -> Result<Lqr, ControlError> {
    let (q, r) = sys.lqr_weights();
    lqr_with(sys, &q, &r)
}

/// Designs the LQR gain with the given weights (row-major `n x n` and `m x m`).
pub fn lqr_with(sys: &dyn System, q: &[f64], r: &[f64]) -> Result<Lqr, ControlError> {
    let lin = linearize(sys);
    let (n, m) = (lin.states, lin.actions);
    if q.len() != n * n || r.len() != m * m {
        return Err(ControlError(format!("LQR weights must be {n} x {n} and {m} x {m}")));
    }
    let (ad, bd) = (&lin.ad, &lin.bd);
    let adt = transpose(ad, n, n);
    let bdt = transpose(bd, n, m);
    let gain = |p: &[f64]| -> Option<(Vec<f64>, Vec<f64>)> {
        // K = (R + Bd' P Bd)^-1 Bd' P Ad; also returns Bd' P Ad.
        let pb = matmul(p, bd, n, n, m);
        let pa = matmul(p, ad, n, n, n);
        let s: Vec<f64> = matmul(&bdt, &pb, m, n, m).iter().zip(r).map(|(x, y)| x + y).collect();
        let t = matmul(&bdt, &pa, m, n, n);
        Some((solve(&s, &t, m, n)?, t))
    };
    let singular = || ControlError(format!("{}: R + B' P B is singular", sys.name()));
    let mut p = q.to_vec();
    let max_iter = 1_000_000;
    let mut iterations = 0;
    loop {
        let (k, t) = gain(&p).ok_or_else(singular)?;
        let apa = matmul(&adt, &matmul(&p, ad, n, n, n), n, n, n);
        let tk = matmul(&transpose(&t, m, n), &k, n, m, n);
        let mut next: Vec<f64> = (0..n * n).map(|i| q[i] + apa[i] - tk[i]).collect();
        for i in 0..n {
            for j in 0..i {
                let v = 0.5 * (next[i * n + j] + next[j * n + i]);
                next[i * n + j] = v;
                next[j * n + i] = v;
            }
        }
        let size = next.iter().fold(1.0f64, |s, v| s.max(v.abs()));
        let change = next.iter().zip(&p).fold(0.0f64, |s, (a, b)| s.max((a - b).abs()));
        p = next;
        iterations += 1;
        if !size.is_finite() {
            return Err(ControlError(format!("{}: the Riccati recursion diverges", sys.name())));
        }
        if change <= 1e-12 * size {
            break;
        }
        if iterations >= max_iter {
            return Err(ControlError(format!(
                "{}: the Riccati recursion did not converge in {max_iter} iterations",
                sys.name()
            )));
        }
    }
    let (k, _) = gain(&p).ok_or_else(singular)?;
    let bk = matmul(bd, &k, n, m, n);
    let closed = faer::Mat::<f64>::from_fn(n, n, |i, j| ad[i * n + j] - bk[i * n + j]);
    let eig = closed
        .eigenvalues()
        .map_err(|e| ControlError(format!("{}: closed-loop eigenvalues failed: {e:?}", sys.name())))?;
    let mut moduli: Vec<f64> = eig.iter().map(|z| z.re.hypot(z.im)).collect();
    moduli.sort_by(|a, b| b.total_cmp(a));
    let neutral = sys.neutral_modes().min(n);
    if moduli[..neutral].iter().any(|&v| v > 1.0 + 1e-6) {
        return Err(ControlError(format!("{}: a neutral closed-loop mode is unstable: {:?}", sys.name(), moduli)));
    }
    let spectral_radius = moduli.get(neutral).copied().unwrap_or(0.0);
    if spectral_radius >= 1.0 {
        return Err(ControlError(format!(
            "{}: the LQR closed loop is not stable (spectral radius {spectral_radius})",
            sys.name()
        )));
    }
    let (state_eq, action_eq) = sys.equilibrium();
    Ok(Lqr {
        k,
        p,
        iterations,
        closed_loop_moduli: moduli,
        spectral_radius,
        state_eq,
        action_eq,
        action_bounds: sys.action_bounds(),
        linearization: lin,
    })
}

/// The LQR expert `a = sat(a_eq - K (s - s_eq))`.
#[derive(Clone, Debug)]
pub struct LqrExpert {
    pub lqr: Lqr,
}

impl LqrExpert {
    pub fn new(sys: &dyn System) -> Result<Self, ControlError> {
        Ok(LqrExpert { lqr: lqr(sys)? })
    }

    /// The saturated expert action at one state.
    pub fn action(&self, s: &[f64]) -> Vec<f64> {
        let l = &self.lqr;
        let n = l.state_eq.len();
        let mut a: Vec<f64> = l
            .action_eq
            .iter()
            .enumerate()
            .map(|(i, ae)| ae - (0..n).map(|j| l.k[i * n + j] * (s[j] - l.state_eq[j])).sum::<f64>())
            .collect();
        saturate(&mut a, &l.action_bounds);
        a
    }
}

impl Policy for LqrExpert {
    fn input_len(&self) -> usize {
        self.lqr.state_eq.len()
    }
    fn output_len(&self) -> usize {
        self.lqr.action_eq.len()
    }
    fn act_batch(&self, states: &[f64], n: usize) -> Result<Vec<f64>, ControlError> {
        let d = self.input_len();
        Ok(states.chunks_exact(d).take(n).flat_map(|s| self.action(s)).collect())
    }
}
