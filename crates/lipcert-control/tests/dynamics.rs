//! RK4 against known solutions, and the linearization against hand-derived Jacobians.

use lipcert_control::dynamics::quadratic;
use lipcert_control::*;

/// x'' = -w^2 x (harmonic oscillator); no actions matter.
struct Oscillator {
    w: f64,
}

impl System for Oscillator {
    fn name(&self) -> &'static str {
        "oscillator"
    }
    fn state_names(&self) -> Vec<&'static str> {
        vec!["x", "v"]
    }
    fn action_names(&self) -> Vec<&'static str> {
        vec!["u"]
    }
    fn dynamics(&self, _t: f64, s: &[f64], a: &[f64], ds: &mut [f64]) {
        ds[0] = s[1];
        ds[1] = -self.w * self.w * s[0] + a[0];
    }
    fn dt(&self) -> f64 {
        0.01
    }
    fn horizon(&self) -> usize {
        100
    }
    fn action_bounds(&self) -> Bounds {
        vec![(-1.0, 1.0)]
    }
    fn equilibrium(&self) -> (Vec<f64>, Vec<f64>) {
        (vec![0.0, 0.0], vec![0.0])
    }
    fn initial_box(&self) -> Bounds {
        vec![(-1.0, 1.0); 2]
    }
    fn state_box(&self) -> Bounds {
        vec![(-2.0, 2.0); 2]
    }
    fn constraint_names(&self) -> Vec<String> {
        vec![]
    }
    fn constraint_margins(&self, _s: &[f64]) -> Vec<f64> {
        vec![]
    }
    fn lqr_weights(&self) -> (Vec<f64>, Vec<f64>) {
        (vec![1.0, 0.0, 0.0, 1.0], vec![1.0])
    }
}

/// Integrates the oscillator for time 10 with step h; returns the error against cos/sin.
fn oscillator_error(h: f64) -> f64 {
    let sys = Oscillator { w: 2.0 };
    let steps = (10.0 / h).round() as usize;
    let mut s = vec![1.0, 0.0];
    for k in 0..steps {
        s = rk4_step(&sys, k as f64 * h, &s, &[0.0], h);
    }
    let t = steps as f64 * h;
    let exact = [(2.0 * t).cos(), -2.0 * (2.0 * t).sin()];
    (s[0] - exact[0]).hypot(s[1] - exact[1])
}

#[test]
fn rk4_is_fourth_order_on_the_harmonic_oscillator() {
    let (e1, e2) = (oscillator_error(0.02), oscillator_error(0.01));
    assert!(e1 < 1e-6, "error at h = 0.02: {e1:e}");
    let order = (e1 / e2).log2();
    assert!((order - 4.0).abs() < 0.2, "observed order {order} ({e1:e} -> {e2:e})");
}

#[test]
fn rk4_conserves_the_energy_of_a_frictionless_pendulum() {
    let p = Pendulum { friction: 0.0, ..Pendulum::default() };
    // E = 1/2 m l^2 w^2 + m g l cos(theta) (theta = 0 upright).
    let energy =
        |s: &[f64]| 0.5 * p.mass * p.length * p.length * s[1] * s[1] + p.mass * p.gravity * p.length * s[0].cos();
    // A large swing through the bottom and back: 20 s at dt = 0.01.
    let mut s = vec![3.0, 0.0];
    let e0 = energy(&s);
    for k in 0..2000 {
        s = rk4_step(&p, k as f64 * 0.01, &s, &[0.0], 0.01);
    }
    assert!((energy(&s) - e0).abs() < 1e-6 * e0.abs(), "energy drift {}", energy(&s) - e0);
}

#[test]
fn step_saturates_the_action() {
    let p = Pendulum::default();
    let (_, applied) = step(&p, 0.0, &[0.1, 0.0], &[1e3]);
    assert_eq!(applied, vec![p.max_torque]);
    let (next, _) = step(&p, 0.0, &[0.1, 0.0], &[-1e3]);
    let (clipped, _) = step(&p, 0.0, &[0.1, 0.0], &[-p.max_torque]);
    assert_eq!(next, clipped);
}

#[test]
fn linearizations_match_the_hand_derived_jacobians() {
    let p = Pendulum::default();
    let l = linearize(&p);
    let ml2 = p.mass * p.length * p.length;
    let want_a = [0.0, 1.0, p.gravity / p.length, -p.friction / ml2];
    let want_b = [0.0, 1.0 / ml2];
    for (got, want) in l.a.iter().zip(&want_a).chain(l.b.iter().zip(&want_b)) {
        assert!((got - want).abs() < 1e-7, "{:?} {:?}", l.a, l.b);
    }
    // Cart-pole at the upright equilibrium (Barto et al.'s equations linearized by hand).
    let c = CartPole::default();
    let l = linearize(&c);
    let total = c.cart_mass + c.pole_mass;
    let denom = c.half_length * (4.0 / 3.0 - c.pole_mass / total);
    let (th_th, th_u) = (c.gravity / denom, -1.0 / (total * denom));
    let ml = c.pole_mass * c.half_length;
    let (x_th, x_u) = (-ml * th_th / total, 1.0 / total - ml * th_u / total);
    let want_a = [0.0, 1.0, 0.0, 0.0, 0.0, 0.0, x_th, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, th_th, 0.0];
    let want_b = [0.0, x_u, 0.0, th_u];
    for (got, want) in l.a.iter().zip(&want_a).chain(l.b.iter().zip(&want_b)) {
        assert!((got - want).abs() < 1e-6 * want.abs().max(1.0), "{:?} {:?}", l.a, l.b);
    }
    // The discretization is exactly one RK4 step of the linear system.
    let x = [0.05, -0.1, 0.02, 0.3];
    let u = [0.7];
    let (ad, bd) = (&l.ad, &l.bd);
    let discrete: Vec<f64> = (0..4).map(|i| (0..4).map(|j| ad[i * 4 + j] * x[j]).sum::<f64>() + bd[i] * u[0]).collect();
    struct Linear(Vec<f64>, Vec<f64>);
    let lin = Linear(l.a.clone(), l.b.clone());
    let mut s = x.to_vec();
    let h = c.dt();
    let f = |s: &[f64]| -> Vec<f64> {
        (0..4).map(|i| (0..4).map(|j| lin.0[i * 4 + j] * s[j]).sum::<f64>() + lin.1[i] * u[0]).collect()
    };
    let k1 = f(&s);
    let k2 = f(&s.iter().zip(&k1).map(|(a, b)| a + 0.5 * h * b).collect::<Vec<_>>());
    let k3 = f(&s.iter().zip(&k2).map(|(a, b)| a + 0.5 * h * b).collect::<Vec<_>>());
    let k4 = f(&s.iter().zip(&k3).map(|(a, b)| a + h * b).collect::<Vec<_>>());
    for i in 0..4 {
        s[i] += h / 6.0 * (k1[i] + 2.0 * k2[i] + 2.0 * k3[i] + k4[i]);
    }
    for (a, b) in s.iter().zip(&discrete) {
        assert!((a - b).abs() < 1e-14, "{s:?} {discrete:?}");
    }
}

#[test]
fn systems_are_consistent() {
    for name in SYSTEM_NAMES {
        let sys = system_by_name(name).unwrap();
        let sys = sys.as_ref();
        let (se, ae) = sys.equilibrium();
        let mut ds = vec![0.0; sys.state_dim()];
        sys.dynamics(0.0, &se, &ae, &mut ds);
        assert!(ds.iter().all(|v| v.abs() < 1e-12), "{name}: f(s_eq, a_eq) = {ds:?}");
        let (ib, sb) = (sys.initial_box(), sys.state_box());
        assert!(ib.iter().zip(&sb).all(|(i, s)| s.0 <= i.0 && i.1 <= s.1), "{name}: initial box not in state box");
        assert!(in_box(&se, &ib));
        assert!(sys.constraint_margins(&se).iter().all(|&m| m > 0.0), "{name}: equilibrium violates a constraint");
        assert_eq!(sys.constraint_names().len(), sys.constraint_margins(&se).len());
        assert_eq!(sys.stage_cost(&se, &ae), 0.0);
        let (q, r) = sys.lqr_weights();
        assert_eq!((q.len(), r.len()), (sys.state_dim().pow(2), sys.action_dim().pow(2)));
        assert!(quadratic(&r, &vec![1.0; sys.action_dim()]) > 0.0);
        assert!(ae.iter().zip(sys.action_bounds()).all(|(a, (lo, hi))| lo < *a && *a < hi));
        assert_eq!(sys.goal_error(&se), 0.0);
    }
    assert!(system_by_name("bicycle").is_none());
}
