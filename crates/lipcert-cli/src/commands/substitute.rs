use crate::commands::boundary::{check_sample, finite, radius, search_options, Settings};
use crate::commands::bounds::MethodArg;
use crate::commands::export::Precision;
use crate::commands::lipschitz::NormArg;
use crate::render::{print_json, table};
use anyhow::{bail, Context};
use lipcert_core::Network;
use lipcert_io::{export_file, NpyArray};
use lipcert_substitute::{substitute, Kind, Stage, SubstituteOptions, SubstituteResult};
use lipcert_verify::BoundaryResult;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

#[derive(clap::Args)]
pub struct Args {
    /// ONNX model (a classifier: one output per class).
    model: PathBuf,
    /// The anchor x0: one sample (any shape with the model input's number of elements).
    #[arg(long)]
    input: PathBuf,
    /// The class of x0 (the model must predict it there).
    #[arg(long)]
    label: usize,
    /// con: constant phi(z0); lin: the line through the anchor's and the attack point's
    /// values; act: the linear piece active at x0 (ReLU / LeakyReLU; the only kind with a
    /// certificate for the original).
    #[arg(long, value_enum, default_value = "act")]
    kind: KindArg,
    /// Fraction of the activation neurons to replace, in [0, 1).
    #[arg(long, default_value_t = 0.9)]
    gamma: f64,
    /// Fraction of the remaining neurons replaced per round of Algorithm 1, in (0, 1].
    #[arg(long, default_value_t = 0.1)]
    gamma0: f64,
    /// Bound propagation of Algorithm 1's rounds.
    #[arg(long, value_enum, default_value = "crown")]
    bounds: MethodArg,
    /// Seconds for each boundary search (the attack, the substitute's, the original's, Lemma 1's).
    #[arg(long, default_value_t = 60.0)]
    timeout: f64,
    /// Relative tolerance of the boundary searches.
    #[arg(long, default_value_t = 1e-3)]
    tol: f64,
    /// Valid input range (for example `--clip 0 1` for images): only points inside count.
    #[arg(long, num_args = 2, value_names = ["LO", "HI"], allow_negative_numbers = true)]
    clip: Vec<f64>,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Also run the exact boundary search on the original network, for the relative error and
    /// the speed-up (can take long: that search is what the substitute avoids).
    #[arg(long)]
    compare: bool,
    /// Skip Lemma 1 (the certified lower bound on the original's distance).
    #[arg(long)]
    no_certify: bool,
    /// Write the substitute to this ONNX file.
    #[arg(long, short = 'o')]
    output: Option<PathBuf>,
    /// Weight precision of the written substitute (f64 keeps its function exactly).
    #[arg(long, value_enum, default_value = "f64")]
    precision: Precision,
    #[arg(long)]
    json: bool,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum KindArg {
    Con,
    Lin,
    Act,
}

impl KindArg {
    pub fn kind(self) -> Kind {
        match self {
            KindArg::Con => Kind::Constant,
            KindArg::Lin => Kind::Linear,
            KindArg::Act => Kind::Pattern,
        }
    }
}

/// The substitute's settings besides the boundary search's.
pub struct Choice {
    pub kind: Kind,
    pub gamma: f64,
    pub gamma0: f64,
    pub bounds: MethodArg,
    pub compare: bool,
    pub certify: bool,
}

/// Builds and measures the substitute of `net` around `x` (named `what` in errors);
/// `on_stage` hears each stage.
pub fn compute(
    net: &Network,
    what: &str,
    x: &[f64],
    s: &Settings,
    c: &Choice,
    on_stage: &mut dyn FnMut(Stage),
) -> anyhow::Result<SubstituteResult> {
    if !(0.0..1.0).contains(&c.gamma) {
        bail!("--gamma must be in [0, 1), got {}", c.gamma);
    }
    if !(c.gamma0 > 0.0 && c.gamma0 <= 1.0) {
        bail!("--gamma0 must be in (0, 1], got {}", c.gamma0);
    }
    let (_, boundary) = search_options(net, what, x, s)?;
    let opts = SubstituteOptions {
        kind: c.kind,
        gamma: c.gamma,
        gamma0: c.gamma0,
        method: c.bounds.method(),
        boundary,
        compare: c.compare,
        certify: c.certify,
    };
    Ok(substitute(net, x, s.label, &opts, on_stage)?)
}

/// Seconds per complete-verifier call of a boundary search (the MILP solves), when any.
fn per_solve(r: &BoundaryResult) -> Value {
    if r.verify_calls == 0 {
        Value::Null
    } else {
        json!(r.verify_time_s / r.verify_calls as f64)
    }
}

fn search_json(r: &BoundaryResult) -> Value {
    json!({
        "lower": finite(r.lower), "upper": finite(r.upper), "closed": r.closed, "timed_out": r.timed_out,
        "crown_radius": r.crown_radius, "pgd_radius": finite(r.pgd_radius),
        "calls": {"crown": r.crown_calls, "pgd": r.pgd_calls, "verify": r.verify_calls},
        "phase_time_s": {"crown": r.crown_time_s, "pgd": r.pgd_time_s, "verify": r.verify_time_s},
        "verify_time_per_call_s": per_solve(r),
        "time_s": r.time_s, "note": r.note,
    })
}

/// The estimate of d_bnd: the substitute's witnessed distance when its bracket closed.
fn estimate(r: &BoundaryResult) -> Option<f64> {
    (r.closed && r.upper.is_finite()).then_some(r.upper)
}

/// |estimate - d_bnd| / d_bnd when both searches closed.
pub fn relative_error(r: &SubstituteResult) -> Option<f64> {
    let d = r.original.as_ref().and_then(estimate)?;
    Some((estimate(&r.estimate)? - d).abs() / d)
}

/// What `substitute --json` prints.
pub fn to_json(r: &SubstituteResult, output: Option<&Path>) -> Value {
    let certified = r.certificate.as_ref().map(|c| {
        json!({"lower": c.lower, "delta": c.delta, "extension": c.extension, "by": c.by, "reason": c.reason,
               "time_s": c.time_s})
    });
    json!({
        "kind": r.kind.name(), "gamma": r.gamma, "gamma0": r.gamma0, "label": r.label,
        "neurons_before": r.neurons_before, "neurons_after": r.neurons_after, "kept_per_layer": r.kept_per_layer,
        "rounds": r.rounds, "folded": r.not_folded.is_none(), "not_folded": r.not_folded,
        "substitute_nodes": r.network.nodes.len(), "substitute_params": r.network.param_count(),
        "d_adv": r.d_adv, "d_adv_by": r.d_adv_by,
        "d_bnd_estimate": {
            "value": estimate(&r.estimate), "lower": finite(r.estimate.lower), "upper": finite(r.estimate.upper),
            "closed": r.estimate.closed,
            "how": "exact boundary search (CROWN, PGD, bisection with the complete verifier) on the substitute: \
                    an estimate of the original's d_bnd, not a bound",
        },
        "substitute": search_json(&r.estimate),
        "original": r.original.as_ref().map(search_json),
        "relative_error": relative_error(r),
        "certified_lower": r.certificate.as_ref().and_then(|c| c.lower),
        "certificate": certified,
        "witnessed_upper": r.witness_upper,
        "times": {
            "attack_s": r.times.attack_s, "choose_s": r.times.choose_s, "fold_s": r.times.fold_s,
            "estimate_s": r.times.estimate_s, "original_s": r.times.original_s, "certify_s": r.times.certify_s,
        },
        "output": output.map(|p| p.display().to_string()),
    })
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let settings = Settings {
        label: args.label,
        norm: NormArg::Inf,
        timeout: args.timeout,
        tol: args.tol,
        clip: args.clip.clone(),
        seed: args.seed,
    };
    let choice = Choice {
        kind: args.kind.kind(),
        gamma: args.gamma,
        gamma0: args.gamma0,
        bounds: args.bounds,
        compare: args.compare,
        certify: !args.no_certify,
    };
    let m = super::load_model(&args.model)?;
    let net = &m.network;
    let file = args.input.display().to_string();
    let x = NpyArray::read(&args.input).map_err(anyhow::Error::msg)?;
    if !x.dtype.is_float() {
        bail!("{file}: dtype {} is not supported; the input must be float32 or float64", x.dtype);
    }
    check_sample(&file, &x.shape, x.data.len(), net)?;
    let bar = crate::progress::Progress::new("substitute", None);
    let mut on_stage = |s: Stage| match s {
        Stage::Start(name) => bar.message(name),
        Stage::Round { replaced, target } => bar.message(&format!("Algorithm 1: {replaced}/{target} replaced")),
    };
    let r = compute(net, &file, &x.data, &settings, &choice, &mut on_stage)?;
    bar.finish();
    if let Some(path) = &args.output {
        export_file(&r.network, path, args.precision.export())
            .map_err(anyhow::Error::msg)
            .with_context(|| format!("{}: cannot write", path.display()))?;
    }
    if args.json {
        return print_json(&to_json(&r, args.output.as_deref()));
    }
    print_table(&r, &args);
    Ok(())
}

fn opt_radius(v: Option<f64>) -> String {
    v.map_or("-".into(), radius)
}

fn print_table(r: &SubstituteResult, args: &Args) {
    println!(
        "{} substitute of {} around {} (label {}, gamma {}, {} rounds of Algorithm 1): {} -> {} activation neurons{}",
        r.kind.name(),
        args.model.display(),
        args.input.display(),
        r.label,
        r.gamma,
        r.rounds,
        r.neurons_before,
        r.neurons_after,
        if r.not_folded.is_some() { " (masked, not folded)" } else { "" }
    );
    if let Some(why) = &r.not_folded {
        println!("not folded: {why}");
    }
    let row = |name: &str, b: &BoundaryResult, t: f64| {
        vec![
            name.to_string(),
            radius(b.lower),
            radius(b.upper),
            if b.closed { "yes" } else { "no" }.into(),
            radius(b.crown_radius),
            radius(b.pgd_radius),
            b.verify_calls.to_string(),
            per_solve(b).as_f64().map_or("-".into(), |v| format!("{v:.3}")),
            format!("{t:.2}"),
        ]
    };
    let mut rows = vec![row("substitute", &r.estimate, r.times.estimate_s)];
    if let Some(o) = &r.original {
        rows.push(row("original", o, r.times.original_s));
    }
    print!(
        "{}",
        table(
            &[
                "network",
                "d_bnd lower",
                "d_bnd upper",
                "closed",
                "crown radius",
                "pgd radius",
                "verify calls",
                "s/call",
                "time s"
            ],
            &rows
        )
    );
    println!();
    println!("d_adv = {} (by {})", radius(r.d_adv), r.d_adv_by);
    println!("d_bnd estimate (substitute's exact search, NOT a bound) = {}", opt_radius(estimate(&r.estimate)));
    if let Some(e) = relative_error(r) {
        println!("relative error |estimate - d_bnd| / d_bnd = {e:.4}");
    }
    if let Some(u) = r.witness_upper {
        println!(
            "witnessed: d_bnd(original) <= {} (the substitute's witness is misclassified by the original)",
            radius(u)
        );
    }
    match &r.certificate {
        Some(c) => match c.lower {
            Some(l) => {
                println!("certified: d_bnd(original) >= {} (Lemma 1, delta = {}; {})", radius(l), radius(c.delta), c.by)
            }
            None => println!("certified: nothing ({})", c.reason.as_deref().unwrap_or("no reason given")),
        },
        None => println!("certified: not computed (--no-certify)"),
    }
    println!(
        "times: attack {:.2} s, Algorithm 1 {:.2} s, fold {:.2} s, estimate {:.2} s, lemma 1 {:.2} s{}",
        r.times.attack_s,
        r.times.choose_s,
        r.times.fold_s,
        r.times.estimate_s,
        r.times.certify_s,
        args.output.as_ref().map(|p| format!("; written to {}", p.display())).unwrap_or_default()
    );
}
