//! Behaviour cloning of the LQR expert into an MLP policy.
//!
//! The data set holds states labelled with the expert's (saturated) action:
//! - states drawn uniformly from the state box, so the policy is accurate on the whole
//!   domain its certified bounds are about;
//! - states along expert trajectories from the initial box (evenly spaced in time), each
//!   with a perturbed copy;
//! - DAgger rounds: states visited by the current policy in closed loop, labelled by the
//!   expert, so the policy also learns to recover from its own mistakes.
//!
//! States outside the state box are dropped. The network is trained in normalized
//! coordinates (states and actions scaled to [-1, 1] by the state box and the action
//! limits) with the mean squared error, Adam and shuffled minibatches, and a cosine learning
//! rate schedule. The normalization is then folded exactly into the first and the last
//! dense layers, so the policy is a plain `Dense, activation, ..., Dense` network on physical
//! states and actions. Everything is deterministic given the seed.

use crate::dynamics::{in_box, System};
use crate::error::ControlError;
use crate::lqr::LqrExpert;
use crate::rollout::{rollout, sample_initial_states, Policy};
use lipcert_core::{Activation, Dense, Network, NetworkBuilder, Op, Rng};
use serde::Serialize;

#[derive(Clone, Debug)]
pub struct TrainConfig {
    /// Hidden layer widths.
    pub hidden: Vec<usize>,
    /// Activation after every hidden layer (the output layer is linear).
    pub activation: Activation,
    pub seed: u64,
    /// States drawn uniformly from the state box.
    pub uniform_samples: usize,
    /// Expert rollouts from the initial box, and the states kept from each.
    pub expert_episodes: usize,
    pub states_per_episode: usize,
    /// Standard deviation of the perturbed copies, as a fraction of the state box's
    /// half-widths.
    pub perturbation: f64,
    /// DAgger rounds after the first training round, with the policy rollouts of each.
    pub dagger_rounds: usize,
    pub dagger_episodes: usize,
    /// Epochs of the first round and of each DAgger round.
    pub epochs: usize,
    pub dagger_epochs: usize,
    pub batch_size: usize,
    /// Adam's step size decays from `learning_rate` to `final_learning_rate` (cosine, over
    /// all epochs).
    pub learning_rate: f64,
    pub final_learning_rate: f64,
}

impl TrainConfig {
    pub fn new(hidden: Vec<usize>, activation: Activation, seed: u64) -> Self {
        TrainConfig {
            hidden,
            activation,
            seed,
            uniform_samples: 4000,
            expert_episodes: 64,
            states_per_episode: 40,
            perturbation: 0.02,
            dagger_rounds: 2,
            dagger_episodes: 32,
            epochs: 120,
            dagger_epochs: 40,
            batch_size: 64,
            learning_rate: 3e-3,
            final_learning_rate: 5e-5,
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct TrainReport {
    #[serde(skip)]
    pub network: Network,
    /// Mean squared error over the final data set, in normalized action units (actions
    /// scaled to [-1, 1] by the actuator limits).
    pub final_loss: f64,
    /// Root mean squared error and largest absolute error in physical action units.
    pub final_rmse: f64,
    pub max_abs_error: f64,
    /// Mean minibatch loss of every epoch.
    pub loss_history: Vec<f64>,
    pub dataset_size: usize,
    pub updates: usize,
}

/// Trains a policy by behaviour cloning of the system's LQR expert.
pub fn train_policy(sys: &dyn System, cfg: &TrainConfig) -> Result<TrainReport, ControlError> {
    let expert = LqrExpert::new(sys)?;
    train_policy_from(sys, &expert, cfg)
}

/// Scales between physical and normalized coordinates: `x_n = (x - centre) / half`.
struct Scaling {
    centre: Vec<f64>,
    half: Vec<f64>,
}

impl Scaling {
    fn new(bounds: &[(f64, f64)]) -> Self {
        Scaling {
            centre: bounds.iter().map(|(lo, hi)| 0.5 * (lo + hi)).collect(),
            half: bounds.iter().map(|(lo, hi)| (0.5 * (hi - lo)).max(1e-12)).collect(),
        }
    }
    fn normalize(&self, x: &[f64]) -> Vec<f64> {
        x.chunks_exact(self.centre.len())
            .flat_map(|r| r.iter().zip(&self.centre).zip(&self.half).map(|((v, c), h)| (v - c) / h))
            .collect()
    }
}

struct Dataset {
    /// Normalized states and actions, row-major.
    x: Vec<f64>,
    y: Vec<f64>,
    /// Physical actions.
    labels: Vec<f64>,
    len: usize,
}

impl Dataset {
    fn add(&mut self, states: &[Vec<f64>], expert: &LqrExpert, sx: &Scaling, sy: &Scaling) {
        for s in states {
            let a = expert.action(s);
            self.x.extend(sx.normalize(s));
            self.y.extend(sy.normalize(&a));
            self.labels.extend(a);
            self.len += 1;
        }
    }

    /// The states in physical coordinates.
    fn x_physical(&self, sx: &Scaling) -> Vec<f64> {
        let n = sx.centre.len();
        self.x
            .chunks_exact(n)
            .flat_map(|r| r.iter().zip(&sx.centre).zip(&sx.half).map(|((v, c), h)| v * h + c))
            .collect()
    }
}

fn init_mlp(rng: &mut Rng, widths: &[usize], activation: Activation) -> Result<Network, ControlError> {
    let mut b = NetworkBuilder::new("state", vec![1, widths[0]]);
    let mut v = b.input();
    let layers = widths.len() - 1;
    for (i, pair) in widths.windows(2).enumerate() {
        let (inp, out) = (pair[0], pair[1]);
        let last = i + 1 == layers;
        // He for ReLU hidden layers, Glorot otherwise.
        let limit = if !last && activation == Activation::Relu {
            (6.0 / inp as f64).sqrt()
        } else {
            (6.0 / (inp + out) as f64).sqrt()
        };
        let d = Dense {
            weight: (0..out * inp).map(|_| rng.range(-limit, limit)).collect(),
            bias: vec![0.0; out],
            out_features: out,
            in_features: inp,
        };
        v = b.push(format!("fc{}", i + 1), Op::Dense(d), &[v])?;
        if !last {
            let name = match activation {
                Activation::Tanh => "tanh",
                Activation::Relu => "relu",
                _ => "act",
            };
            v = b.push(format!("{name}{}", i + 1), Op::Activation(activation), &[v])?;
        }
    }
    Ok(b.finish(v, "action")?)
}

/// Folds the input and output scalings into the first and last dense layers.
fn fold_scaling(net: &Network, sx: &Scaling, sy: &Scaling) -> Network {
    let mut out = net.clone();
    let dense: Vec<usize> =
        out.nodes.iter().enumerate().filter(|(_, n)| matches!(n.op, Op::Dense(_))).map(|(k, _)| k).collect();
    if let Op::Dense(d) = &mut out.nodes[dense[0]].op {
        for o in 0..d.out_features {
            let row = &mut d.weight[o * d.in_features..(o + 1) * d.in_features];
            let mut shift = 0.0;
            for (i, w) in row.iter_mut().enumerate() {
                *w /= sx.half[i];
                shift += *w * sx.centre[i];
            }
            d.bias[o] -= shift;
        }
    }
    if let Op::Dense(d) = &mut out.nodes[*dense.last().expect("an MLP has dense layers")].op {
        for o in 0..d.out_features {
            for w in &mut d.weight[o * d.in_features..(o + 1) * d.in_features] {
                *w *= sy.half[o];
            }
            d.bias[o] = d.bias[o] * sy.half[o] + sy.centre[o];
        }
    }
    out
}

/// Adam moments of one dense layer.
struct Moments {
    node: usize,
    mw: Vec<f64>,
    vw: Vec<f64>,
    mb: Vec<f64>,
    vb: Vec<f64>,
}

/// States kept from trajectories: `per_episode` evenly spaced states of each, in the box.
fn subsample(states: &[Vec<f64>], per_episode: usize, state_box: &[(f64, f64)]) -> Vec<Vec<f64>> {
    let len = states.len();
    let keep = per_episode.min(len).max(1);
    (0..keep).map(|i| &states[i * len / keep]).filter(|s| in_box(s, state_box)).cloned().collect()
}

/// Behaviour cloning of any expert given as an [`LqrExpert`].
pub fn train_policy_from(sys: &dyn System, expert: &LqrExpert, cfg: &TrainConfig) -> Result<TrainReport, ControlError> {
    if cfg.batch_size == 0 || cfg.hidden.contains(&0) {
        return Err(ControlError("the batch size and every hidden width must be positive".into()));
    }
    let (n, m) = (sys.state_dim(), sys.action_dim());
    let state_box = sys.state_box();
    let sx = Scaling::new(&state_box);
    let sy = Scaling::new(&sys.action_bounds());
    let mut rng = Rng::new(cfg.seed);
    let mut widths = vec![n];
    widths.extend(&cfg.hidden);
    widths.push(m);
    let mut net = init_mlp(&mut rng, &widths, cfg.activation)?;

    let mut data = Dataset { x: vec![], y: vec![], labels: vec![], len: 0 };
    let uniform: Vec<Vec<f64>> =
        (0..cfg.uniform_samples).map(|_| state_box.iter().map(|&(lo, hi)| rng.range(lo, hi)).collect()).collect();
    data.add(&uniform, expert, &sx, &sy);
    let starts = sample_initial_states(sys, cfg.expert_episodes, rng.next_u64());
    let mut along = vec![];
    for t in rollout(sys, expert, &starts, sys.horizon())? {
        along.extend(subsample(&t.states, cfg.states_per_episode, &state_box));
    }
    let perturbed: Vec<Vec<f64>> = along
        .iter()
        .map(|s| {
            s.iter()
                .zip(&state_box)
                .map(|(&x, &(lo, hi))| (x + cfg.perturbation * 0.5 * (hi - lo) * rng.normal()).clamp(lo, hi))
                .collect()
        })
        .collect();
    data.add(&along, expert, &sx, &sy);
    data.add(&perturbed, expert, &sx, &sy);

    let mut moments: Vec<Moments> = net
        .nodes
        .iter()
        .enumerate()
        .filter_map(|(k, node)| match &node.op {
            Op::Dense(d) => Some(Moments {
                node: k,
                mw: vec![0.0; d.weight.len()],
                vw: vec![0.0; d.weight.len()],
                mb: vec![0.0; d.bias.len()],
                vb: vec![0.0; d.bias.len()],
            }),
            _ => None,
        })
        .collect();
    let (beta1, beta2, eps) = (0.9, 0.999, 1e-8);
    let total_epochs = cfg.epochs + cfg.dagger_rounds * cfg.dagger_epochs;
    let mut loss_history = Vec::with_capacity(total_epochs);
    let mut updates = 0usize;
    let mut epoch = 0usize;
    let mut xb = Vec::with_capacity(cfg.batch_size * n);
    let mut yb = Vec::with_capacity(cfg.batch_size * m);
    for round in 0..=cfg.dagger_rounds {
        if round > 0 {
            let policy = fold_scaling(&net, &sx, &sy);
            let starts = sample_initial_states(sys, cfg.dagger_episodes, rng.next_u64());
            let mut visited = vec![];
            for t in rollout(sys, &policy, &starts, sys.horizon())? {
                visited.extend(subsample(&t.states, cfg.states_per_episode, &state_box));
            }
            data.add(&visited, expert, &sx, &sy);
        }
        let epochs = if round == 0 { cfg.epochs } else { cfg.dagger_epochs };
        let mut order: Vec<usize> = (0..data.len).collect();
        for _ in 0..epochs {
            let progress = epoch as f64 / total_epochs.max(1) as f64;
            let lr = cfg.final_learning_rate
                + 0.5 * (cfg.learning_rate - cfg.final_learning_rate) * (1.0 + (std::f64::consts::PI * progress).cos());
            for i in (1..order.len()).rev() {
                order.swap(i, rng.below(i + 1));
            }
            let mut epoch_loss = 0.0;
            let mut batches = 0;
            for chunk in order.chunks(cfg.batch_size) {
                let bs = chunk.len();
                xb.clear();
                yb.clear();
                for &i in chunk {
                    xb.extend_from_slice(&data.x[i * n..(i + 1) * n]);
                    yb.extend_from_slice(&data.y[i * m..(i + 1) * m]);
                }
                let trace = net.trace(&xb, bs)?;
                let out = trace.output(&net);
                let scale = 1.0 / (bs * m) as f64;
                let mut loss = 0.0;
                let seed: Vec<f64> = out
                    .iter()
                    .zip(&yb)
                    .map(|(o, y)| {
                        let r = o - y;
                        loss += r * r;
                        2.0 * r * scale
                    })
                    .collect();
                epoch_loss += loss * scale;
                batches += 1;
                let grads = net.vjp(&trace, &seed, true)?;
                updates += 1;
                let t = updates as i32;
                let (c1, c2) = (1.0 - f64::powi(beta1, t), 1.0 - f64::powi(beta2, t));
                for mo in &mut moments {
                    let g = grads.dense[mo.node].as_ref().expect("dense gradients were requested");
                    let Op::Dense(d) = &mut net.nodes[mo.node].op else { unreachable!("moments follow dense nodes") };
                    let adam = |p: &mut [f64], g: &[f64], mm: &mut [f64], vv: &mut [f64]| {
                        for (((p, g), m1), v1) in p.iter_mut().zip(g).zip(mm.iter_mut()).zip(vv.iter_mut()) {
                            *m1 = beta1 * *m1 + (1.0 - beta1) * g;
                            *v1 = beta2 * *v1 + (1.0 - beta2) * g * g;
                            *p -= lr * (*m1 / c1) / ((*v1 / c2).sqrt() + eps);
                        }
                    };
                    adam(&mut d.weight, &g.weight, &mut mo.mw, &mut mo.vw);
                    adam(&mut d.bias, &g.bias, &mut mo.mb, &mut mo.vb);
                }
            }
            loss_history.push(epoch_loss / batches.max(1) as f64);
            epoch += 1;
        }
    }

    let out = net.forward(&data.x, data.len)?;
    let final_loss = out.iter().zip(&data.y).map(|(o, y)| (o - y) * (o - y)).sum::<f64>() / (data.len * m) as f64;
    let network = fold_scaling(&net, &sx, &sy);
    let physical = network.act_batch(&data.x_physical(&sx), data.len)?;
    let errors: Vec<f64> = physical.iter().zip(&data.labels).map(|(a, b)| a - b).collect();
    let final_rmse = (errors.iter().map(|e| e * e).sum::<f64>() / errors.len().max(1) as f64).sqrt();
    let max_abs_error = errors.iter().fold(0.0f64, |s, e| s.max(e.abs()));
    Ok(TrainReport { network, final_loss, final_rmse, max_abs_error, loss_history, dataset_size: data.len, updates })
}
