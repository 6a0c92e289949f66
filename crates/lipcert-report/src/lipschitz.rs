//! The Lipschitz section: per-layer and global brackets in l2 and l_inf (`lipcert lipschitz`).

use crate::points::Points;
use lipcert_core::Network;
use lipcert_spectral::lipschitz::{architecture_estimate, network_lipschitz, NetworkLipschitz, Norm, Search};
use serde::Serialize;
use std::time::Instant;

#[derive(Clone, Debug, Serialize)]
pub struct LayerRow {
    pub name: String,
    pub op: &'static str,
    /// Certified bounds on the layer's own constant (lower: when lipcert computes one).
    pub lower: Option<f64>,
    pub upper: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct LipschitzSection {
    /// "2" or "inf".
    pub norm: &'static str,
    pub layers: Vec<LayerRow>,
    /// Certified upper bound on the network's constant (graph composition of the layers).
    pub upper: f64,
    /// Proven lower bound (the largest certified slope between two points).
    pub lower: f64,
    /// Paper 002's architecture estimate (l2, MLPs): NOT a bound.
    pub estimate: Option<f64>,
    pub time_s: f64,
    /// The analysis itself, for the sections that use the constant.
    #[serde(skip)]
    pub analysis: Option<NetworkLipschitz>,
}

fn section(net: &Network, norm: Norm, seed: u64, points: &Points) -> LipschitzSection {
    let start = Instant::now();
    let seeds: Vec<Vec<f64>> = (0..points.len().min(8)).map(|i| points.row(i).to_vec()).collect();
    let lip = network_lipschitz(net, norm, &Search { starts: 8, steps: 20, seed, points: seeds });
    let estimate = if norm == Norm::L2 { architecture_estimate(net) } else { None };
    LipschitzSection {
        norm: norm.name(),
        layers: lip
            .layers
            .iter()
            .map(|l| LayerRow { name: l.name.clone(), op: l.op, lower: l.lower, upper: l.upper })
            .collect(),
        upper: lip.upper,
        lower: lip.lower,
        estimate,
        time_s: start.elapsed().as_secs_f64(),
        analysis: Some(lip),
    }
}

/// The l2 and the l_inf section.
pub fn both_norms(net: &Network, seed: u64, points: &Points) -> Vec<LipschitzSection> {
    vec![section(net, Norm::L2, seed, points), section(net, Norm::Inf, seed, points)]
}
