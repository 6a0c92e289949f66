//! Tests of single-matrix pruning: OBS and SparseGPT against independent exact solutions (own
//! Gaussian elimination, not the library's Cholesky path), error ordering between methods, the
//! sparsity patterns, the error cases, and one layer of realistic size.

use lipcert_core::Rng;
use lipcert_prune::pruners::{dampened_hessian, prune_matrix, reconstruction_error, sparsegpt_with_mask};
use lipcert_prune::{Method, Pattern, PruneError, PruneOptions};
use std::time::Instant;

// ---------------------------------------------------------------------------------------------
// Helpers (independent of the library's numerics)

fn normals(rng: &mut Rng, n: usize) -> Vec<f64> {
    (0..n).map(|_| rng.normal()).collect()
}

/// G = X X^T for X = [cols, n] row-major.
fn gram_of(x: &[f64], cols: usize, n: usize) -> Vec<f64> {
    let mut g = vec![0.0; cols * cols];
    for i in 0..cols {
        for j in 0..=i {
            let s: f64 = (0..n).map(|k| x[i * n + k] * x[j * n + k]).sum();
            g[i * cols + j] = s;
            g[j * cols + i] = s;
        }
    }
    g
}

/// Independent calibration inputs, with per-feature scales so magnitude is not already optimal.
fn iid_x(rng: &mut Rng, cols: usize, n: usize) -> Vec<f64> {
    let scale: Vec<f64> = (0..cols).map(|_| rng.range(0.2, 2.0)).collect();
    (0..cols * n).map(|i| scale[i / n] * rng.normal()).collect()
}

/// Calibration inputs with `k` dominant directions plus small isotropic noise.
fn correlated_x(rng: &mut Rng, cols: usize, n: usize, k: usize, noise: f64) -> Vec<f64> {
    let a = normals(rng, cols * k);
    let z = normals(rng, k * n);
    let mut x = vec![0.0; cols * n];
    for i in 0..cols {
        for s in 0..n {
            let v: f64 = (0..k).map(|t| a[i * k + t] * z[t * n + s]).sum();
            x[i * n + s] = v + noise * rng.normal();
        }
    }
    x
}

/// H_damp = 2G + damp * mean(diag 2G) * I, written out independently of the library.
fn hdamp(g: &[f64], cols: usize, damp: f64) -> Vec<f64> {
    let mean = (0..cols).map(|i| 2.0 * g[i * cols + i]).sum::<f64>() / cols as f64;
    let shift = if mean > 0.0 { damp * mean } else { damp };
    let mut h: Vec<f64> = g.iter().map(|v| 2.0 * v).collect();
    for i in 0..cols {
        h[i * cols + i] += shift;
    }
    h
}

/// Solves A x = b (A n x n row-major) by Gaussian elimination with partial pivoting.
fn gauss_solve(mut a: Vec<f64>, mut b: Vec<f64>, n: usize) -> Vec<f64> {
    for k in 0..n {
        let p = (k..n).max_by(|&i, &j| a[i * n + k].abs().total_cmp(&a[j * n + k].abs())).unwrap();
        if p != k {
            for j in 0..n {
                a.swap(k * n + j, p * n + j);
            }
            b.swap(k, p);
        }
        let piv = a[k * n + k];
        assert!(piv != 0.0, "singular system");
        for i in k + 1..n {
            let f = a[i * n + k] / piv;
            if f != 0.0 {
                for j in k..n {
                    a[i * n + j] -= f * a[k * n + j];
                }
                b[i] -= f * b[k];
            }
        }
    }
    let mut x = vec![0.0; n];
    for k in (0..n).rev() {
        let s: f64 = (k + 1..n).map(|j| a[k * n + j] * x[j]).sum();
        x[k] = (b[k] - s) / a[k * n + k];
    }
    x
}

/// min (w_hat - w) H (w_hat - w)^T subject to w_hat_j = 0 for `pruned` j and w_hat_j = w_j for `fixed`
/// j; the other columns are free. Returns (w_hat, loss).
fn constrained_ls(w: &[f64], h: &[f64], pruned: &[bool], fixed: &[bool]) -> (Vec<f64>, f64) {
    let n = w.len();
    let free: Vec<usize> = (0..n).filter(|&j| !pruned[j] && !fixed[j]).collect();
    let mut d = vec![0.0; n];
    for j in 0..n {
        if pruned[j] {
            d[j] = -w[j];
        }
    }
    if !free.is_empty() {
        let f = free.len();
        let a: Vec<f64> = (0..f * f).map(|t| h[free[t / f] * n + free[t % f]]).collect();
        let b: Vec<f64> = free.iter().map(|&i| -(0..n).map(|j| h[i * n + j] * d[j]).sum::<f64>()).collect();
        let x = gauss_solve(a, b, f);
        for (k, &i) in free.iter().enumerate() {
            d[i] = x[k];
        }
    }
    let loss: f64 = (0..n).map(|i| d[i] * (0..n).map(|j| h[i * n + j] * d[j]).sum::<f64>()).sum();
    let w_hat: Vec<f64> = (0..n).map(|j| if pruned[j] { 0.0 } else { w[j] + d[j] }).collect();
    (w_hat, loss)
}

fn max_abs(v: &[f64]) -> f64 {
    v.iter().fold(0.0f64, |m, x| m.max(x.abs()))
}

fn max_diff(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).fold(0.0f64, |m, (x, y)| m.max((x - y).abs()))
}

fn pruned(w: &mut [f64], rows: usize, cols: usize, g: &[f64], m: Method, p: Pattern, o: &PruneOptions) -> Vec<f64> {
    let mut v = w.to_vec();
    prune_matrix(&mut v, rows, cols, g, m, p, o).unwrap_or_else(|e| panic!("{m} {p}: {e}"));
    v
}

/// A tiny test layer: (name, rows, cols, W, G).
type Layer = (&'static str, usize, usize, Vec<f64>, Vec<f64>);

fn tiny_layers(seed: u64) -> Vec<Layer> {
    let mut rng = Rng::new(seed);
    let mut out = Vec::new();
    let (r, c) = (6, 9);
    let x = iid_x(&mut rng, c, 40);
    out.push(("iid", r, c, normals(&mut rng, r * c), gram_of(&x, c, 40)));
    let x = correlated_x(&mut rng, c, 40, 3, 0.05);
    out.push(("correlated", r, c, normals(&mut rng, r * c), gram_of(&x, c, 40)));
    // Rank-deficient: fewer samples than inputs, plus one dead input; only the dampening makes H
    // invertible.
    let (r, c) = (5, 10);
    let mut x = iid_x(&mut rng, c, 4);
    x[3 * 4..4 * 4].fill(0.0);
    out.push(("rank-deficient", r, c, normals(&mut rng, r * c), gram_of(&x, c, 4)));
    out
}

// ---------------------------------------------------------------------------------------------
// 1. OBS against brute force

#[test]
fn obs_one_weight_per_row_is_the_brute_force_optimum() {
    let opts = PruneOptions::default();
    for (name, rows, cols, w, g) in tiny_layers(11) {
        let h = hdamp(&g, cols, opts.damp);
        let got = pruned(
            &mut w.clone(),
            rows,
            cols,
            &g,
            Method::Obs,
            Pattern::Unstructured { sparsity: 1.0 / cols as f64 },
            &opts,
        );
        for r in 0..rows {
            let wr = &w[r * cols..(r + 1) * cols];
            let gr = &got[r * cols..(r + 1) * cols];
            let zeros: Vec<usize> = (0..cols).filter(|&j| gr[j] == 0.0).collect();
            assert_eq!(zeros.len(), 1, "{name} row {r}: OBS must prune exactly one weight, got {zeros:?}");
            let mut cands: Vec<(f64, usize, Vec<f64>)> = (0..cols)
                .map(|q| {
                    let mut mask = vec![false; cols];
                    mask[q] = true;
                    let (wh, loss) = constrained_ls(wr, &h, &mask, &vec![false; cols]);
                    (loss, q, wh)
                })
                .collect();
            cands.sort_by(|a, b| a.0.total_cmp(&b.0));
            let (best_loss, best_q, best_w) = &cands[0];
            assert!(cands[1].0 > best_loss * (1.0 + 1e-9), "{name} row {r}: near tie, test data is ambiguous");
            assert_eq!(zeros[0], *best_q, "{name} row {r}: OBS pruned {} but the optimum prunes {best_q}", zeros[0]);
            let diff = max_diff(gr, best_w);
            assert!(diff <= 1e-9 * max_abs(best_w), "{name} row {r}: weights differ by {diff:e}");
        }
    }
}

#[test]
fn obs_weights_are_the_exact_optimum_for_the_mask_it_chose() {
    let opts = PruneOptions::default();
    let patterns = [
        Pattern::Unstructured { sparsity: 0.3 },
        Pattern::Unstructured { sparsity: 0.5 },
        Pattern::Unstructured { sparsity: 0.8 },
        Pattern::NM { keep: 2, group: 4 },
        Pattern::NM { keep: 1, group: 3 },
    ];
    let mut checked = 0;
    for (name, rows, cols, w, g) in tiny_layers(12) {
        let h = hdamp(&g, cols, opts.damp);
        for p in patterns {
            let got = pruned(&mut w.clone(), rows, cols, &g, Method::Obs, p, &opts);
            for r in 0..rows {
                let wr = &w[r * cols..(r + 1) * cols];
                let gr = &got[r * cols..(r + 1) * cols];
                let mask: Vec<bool> = gr.iter().map(|&x| x == 0.0).collect();
                if let Pattern::Unstructured { sparsity } = p {
                    let k = (sparsity * cols as f64).round() as usize;
                    assert_eq!(mask.iter().filter(|&&m| m).count(), k, "{name} {p} row {r}");
                }
                let (best, _) = constrained_ls(wr, &h, &mask, &vec![false; cols]);
                let diff = max_diff(gr, &best);
                assert!(diff <= 1e-8 * max_abs(&best), "{name} {p} row {r}: differs from the LS optimum by {diff:e}");
                checked += 1;
            }
        }
    }
    assert_eq!(checked, 3 * 5 * 6 - 5);
}

// ---------------------------------------------------------------------------------------------
// 2. SparseGPT exactness

/// Independent SparseGPT reference: left to right, each pruned column j is removed by the exact
/// least-squares update in which only the columns after j may change.
fn sparsegpt_reference(w: &[f64], cols: usize, h: &[f64], mask: &[bool]) -> Vec<f64> {
    let mut cur = w.to_vec();
    for j in 0..cols {
        if mask[j] {
            let mut pr = vec![false; cols];
            pr[j] = true;
            let fixed: Vec<bool> = (0..cols).map(|k| k < j).collect();
            cur = constrained_ls(&cur, h, &pr, &fixed).0;
        }
    }
    cur
}

#[test]
fn sparsegpt_single_pruned_column_is_the_trailing_ls_optimum() {
    for (name, rows, cols, w, g) in tiny_layers(21) {
        let h = hdamp(&g, cols, 0.01);
        let mut mask = vec![false; rows * cols];
        let qs: Vec<usize> = (0..rows).map(|r| (2 * r + 1) % cols).collect();
        for (r, &q) in qs.iter().enumerate() {
            mask[r * cols + q] = true;
        }
        for block in [1, 3, 128] {
            let opts = PruneOptions { damp: 0.01, block };
            let mut got = w.clone();
            sparsegpt_with_mask(&mut got, rows, cols, &g, &mask, &opts).unwrap();
            for (r, &q) in qs.iter().enumerate() {
                let wr = &w[r * cols..(r + 1) * cols];
                let gr = &got[r * cols..(r + 1) * cols];
                assert_eq!(gr[q].to_bits(), 0.0f64.to_bits(), "{name}: pruned weight must be exactly +0.0");
                assert_eq!(&gr[..q], &wr[..q], "{name} row {r}: columns before q must not move");
                let mut pr = vec![false; cols];
                pr[q] = true;
                let fixed: Vec<bool> = (0..cols).map(|k| k < q).collect();
                let (best, _) = constrained_ls(wr, &h, &pr, &fixed);
                let diff = max_diff(gr, &best);
                assert!(diff <= 1e-9 * max_abs(&best), "{name} block {block} row {r}: off by {diff:e}");
            }
        }
    }
}

#[test]
fn sparsegpt_matches_sequential_reference_for_any_mask() {
    let mut rng = Rng::new(22);
    for (name, rows, cols, w, g) in tiny_layers(23) {
        let h = hdamp(&g, cols, 0.01);
        let mask: Vec<bool> = (0..rows * cols).map(|_| rng.uniform() < 0.45).collect();
        let mut got = w.clone();
        sparsegpt_with_mask(&mut got, rows, cols, &g, &mask, &PruneOptions { damp: 0.01, block: 4 }).unwrap();
        for r in 0..rows {
            let want = sparsegpt_reference(&w[r * cols..(r + 1) * cols], cols, &h, &mask[r * cols..(r + 1) * cols]);
            let diff = max_diff(&got[r * cols..(r + 1) * cols], &want);
            assert!(diff <= 1e-9 * max_abs(&w[r * cols..(r + 1) * cols]), "{name} row {r}: off by {diff:e}");
        }
    }
}

#[test]
fn sparsegpt_block_size_does_not_change_the_math() {
    let mut rng = Rng::new(31);
    let (rows, cols, n) = (7, 37, 60);
    let x = correlated_x(&mut rng, cols, n, 5, 0.1);
    let g = gram_of(&x, cols, n);
    let w = normals(&mut rng, rows * cols);
    let scale = max_abs(&w);
    let mask: Vec<bool> = (0..rows * cols).map(|_| rng.uniform() < 0.5).collect();
    let run_mask = |block: usize| {
        let mut v = w.clone();
        sparsegpt_with_mask(&mut v, rows, cols, &g, &mask, &PruneOptions { damp: 0.01, block }).unwrap();
        v
    };
    let base = run_mask(128);
    for block in [1, 3, 5, 36, 37] {
        let d = max_diff(&run_mask(block), &base);
        assert!(d <= 1e-10 * scale, "forced mask, block {block}: differs by {d:e}");
    }
    // N:M masks are chosen per row at each group's first column, so they too are block-invariant.
    for p in [Pattern::NM { keep: 2, group: 4 }, Pattern::NM { keep: 3, group: 8 }] {
        let run = |block: usize| {
            pruned(&mut w.clone(), rows, cols, &g, Method::SparseGpt, p, &PruneOptions { damp: 0.01, block })
        };
        let base = run(128);
        for block in [1, 3, 8, 13] {
            let v = run(block);
            let same_mask = v.iter().zip(&base).all(|(a, b)| (*a == 0.0) == (*b == 0.0));
            assert!(same_mask, "{p} block {block}: different mask");
            let d = max_diff(&v, &base);
            assert!(d <= 1e-10 * scale, "{p} block {block}: differs by {d:e}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 3. Error ordering

/// OBD with OBS's counting (round(p * cols) per row, or the N:M quotas): the smallest G_qq w_q^2 of
/// each row, no update. Written out here, independently of the library.
fn obd_per_row(w: &[f64], rows: usize, cols: usize, g: &[f64], p: Pattern) -> Vec<f64> {
    let mut out = w.to_vec();
    let segments: Vec<(usize, usize, usize)> = match p {
        Pattern::Unstructured { sparsity } => vec![(0, cols, (sparsity * cols as f64).round() as usize)],
        Pattern::NM { keep, group } => (0..cols)
            .step_by(group)
            .map(|g0| {
                let len = group.min(cols - g0);
                (g0, len, len - (keep * len).div_ceil(group))
            })
            .collect(),
    };
    for r in 0..rows {
        for &(g0, len, k) in &segments {
            let mut idx: Vec<usize> = (g0..g0 + len).collect();
            let score = |j: usize| g[j * cols + j] * w[r * cols + j] * w[r * cols + j];
            idx.sort_by(|&a, &b| score(a).total_cmp(&score(b)).then(a.cmp(&b)));
            for &j in &idx[..k] {
                out[r * cols + j] = 0.0;
            }
        }
    }
    out
}

#[test]
fn hessian_methods_beat_magnitude_and_obs_beats_obd() {
    let opts = PruneOptions::default();
    let mut rng = Rng::new(41);
    let (rows, cols) = (24, 48);
    let mut layers: Vec<(&str, Vec<f64>, Vec<f64>)> = Vec::new();
    for (name, x, n) in [
        ("iid", iid_x(&mut rng, cols, 96), 96),
        ("correlated", correlated_x(&mut rng, cols, 96, 4, 0.05), 96),
        ("correlated+rank-deficient", correlated_x(&mut rng, cols, 32, 3, 0.05), 32),
        ("iid seed 2", iid_x(&mut rng, cols, 200), 200),
    ] {
        layers.push((name, normals(&mut rng, rows * cols), gram_of(&x, cols, n)));
    }
    let patterns = [0.1, 0.3, 0.5, 0.7]
        .map(|s| Pattern::Unstructured { sparsity: s })
        .into_iter()
        .chain([Pattern::NM { keep: 2, group: 4 }])
        .collect::<Vec<_>>();
    let (mut total, mut failed) = (0, Vec::new());
    let (mut global_total, mut global_fail) = (0, Vec::new());
    for (name, w, g) in &layers {
        for &p in &patterns {
            let err = |v: &[f64]| reconstruction_error(w, v, rows, cols, g);
            let e = |m: Method| err(&pruned(&mut w.clone(), rows, cols, g, m, p, &opts));
            let (mag, obd, obs, sgpt) = (e(Method::Magnitude), e(Method::Obd), e(Method::Obs), e(Method::SparseGpt));
            let obd_row = err(&obd_per_row(w, rows, cols, g, p));
            println!(
                "{name:>26} {p:>18}: magnitude {mag:10.4e}  obd/mag {:.3}  obd-per-row/mag {:.3}  obs/mag {:.3}  \
                 sparsegpt/mag {:.3}",
                obd / mag,
                obd_row / mag,
                obs / mag,
                sgpt / mag
            );
            for (ok, what) in [
                (sgpt <= mag, "sparsegpt <= magnitude"),
                (obs <= mag, "obs <= magnitude"),
                (obs <= obd_row, "obs <= obd with the same per-row counts"),
            ] {
                total += 1;
                if !ok {
                    failed.push(format!("{name} {p}: {what} fails"));
                }
            }
            // Library OBD chooses layer-globally while OBS prunes the same number in every row, so
            // OBS <= OBD is not guaranteed: a global choice can move prunes to rows where they
            // cost less. Where the Gram is close to diagonal, OBS's compensation gains little and
            // that allocation can win at low sparsity. Counted and shown, not asserted.
            if matches!(p, Pattern::Unstructured { .. }) {
                global_total += 1;
                if obs > obd {
                    global_fail.push(format!("{name} {p}: obs/obd = {:.3}", obs / obd));
                }
            }
        }
    }
    println!("error ordering: {} of {total} asserted comparisons hold", total - failed.len());
    println!(
        "obs <= layer-global obd (not asserted): {} of {global_total} hold; exceptions: {global_fail:?}",
        global_total - global_fail.len()
    );
    assert!(failed.is_empty(), "{failed:#?}");
}

#[test]
fn reconstruction_error_is_the_output_error() {
    let mut rng = Rng::new(51);
    let (rows, cols, n) = (4, 6, 9);
    let x = normals(&mut rng, cols * n);
    let g = gram_of(&x, cols, n);
    let w0 = normals(&mut rng, rows * cols);
    let w1 = normals(&mut rng, rows * cols);
    let mut direct = 0.0;
    for r in 0..rows {
        for s in 0..n {
            let v: f64 = (0..cols).map(|j| (w0[r * cols + j] - w1[r * cols + j]) * x[j * n + s]).sum();
            direct += v * v;
        }
    }
    let e = reconstruction_error(&w0, &w1, rows, cols, &g);
    assert!((e - direct).abs() <= 1e-12 * direct, "{e} vs {direct}");
    assert_eq!(reconstruction_error(&w0, &w0, rows, cols, &g), 0.0);
    // A difference in the null space of a singular G: exact answer 0, never negative.
    let xs = vec![1.0, 1.0, 1.0, 1.0]; // cols 2, n 2: G = [[2, 2], [2, 2]]
    let gs = gram_of(&xs, 2, 2);
    let e = reconstruction_error(&[0.1, 0.3], &[0.3, 0.1], 1, 2, &gs);
    assert!((0.0..1e-15).contains(&e), "{e}");
}

// ---------------------------------------------------------------------------------------------
// 4. Patterns

fn zeros_in(v: &[f64]) -> usize {
    v.iter().filter(|&&x| x == 0.0).count()
}

#[test]
fn unstructured_counts_and_selection() {
    let mut rng = Rng::new(61);
    let (rows, cols, n) = (9, 40, 50);
    let x = iid_x(&mut rng, cols, n);
    let g = gram_of(&x, cols, n);
    let w = normals(&mut rng, rows * cols);
    let opts = PruneOptions { damp: 0.01, block: 8 };
    for s in [0.1, 0.25, 0.5, 0.77, 0.95] {
        let p = Pattern::Unstructured { sparsity: s };
        let k = (s * (rows * cols) as f64).round() as usize;
        // Magnitude and OBD: the k smallest scores over the whole matrix, no other weight moves.
        for (m, score) in [
            (Method::Magnitude, Box::new(|i: usize| w[i].abs()) as Box<dyn Fn(usize) -> f64>),
            (Method::Obd, Box::new(|i: usize| 2.0 * g[(i % cols) * (cols + 1)] * w[i] * w[i] / 2.0)),
        ] {
            let got = pruned(&mut w.clone(), rows, cols, &g, m, p, &opts);
            let mut order: Vec<usize> = (0..w.len()).collect();
            order.sort_by(|&a, &b| score(a).total_cmp(&score(b)).then(a.cmp(&b)));
            let mut want = vec![false; w.len()];
            for &i in &order[..k] {
                want[i] = true;
            }
            for i in 0..w.len() {
                if want[i] {
                    assert_eq!(got[i].to_bits(), 0.0f64.to_bits(), "{m} {p}: weight {i} must be exactly +0.0");
                } else {
                    assert_eq!(got[i].to_bits(), w[i].to_bits(), "{m} {p}: kept weight {i} must not change");
                }
            }
        }
        // OBS: round(s * cols) per row.
        let got = pruned(&mut w.clone(), rows, cols, &g, Method::Obs, p, &opts);
        let kr = (s * cols as f64).round() as usize;
        for r in 0..rows {
            assert_eq!(zeros_in(&got[r * cols..(r + 1) * cols]), kr, "obs {p} row {r}");
        }
        // SparseGPT: round(s * rows * 8) per block of 8 columns.
        let got = pruned(&mut w.clone(), rows, cols, &g, Method::SparseGpt, p, &opts);
        for b in 0..cols / 8 {
            let z: usize = (0..rows).map(|r| zeros_in(&got[r * cols + 8 * b..r * cols + 8 * b + 8])).sum();
            assert_eq!(z, (s * (rows * 8) as f64).round() as usize, "sparsegpt {p} block {b}");
        }
        for m in Method::ALL {
            let got = pruned(&mut w.clone(), rows, cols, &g, m, p, &opts);
            assert!(got.iter().all(|x| x.is_finite() && (*x != 0.0 || x.to_bits() == 0)), "{m}: pruned must be +0.0");
        }
    }
}

#[test]
fn nm_groups_keep_exactly_keep() {
    let mut rng = Rng::new(71);
    let opts = PruneOptions { damp: 0.01, block: 5 };
    // (keep, group, cols, expected keep of the tail group)
    for (keep, group, cols, tail_keep) in [(2, 4, 10, 1), (3, 8, 13, 2), (1, 4, 12, 1), (2, 4, 7, 2), (1, 3, 5, 1)] {
        let (rows, n) = (6, 30);
        let x = correlated_x(&mut rng, cols, n, 3, 0.2);
        let g = gram_of(&x, cols, n);
        let w = normals(&mut rng, rows * cols);
        let p = Pattern::NM { keep, group };
        for m in Method::ALL {
            let got = pruned(&mut w.clone(), rows, cols, &g, m, p, &opts);
            for r in 0..rows {
                for g0 in (0..cols).step_by(group) {
                    let len = group.min(cols - g0);
                    let want = if len == group { keep } else { tail_keep };
                    let seg = &got[r * cols + g0..r * cols + g0 + len];
                    assert_eq!(len - zeros_in(seg), want, "{m} {p} cols {cols} row {r} group at {g0}: {seg:?}");
                    assert!(seg.iter().all(|x| *x != 0.0 || x.to_bits() == 0), "{m}: pruned must be +0.0");
                }
            }
            if matches!(m, Method::Magnitude | Method::Obd) {
                for i in 0..w.len() {
                    assert!(got[i] == 0.0 || got[i].to_bits() == w[i].to_bits(), "{m}: kept weights must not move");
                }
            }
        }
    }
}

#[test]
fn sparsity_zero_is_a_bitwise_no_op_and_one_zeros_everything() {
    let mut rng = Rng::new(81);
    let (rows, cols) = (5, 12);
    let w = normals(&mut rng, rows * cols);
    // A singular Gram and no dampening: the no-op and the all-zero cases must not need H^-1.
    let x = iid_x(&mut rng, cols, 3);
    let g = gram_of(&x, cols, 3);
    let opts = PruneOptions { damp: 0.0, block: 4 };
    for m in Method::ALL {
        for p in [Pattern::Unstructured { sparsity: 0.0 }, Pattern::NM { keep: 4, group: 4 }] {
            let got = pruned(&mut w.clone(), rows, cols, &g, m, p, &opts);
            assert!(got.iter().zip(&w).all(|(a, b)| a.to_bits() == b.to_bits()), "{m} {p}: must be untouched");
        }
        for p in [Pattern::Unstructured { sparsity: 1.0 }, Pattern::NM { keep: 0, group: 4 }] {
            let got = pruned(&mut w.clone(), rows, cols, &g, m, p, &opts);
            assert!(got.iter().all(|x| x.to_bits() == 0), "{m} {p}: must be all +0.0");
        }
    }
}

#[test]
fn dead_inputs_are_pruned_first_by_hessian_methods() {
    let mut rng = Rng::new(91);
    let (rows, cols, n) = (4, 8, 30);
    let mut x = iid_x(&mut rng, cols, n);
    x[2 * n..3 * n].fill(0.0);
    x[5 * n..6 * n].fill(0.0);
    let g = gram_of(&x, cols, n);
    // Weights of comparable size, so that no live weight is small enough to undercut the
    // (dampening-only) cost of a dead one.
    let w: Vec<f64> =
        (0..rows * cols).map(|_| rng.range(0.5, 1.5) * if rng.uniform() < 0.5 { -1.0 } else { 1.0 }).collect();
    let p = Pattern::Unstructured { sparsity: 0.25 };
    for m in [Method::Obd, Method::Obs, Method::SparseGpt] {
        let got = pruned(&mut w.clone(), rows, cols, &g, m, p, &PruneOptions::default());
        for r in 0..rows {
            assert_eq!(got[r * cols + 2], 0.0, "{m} row {r}");
            assert_eq!(got[r * cols + 5], 0.0, "{m} row {r}");
        }
        // Dead inputs cost nothing, so the pruned layer reproduces the outputs exactly up to the
        // dampening's effect (the updates of OBS/SparseGPT are zero here).
        assert!(reconstruction_error(&w, &got, rows, cols, &g) < 1e-20, "{m}");
    }
}

// ---------------------------------------------------------------------------------------------
// 5. Errors

fn err_of(r: Result<(), PruneError>) -> String {
    r.expect_err("expected an error").to_string()
}

#[test]
fn invalid_inputs_are_errors_not_panics() {
    let (rows, cols) = (2, 4);
    let w = vec![1.0, -2.0, 3.0, 0.5, 0.1, 0.2, -0.3, 0.4];
    let g: Vec<f64> = (0..16).map(|i| if i % 5 == 0 { 1.0 } else { 0.0 }).collect();
    let o = PruneOptions::default();
    let run = |w: &[f64], g: &[f64], m: Method, p: Pattern, o: &PruneOptions| {
        let mut v = w.to_vec();
        let r = prune_matrix(&mut v, rows, cols, g, m, p, o);
        if r.is_err() {
            assert!(v.iter().zip(w).all(|(a, b)| a.to_bits() == b.to_bits()), "failed call must not modify W");
        }
        r
    };
    for m in Method::ALL {
        let msg = err_of(run(&w, &g, m, Pattern::Unstructured { sparsity: 1.5 }, &o));
        assert!(msg.contains("sparsity") && msg.contains("1.5"), "{msg}");
        assert!(run(&w, &g, m, Pattern::Unstructured { sparsity: -0.1 }, &o).is_err());
        assert!(run(&w, &g, m, Pattern::Unstructured { sparsity: f64::NAN }, &o).is_err());
        let msg = err_of(run(&w, &g, m, Pattern::NM { keep: 5, group: 4 }, &o));
        assert!(msg.contains("5:4"), "{msg}");
        assert!(run(&w, &g, m, Pattern::NM { keep: 0, group: 0 }, &o).is_err());
        let msg = err_of(run(&w, &g[..15], m, Pattern::Unstructured { sparsity: 0.5 }, &o));
        assert!(msg.contains("gram") && msg.contains("16") && msg.contains("15"), "{msg}");
        let mut short = w.clone();
        assert!(prune_matrix(&mut short[..7], rows, cols, &g, m, Pattern::Unstructured { sparsity: 0.5 }, &o).is_err());
        let mut bad = w.clone();
        bad[3] = f64::NAN;
        let msg = err_of(run(&bad, &g, m, Pattern::Unstructured { sparsity: 0.5 }, &o));
        assert!(msg.contains("weights") && msg.contains("index 3"), "{msg}");
        let mut badg = g.clone();
        badg[6] = f64::INFINITY;
        let msg = err_of(run(&w, &badg, m, Pattern::Unstructured { sparsity: 0.5 }, &o));
        assert!(msg.contains("gram"), "{msg}");
        assert!(
            run(&w, &g, m, Pattern::Unstructured { sparsity: 0.5 }, &PruneOptions { damp: -1.0, block: 8 }).is_err()
        );
        assert!(
            run(&w, &g, m, Pattern::Unstructured { sparsity: 0.5 }, &PruneOptions { damp: 0.01, block: 0 }).is_err()
        );
    }
    // A singular Gram without dampening cannot be inverted: a clear message, not a panic.
    let gs = vec![0.0; 16];
    for m in [Method::Obs, Method::SparseGpt] {
        let msg =
            err_of(run(&w, &gs, m, Pattern::Unstructured { sparsity: 0.5 }, &PruneOptions { damp: 0.0, block: 8 }));
        assert!(msg.contains("not positive definite") && msg.contains("--damp"), "{msg}");
        // With the dampening the all-zero Gram is fine (H = damp * I).
        run(&w, &gs, m, Pattern::Unstructured { sparsity: 0.5 }, &o).unwrap();
    }
    let mut v = w.clone();
    assert!(sparsegpt_with_mask(&mut v, rows, cols, &g, &[true; 7], &o).is_err());
}

#[test]
fn parsing_methods_and_patterns() {
    for m in Method::ALL {
        assert_eq!(m.name().parse::<Method>().unwrap(), m);
        assert_eq!(m.to_string(), m.name());
    }
    assert_eq!("SparseGPT".parse::<Method>().unwrap(), Method::SparseGpt);
    let msg = "obdd".parse::<Method>().unwrap_err().to_string();
    for name in ["magnitude", "obd", "obs", "sparsegpt"] {
        assert!(msg.contains(name), "{msg}");
    }
    assert_eq!(Pattern::parse_nm("2:4").unwrap(), Pattern::NM { keep: 2, group: 4 });
    assert_eq!(Pattern::parse_nm(" 1 : 8 ").unwrap(), Pattern::NM { keep: 1, group: 8 });
    for bad in ["5:4", "2-4", "2:", ":4", "a:b", "1:0", "2:4:8"] {
        assert!(Pattern::parse_nm(bad).is_err(), "{bad}");
    }
    assert_eq!("0.5".parse::<Pattern>().unwrap(), Pattern::Unstructured { sparsity: 0.5 });
    assert_eq!("50%".parse::<Pattern>().unwrap(), Pattern::Unstructured { sparsity: 0.5 });
    assert_eq!("2:4".parse::<Pattern>().unwrap(), Pattern::NM { keep: 2, group: 4 });
    assert!("150%".parse::<Pattern>().is_err());
    assert!("half".parse::<Pattern>().is_err());
    assert_eq!(PruneOptions::default(), PruneOptions { damp: 0.01, block: 128 });
    // The library's dampened Hessian agrees with the one written out here.
    let g = vec![2.0, 1.0, 1.0, 4.0];
    assert_eq!(dampened_hessian(&g, 2, 0.1), hdamp(&g, 2, 0.1));
    assert_eq!(dampened_hessian(&[0.0; 4], 2, 0.1), vec![0.1, 0.0, 0.0, 0.1]);
}

// ---------------------------------------------------------------------------------------------
// 6. Scale

/// G = A A^T + eps I: the Gram of inputs with `k` dominant directions, cheap to build at width 1024+.
fn low_rank_gram(rng: &mut Rng, cols: usize, k: usize, eps: f64) -> Vec<f64> {
    let a = normals(rng, cols * k);
    let mut g = vec![0.0; cols * cols];
    for i in 0..cols {
        for j in 0..=i {
            let s: f64 = (0..k).map(|t| a[i * k + t] * a[j * k + t]).sum();
            g[i * cols + j] = s;
            g[j * cols + i] = s;
        }
        g[i * cols + i] += eps;
    }
    g
}

fn scale_run(rows: usize, cols: usize) -> (f64, f64, f64) {
    let mut rng = Rng::new(101);
    let g = low_rank_gram(&mut rng, cols, 48, 0.5);
    let w = normals(&mut rng, rows * cols);
    let p = Pattern::Unstructured { sparsity: 0.5 };
    let opts = PruneOptions::default();
    let t = Instant::now();
    let s = pruned(&mut w.clone(), rows, cols, &g, Method::SparseGpt, p, &opts);
    let secs = t.elapsed().as_secs_f64();
    let m = pruned(&mut w.clone(), rows, cols, &g, Method::Magnitude, p, &opts);
    assert_eq!(zeros_in(&s), rows * cols / 2);
    let (es, em) = (reconstruction_error(&w, &s, rows, cols, &g), reconstruction_error(&w, &m, rows, cols, &g));
    println!("{rows}x{cols} sparsegpt 50%: {secs:.3} s, recon error sparsegpt/magnitude = {:.4}", es / em);
    (secs, es, em)
}

#[test]
fn sparsegpt_at_scale_beats_magnitude() {
    let (_, es, em) = scale_run(512, 1024);
    assert!(es < em, "sparsegpt {es} vs magnitude {em}");
}

/// Timing only: `cargo test --release -p lipcert-prune --test pruners -- --ignored --nocapture`.
#[test]
#[ignore]
fn sparsegpt_timing_1024x4096() {
    let (_, es, em) = scale_run(1024, 4096);
    assert!(es < em);
}
