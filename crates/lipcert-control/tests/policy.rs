//! Behaviour cloning, closed-loop rollouts of the trained policies, the original-against-
//! pruned comparison and the ONNX round trip.

use lipcert_control::rollout::initial_corners;
use lipcert_control::*;
use lipcert_core::{Activation, Network, Op};
use lipcert_io::{export_bytes, import_bytes, ExportPrecision};
use std::sync::OnceLock;

/// A shorter schedule than the default (the tests' time budget), still enough to clone the
/// expert.
fn config(activation: Activation, seed: u64) -> TrainConfig {
    let mut cfg = TrainConfig::new(vec![32, 32], activation, seed);
    cfg.epochs = 40;
    cfg.dagger_epochs = 15;
    cfg
}

fn trained(name: &'static str) -> &'static TrainReport {
    static PENDULUM: OnceLock<TrainReport> = OnceLock::new();
    static CARTPOLE: OnceLock<TrainReport> = OnceLock::new();
    let cell = match name {
        "pendulum" => &PENDULUM,
        "cartpole" => &CARTPOLE,
        _ => unreachable!(),
    };
    cell.get_or_init(|| train_policy(system_by_name(name).unwrap().as_ref(), &config(Activation::Relu, 5)).unwrap())
}

fn starts(sys: &dyn System) -> Vec<Vec<f64>> {
    let mut s = initial_corners(sys);
    s.extend(sample_initial_states(sys, 40, 21));
    s
}

#[test]
fn relu_policies_clone_the_expert_and_stabilize_pendulum_and_cartpole() {
    for name in ["pendulum", "cartpole"] {
        let sys = system_by_name(name).unwrap();
        let sys = sys.as_ref();
        let report = trained(name);
        assert!(report.final_loss < 1e-4, "{name}: final loss {}", report.final_loss);
        let h = &report.loss_history;
        assert!(h.last().unwrap() < &(h[0] * 1e-2), "{name}: loss did not fall: {h:?}");
        // A plain MLP: Dense, Relu, Dense, Relu, Dense on [1, n] -> [1, m].
        let net = &report.network;
        assert_eq!((net.input_shape(), net.output_shape()), (&[1, sys.state_dim()][..], &[1, sys.action_dim()][..]));
        let kinds: Vec<&str> = net.nodes.iter().map(|n| n.op.kind()).collect();
        assert_eq!(kinds, ["Dense", "Relu", "Dense", "Relu", "Dense"]);
        let s = starts(sys);
        let e = evaluate(sys, net, &s, sys.horizon()).unwrap();
        assert_eq!(e.violations, 0, "{name}: {:?}", e.per_episode.iter().find(|p| p.violations > 0));
        assert_eq!(e.success_rate, 1.0, "{name}: {:?}", e.per_episode.iter().find(|p| !p.success));
        assert!(e.all_in_box, "{name}");
        let expert = LqrExpert::new(sys).unwrap();
        let x = evaluate(sys, &expert, &s, sys.horizon()).unwrap();
        assert!(e.mean_cost < 1.01 * x.mean_cost, "{name}: policy cost {} vs expert {}", e.mean_cost, x.mean_cost);
    }
}

#[test]
fn tanh_policy_learns_the_pendulum() {
    let sys = Pendulum::default();
    let mut cfg = config(Activation::Tanh, 2);
    cfg.hidden = vec![16, 16];
    cfg.epochs = 25;
    cfg.dagger_rounds = 1;
    let report = train_policy(&sys, &cfg).unwrap();
    assert!(report.final_loss < 1e-3, "final loss {}", report.final_loss);
    assert!(report.network.nodes.iter().any(|n| n.op == Op::Activation(Activation::Tanh)));
    let e = evaluate(&sys, &report.network, &starts(&sys), sys.horizon()).unwrap();
    assert_eq!(e.success_rate, 1.0);
}

#[test]
fn training_is_deterministic_given_the_seed() {
    let sys = Quadrotor::default();
    let mut cfg = TrainConfig::new(vec![8], Activation::Relu, 9);
    (cfg.uniform_samples, cfg.expert_episodes, cfg.dagger_episodes, cfg.epochs, cfg.dagger_epochs) = (300, 4, 4, 3, 2);
    let a = train_policy(&sys, &cfg).unwrap();
    let b = train_policy(&sys, &cfg).unwrap();
    assert_eq!(a.network, b.network);
    assert_eq!(a.loss_history, b.loss_history);
    cfg.seed = 10;
    assert_ne!(train_policy(&sys, &cfg).unwrap().network, a.network);
}

#[test]
fn a_policy_compared_with_itself_deviates_nowhere() {
    let sys = CartPole::default();
    let net = &trained("cartpole").network;
    let s = sample_initial_states(&sys, 10, 4);
    let opts = CompareOptions { bound: Some(0.0), keep_traces: 2, ..CompareOptions::new(sys.horizon()) };
    let c = compare(&sys, net, net, &s, &opts).unwrap();
    assert_eq!(c.max_action_dev, 0.0);
    assert_eq!(c.max_closed_loop_action_dev, 0.0);
    assert_eq!(c.max_state_dev, 0.0);
    assert_eq!(c.mean_cost_difference, 0.0);
    assert_eq!(c.bound_exceeded, 0);
    assert_eq!(c.states_checked, 2 * 10 * sys.horizon());
    assert_eq!(c.original.success_rate, 1.0);
    assert_eq!(c.traces.len(), 2);
    assert!(c.traces[0].action_dev.iter().all(|&d| d == 0.0));
    assert_eq!(c.traces[0].original.states.len(), sys.horizon() + 1);
}

/// The network with `delta` added to the output bias of action 0.
fn shifted(net: &Network, delta: f64) -> Network {
    let mut out = net.clone();
    let last = out.nodes.iter_mut().rev().find_map(|n| if let Op::Dense(d) = &mut n.op { Some(d) } else { None });
    last.unwrap().bias[0] += delta;
    out
}

#[test]
fn comparison_measures_a_known_deviation_and_checks_the_bound() {
    let sys = Pendulum::default();
    let net = &trained("pendulum").network;
    let other = shifted(net, 0.05);
    let s = sample_initial_states(&sys, 8, 5);
    // Pointwise deviation is exactly the shift at every state.
    let c = compare(&sys, net, &other, &s, &CompareOptions { bound: Some(0.06), ..CompareOptions::new(100) }).unwrap();
    assert!((c.max_action_dev - 0.05).abs() < 1e-12, "{}", c.max_action_dev);
    assert_eq!(c.bound_exceeded, 0);
    assert!(c.max_state_dev > 0.0 && c.max_state_dev < 0.1, "{}", c.max_state_dev);
    assert!(c.max_closed_loop_action_dev >= 0.05 - 1e-12);
    // A bound below the true deviation is caught at every checked state.
    let c = compare(&sys, net, &other, &s, &CompareOptions { bound: Some(0.04), ..CompareOptions::new(100) }).unwrap();
    assert_eq!(c.bound_exceeded, c.states_checked);
    assert!(c.states_checked > 0);
    // A pruned policy of the wrong size is refused.
    let quad = Quadrotor::default();
    let err = compare(&quad, net, net, &sample_initial_states(&quad, 1, 0), &CompareOptions::new(5)).unwrap_err();
    assert!(err.0.contains("quadrotor has 6 states"), "{err}");
}

#[test]
fn onnx_round_trip_keeps_the_policy() {
    let sys = CartPole::default();
    let net = &trained("cartpole").network;
    let x: Vec<f64> = sample_initial_states(&sys, 64, 8).concat();
    let y = net.forward(&x, 64).unwrap();
    let f64_net = import_bytes(&export_bytes(net, ExportPrecision::F64)).unwrap().network;
    assert_eq!(f64_net.forward(&x, 64).unwrap(), y, "f64 export is exact");
    let f32_net = import_bytes(&export_bytes(net, ExportPrecision::F32)).unwrap().network;
    let y32 = f32_net.forward(&x, 64).unwrap();
    let worst = y.iter().zip(&y32).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
    assert!(worst < 1e-4, "f32 export deviates by {worst}");
    // The same closed loop.
    let s = sample_initial_states(&sys, 5, 1);
    let c = compare(&sys, net, &f64_net, &s, &CompareOptions::new(sys.horizon())).unwrap();
    assert_eq!(c.max_state_dev, 0.0);
    let c = compare(&sys, net, &f32_net, &s, &CompareOptions::new(sys.horizon())).unwrap();
    assert!(c.max_state_dev < 1e-3 && c.pruned.success_rate == 1.0, "{}", c.max_state_dev);
}
