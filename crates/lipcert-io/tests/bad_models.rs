//! Broken models give an error (never a panic) that says what is wrong and where.

use lipcert_io::onnx::proto::*;
use lipcert_io::{import_bytes, import_file};
use prost::Message;

fn mnist() -> Option<Vec<u8>> {
    let p = lipcert_io::testing::benchmarks_dir()?.join("mnistfc/mnist-net_256x2.onnx");
    std::fs::read(p).ok()
}

/// A one-node model y = Relu(x) (or the given operator) on a [1, 4] input.
fn tiny_model(op_type: &str) -> ModelProto {
    let vi = |name: &str| ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            tensor_type: Some(TypeProtoTensor {
                elem_type: 1,
                shape: Some(TensorShapeProto {
                    dim: [1, 4].iter().map(|&d| Dimension { value: Some(DimensionValue::DimValue(d)) }).collect(),
                }),
            }),
        }),
        doc_string: String::new(),
    };
    ModelProto {
        ir_version: 8,
        opset_import: vec![OperatorSetIdProto { domain: String::new(), version: 13 }],
        graph: Some(GraphProto {
            node: vec![NodeProto {
                input: vec!["x".into()],
                output: vec!["y".into()],
                name: "the_node".into(),
                op_type: op_type.into(),
                ..Default::default()
            }],
            input: vec![vi("x")],
            output: vec![vi("y")],
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[test]
fn truncated_models_are_errors() {
    let Some(bytes) = mnist() else { return };
    for i in 1..64 {
        let cut = bytes.len() * i / 64;
        let e = import_bytes(&bytes[..cut]).expect_err("a truncated model must not load");
        assert!(!e.to_string().is_empty());
    }
    assert!(import_bytes(&[]).is_err());
}

#[test]
fn corrupted_models_never_panic() {
    let Some(bytes) = mnist() else { return };
    let mut rng = lipcert_core::Rng::new(3);
    for _ in 0..200 {
        let mut b = bytes.clone();
        for _ in 0..1 + rng.below(8) {
            let i = rng.below(b.len());
            b[i] = rng.next_u64() as u8;
        }
        let _ = import_bytes(&b); // Ok or Err, but no panic.
    }
    assert!(import_bytes(b"this is not a protobuf at all").is_err());
}

#[test]
fn unknown_operator_names_the_operator_and_node() {
    let e = import_bytes(&tiny_model("FancyOp").encode_to_vec()).unwrap_err().to_string();
    assert!(e.contains("FancyOp") && e.contains("the_node"), "{e}");
    assert!(import_bytes(&tiny_model("Relu").encode_to_vec()).is_ok());
}

#[test]
fn nan_and_infinite_weights_are_errors_naming_the_node() {
    let Some(bytes) = mnist() else { return };
    for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
        let mut model = ModelProto::decode(bytes.as_slice()).unwrap();
        let init = &mut model.graph.as_mut().unwrap().initializer[2];
        init.raw_data[8..12].copy_from_slice(&bad.to_le_bytes());
        let name = init.name.clone();
        let e = import_bytes(&model.encode_to_vec()).unwrap_err().to_string();
        assert!(e.contains("NaN or infinite"), "{e}");
        assert!(e.contains("Gemm"), "error should name the node reading '{name}': {e}");
    }
}

#[test]
fn missing_file_and_multi_output_models_are_errors() {
    assert!(import_file(std::path::Path::new("/nonexistent/model.onnx"))
        .unwrap_err()
        .to_string()
        .contains("/nonexistent/model.onnx"));
    let mut m = tiny_model("Relu");
    let g = m.graph.as_mut().unwrap();
    g.output.push(g.output[0].clone());
    assert!(import_bytes(&m.encode_to_vec()).unwrap_err().to_string().contains("2 outputs"));
    let mut m = tiny_model("Relu");
    m.opset_import.clear();
    assert!(import_bytes(&m.encode_to_vec()).unwrap_err().to_string().contains("opset"));
}

#[test]
fn unknown_opsets_and_empty_graphs_are_errors() {
    let mut m = tiny_model("Relu");
    for (version, ok) in [(13, true), (lipcert_io::onnx::NEWEST_OPSET, true), (99, false), (0, false), (-1, false)] {
        m.opset_import[0].version = version;
        let r = import_bytes(&m.encode_to_vec());
        assert_eq!(r.is_ok(), ok, "opset {version}: {:?}", r.err().map(|e| e.to_string()));
        if let Err(e) = r {
            assert!(e.to_string().contains(&format!("opset {version}")), "{e}");
        }
    }
    let mut m = tiny_model("Relu");
    m.graph.as_mut().unwrap().node.clear();
    let e = import_bytes(&m.encode_to_vec()).expect_err("an empty graph must not load");
    assert!(e.to_string().contains("no nodes"), "{e}");
}
