//! The timeout holds. This runs in its own test binary (process): tests of one binary share
//! rayon's pool, and a thread waiting for its parallel jobs runs other tests' jobs meanwhile,
//! so a concurrent test's long job (a MILP solve inside a sub-box job) would delay this one.

use lipcert_verify::{verify, VerifyOptions};
use std::time::Duration;

mod common;
use common::{check_sat, mnistfc, property_boxes};

/// The timeout holds on a large network that the verifier cannot decide: ReLU branch and bound,
/// then the root alpha-CROWN and the last-resort MILP (1167 binaries here, whose HiGHS presolve
/// once ran 8 s past its limit) all stop at the deadline.
#[test]
fn timeout_is_honoured_on_a_large_undecided_network() {
    let Some((net, dir)) = mnistfc("mnist-net_256x6.onnx") else {
        return;
    };
    let props = property_boxes(&dir.join("prop_1_0.03.vnnlib"));
    let timeout = Duration::from_secs(3);
    let start = std::time::Instant::now();
    let (v, stats) = verify(&net, &props, &VerifyOptions { timeout, ..Default::default() }).unwrap();
    let wall = start.elapsed();
    println!("{}: {:.2} s wall, {} boxes", v.word(), wall.as_secs_f64(), stats.boxes);
    assert_eq!(props.len(), 1, "one input box");
    check_sat(&net, &props[0], &v, "mnist-net_256x6 prop_1_0.03");
    // A batch of subdomains or a simplex pass in flight may finish after the deadline; seconds
    // beyond it mean a phase that does not look at the clock.
    // (Before the fix, HiGHS presolve alone ran 8 s past its limit on this instance.)
    assert!(wall < timeout + Duration::from_secs(3), "{:.2} s for a 3 s timeout", wall.as_secs_f64());
}
