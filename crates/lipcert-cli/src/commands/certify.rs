use crate::commands::lipschitz::NormArg;
use crate::render::{print_json, table};
use anyhow::bail;
use lipcert_bounds::{attack, margins, AttackMethod, AttackOptions, InputSet, Interval, Method, Options, Unsafe};
use lipcert_io::NpyArray;
use lipcert_spectral::lipschitz::{network_lipschitz, output_enclosure, pair_constants, radii, Search};
use rayon::prelude::*;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::Instant;

#[derive(clap::Args)]
pub struct Args {
    /// ONNX model (a classifier: one output per class).
    model: PathBuf,
    /// Inputs [N, ...] (float32 or float64), one sample per row as for `lipcert eval`.
    #[arg(long)]
    data: PathBuf,
    /// Labels [N] (integers).
    #[arg(long)]
    labels: PathBuf,
    /// Radius of the perturbation ball.
    #[arg(long)]
    eps: f64,
    #[arg(long, value_enum, default_value = "inf")]
    norm: NormArg,
    /// Certification methods, comma-separated (default: all). alpha-crown runs only where
    /// crown does not already certify (its bound is never below crown's).
    #[arg(long, value_enum, value_delimiter = ',', default_value = "lipschitz,ibp,crown,alpha-crown")]
    method: Vec<MethodArg>,
    /// Valid input range, clipped into the perturbation set (for example `--clip 0 1` for images).
    #[arg(long, num_args = 2, value_names = ["LO", "HI"], allow_negative_numbers = true)]
    clip: Vec<f64>,
    /// PGD restarts and steps for the adversarial accuracy (0 restarts: no attack).
    #[arg(long, default_value_t = 5)]
    pgd_restarts: usize,
    #[arg(long, default_value_t = 40)]
    pgd_steps: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[arg(long)]
    json: bool,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum MethodArg {
    Lipschitz,
    Ibp,
    Crown,
    AlphaCrown,
}

/// Per-sample outcome.
struct Sample {
    label: usize,
    predicted: usize,
    /// Certified lower bound of the worst margin per bound-propagation method (None: not run).
    ibp: Option<f64>,
    crown: Option<f64>,
    alpha: Option<f64>,
    /// Lipschitz: certified radius (class pairs).
    lipschitz_radius: Option<f64>,
    /// PGD: whether a (re-checked) counterexample was found, and the best margin seen.
    attacked: Option<bool>,
    pgd_margin: Option<f64>,
}

impl Sample {
    fn correct(&self) -> bool {
        self.label == self.predicted
    }
}

fn worst(m: &[f64]) -> f64 {
    m.iter().cloned().fold(f64::INFINITY, f64::min)
}

pub fn run(args: Args) -> anyhow::Result<()> {
    if !(args.eps >= 0.0 && args.eps.is_finite()) {
        bail!("--eps must be a non-negative number, got {}", args.eps);
    }
    if args.pgd_restarts > 0 && args.pgd_steps == 0 {
        bail!("--pgd-steps must be at least 1 (or --pgd-restarts 0 for no attack)");
    }
    let m = super::load_model(&args.model)?;
    let net = &m.network;
    let x = NpyArray::read(&args.data).map_err(anyhow::Error::msg)?;
    let y = NpyArray::read(&args.labels).map_err(anyhow::Error::msg)?;
    let len = net.input_len();
    let n = x.shape.first().copied().unwrap_or(0);
    if !x.dtype.is_float() || x.data.len() != n * len {
        bail!(
            "{}: expected float inputs [N, {len}] for model input {:?}, got {} {:?}",
            args.data.display(),
            net.input_shape(),
            x.dtype,
            x.shape
        );
    }
    if y.data.len() != n {
        bail!("{}: {} labels for {n} samples", args.labels.display(), y.data.len());
    }
    let classes = net.output_len();
    if let Some(i) = y.data.iter().position(|&v| v.fract() != 0.0 || v < 0.0 || v >= classes as f64) {
        bail!("{}: label {} of sample {i} is not a class index below {classes}", args.labels.display(), y.data[i]);
    }
    if let Some(i) = x.data.iter().position(|v| !v.is_finite()) {
        bail!("{}: sample {} holds a NaN or infinite value", args.data.display(), i / len);
    }
    let domain = match args.clip.as_slice() {
        [lo, hi] if lo <= hi => Some(Interval::new(vec![*lo; len], vec![*hi; len])),
        [lo, hi] => bail!("--clip {lo} {hi}: the lower end is above the upper end"),
        _ => None,
    };
    let start = Instant::now();
    let f = net.forward(&x.data, n)?;
    let predicted: Vec<usize> =
        f.chunks(classes).map(|r| (0..classes).max_by(|&a, &b| r[a].total_cmp(&r[b])).unwrap_or(0)).collect();
    let wants = |k: MethodArg| args.method.contains(&k);
    let norm = args.norm.norm();

    // Lipschitz constants are per network; the seeded search for the lower bound starts at the data.
    let lip = wants(MethodArg::Lipschitz).then(|| {
        let seeds: Vec<Vec<f64>> = x.data.chunks(len).take(8).map(|r| r.to_vec()).collect();
        network_lipschitz(net, norm, &Search { starts: 8, steps: 20, seed: args.seed, points: seeds })
    });
    let pairs = lip.as_ref().and_then(|l| pair_constants(net, l));

    let bar = crate::progress::Progress::new("certify: samples", Some(n as u64));
    let opts = Options::default();
    let attack_opts = AttackOptions {
        restarts: args.pgd_restarts,
        steps: args.pgd_steps,
        seed: args.seed,
        ..AttackOptions::default()
    };
    let samples: Vec<anyhow::Result<Sample>> = (0..n)
        .into_par_iter()
        .map(|i| {
            let row = &x.data[i * len..(i + 1) * len];
            let label = y.data[i] as usize;
            let mut s = Sample {
                label,
                predicted: predicted[i],
                ibp: None,
                crown: None,
                alpha: None,
                lipschitz_radius: None,
                attacked: None,
                pgd_margin: None,
            };
            if let Some(l) = &lip {
                // The radii use certified margins: IBP enclosures of the outputs at the sample.
                let bounds = output_enclosure(net, row)?;
                let r = radii(&f[i * classes..(i + 1) * classes], &bounds, label, l, pairs.as_deref());
                s.lipschitz_radius = Some(r.pair);
            }
            if s.correct() {
                let set = match args.norm {
                    NormArg::Inf => InputSet::linf_ball(row, args.eps, domain.as_ref())?,
                    NormArg::L2 => InputSet::l2_ball(row, args.eps, domain.as_ref())?,
                };
                if wants(MethodArg::Ibp) {
                    s.ibp = Some(worst(&margins(net, &set, label, Method::Ibp, &opts)?));
                }
                if wants(MethodArg::Crown) || wants(MethodArg::AlphaCrown) {
                    s.crown = Some(worst(&margins(net, &set, label, Method::Crown, &opts)?));
                }
                if wants(MethodArg::AlphaCrown) {
                    let c = s.crown.unwrap_or(f64::NEG_INFINITY);
                    s.alpha =
                        Some(if c > 0.0 { c } else { worst(&margins(net, &set, label, Method::AlphaCrown, &opts)?) });
                }
                if args.pgd_restarts > 0 {
                    let r = attack(net, &set, &Unsafe::misclassified(label, classes), AttackMethod::Pgd, &attack_opts)?;
                    s.attacked = Some(r.counterexample.is_some());
                    s.pgd_margin = Some(r.best_loss);
                }
            }
            if !wants(MethodArg::Crown) {
                s.crown = None;
            }
            bar.inc(1);
            Ok(s)
        })
        .collect();
    bar.finish();
    let samples: Vec<Sample> = samples.into_iter().collect::<anyhow::Result<_>>()?;
    let time_s = start.elapsed().as_secs_f64();

    let frac = |k: usize| if n == 0 { 0.0 } else { k as f64 / n as f64 };
    let certified_by = |get: &dyn Fn(&Sample) -> Option<f64>| {
        samples.iter().filter(|s| s.correct() && get(s).is_some_and(|v| v > 0.0)).count()
    };
    let correct = samples.iter().filter(|s| s.correct()).count();
    // A certified sample that PGD breaks would mean an unsound bound: refuse to report it.
    for (i, s) in samples.iter().enumerate() {
        let best = [s.ibp, s.crown, s.alpha].iter().flatten().cloned().fold(f64::NEG_INFINITY, f64::max);
        if s.attacked == Some(true) && best > 0.0 {
            bail!("internal error: sample {i} is certified (margin bound {best}) but PGD found a counterexample");
        }
    }
    let robust_pgd = samples.iter().filter(|s| s.correct() && s.attacked != Some(true)).count();
    let mut rows: Vec<(String, usize)> = vec![("clean".into(), correct)];
    if args.pgd_restarts > 0 {
        rows.push(("pgd (upper bound on robust accuracy)".into(), robust_pgd));
    }
    let mut certified = serde_json::Map::new();
    let mut add = |name: &str, count: usize, rows: &mut Vec<(String, usize)>| {
        certified.insert(name.into(), json!(frac(count)));
        rows.push((format!("certified: {name}"), count));
    };
    if lip.is_some() {
        let c = samples.iter().filter(|s| s.correct() && s.lipschitz_radius.is_some_and(|r| r > args.eps)).count();
        add("lipschitz", c, &mut rows);
    }
    if wants(MethodArg::Ibp) {
        add("ibp", certified_by(&|s| s.ibp), &mut rows);
    }
    if wants(MethodArg::Crown) {
        add("crown", certified_by(&|s| s.crown), &mut rows);
    }
    if wants(MethodArg::AlphaCrown) {
        add("alpha-crown", certified_by(&|s| s.alpha), &mut rows);
    }
    let norm_name = norm.name();
    if args.json {
        let opt = |v: Option<f64>| v.map_or(Value::Null, |v| json!(v));
        let per_sample: Vec<Value> = samples
            .iter()
            .map(|s| {
                json!({"label": s.label, "predicted": s.predicted, "lipschitz_radius": opt(s.lipschitz_radius),
                       "ibp_margin_lower": opt(s.ibp), "crown_margin_lower": opt(s.crown),
                       "alpha_crown_margin_lower": opt(s.alpha), "pgd_counterexample": s.attacked,
                       "pgd_best_margin": opt(s.pgd_margin)})
            })
            .collect();
        return print_json(&json!({
            "samples": n, "eps": args.eps, "norm": norm_name, "clean_accuracy": frac(correct),
            "pgd_accuracy": if args.pgd_restarts > 0 { json!(frac(robust_pgd)) } else { Value::Null },
            "certified_accuracy": certified,
            "lipschitz": lip.as_ref().map_or(Value::Null, |l| json!({"upper": l.upper, "lower": l.lower})),
            "time_s": time_s, "per_sample": per_sample,
        }));
    }
    println!("{n} samples, eps {} in the l_{norm_name} norm ({time_s:.2} s)", args.eps);
    if let Some(l) = &lip {
        println!("network Lipschitz constant in [{:.6}, {:.6}]", l.lower, l.upper);
    }
    let rows: Vec<Vec<String>> =
        rows.into_iter().map(|(name, k)| vec![name, format!("{:.4}", frac(k)), k.to_string()]).collect();
    print!("{}", table(&["accuracy", "fraction", "samples"], &rows));
    Ok(())
}
