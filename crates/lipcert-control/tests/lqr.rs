//! The LQR expert of every system: a solution of the Riccati equation, a stable closed loop,
//! and stabilization of the nonlinear plant from the initial box.

use lipcert_control::rollout::initial_corners;
use lipcert_control::*;

fn matmul(a: &[f64], b: &[f64], n: usize, k: usize, m: usize) -> Vec<f64> {
    let mut c = vec![0.0; n * m];
    for i in 0..n {
        for l in 0..k {
            for j in 0..m {
                c[i * m + j] += a[i * k + l] * b[l * m + j];
            }
        }
    }
    c
}

fn transpose(a: &[f64], n: usize, m: usize) -> Vec<f64> {
    (0..m * n).map(|idx| a[(idx % n) * m + idx / n]).collect()
}

#[test]
fn the_gain_solves_the_discrete_riccati_equation() {
    for name in SYSTEM_NAMES {
        let sys = system_by_name(name).unwrap();
        let l = lqr(sys.as_ref()).unwrap();
        let (n, m) = (sys.state_dim(), sys.action_dim());
        let (q, r) = sys.lqr_weights();
        let (a, b, p, k) = (&l.linearization.ad, &l.linearization.bd, &l.p, &l.k);
        // P = Q + A'PA - A'PB K with K = (R + B'PB)^-1 B'PA.
        let (at, bt) = (transpose(a, n, n), transpose(b, n, m));
        let apa = matmul(&at, &matmul(p, a, n, n, n), n, n, n);
        let apb = matmul(&at, &matmul(p, b, n, n, m), n, n, m);
        let rhs: Vec<f64> = (0..n * n).map(|i| q[i] + apa[i] - matmul(&apb, k, n, m, n)[i]).collect();
        let scale = p.iter().fold(1.0f64, |s, v| s.max(v.abs()));
        for (x, y) in p.iter().zip(&rhs) {
            assert!((x - y).abs() < 1e-8 * scale, "{name}: Riccati residual {}", x - y);
        }
        let s: Vec<f64> = matmul(&bt, &matmul(p, b, n, n, m), m, n, m).iter().zip(&r).map(|(x, y)| x + y).collect();
        let sk = matmul(&s, k, m, m, n);
        let bpa = matmul(&bt, &matmul(p, a, n, n, n), m, n, n);
        for (x, y) in sk.iter().zip(&bpa) {
            assert!((x - y).abs() < 1e-8 * scale, "{name}: gain equation residual {}", x - y);
        }
        assert!(l.spectral_radius < 1.0, "{name}: spectral radius {}", l.spectral_radius);
    }
}

#[test]
fn acc_expert_keeps_any_headway_equilibrium() {
    // The neutral mode: every (standstill + headway v, 0, v) is an equilibrium of the closed
    // loop, whatever the lead speed v.
    let acc = Acc::default();
    let expert = LqrExpert::new(&acc).unwrap();
    assert!((expert.lqr.closed_loop_moduli[0] - 1.0).abs() < 1e-9);
    for v in [12.0, 20.0, 27.0] {
        let a = expert.action(&[acc.desired_gap(v), 0.0, v]);
        assert!(a[0].abs() < 1e-9, "v = {v}: action {a:?}");
    }
}

#[test]
fn lqr_experts_stabilize_every_system_from_the_initial_box() {
    for name in SYSTEM_NAMES {
        let sys = system_by_name(name).unwrap();
        let sys = sys.as_ref();
        let expert = LqrExpert::new(sys).unwrap();
        let mut starts = initial_corners(sys);
        starts.extend(sample_initial_states(sys, 50, 11));
        let trajs = rollout(sys, &expert, &starts, sys.horizon()).unwrap();
        for (s0, t) in starts.iter().zip(&trajs) {
            let summary = summarize(sys, t);
            assert_eq!(
                summary.violations, 0,
                "{name} from {s0:?}: constraint violated at {:?}",
                summary.first_violation
            );
            assert!(summary.in_box, "{name} from {s0:?}: left the state box");
            assert!(summary.success, "{name} from {s0:?}: {summary:?}");
            // Contraction: the distance to the goal shrinks by 100x over the horizon.
            let (e0, e1) = (sys.goal_error(s0), summary.final_goal_error);
            assert!(e1 <= 0.01 * e0, "{name} from {s0:?}: goal error {e0} -> {e1}");
        }
    }
}

#[test]
fn acc_expert_is_safe_when_the_lead_car_brakes() {
    let acc = Acc { lead: LeadProfile::Brake { start: 5.0, duration: 3.0, decel: 4.0 }, ..Acc::default() };
    let expert = LqrExpert::new(&acc).unwrap();
    let mut starts = initial_corners(&acc);
    starts.extend(sample_initial_states(&acc, 50, 3));
    let e = evaluate(&acc, &expert, &starts, acc.horizon()).unwrap();
    assert_eq!(e.violations, 0);
    assert_eq!(e.success_rate, 1.0);
}
