//! Progress on long work when stderr is not a terminal: a plain line every few seconds.

mod common;

use common::{benchmarks, lipcert};

#[test]
fn verify_prints_plain_progress_lines_when_stderr_is_not_a_terminal() {
    let Some(b) = benchmarks() else { return };
    let dir = b.join("mnistfc");
    let (net, prop) = (dir.join("mnist-net_256x6.onnx"), dir.join("prop_1_0.03.vnnlib"));
    // This instance is open at 300 s: a 4 s timeout runs the whole 4 s.
    let out = lipcert(&["verify", net.to_str().unwrap(), prop.to_str().unwrap(), "--timeout", "4", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("stdout is only the JSON");
    assert_eq!(json["result"], "timeout");
    let err = String::from_utf8(out.stderr).unwrap();
    let lines: Vec<&str> = err.lines().collect();
    assert!(!lines.is_empty(), "no progress line in 4 s");
    for l in &lines {
        assert!(l.starts_with("verify: timeout 4 s (") && l.ends_with(" s)"), "unexpected stderr line {l:?}");
    }
}
