//! What a new user ran into when trying the README: each case is a one-line error or a clearly
//! labelled result, never an abort, a silent default or a success-looking non-result.

mod common;

use common::{fails, lipcert, lipcert_ok, repo_root, tempdir};
use lipcert_io::onnx::proto::*;
use lipcert_io::{DType, NpyArray};
use prost::Message;
use std::path::Path;

/// y = Relu(x) on an input of the given shape, at the given opset.
fn relu_model(dir: &Path, name: &str, shape: &[i64], opset: i64) -> String {
    let vi = |n: &str| ValueInfoProto {
        name: n.into(),
        r#type: Some(TypeProto {
            tensor_type: Some(TypeProtoTensor {
                elem_type: 1,
                shape: Some(TensorShapeProto {
                    dim: shape.iter().map(|&d| Dimension { value: Some(DimensionValue::DimValue(d)) }).collect(),
                }),
            }),
        }),
        doc_string: String::new(),
    };
    let m = ModelProto {
        ir_version: 8,
        opset_import: vec![OperatorSetIdProto { domain: String::new(), version: opset }],
        graph: Some(GraphProto {
            node: vec![NodeProto {
                input: vec!["x".into()],
                output: vec!["y".into()],
                name: "relu".into(),
                op_type: "Relu".into(),
                ..Default::default()
            }],
            input: vec![vi("x")],
            output: vec![vi("y")],
            ..Default::default()
        }),
        ..Default::default()
    };
    let p = dir.join(name);
    std::fs::write(&p, m.encode_to_vec()).unwrap();
    p.to_str().unwrap().to_string()
}

#[test]
fn a_huge_declared_input_is_a_one_line_error_and_info_warns() {
    let dir = tempdir("newcomer-huge");
    let m = relu_model(&dir, "huge.onnx", &[1, 100000, 100000, 100000], 13);
    for cmd in ["lipschitz", "certify", "report"] {
        let mut args = vec![cmd, m.as_str()];
        let extra: &[&str] = match cmd {
            "certify" => &["--data", "x.npy", "--labels", "y.npy", "--eps", "0.1"],
            "report" => &["-o", "out"],
            _ => &[],
        };
        args.extend_from_slice(extra);
        let e = fails(&args);
        assert!(e.contains("huge.onnx") && e.contains("'x'") && e.contains("limit"), "{cmd}: {e}");
    }
    let info = lipcert_ok(&["info", &m]);
    assert!(info.contains("warning: value 'x'") && info.contains("analyses will refuse"), "{info}");
    let json: serde_json::Value = serde_json::from_str(&lipcert_ok(&["info", &m, "--json"])).unwrap();
    assert_eq!(json["warnings"].as_array().map(|w| w.len()), Some(1));
}

#[test]
fn opset_99_and_empty_graphs_are_refused() {
    let dir = tempdir("newcomer-opset");
    let m = relu_model(&dir, "opset99.onnx", &[1, 4], 99);
    let e = fails(&["info", &m]);
    assert!(e.contains("opset99.onnx") && e.contains("opset 99"), "{e}");
    let ok = relu_model(&dir, "opset13.onnx", &[1, 4], 13);
    lipcert_ok(&["info", &ok]);
}

#[test]
fn gram_iterations_stop_at_the_rounding_floor_and_zero_is_rejected() {
    let dir = tempdir("newcomer-gram");
    let eye = dir.join("eye.npy");
    let mut data = vec![0.0; 9];
    data[0] = 1.0;
    data[4] = 1.0;
    data[8] = 1.0;
    NpyArray::new(vec![3, 3], data, DType::F64).write(&eye).unwrap();
    let eye = eye.to_str().unwrap();
    let start = std::time::Instant::now();
    let out = lipcert_ok(&["spectral", "--matrix", eye, "--method", "gram", "--iters", "64", "--json"]);
    assert!(start.elapsed().as_secs_f64() < 5.0, "64 Gram products of a 3 x 3 matrix took {:?}", start.elapsed());
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["stopped_early"], true, "{v}");
    assert!(v["iters"].as_u64().unwrap() < 64);
    assert!(v["lower"].as_f64().unwrap() <= 1.0 && v["upper"].as_f64().unwrap() >= 1.0, "{v}");
    assert!(v["relative_width"].as_f64().unwrap() < 1e-6);
    let text = lipcert_ok(&["spectral", "--matrix", eye, "--method", "gram", "--iters", "64"]);
    assert!(text.contains("stopped after") && text.contains("rounding floor"), "{text}");
    assert!(fails(&["spectral", "--matrix", eye, "--method", "gram", "--iters", "100000"]).contains("at most 64"));
    assert!(fails(&["spectral", "--matrix", eye, "--iters", "0"]).contains("--iters must be at least 1"));
}

#[test]
fn an_overflowing_norm_is_an_error_not_a_missing_value() {
    let dir = tempdir("newcomer-overflow");
    let big = dir.join("big.npy");
    NpyArray::new(vec![2, 2], vec![1e308; 4], DType::F64).write(&big).unwrap();
    let big = big.to_str().unwrap();
    for method in ["auto", "gram", "exact", "power"] {
        let e = fails(&["spectral", "--matrix", big, "--method", method]);
        assert!(e.contains("overflows"), "{method}: {e}");
    }
    let out = lipcert(&["spectral", "--matrix", big, "--json"]);
    assert!(!out.status.success() && out.stdout.is_empty(), "no JSON for a non-result");
}

#[test]
fn zero_iteration_and_step_counts_are_rejected() {
    let demo = repo_root().join("models/demo.onnx");
    let demo = demo.to_str().unwrap();
    let dir = tempdir("newcomer-steps");
    let (lo, hi) = (dir.join("lo.npy"), dir.join("hi.npy"));
    NpyArray::new(vec![144], vec![0.0; 144], DType::F64).write(&lo).unwrap();
    NpyArray::new(vec![144], vec![0.1; 144], DType::F64).write(&hi).unwrap();
    let (lo, hi) = (lo.to_str().unwrap(), hi.to_str().unwrap());
    let e = fails(&["bounds", demo, "--box", lo, hi, "--method", "alpha-crown", "--alpha-iterations", "0"]);
    assert!(e.contains("--alpha-iterations must be at least 1"), "{e}");
    lipcert_ok(&["bounds", demo, "--box", lo, hi, "--method", "alpha-crown", "--alpha-iterations", "1"]);
    let prop = dir.join("p.vnnlib");
    let mut text = String::new();
    for i in 0..144 {
        text += &format!("(declare-const X_{i} Real)\n(assert (>= X_{i} 0.4))\n(assert (<= X_{i} 0.6))\n");
    }
    text += "(declare-const Y_0 Real)\n(declare-const Y_1 Real)\n(declare-const Y_2 Real)\n(assert (>= Y_0 Y_1))\n";
    std::fs::write(&prop, text).unwrap();
    let prop = prop.to_str().unwrap();
    for (flag, other) in [("--steps", "--restarts"), ("--restarts", "--steps")] {
        let e = fails(&["attack", demo, "--vnnlib", prop, flag, "0", other, "3"]);
        assert!(e.contains("must be at least 1"), "{e}");
    }
    lipcert_ok(&["attack", demo, "--vnnlib", prop, "--steps", "1", "--restarts", "1"]);
}
