use crate::render::{print_json, table};
use anyhow::bail;
use faer::MatRef;
use lipcert_io::NpyArray;
use lipcert_spectral::conv::{conv_norm_on_grid, toeplitz_bound};
use lipcert_spectral::dense::MAX_GRAM_PRODUCTS;
use lipcert_spectral::{conv_norm, spectral_norm, Bracket, ConvOperator, Method, Options, Padding};
use serde_json::{json, Value};
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
pub enum PaddingArg {
    Zeros,
    Circular,
}

#[derive(Clone, Copy, PartialEq, clap::ValueEnum)]
pub enum MethodArg {
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
    check_finite(&file.to_string(), &a.shape, &a.data)?;
    Ok(a)
}

/// Rejects a NaN or infinite entry, named by its coordinates in the array `what`.
pub fn check_finite(what: &str, shape: &[usize], data: &[f64]) -> anyhow::Result<()> {
    let file = what;
    let a = (shape, data);
    if let Some(i) = a.1.iter().position(|v| !v.is_finite()) {
        // Unravel the flat index into the array's own coordinates.
        let mut index = vec![0; a.0.len()];
        let mut rest = i;
        for (slot, &d) in index.iter_mut().zip(a.0).rev() {
            *slot = rest % d.max(1);
            rest /= d.max(1);
        }
        bail!("{file}: element {index:?} is NaN or infinite");
    }
    Ok(())
}

/// What is being measured, for the table and JSON.
pub enum Operator {
    Matrix { data: Vec<f64>, m: usize, n: usize },
    Conv(ConvOperator),
}

impl Operator {
    /// A dense matrix of the given shape ([n] is one row); `what` names it in errors.
    pub fn matrix(what: &str, data: Vec<f64>, shape: &[usize]) -> anyhow::Result<Operator> {
        let (m, n) = match shape {
            [n] => (1, *n),
            [m, n] => (*m, *n),
            s => bail!("{what}: expected a 2-D matrix [m, n], got shape {s:?}"),
        };
        Ok(Operator::Matrix { data, m, n })
    }

    /// A convolution with kernel [c_out, c_in, kh, kw] on an input of `size` (H or H,W);
    /// `pad` defaults to kernel // 2 for zero padding.
    pub fn conv(what: &str, kernel: Vec<f64>, shape: &[usize], geometry: &ConvGeometry) -> anyhow::Result<Operator> {
        let [c_out, c_in, kh, kw] = <[usize; 4]>::try_from(shape)
            .map_err(|_| anyhow::anyhow!("{what}: expected a kernel [c_out, c_in, kh, kw], got shape {shape:?}"))?;
        let (h, w) = match geometry.input_size.as_slice() {
            [s] => (*s, *s),
            [h, w] => (*h, *w),
            _ => bail!("--input-size takes H,W"),
        };
        let padding = match geometry.padding {
            PaddingArg::Circular => Padding::Circular,
            PaddingArg::Zeros => {
                let (ph, pw) = geometry.pad.map_or((kh / 2, kw / 2), |p| (p, p));
                Padding::Zeros([ph, pw, ph, pw])
            }
        };
        let stride = [geometry.stride, geometry.stride];
        let op = ConvOperator { kernel, c_out, c_in, kh, kw, h, w, stride, padding };
        op.validate().map_err(|e| anyhow::anyhow!("{what}: {e}"))?;
        Ok(Operator::Conv(op))
    }
}

/// Input size, padding and stride of a convolution.
pub struct ConvGeometry {
    pub input_size: Vec<usize>,
    pub padding: PaddingArg,
    pub pad: Option<usize>,
    pub stride: usize,
}

fn operator(args: &Args) -> anyhow::Result<Operator> {
    if let Some(path) = &args.matrix {
        let w = read_float(path)?;
        return Operator::matrix(&path.display().to_string(), w.data, &w.shape);
    }
    let path = args.conv.as_ref().expect("clap requires --matrix or --conv");
    let k = read_float(path)?;
    let geometry = ConvGeometry {
        input_size: args.input_size.clone().unwrap_or_default(),
        padding: args.padding,
        pad: args.pad,
        stride: args.stride,
    };
    Operator::conv(&path.display().to_string(), k.data, &k.shape, &geometry)
}

/// How to bound the norm: the CLI's --method, --iters, --tol, --grid and --seed.
#[derive(Clone)]
pub struct Settings {
    pub method: MethodArg,
    pub iters: Option<usize>,
    pub tol: Option<f64>,
    pub grid: Option<Vec<usize>>,
    pub seed: u64,
}

/// Rejects iteration counts that are zero or that cannot help.
fn check_iters(args: &Settings) -> anyhow::Result<()> {
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

/// A certified bracket on the norm of an operator, with what the table and JSON report.
pub struct Spectral {
    pub bracket: Bracket,
    /// The operator, described ("2000 x 1000", "conv 64x64x3x3 on 32x32, ...").
    pub operator: String,
    /// The symbol bound's curvature factor and its grid (--grid).
    pub symbol_factor: Option<(f64, [usize; 2])>,
    pub time_s: f64,
    pub iters_requested: Option<usize>,
    /// With --iters: Gram iteration stopped after this many products (the rounding floor).
    pub stopped_early: Option<usize>,
}

/// Bounds the spectral norm of `op`.
pub fn compute(op: &Operator, s: &Settings) -> anyhow::Result<Spectral> {
    check_iters(s)?;
    if let Some(t) = s.tol {
        if !(t > 0.0 && t.is_finite()) {
            bail!("--tol must be a positive number, got {t}");
        }
    }
    let method = match s.method {
        MethodArg::Exact => Method::Exact,
        MethodArg::Power | MethodArg::Toep => Method::Power,
        MethodArg::Gram => Method::Gram,
        MethodArg::Auto => Method::Auto,
    };
    let opts = Options {
        iters: s.iters,
        tol: if s.iters.is_some() { None } else { Some(s.tol.unwrap_or(1e-6)) },
        seed: s.seed,
    };
    let grid = match s.grid.as_deref() {
        None => None,
        Some(_) if matches!(op, Operator::Matrix { .. }) => bail!("--grid applies to --conv only"),
        Some(_) if s.method == MethodArg::Toep => {
            bail!("--grid and --method toep are two different bounds; pick one")
        }
        Some([n]) => Some([*n, *n]),
        Some([h, w]) => Some([*h, *w]),
        Some(_) => bail!("--grid takes N or N,M"),
    };
    // The symbol bound's curvature factor, reported with its grid.
    let mut symbol_factor = None;
    let start = Instant::now();
    let (b, shape) = match op {
        Operator::Matrix { .. } if s.method == MethodArg::Toep => bail!("--method toep applies to --conv only"),
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
            if s.method == MethodArg::Toep {
                // Upper from the kernel's own Gram iterations; lower from power iteration.
                b.upper = toeplitz_bound(c, s.iters.unwrap_or(3)).map_err(anyhow::Error::msg)?;
                b.method = "toep";
                b.iters = s.iters.unwrap_or(3);
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
        !b.lower.is_finite() || (b.lower == 0.0 && max_abs(op) > 0.0)
    } else {
        !b.upper.is_finite()
    };
    if overflow {
        bail!(
            "the norm bound overflows f64 (entries up to {:e}): scale the operator down, its norm scales linearly",
            max_abs(op)
        );
    }
    // With --iters, Gram iteration stops early once the bracket no longer narrows.
    let stopped_early = s.iters.filter(|&n| b.method == "gram" && b.iters < n).map(|_| b.iters);
    Ok(Spectral { bracket: b, operator: shape, symbol_factor, time_s, iters_requested: s.iters, stopped_early })
}

impl Spectral {
    /// What `spectral --json` prints.
    pub fn to_json(&self) -> Value {
        let b = &self.bracket;
        let finite = |v: f64| if v.is_finite() { json!(v) } else { Value::Null };
        json!({
            "upper": finite(b.upper), "lower": finite(b.lower), "method": b.method, "iters": b.iters,
            "time_s": self.time_s, "operator": self.operator, "relative_width": finite(b.relative_width()),
            "grid": self.symbol_factor.map(|(_, g)| g), "grid_factor": self.symbol_factor.map(|(f, _)| f),
            "iters_requested": self.iters_requested, "stopped_early": self.stopped_early.is_some(),
        })
    }
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let settings =
        Settings { method: args.method, iters: args.iters, tol: args.tol, grid: args.grid.clone(), seed: args.seed };
    check_iters(&settings)?;
    let op = operator(&args)?;
    let r = compute(&op, &settings)?;
    if args.json {
        return print_json(&r.to_json());
    }
    let (b, shape, time_s, symbol_factor) = (&r.bracket, r.operator.clone(), r.time_s, r.symbol_factor);
    let stopped_early = r.stopped_early.and(args.iters);
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
