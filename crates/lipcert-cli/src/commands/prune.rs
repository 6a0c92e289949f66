use crate::commands::deviation::{measures_json, BoxArgs, MeasureArgs, Measures, StateBox};
use crate::render::{print_json, table};
use anyhow::{bail, Context};
use lipcert_core::{Network, Rng};
use lipcert_io::{export_file, ExportPrecision, NpyArray};
use lipcert_prune::schedule::{schedule, ScheduleOptions};
use lipcert_prune::{prunable_layers, prune_network, CertifyOptions, Method, Pattern, PruneOptions, PruneReport};
use lipcert_report::plot::{grid, Panel, Series};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(clap::Args)]
pub struct Args {
    /// ONNX model.
    model: PathBuf,
    /// Pruning method (several, comma-separated, with --sweep).
    #[arg(long, value_enum, value_delimiter = ',', default_value = "sparsegpt")]
    method: Vec<MethodArg>,
    /// Fraction of the weights of every dense and convolutional layer to set to zero.
    #[arg(long, conflicts_with_all = ["nm", "budget", "sweep"])]
    sparsity: Option<f64>,
    /// N:M sparsity: keep N of every M consecutive weights of a row (e.g. 2:4).
    #[arg(long, value_name = "N:M", conflicts_with_all = ["budget", "sweep"])]
    nm: Option<String>,
    /// Robustness-aware schedule: the largest per-layer sparsities (greedy) that keep the certified
    /// sup ||f - f_hat||_2 over the box at most this budget. Needs a box.
    #[arg(long, conflicts_with = "sweep")]
    budget: Option<f64>,
    /// Sparsities to sweep, comma-separated (e.g. 0.1,0.3,0.5,0.7): for each method and sparsity,
    /// the closed-form, certified and observed deviation over the box. Writes no model.
    #[arg(long, value_delimiter = ',')]
    sweep: Vec<f64>,
    /// Calibration inputs [N, ...] (.npy) for the layer-wise Hessians.
    #[arg(long)]
    calib: Option<PathBuf>,
    /// Without --calib: this many calibration states drawn uniformly from the box.
    #[arg(long, default_value_t = 4096)]
    calib_samples: usize,
    #[command(flatten)]
    states: BoxArgs,
    #[command(flatten)]
    measure: MeasureArgs,
    /// Hessian dampening lambda (H + lambda mean(diag H) I), for OBS and SparseGPT.
    #[arg(long, default_value_t = 0.01)]
    damp: f64,
    /// SparseGPT column block.
    #[arg(long, default_value_t = 128)]
    block: usize,
    /// Where to write the pruned model (ONNX).
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// Weight precision of the written model.
    #[arg(long, value_enum, default_value = "f32")]
    precision: Precision,
    /// With --sweep: write the sparsity-deviation plot (SVG).
    #[arg(long)]
    plot: Option<PathBuf>,
    #[arg(long)]
    json: bool,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum MethodArg {
    Magnitude,
    Obd,
    Obs,
    Sparsegpt,
}

impl MethodArg {
    pub fn method(self) -> Method {
        match self {
            MethodArg::Magnitude => Method::Magnitude,
            MethodArg::Obd => Method::Obd,
            MethodArg::Obs => Method::Obs,
            MethodArg::Sparsegpt => Method::SparseGpt,
        }
    }
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum Precision {
    F32,
    F64,
}

/// Calibration inputs: the file, or uniform samples of the box.
fn calibration(args: &Args, net: &Network, b: Option<&StateBox>) -> anyhow::Result<(Vec<f64>, usize, String)> {
    let n_in = net.input_len();
    if let Some(p) = &args.calib {
        let a = NpyArray::read(p).map_err(anyhow::Error::msg).with_context(|| format!("{}", p.display()))?;
        if a.data.is_empty() || a.data.len() % n_in != 0 {
            bail!("{}: {} values is not a whole number of samples of {n_in} inputs", p.display(), a.data.len());
        }
        let n = a.data.len() / n_in;
        return Ok((a.data, n, format!("{n} samples from {}", p.display())));
    }
    let Some(b) = b else {
        bail!("give calibration inputs (--calib X.npy) or a box to draw them from (--box, --system or --vnnlib)");
    };
    let (x, source) = uniform_calibration(b, args.calib_samples, args.measure.seed())?;
    Ok((x, args.calib_samples, source))
}

/// `samples` calibration inputs drawn uniformly from the box, and where they came from.
pub fn uniform_calibration(b: &StateBox, samples: usize, seed: u64) -> anyhow::Result<(Vec<f64>, String)> {
    if samples == 0 {
        bail!("--calib-samples must be at least 1");
    }
    let n_in = b.lo.len();
    // Its own stream of the seed: calibration states are not the measurement's samples.
    let mut rng = Rng::new(seed ^ 0xca1b);
    let x = (0..samples * n_in).map(|i| rng.range(b.lo[i % n_in], b.hi[i % n_in])).collect();
    Ok((x, format!("{samples} uniform samples of {}", b.source)))
}

impl Args {
    fn options(&self) -> anyhow::Result<PruneOptions> {
        if !(self.damp >= 0.0 && self.damp.is_finite()) || self.block == 0 {
            bail!("--damp must be a finite number >= 0 and --block at least 1");
        }
        Ok(PruneOptions { damp: self.damp, block: self.block })
    }
}

fn layer_rows(r: &PruneReport) -> Vec<Vec<String>> {
    r.layers
        .iter()
        .map(|l| {
            vec![
                l.node.clone(),
                l.kind.to_string(),
                l.weights.to_string(),
                format!("{:.1}%", 100.0 * l.sparsity),
                format!("{:.4e}", l.recon_error),
                format!("{:.4e}", l.relative_error),
                format!("{:.4e}", l.dw_norm),
            ]
        })
        .collect()
}

const LAYER_HEADER: [&str; 7] =
    ["node", "op", "weights", "sparsity", "||WX - W_hat X||_F^2", "relative", "||dW||_2 <="];

/// Refuses a model with nothing to prune (the error names the file).
pub fn check_prunable(path: &Path, net: &Network) -> anyhow::Result<()> {
    if prunable_layers(net).is_empty() {
        bail!("{}: no dense or convolutional layer to prune", path.display());
    }
    Ok(())
}

/// Prunes every dense and convolutional layer with the same pattern.
pub fn prune_every_layer(
    net: &Network,
    calib: &[f64],
    n: usize,
    method: Method,
    pattern: Pattern,
    opts: &PruneOptions,
) -> anyhow::Result<(Network, PruneReport)> {
    let layers = prunable_layers(net).len();
    Ok(prune_network(net, calib, n, method, &vec![Some(pattern); layers], opts)?)
}

/// Writes the pruned model as ONNX.
pub fn write(pruned: &Network, output: &Path, precision: Precision) -> anyhow::Result<()> {
    let precision = match precision {
        Precision::F32 => ExportPrecision::F32,
        Precision::F64 => ExportPrecision::F64,
    };
    export_file(pruned, output, precision).with_context(|| format!("cannot write {}", output.display()))
}

/// What `lipcert prune --json` prints.
pub fn to_json(report: &PruneReport, calibration: &str, output: &Path, schedule: Option<Value>, time_s: f64) -> Value {
    json!({
        "report": report, "calibration": calibration, "output": output.display().to_string(),
        "schedule": schedule, "time_s": time_s,
    })
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let net = super::load_model(&args.model)?.network;
    check_prunable(&args.model, &net)?;
    let states = args.states.resolve(&net)?;
    let opts = args.options()?;
    let (calib, n, calib_source) = calibration(&args, &net, states.as_ref())?;
    if !args.sweep.is_empty() {
        let Some(b) = states else { bail!("--sweep needs a box (--box, --system or --vnnlib)") };
        return sweep(&args, &net, &calib, n, &b, &opts);
    }
    let [method] = args.method.as_slice() else {
        bail!("give one --method (several only with --sweep)");
    };
    let method = method.method();
    let Some(output) = &args.output else {
        bail!("give the output file: -o PRUNED.onnx");
    };
    let start = Instant::now();
    let (pruned, report, schedule_info) = if let Some(eps) = args.budget {
        let Some(b) = &states else { bail!("--budget needs a box (--box, --system or --vnnlib)") };
        let splits = args.measure.splits_for(&net);
        let sched_opts = ScheduleOptions {
            certify: CertifyOptions {
                method: args.measure.bound_method(),
                splits,
                deadline: None,
                ..CertifyOptions::default()
            },
            prune: opts,
            ..ScheduleOptions::default()
        };
        // Each candidate is pruned and certified: seconds to minutes, with no natural step count.
        let spinner = std::sync::Arc::new(crate::progress::Progress::new("prune", None));
        spinner.message(&format!("searching per-layer sparsities under the budget {eps}"));
        let beat = spinner.heartbeat();
        let s = schedule(&net, &calib, n, method, &b.lo, &b.hi, eps, &sched_opts);
        drop(beat);
        spinner.finish();
        let s = s?;
        let info = json!({"budget": eps, "certified": s.certified, "sparsities": s.sparsities,
            "evaluations": s.evaluations, "steps": s.steps});
        (s.network, s.report, Some(info))
    } else {
        let pattern = match (&args.sparsity, &args.nm) {
            (Some(p), None) => Pattern::Unstructured { sparsity: *p },
            (None, Some(nm)) => Pattern::parse_nm(nm)?,
            _ => bail!("give one of --sparsity P, --nm N:M, --budget EPS or --sweep LIST"),
        };
        let (p, r) = prune_every_layer(&net, &calib, n, method, pattern, &opts)?;
        (p, r, None)
    };
    let time_s = start.elapsed().as_secs_f64();
    write(&pruned, output, args.precision)?;
    if args.json {
        return print_json(&to_json(&report, &calib_source, output, schedule_info, time_s));
    }
    println!(
        "pruned {} with {} ({} of {} weights are zero, {:.1}%) in {time_s:.2} s",
        args.model.display(),
        method.name(),
        report.zeros,
        report.weights,
        100.0 * report.sparsity
    );
    println!("calibration: {calib_source}");
    print!("{}", table(&LAYER_HEADER, &layer_rows(&report)));
    if let Some(s) = schedule_info {
        println!(
            "schedule: certified deviation {:.4e} <= budget {} after {} evaluations",
            s["certified"].as_f64().unwrap_or(f64::NAN),
            s["budget"],
            s["evaluations"]
        );
    }
    println!("wrote {}", output.display());
    Ok(())
}

fn sweep(args: &Args, net: &Network, calib: &[f64], n: usize, b: &StateBox, opts: &PruneOptions) -> anyhow::Result<()> {
    for &p in &args.sweep {
        if !(0.0..=1.0).contains(&p) {
            bail!("--sweep: sparsity {p} is not in [0, 1]");
        }
    }
    let layers = prunable_layers(net).len();
    let total = args.method.len() * args.sweep.len();
    let bar = std::sync::Arc::new(crate::progress::Progress::new("prune sweep", Some(total as u64)));
    let beat = bar.heartbeat();
    let start = Instant::now();
    let mut results: Vec<(Method, f64, PruneReport, Measures)> = vec![];
    for m in &args.method {
        for &p in &args.sweep {
            bar.message(&format!("{} at {:.0}%", m.method().name(), 100.0 * p));
            let pattern = Pattern::Unstructured { sparsity: p };
            let (g, report) = prune_network(net, calib, n, m.method(), &vec![Some(pattern); layers], opts)?;
            let measures = args.measure.measure(net, &g, b)?;
            results.push((m.method(), p, report, measures));
            bar.inc(1);
        }
    }
    drop(beat);
    bar.finish();
    let time_s = start.elapsed().as_secs_f64();
    if let Some(path) = &args.plot {
        let panels: Vec<Panel> = args
            .method
            .iter()
            .map(|m| {
                let rows: Vec<&(Method, f64, PruneReport, Measures)> =
                    results.iter().filter(|r| r.0 == m.method()).collect();
                let series = |name: &str, f: &dyn Fn(&Measures) -> Option<f64>| {
                    Series::new(name, rows.iter().filter_map(|r| f(&r.3).map(|v| (100.0 * r.2.sparsity, v))).collect())
                };
                Panel {
                    title: format!("{} pruning", m.method().name()),
                    x_label: "sparsity (%)".into(),
                    y_label: "sup ||f - f_hat||_2 over the box".into(),
                    series: vec![
                        series("closed form (sound)", &|x| x.closed.as_ref().ok().map(|c| c.bound)),
                        series("certified (bound propagation)", &|x| Some(x.certified.l2)),
                        series("observed max", &|x| Some(x.observed.max)),
                    ],
                    log_y: true,
                }
            })
            .collect();
        std::fs::write(path, grid(&panels, 2)).with_context(|| format!("cannot write {}", path.display()))?;
    }
    if args.json {
        let rows: Vec<Value> = results
            .iter()
            .map(|(m, p, r, x)| {
                let mut v = measures_json(x);
                v["method"] = json!(m.name());
                v["target_sparsity"] = json!(p);
                v["sparsity"] = json!(r.sparsity);
                v["recon_error"] = json!(r.layers.iter().map(|l| l.recon_error).sum::<f64>());
                v
            })
            .collect();
        return print_json(&json!({"box": b.source, "results": rows, "time_s": time_s}));
    }
    println!("deviation sup ||f(s) - f_hat(s)||_2 over {} ({time_s:.1} s)", b.source);
    let fmt = |v: f64| format!("{v:.3e}");
    let rows: Vec<Vec<String>> = results
        .iter()
        .map(|(m, _, r, x)| {
            let o = x.observed.max;
            let ratio = |v: f64| if o > 0.0 { format!("{:.2}", v / o) } else { "-".into() };
            let closed = x.closed.as_ref().ok().map(|c| c.bound);
            vec![
                m.name().to_string(),
                format!("{:.1}%", 100.0 * r.sparsity),
                format!("{:.3e}", r.layers.iter().map(|l| l.recon_error).sum::<f64>()),
                closed.map_or("n/a".into(), fmt),
                fmt(x.certified.l2),
                fmt(o),
                closed.map_or("n/a".into(), ratio),
                ratio(x.certified.l2),
            ]
        })
        .collect();
    print!(
        "{}",
        table(
            &["method", "sparsity", "recon error", "closed form", "certified", "observed", "closed/obs", "cert/obs"],
            &rows
        )
    );
    if let Some(p) = &args.plot {
        println!("wrote {}", p.display());
    }
    Ok(())
}
