//! Shared helpers of the CLI tests: paths, running the binary, the onnxruntime oracle.
#![allow(dead_code)]

use lipcert_io::NpyArray;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("repo root")
}

/// The shared benchmark networks (None, with the reason printed, when absent).
pub fn benchmarks() -> Option<PathBuf> {
    lipcert_io::testing::benchmarks_dir()
}

/// Whether the onnxruntime oracle (python3 + onnxruntime + numpy) is available. Under CI
/// (CI set) its absence is a failure, so a green CI run always includes the parity checks.
pub fn oracle_available() -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import onnxruntime, numpy"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !ok {
        assert!(std::env::var_os("CI").is_none(), "CI: python3 with onnxruntime and numpy is required (see .ci/run)");
        println!("SKIPPED: python3 with onnxruntime is not installed (pip install onnxruntime numpy)");
    }
    ok
}

pub fn oracle_script() -> PathBuf {
    repo_root().join("scripts/ort_oracle.py")
}

/// Runs the oracle script, panicking with its stderr on failure.
pub fn oracle(args: &[&str]) {
    let out = Command::new("python3").arg(oracle_script()).args(args).output().expect("run python3");
    assert!(out.status.success(), "oracle {:?} failed: {}", args, String::from_utf8_lossy(&out.stderr));
}

pub fn lipcert(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lipcert")).args(args).output().expect("run lipcert")
}

/// Runs lipcert and returns stdout, panicking with stderr on failure.
pub fn lipcert_ok(args: &[&str]) -> String {
    let out = lipcert(args);
    assert!(out.status.success(), "lipcert {:?} failed: {}", args, String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("utf-8 stdout")
}

/// max |a - b| / max(1, max |b|): the error relative to the output vector's scale.
pub fn scaled_error(a: &[f64], b: &[f64]) -> f64 {
    let scale = b.iter().fold(1.0f64, |m, v| m.max(v.abs()));
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max) / scale
}

/// Per-row scaled error, maximized over rows.
pub fn max_row_error(a: &NpyArray, b: &NpyArray) -> f64 {
    assert_eq!(a.shape, b.shape, "output shapes differ");
    let m = a.shape[1];
    a.data.chunks(m).zip(b.data.chunks(m)).map(|(x, y)| scaled_error(x, y)).fold(0.0, f64::max)
}

pub fn tempdir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("lipcert-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// Runs lipcert expecting failure; returns its single stderr line (never a panic).
pub fn fails(args: &[&str]) -> String {
    let out = lipcert(args);
    assert!(!out.status.success(), "lipcert {args:?} should fail");
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.trim_end().lines().count(), 1, "expected one line, got: {err}");
    assert!(err.starts_with("error: "), "{err}");
    assert!(!err.contains("panicked") && !err.contains("internal error"), "{err}");
    err
}

/// Runs lipcert with `--json` among `args` and parses stdout (which must be only JSON).
pub fn json(args: &[&str]) -> serde_json::Value {
    serde_json::from_str(&lipcert_ok(args)).unwrap_or_else(|e| panic!("lipcert {args:?}: bad JSON: {e}"))
}
