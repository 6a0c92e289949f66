use crate::render::print_json;
use anyhow::Context;
use lipcert_io::{export_file, ExportPrecision};
use serde_json::json;
use std::path::PathBuf;

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
enum Precision {
    F32,
    F64,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let m = super::import_model(&args.model)?;
    let precision = match args.precision {
        Precision::F32 => ExportPrecision::F32,
        Precision::F64 => ExportPrecision::F64,
    };
    export_file(&m.network, &args.output, precision)
        .with_context(|| format!("{}: cannot write", args.output.display()))?;
    if args.json {
        return print_json(
            &json!({"output": args.output.display().to_string(), "nodes": m.network.nodes.len(), "notes": m.notes}),
        );
    }
    println!("wrote {} ({} nodes)", args.output.display(), m.network.nodes.len());
    Ok(())
}
