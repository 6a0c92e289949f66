use crate::commands::lipschitz::NormArg;
use crate::render::{print_json, table};
use anyhow::bail;
use indicatif::{ProgressBar, ProgressStyle};
use lipcert_bounds::{ibp_margins, Interval};
use lipcert_io::NpyArray;
use lipcert_spectral::lipschitz::{network_lipschitz, pair_constants, radii, Search};
use serde_json::json;
use std::path::PathBuf;

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
    #[arg(long, value_enum, default_value = "2")]
    norm: NormArg,
    /// Certification method: Lipschitz-margin radii, or interval bound propagation over the
    /// l_inf box of radius eps (which encloses the l2 ball for --norm 2). CROWN comes next.
    #[arg(long, value_enum, default_value = "lipschitz")]
    method: MethodArg,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[arg(long)]
    json: bool,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum MethodArg {
    Lipschitz,
    Ibp,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    if !(args.eps >= 0.0 && args.eps.is_finite()) {
        bail!("--eps must be a non-negative number, got {}", args.eps);
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
    let f = net.forward(&x.data, n)?;
    let predicted: Vec<usize> =
        f.chunks(classes).map(|r| (0..classes).max_by(|&a, &b| r[a].total_cmp(&r[b])).unwrap_or(0)).collect();
    let correct = predicted.iter().zip(&y.data).filter(|(p, &l)| **p == l as usize).count();
    let frac = |k: usize| if n == 0 { 0.0 } else { k as f64 / n as f64 };
    let bar = if n > 256 { ProgressBar::new(n as u64) } else { ProgressBar::hidden() };
    bar.set_style(ProgressStyle::with_template("{bar:40} {pos}/{len} samples {eta}").expect("valid template"));
    let norm = args.norm.norm().name();
    match args.method {
        MethodArg::Lipschitz => {
            // The constants are per network; the seeded search for the lower bound starts at the data.
            let seeds: Vec<Vec<f64>> = x.data.chunks(len).take(8).map(|r| r.to_vec()).collect();
            let lip = network_lipschitz(
                net,
                args.norm.norm(),
                &Search { starts: 8, steps: 20, seed: args.seed, points: seeds },
            );
            let pairs = pair_constants(net, &lip);
            let per_sample: Vec<_> = f
                .chunks(classes)
                .zip(&y.data)
                .map(|(out, &label)| {
                    bar.inc(1);
                    radii(out, label as usize, &lip, pairs.as_deref())
                })
                .collect();
            bar.finish_and_clear();
            let cert_global = per_sample.iter().filter(|r| r.global > args.eps).count();
            let cert_pair = per_sample.iter().filter(|r| r.pair > args.eps).count();
            if args.json {
                let samples: Vec<_> = per_sample
                    .iter()
                    .zip(&y.data)
                    .map(|(r, &l)| {
                        json!({"label": l as usize, "predicted": r.predicted, "margin": r.margin,
                               "radius_global": r.global, "radius_pair": r.pair, "certified": r.pair > args.eps})
                    })
                    .collect();
                return print_json(&json!({
                    "samples": n, "eps": args.eps, "norm": norm, "method": "lipschitz",
                    "clean_accuracy": frac(correct),
                    "certified_accuracy": {"lipschitz": frac(cert_pair), "lipschitz_global": frac(cert_global)},
                    "lipschitz": {"upper": lip.upper, "lower": lip.lower},
                    "per_sample": samples,
                }));
            }
            println!(
                "{n} samples, eps {} in the l_{norm} norm; network Lipschitz constant in [{:.6}, {:.6}]",
                args.eps, lip.lower, lip.upper
            );
            let rows = vec![
                vec!["clean".into(), format!("{:.4}", frac(correct)), correct.to_string()],
                vec!["lipschitz (global margin)".into(), format!("{:.4}", frac(cert_global)), cert_global.to_string()],
                vec!["lipschitz (class pairs)".into(), format!("{:.4}", frac(cert_pair)), cert_pair.to_string()],
            ];
            print!("{}", table(&["accuracy", "fraction", "samples"], &rows));
        }
        MethodArg::Ibp => {
            // The l_inf box of radius eps contains the l2 ball of radius eps too.
            let mut per_sample = Vec::with_capacity(n);
            for ((row, &label), &pred) in x.data.chunks(len).zip(&y.data).zip(&predicted) {
                let lo: Vec<f64> = row.iter().map(|v| v - args.eps).collect();
                let hi: Vec<f64> = row.iter().map(|v| v + args.eps).collect();
                let margins = ibp_margins(net, Interval::new(lo, hi), label as usize)?;
                let worst = margins.iter().cloned().fold(f64::INFINITY, f64::min);
                per_sample.push((label as usize, pred, worst, pred == label as usize && worst > 0.0));
                bar.inc(1);
            }
            bar.finish_and_clear();
            let certified = per_sample.iter().filter(|s| s.3).count();
            if args.json {
                let samples: Vec<_> = per_sample
                    .iter()
                    .map(|(l, p, m, c)| json!({"label": l, "predicted": p, "ibp_margin_lower": m, "certified": c}))
                    .collect();
                return print_json(&json!({
                    "samples": n, "eps": args.eps, "norm": norm, "method": "ibp",
                    "clean_accuracy": frac(correct),
                    "certified_accuracy": {"ibp": frac(certified)},
                    "per_sample": samples,
                }));
            }
            println!("{n} samples, eps {} in the l_{norm} norm (interval bound propagation)", args.eps);
            let rows = vec![
                vec!["clean".into(), format!("{:.4}", frac(correct)), correct.to_string()],
                vec!["ibp".into(), format!("{:.4}", frac(certified)), certified.to_string()],
            ];
            print!("{}", table(&["accuracy", "fraction", "samples"], &rows));
        }
    }
    Ok(())
}
