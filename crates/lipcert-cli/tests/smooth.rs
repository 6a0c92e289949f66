//! `lipcert smooth`: output formats and one-line errors for bad input.

mod common;
use common::*;
use lipcert_io::{DType, NpyArray};
use std::path::{Path, PathBuf};

fn demo() -> String {
    repo_root().join("models/demo.onnx").to_str().unwrap().to_string()
}

/// Four demo inputs and labels (the demo net's own predictions, so most are certified).
fn data(dir: &Path) -> (String, String) {
    let x: Vec<f64> = (0..4 * 144).map(|i| ((i * 37 % 101) as f64 / 101.0) as f32 as f64).collect();
    let xp = dir.join("x.npy");
    NpyArray::new(vec![4, 144], x.clone(), DType::F32).write(&xp).unwrap();
    let net = lipcert_core::demo::demo_network();
    let y = net.forward(&x, 4).unwrap();
    let labels: Vec<f64> = y.chunks(3).map(|r| (0..3).max_by(|&a, &b| r[a].total_cmp(&r[b])).unwrap() as f64).collect();
    let yp = dir.join("y.npy");
    NpyArray::new(vec![4], labels, DType::I64).write(&yp).unwrap();
    (xp.to_str().unwrap().into(), yp.to_str().unwrap().into())
}

fn path(p: PathBuf) -> String {
    p.to_str().unwrap().to_string()
}

#[test]
fn certify_json_lines_and_table() {
    let dir = tempdir("smooth-formats");
    let (x, y) = data(&dir);
    let base = ["smooth", "certify", &demo(), "--data", &x, "--labels", &y, "--sigma", "0.25", "--n", "2000"];
    for method in ["cohen", "two-sided", "cpm", "lvm"] {
        let v = json(&[&base[..], &["--method", method, "--json"]].concat());
        assert_eq!(v["method"], method);
        assert_eq!(v["samples"], 4);
        let per = v["per_sample"].as_array().unwrap();
        assert_eq!(per.len(), 4);
        for s in per {
            let (p, r) = (s["predict"].as_i64().unwrap(), s["radius"].as_f64().unwrap());
            assert!((p == -1 && r == 0.0) || (p >= 0 && r > 0.0), "{s}");
            assert!(s["idx"].is_u64() && s["label"].is_u64() && s["correct"].is_boolean() && s["time_s"].is_f64());
        }
        let curve = v["curve"].as_array().unwrap();
        assert_eq!(curve[0]["radius"], 0.0);
        assert!(curve.windows(2).all(|c| c[0]["certified"].as_u64() >= c[1]["certified"].as_u64()));
    }
    let v = json(&[&base[..], &["--method", "lipschitz", "--lipschitz", "20", "--json"]].concat());
    assert!(v["per_sample"][0]["radius_margin"].is_f64(), "{v}");
    // The per-line format: header, then idx label predict radius correct time, tab-separated.
    let out = lipcert_ok(&[&base[..], &["--lines"]].concat());
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "idx\tlabel\tpredict\tradius\tcorrect\ttime");
    assert_eq!(lines.len(), 5);
    for (i, l) in lines[1..].iter().enumerate() {
        let f: Vec<&str> = l.split('\t').collect();
        assert_eq!(f.len(), 6, "{l}");
        assert_eq!(f[0], i.to_string());
        f[3].parse::<f64>().unwrap();
        assert!(f[4] == "0" || f[4] == "1");
    }
    let table = lipcert_ok(&base);
    assert!(table.contains("certified accuracy") && table.contains("idx\tlabel\tpredict"), "{table}");
    // Seeds reproduce.
    let a = json(&[&base[..], &["--seed", "3", "--json"]].concat());
    let b = json(&[&base[..], &["--seed", "3", "--json"]].concat());
    assert_eq!(a["per_sample"][1]["radius"], b["per_sample"][1]["radius"]);
}

#[test]
fn predict_with_and_without_labels() {
    let dir = tempdir("smooth-predict");
    let (x, y) = data(&dir);
    let v = json(&["smooth", "predict", &demo(), "--data", &x, "--sigma", "0.1", "--n", "500", "--json"]);
    assert_eq!(v["per_sample"].as_array().unwrap().len(), 4);
    assert!(v["accuracy"].is_null());
    let out = lipcert_ok(&["smooth", "predict", &demo(), "--data", &x, "--labels", &y, "--sigma", "0.1", "--n", "500"]);
    assert!(out.contains("idx\tlabel\tpredict\tcorrect\ttime"), "{out}");
}

#[test]
fn bad_input_gets_one_line_errors() {
    let dir = tempdir("smooth-bad");
    let (x, y) = data(&dir);
    let bad_labels = path(dir.join("bad_labels.npy"));
    NpyArray::new(vec![4], vec![0.0, 1.0, 7.0, 0.0], DType::I64).write(Path::new(&bad_labels)).unwrap();
    let few_labels = path(dir.join("few_labels.npy"));
    NpyArray::new(vec![3], vec![0.0, 1.0, 0.0], DType::I64).write(Path::new(&few_labels)).unwrap();
    let wrong_shape = path(dir.join("wrong_shape.npy"));
    NpyArray::new(vec![4, 100], vec![0.0; 400], DType::F32).write(Path::new(&wrong_shape)).unwrap();
    let m = demo();
    let run = |extra: &[&str], data: &str, labels: &str| {
        let mut a = vec!["smooth", "certify", &m, "--data", data, "--labels", labels, "--n", "100"];
        a.extend_from_slice(extra);
        fails(&a)
    };
    for (extra, want) in [
        (&["--sigma", "0"][..], "--sigma"),
        (&["--sigma", "-1"], "--sigma"),
        (&["--sigma", "0.25", "--alpha", "0"], "--alpha"),
        (&["--sigma", "0.25", "--alpha", "1.5"], "--alpha"),
        (&["--sigma", "0.25", "--n0", "500"], "--n0"),
        (&["--sigma", "0.25", "--method", "lipschitz"], "--lipschitz"),
        (&["--sigma", "0.25", "--method", "lipschitz", "--lipschitz", "-2"], "--lipschitz"),
        (&["--sigma", "0.25", "--batch", "0"], "--batch"),
        (&["--sigma", "0.25", "--method", "nope"], "nope"),
    ] {
        let err = run(extra, &x, &y);
        assert!(err.contains(want), "{extra:?}: {err}");
    }
    assert!(run(&["--sigma", "0.25"], &x, &bad_labels).contains("label 7 of sample 2"));
    assert!(run(&["--sigma", "0.25"], &x, &few_labels).contains("3 labels"));
    assert!(run(&["--sigma", "0.25"], &wrong_shape, &y).contains("expected float inputs"));
    assert!(run(&["--sigma", "0.25"], "/nonexistent.npy", &y).contains("nonexistent"));
    let err = fails(&["smooth", "predict", &m, "--data", &x, "--sigma", "0", "--n", "10"]);
    assert!(err.contains("--sigma"), "{err}");
}
