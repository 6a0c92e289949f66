use crate::render::{print_json, table};
use lipcert_core::Network;
use lipcert_spectral::lipschitz::{architecture_estimate, network_lipschitz, NetworkLipschitz, Norm, Search};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::Instant;

#[derive(clap::Args)]
pub struct Args {
    /// ONNX model.
    model: PathBuf,
    /// Norm on inputs and outputs.
    #[arg(long, value_enum, default_value = "2")]
    norm: NormArg,
    /// Random starting points of the search for the lower bound.
    #[arg(long, default_value_t = 16)]
    starts: usize,
    /// Hill-climbing steps per start.
    #[arg(long, default_value_t = 30)]
    steps: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[arg(long)]
    json: bool,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum NormArg {
    #[value(name = "2")]
    L2,
    #[value(name = "inf")]
    Inf,
}

impl NormArg {
    pub fn norm(self) -> Norm {
        match self {
            NormArg::L2 => Norm::L2,
            NormArg::Inf => Norm::Inf,
        }
    }
}

fn opt(v: Option<f64>) -> serde_json::Value {
    v.filter(|x| x.is_finite()).map_or(serde_json::Value::Null, |x| json!(x))
}

/// Lipschitz bounds of a network: per layer, certified upper and lower, and the paper's estimate.
pub struct Outcome {
    pub norm: Norm,
    pub lip: NetworkLipschitz,
    pub estimate: Option<f64>,
    pub time_s: f64,
}

/// Bounds the Lipschitz constant of `net`; the lower bound's search runs `starts` x `steps`.
pub fn compute(net: &Network, norm: Norm, search: Search) -> Outcome {
    let start = Instant::now();
    let lip = network_lipschitz(net, norm, &search);
    // The paper's estimate is for the l2 constant.
    let estimate = if norm == Norm::L2 { architecture_estimate(net) } else { None };
    Outcome { norm, lip, estimate, time_s: start.elapsed().as_secs_f64() }
}

impl Outcome {
    /// What `lipschitz --json` prints.
    pub fn to_json(&self) -> Value {
        let lip = &self.lip;
        let layers: Vec<_> = lip
            .layers
            .iter()
            .map(|l| json!({"name": l.name, "op": l.op, "upper": opt(Some(l.upper)), "lower": opt(l.lower)}))
            .collect();
        json!({
            "norm": self.norm.name(),
            "layers": layers,
            "global": {"upper": opt(Some(lip.upper)), "lower": opt(Some(lip.lower)),
                       "lower_search": opt(Some(lip.lower_search))},
            "estimate": self.estimate.map(|v| json!({"kind": "estimate", "source": "paper 002 Prop. 5", "value": v})),
            "time_s": self.time_s,
        })
    }
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let m = super::load_model(&args.model)?;
    let net = &m.network;
    let bar = std::sync::Arc::new(crate::progress::Progress::new("lipschitz", None));
    bar.message("per-layer bounds and the search for the lower bound");
    let beat = bar.heartbeat();
    let search = Search { starts: args.starts, steps: args.steps, seed: args.seed, points: vec![] };
    let r = compute(net, args.norm.norm(), search);
    drop(beat);
    bar.finish();
    if args.json {
        return print_json(&r.to_json());
    }
    let (lip, estimate, time_s) = (&r.lip, r.estimate, r.time_s);
    let fmt = |v: Option<f64>| v.filter(|x| x.is_finite()).map_or("-".to_string(), |x| format!("{x:.6}"));
    let mut rows: Vec<Vec<String>> = lip
        .layers
        .iter()
        .enumerate()
        .map(|(k, l)| vec![(k + 1).to_string(), l.name.clone(), l.op.to_string(), fmt(l.lower), fmt(Some(l.upper))])
        .collect();
    rows.push(vec!["".into(), "network".into(), "global".into(), fmt(Some(lip.lower)), fmt(Some(lip.upper))]);
    println!(
        "Lipschitz constant of {} in the l_{} norm ({time_s:.2} s)",
        args.model.display(),
        args.norm.norm().name()
    );
    print!("{}", table(&["#", "node", "op", "lower (certified)", "upper (certified)"], &rows));
    println!("global upper: graph composition of the layer bounds (products; sums at residual adds)");
    println!(
        "global lower: largest slope ||f(y) - f(x)|| / ||y - x|| certified by IBP enclosures, over pairs \
         proposed by a search on Jacobian norms and slopes ({} starts x {} steps; largest f64 value found {})",
        args.starts,
        args.steps,
        fmt(Some(lip.lower_search))
    );
    if let Some(e) = estimate {
        println!("architecture estimate (paper 002 Prop. 5, NOT a bound): {e:.6}");
    }
    Ok(())
}
