//! The deviation section (`--pruned`): how far the pruned model's output can move from the
//! original's over a box (closed form, certified, observed: `lipcert deviation`), and the same
//! three measures for the original pruned by SparseGPT at a range of sparsities, so the given
//! model can be read against the curve.

use crate::{Options, Progress, StateBox};
use lipcert_bounds::Method;
use lipcert_core::{Network, Op};
use lipcert_prune::{
    certified, closed_form, observed_max, prunable_layers, prune_network, CertifyOptions, Pattern, PruneOptions,
};
use serde::Serialize;
use std::time::Instant;

/// Sparsities of the comparison sweep.
pub const SWEEP: [f64; 5] = [0.1, 0.3, 0.5, 0.7, 0.9];
/// Samples of the observed deviation (then gradient ascent from the worst).
const SAMPLES: usize = 20_000;
const SWEEP_SAMPLES: usize = 4_000;
const CALIBRATION: usize = 256;

/// The three measures of one (original, pruned) pair.
#[derive(Clone, Debug, Serialize)]
pub struct Measures {
    /// Fraction of zero weights over the dense and convolutional layers.
    pub sparsity: f64,
    /// Paper 000's bound in its sound form (None: it does not apply to this graph).
    pub closed_form: Option<f64>,
    /// Bound propagation on the difference network: sup ||f - f_hat||_2 <= certified.
    pub certified: f64,
    pub certified_method: &'static str,
    /// The largest deviation found by sampling and ascent: NOT a bound.
    pub observed_max: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct DeviationSection {
    pub pruned_file: String,
    pub box_source: String,
    pub given: Measures,
    pub closed_form_unavailable: Option<String>,
    /// The original pruned by SparseGPT at `SWEEP` (calibrated on box samples).
    pub sweep: Vec<Measures>,
    pub time_s: f64,
}

fn sparsity(net: &Network) -> f64 {
    let (mut zeros, mut all) = (0usize, 0usize);
    for &k in &prunable_layers(net) {
        let w = match &net.nodes[k].op {
            Op::Dense(d) => &d.weight,
            Op::Conv2d(c) => &c.weight,
            Op::Affine { .. }
            | Op::Activation(_)
            | Op::Add
            | Op::AvgPool(_)
            | Op::MaxPool(_)
            | Op::Pad { .. }
            | Op::Reshape { .. }
            | Op::Transpose { .. } => continue,
        };
        zeros += w.iter().filter(|v| **v == 0.0).count();
        all += w.len();
    }
    if all == 0 {
        0.0
    } else {
        zeros as f64 / all as f64
    }
}

fn measure(
    f: &Network,
    g: &Network,
    b: &StateBox,
    samples: usize,
    seed: u64,
    deadline: Instant,
) -> Result<(Measures, Option<String>), String> {
    let closed = closed_form(f, g, &b.lo, &b.hi).map_err(|e| e.to_string());
    let opts = CertifyOptions { method: Method::Crown, deadline: Some(deadline), ..Default::default() };
    let cert = certified(f, g, &b.lo, &b.hi, &opts).map_err(|e| e.to_string())?;
    let obs = observed_max(f, g, &b.lo, &b.hi, samples, seed).map_err(|e| e.to_string())?;
    let slack = 1e-9 * (1.0 + obs.max);
    if obs.max > cert.l2 + slack {
        return Err(format!("internal error: observed deviation {} above the certified bound {}", obs.max, cert.l2));
    }
    let m = Measures {
        sparsity: sparsity(g),
        closed_form: closed.as_ref().ok().map(|c| c.bound),
        certified: cert.l2,
        certified_method: cert.method,
        observed_max: obs.max,
    };
    Ok((m, closed.err()))
}

pub fn run(
    f: &Network,
    name: &str,
    g: &Network,
    b: &StateBox,
    opts: &Options,
    deadline: Instant,
    progress: &(dyn Fn(Progress) + Sync),
) -> Result<DeviationSection, String> {
    let start = Instant::now();
    if g.input_len() != f.input_len() || g.output_len() != f.output_len() {
        return Err(format!(
            "{name}: {} inputs and {} outputs, the model {} and {}",
            g.input_len(),
            g.output_len(),
            f.input_len(),
            f.output_len()
        ));
    }
    let total = 1 + SWEEP.len();
    progress(Progress { analysis: "deviation", done: 0, total });
    let (given, unavailable) = measure(f, g, b, SAMPLES, opts.seed, deadline)?;
    let calib = crate::points::Points::sample_box(f, b, CALIBRATION, opts.seed)?.x;
    let layers = prunable_layers(f).len();
    let mut sweep = vec![];
    for (k, &s) in SWEEP.iter().enumerate() {
        progress(Progress { analysis: "deviation", done: k + 1, total });
        if Instant::now() >= deadline {
            break;
        }
        let patterns = vec![Some(Pattern::Unstructured { sparsity: s }); layers];
        let (p, _) = prune_network(
            f,
            &calib,
            CALIBRATION,
            lipcert_prune::Method::SparseGpt,
            &patterns,
            &PruneOptions::default(),
        )
        .map_err(|e| e.to_string())?;
        sweep.push(measure(f, &p, b, SWEEP_SAMPLES, opts.seed, deadline)?.0);
    }
    progress(Progress { analysis: "deviation", done: total, total });
    Ok(DeviationSection {
        pruned_file: name.to_string(),
        box_source: b.source.clone(),
        given,
        closed_form_unavailable: unavailable,
        sweep,
        time_s: start.elapsed().as_secs_f64(),
    })
}
