//! The model section: what `lipcert info` prints, as a struct.

use serde::Serialize;

#[derive(Clone, Debug, Serialize)]
pub struct NodeRow {
    pub name: String,
    pub op: &'static str,
    pub output_shape: Vec<usize>,
    pub params: usize,
}

#[derive(Clone, Debug, Serialize)]
pub struct ModelSummary {
    pub file: String,
    pub ir_version: i64,
    pub opset: i64,
    pub producer: String,
    pub input_name: String,
    pub input_shape: Vec<usize>,
    pub output_name: String,
    pub output_shape: Vec<usize>,
    pub params: usize,
    pub nodes: Vec<NodeRow>,
    /// Simplifications applied on import and warnings.
    pub notes: Vec<String>,
}

pub fn summarize(m: &lipcert_io::Imported, file: &str) -> ModelSummary {
    let net = &m.network;
    ModelSummary {
        file: file.to_string(),
        ir_version: m.ir_version,
        opset: m.opset,
        producer: m.producer.clone(),
        input_name: net.input_name().to_string(),
        input_shape: net.input_shape().to_vec(),
        output_name: net.output_name().to_string(),
        output_shape: net.output_shape().to_vec(),
        params: net.param_count(),
        nodes: net
            .nodes
            .iter()
            .enumerate()
            .map(|(k, n)| NodeRow {
                name: n.name.clone(),
                op: n.op.kind(),
                output_shape: net.shapes[k + 1].clone(),
                params: n.op.param_count(),
            })
            .collect(),
        notes: m.notes.clone(),
    }
}
