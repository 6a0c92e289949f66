//! The verification section: the verdict of `lipcert verify` on each VNN-LIB property, the
//! time left shared equally among the properties not yet run.

use crate::{Progress, Skipped};
use lipcert_core::Network;
use lipcert_io::vnnlib::Property;
use lipcert_verify::{verify, BoxProperty, Verdict, VerifyOptions};
use serde::Serialize;
use std::time::{Duration, Instant};

#[derive(Clone, Debug, Serialize)]
pub struct PropertyVerdict {
    pub file: String,
    /// "sat", "unsat", "unknown" or "timeout".
    pub result: &'static str,
    pub reason: Option<String>,
    /// The output at the counterexample (sat only), re-checked by a forward pass.
    pub counterexample_output: Option<Vec<f64>>,
    pub timeout_s: f64,
    pub time_s: f64,
    pub boxes: usize,
}

#[derive(Clone, Debug, Serialize)]
pub struct VerificationSection {
    pub properties: Vec<PropertyVerdict>,
    #[serde(skip)]
    pub skipped: Vec<Skipped>,
}

/// The shortest timeout worth a verify call.
const MIN_TIMEOUT_S: f64 = 0.5;

pub fn run(
    net: &Network,
    props: &[(String, Property)],
    seed: u64,
    deadline: Instant,
    progress: &(dyn Fn(Progress) + Sync),
) -> VerificationSection {
    let mut out = vec![];
    let mut skipped = vec![];
    for (k, (file, p)) in props.iter().enumerate() {
        progress(Progress { analysis: "verify", done: k, total: props.len() });
        let left = deadline.saturating_duration_since(Instant::now()).as_secs_f64();
        let timeout = left / (props.len() - k) as f64;
        if timeout < MIN_TIMEOUT_S {
            skipped.push(Skipped {
                analysis: format!("verify {file}"),
                reason: format!("not run: {timeout:.2} s of the budget were left for it"),
            });
            continue;
        }
        let boxes: Vec<BoxProperty> = p.regions().into_iter().map(|r| BoxProperty::new(r.lo, r.hi, r.any_of)).collect();
        let opts = VerifyOptions { timeout: Duration::from_secs_f64(timeout), seed, ..Default::default() };
        match verify(net, &boxes, &opts) {
            Ok((v, stats)) => out.push(PropertyVerdict {
                file: file.clone(),
                result: v.word(),
                reason: if let Verdict::Unknown(r) = &v { Some(r.clone()) } else { None },
                counterexample_output: if let Verdict::Sat { y, .. } = &v { Some(y.clone()) } else { None },
                timeout_s: timeout,
                time_s: stats.time_s,
                boxes: stats.boxes,
            }),
            Err(e) => skipped.push(Skipped { analysis: format!("verify {file}"), reason: e.to_string() }),
        }
    }
    progress(Progress { analysis: "verify", done: props.len(), total: props.len() });
    VerificationSection { properties: out, skipped }
}
