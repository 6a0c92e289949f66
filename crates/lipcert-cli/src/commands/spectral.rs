use crate::render::{print_json, table};
use anyhow::bail;
use faer::MatRef;
use lipcert_io::NpyArray;
use lipcert_spectral::{spectral_norm, Method, Options};
use serde_json::json;
use std::path::PathBuf;
use std::time::Instant;

#[derive(clap::Args)]
pub struct Args {
    /// A dense matrix W as .npy (float32 or float64, shape [m, n]; a 1-D array is one row).
    #[arg(long)]
    matrix: PathBuf,
    /// exact (SVD), power (lower bound only), gram (Gram iteration), auto (fastest certified).
    #[arg(long, value_enum, default_value = "auto")]
    method: MethodArg,
    /// Run exactly this many iterations (Gram products, power steps).
    #[arg(long, conflicts_with = "tol")]
    iters: Option<usize>,
    /// Iterate until upper / lower - 1 < TOL.
    #[arg(long)]
    tol: Option<f64>,
    /// Seed of the random start vectors (power, auto).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[arg(long)]
    json: bool,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum MethodArg {
    Exact,
    Power,
    Gram,
    Auto,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let w = NpyArray::read(&args.matrix).map_err(anyhow::Error::msg)?;
    let file = args.matrix.display();
    if !w.dtype.is_float() {
        bail!("{file}: dtype {} is not supported; the matrix must be float32 or float64", w.dtype);
    }
    let (m, n) = match w.shape.as_slice() {
        [n] => (1, *n),
        [m, n] => (*m, *n),
        s => bail!("{file}: expected a 2-D matrix [m, n], got shape {s:?}"),
    };
    if let Some(i) = w.data.iter().position(|v| !v.is_finite()) {
        bail!("{file}: entry ({}, {}) is NaN or infinite", i / n.max(1), i % n.max(1));
    }
    if let Some(t) = args.tol {
        if !(t > 0.0 && t.is_finite()) {
            bail!("--tol must be a positive number, got {t}");
        }
    }
    let method = match args.method {
        MethodArg::Exact => Method::Exact,
        MethodArg::Power => Method::Power,
        MethodArg::Gram => Method::Gram,
        MethodArg::Auto => Method::Auto,
    };
    // Row-major [m, n] data is the column-major view of W^T, which has the same norm.
    let view = MatRef::from_column_major_slice(&w.data, n, m);
    let opts = Options {
        iters: args.iters,
        tol: if args.iters.is_some() { None } else { Some(args.tol.unwrap_or(1e-6)) },
        seed: args.seed,
    };
    let start = Instant::now();
    let b = spectral_norm(view, method, opts);
    let time_s = start.elapsed().as_secs_f64();
    let finite = |v: f64| if v.is_finite() { json!(v) } else { serde_json::Value::Null };
    if args.json {
        return print_json(&json!({
            "upper": finite(b.upper), "lower": finite(b.lower), "method": b.method, "iters": b.iters,
            "time_s": time_s, "shape": [m, n], "relative_width": finite(b.relative_width()),
        }));
    }
    let show = |v: f64| if v.is_finite() { format!("{v:.12e}") } else { "none".into() };
    let rows = vec![vec![
        format!("{m} x {n}"),
        b.method.to_string(),
        show(b.lower),
        show(b.upper),
        if b.relative_width().is_finite() { format!("{:.2e}", b.relative_width()) } else { "-".into() },
        b.iters.to_string(),
        format!("{:.3}", time_s),
    ]];
    print!(
        "{}",
        table(&["matrix", "method", "lower (certified)", "upper (certified)", "width", "iters", "time s"], &rows)
    );
    Ok(())
}
