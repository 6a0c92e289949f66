use crate::render::{print_json, table};
use anyhow::{bail, Context};
use lipcert_bounds::{bound, Bounds, InputSet, Interval, Method, Options};
use lipcert_io::NpyArray;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(clap::Args)]
pub struct Args {
    /// ONNX model.
    model: PathBuf,
    /// VNN-LIB property: its input box, and a certified lower bound of c.y for every output
    /// atom c.y <= d (the unsafe side; the atom is refuted when the bound exceeds d).
    #[arg(long, conflicts_with = "input_box", required_unless_present = "input_box")]
    vnnlib: Option<PathBuf>,
    /// Input box: two .npy files with the lower and upper bound of every input element
    /// (C order, as for `lipcert eval`).
    #[arg(long = "box", num_args = 2, value_names = ["LO.npy", "HI.npy"])]
    input_box: Vec<PathBuf>,
    /// Bound propagation method (see docs/GUARANTEES.md).
    #[arg(long, value_enum, default_value = "crown")]
    method: MethodArg,
    /// alpha-CROWN: optimization steps.
    #[arg(long, default_value_t = 20)]
    alpha_iterations: usize,
    /// alpha-CROWN: keep CROWN's intermediate bounds and optimize only the slopes of the
    /// output rows; faster, and usually looser than the default, which also optimizes
    /// separate slopes for every intermediate bound.
    #[arg(long)]
    fix_intermediate: bool,
    /// Timing: one untimed warm-up run, then N timed runs; `time_s` is their median (the
    /// bounds are the same every run). The default is one cold run.
    #[arg(long, value_name = "N")]
    repeat: Option<usize>,
    #[arg(long)]
    json: bool,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum MethodArg {
    Ibp,
    Crown,
    CrownPure,
    AlphaCrown,
}

impl MethodArg {
    pub fn method(self) -> Method {
        match self {
            MethodArg::Ibp => Method::Ibp,
            MethodArg::Crown => Method::Crown,
            MethodArg::CrownPure => Method::CrownPure,
            MethodArg::AlphaCrown => Method::AlphaCrown,
        }
    }
}

fn read_bound(path: &Path, len: usize) -> anyhow::Result<Vec<f64>> {
    let a = NpyArray::read(path).map_err(anyhow::Error::msg)?;
    if !a.dtype.is_float() || a.data.len() != len {
        bail!(
            "{}: expected {len} float bounds (one per model input element), got {} {:?}",
            path.display(),
            a.dtype,
            a.shape
        );
    }
    Ok(a.data)
}

/// What was bounded: one or more input boxes, and the specification rows.
pub struct Problem {
    /// Each box with the atoms (indices) that its cases use.
    boxes: Vec<(Interval, Vec<usize>)>,
    spec: Vec<Vec<f64>>,
    thresholds: Vec<f64>,
    labels: Vec<String>,
    /// Whether the problem came from a VNN-LIB property (then `spec_lower` is reported).
    from_vnnlib: bool,
}

impl Problem {
    /// The input boxes and output atoms of a VNN-LIB property.
    pub fn from_vnnlib(path: &Path, net: &lipcert_core::Network) -> anyhow::Result<Problem> {
        let p = super::load_property(path, net)?;
        let boxes = p.input_boxes().into_iter().map(|(lo, hi, cases)| {
            let mut atoms: Vec<usize> = cases.iter().flat_map(|&k| p.cases[k].atoms.iter().copied()).collect();
            atoms.sort_unstable();
            atoms.dedup();
            (Interval::new(lo, hi), atoms)
        });
        Ok(Problem {
            boxes: boxes.collect(),
            spec: p.atoms.iter().map(|a| a.c.clone()).collect(),
            thresholds: p.atoms.iter().map(|a| a.d).collect(),
            labels: p.atoms.iter().map(|a| a.text.clone()).collect(),
            from_vnnlib: true,
        })
    }

    /// One input box, no specification rows; checked against the model's input size.
    pub fn from_box(lo: Vec<f64>, hi: Vec<f64>, net: &lipcert_core::Network) -> anyhow::Result<Problem> {
        let n = net.input_len();
        if lo.len() != n || hi.len() != n {
            bail!(
                "box: expected {n} lower and {n} upper bounds (one per model input element), got {} and {}",
                lo.len(),
                hi.len()
            );
        }
        Ok(Problem {
            boxes: vec![(Interval::new(lo, hi), vec![])],
            spec: vec![],
            thresholds: vec![],
            labels: vec![],
            from_vnnlib: false,
        })
    }
}

fn problem(args: &Args, net: &lipcert_core::Network) -> anyhow::Result<Problem> {
    if let Some(path) = &args.vnnlib {
        return Problem::from_vnnlib(path, net);
    }
    let input_len = net.input_len();
    let lo = read_bound(&args.input_box[0], input_len)?;
    let hi = read_bound(&args.input_box[1], input_len)?;
    Problem::from_box(lo, hi, net)
}

/// Certified output bounds and atom lower bounds over a problem's input set.
pub struct Outcome {
    pub bounds: Bounds,
    pub refuted: Vec<bool>,
    pub time_s: f64,
}

/// The method options that make sense together (before any file is read).
fn check_options(method: Method, alpha_iterations: usize, fix_intermediate: bool) -> anyhow::Result<()> {
    if alpha_iterations == 0 {
        bail!("--alpha-iterations must be at least 1 (no optimization step is plain CROWN: --method crown)");
    }
    if fix_intermediate && method != Method::AlphaCrown {
        bail!(
            "--fix-intermediate applies to --method alpha-crown only ({} has no intermediate slopes to fix)",
            method.name()
        );
    }
    Ok(())
}

/// Bounds the outputs of `net` (and the atoms' c.y) over the problem's input boxes.
pub fn compute(
    net: &lipcert_core::Network,
    pb: &Problem,
    method: Method,
    alpha_iterations: usize,
    fix_intermediate: bool,
) -> anyhow::Result<Outcome> {
    check_options(method, alpha_iterations, fix_intermediate)?;
    let opts = Options { alpha_iterations, alpha_intermediate: !fix_intermediate, ..Options::default() };
    let start = Instant::now();
    // Several input boxes (a disjunction over inputs): output bounds are the hull over the
    // boxes, an atom's bound the minimum over the boxes whose cases use it.
    let mut total: Option<Bounds> = None;
    for (b, atoms) in &pb.boxes {
        let r = bound(net, &InputSet::Box(b.clone()), &pb.spec, method, &opts)?;
        let r = Bounds {
            spec_lower: (0..pb.spec.len())
                .map(|i| if pb.boxes.len() == 1 || atoms.contains(&i) { r.spec_lower[i] } else { f64::INFINITY })
                .collect(),
            ..r
        };
        total = Some(match total {
            None => r,
            Some(t) => Bounds {
                method,
                lower: t.lower.iter().zip(&r.lower).map(|(a, b)| a.min(*b)).collect(),
                upper: t.upper.iter().zip(&r.upper).map(|(a, b)| a.max(*b)).collect(),
                spec_lower: t.spec_lower.iter().zip(&r.spec_lower).map(|(a, b)| a.min(*b)).collect(),
            },
        });
    }
    let r = total.context("the property has no input box")?;
    let refuted: Vec<bool> = r.spec_lower.iter().zip(&pb.thresholds).map(|(l, d)| l > d).collect();
    Ok(Outcome { bounds: r, refuted, time_s: start.elapsed().as_secs_f64() })
}

impl Outcome {
    /// What `bounds --json` prints.
    pub fn to_json(&self, pb: &Problem) -> Value {
        let r = &self.bounds;
        let spec = if pb.from_vnnlib { json!(r.spec_lower) } else { Value::Null };
        json!({
            "method": r.method.name(), "lower": r.lower, "upper": r.upper, "spec_lower": spec,
            "atoms": pb.labels, "thresholds": pb.thresholds, "refuted": self.refuted, "time_s": self.time_s,
        })
    }
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let method = args.method.method();
    check_options(method, args.alpha_iterations, args.fix_intermediate)?;
    let m = super::load_model(&args.model)?;
    let net = &m.network;
    let pb = problem(&args, net)?;
    let runs = match args.repeat {
        Some(0) => bail!("--repeat must be at least 1"),
        Some(n) => n + 1,
        None => 1,
    };
    let mut times = Vec::with_capacity(runs);
    let mut out = None;
    for _ in 0..runs {
        let o = compute(net, &pb, method, args.alpha_iterations, args.fix_intermediate)
            .with_context(|| format!("bounding over the input box of {}", args.model.display()))?;
        times.push(o.time_s);
        out = Some(o);
    }
    let mut out = out.context("no run")?;
    if runs > 1 {
        let mut timed = times[1..].to_vec();
        timed.sort_by(f64::total_cmp);
        out.time_s = timed[timed.len() / 2];
    }
    if args.json {
        return print_json(&out.to_json(&pb));
    }
    let (r, refuted, time_s) = (&out.bounds, &out.refuted, out.time_s);
    let rows: Vec<Vec<String>> = r
        .lower
        .iter()
        .zip(&r.upper)
        .enumerate()
        .map(|(i, (l, h))| vec![format!("Y_{i}"), format!("{l:.6}"), format!("{h:.6}")])
        .collect();
    println!("output bounds of {} over the input set ({}, {time_s:.3} s)", args.model.display(), method.name());
    print!("{}", table(&["output", "lower (certified)", "upper (certified)"], &rows));
    if !pb.spec.is_empty() {
        let rows: Vec<Vec<String>> = (0..pb.spec.len())
            .map(|i| {
                vec![
                    pb.labels[i].clone(),
                    format!("{:.6}", r.spec_lower[i]),
                    format!("{}", pb.thresholds[i]),
                    if refuted[i] { "refuted".into() } else { "open".into() },
                ]
            })
            .collect();
        println!();
        print!("{}", table(&["atom (unsafe: c.y <= d)", "lower bound of c.y", "d", "status"], &rows));
        let n = refuted.iter().filter(|r| **r).count();
        println!("{n} of {} atoms refuted", refuted.len());
    }
    Ok(())
}
