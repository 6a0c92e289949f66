use crate::progress::Progress;
use anyhow::{bail, Context};
use lipcert_io::NpyArray;
use lipcert_report::{Inputs, Options, Points, PointsSource, StateBox};
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

#[derive(clap::Args)]
pub struct Args {
    /// ONNX model (a classifier for the accuracy sections).
    model: PathBuf,
    /// Sample points [N, ...] (float32 or float64), one per row as for `lipcert eval`.
    #[arg(long, requires = "labels")]
    data: Option<PathBuf>,
    /// Labels [N] of the points.
    #[arg(long, requires = "data")]
    labels: Option<PathBuf>,
    /// VNN-LIB properties to verify (their input-box centres are the points when no --data is given).
    #[arg(long, num_args = 1..)]
    vnnlib: Vec<PathBuf>,
    /// An input box (deviation is bounded over it; points are sampled in it when no --data is given).
    #[arg(long = "box", num_args = 2, value_names = ["LO.npy", "HI.npy"])]
    bounds: Vec<PathBuf>,
    /// A pruned version of the model: adds its closed-form, certified and observed deviation.
    #[arg(long)]
    pruned: Option<PathBuf>,
    /// Time budget of the whole report, in seconds.
    #[arg(long, default_value_t = 60.0)]
    budget: f64,
    /// Valid input range, clipped into every perturbation ball (default: the range of the
    /// VNN-LIB boxes or of --box, [0, 1] for the built-in points, none for --data).
    #[arg(long, num_args = 2, value_names = ["LO", "HI"], allow_negative_numbers = true)]
    clip: Vec<f64>,
    /// The most points whose radii are computed.
    #[arg(long, default_value_t = 50)]
    max_points: usize,
    /// Points whose distance to the decision boundary is bracketed.
    #[arg(long, default_value_t = 3)]
    boundary_points: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Output directory: index.html and report.json are written there.
    #[arg(short = 'o', long = "out")]
    out: PathBuf,
    /// Also print report.json on stdout.
    #[arg(long)]
    json: bool,
}

/// Points sampled when none are given.
const DEFAULT_POINTS: usize = 20;

fn read_box(paths: &[PathBuf], n: usize) -> anyhow::Result<Option<StateBox>> {
    let [lo, hi] = paths else { return Ok(None) };
    let read = |p: &PathBuf| -> anyhow::Result<Vec<f64>> {
        let a = NpyArray::read(p).map_err(anyhow::Error::msg).with_context(|| p.display().to_string())?;
        if a.data.len() != n {
            bail!("{}: {} values, the model has {n} inputs", p.display(), a.data.len());
        }
        Ok(a.data)
    };
    let (lo_v, hi_v) = (read(lo)?, read(hi)?);
    if let Some(i) = (0..n).find(|&i| !(lo_v[i].is_finite() && hi_v[i].is_finite() && lo_v[i] <= hi_v[i])) {
        bail!("--box: element {i} is [{}, {}], not a finite interval", lo_v[i], hi_v[i]);
    }
    Ok(Some(StateBox { lo: lo_v, hi: hi_v, source: format!("the box [{}, {}]", lo.display(), hi.display()) }))
}

fn read_points(data: &Path, labels: &Path, net: &lipcert_core::Network) -> anyhow::Result<Points> {
    let x = NpyArray::read(data).map_err(anyhow::Error::msg)?;
    let y = NpyArray::read(labels).map_err(anyhow::Error::msg)?;
    let len = net.input_len();
    let n = x.shape.first().copied().unwrap_or(0);
    if !x.dtype.is_float() || x.data.len() != n * len || n == 0 {
        bail!(
            "{}: expected float inputs [N, {len}] (N >= 1) for model input {:?}, got {} {:?}",
            data.display(),
            net.input_shape(),
            x.dtype,
            x.shape
        );
    }
    if y.data.len() != n {
        bail!("{}: {} labels for {n} samples", labels.display(), y.data.len());
    }
    let classes = net.output_len();
    if let Some(i) = y.data.iter().position(|&v| v.fract() != 0.0 || v < 0.0 || v >= classes as f64) {
        bail!("{}: label {} of sample {i} is not a class index below {classes}", labels.display(), y.data[i]);
    }
    if let Some(i) = x.data.iter().position(|v| !v.is_finite()) {
        bail!("{}: sample {} holds a NaN or infinite value", data.display(), i / len);
    }
    Ok(Points {
        x: x.data,
        labels: y.data.iter().map(|&v| v as usize).collect(),
        source: PointsSource::Files { data: data.display().to_string(), labels: labels.display().to_string() },
        labels_are_predictions: false,
        clip: None,
    })
}

/// `to` as a path relative to the directory `from` (both made absolute).
fn relative(from: &Path, to: &Path) -> Option<PathBuf> {
    let (from, to) = (from.canonicalize().ok()?, to.canonicalize().ok()?);
    let (a, b): (Vec<Component>, Vec<Component>) = (from.components().collect(), to.components().collect());
    let common = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let mut out = PathBuf::new();
    for _ in common..a.len() {
        out.push("..");
    }
    for c in &b[common..] {
        out.push(c.as_os_str());
    }
    Some(out)
}

/// docs/GUARANTEES.md as seen from the report's directory (the repository's copy when this
/// binary runs from a checkout, else the name of the file).
fn guarantees_link(out: &Path) -> String {
    let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/GUARANTEES.md");
    relative(out, &docs).map_or("docs/GUARANTEES.md".into(), |p| p.display().to_string())
}

pub fn run(args: Args) -> anyhow::Result<()> {
    if !(args.budget > 0.0 && args.budget.is_finite() && args.budget <= 1e7) {
        bail!("--budget must be a positive number of seconds (at most 1e7), got {}", args.budget);
    }
    let m = super::load_model(&args.model)?;
    let net = &m.network;
    let properties = args
        .vnnlib
        .iter()
        .map(|p| Ok((p.display().to_string(), super::load_property(p, net)?)))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let state_box = read_box(&args.bounds, net.input_len())?;
    let mut points = match (&args.data, &args.labels) {
        (Some(d), Some(l)) => read_points(d, l, net)?,
        _ if !properties.is_empty() => Points::vnnlib_centres(net, &properties).map_err(anyhow::Error::msg)?,
        _ => match &state_box {
            Some(b) => Points::sample_box(net, b, DEFAULT_POINTS, args.seed).map_err(anyhow::Error::msg)?,
            None => Points::default_for(net, DEFAULT_POINTS, args.seed).map_err(anyhow::Error::msg)?,
        },
    };
    match args.clip.as_slice() {
        [lo, hi] if lo <= hi => points.clip = Some((*lo, *hi)),
        [lo, hi] => bail!("--clip {lo} {hi}: the lower end is above the upper end"),
        _ => {}
    }
    let pruned = match &args.pruned {
        Some(p) => Some((p.display().to_string(), super::load_model(p)?.network)),
        None => None,
    };
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("{}: cannot create the directory", args.out.display()))?;
    let inputs = Inputs { points, properties, state_box, pruned };
    let opts = Options {
        budget: Duration::from_secs_f64(args.budget),
        seed: args.seed,
        max_points: args.max_points.max(1),
        boundary_points: args.boundary_points,
    };
    let bar = Progress::new("report", None);
    let report = lipcert_report::run(&m, &args.model.display().to_string(), &inputs, &opts, &|p| {
        bar.set(p.done as u64, p.total as u64, p.analysis)
    })
    .map_err(anyhow::Error::msg)?;
    bar.finish();
    let json = serde_json::to_string_pretty(&report)?;
    let html = lipcert_report::html::render(&report, &guarantees_link(&args.out));
    let (jp, hp) = (args.out.join("report.json"), args.out.join("index.html"));
    std::fs::write(&jp, &json).with_context(|| jp.display().to_string())?;
    std::fs::write(&hp, &html).with_context(|| hp.display().to_string())?;
    if args.json {
        println!("{json}");
        return Ok(());
    }
    print_summary(&report);
    println!("wrote {} and {} ({:.1} s)", hp.display(), jp.display(), report.time_s);
    Ok(())
}

/// A few lines on the terminal; the page has the rest.
fn print_summary(r: &lipcert_report::Report) {
    use lipcert_report::html::fmt;
    println!("robustness report of {} ({})", r.model.file, r.points.description);
    for l in &r.lipschitz {
        println!("Lipschitz constant (l_{}) in [{}, {}] (certified)", l.norm, fmt(Some(l.lower)), fmt(Some(l.upper)));
    }
    if let Some(rb) = &r.robustness {
        let mut header = vec!["method".to_string()];
        header.extend(rb.radii.iter().map(|r| format!("r={}", fmt(Some(*r)))));
        let rows: Vec<Vec<String>> = rb
            .rows
            .iter()
            .map(|row| {
                let mut v = vec![format!("{} ({})", row.method, row.kind)];
                v.extend(row.accuracy.iter().map(|a| format!("{:.1}%", 100.0 * a)));
                v
            })
            .collect();
        let h: Vec<&str> = header.iter().map(|s| s.as_str()).collect();
        println!("accuracy at l_inf radius r, clean {:.1}%:", 100.0 * rb.clean_accuracy);
        print!("{}", crate::render::table(&h, &rows));
    }
    if let Some(sm) = &r.smoothing {
        for run in &sm.runs {
            println!(
                "smoothed classifier (Cohen, sigma {}, n {}): clean {:.1}%, average certified l2 radius {}",
                run.sigma,
                run.n,
                100.0 * run.clean_accuracy,
                fmt(Some(run.average_certified_radius))
            );
        }
    }
    if let Some(v) = &r.verification {
        for p in &v.properties {
            println!("verify {}: {} ({:.2} s)", p.file, p.result, p.time_s);
        }
    }
    if let Some(b) = &r.boundary {
        for q in &b.rows {
            println!(
                "d_bnd of point {} in [{}, {}]",
                q.index,
                fmt(Some(q.lower)),
                fmt(q.upper.or(Some(f64::INFINITY)))
            );
        }
    }
    if let Some(d) = &r.deviation {
        println!(
            "deviation of {}: certified {} , closed form {}, observed {}",
            d.pruned_file,
            fmt(Some(d.given.certified)),
            fmt(d.given.closed_form),
            fmt(Some(d.given.observed_max))
        );
    }
    for s in &r.skipped {
        println!("skipped: {}: {}", s.analysis, s.reason);
    }
}
