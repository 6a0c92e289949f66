use crate::commands::lipschitz::NormArg;
use crate::render::{print_json, table};
use anyhow::bail;
use lipcert_bounds::Interval;
use lipcert_core::Network;
use lipcert_io::{DType, NpyArray};
use lipcert_verify::{
    decision_boundary_with_progress, BoundaryNorm, BoundaryOptions, BoundaryResult, ProbeOutcome, Progress,
};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::Duration;

#[derive(clap::Args)]
pub struct Args {
    /// ONNX model (a classifier: one output per class).
    model: PathBuf,
    /// The point x0: one sample (any shape with the model input's number of elements, float32 or float64).
    #[arg(long)]
    input: PathBuf,
    /// The class whose decision region is measured (class index).
    #[arg(long)]
    label: usize,
    #[arg(long, value_enum, default_value = "inf")]
    norm: NormArg,
    /// Seconds for the whole search; the bracket found so far is reported when it runs out.
    #[arg(long, default_value_t = 60.0)]
    timeout: f64,
    /// Stop when upper - lower <= tol * upper.
    #[arg(long, default_value_t = 1e-3)]
    tol: f64,
    /// Valid input range (for example `--clip 0 1` for images): only points inside count.
    #[arg(long, num_args = 2, value_names = ["LO", "HI"], allow_negative_numbers = true)]
    clip: Vec<f64>,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Write the witness (the misclassified point at distance `upper`) to this .npy file as [1, inputs].
    #[arg(long, short = 'o')]
    output: Option<PathBuf>,
    #[arg(long)]
    json: bool,
}

/// A radius with 7 significant digits ("inf" for +inf).
pub fn radius(v: f64) -> String {
    if v.is_infinite() {
        return "inf".into();
    }
    if v == 0.0 {
        return "0".into();
    }
    let mag = v.abs().log10().floor() as i32;
    if (-4..6).contains(&mag) {
        format!("{v:.*}", (6 - mag).max(0) as usize)
    } else {
        format!("{v:.6e}")
    }
}

pub fn finite(v: f64) -> Value {
    if v.is_finite() {
        json!(v)
    } else {
        Value::Null
    }
}

/// The search's settings: the CLI's --label, --norm, --timeout, --tol, --clip and --seed.
#[derive(Clone)]
pub struct Settings {
    pub label: usize,
    pub norm: NormArg,
    pub timeout: f64,
    pub tol: f64,
    /// Empty, or [lo, hi]: the valid input range.
    pub clip: Vec<f64>,
    pub seed: u64,
}

/// Rejects a non-positive timeout or a negative tolerance before any work.
pub fn check_settings(s: &Settings) -> anyhow::Result<()> {
    if !(s.timeout > 0.0 && s.timeout.is_finite()) {
        bail!("--timeout must be a positive number of seconds, got {}", s.timeout);
    }
    if !(s.tol >= 0.0 && s.tol.is_finite()) {
        bail!("--tol must be a non-negative number, got {}", s.tol);
    }
    Ok(())
}

/// Brackets the distance from the point `x` (named `what` in errors) to the decision boundary
/// of class `s.label`; `on_probe` hears every probe of the search.
pub fn compute(
    net: &Network,
    what: &str,
    x: &[f64],
    s: &Settings,
    on_probe: &mut dyn FnMut(&Progress),
) -> anyhow::Result<BoundaryResult> {
    let (norm, opts) = search_options(net, what, x, s)?;
    Ok(decision_boundary_with_progress(net, x, s.label, norm, &opts, on_probe)?)
}

/// The norm and the search options of `s` for the point `x` (named `what` in errors), after
/// checking the point, the label and the clip range.
pub fn search_options(
    net: &Network,
    what: &str,
    x: &[f64],
    s: &Settings,
) -> anyhow::Result<(BoundaryNorm, BoundaryOptions)> {
    check_settings(s)?;
    let (len, classes) = (net.input_len(), net.output_len());
    let file = what;
    if let Some(i) = x.iter().position(|v| !v.is_finite()) {
        bail!("{file}: element {i} is {}", x[i]);
    }
    if s.label >= classes {
        bail!("--label {}: the model has {classes} outputs (classes 0 to {})", s.label, classes - 1);
    }
    let domain = match s.clip.as_slice() {
        [lo, hi] if lo <= hi => Some(Interval::new(vec![*lo; len], vec![*hi; len])),
        [lo, hi] => bail!("--clip {lo} {hi}: the lower end is above the upper end"),
        [] => None,
        c => bail!("--clip takes two values LO HI, got {}", c.len()),
    };
    if let [lo, hi] = s.clip.as_slice() {
        if let Some(i) = x.iter().position(|v| !(lo <= v && v <= hi)) {
            bail!("{file}: element {i} is {}, outside --clip {lo} {hi}", x[i]);
        }
    }
    let norm = match s.norm {
        NormArg::Inf => BoundaryNorm::Inf,
        NormArg::L2 => BoundaryNorm::L2,
    };
    let mut opts = BoundaryOptions {
        timeout: Duration::from_secs_f64(s.timeout),
        tol: s.tol,
        domain,
        ..BoundaryOptions::default()
    };
    opts.attack.seed = s.seed;
    opts.verify.seed = s.seed;
    Ok((norm, opts))
}

/// Rejects a sample whose element count is not the model input's (`shape` as given).
pub fn check_sample(what: &str, shape: &[usize], len_given: usize, net: &Network) -> anyhow::Result<()> {
    let len = net.input_len();
    if len_given != len {
        bail!(
            "{what}: shape {shape:?} holds {len_given} elements, but the model input '{}' {:?} has {len} (one sample)",
            net.input_name(),
            net.input_shape()
        );
    }
    Ok(())
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let settings = Settings {
        label: args.label,
        norm: args.norm,
        timeout: args.timeout,
        tol: args.tol,
        clip: args.clip.clone(),
        seed: args.seed,
    };
    check_settings(&settings)?;
    let m = super::load_model(&args.model)?;
    let net = &m.network;
    let file = args.input.display().to_string();
    let x = NpyArray::read(&args.input).map_err(anyhow::Error::msg)?;
    if !x.dtype.is_float() {
        bail!("{file}: dtype {} is not supported; the input must be float32 or float64", x.dtype);
    }
    check_sample(&file, &x.shape, x.data.len(), net)?;
    let bar = crate::progress::Progress::new("boundary", None);
    let mut on_probe = |p: &Progress| {
        bar.message(&format!(
            "[{}, {}]  {} at {}: {}",
            radius(p.lower),
            radius(p.upper),
            p.probe.phase.name(),
            radius(p.probe.eps),
            p.probe.outcome.word()
        ));
    };
    let r = compute(net, &file, &x.data, &settings, &mut on_probe)?;
    bar.finish();

    if let (Some(path), Some(w)) = (&args.output, &r.witness) {
        NpyArray::new(vec![1, w.len()], w.clone(), DType::F64).write(path).map_err(anyhow::Error::msg)?;
    }
    if args.json {
        return print_json(&to_json(&r, &settings.clip, args.tol));
    }
    print_table(&r, &args);
    Ok(())
}

/// The class with the largest output other than `label` (the side the witness crossed to).
fn crossed(y: &[f64], label: usize) -> Option<usize> {
    (0..y.len()).filter(|&j| j != label).max_by(|&a, &b| y[a].total_cmp(&y[b]))
}

/// What `boundary --json` prints; `clip` is empty or [lo, hi].
pub fn to_json(r: &BoundaryResult, clip: &[f64], tol: f64) -> Value {
    let probes: Vec<Value> = r
        .probes
        .iter()
        .map(|p| {
            let mut v = json!({"phase": p.phase.name(), "eps": p.eps, "outcome": p.outcome.word(), "time_s": p.time_s});
            match &p.outcome {
                ProbeOutcome::Counterexample { distance } => v["distance"] = json!(distance),
                ProbeOutcome::Unsat { milp } => v["milp"] = json!(milp),
                ProbeOutcome::Undecided(reason) => v["reason"] = json!(reason),
                _ => {}
            }
            v
        })
        .collect();
    let count = |word: &str| r.probes.iter().filter(|p| p.phase.name() == "verify" && p.outcome.word() == word).count();
    json!({
        "label": r.label, "predicted": r.predicted, "margin": r.margin, "norm": r.norm.name(),
        "clip": if clip.is_empty() { Value::Null } else { json!(clip) },
        "lower": finite(r.lower), "lower_infinite": r.lower.is_infinite(), "lower_by": r.lower_by.name(),
        "upper": finite(r.upper), "upper_by": r.upper_by.name(),
        "closed": r.closed, "timed_out": r.timed_out, "exact_search": r.exact_search, "note": r.note,
        "tol": tol,
        "crown_radius": r.crown_radius, "pgd_radius": finite(r.pgd_radius),
        "calls": {"crown": r.crown_calls, "pgd": r.pgd_calls, "verify": r.verify_calls},
        "verify": {"unsat": count("unsat"), "sat": count("counterexample"), "undecided": count("undecided")},
        "time_s": r.time_s,
        "phase_time_s": {"crown": r.crown_time_s, "pgd": r.pgd_time_s, "verify": r.verify_time_s},
        "witness": r.witness, "witness_output": r.witness_output,
        "witness_class": r.witness_output.as_ref().and_then(|y| crossed(y, r.label)),
        "probes": probes,
    })
}

fn print_table(r: &BoundaryResult, args: &Args) {
    let clip = match args.clip.as_slice() {
        [lo, hi] => format!(", inputs clipped to [{lo}, {hi}]"),
        _ => String::new(),
    };
    println!(
        "distance from {} to the decision boundary of class {} in the l_{} norm{clip} ({}, {:.2} s)",
        args.input.display(),
        r.label,
        r.norm.name(),
        args.model.display(),
        r.time_s
    );
    if r.predicted != r.label || r.margin <= 0.0 {
        println!(
            "the model does not put class {} strictly on top at the input (it predicts {}): distance 0",
            r.label, r.predicted
        );
        return;
    }
    let verify_counts = {
        let c = |w: &str| r.probes.iter().filter(|p| p.phase.name() == "verify" && p.outcome.word() == w).count();
        format!("{} unsat, {} sat, {} undecided", c("unsat"), c("counterexample"), c("undecided"))
    };
    let mut rows = vec![
        vec![
            "crown radius".into(),
            radius(r.crown_radius),
            "largest radius where CROWN certifies every margin".into(),
            r.crown_calls.to_string(),
            format!("{:.3}", r.crown_time_s),
        ],
        vec![
            "pgd radius".into(),
            radius(r.pgd_radius),
            "smallest radius where PGD finds a misclassified point".into(),
            r.pgd_calls.to_string(),
            format!("{:.3}", r.pgd_time_s),
        ],
    ];
    if r.exact_search || r.verify_calls > 0 {
        let what =
            if r.exact_search { "bisection with verify" } else { "verify on l_inf boxes (they contain the l2 ball)" };
        rows.push(vec![
            if r.exact_search { "exact search" } else { "l_inf boxes" }.into(),
            String::new(),
            format!("{what} ({verify_counts})"),
            r.verify_calls.to_string(),
            format!("{:.3}", r.verify_time_s),
        ]);
    }
    rows.push(vec![
        "lower (proven)".into(),
        radius(r.lower),
        r.lower_by.describe().into(),
        String::new(),
        String::new(),
    ]);
    rows.push(vec![
        "upper (witnessed)".into(),
        radius(r.upper),
        r.upper_by.describe().into(),
        String::new(),
        String::new(),
    ]);
    print!("{}", table(&["bound", "radius", "established by", "calls", "time s"], &rows));
    println!();
    let width = r.upper - r.lower;
    let status = if r.closed {
        format!("closed to tol {}", args.tol)
    } else {
        format!("not closed: {}", r.note.as_deref().unwrap_or("see the probes"))
    };
    if r.lower.is_infinite() {
        println!("d_bnd = inf: no input in the domain is misclassified (proven)");
    } else if r.upper.is_infinite() {
        println!("d_bnd >= {} ({status})", radius(r.lower));
    } else {
        println!(
            "d_bnd in [{}, {}]: width {width:.2e} ({:.2e} relative), {status}",
            radius(r.lower),
            radius(r.upper),
            width / r.upper.max(1e-300)
        );
    }
    if let (Some(y), Some(_)) = (&r.witness_output, &r.witness) {
        if let Some(j) = crossed(y, r.label) {
            let written = args.output.as_ref().map(|p| format!("; written to {}", p.display())).unwrap_or_default();
            println!(
                "witness: class {j} at distance {} (y_{j} - y_{} = {:.3e}){written}",
                radius(r.upper),
                r.label,
                y[j] - y[r.label]
            );
        }
    }
}
