use crate::render::print_json;
use anyhow::Context;
use lipcert_core::Network;
use lipcert_io::{export_file, ExportPrecision};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

#[derive(clap::Args)]
pub struct Args {
    /// ONNX model.
    model: PathBuf,
    /// Where to write the exported model.
    #[arg(short, long)]
    output: PathBuf,
    /// Weight precision of the written model (f64 is exact; f32 is the usual model format).
    #[arg(long, value_enum, default_value = "f32")]
    precision: Precision,
    #[arg(long)]
    json: bool,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum Precision {
    F32,
    F64,
}

impl Precision {
    pub fn export(self) -> ExportPrecision {
        match self {
            Precision::F32 => ExportPrecision::F32,
            Precision::F64 => ExportPrecision::F64,
        }
    }
}

/// Writes `net` to `output` as ONNX; the result is what `export --json` prints.
pub fn compute(net: &Network, notes: &[String], output: &Path, precision: Precision) -> anyhow::Result<Value> {
    export_file(net, output, precision.export()).with_context(|| format!("{}: cannot write", output.display()))?;
    Ok(json!({"output": output.display().to_string(), "nodes": net.nodes.len(), "notes": notes}))
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let m = super::import_model(&args.model)?;
    let result = compute(&m.network, &m.notes, &args.output, args.precision)?;
    if args.json {
        return print_json(&result);
    }
    println!("wrote {} ({} nodes)", args.output.display(), m.network.nodes.len());
    Ok(())
}
