//! Which neurons are replaced, and by what: the three substitutes of paper 004 (section 3.1)
//! and the bound-propagation choice of the neurons (Algorithm 1).

use crate::build::masked;
use lipcert_bounds::{value_bounds, InputSet, Method, Options};
use lipcert_core::{Activation, GraphError, Network, Op};

/// The substitute of an activation around the anchor x0 (pre-activation z0 there).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// phi(z) -> phi(z0).
    Constant,
    /// The line through (z0, phi(z0)) and (z_adv, phi(z_adv)), z_adv from the attack's point;
    /// constant when z_adv = z0.
    Linear,
    /// The linear piece of a piecewise-linear activation that holds at z0 (ReLU: identity if
    /// z0 > 0, else 0): the substitute equals the network on every ball where the replaced
    /// neurons keep their sign.
    Pattern,
}

impl Kind {
    /// The CLI's name: con, lin, act.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Constant => "con",
            Kind::Linear => "lin",
            Kind::Pattern => "act",
        }
    }
}

/// phi(z) replaced by slope * z + offset.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Replacement {
    pub slope: f64,
    pub offset: f64,
}

/// The sign a pre-activation must keep for a piece of a piecewise-linear activation to hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// z >= 0.
    NonNegative,
    /// z <= 0.
    NonPositive,
}

/// The linear piece of `act` that holds at z, and where it holds; None for activations
/// without linear pieces (ELU, GELU, sigmoid, tanh).
pub fn piece(act: Activation, z: f64) -> Option<(Replacement, Side)> {
    let negative = |slope| (Replacement { slope, offset: 0.0 }, Side::NonPositive);
    let identity = (Replacement { slope: 1.0, offset: 0.0 }, Side::NonNegative);
    match act {
        Activation::Relu => Some(if z > 0.0 { identity } else { negative(0.0) }),
        Activation::LeakyRelu { alpha } => Some(if z > 0.0 { identity } else { negative(alpha) }),
        Activation::Elu { .. } | Activation::Gelu { .. } | Activation::Sigmoid | Activation::Tanh => None,
    }
}

/// The replacement of one neuron with pre-activation z0 at the anchor and z_adv at the
/// attack's point.
pub fn replacement(kind: Kind, act: Activation, z0: f64, z_adv: f64) -> Result<Replacement, GraphError> {
    let constant = Replacement { slope: 0.0, offset: act.apply(z0) };
    match kind {
        Kind::Constant => Ok(constant),
        Kind::Linear => {
            // Both points on one linear piece: that piece exactly (a computed slope through two
            // points of it would carry rounding error).
            if let (Some((p0, _)), Some((pa, _))) = (piece(act, z0), piece(act, z_adv)) {
                if p0 == pa {
                    return Ok(p0);
                }
            }
            if z_adv == z0 {
                return Ok(constant);
            }
            let slope = (act.apply(z_adv) - act.apply(z0)) / (z_adv - z0);
            Ok(Replacement { slope, offset: act.apply(z0) - slope * z0 })
        }
        Kind::Pattern => piece(act, z0).map(|(r, _)| r).ok_or_else(|| {
            GraphError::Invalid(format!(
                "the activation-pattern substitute (act) needs piecewise-linear activations (Relu, LeakyRelu); \
                 this network has {act:?} (use --kind lin or con)"
            ))
        }),
    }
}

/// The replaced neurons of one activation node.
#[derive(Clone, Debug, PartialEq)]
pub struct Layer {
    /// Index of the activation node in the original network.
    pub node: usize,
    pub activation: Activation,
    /// Per neuron: None (kept) or its replacement.
    pub replaced: Vec<Option<Replacement>>,
}

/// A substitute: every activation node of the network with its replaced neurons.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    pub layers: Vec<Layer>,
}

impl Plan {
    /// Every activation node, nothing replaced.
    pub fn keep_all(net: &Network) -> Plan {
        let layers = net
            .nodes
            .iter()
            .enumerate()
            .filter_map(|(k, node)| match node.op {
                Op::Activation(activation) => {
                    Some(Layer { node: k, activation, replaced: vec![None; net.value_len(k + 1)] })
                }
                _ => None,
            })
            .collect();
        Plan { layers }
    }

    /// Neurons that carry an activation.
    pub fn neurons(&self) -> usize {
        self.layers.iter().map(|l| l.replaced.len()).sum()
    }

    /// Neurons replaced by a linear or constant function.
    pub fn replaced(&self) -> usize {
        self.layers.iter().map(|l| l.replaced.iter().filter(|r| r.is_some()).count()).sum()
    }

    /// Kept neurons per activation node.
    pub fn kept_per_layer(&self) -> Vec<usize> {
        self.layers.iter().map(|l| l.replaced.iter().filter(|r| r.is_none()).count()).collect()
    }
}

/// Settings of Algorithm 1.
#[derive(Clone, Debug)]
pub struct ChooseOptions {
    /// Fraction of the activation neurons to replace, in [0, 1).
    pub gamma: f64,
    /// Fraction of the remaining neurons replaced per round (paper: gamma_0 << gamma).
    pub gamma0: f64,
    /// Bound propagation of each round.
    pub method: Method,
}

/// Pre-activations of every activation node at one point (per plan layer).
pub fn pre_activations(net: &Network, plan: &Plan, x: &[f64]) -> Result<Vec<Vec<f64>>, GraphError> {
    let trace = net.trace(x, 1)?;
    Ok(plan.layers.iter().map(|l| trace.values[net.nodes[l.node].inputs[0]].clone()).collect())
}

/// Algorithm 1 of paper 004, over every activation node (the printed `l = 2..L` is an index
/// slip): bounds over `set` (the ball of radius d_adv), then rounds that each replace the
/// gamma0 fraction of the remaining neurons with the narrowest pre-activation intervals,
/// recomputing the bounds on the substitute after each round, until round(gamma * N) neurons
/// are replaced. `z0`, `z_adv`: pre-activations at the anchor and the attack's point (per
/// plan layer). `progress` hears (replaced, target) after every round. Returns the plan and
/// the number of rounds.
pub fn choose(
    net: &Network,
    set: &InputSet,
    kind: Kind,
    z0: &[Vec<f64>],
    z_adv: &[Vec<f64>],
    opts: &ChooseOptions,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<(Plan, usize), GraphError> {
    let mut plan = Plan::keep_all(net);
    let total = plan.neurons();
    let target = ((opts.gamma * total as f64).round() as usize).min(total);
    let mut rounds = 0;
    while plan.replaced() < target {
        let (g, pre) = masked(net, &plan)?;
        let bounds = value_bounds(&g, set, opts.method, &Options::default())?;
        // (width, layer, neuron) of every kept neuron.
        let mut widths: Vec<(f64, usize, usize)> = Vec::new();
        for (li, layer) in plan.layers.iter().enumerate() {
            let b = &bounds[pre[li]];
            for (i, r) in layer.replaced.iter().enumerate() {
                if r.is_none() {
                    widths.push((b.hi[i] - b.lo[i], li, i));
                }
            }
        }
        widths.sort_by(|a, b| a.0.total_cmp(&b.0));
        let remaining = total - plan.replaced();
        let step = ((opts.gamma0 * remaining as f64).ceil() as usize).clamp(1, target - plan.replaced());
        for &(_, li, i) in &widths[..step] {
            let layer = &mut plan.layers[li];
            layer.replaced[i] = Some(replacement(kind, layer.activation, z0[li][i], z_adv[li][i])?);
        }
        rounds += 1;
        progress(plan.replaced(), target);
    }
    Ok((plan, rounds))
}
