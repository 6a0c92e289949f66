use crate::render::print_json;
use anyhow::bail;
use lipcert_core::Network;
use lipcert_io::vnnlib::Property;
use lipcert_verify::{verify, BoxProperty, Stats, Verdict, VerifyOptions};
use serde_json::{json, Value};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

#[derive(clap::Args)]
pub struct Args {
    /// ONNX model.
    model: PathBuf,
    /// VNN-LIB property (its formula describes the unsafe inputs and outputs).
    property: PathBuf,
    /// Seconds; the answer is `timeout` when the search runs out.
    #[arg(long, default_value_t = 60.0)]
    timeout: f64,
    /// Write the answer in the VNN-COMP result format (with the counterexample for sat).
    #[arg(long)]
    result: Option<PathBuf>,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[arg(long)]
    json: bool,
}

/// The VNN-COMP result file: the answer, then for sat the assignment of every X_i and Y_j.
fn result_text(v: &Verdict) -> String {
    let mut s = format!("{}\n", v.word());
    if let Verdict::Sat { x, y } = v {
        let mut parts: Vec<String> = x.iter().enumerate().map(|(i, v)| format!("(X_{i} {v:e})")).collect();
        parts.extend(y.iter().enumerate().map(|(j, v)| format!("(Y_{j} {v:e})")));
        let _ = writeln!(s, "({})", parts.join("\n "));
    }
    s
}

/// Decides the property `p` on `net` within `timeout` seconds.
pub fn compute(net: &Network, p: &Property, timeout: f64, seed: u64) -> anyhow::Result<(Verdict, Stats)> {
    if !(timeout > 0.0 && timeout.is_finite()) {
        bail!("--timeout must be a positive number of seconds, got {timeout}");
    }
    let boxes: Vec<BoxProperty> = p.regions().into_iter().map(|r| BoxProperty::new(r.lo, r.hi, r.any_of)).collect();
    let opts = VerifyOptions { timeout: Duration::from_secs_f64(timeout), seed, ..Default::default() };
    Ok(verify(net, &boxes, &opts)?)
}

/// What `verify --json` prints.
pub fn to_json(verdict: &Verdict, stats: &Stats) -> Value {
    let reason = if let Verdict::Unknown(r) = verdict { Some(r.clone()) } else { None };
    let (x, y) = match verdict {
        Verdict::Sat { x, y } => (json!(x), json!(y)),
        _ => (json!(null), json!(null)),
    };
    json!({
        "result": verdict.word(), "counterexample": x, "output": y, "reason": reason,
        "boxes": stats.boxes, "max_depth": stats.max_depth, "time_s": stats.time_s,
    })
}

pub fn run(args: Args) -> anyhow::Result<()> {
    if !(args.timeout > 0.0 && args.timeout.is_finite()) {
        bail!("--timeout must be a positive number of seconds, got {}", args.timeout);
    }
    let m = super::load_model(&args.model)?;
    let net = &m.network;
    let p = super::load_property(&args.property, net)?;
    let bar = std::sync::Arc::new(crate::progress::Progress::new("verify", None));
    bar.message(&format!("timeout {} s", args.timeout));
    let beat = bar.heartbeat();
    let result = compute(net, &p, args.timeout, args.seed);
    drop(beat);
    bar.finish();
    let (verdict, stats) = result?;
    if let Some(path) = &args.result {
        std::fs::write(path, result_text(&verdict)).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    }
    if args.json {
        return print_json(&to_json(&verdict, &stats));
    }
    println!("{}", verdict.word());
    match &verdict {
        Verdict::Sat { y, .. } => {
            let ys: Vec<String> = y.iter().map(|v| format!("{v:.6}")).collect();
            println!("counterexample re-checked by a forward pass; output [{}]", ys.join(", "));
        }
        Verdict::Unknown(r) => println!("{r}"),
        _ => {}
    }
    println!("{} sub-boxes bounded, depth {}, {:.3} s", stats.boxes, stats.max_depth, stats.time_s);
    Ok(())
}
