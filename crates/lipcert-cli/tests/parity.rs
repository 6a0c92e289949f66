//! Forward parity against an independent ONNX runtime (onnxruntime, f32): `lipcert eval`
//! on every benchmark network, on inputs sampled inside its properties' input boxes, must
//! match to 1e-5 of the output scale; so must lipcert's exported models and random networks
//! that use every node type.

mod common;
use common::*;
use lipcert_core::random::random_network;
use lipcert_core::Rng;
use lipcert_io::{export_file, import_file, DType, ExportPrecision, NpyArray};
use std::path::Path;

const TOLERANCE: f64 = 1e-5;

#[test]
fn eval_matches_onnxruntime_on_every_benchmark_network() {
    let (Some(bench), true) = (benchmarks(), oracle_available()) else {
        return;
    };
    let dir = tempdir("parity");
    let out = dir.to_str().unwrap();
    oracle(&["parity", "--benchmarks", bench.to_str().unwrap(), "--out", out, "--samples", "8", "--props", "2"]);
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("manifest.json")).unwrap()).unwrap();
    let cases = manifest.as_array().unwrap();
    assert!(cases.len() >= 60, "expected every benchmark network, got {}", cases.len());
    let mut worst = (0.0, String::new());
    let mut worst_export = (0.0, String::new());
    for (i, case) in cases.iter().enumerate() {
        let (model, x, y) = (case["model"].as_str().unwrap(), case["x"].as_str().unwrap(), case["y"].as_str().unwrap());
        let ours = dir.join(format!("{i}.lipcert.npy"));
        lipcert_ok(&["eval", model, "--input", x, "--output", ours.to_str().unwrap()]);
        let err = max_row_error(&NpyArray::read(&ours).unwrap(), &NpyArray::read(Path::new(y)).unwrap());
        assert!(err <= TOLERANCE, "{model}: lipcert eval differs from onnxruntime by {err:e} of the output scale");
        if err > worst.0 {
            worst = (err, model.to_string());
        }
        // The exported model (f32, BatchNorm folded, identities removed), evaluated by onnxruntime.
        let exported = dir.join(format!("{i}.exported.onnx"));
        let y_exported = dir.join(format!("{i}.exported.y.npy"));
        lipcert_ok(&["export", model, "-o", exported.to_str().unwrap()]);
        oracle(&["eval", exported.to_str().unwrap(), x, y_exported.to_str().unwrap()]);
        let err = max_row_error(&NpyArray::read(&y_exported).unwrap(), &NpyArray::read(Path::new(y)).unwrap());
        assert!(err <= TOLERANCE, "{model}: onnxruntime on lipcert's export differs by {err:e}");
        if err > worst_export.0 {
            worst_export = (err, model.to_string());
        }
    }
    println!(
        "{} networks; worst eval error {:e} ({}); worst export error {:e} ({})",
        cases.len(),
        worst.0,
        worst.1,
        worst_export.0,
        worst_export.1
    );
}

#[test]
fn random_networks_with_every_operator_match_onnxruntime() {
    if !oracle_available() {
        return;
    }
    let dir = tempdir("random-parity");
    let mut rng = Rng::new(42);
    for case in 0..12 {
        let net = random_network(&mut rng);
        let path = dir.join(format!("{case}.onnx"));
        export_file(&net, &path, ExportPrecision::F32).unwrap();
        // Our side evaluates the f32 weights that onnxruntime sees.
        let net = import_file(&path).unwrap().network;
        let n = 16;
        let x: Vec<f64> = (0..n * net.input_len()).map(|_| rng.range(-2.0, 2.0) as f32 as f64).collect();
        let xp = dir.join(format!("{case}.x.npy"));
        NpyArray::new(vec![n, net.input_len()], x.clone(), DType::F32).write(&xp).unwrap();
        let yp = dir.join(format!("{case}.y.npy"));
        oracle(&["eval", path.to_str().unwrap(), xp.to_str().unwrap(), yp.to_str().unwrap()]);
        let ours = NpyArray::new(vec![n, net.output_len()], net.forward(&x, n).unwrap(), DType::F64);
        let err = max_row_error(&ours, &NpyArray::read(&yp).unwrap());
        assert!(err <= TOLERANCE, "random network {case}: differs from onnxruntime by {err:e}");
    }
}
