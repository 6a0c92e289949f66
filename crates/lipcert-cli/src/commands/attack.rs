use crate::render::print_json;
use anyhow::Context;
use lipcert_bounds::{attack, Atom, AttackMethod, AttackOptions, InputSet, Interval, Unsafe};
use lipcert_core::Network;
use lipcert_io::vnnlib::Property;
use lipcert_io::{DType, NpyArray};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::Instant;

#[derive(clap::Args)]
pub struct Args {
    /// ONNX model.
    model: PathBuf,
    /// VNN-LIB property: the attack searches its input boxes for an output in the unsafe region.
    #[arg(long)]
    vnnlib: PathBuf,
    #[arg(long, value_enum, default_value = "pgd")]
    method: MethodArg,
    /// Random restarts (restart 0 starts at the center of the box).
    #[arg(long, default_value_t = 20)]
    restarts: usize,
    /// PGD steps per restart.
    #[arg(long, default_value_t = 100)]
    steps: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Write the counterexample to this .npy file as [1, inputs] (C order, as `lipcert eval` reads).
    #[arg(long, short = 'o')]
    output: Option<PathBuf>,
    #[arg(long)]
    json: bool,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum MethodArg {
    Pgd,
    Fgsm,
}

/// The outcome of an attack on a property: the counterexample (input, output) if one was found.
pub struct Outcome {
    pub method: MethodArg,
    pub found: Option<(Vec<f64>, Vec<f64>)>,
    pub best_loss: f64,
    pub evaluations: usize,
    pub time_s: f64,
}

/// Searches each input box of `p` (over the cases that use it) until a counterexample is found.
pub fn compute(
    net: &Network,
    p: &Property,
    method: MethodArg,
    restarts: usize,
    steps: usize,
    seed: u64,
) -> anyhow::Result<Outcome> {
    if steps == 0 || restarts == 0 {
        anyhow::bail!(
            "--steps and --restarts must be at least 1 (got {steps} and {restarts}): an attack of no step searches nothing"
        );
    }
    let kind = match method {
        MethodArg::Pgd => AttackMethod::Pgd,
        MethodArg::Fgsm => AttackMethod::Fgsm,
    };
    let opts = AttackOptions { restarts, steps, seed, ..AttackOptions::default() };
    let start = Instant::now();
    let (mut best_loss, mut found, mut evaluations) = (f64::INFINITY, None, 0);
    for region in p.regions() {
        let unsafe_ = Unsafe {
            any_of: region
                .any_of
                .into_iter()
                .map(|conj| conj.into_iter().map(|(c, d)| Atom { c, d }).collect())
                .collect(),
        };
        let r = attack(net, &InputSet::Box(Interval::new(region.lo, region.hi)), &unsafe_, kind, &opts)?;
        evaluations += r.evaluations;
        best_loss = best_loss.min(r.best_loss);
        if let (Some(x), Some(y)) = (r.counterexample, r.output) {
            found = Some((x, y));
            break;
        }
    }
    Ok(Outcome { method, found, best_loss, evaluations, time_s: start.elapsed().as_secs_f64() })
}

impl Outcome {
    /// What `attack --json` prints.
    pub fn to_json(&self) -> Value {
        let found = &self.found;
        json!({
            "method": if matches!(self.method, MethodArg::Pgd) { "pgd" } else { "fgsm" },
            "found": found.is_some(), "best_loss": self.best_loss, "evaluations": self.evaluations,
            "time_s": self.time_s,
            "counterexample": found.as_ref().map(|f| &f.0), "output": found.as_ref().map(|f| &f.1),
        })
    }
}

pub fn run(args: Args) -> anyhow::Result<()> {
    if args.steps == 0 || args.restarts == 0 {
        anyhow::bail!(
            "--steps and --restarts must be at least 1 (got {} and {}): an attack of no step searches nothing",
            args.steps,
            args.restarts
        );
    }
    let m = super::load_model(&args.model)?;
    let net = &m.network;
    let p = super::load_property(&args.vnnlib, net)?;
    let r = compute(net, &p, args.method, args.restarts, args.steps, args.seed)
        .with_context(|| format!("attacking {}", args.model.display()))?;
    let (found, best_loss, evaluations, time_s) = (&r.found, r.best_loss, r.evaluations, r.time_s);
    if let (Some(path), Some((x, _))) = (&args.output, found) {
        NpyArray::new(vec![1, x.len()], x.clone(), DType::F64).write(path).map_err(anyhow::Error::msg)?;
    }
    if args.json {
        return print_json(&r.to_json());
    }
    match found {
        Some((_, y)) => {
            println!("counterexample found ({evaluations} evaluations, {time_s:.3} s)");
            let ys: Vec<String> = y.iter().map(|v| format!("{v:.6}")).collect();
            println!("output at the counterexample: [{}]", ys.join(", "));
            if let Some(path) = &args.output {
                println!("input written to {}", path.display());
            }
        }
        None => println!(
            "no counterexample found (best violation loss {best_loss:.6} > 0; {evaluations} evaluations, {time_s:.3} s). \
             This proves nothing: use lipcert bounds or verify."
        ),
    }
    Ok(())
}
