//! End-to-end CLI behaviour: the JSON contract, input layouts, and one-line errors with a
//! non-zero exit code (never a panic) for bad input.

mod common;
use common::*;
use lipcert_core::demo::demo_network;
use lipcert_io::{export_bytes, DType, ExportPrecision, NpyArray};
use std::path::{Path, PathBuf};

fn demo_path() -> PathBuf {
    repo_root().join("models/demo.onnx")
}

fn write_npy(dir: &Path, name: &str, shape: Vec<usize>, dtype: DType) -> String {
    let n = shape.iter().product();
    let p = dir.join(name);
    NpyArray::new(shape, (0..n).map(|i| (i % 7) as f64 * 0.1).collect(), dtype).write(&p).unwrap();
    p.to_str().unwrap().to_string()
}

#[test]
fn shipped_demo_model_is_reproducible_from_code() {
    let bytes = export_bytes(&demo_network(), ExportPrecision::F32);
    if std::env::var_os("LIPCERT_WRITE_DEMO").is_some() {
        std::fs::write(demo_path(), &bytes).unwrap();
    }
    let shipped = std::fs::read(demo_path()).expect("models/demo.onnx is shipped");
    assert!(shipped == bytes, "models/demo.onnx differs from demo_network(); regenerate with LIPCERT_WRITE_DEMO=1");
}

#[test]
fn info_json_follows_the_contract() {
    let out = lipcert_ok(&["info", demo_path().to_str().unwrap(), "--json"]);
    let v: serde_json::Value = serde_json::from_str(&out).expect("stdout is only JSON");
    assert_eq!(v["inputs"][0]["name"], "image");
    assert_eq!(v["inputs"][0]["shape"], serde_json::json!([1, 1, 12, 12]));
    assert_eq!(v["outputs"][0]["shape"], serde_json::json!([1, 3]));
    let nodes = v["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 10);
    assert!(nodes.iter().all(|n| n["name"].is_string() && n["op"].is_string()));
    let params: u64 = nodes.iter().map(|n| n["params"].as_u64().unwrap()).sum();
    assert_eq!(v["params"].as_u64().unwrap(), params);
    let table = lipcert_ok(&["info", demo_path().to_str().unwrap()]);
    assert!(table.contains("conv2") && table.contains("AvgPool") && table.contains("[1, 8, 3, 3]"), "{table}");
}

#[test]
fn eval_accepts_any_row_layout_and_both_float_types() {
    let dir = tempdir("cli-eval");
    let model = demo_path();
    let model = model.to_str().unwrap();
    let mut outputs = vec![];
    for (name, shape, dtype) in [
        ("flat.npy", vec![5, 144], DType::F32),
        ("image.npy", vec![5, 1, 1, 12, 12], DType::F32),
        ("f64.npy", vec![5, 144], DType::F64),
    ] {
        let x = write_npy(&dir, name, shape, dtype);
        let y = dir.join(format!("y-{name}"));
        let json = lipcert_ok(&["eval", model, "--input", &x, "--output", y.to_str().unwrap(), "--json"]);
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["samples"], 5);
        let y = NpyArray::read(&y).unwrap();
        assert_eq!((y.shape.clone(), y.dtype), (vec![5, 3], DType::F64));
        outputs.push(y.data);
    }
    assert_eq!(outputs[0], outputs[1]);
    // f32 and f64 inputs hold the same values here (multiples of 0.1 differ in f32).
    assert!(scaled_error(&outputs[0], &outputs[2]) < 1e-6);
    let x = write_npy(&dir, "one.npy", vec![144], DType::F32);
    let y = dir.join("one-out.npy");
    lipcert_ok(&["eval", model, "--input", &x, "--output", y.to_str().unwrap(), "--dtype", "f32"]);
    assert_eq!(NpyArray::read(&y).unwrap().dtype, DType::F32);
}

#[test]
fn bad_models_get_one_line_errors() {
    let dir = tempdir("cli-bad-models");
    let good = std::fs::read(demo_path()).unwrap();
    let truncated = dir.join("truncated.onnx");
    std::fs::write(&truncated, &good[..good.len() / 2]).unwrap();
    let e = fails(&["info", truncated.to_str().unwrap()]);
    assert!(e.contains("truncated.onnx"), "{e}");
    let garbage = dir.join("garbage.onnx");
    std::fs::write(&garbage, b"\x08\x07\x12\xff\xff\xff\xff\x0fnot onnx").unwrap();
    assert!(fails(&["info", garbage.to_str().unwrap()]).contains("garbage.onnx"));
    let e = fails(&["info", "/no/such/model.onnx"]);
    assert!(e.contains("/no/such/model.onnx") && e.contains("no such file"), "{e}");
}

#[test]
fn unknown_operator_and_nan_weights_name_the_node() {
    use lipcert_io::onnx::proto::ModelProto;
    use prost::Message;
    let dir = tempdir("cli-bad-ops");
    let good = std::fs::read(demo_path()).unwrap();
    let mut m = ModelProto::decode(good.as_slice()).unwrap();
    m.graph.as_mut().unwrap().node.iter_mut().find(|n| n.name == "relu1").unwrap().op_type = "HardSwish2".into();
    let p = dir.join("unknown.onnx");
    std::fs::write(&p, m.encode_to_vec()).unwrap();
    let e = fails(&["info", p.to_str().unwrap()]);
    assert!(e.contains("HardSwish2") && e.contains("relu1"), "{e}");

    let mut m = ModelProto::decode(good.as_slice()).unwrap();
    let init = m.graph.as_mut().unwrap().initializer.iter_mut().find(|t| t.name == "fc1.weight").unwrap();
    init.raw_data[4..8].copy_from_slice(&f32::NAN.to_le_bytes());
    let p = dir.join("nan.onnx");
    std::fs::write(&p, m.encode_to_vec()).unwrap();
    let e = fails(&["eval", p.to_str().unwrap(), "--input", "x.npy", "--output", "y.npy"]);
    assert!(e.contains("fc1") && e.contains("NaN"), "{e}");
}

#[test]
fn bad_npy_inputs_get_one_line_errors() {
    let dir = tempdir("cli-bad-npy");
    let model = demo_path();
    let model = model.to_str().unwrap();
    let y = dir.join("y.npy");
    let y = y.to_str().unwrap();
    let wrong_shape = write_npy(&dir, "wrong_shape.npy", vec![4, 100], DType::F32);
    let e = fails(&["eval", model, "--input", &wrong_shape, "--output", y]);
    assert!(e.contains("wrong_shape.npy") && e.contains("100") && e.contains("144"), "{e}");
    let ints = write_npy(&dir, "ints.npy", vec![2, 144], DType::I64);
    let e = fails(&["eval", model, "--input", &ints, "--output", y]);
    assert!(e.contains("ints.npy") && e.contains("int64"), "{e}");
    let corrupt = dir.join("corrupt.npy");
    std::fs::write(&corrupt, b"\x93NUMPY\x01\x00\x10\x00{'descr': '<f4'").unwrap();
    assert!(fails(&["eval", model, "--input", corrupt.to_str().unwrap(), "--output", y]).contains("corrupt.npy"));
    let nan = dir.join("nan.npy");
    NpyArray::new(vec![2, 144], (0..288).map(|i| if i == 150 { f64::NAN } else { 0.0 }).collect(), DType::F64)
        .write(&nan)
        .unwrap();
    let e = fails(&["eval", model, "--input", nan.to_str().unwrap(), "--output", y]);
    assert!(e.contains("sample 1") && e.contains("NaN"), "{e}");
    let e = fails(&["eval", model, "--input", "/no/x.npy", "--output", y]);
    assert!(e.contains("/no/x.npy"), "{e}");
}

#[test]
fn spectral_json_brackets_the_norm_and_rejects_bad_matrices() {
    let dir = tempdir("cli-spectral");
    // A rotation times diag(3, 2, 0.5): sigma_1 = 3.
    let (c, s) = (0.6f64, 0.8f64);
    let w = vec![3.0 * c, -2.0 * s, 0.0, 3.0 * s, 2.0 * c, 0.0, 0.0, 0.0, 0.5, 0.0, 0.0, 0.0];
    let p = dir.join("w.npy");
    NpyArray::new(vec![4, 3], w, DType::F64).write(&p).unwrap();
    for method in ["auto", "gram", "exact", "power"] {
        let out = lipcert_ok(&["spectral", "--matrix", p.to_str().unwrap(), "--method", method, "--json"]);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        let lower = v["lower"].as_f64().unwrap();
        assert!(lower <= 3.0 && lower > 2.999, "{method}: {v}");
        match v["upper"].as_f64() {
            Some(upper) => assert!((3.0..3.001).contains(&upper), "{method}: {v}"),
            None => assert_eq!(method, "power"),
        }
        assert!(v["iters"].is_u64() && v["time_s"].is_f64() && v["method"].is_string());
    }
    let table = lipcert_ok(&["spectral", "--matrix", p.to_str().unwrap(), "--method", "gram", "--iters", "2"]);
    assert!(table.contains("gram") && table.contains("4 x 3"), "{table}");
    let cube = write_npy(&dir, "cube.npy", vec![2, 2, 2], DType::F64);
    assert!(fails(&["spectral", "--matrix", &cube]).contains("2-D"));
    let ints = write_npy(&dir, "ints.npy", vec![2, 2], DType::I64);
    assert!(fails(&["spectral", "--matrix", &ints]).contains("int64"));
    let nan = dir.join("nan.npy");
    NpyArray::new(vec![2, 2], vec![1.0, f64::NAN, 0.0, 1.0], DType::F64).write(&nan).unwrap();
    assert!(fails(&["spectral", "--matrix", nan.to_str().unwrap()]).contains("[0, 1]"));
    assert!(fails(&["spectral", "--matrix", p.to_str().unwrap(), "--tol=-1"]).contains("--tol"));
    // Usage errors are one line too.
    assert!(fails(&["spectral", "--matrix", p.to_str().unwrap(), "--tol", "-1"]).contains("lipcert --help"));
    assert!(fails(&["spectral"]).contains("--matrix"));
}

#[test]
fn spectral_conv_brackets_the_norm_of_the_explicit_operator() {
    let dir = tempdir("cli-spectral-conv");
    // A 1x1 convolution is the matrix K[:, :, 0, 0] applied at every pixel: same norm.
    let k = vec![3.0, 0.0, 0.0, 2.0, 1.0, 1.0];
    let p = dir.join("k.npy");
    NpyArray::new(vec![3, 2, 1, 1], k, DType::F64).write(&p).unwrap();
    let m = dir.join("m.npy");
    NpyArray::new(vec![3, 2], vec![3.0, 0.0, 0.0, 2.0, 1.0, 1.0], DType::F64).write(&m).unwrap();
    let dense: serde_json::Value = serde_json::from_str(&lipcert_ok(&[
        "spectral",
        "--matrix",
        m.to_str().unwrap(),
        "--method",
        "exact",
        "--json",
    ]))
    .unwrap();
    let sigma = dense["upper"].as_f64().unwrap();
    for padding in ["zeros", "circular"] {
        let out = lipcert_ok(&[
            "spectral",
            "--conv",
            p.to_str().unwrap(),
            "--input-size",
            "6,5",
            "--padding",
            padding,
            "--json",
        ]);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        let (lo, hi) = (v["lower"].as_f64().unwrap(), v["upper"].as_f64().unwrap());
        assert!(
            lo <= sigma * (1.0 + 1e-9) && hi >= sigma * (1.0 - 1e-9) && hi / lo - 1.0 < 1e-5,
            "{padding}: {v} vs {sigma}"
        );
        assert!(v["operator"].as_str().unwrap().contains("6x5"));
    }
    let toep: serde_json::Value = serde_json::from_str(&lipcert_ok(&[
        "spectral",
        "--conv",
        p.to_str().unwrap(),
        "--input-size",
        "6",
        "--method",
        "toep",
        "--json",
    ]))
    .unwrap();
    assert!(toep["upper"].as_f64().unwrap() >= sigma * (1.0 - 1e-9) && toep["method"] == "toep", "{toep}");
    assert!(fails(&["spectral", "--matrix", m.to_str().unwrap(), "--method", "toep"]).contains("--conv only"));
    let e = fails(&["spectral", "--conv", p.to_str().unwrap()]);
    assert!(e.contains("--input-size"), "{e}");
    let e = fails(&["spectral", "--conv", m.to_str().unwrap(), "--input-size", "4"]);
    assert!(e.contains("m.npy") && e.contains("c_out"), "{e}");
    let big = dir.join("big.npy");
    NpyArray::new(vec![1, 1, 5, 5], vec![1.0; 25], DType::F64).write(&big).unwrap();
    let e = fails(&["spectral", "--conv", big.to_str().unwrap(), "--input-size", "3", "--padding", "circular"]);
    assert!(e.contains("larger"), "{e}");
}

#[test]
fn lipschitz_and_certify_follow_the_contract() {
    let model = demo_path();
    let model = model.to_str().unwrap();
    let out = lipcert_ok(&["lipschitz", model, "--json", "--starts", "2", "--steps", "3"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let layers = v["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 10);
    assert!(layers.iter().all(|l| l["name"].is_string() && l["op"].is_string() && l["upper"].is_f64()));
    let (lo, hi) = (v["global"]["lower"].as_f64().unwrap(), v["global"]["upper"].as_f64().unwrap());
    assert!(0.0 < lo && lo <= hi, "{v}");
    assert!(v["estimate"].is_null(), "the demo is not an MLP: no architecture estimate");
    let inf: serde_json::Value =
        serde_json::from_str(&lipcert_ok(&["lipschitz", model, "--norm", "inf", "--json"])).unwrap();
    assert_eq!(inf["norm"], "inf");

    let dir = tempdir("cli-certify");
    let x = write_npy(&dir, "x.npy", vec![6, 144], DType::F32);
    let y = dir.join("y.npy");
    let preds = NpyArray::read(&{
        let p = dir.join("logits.npy");
        lipcert_ok(&["eval", model, "--input", &x, "--output", p.to_str().unwrap()]);
        p
    })
    .unwrap();
    let labels: Vec<f64> =
        preds.data.chunks(3).map(|r| (0..3).max_by(|&a, &b| r[a].total_cmp(&r[b])).unwrap() as f64).collect();
    NpyArray::new(vec![6], labels, DType::I64).write(&y).unwrap();
    let out = lipcert_ok(&["certify", model, "--data", &x, "--labels", y.to_str().unwrap(), "--eps", "0", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["clean_accuracy"], 1.0);
    let samples = v["per_sample"].as_array().unwrap();
    assert_eq!(samples.len(), 6);
    for s in samples {
        assert!(s["lipschitz_radius"].as_f64().unwrap() >= 0.0, "{s}");
        // At eps 0 every correctly classified sample is certified by bound propagation.
        for key in ["ibp_margin_lower", "crown_margin_lower", "alpha_crown_margin_lower"] {
            assert!(s[key].as_f64().unwrap() > 0.0, "{key}: {s}");
        }
        assert_eq!(s["pgd_counterexample"], false);
    }
    // Certified accuracy never exceeds PGD accuracy, which never exceeds clean accuracy.
    let pgd = v["pgd_accuracy"].as_f64().unwrap();
    for (name, acc) in v["certified_accuracy"].as_object().unwrap() {
        assert!(acc.as_f64().unwrap() <= pgd, "{name}: {acc} > pgd {pgd}");
    }
    assert!(pgd <= 1.0);
    let bad = write_npy(&dir, "bad_labels.npy", vec![6], DType::I64);
    NpyArray::new(vec![6], vec![0.0, 1.0, 2.0, 3.0, 0.0, 1.0], DType::I64).write(std::path::Path::new(&bad)).unwrap();
    let e = fails(&["certify", model, "--data", &x, "--labels", &bad, "--eps", "0.1"]);
    assert!(e.contains("bad_labels.npy") && e.contains("class index"), "{e}");
    let short = write_npy(&dir, "short.npy", vec![4], DType::I64);
    assert!(fails(&["certify", model, "--data", &x, "--labels", &short, "--eps", "0.1"]).contains("4 labels"));
}

#[test]
fn bounds_contain_evaluated_points_and_follow_the_contract() {
    let dir = tempdir("cli-bounds");
    let model = demo_path();
    let model = model.to_str().unwrap();
    let mut rng = lipcert_core::Rng::new(3);
    let centre: Vec<f64> = (0..144).map(|_| rng.uniform()).collect();
    let lo: Vec<f64> = centre.iter().map(|c| c - 0.02).collect();
    let hi: Vec<f64> = centre.iter().map(|c| c + 0.02).collect();
    let (lp, hp) = (dir.join("lo.npy"), dir.join("hi.npy"));
    NpyArray::new(vec![144], lo.clone(), DType::F64).write(&lp).unwrap();
    NpyArray::new(vec![144], hi.clone(), DType::F64).write(&hp).unwrap();
    // Points of the box (corners and the centre) evaluate inside the bounds of every method.
    let points: Vec<f64> = [lo, hi, centre].concat();
    let x = dir.join("x.npy");
    NpyArray::new(vec![3, 144], points, DType::F64).write(&x).unwrap();
    let y = dir.join("y.npy");
    lipcert_ok(&["eval", model, "--input", x.to_str().unwrap(), "--output", y.to_str().unwrap()]);
    let y = NpyArray::read(&y).unwrap().data;
    for method in ["ibp", "crown", "crown-pure", "alpha-crown"] {
        let (l, h) = (lp.to_str().unwrap(), hp.to_str().unwrap());
        let out = lipcert_ok(&["bounds", model, "--box", l, h, "--method", method, "--json"]);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["method"], method);
        assert!(v["spec_lower"].is_null() && v["time_s"].is_f64());
        let (lower, upper): (Vec<f64>, Vec<f64>) = (
            v["lower"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect(),
            v["upper"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect(),
        );
        for row in y.chunks(3) {
            for (i, val) in row.iter().enumerate() {
                assert!(
                    lower[i] <= *val && *val <= upper[i],
                    "{method} output {i}: {val} outside [{}, {}]",
                    lower[i],
                    upper[i]
                );
            }
        }
    }
    let short = write_npy(&dir, "short.npy", vec![10], DType::F64);
    let e = fails(&["bounds", model, "--box", &short, hp.to_str().unwrap()]);
    assert!(e.contains("short.npy") && e.contains("144"), "{e}");
    let e = fails(&["bounds", model, "--box", hp.to_str().unwrap(), lp.to_str().unwrap()]);
    assert!(e.contains("empty"), "{e}");
    let (l, h) = (lp.to_str().unwrap(), hp.to_str().unwrap());
    let e = fails(&["bounds", model, "--box", l, h, "--method", "ibp", "--fix-intermediate"]);
    assert!(e.starts_with("error: --fix-intermediate applies to --method alpha-crown only"), "{e}");
}

#[test]
fn certify_with_ibp_reports_certified_accuracy() {
    let dir = tempdir("cli-certify-ibp");
    let model = demo_path();
    let model = model.to_str().unwrap();
    let x = write_npy(&dir, "x.npy", vec![4, 144], DType::F64);
    let logits = dir.join("logits.npy");
    lipcert_ok(&["eval", model, "--input", &x, "--output", logits.to_str().unwrap()]);
    let labels: Vec<f64> = NpyArray::read(&logits)
        .unwrap()
        .data
        .chunks(3)
        .map(|r| (0..3).max_by(|&a, &b| r[a].total_cmp(&r[b])).unwrap() as f64)
        .collect();
    let y = dir.join("y.npy");
    NpyArray::new(vec![4], labels, DType::I64).write(&y).unwrap();
    let run = |eps: &str| -> serde_json::Value {
        let out = lipcert_ok(&[
            "certify",
            model,
            "--data",
            &x,
            "--labels",
            y.to_str().unwrap(),
            "--eps",
            eps,
            "--norm",
            "inf",
            "--method",
            "ibp",
            "--json",
        ]);
        serde_json::from_str(&out).unwrap()
    };
    // At eps 0 the box is a point: every correctly classified sample with a positive margin certifies.
    let zero = run("0");
    assert_eq!(zero["certified_accuracy"]["ibp"], 1.0, "{zero}");
    let wide = run("10");
    assert_eq!(wide["certified_accuracy"]["ibp"], 0.0, "{wide}");
    assert_eq!(wide["per_sample"].as_array().unwrap().len(), 4);
}
