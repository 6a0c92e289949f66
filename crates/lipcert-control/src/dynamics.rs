//! Continuous-time plants and their RK4 integration.
//!
//! A [`System`] is `ds/dt = f(t, s, a)` with the action held constant over each step of length
//! `dt` (zero-order hold), integrated by one classical Runge-Kutta step ([`rk4_step`]). Actions
//! are saturated to the actuator limits before they reach the plant ([`step`]).
//!
//! Every system also declares the boxes the rest of the crate works on:
//! - the *initial box*: where episodes start (training rollouts, evaluation);
//! - the *state box*: the operating region. Behaviour cloning samples it, and it is the input
//!   domain over which a controller's certified bounds are meant to hold. Rollouts report
//!   whether the states stayed inside it.
//!
//! and its safety constraints (margins `>= 0` when satisfied).

use serde::Serialize;

/// A closed interval per coordinate: `(lo, hi)`.
pub type Bounds = Vec<(f64, f64)>;

pub trait System: Send + Sync {
    /// Short name used on the command line (`pendulum`, `cartpole`, `quadrotor`, `acc`).
    fn name(&self) -> &'static str;
    fn state_names(&self) -> Vec<&'static str>;
    fn action_names(&self) -> Vec<&'static str>;
    fn state_dim(&self) -> usize {
        self.state_names().len()
    }
    fn action_dim(&self) -> usize {
        self.action_names().len()
    }
    /// `ds/dt = f(t, s, a)`, written to `ds`.
    fn dynamics(&self, t: f64, s: &[f64], a: &[f64], ds: &mut [f64]);
    /// The dynamics without exogenous inputs (used for the linearization). The default is the
    /// dynamics at t = 0.
    fn nominal_dynamics(&self, s: &[f64], a: &[f64], ds: &mut [f64]) {
        self.dynamics(0.0, s, a, ds)
    }
    /// Integration and control period in seconds.
    fn dt(&self) -> f64;
    /// Default episode length in steps.
    fn horizon(&self) -> usize;
    /// Actuator limits: every applied action is clipped into them.
    fn action_bounds(&self) -> Bounds;
    /// The equilibrium the controller regulates to: `(s_eq, a_eq)` with `f(s_eq, a_eq) = 0`.
    fn equilibrium(&self) -> (Vec<f64>, Vec<f64>);
    /// Where episodes start.
    fn initial_box(&self) -> Bounds;
    /// The operating region (training domain, domain of certified bounds). Contains the
    /// initial box.
    fn state_box(&self) -> Bounds;
    /// Human-readable safety constraints, one per margin of [`System::constraint_margins`].
    fn constraint_names(&self) -> Vec<String>;
    /// One margin per constraint: `>= 0` satisfied, `< 0` violated.
    fn constraint_margins(&self, s: &[f64]) -> Vec<f64>;
    /// LQR weights `(Q, R)`, row-major `n x n` and `m x m`. They also define the stage cost.
    fn lqr_weights(&self) -> (Vec<f64>, Vec<f64>);
    /// Closed-loop modes that are neutral by construction (eigenvalue 1 of the discrete
    /// closed loop), for example the lead car's speed in cruise control, which no action of
    /// the ego car changes.
    fn neutral_modes(&self) -> usize {
        0
    }
    /// Dimensionless distance to the goal: the largest deviation from the equilibrium in
    /// units of the initial box's half-widths.
    fn goal_error(&self, s: &[f64]) -> f64 {
        let (eq, _) = self.equilibrium();
        s.iter()
            .zip(&eq)
            .zip(self.initial_box())
            .map(|((x, e), (lo, hi))| (x - e).abs() / (0.5 * (hi - lo)))
            .fold(0.0, f64::max)
    }
    /// Stage cost `dt * ((s - s_eq)' Q (s - s_eq) + (a - a_eq)' R (a - a_eq))`; an episode's
    /// return is its sum (lower is better).
    fn stage_cost(&self, s: &[f64], a: &[f64]) -> f64 {
        let (se, ae) = self.equilibrium();
        let (q, r) = self.lqr_weights();
        let ds: Vec<f64> = s.iter().zip(&se).map(|(x, e)| x - e).collect();
        let da: Vec<f64> = a.iter().zip(&ae).map(|(x, e)| x - e).collect();
        self.dt() * (quadratic(&q, &ds) + quadratic(&r, &da))
    }
}

/// `x' M x` for a row-major square `M`.
pub fn quadratic(m: &[f64], x: &[f64]) -> f64 {
    let n = x.len();
    (0..n).map(|i| x[i] * (0..n).map(|j| m[i * n + j] * x[j]).sum::<f64>()).sum()
}

/// Clips `a` into `bounds` in place.
pub fn saturate(a: &mut [f64], bounds: &[(f64, f64)]) {
    for (v, &(lo, hi)) in a.iter_mut().zip(bounds) {
        *v = v.clamp(lo, hi);
    }
}

/// Whether every coordinate of `s` lies in `bounds`.
pub fn in_box(s: &[f64], bounds: &[(f64, f64)]) -> bool {
    s.iter().zip(bounds).all(|(&x, &(lo, hi))| x >= lo && x <= hi)
}

/// One classical Runge-Kutta step of length `dt` from time `t` with the action held constant.
pub fn rk4_step(sys: &dyn System, t: f64, s: &[f64], a: &[f64], dt: f64) -> Vec<f64> {
    let n = s.len();
    let mut k1 = vec![0.0; n];
    let mut k2 = vec![0.0; n];
    let mut k3 = vec![0.0; n];
    let mut k4 = vec![0.0; n];
    let shifted = |k: &[f64], h: f64| -> Vec<f64> { s.iter().zip(k).map(|(x, d)| x + h * d).collect() };
    sys.dynamics(t, s, a, &mut k1);
    sys.dynamics(t + 0.5 * dt, &shifted(&k1, 0.5 * dt), a, &mut k2);
    sys.dynamics(t + 0.5 * dt, &shifted(&k2, 0.5 * dt), a, &mut k3);
    sys.dynamics(t + dt, &shifted(&k3, dt), a, &mut k4);
    (0..n).map(|i| s[i] + dt / 6.0 * (k1[i] + 2.0 * k2[i] + 2.0 * k3[i] + k4[i])).collect()
}

/// One control step: saturates the action, integrates over `sys.dt()`. Returns the next state
/// and the applied action.
pub fn step(sys: &dyn System, t: f64, s: &[f64], action: &[f64]) -> (Vec<f64>, Vec<f64>) {
    let mut a = action.to_vec();
    saturate(&mut a, &sys.action_bounds());
    (rk4_step(sys, t, s, &a, sys.dt()), a)
}

/// Names of the built-in systems, as accepted by [`system_by_name`].
pub const SYSTEM_NAMES: [&str; 4] = ["pendulum", "cartpole", "quadrotor", "acc"];

/// A built-in system with its default parameters.
pub fn system_by_name(name: &str) -> Option<Box<dyn System>> {
    match name {
        "pendulum" => Some(Box::new(Pendulum::default())),
        "cartpole" => Some(Box::new(CartPole::default())),
        "quadrotor" => Some(Box::new(Quadrotor::default())),
        "acc" => Some(Box::new(Acc::default())),
        _ => None,
    }
}

/// Everything a system declares, for reports and JSON.
#[derive(Clone, Debug, Serialize)]
pub struct SystemInfo {
    pub name: String,
    pub states: Vec<String>,
    pub actions: Vec<String>,
    pub dt: f64,
    pub horizon: usize,
    pub action_bounds: Bounds,
    pub equilibrium_state: Vec<f64>,
    pub equilibrium_action: Vec<f64>,
    pub initial_box: Bounds,
    pub state_box: Bounds,
    pub constraints: Vec<String>,
}

pub fn system_info(sys: &dyn System) -> SystemInfo {
    let (se, ae) = sys.equilibrium();
    SystemInfo {
        name: sys.name().into(),
        states: sys.state_names().iter().map(|s| s.to_string()).collect(),
        actions: sys.action_names().iter().map(|s| s.to_string()).collect(),
        dt: sys.dt(),
        horizon: sys.horizon(),
        action_bounds: sys.action_bounds(),
        equilibrium_state: se,
        equilibrium_action: ae,
        initial_box: sys.initial_box(),
        state_box: sys.state_box(),
        constraints: sys.constraint_names(),
    }
}

fn diagonal(d: &[f64]) -> Vec<f64> {
    let n = d.len();
    let mut m = vec![0.0; n * n];
    for (i, v) in d.iter().enumerate() {
        m[i * n + i] = *v;
    }
    m
}

/// Inverted pendulum: a point mass on a massless rod with viscous friction at the pivot.
/// State (theta [rad, 0 = upright], theta_dot [rad/s]); action: torque [N m].
/// `theta'' = (g / l) sin(theta) - b theta' / (m l^2) + u / (m l^2)`.
#[derive(Clone, Debug)]
pub struct Pendulum {
    pub mass: f64,
    pub length: f64,
    pub friction: f64,
    pub gravity: f64,
    pub max_torque: f64,
    /// Safety limit on |theta|.
    pub max_angle: f64,
}

impl Default for Pendulum {
    fn default() -> Self {
        Pendulum { mass: 1.0, length: 1.0, friction: 0.1, gravity: 9.81, max_torque: 10.0, max_angle: 1.0 }
    }
}

impl System for Pendulum {
    fn name(&self) -> &'static str {
        "pendulum"
    }
    fn state_names(&self) -> Vec<&'static str> {
        vec!["theta", "theta_dot"]
    }
    fn action_names(&self) -> Vec<&'static str> {
        vec!["torque"]
    }
    fn dynamics(&self, _t: f64, s: &[f64], a: &[f64], ds: &mut [f64]) {
        let ml2 = self.mass * self.length * self.length;
        ds[0] = s[1];
        ds[1] = self.gravity / self.length * s[0].sin() - self.friction * s[1] / ml2 + a[0] / ml2;
    }
    fn dt(&self) -> f64 {
        0.05
    }
    fn horizon(&self) -> usize {
        200
    }
    fn action_bounds(&self) -> Bounds {
        vec![(-self.max_torque, self.max_torque)]
    }
    fn equilibrium(&self) -> (Vec<f64>, Vec<f64>) {
        (vec![0.0, 0.0], vec![0.0])
    }
    fn initial_box(&self) -> Bounds {
        vec![(-0.6, 0.6), (-1.0, 1.0)]
    }
    fn state_box(&self) -> Bounds {
        vec![(-1.2, 1.2), (-3.0, 3.0)]
    }
    fn constraint_names(&self) -> Vec<String> {
        vec![format!("|theta| <= {}", self.max_angle)]
    }
    fn constraint_margins(&self, s: &[f64]) -> Vec<f64> {
        vec![self.max_angle - s[0].abs()]
    }
    fn lqr_weights(&self) -> (Vec<f64>, Vec<f64>) {
        (diagonal(&[10.0, 1.0]), diagonal(&[0.1]))
    }
}

/// Cart-pole with the full nonlinear equations of Barto, Sutton and Anderson (1983) without
/// friction (the equations of the classic control benchmark). State (x [m], x_dot [m/s],
/// theta [rad, 0 = upright], theta_dot [rad/s]); action: force on the cart [N].
#[derive(Clone, Debug)]
pub struct CartPole {
    pub cart_mass: f64,
    pub pole_mass: f64,
    /// Half the pole's length.
    pub half_length: f64,
    pub gravity: f64,
    pub max_force: f64,
    /// Safety limits on |x| and |theta|.
    pub max_position: f64,
    pub max_angle: f64,
}

impl Default for CartPole {
    fn default() -> Self {
        CartPole {
            cart_mass: 1.0,
            pole_mass: 0.1,
            half_length: 0.5,
            gravity: 9.8,
            max_force: 10.0,
            max_position: 2.4,
            max_angle: 12f64.to_radians(),
        }
    }
}

impl System for CartPole {
    fn name(&self) -> &'static str {
        "cartpole"
    }
    fn state_names(&self) -> Vec<&'static str> {
        vec!["x", "x_dot", "theta", "theta_dot"]
    }
    fn action_names(&self) -> Vec<&'static str> {
        vec!["force"]
    }
    fn dynamics(&self, _t: f64, s: &[f64], a: &[f64], ds: &mut [f64]) {
        let total = self.cart_mass + self.pole_mass;
        let ml = self.pole_mass * self.half_length;
        let (sin, cos) = s[2].sin_cos();
        let temp = (a[0] + ml * s[3] * s[3] * sin) / total;
        let theta_acc =
            (self.gravity * sin - cos * temp) / (self.half_length * (4.0 / 3.0 - self.pole_mass * cos * cos / total));
        ds[0] = s[1];
        ds[1] = temp - ml * theta_acc * cos / total;
        ds[2] = s[3];
        ds[3] = theta_acc;
    }
    fn dt(&self) -> f64 {
        0.02
    }
    fn horizon(&self) -> usize {
        500
    }
    fn action_bounds(&self) -> Bounds {
        vec![(-self.max_force, self.max_force)]
    }
    fn equilibrium(&self) -> (Vec<f64>, Vec<f64>) {
        (vec![0.0; 4], vec![0.0])
    }
    fn initial_box(&self) -> Bounds {
        vec![(-0.5, 0.5), (-0.5, 0.5), (-0.1, 0.1), (-0.3, 0.3)]
    }
    fn state_box(&self) -> Bounds {
        vec![(-2.4, 2.4), (-2.0, 2.0), (-0.25, 0.25), (-1.5, 1.5)]
    }
    fn constraint_names(&self) -> Vec<String> {
        vec![format!("|x| <= {}", self.max_position), format!("|theta| <= {:.4} (12 deg)", self.max_angle)]
    }
    fn constraint_margins(&self, s: &[f64]) -> Vec<f64> {
        vec![self.max_position - s[0].abs(), self.max_angle - s[2].abs()]
    }
    fn lqr_weights(&self) -> (Vec<f64>, Vec<f64>) {
        (diagonal(&[1.0, 1.0, 10.0, 1.0]), diagonal(&[0.1]))
    }
}

/// Planar quadrotor (the 2-D model of Tedrake's Underactuated Robotics). State (x, z [m,
/// relative to the hover point], phi [rad], x_dot, z_dot [m/s], phi_dot [rad/s]); actions: the
/// two rotor thrusts relative to hover [N] (thrust = m g / 2 + action, in [0, m g]).
/// `x'' = -(T1 + T2) sin(phi) / m, z'' = (T1 + T2) cos(phi) / m - g, phi'' = L (T2 - T1) / I`.
#[derive(Clone, Debug)]
pub struct Quadrotor {
    pub mass: f64,
    /// Distance from the centre to each rotor.
    pub arm: f64,
    pub inertia: f64,
    pub gravity: f64,
    /// Safety limits: the ground (z >= min_height) and |phi|.
    pub min_height: f64,
    pub max_tilt: f64,
}

impl Default for Quadrotor {
    fn default() -> Self {
        Quadrotor { mass: 0.486, arm: 0.25, inertia: 0.00383, gravity: 9.81, min_height: -1.5, max_tilt: 1.0 }
    }
}

impl Quadrotor {
    pub fn hover_thrust(&self) -> f64 {
        0.5 * self.mass * self.gravity
    }
}

impl System for Quadrotor {
    fn name(&self) -> &'static str {
        "quadrotor"
    }
    fn state_names(&self) -> Vec<&'static str> {
        vec!["x", "z", "phi", "x_dot", "z_dot", "phi_dot"]
    }
    fn action_names(&self) -> Vec<&'static str> {
        vec!["thrust1", "thrust2"]
    }
    fn dynamics(&self, _t: f64, s: &[f64], a: &[f64], ds: &mut [f64]) {
        let hover = self.hover_thrust();
        let (t1, t2) = (hover + a[0], hover + a[1]);
        let (sin, cos) = s[2].sin_cos();
        ds[0] = s[3];
        ds[1] = s[4];
        ds[2] = s[5];
        ds[3] = -(t1 + t2) * sin / self.mass;
        ds[4] = (t1 + t2) * cos / self.mass - self.gravity;
        ds[5] = self.arm * (t2 - t1) / self.inertia;
    }
    fn dt(&self) -> f64 {
        0.02
    }
    fn horizon(&self) -> usize {
        400
    }
    fn action_bounds(&self) -> Bounds {
        let h = self.hover_thrust();
        vec![(-h, h), (-h, h)]
    }
    fn equilibrium(&self) -> (Vec<f64>, Vec<f64>) {
        (vec![0.0; 6], vec![0.0; 2])
    }
    fn initial_box(&self) -> Bounds {
        vec![(-1.0, 1.0), (-1.0, 1.0), (-0.3, 0.3), (-0.5, 0.5), (-0.5, 0.5), (-0.5, 0.5)]
    }
    fn state_box(&self) -> Bounds {
        vec![(-2.0, 2.0), (-2.0, 2.0), (-1.0, 1.0), (-2.5, 2.5), (-2.5, 2.5), (-6.0, 6.0)]
    }
    fn constraint_names(&self) -> Vec<String> {
        vec![format!("z >= {}", self.min_height), format!("|phi| <= {}", self.max_tilt)]
    }
    fn constraint_margins(&self, s: &[f64]) -> Vec<f64> {
        vec![s[1] - self.min_height, self.max_tilt - s[2].abs()]
    }
    fn lqr_weights(&self) -> (Vec<f64>, Vec<f64>) {
        (diagonal(&[1.0, 1.0, 1.0, 0.5, 0.5, 0.1]), diagonal(&[1.0, 1.0]))
    }
}

/// What the lead car does in adaptive cruise control.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum LeadProfile {
    /// Constant speed (whatever the initial state implies).
    Constant,
    /// Brakes at `decel` [m/s^2] from `start` [s] for `duration` [s], then keeps its speed.
    Brake { start: f64, duration: f64, decel: f64 },
}

/// Adaptive cruise control: the ego car follows a lead car. State (gap [m], v_rel = v_lead -
/// v_ego [m/s], v_ego [m/s]); action: the ego car's acceleration [m/s^2].
/// `gap' = v_rel, v_rel' = a_lead(t) - a, v_ego' = a`. Neither car drives backwards.
///
/// The controller keeps the time-headway gap `standstill + headway * v_ego` at zero relative
/// speed, whatever the lead car's speed (that speed is a neutral mode: no action changes it).
/// The safety constraint is `gap >= safe_standstill + safe_headway * v_ego`.
#[derive(Clone, Debug)]
pub struct Acc {
    pub standstill: f64,
    pub headway: f64,
    pub safe_standstill: f64,
    pub safe_headway: f64,
    pub max_accel: f64,
    pub max_decel: f64,
    /// Lead speed of the nominal equilibrium (the centre of the boxes).
    pub nominal_speed: f64,
    pub lead: LeadProfile,
}

impl Default for Acc {
    fn default() -> Self {
        Acc {
            standstill: 10.0,
            headway: 1.5,
            safe_standstill: 5.0,
            safe_headway: 1.0,
            max_accel: 2.5,
            max_decel: 5.0,
            nominal_speed: 20.0,
            lead: LeadProfile::Constant,
        }
    }
}

impl Acc {
    fn lead_accel(&self, t: f64) -> f64 {
        match self.lead {
            LeadProfile::Constant => 0.0,
            LeadProfile::Brake { start, duration, decel } => {
                if t >= start && t < start + duration {
                    -decel.abs()
                } else {
                    0.0
                }
            }
        }
    }

    fn derivative(&self, a_lead: f64, s: &[f64], a: &[f64], ds: &mut [f64]) {
        let v_lead = s[1] + s[2];
        let a_lead = if v_lead <= 0.0 { a_lead.max(0.0) } else { a_lead };
        let a_ego = if s[2] <= 0.0 { a[0].max(0.0) } else { a[0] };
        ds[0] = s[1];
        ds[1] = a_lead - a_ego;
        ds[2] = a_ego;
    }

    /// The desired gap at ego speed `v`.
    pub fn desired_gap(&self, v: f64) -> f64 {
        self.standstill + self.headway * v
    }
}

impl System for Acc {
    fn name(&self) -> &'static str {
        "acc"
    }
    fn state_names(&self) -> Vec<&'static str> {
        vec!["gap", "v_rel", "v_ego"]
    }
    fn action_names(&self) -> Vec<&'static str> {
        vec!["accel"]
    }
    fn dynamics(&self, t: f64, s: &[f64], a: &[f64], ds: &mut [f64]) {
        self.derivative(self.lead_accel(t), s, a, ds)
    }
    fn nominal_dynamics(&self, s: &[f64], a: &[f64], ds: &mut [f64]) {
        self.derivative(0.0, s, a, ds)
    }
    fn dt(&self) -> f64 {
        0.1
    }
    fn horizon(&self) -> usize {
        300
    }
    fn action_bounds(&self) -> Bounds {
        vec![(-self.max_decel, self.max_accel)]
    }
    fn equilibrium(&self) -> (Vec<f64>, Vec<f64>) {
        let v = self.nominal_speed;
        (vec![self.desired_gap(v), 0.0, v], vec![0.0])
    }
    fn initial_box(&self) -> Bounds {
        let v = self.nominal_speed;
        let d = self.desired_gap(v);
        vec![(d - 10.0, d + 15.0), (-4.0, 4.0), (v - 4.0, v + 4.0)]
    }
    fn state_box(&self) -> Bounds {
        let v = self.nominal_speed;
        let d = self.desired_gap(v);
        vec![(d - 25.0, d + 30.0), (-8.0, 8.0), (v - 12.0, v + 12.0)]
    }
    fn constraint_names(&self) -> Vec<String> {
        vec![format!("gap >= {} + {} * v_ego", self.safe_standstill, self.safe_headway)]
    }
    fn constraint_margins(&self, s: &[f64]) -> Vec<f64> {
        vec![s[0] - self.safe_standstill - self.safe_headway * s[2]]
    }
    /// Q penalizes the gap error `gap - standstill - headway * v_ego` and the relative speed
    /// only: `Q = C' diag(q) C`.
    fn lqr_weights(&self) -> (Vec<f64>, Vec<f64>) {
        let c = [[1.0, 0.0, -self.headway], [0.0, 1.0, 0.0]];
        let q = [0.1, 1.0];
        let mut m = vec![0.0; 9];
        for i in 0..3 {
            for j in 0..3 {
                m[i * 3 + j] = (0..2).map(|k| q[k] * c[k][i] * c[k][j]).sum();
            }
        }
        (m, diagonal(&[1.0]))
    }
    fn neutral_modes(&self) -> usize {
        1
    }
    /// Gap error and relative speed in units of the initial box's half-widths.
    fn goal_error(&self, s: &[f64]) -> f64 {
        let b = self.initial_box();
        let gap_error = s[0] - self.desired_gap(s[2]);
        (gap_error.abs() / (0.5 * (b[0].1 - b[0].0))).max(s[1].abs() / (0.5 * (b[1].1 - b[1].0)))
    }
}
