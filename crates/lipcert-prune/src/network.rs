//! Pruning a whole network, layer after layer.
//!
//! The calibration inputs are propagated through the network as it is being pruned: the Gram
//! matrix of layer k is built from the outputs of layers 1..k-1 *after* they were pruned, so each
//! layer compensates for the error its predecessors already made (as in SparseGPT).

use crate::pruners::{prune_matrix, reconstruction_error, Method, Pattern, PruneError, PruneOptions};
use faer::MatRef;
use lipcert_core::kernels::conv_patches;
use lipcert_core::{Conv2d, Dense, Network, Op};
use lipcert_spectral::lipschitz::{conv_bound, dense_bound, Norm};
use serde::Serialize;

/// What happened to one layer.
#[derive(Clone, Debug, Serialize)]
pub struct LayerReport {
    pub node: String,
    pub kind: &'static str,
    pub weights: usize,
    pub zeros: usize,
    pub sparsity: f64,
    /// ||W X - W_hat X||_F^2 over the calibration inputs this layer saw.
    pub recon_error: f64,
    /// recon_error / ||W X||_F^2.
    pub relative_error: f64,
    /// Certified upper bound on ||W - W_hat||_2 (the operator norm; for a convolution, of the
    /// convolution operator on this layer's input size).
    pub dw_norm: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct PruneReport {
    pub method: Method,
    pub calibration_samples: usize,
    pub layers: Vec<LayerReport>,
    pub weights: usize,
    pub zeros: usize,
    pub sparsity: f64,
}

/// Indices of the nodes a pruner can act on (dense and convolutional layers), in order.
pub fn prunable_layers(net: &Network) -> Vec<usize> {
    (0..net.nodes.len()).filter(|&k| matches!(net.nodes[k].op, Op::Dense(_) | Op::Conv2d(_))).collect()
}

/// Prunes layer `prunable_layers(net)[i]` with `patterns[i]` (None leaves it alone).
/// `calib` holds `n` input samples. Returns the pruned network and a report with one row per
/// prunable layer (pruned or not).
pub fn prune_network(
    net: &Network,
    calib: &[f64],
    n: usize,
    method: Method,
    patterns: &[Option<Pattern>],
    opts: &PruneOptions,
) -> Result<(Network, PruneReport), PruneError> {
    let layers = prunable_layers(net);
    if patterns.len() != layers.len() {
        return Err(PruneError::Invalid(format!(
            "{} sparsity patterns for the {} prunable layers",
            patterns.len(),
            layers.len()
        )));
    }
    if n == 0 || calib.len() != n * net.input_len() {
        return Err(PruneError::Invalid(format!(
            "calibration data has {} values, expected a positive number of samples x {} inputs",
            calib.len(),
            net.input_len()
        )));
    }
    if let Some(i) = calib.iter().position(|v| !v.is_finite()) {
        return Err(PruneError::Invalid(format!("calibration value {i} is {}", calib[i])));
    }
    let mut pattern_of = vec![None; net.nodes.len()];
    for (&k, p) in layers.iter().zip(patterns) {
        pattern_of[k] = *p;
    }
    let mut pruned = net.clone();
    let last_use = net.last_uses();
    let mut values: Vec<Option<Vec<f64>>> = vec![None; net.shapes.len()];
    values[0] = Some(calib.to_vec());
    let mut reports = Vec::new();
    for k in 0..net.nodes.len() {
        if let Some(pattern) = pattern_of[k] {
            let x = values[net.nodes[k].inputs[0]].as_deref().expect("topological order");
            let in_shape = &net.shapes[net.nodes[k].inputs[0]];
            let name = net.nodes[k].name.clone();
            let with_node = |e: PruneError| PruneError::Invalid(format!("node '{name}': {e}"));
            let report = match &mut pruned.nodes[k].op {
                Op::Dense(d) => prune_dense(d, x, method, pattern, opts).map_err(with_node)?,
                Op::Conv2d(c) => {
                    let ohw = [net.shapes[k + 1][2], net.shapes[k + 1][3]];
                    prune_conv(c, x, n, in_shape, ohw, method, pattern, opts).map_err(with_node)?
                }
                _ => unreachable!("prunable layers are dense or convolutional"),
            };
            reports.push(LayerReport { node: name, ..report });
        } else if let Op::Dense(Dense { weight, .. }) | Op::Conv2d(Conv2d { weight, .. }) = &net.nodes[k].op {
            // Left alone: listed, so that totals are over the whole network.
            let kind = net.nodes[k].op.kind();
            reports.push(LayerReport { node: net.nodes[k].name.clone(), ..layer_report(kind, weight, 0.0, 0.0, 0.0) });
        }
        let inputs: Vec<&[f64]> =
            pruned.nodes[k].inputs.iter().map(|&v| values[v].as_deref().expect("topological order")).collect();
        let y = pruned.eval_node_batch(k, &inputs, n);
        values[k + 1] = Some(y);
        for &v in &net.nodes[k].inputs {
            if last_use[v] == k {
                values[v] = None;
            }
        }
    }
    let weights: usize = reports.iter().map(|r| r.weights).sum();
    let zeros: usize = reports.iter().map(|r| r.zeros).sum();
    let report = PruneReport {
        method,
        calibration_samples: n,
        layers: reports,
        weights,
        zeros,
        sparsity: zeros as f64 / weights.max(1) as f64,
    };
    Ok((pruned, report))
}

/// G = X^T X for X row-major [rows, cols].
fn gram_rows(x: &[f64], cols: usize) -> Vec<f64> {
    let rows = x.len() / cols.max(1);
    // Row-major [rows, cols] is the column-major [cols, rows] matrix X^T.
    let xt = MatRef::from_column_major_slice(x, cols, rows);
    let g = xt * xt.transpose();
    let mut out = vec![0.0; cols * cols];
    for i in 0..cols {
        for j in 0..cols {
            out[i * cols + j] = g[(i, j)];
        }
    }
    out
}

fn prune_dense(
    d: &mut Dense,
    x: &[f64],
    method: Method,
    pattern: Pattern,
    opts: &PruneOptions,
) -> Result<LayerReport, PruneError> {
    let gram = gram_rows(x, d.in_features);
    let original = d.weight.clone();
    prune_matrix(&mut d.weight, d.out_features, d.in_features, &gram, method, pattern, opts)?;
    let delta = Dense {
        weight: original.iter().zip(&d.weight).map(|(a, b)| a - b).collect(),
        bias: vec![0.0; d.out_features],
        out_features: d.out_features,
        in_features: d.in_features,
    };
    let recon = reconstruction_error(&original, &d.weight, d.out_features, d.in_features, &gram);
    let energy = reconstruction_error(&original, &vec![0.0; original.len()], d.out_features, d.in_features, &gram);
    Ok(layer_report("Dense", &d.weight, recon, energy, dense_bound(&delta, Norm::L2).0))
}

/// Images of im2col patches held in memory at once (bounds the memory of a Gram chunk).
const PATCH_ELEMENTS: usize = 1 << 23;

#[allow(clippy::too_many_arguments)]
fn prune_conv(
    c: &mut Conv2d,
    x: &[f64],
    n: usize,
    in_shape: &[usize],
    ohw: [usize; 2],
    method: Method,
    pattern: Pattern,
    opts: &PruneOptions,
) -> Result<LayerReport, PruneError> {
    let images = n * in_shape[0];
    let hw = [in_shape[2], in_shape[3]];
    let in_len = c.in_channels * hw[0] * hw[1];
    let (cig, cog) = (c.in_channels / c.groups, c.out_channels / c.groups);
    let k = cig * c.kernel[0] * c.kernel[1];
    let p = ohw[0] * ohw[1];
    let chunk = (PATCH_ELEMENTS / (k * p).max(1)).clamp(1, images.max(1));
    let original = c.weight.clone();
    let (mut recon, mut energy) = (0.0, 0.0);
    for g in 0..c.groups {
        // G = P P^T summed over image chunks, P = [k, chunk * p] row-major.
        let mut gram = vec![0.0; k * k];
        for start in (0..images).step_by(chunk) {
            let m = chunk.min(images - start);
            let patches = conv_patches(c, &x[start * in_len..(start + m) * in_len], m, hw, ohw, g);
            // Row-major [k, m p] is the column-major [m p, k] matrix P^T.
            let pt = MatRef::from_column_major_slice(&patches, m * p, k);
            let part = pt.transpose() * pt;
            for i in 0..k {
                for j in 0..k {
                    gram[i * k + j] += part[(i, j)];
                }
            }
        }
        let rows = g * cog * k..(g + 1) * cog * k;
        prune_matrix(&mut c.weight[rows.clone()], cog, k, &gram, method, pattern, opts)?;
        recon += reconstruction_error(&original[rows.clone()], &c.weight[rows.clone()], cog, k, &gram);
        energy += reconstruction_error(&original[rows.clone()], &vec![0.0; cog * k], cog, k, &gram);
    }
    let delta = Conv2d {
        weight: original.iter().zip(&c.weight).map(|(a, b)| a - b).collect(),
        bias: vec![0.0; c.out_channels],
        ..c.clone()
    };
    Ok(layer_report("Conv2d", &c.weight, recon, energy, conv_bound(&delta, in_shape, Norm::L2).0))
}

fn layer_report(kind: &'static str, w: &[f64], recon: f64, energy: f64, dw_norm: f64) -> LayerReport {
    let zeros = w.iter().filter(|&&v| v == 0.0).count();
    LayerReport {
        node: String::new(),
        kind,
        weights: w.len(),
        zeros,
        sparsity: zeros as f64 / w.len().max(1) as f64,
        recon_error: recon,
        relative_error: if energy > 0.0 { recon / energy } else { 0.0 },
        dw_norm,
    }
}
