use crate::render::{print_json, shape, table};
use lipcert_io::Imported;
use serde_json::{json, Value};
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// ONNX model.
    model: PathBuf,
    /// Machine-readable output on stdout.
    #[arg(long)]
    json: bool,
}

/// The warning printed when a model is too large for the analyses (info still describes it).
pub fn size_warning(m: &Imported) -> Option<String> {
    lipcert_core::limits::check_sizes(&m.network)
        .err()
        .map(|e| format!("warning: {e}: analyses will refuse this model"))
}

/// What `info --json` prints for the model loaded from `file`.
pub fn to_json(file: &str, m: &Imported) -> Value {
    let net = &m.network;
    let nodes: Vec<_> = net
        .nodes
        .iter()
        .enumerate()
        .map(|(k, n)| {
            json!({
                "name": n.name,
                "op": n.op.kind(),
                "inputs": n.inputs.iter().map(|&v| &net.value_names[v]).collect::<Vec<_>>(),
                "output_shape": net.shapes[k + 1],
                "params": n.op.param_count(),
            })
        })
        .collect();
    json!({
        "file": file,
        "ir_version": m.ir_version,
        "opset": m.opset,
        "producer": m.producer,
        "inputs": [{"name": net.input_name(), "shape": net.input_shape(), "declared_shape": m.declared_input}],
        "outputs": [{"name": net.output_name(), "shape": net.output_shape(), "declared_shape": m.declared_output}],
        "nodes": nodes,
        "params": net.param_count(),
        "notes": m.notes,
        "warnings": size_warning(m).as_slice(),
    })
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let m = super::import_model(&args.model)?;
    if args.json {
        return print_json(&to_json(&args.model.display().to_string(), &m));
    }
    let too_large = size_warning(&m);
    let net = &m.network;
    println!(
        "model    {}  (ONNX IR {}, opset {}, producer '{}')",
        args.model.display(),
        m.ir_version,
        m.opset,
        m.producer
    );
    println!(
        "input    {}  {}  ({} elements; declared [{}])",
        net.input_name(),
        shape(net.input_shape()),
        net.input_len(),
        m.declared_input.join(", ")
    );
    println!("output   {}  {}", net.output_name(), shape(net.output_shape()));
    println!("params   {}", net.param_count());
    println!();
    let rows: Vec<Vec<String>> = net
        .nodes
        .iter()
        .enumerate()
        .map(|(k, n)| {
            vec![
                (k + 1).to_string(),
                n.name.clone(),
                n.op.kind().to_string(),
                n.inputs
                    .iter()
                    .map(|&v| if v == 0 { "input".to_string() } else { v.to_string() })
                    .collect::<Vec<_>>()
                    .join(","),
                shape(&net.shapes[k + 1]),
                n.op.param_count().to_string(),
            ]
        })
        .collect();
    print!("{}", table(&["#", "node", "op", "from", "output shape", "params"], &rows));
    if !m.notes.is_empty() {
        println!();
        for note in &m.notes {
            println!("note: {note}");
        }
    }
    if let Some(w) = too_large {
        println!();
        println!("{w}");
    }
    Ok(())
}
