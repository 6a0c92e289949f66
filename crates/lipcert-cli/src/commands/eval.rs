use crate::render::print_json;
use anyhow::{bail, Context};
use lipcert_core::Network;
use lipcert_io::{DType, NpyArray};
use serde_json::json;
use std::path::PathBuf;
use std::time::Instant;

#[derive(clap::Args)]
pub struct Args {
    /// ONNX model.
    model: PathBuf,
    /// Inputs: .npy of float32 or float64, shape [N, ...]; each row holds the elements of one
    /// model input in C order (the order of VNN-LIB's X_i), whatever the model's input shape.
    #[arg(long)]
    input: PathBuf,
    /// Outputs: .npy of shape [N, number of outputs].
    #[arg(long)]
    output: PathBuf,
    /// Element type of the written outputs.
    #[arg(long, value_enum, default_value = "f64")]
    dtype: OutType,
    #[arg(long)]
    json: bool,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum OutType {
    F32,
    F64,
}

/// Samples per forward call: bounds memory and drives the progress bar.
const CHUNK: usize = 2048;

/// The number of samples in a batch `x` of the given shape (`what` names it in errors): each
/// row must hold one model input's elements, and every value must be finite.
pub fn batch_size(what: &str, shape: &[usize], x: &[f64], net: &Network) -> anyhow::Result<usize> {
    let len = net.input_len();
    let n = match shape {
        [] => bail!("{what}: a scalar is not a batch; expected shape [N, {len}]"),
        [k] if *k == len => 1,
        [k] => bail!("{what}: shape [{k}] does not hold samples of {len} elements; expected [N, {len}]"),
        [n, rest @ ..] => {
            let row: usize = rest.iter().product();
            if row != len {
                bail!(
                    "{what}: each row has {row} elements, but the model input '{}' {:?} has {len}",
                    net.input_name(),
                    net.input_shape()
                );
            }
            *n
        }
    };
    if let Some(i) = x.iter().position(|v| !v.is_finite()) {
        bail!("{what}: sample {} holds a NaN or infinite value", i / len);
    }
    Ok(n)
}

/// The outputs [n, output_len] of `n` samples, computed in chunks of CHUNK samples;
/// `on_chunk` hears the size of every chunk done.
pub fn forward(net: &Network, x: &[f64], n: usize, on_chunk: &dyn Fn(usize)) -> anyhow::Result<Vec<f64>> {
    let len = net.input_len();
    let mut y = Vec::with_capacity(n * net.output_len());
    for chunk in x.chunks(CHUNK * len) {
        let k = chunk.len() / len;
        y.extend(net.forward(chunk, k)?);
        on_chunk(k);
    }
    Ok(y)
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let m = super::load_model(&args.model)?;
    let net = &m.network;
    let x = NpyArray::read(&args.input).map_err(anyhow::Error::msg)?;
    let file = args.input.display().to_string();
    if !x.dtype.is_float() {
        bail!("{file}: dtype {} is not supported; inputs must be float32 or float64", x.dtype);
    }
    let len = net.input_len();
    let n = batch_size(&file, &x.shape, &x.data, net)?;
    let start = Instant::now();
    let bar = crate::progress::Progress::new("eval: samples", Some(n as u64));
    let y = forward(net, &x.data, n, &|k| bar.inc(k as u64))?;
    bar.finish();
    let time_s = start.elapsed().as_secs_f64();
    let dtype = match args.dtype {
        OutType::F32 => DType::F32,
        OutType::F64 => DType::F64,
    };
    NpyArray::new(vec![n, net.output_len()], y, dtype)
        .write(&args.output)
        .map_err(anyhow::Error::msg)
        .context("cannot write the outputs")?;
    if args.json {
        return print_json(&json!({
            "samples": n, "input_len": len, "output_len": net.output_len(),
            "output": args.output.display().to_string(), "time_s": time_s,
        }));
    }
    println!("evaluated {n} samples in {time_s:.3} s -> {} [{n}, {}] {dtype}", args.output.display(), net.output_len());
    Ok(())
}
