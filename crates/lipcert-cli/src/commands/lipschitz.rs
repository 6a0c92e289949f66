use crate::render::{print_json, table};
use lipcert_spectral::lipschitz::{architecture_estimate, network_lipschitz, Norm, Search};
use serde_json::json;
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

pub fn run(args: Args) -> anyhow::Result<()> {
    let m = super::load_model(&args.model)?;
    let net = &m.network;
    let start = Instant::now();
    let bar = std::sync::Arc::new(crate::progress::Progress::new("lipschitz", None));
    bar.message("per-layer bounds and the search for the lower bound");
    let beat = bar.heartbeat();
    let lip = network_lipschitz(
        net,
        args.norm.norm(),
        &Search { starts: args.starts, steps: args.steps, seed: args.seed, points: vec![] },
    );
    // The paper's estimate is for the l2 constant.
    let estimate = if args.norm.norm() == Norm::L2 { architecture_estimate(net) } else { None };
    drop(beat);
    bar.finish();
    let time_s = start.elapsed().as_secs_f64();
    if args.json {
        let layers: Vec<_> = lip
            .layers
            .iter()
            .map(|l| json!({"name": l.name, "op": l.op, "upper": opt(Some(l.upper)), "lower": opt(l.lower)}))
            .collect();
        return print_json(&json!({
            "norm": args.norm.norm().name(),
            "layers": layers,
            "global": {"upper": opt(Some(lip.upper)), "lower": opt(Some(lip.lower)),
                       "lower_search": opt(Some(lip.lower_search))},
            "estimate": estimate.map(|v| json!({"kind": "estimate", "source": "paper 002 Prop. 5", "value": v})),
            "time_s": time_s,
        }));
    }
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
