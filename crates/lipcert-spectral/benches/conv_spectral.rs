//! Convolution spectral norms: certified per-frequency Gram brackets ("norm2_circ") against
//! exact per-frequency SVD, for 64 -> 64 channel 3 x 3 kernels, and how the cost grows with
//! the input size n and with the channels; and the symbol bound from a coarse frequency grid
//! (valid for every input size) against the zero-padded bound on the input's own grid. One JSON
//! line per case.
//!
//! cargo bench -p lipcert-spectral --bench conv_spectral -- [--quick]

use lipcert_core::Rng;
use lipcert_spectral::conv::{conv_norm, symbol_bound, ConvOperator, Padding};
use lipcert_spectral::{Method, Options};
use std::time::Instant;

fn op(channels: usize, n: usize, padding: Padding, seed: u64) -> ConvOperator {
    let mut rng = Rng::new(seed);
    let fan_in = (channels * 9) as f64;
    ConvOperator {
        kernel: (0..channels * channels * 9).map(|_| rng.normal() / fan_in.sqrt()).collect(),
        c_out: channels,
        c_in: channels,
        kh: 3,
        kw: 3,
        h: n,
        w: n,
        stride: [1, 1],
        padding,
    }
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let mut cases: Vec<(usize, usize, Padding, Method)> = vec![];
    for n in [32, 224] {
        for method in [Method::Gram, Method::Exact] {
            cases.push((64, n, Padding::Circular, method));
        }
        cases.push((64, n, Padding::Zeros([1, 1, 1, 1]), Method::Gram));
    }
    if !quick {
        for n in [16, 64, 128] {
            cases.push((64, n, Padding::Circular, Method::Gram));
        }
        for c in [16, 32, 128] {
            cases.push((c, 32, Padding::Circular, Method::Gram));
        }
    }
    for (c, n, padding, method) in cases {
        if quick && n > 64 && method == Method::Exact {
            continue;
        }
        let o = op(c, n, padding, 1);
        let t = Instant::now();
        let b = conv_norm(&o, method, Options { iters: None, tol: Some(1e-6), seed: 0 }).expect("valid operator");
        let secs = t.elapsed().as_secs_f64();
        let pad = if padding == Padding::Circular { "circular" } else { "zeros" };
        println!(
            "{{\"channels\":{c},\"n\":{n},\"padding\":\"{pad}\",\"method\":\"{}\",\"seconds\":{secs:.4},\"lower\":{:e},\"upper\":{:e},\"width\":{:e}}}",
            method.name(),
            b.lower,
            b.upper,
            b.relative_width()
        );
    }
    // The symbol bound (upper only) on coarse grids for the zero-padded 224 x 224 layer.
    let o = op(64, 224, Padding::Zeros([1, 1, 1, 1]), 1);
    let opts = Options { iters: None, tol: Some(1e-6), seed: 0 };
    for grid in [32, 64, 128] {
        let t = Instant::now();
        let s = symbol_bound(&o, [grid, grid], Method::Gram, opts).expect("fine grid");
        println!(
            "{{\"channels\":64,\"n\":224,\"padding\":\"zeros\",\"method\":\"symbol-grid-{grid}\",\"seconds\":{:.4},\"upper\":{:e},\"factor\":{:e}}}",
            t.elapsed().as_secs_f64(),
            s.upper,
            s.factor
        );
    }
}
