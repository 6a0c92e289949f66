//! `lipcert prune`, `lipcert deviation` and `lipcert control` end to end: a trained controller
//! is pruned, the pruned ONNX file is read back by onnxruntime (an independent runtime) with the
//! same outputs as lipcert's, the three deviation measures keep their order, and the closed
//! loop never exceeds the certified bound. Bad input gives one-line errors.

mod common;
use common::*;
use lipcert_io::{DType, NpyArray};

#[test]
fn prune_deviation_and_closed_loop_on_a_trained_controller() {
    let dir = tempdir("prune");
    let p = |name: &str| dir.join(name).to_str().unwrap().to_string();
    let (policy, pruned) = (p("pendulum.onnx"), p("pruned.onnx"));
    lipcert_ok(&["control", "train", "--system", "pendulum", "-o", &policy, "--epochs", "40", "--episodes", "10"]);
    let report = json(&[
        "prune",
        &policy,
        "--system",
        "pendulum",
        "--method",
        "sparsegpt",
        "--sparsity",
        "0.3",
        "-o",
        &pruned,
        "--json",
    ]);
    let layers = report["report"]["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 3);
    let sparsity = report["report"]["sparsity"].as_f64().unwrap();
    assert!((sparsity - 0.3).abs() < 0.02, "sparsity {sparsity}");

    // The written file: the same zeros and outputs in onnxruntime as in lipcert.
    let x = p("x.npy");
    let states: Vec<f64> =
        (0..64).flat_map(|i| [(i as f64 / 32.0 - 1.0) * 1.2, ((i * 7) % 64) as f64 / 32.0 - 1.0]).collect();
    NpyArray::new(vec![64, 2], states, DType::F64).write(std::path::Path::new(&x)).unwrap();
    let (ours, theirs) = (p("ours.npy"), p("theirs.npy"));
    lipcert_ok(&["eval", &pruned, "--input", &x, "--output", &ours]);
    if oracle_available() {
        oracle(&["eval", &pruned, &x, &theirs]);
        let (a, b) = (NpyArray::read(ours.as_ref()).unwrap(), NpyArray::read(theirs.as_ref()).unwrap());
        let err = max_row_error(&a, &b);
        assert!(err < 1e-5, "lipcert and onnxruntime differ by {err} on the pruned model");
    }

    let d = json(&["deviation", &policy, &pruned, "--system", "pendulum", "--samples", "20000", "--json"]);
    let (closed, cert, obs) =
        (d["closed_form"].as_f64().unwrap(), d["certified"].as_f64().unwrap(), d["observed_max"].as_f64().unwrap());
    assert!(obs > 0.0 && obs <= cert && obs <= closed, "observed {obs}, certified {cert}, closed form {closed}");
    assert_eq!(d["layers"].as_array().unwrap().len(), 3);

    let sim = json(&[
        "control",
        "simulate",
        "--system",
        "pendulum",
        &policy,
        "--compare",
        &pruned,
        "--episodes",
        "10",
        "--bound",
        &cert.to_string(),
        "--json",
    ]);
    assert_eq!(sim["comparison"]["bound_exceeded"].as_u64(), Some(0));

    // A sweep writes its plot; a budget keeps the certified deviation under it.
    let svg = p("sweep.svg");
    let s = json(&[
        "prune",
        &policy,
        "--system",
        "pendulum",
        "--sweep",
        "0.2,0.5",
        "--method",
        "magnitude,obs",
        "--samples",
        "5000",
        "--plot",
        &svg,
        "--json",
    ]);
    assert_eq!(s["results"].as_array().unwrap().len(), 4);
    assert!(std::fs::read_to_string(&svg).unwrap().starts_with("<svg"));
    let b = json(&["prune", &policy, "--system", "pendulum", "--budget", "1.0", "-o", &p("budget.onnx"), "--json"]);
    assert!(b["schedule"]["certified"].as_f64().unwrap() <= 1.0);
}

#[test]
fn bad_prune_and_deviation_input_gives_one_line_errors() {
    let demo = repo_root().join("models/demo.onnx");
    let demo = demo.to_str().unwrap();
    let dir = tempdir("prune-errors");
    let out = dir.join("o.onnx");
    let out = out.to_str().unwrap();
    assert!(fails(&["prune", demo, "--sparsity", "0.5", "-o", out]).contains("calib"));
    assert!(fails(&["prune", demo, "--system", "pendulum", "--sparsity", "0.5", "-o", out]).contains("inputs"));
    let x = dir.join("x.npy");
    NpyArray::new(vec![4, 144], (0..576).map(|i| (i % 5) as f64 * 0.2).collect(), DType::F64).write(&x).unwrap();
    let e = fails(&["prune", demo, "--calib", x.to_str().unwrap(), "--sparsity", "1.5", "-o", out]);
    assert!(e.contains("sparsity"), "{e}");
    let e = fails(&["prune", demo, "--calib", x.to_str().unwrap(), "--nm", "5:4", "-o", out]);
    assert!(e.contains("5:4"), "{e}");
    let e = fails(&["deviation", demo, demo]);
    assert!(e.contains("--box"), "{e}");
    let e = fails(&["deviation", demo, "missing.onnx", "--system", "pendulum"]);
    assert!(e.contains("missing.onnx"), "{e}");
}
