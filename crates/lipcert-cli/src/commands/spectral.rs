use crate::render::{print_json, table};
use anyhow::bail;
use faer::MatRef;
use lipcert_io::NpyArray;
use lipcert_spectral::conv::{conv_norm_on_grid, toeplitz_bound};
use lipcert_spectral::dense::MAX_GRAM_PRODUCTS;
use lipcert_spectral::{conv_norm, spectral_norm, ConvOperator, Method, Options, Padding};
use serde_json::json;
use std::path::PathBuf;
use std::time::Instant;

#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("operator").required(true).args(["matrix", "conv"])))]
pub struct Args {
    /// A dense matrix W as .npy (float32 or float64, shape [m, n]; a 1-D array is one row).
    #[arg(long)]
    matrix: Option<PathBuf>,
    /// A convolution kernel as .npy, shape [c_out, c_in, kh, kw] (PyTorch / ONNX layout).
    #[arg(long, requires = "input_size")]
    conv: Option<PathBuf>,
    /// Input height and width of the convolution, e.g. 32,32.
    #[arg(long, value_delimiter = ',', num_args = 1..=2)]
    input_size: Option<Vec<usize>>,
    /// Padding of the convolution.
    #[arg(long, value_enum, default_value = "zeros")]
    padding: PaddingArg,
    /// Zero padding on each side (default: kernel // 2, "same" for odd kernels).
    #[arg(long)]
    pad: Option<usize>,
    /// Convolution stride.
    #[arg(long, default_value_t = 1)]
    stride: usize,
    /// exact (SVD), power (lower bound only), gram (Gram iteration), auto (fastest certified),
    /// toep (convolutions only: thesis norm2_toep, input-size independent; --iters <= 4).
    #[arg(long, value_enum, default_value = "auto")]
    method: MethodArg,
    /// Run exactly this many iterations (Gram products, power steps).
    #[arg(long, conflicts_with = "tol")]
    iters: Option<usize>,
    /// Iterate until upper / lower - 1 < TOL.
    #[arg(long)]
    tol: Option<f64>,
    /// Convolutions: bound the norm from the kernel's symbol sampled on an N x N (or N,M)
    /// frequency grid with a proven curvature factor, instead of the input's own grid. The
    /// upper bound then holds for every input size, padding and stride, and its cost depends
    /// on the grid only (the sound form of thesis Thms. 3.7.1 / 3.7.3).
    #[arg(long, value_delimiter = ',', num_args = 1..=2, conflicts_with = "matrix")]
    grid: Option<Vec<usize>>,
    /// Seed of the random start vectors (power, auto).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[arg(long)]
    json: bool,
}

#[derive(Clone, Copy, PartialEq, clap::ValueEnum)]
enum PaddingArg {
    Zeros,
    Circular,
}

#[derive(Clone, Copy, PartialEq, clap::ValueEnum)]
enum MethodArg {
    Exact,
    Power,
    Gram,
    Auto,
    Toep,
}

/// Reads a float .npy, rejecting other dtypes and non-finite entries (named in the error).
fn read_float(path: &std::path::Path) -> anyhow::Result<NpyArray> {
    let a = NpyArray::read(path).map_err(anyhow::Error::msg)?;
    let file = path.display();
    if !a.dtype.is_float() {
        bail!("{file}: dtype {} is not supported; expected float32 or float64", a.dtype);
    }
    if let Some(i) = a.data.iter().position(|v| !v.is_finite()) {
        // Unravel the flat index into the array's own coordinates.
        let mut index = vec![0; a.shape.len()];
        let mut rest = i;
        for (slot, &d) in index.iter_mut().zip(&a.shape).rev() {
            *slot = rest % d.max(1);
            rest /= d.max(1);
        }
        bail!("{file}: element {index:?} is NaN or infinite");
    }
    Ok(a)
}

/// What is being measured, for the table and JSON.
enum Operator {
    Matrix { data: Vec<f64>, m: usize, n: usize },
    Conv(ConvOperator),
}

fn operator(args: &Args) -> anyhow::Result<Operator> {
    if let Some(path) = &args.matrix {
        let w = read_float(path)?;
        let (m, n) = match w.shape.as_slice() {
            [n] => (1, *n),
            [m, n] => (*m, *n),
            s => bail!("{}: expected a 2-D matrix [m, n], got shape {s:?}", path.display()),
        };
        return Ok(Operator::Matrix { data: w.data, m, n });
    }
    let path = args.conv.as_ref().expect("clap requires --matrix or --conv");
    let k = read_float(path)?;
    let [c_out, c_in, kh, kw] = <[usize; 4]>::try_from(k.shape.as_slice()).map_err(|_| {
        anyhow::anyhow!("{}: expected a kernel [c_out, c_in, kh, kw], got shape {:?}", path.display(), k.shape)
    })?;
    let size = args.input_size.clone().unwrap_or_default();
    let (h, w) = match size.as_slice() {
        [s] => (*s, *s),
        [h, w] => (*h, *w),
        _ => bail!("--input-size takes H,W"),
    };
    let padding = match args.padding {
        PaddingArg::Circular => Padding::Circular,
        PaddingArg::Zeros => {
            let (ph, pw) = args.pad.map_or((kh / 2, kw / 2), |p| (p, p));
            Padding::Zeros([ph, pw, ph, pw])
        }
    };
    let op = ConvOperator { kernel: k.data, c_out, c_in, kh, kw, h, w, stride: [args.stride, args.stride], padding };
    op.validate().map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    Ok(Operator::Conv(op))
}

/// Rejects iteration counts that are zero or that cannot help.
fn check_iters(args: &Args) -> anyhow::Result<()> {
    let Some(n) = args.iters else { return Ok(()) };
    if n == 0 {
        bail!("--iters must be at least 1 (leave it out to iterate until --tol)");
    }
    let gram = matches!(args.method, MethodArg::Gram | MethodArg::Auto);
    if gram && n > MAX_GRAM_PRODUCTS {
        bail!(
            "--iters {n}: Gram iteration reaches the f64 rounding floor within a few dozen products; at most {MAX_GRAM_PRODUCTS}"
        );
    }
    if args.method == MethodArg::Power && n > MAX_POWER_STEPS {
        bail!("--iters {n}: at most {MAX_POWER_STEPS} power steps");
    }
    Ok(())
}

/// Power steps beyond this never change an f64 estimate that has not converged already.
const MAX_POWER_STEPS: usize = 10_000_000;

/// The largest |entry| of the operator (for the overflow message).
fn max_abs(op: &Operator) -> f64 {
    let data = match op {
        Operator::Matrix { data, .. } => data,
        Operator::Conv(c) => &c.kernel,
    };
    data.iter().fold(0.0f64, |m, v| m.max(v.abs()))
}

pub fn run(args: Args) -> anyhow::Result<()> {
    check_iters(&args)?;
    let op = operator(&args)?;
    if let Some(t) = args.tol {
        if !(t > 0.0 && t.is_finite()) {
            bail!("--tol must be a positive number, got {t}");
        }
    }
    let method = match args.method {
        MethodArg::Exact => Method::Exact,
        MethodArg::Power | MethodArg::Toep => Method::Power,
        MethodArg::Gram => Method::Gram,
        MethodArg::Auto => Method::Auto,
    };
    let opts = Options {
        iters: args.iters,
        tol: if args.iters.is_some() { None } else { Some(args.tol.unwrap_or(1e-6)) },
        seed: args.seed,
    };
    let grid = match args.grid.as_deref() {
        None => None,
        Some(_) if args.method == MethodArg::Toep => {
            bail!("--grid and --method toep are two different bounds; pick one")
        }
        Some([n]) => Some([*n, *n]),
        Some([h, w]) => Some([*h, *w]),
        Some(_) => bail!("--grid takes N or N,M"),
    };
    // The symbol bound's curvature factor, reported with its grid.
    let mut symbol_factor = None;
    let start = Instant::now();
    let (b, shape) = match &op {
        Operator::Matrix { .. } if args.method == MethodArg::Toep => bail!("--method toep applies to --conv only"),
        Operator::Matrix { data, m, n } => {
            // Row-major [m, n] data is the column-major view of W^T, which has the same norm.
            let view = MatRef::from_column_major_slice(data, *n, *m);
            (spectral_norm(view, method, opts), format!("{m} x {n}"))
        }
        Operator::Conv(c) => {
            let mut b = match grid {
                Some(g) => {
                    let (b, symbol) = conv_norm_on_grid(c, g, method, opts).map_err(anyhow::Error::msg)?;
                    symbol_factor = Some((symbol.factor, g));
                    b
                }
                None => conv_norm(c, method, opts).map_err(anyhow::Error::msg)?,
            };
            if args.method == MethodArg::Toep {
                // Upper from the kernel's own Gram iterations; lower from power iteration.
                b.upper = toeplitz_bound(c, args.iters.unwrap_or(3)).map_err(anyhow::Error::msg)?;
                b.method = "toep";
                b.iters = args.iters.unwrap_or(3);
            }
            let pad = match c.padding {
                Padding::Circular => "circular".to_string(),
                Padding::Zeros(p) => format!("zeros {}", p[0]),
            };
            (
                b,
                format!(
                    "conv {}x{}x{}x{} on {}x{}, {pad}, stride {}",
                    c.c_out, c.c_in, c.kh, c.kw, c.h, c.w, c.stride[0]
                ),
            )
        }
    };
    let time_s = start.elapsed().as_secs_f64();
    // A bound that overflowed is not a result; a script must not read it as one.
    // (Power iteration that overflowed returns 0, below the largest |entry|, itself a lower bound.)
    let overflow = if b.method == "power" {
        !b.lower.is_finite() || (b.lower == 0.0 && max_abs(&op) > 0.0)
    } else {
        !b.upper.is_finite()
    };
    if overflow {
        bail!(
            "the norm bound overflows f64 (entries up to {:e}): scale the operator down, its norm scales linearly",
            max_abs(&op)
        );
    }
    // With --iters, Gram iteration stops early once the bracket no longer narrows.
    let stopped_early = args.iters.filter(|&n| b.method == "gram" && b.iters < n);
    let finite = |v: f64| if v.is_finite() { json!(v) } else { serde_json::Value::Null };
    if args.json {
        return print_json(&json!({
            "upper": finite(b.upper), "lower": finite(b.lower), "method": b.method, "iters": b.iters,
            "time_s": time_s, "operator": shape, "relative_width": finite(b.relative_width()),
            "grid": symbol_factor.map(|(_, g)| g), "grid_factor": symbol_factor.map(|(f, _)| f),
            "iters_requested": args.iters, "stopped_early": stopped_early.is_some(),
        }));
    }
    let show = |v: f64| if v.is_finite() { format!("{v:.12e}") } else { "none".into() };
    let rows = vec![vec![
        shape,
        b.method.to_string(),
        show(b.lower),
        show(b.upper),
        if b.relative_width().is_finite() { format!("{:.2e}", b.relative_width()) } else { "-".into() },
        b.iters.to_string(),
        format!("{:.3}", time_s),
    ]];
    print!(
        "{}",
        table(&["operator", "method", "lower (certified)", "upper (certified)", "width", "iters", "time s"], &rows)
    );
    if let Some(n) = stopped_early {
        println!(
            "stopped after {} of {n} Gram products: the bracket stopped narrowing (the f64 rounding floor)",
            b.iters
        );
    }
    if let Some((factor, g)) = symbol_factor {
        println!(
            "upper: the kernel's symbol on a {}x{} frequency grid times the curvature factor {factor:.6} (valid for every input size)",
            g[0], g[1]
        );
    }
    Ok(())
}
