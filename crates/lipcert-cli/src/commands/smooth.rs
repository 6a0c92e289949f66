//! `lipcert smooth certify|predict`: randomized smoothing (lipcert-smooth) on a data set.

use crate::progress::Progress;
use crate::render::table;
use anyhow::bail;
use lipcert_io::NpyArray;
use lipcert_smooth::{certify_dataset, predict_dataset, Method, SmoothOptions};
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Sub,
}

#[derive(clap::Subcommand)]
enum Sub {
    /// Certified l2 radius of the smoothed classifier at every sample (holds with probability >= 1 - alpha each).
    Certify(CertifyArgs),
    /// Prediction of the smoothed classifier (Cohen et al. PREDICT: abstains unless a binomial test is significant at alpha).
    Predict(PredictArgs),
}

#[derive(clap::Args)]
struct Common {
    /// ONNX model (a classifier: one output per class).
    model: PathBuf,
    /// Inputs [N, ...] (float32 or float64), one sample per row as for `lipcert eval`.
    #[arg(long)]
    data: PathBuf,
    /// Standard deviation of the Gaussian noise, in input units.
    #[arg(long, allow_hyphen_values = true)]
    sigma: f64,
    /// Estimation samples per input.
    #[arg(long, default_value_t = 100_000)]
    n: usize,
    /// Failure probability of each certificate or prediction.
    #[arg(long, default_value_t = 0.001, allow_hyphen_values = true)]
    alpha: f64,
    /// Noisy samples per forward pass.
    #[arg(long, default_value_t = 1000)]
    batch: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Machine output on stdout (the whole report as JSON).
    #[arg(long)]
    json: bool,
    /// Only the tab-separated per-sample lines (with their header), for scripts.
    #[arg(long, conflicts_with = "json")]
    lines: bool,
}

#[derive(clap::Args)]
struct CertifyArgs {
    #[command(flatten)]
    common: Common,
    /// Labels [N] (integers).
    #[arg(long)]
    labels: PathBuf,
    /// Selection samples per input (choose the class; CPM's partition; LVM's map).
    #[arg(long, default_value_t = 100)]
    n0: usize,
    #[arg(long, value_enum, default_value = "cohen")]
    method: MethodArg,
    /// Certified l2 Lipschitz constant of the logits network (--method lipschitz), e.g. from `lipcert lipschitz`.
    #[arg(long, allow_hyphen_values = true)]
    lipschitz: Option<f64>,
    /// Mass r of the simplex the logits are projected onto (--method lipschitz).
    #[arg(long, default_value_t = 1.0)]
    simplex_mass: f64,
    /// Radii of the certified-accuracy curve, comma-separated (default 0, sigma/4, ..., 4 sigma).
    #[arg(long, value_delimiter = ',')]
    radii: Vec<f64>,
}

#[derive(clap::Args)]
struct PredictArgs {
    #[command(flatten)]
    common: Common,
    /// Labels [N] (integers), to report accuracy.
    #[arg(long)]
    labels: Option<PathBuf>,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum MethodArg {
    /// Cohen et al.: one-sided Clopper-Pearson bound on the top class, radius sigma Phi^-1(pA).
    Cohen,
    /// Bonferroni bounds on all classes, radius sigma/2 (Phi^-1(pA) - Phi^-1(pB)).
    TwoSided,
    /// Class Partitioning Method (thesis Algorithm 8).
    Cpm,
    /// Smoothed sparsemax of a network with a known Lipschitz constant (thesis §5.2.2-5.2.3).
    Lipschitz,
    /// LVM-RS: simplex map and temperature chosen per input (thesis Algorithm 9).
    Lvm,
}

impl MethodArg {
    pub fn method(self) -> Method {
        match self {
            MethodArg::Cohen => Method::Cohen,
            MethodArg::TwoSided => Method::TwoSided,
            MethodArg::Cpm => Method::Cpm,
            MethodArg::Lipschitz => Method::Lipschitz,
            MethodArg::Lvm => Method::Lvm,
        }
    }
}

pub fn run(args: Args) -> anyhow::Result<()> {
    match args.command {
        Sub::Certify(a) => certify(a),
        Sub::Predict(a) => predict(a),
    }
}

/// Reads the inputs and checks them against the model: (values, samples).
fn read_data(path: &Path, net: &lipcert_core::Network) -> anyhow::Result<(Vec<f64>, usize)> {
    let x = NpyArray::read(path).map_err(anyhow::Error::msg)?;
    let len = net.input_len();
    let n = x.shape.first().copied().unwrap_or(0);
    if !x.dtype.is_float() || x.shape.len() < 2 || x.data.len() != n * len {
        bail!(
            "{}: expected float inputs [N, {len}] for model input {:?}, got {} {:?}",
            path.display(),
            net.input_shape(),
            x.dtype,
            x.shape
        );
    }
    if let Some(i) = x.data.iter().position(|v| !v.is_finite()) {
        bail!("{}: sample {} holds a NaN or infinite value", path.display(), i / len.max(1));
    }
    Ok((x.data, n))
}

fn read_labels(path: &Path, n: usize, classes: usize) -> anyhow::Result<Vec<usize>> {
    let y = NpyArray::read(path).map_err(anyhow::Error::msg)?;
    if y.data.len() != n || y.shape.len() > 1 && y.shape.iter().filter(|&&d| d != 1).count() > 1 {
        bail!("{}: {} labels (shape {:?}) for {n} samples", path.display(), y.data.len(), y.shape);
    }
    if let Some(i) = y.data.iter().position(|&v| v.fract() != 0.0 || v < 0.0 || v >= classes as f64) {
        bail!("{}: label {} of sample {i} is not a class index below {classes}", path.display(), y.data[i]);
    }
    Ok(y.data.iter().map(|&v| v as usize).collect())
}

fn options(c: &Common) -> SmoothOptions {
    SmoothOptions { sigma: c.sigma, n: c.n, alpha: c.alpha, batch: c.batch, seed: c.seed, ..SmoothOptions::default() }
}

fn certify(a: CertifyArgs) -> anyhow::Result<()> {
    let c = &a.common;
    let opts = SmoothOptions {
        n0: a.n0,
        method: a.method.method(),
        lipschitz: a.lipschitz,
        simplex_mass: a.simplex_mass,
        radii: a.radii.clone(),
        ..options(c)
    };
    // Option errors before the (possibly slow) model load.
    opts.validate(false)?;
    let m = super::load_model(&c.model)?;
    let net = &m.network;
    let (x, n) = read_data(&c.data, net)?;
    let labels = read_labels(&a.labels, n, net.output_len())?;
    let progress = Arc::new(Progress::new("smooth certify", Some(n as u64)));
    let report = {
        let _beat = progress.heartbeat();
        certify_dataset(net, &x, &labels, &opts, &|done| progress.set(done as u64, n as u64, "samples"))?
    };
    progress.finish();
    if c.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    let lines: Vec<String> = report
        .per_sample
        .iter()
        .map(|s| {
            format!("{}\t{}\t{}\t{:.4}\t{}\t{:.4}", s.idx, s.label, s.predict, s.radius, u8::from(s.correct), s.time_s)
        })
        .collect();
    if c.lines {
        println!("idx\tlabel\tpredict\tradius\tcorrect\ttime");
        lines.iter().for_each(|l| println!("{l}"));
        return Ok(());
    }
    let extra = match (opts.method, opts.lipschitz) {
        (Method::Lipschitz, Some(l)) => format!(", L {l}, simplex mass {}", opts.simplex_mass),
        _ => String::new(),
    };
    println!(
        "{} samples, method {}, sigma {}, n0 {}, n {}, alpha {}{extra} ({:.2} s, {:.0} noisy samples/s)",
        report.samples,
        opts.method.name(),
        opts.sigma,
        opts.n0,
        opts.n,
        opts.alpha,
        report.time_s,
        report.noise_samples_per_s
    );
    println!(
        "clean accuracy {:.4} ({} correct, {} abstained), average certified radius {:.4}",
        report.clean_accuracy, report.correct, report.abstained, report.average_certified_radius
    );
    let rows: Vec<Vec<String>> = report
        .curve
        .iter()
        .map(|p| vec![format!("{:.4}", p.radius), format!("{:.4}", p.certified_accuracy), p.certified.to_string()])
        .collect();
    print!("{}", table(&["radius", "certified accuracy", "samples"], &rows));
    println!();
    println!("idx\tlabel\tpredict\tradius\tcorrect\ttime");
    lines.iter().for_each(|l| println!("{l}"));
    Ok(())
}

fn predict(a: PredictArgs) -> anyhow::Result<()> {
    let c = &a.common;
    let opts = options(c);
    opts.validate(true)?;
    let m = super::load_model(&c.model)?;
    let net = &m.network;
    let (x, n) = read_data(&c.data, net)?;
    let labels = a.labels.as_deref().map(|p| read_labels(p, n, net.output_len())).transpose()?;
    let progress = Arc::new(Progress::new("smooth predict", Some(n as u64)));
    let report = {
        let _beat = progress.heartbeat();
        predict_dataset(net, &x, labels.as_deref(), &opts, &|done| progress.set(done as u64, n as u64, "samples"))?
    };
    progress.finish();
    if c.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    let with_labels = labels.is_some();
    let header = if with_labels { "idx\tlabel\tpredict\tcorrect\ttime" } else { "idx\tpredict\ttime" };
    let lines: Vec<String> = report
        .per_sample
        .iter()
        .map(|r| match (r.label, r.correct) {
            (Some(l), Some(ok)) => format!("{}\t{l}\t{}\t{}\t{:.4}", r.idx, r.predict, u8::from(ok), r.time_s),
            _ => format!("{}\t{}\t{:.4}", r.idx, r.predict, r.time_s),
        })
        .collect();
    if !c.lines {
        println!(
            "{} samples, sigma {}, n {}, alpha {} ({:.2} s): {} abstained{}",
            report.samples,
            opts.sigma,
            opts.n,
            opts.alpha,
            report.time_s,
            report.abstained,
            report.accuracy.map_or(String::new(), |acc| format!(", accuracy {acc:.4}"))
        );
    }
    println!("{header}");
    lines.iter().for_each(|l| println!("{l}"));
    Ok(())
}
