use crate::render::{print_json, table};
use anyhow::bail;
use lipcert_bounds::{ibp, Interval};
use lipcert_io::NpyArray;
use serde_json::json;
use std::path::PathBuf;
use std::time::Instant;

#[derive(clap::Args)]
pub struct Args {
    /// ONNX model.
    model: PathBuf,
    /// Input box: two .npy files with the lower and upper bound of every input element
    /// (C order, as for `lipcert eval`).
    #[arg(long = "box", num_args = 2, value_names = ["LO.npy", "HI.npy"], required = true)]
    input_box: Vec<PathBuf>,
    /// Bound propagation method (CROWN and alpha-CROWN arrive with their issue).
    #[arg(long, value_enum, default_value = "ibp")]
    method: MethodArg,
    #[arg(long)]
    json: bool,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum MethodArg {
    Ibp,
}

fn read_bound(path: &std::path::Path, len: usize) -> anyhow::Result<Vec<f64>> {
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

pub fn run(args: Args) -> anyhow::Result<()> {
    let m = super::load_model(&args.model)?;
    let net = &m.network;
    let len = net.input_len();
    let lo = read_bound(&args.input_box[0], len)?;
    let hi = read_bound(&args.input_box[1], len)?;
    let start = Instant::now();
    let values = ibp(net, Interval::new(lo, hi))?;
    let out = &values[net.output];
    let time_s = start.elapsed().as_secs_f64();
    if args.json {
        return print_json(&json!({
            "method": "ibp", "lower": out.lo, "upper": out.hi, "spec_lower": serde_json::Value::Null, "time_s": time_s,
        }));
    }
    let rows: Vec<Vec<String>> = out
        .lo
        .iter()
        .zip(&out.hi)
        .enumerate()
        .map(|(i, (l, h))| vec![format!("Y_{i}"), format!("{l:.6}"), format!("{h:.6}")])
        .collect();
    println!("output bounds of {} over the input box (ibp, {time_s:.3} s)", args.model.display());
    print!("{}", table(&["output", "lower (certified)", "upper (certified)"], &rows));
    Ok(())
}
