//! lipcert-control: neural controllers in closed loop.
//!
//! - [`dynamics`]: continuous-time plants (inverted pendulum, cart-pole, planar quadrotor,
//!   adaptive cruise control) integrated with RK4, their actuator limits, boxes and
//!   constraints;
//! - [`lqr`]: linearization at the equilibrium and a discrete LQR expert per system;
//! - [`train`]: behaviour cloning of the expert into an MLP policy (Adam, minibatches);
//! - [`rollout`]: closed-loop episodes of any policy, and the comparison of an original and a
//!   pruned controller from the same initial states (action and trajectory deviations,
//!   return, constraint violations, whether the states stayed in the certified box).
//!
//! Policies are ordinary [`lipcert_core::Network`]s with input shape `[1, state_dim]` and
//! output shape `[1, action_dim]`, so they export to ONNX and every lipcert analysis applies.

pub mod dynamics;
pub mod error;
pub mod lqr;
pub mod rollout;
pub mod train;

pub use dynamics::{
    in_box, rk4_step, saturate, step, system_by_name, system_info, Acc, Bounds, CartPole, LeadProfile, Pendulum,
    Quadrotor, System, SystemInfo, SYSTEM_NAMES,
};
pub use error::ControlError;
pub use lqr::{linearize, lqr, Linearization, Lqr, LqrExpert};
pub use rollout::{
    check_policy, compare, evaluate, initial_corners, rollout, sample_initial_states, summarize, CompareOptions,
    Comparison, ComparisonTraces, EpisodeDeviation, EpisodeSummary, Evaluation, Norm, Policy, Trajectory,
    SUCCESS_TOLERANCE,
};
pub use train::{train_policy, TrainConfig, TrainReport};
