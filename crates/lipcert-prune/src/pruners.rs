//! Pruning of one weight matrix against its layer-wise Hessian.
//!
//! A layer's weights `W` are row-major `[rows, cols]` (rows = output features; for a convolution,
//! the out channels of one group, with cols = in_channels/groups * kh * kw). Calibration inputs `X`
//! (`[cols, n]`) give the Gram matrix `G = X X^T`. The layer-wise loss of replacing `W` by `W_hat` is
//! `E = ||W X - W_hat X||_F^2 = sum_rows dw G dw^T`, so every row has the same Hessian `H = 2G`.
//!
//! Methods (named as in the literature; see `notes/papers_000_002_004.md`, paper 000 notes 1-2 —
//! paper 000 prints the OBS saliency under the name "OBD", which is wrong):
//! - [`Method::Magnitude`]: prune the smallest `|w|`, no update.
//! - [`Method::Obd`] (Optimal Brain Damage, LeCun et al. 1990): prune the smallest diagonal saliency
//!   `H_qq w_q^2 / 2`, no update.
//! - [`Method::Obs`] (Optimal Brain Surgeon, Hassibi & Stork 1993): per row, repeatedly prune the
//!   smallest `w_q^2 / (2 [H^-1]_qq)` and apply the compensating update
//!   `w <- w - (w_q / [H^-1]_qq) H^-1 e_q`, then remove `q` from `H^-1` by a rank-one downdate. The
//!   sequence of updates adds up to the exact constrained least-squares optimum for the final mask.
//! - [`Method::SparseGpt`] (Frantar & Alistarh 2023, Algorithm 1): OBS with a shared inverse Hessian,
//!   columns processed left to right (each pruned column only updates the columns after it), in
//!   blocks with lazy batched updates (one GEMM per block).
//!
//! OBS and SparseGPT use the dampened Hessian `2G + damp * mean(diag 2G) * I` (SparseGPT's recipe),
//! factored by Cholesky; magnitude and OBD need no inverse.

use faer::dyn_stack::{MemBuffer, MemStack};
use faer::linalg::cholesky::llt::factor::{cholesky_in_place, cholesky_in_place_scratch, LltError};
use faer::linalg::matmul::matmul;
use faer::linalg::triangular_inverse::invert_lower_triangular;
use faer::{Accum, MatMut, MatRef, Par};
use rayon::prelude::*;
use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

/// Work (multiply-adds) above which one product or factorization uses every thread.
const PARALLEL_WORK: usize = 1 << 18;

/// A pruning method.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// Smallest |w| first, no weight update.
    Magnitude,
    /// Optimal Brain Damage: smallest H_qq w_q^2 / 2 first (H = 2G), no weight update.
    Obd,
    /// Optimal Brain Surgeon, row by row, with compensating updates.
    Obs,
    /// SparseGPT: OBS with a shared inverse Hessian, column blocks and lazy updates.
    SparseGpt,
}

impl Method {
    /// Every method, in the order the CLI lists them (why: one place for help texts and sweeps).
    pub const ALL: [Method; 4] = [Method::Magnitude, Method::Obd, Method::Obs, Method::SparseGpt];

    /// The method's name as written on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Method::Magnitude => "magnitude",
            Method::Obd => "obd",
            Method::Obs => "obs",
            Method::SparseGpt => "sparsegpt",
        }
    }

    /// Whether the method needs the calibration Gram matrix (why: callers can skip collecting
    /// calibration activations for magnitude pruning).
    pub fn needs_gram(self) -> bool {
        !matches!(self, Method::Magnitude)
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Method {
    type Err = PruneError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim().to_ascii_lowercase();
        let t = t.replace(['-', '_'], "");
        Method::ALL.into_iter().find(|m| m.name() == t).ok_or_else(|| PruneError::UnknownMethod(s.to_string()))
    }
}

/// Which weights may be pruned.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Pattern {
    /// Prune the fraction `sparsity` (in [0, 1]) of the weights; see [`prune_matrix`] for the
    /// scope over which each method counts.
    Unstructured { sparsity: f64 },
    /// In every row, each run of `group` consecutive weights keeps exactly `keep` ("2:4" keeps 2 of
    /// every 4). A trailing partial group of length r keeps ceil(keep * r / group).
    NM { keep: usize, group: usize },
}

impl Pattern {
    /// Parses "KEEP:GROUP", e.g. "2:4".
    pub fn parse_nm(s: &str) -> Result<Pattern, PruneError> {
        let bad = || PruneError::ParsePattern(s.to_string());
        let (a, b) = s.trim().split_once(':').ok_or_else(bad)?;
        let keep = a.trim().parse::<usize>().map_err(|_| bad())?;
        let group = b.trim().parse::<usize>().map_err(|_| bad())?;
        let p = Pattern::NM { keep, group };
        p.validate()?;
        Ok(p)
    }

    /// Checks the pattern's parameters (why: a pattern can be built directly, not only parsed).
    pub fn validate(&self) -> Result<(), PruneError> {
        match *self {
            Pattern::Unstructured { sparsity } => {
                if !(0.0..=1.0).contains(&sparsity) {
                    return Err(PruneError::BadSparsity(sparsity));
                }
            }
            Pattern::NM { keep, group } => {
                if group == 0 || keep > group {
                    return Err(PruneError::BadNM { keep, group });
                }
            }
        }
        Ok(())
    }

    /// How many weights a group of `len` consecutive weights keeps (why: the partial tail group
    /// rule, ceil(keep * len / group), lives in one place). Unstructured patterns have no groups.
    pub fn keep_in_group(&self, len: usize) -> usize {
        match *self {
            Pattern::NM { keep, group } if group > 0 => (keep * len).div_ceil(group).min(len),
            _ => len,
        }
    }

    /// True when the pattern prunes nothing (why: the no-op must leave W bit-for-bit untouched).
    pub fn is_dense(&self) -> bool {
        match *self {
            Pattern::Unstructured { sparsity } => sparsity == 0.0,
            Pattern::NM { keep, group } => keep == group,
        }
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Pattern::Unstructured { sparsity } => write!(f, "{}% unstructured", sparsity * 100.0),
            Pattern::NM { keep, group } => write!(f, "{keep}:{group}"),
        }
    }
}

impl FromStr for Pattern {
    type Err = PruneError;

    /// "2:4" (N:M), "0.5" or "50%" (unstructured).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        if t.contains(':') {
            return Pattern::parse_nm(t);
        }
        let (num, scale) = match t.strip_suffix('%') {
            Some(n) => (n.trim(), 0.01),
            None => (t, 1.0),
        };
        let sparsity = num.parse::<f64>().map_err(|_| PruneError::ParsePattern(s.to_string()))? * scale;
        let p = Pattern::Unstructured { sparsity };
        p.validate()?;
        Ok(p)
    }
}

/// Options of the Hessian-based methods.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct PruneOptions {
    /// Dampening lambda: H = 2G + lambda * mean(diag 2G) * I (lambda * I for an all-zero Gram).
    pub damp: f64,
    /// SparseGPT column block (lazy-update batch and unstructured mask-selection block). For N:M
    /// it is rounded up to a multiple of the group so that no group straddles two blocks.
    pub block: usize,
}

impl Default for PruneOptions {
    fn default() -> Self {
        PruneOptions { damp: 0.01, block: 128 }
    }
}

/// Why pruning could not run.
#[derive(Debug, thiserror::Error)]
pub enum PruneError {
    #[error("sparsity must be a number in [0, 1], got {0}")]
    BadSparsity(f64),
    #[error("bad N:M pattern {keep}:{group}: the group must hold at least 1 weight and keep at most the group")]
    BadNM { keep: usize, group: usize },
    #[error("cannot parse pattern '{0}': expected KEEP:GROUP (e.g. 2:4) or a sparsity (e.g. 0.5 or 50%)")]
    ParsePattern(String),
    #[error("unknown pruning method '{0}': choose one of magnitude, obd, obs, sparsegpt")]
    UnknownMethod(String),
    #[error("dimension mismatch: {what} has {got} entries, expected {expected}")]
    DimensionMismatch { what: &'static str, expected: usize, got: usize },
    #[error("{what} contains a non-finite value (NaN or infinity) at index {index}")]
    NonFinite { what: &'static str, index: usize },
    /// Any other invalid input, with its own message (why: the network-level pruner and the
    /// options checks report through the same error type).
    #[error("{0}")]
    Invalid(String),
    #[error(
        "the layer Hessian 2G + damp*mean(diag 2G)*I is not positive definite even after dampening \
         (damp = {damp}, pivot {pivot} of {cols}); collect more calibration data or use a larger --damp"
    )]
    NotPositiveDefinite { damp: f64, pivot: usize, cols: usize },
}

/// Prunes `w` ([rows, cols] row-major) in place; pruned weights become exactly 0.0.
///
/// `gram` is `G = X X^T` ([cols, cols] row-major, symmetric PSD, possibly singular; magnitude
/// pruning does not use it, but it is checked all the same). Counting: for [`Pattern::Unstructured`] with sparsity p,
/// magnitude and OBD prune round(p * rows * cols) weights chosen over the whole matrix, OBS prunes
/// round(p * cols) per row, SparseGPT prunes round(p * rows * width) per column block (jointly over
/// its rows, so per-row counts vary). N:M patterns hold in every row for every method. Ties are
/// broken towards the lower index. Sparsity 0 (or keep == group) leaves `w` untouched.
pub fn prune_matrix(
    w: &mut [f64],
    rows: usize,
    cols: usize,
    gram: &[f64],
    method: Method,
    pattern: Pattern,
    opts: &PruneOptions,
) -> Result<(), PruneError> {
    check_inputs(w, rows, cols, gram, opts)?;
    pattern.validate()?;
    if pattern.is_dense() || w.is_empty() {
        return Ok(());
    }
    if prunes_everything(pattern) {
        // Every method agrees here, and skipping the factorization keeps sparsity 1 usable even when
        // the Hessian cannot be factored.
        w.fill(0.0);
        return Ok(());
    }
    match method {
        Method::Magnitude => {
            prune_by_score(w, cols, pattern, |_, x| x.abs());
            Ok(())
        }
        Method::Obd => {
            // H_qq w_q^2 / 2 with H = 2G is G_qq w_q^2.
            prune_by_score(w, cols, pattern, |q, x| gram[q * cols + q] * x * x);
            Ok(())
        }
        Method::Obs => {
            let u = inverse_hessian_factor(gram, cols, opts.damp)?;
            let hinv = inverse_from_factor(&u, cols);
            obs(w, cols, &hinv, pattern);
            Ok(())
        }
        Method::SparseGpt => {
            let u = inverse_hessian_factor(gram, cols, opts.damp)?;
            let rule = match pattern {
                Pattern::Unstructured { sparsity } => MaskRule::Unstructured(sparsity),
                Pattern::NM { keep, group } => MaskRule::NM { keep, group },
            };
            sparsegpt(w, rows, cols, &u, rule, opts.block);
            Ok(())
        }
    }
}

/// SparseGPT's reconstruction with a given mask (`mask[r * cols + j]` true = prune), the paper's
/// Algorithm 1 without the mask selection. Why public: the mask-independent part (the column-by-
/// column OBS updates and the lazy block batching) can then be checked on its own.
pub fn sparsegpt_with_mask(
    w: &mut [f64],
    rows: usize,
    cols: usize,
    gram: &[f64],
    mask: &[bool],
    opts: &PruneOptions,
) -> Result<(), PruneError> {
    check_inputs(w, rows, cols, gram, opts)?;
    if mask.len() != w.len() {
        return Err(PruneError::DimensionMismatch { what: "mask", expected: w.len(), got: mask.len() });
    }
    if !mask.contains(&true) {
        return Ok(());
    }
    let u = inverse_hessian_factor(gram, cols, opts.damp)?;
    sparsegpt(w, rows, cols, &u, MaskRule::Forced(mask), opts.block);
    Ok(())
}

/// The dampened layer Hessian `H = (G + G^T) + damp * mean(diag 2G) * I` (`damp * I` when the Gram
/// diagonal is all zero), row-major. Why public: tests and reports measure against the same H.
pub fn dampened_hessian(gram: &[f64], cols: usize, damp: f64) -> Vec<f64> {
    assert_eq!(gram.len(), cols * cols, "gram must be [cols, cols]");
    let n = cols;
    let mean = if n == 0 { 0.0 } else { (0..n).map(|i| 2.0 * gram[i * n + i]).sum::<f64>() / n as f64 };
    let shift = if mean > 0.0 { damp * mean } else { damp };
    let mut h = vec![0.0; n * n];
    // G + G^T in square tiles, so that the transposed reads stay in cache at large widths.
    const T: usize = 64;
    h.par_chunks_mut(T * n.max(1)).enumerate().for_each(|(t, band)| {
        let i0 = t * T;
        for j0 in (0..n).step_by(T) {
            for (di, hr) in band.chunks_exact_mut(n).enumerate() {
                let i = i0 + di;
                for j in j0..(j0 + T).min(n) {
                    hr[j] = gram[i * n + j] + gram[j * n + i];
                }
            }
        }
        for (di, hr) in band.chunks_exact_mut(n).enumerate() {
            hr[i0 + di] += shift;
        }
    });
    h
}

/// Σ_rows (w0−w1) G (w0−w1)ᵀ, the reconstruction error ||W X − Ŵ X||_F², never negative (rounding
/// of a PSD quadratic form is clamped at 0). NaN if an input is non-finite.
///
/// # Panics
/// If `w0`, `w1` are not `[rows, cols]` or `gram` is not `[cols, cols]`.
pub fn reconstruction_error(w0: &[f64], w1: &[f64], rows: usize, cols: usize, gram: &[f64]) -> f64 {
    assert_eq!(w0.len(), rows * cols, "w0 must be [rows, cols]");
    assert_eq!(w1.len(), rows * cols, "w1 must be [rows, cols]");
    assert_eq!(gram.len(), cols * cols, "gram must be [cols, cols]");
    if rows == 0 || cols == 0 {
        return 0.0;
    }
    let d: Vec<f64> = w0.iter().zip(w1).map(|(a, b)| a - b).collect();
    let mut t = vec![0.0; rows * cols];
    matmul(
        MatMut::from_row_major_slice_mut(&mut t, rows, cols),
        Accum::Replace,
        MatRef::from_row_major_slice(&d, rows, cols),
        MatRef::from_row_major_slice(gram, cols, cols),
        1.0,
        par_for(rows * cols * cols),
    );
    // Per-row sums, each clamped: every row's term is itself a PSD quadratic form.
    d.chunks_exact(cols)
        .zip(t.chunks_exact(cols))
        .map(|(a, b)| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>())
        .map(|e| if e.is_nan() { e } else { e.max(0.0) })
        .sum()
}

// ---------------------------------------------------------------------------------------------
// Shared helpers

fn par_for(work: usize) -> Par {
    if work >= PARALLEL_WORK && rayon::current_num_threads() > 1 {
        Par::rayon(0)
    } else {
        Par::Seq
    }
}

fn check_inputs(w: &[f64], rows: usize, cols: usize, gram: &[f64], opts: &PruneOptions) -> Result<(), PruneError> {
    let overflow = || PruneError::Invalid(format!("layer shape [{rows}, {cols}] is too large"));
    let n = rows.checked_mul(cols).ok_or_else(overflow)?;
    if w.len() != n {
        return Err(PruneError::DimensionMismatch { what: "weights [rows, cols]", expected: n, got: w.len() });
    }
    let nn = cols.checked_mul(cols).ok_or_else(overflow)?;
    if gram.len() != nn {
        return Err(PruneError::DimensionMismatch { what: "gram [cols, cols]", expected: nn, got: gram.len() });
    }
    if let Some(index) = w.iter().position(|x| !x.is_finite()) {
        return Err(PruneError::NonFinite { what: "weights", index });
    }
    if let Some(index) = gram.iter().position(|x| !x.is_finite()) {
        return Err(PruneError::NonFinite { what: "gram", index });
    }
    if !(opts.damp.is_finite() && opts.damp >= 0.0) {
        return Err(PruneError::Invalid(format!("--damp must be finite and >= 0, got {}", opts.damp)));
    }
    if opts.block == 0 {
        return Err(PruneError::Invalid("the SparseGPT block size must be at least 1".into()));
    }
    Ok(())
}

fn prunes_everything(pattern: Pattern) -> bool {
    match pattern {
        Pattern::Unstructured { sparsity } => sparsity == 1.0,
        Pattern::NM { keep, .. } => keep == 0,
    }
}

/// Number pruned out of `n` at sparsity `p`: round(p n), within [0, n].
fn count_of(p: f64, n: usize) -> usize {
    ((p * n as f64).round() as usize).min(n)
}

/// Sets `prune[i]` for the `k` entries with the smallest score (total order, ties to the lower
/// index) and clears the others. `tmp` is scratch, reused to keep hot loops allocation-free.
fn mark_smallest(scores: &[f64], k: usize, prune: &mut [bool], tmp: &mut Vec<f64>) {
    let n = scores.len();
    debug_assert_eq!(prune.len(), n);
    if k == 0 {
        prune.fill(false);
        return;
    }
    if k >= n {
        prune.fill(true);
        return;
    }
    tmp.clear();
    tmp.extend_from_slice(scores);
    let (_, &mut thresh, _) = tmp.select_nth_unstable_by(k - 1, f64::total_cmp);
    let below = scores.iter().filter(|s| s.total_cmp(&thresh) == Ordering::Less).count();
    let mut ties = k - below;
    for (p, s) in prune.iter_mut().zip(scores) {
        *p = match s.total_cmp(&thresh) {
            Ordering::Less => true,
            Ordering::Equal if ties > 0 => {
                ties -= 1;
                true
            }
            _ => false,
        };
    }
}

// ---------------------------------------------------------------------------------------------
// Magnitude and OBD

/// Zeroes the weights of smallest `score(col, w)`: layer-globally for unstructured, per N:M group.
fn prune_by_score(w: &mut [f64], cols: usize, pattern: Pattern, score: impl Fn(usize, f64) -> f64 + Sync) {
    match pattern {
        Pattern::Unstructured { sparsity } => {
            let scores: Vec<f64> = w.iter().enumerate().map(|(i, &x)| score(i % cols, x)).collect();
            let mut prune = vec![false; w.len()];
            mark_smallest(&scores, count_of(sparsity, w.len()), &mut prune, &mut Vec::new());
            for (x, p) in w.iter_mut().zip(&prune) {
                if *p {
                    *x = 0.0;
                }
            }
        }
        Pattern::NM { group, .. } => {
            w.par_chunks_mut(cols).for_each_init(
                || (vec![0.0; group], vec![false; group], Vec::with_capacity(group)),
                |(sc, pr, tmp), row| {
                    for g0 in (0..cols).step_by(group) {
                        let len = group.min(cols - g0);
                        let seg = &mut row[g0..g0 + len];
                        for (k, (s, &x)) in sc[..len].iter_mut().zip(seg.iter()).enumerate() {
                            *s = score(g0 + k, x);
                        }
                        mark_smallest(&sc[..len], len - pattern.keep_in_group(len), &mut pr[..len], tmp);
                        for (x, &p) in seg.iter_mut().zip(&pr[..len]) {
                            if p {
                                *x = 0.0;
                            }
                        }
                    }
                },
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The inverse Hessian

/// Upper-triangular U (row-major [cols, cols]) with `H_damp^-1 = U^T U`, the factor SparseGPT calls
/// `Cholesky(H^-1)` (upper). Computed without forming H^-1: with P the reversal permutation and
/// `P H P = L L^T`, `H^-1 = (P L^-T P)(P L^-1 P)`, so `U = P L^-1 P` (upper, positive diagonal).
fn inverse_hessian_factor(gram: &[f64], cols: usize, damp: f64) -> Result<Vec<f64>, PruneError> {
    let n = cols;
    let mut m = dampened_hessian(gram, n, damp);
    // P H P in column-major storage is H's row-major storage reversed (H is symmetric).
    m.reverse();
    let mut m = MatMut::from_column_major_slice_mut(&mut m, n, n);
    let par = par_for(n * n * n / 3);
    let mut mem = MemBuffer::new(cholesky_in_place_scratch::<f64>(n, par, Default::default()));
    cholesky_in_place(m.as_mut(), Default::default(), par, MemStack::new(&mut mem), Default::default()).map_err(
        |e| {
            let LltError::NonPositivePivot { index } = e;
            PruneError::NotPositiveDefinite { damp, pivot: n - 1 - index, cols }
        },
    )?;
    // U = P L^-1 P written straight into row-major storage through a reversed view; the strictly
    // lower part of U stays zero. Only the lower triangle of `m` (L) is read.
    let mut u = vec![0.0f64; n * n];
    invert_lower_triangular(
        MatMut::from_row_major_slice_mut(&mut u, n, n).reverse_rows_and_cols_mut(),
        m.as_ref(),
        par,
    );
    if let Some(index) = u.iter().position(|x| !x.is_finite()) {
        // Overflow in the triangular inverse: the dampened H is numerically singular.
        return Err(PruneError::NotPositiveDefinite { damp, pivot: index / n, cols });
    }
    Ok(u)
}

/// H^-1 = U^T U, row-major and exactly symmetric.
fn inverse_from_factor(u: &[f64], n: usize) -> Vec<f64> {
    let mut hinv = vec![0.0; n * n];
    let um = MatRef::from_row_major_slice(u, n, n);
    matmul(
        MatMut::from_row_major_slice_mut(&mut hinv, n, n),
        Accum::Replace,
        um.transpose(),
        um,
        1.0,
        par_for(n * n * n),
    );
    for i in 0..n {
        for j in 0..i {
            let s = 0.5 * (hinv[i * n + j] + hinv[j * n + i]);
            hinv[i * n + j] = s;
            hinv[j * n + i] = s;
        }
    }
    hinv
}

// ---------------------------------------------------------------------------------------------
// OBS

/// Per-row working memory of OBS, reused across the rows a rayon task handles.
struct ObsScratch {
    /// Upper triangle of the active block of H^-1: active position a, b (a <= b) at `h[a * n + b]`.
    h: Vec<f64>,
    /// The pruned position's row/column of H^-1 (before the downdate).
    col: Vec<f64>,
    /// The row's weights in active-position order.
    wp: Vec<f64>,
    /// Original column of each position.
    perm: Vec<usize>,
    /// Remaining prune quota per N:M group (one entry for unstructured).
    quota: Vec<usize>,
}

/// OBS on every row (rayon over rows). Per row about sum over the active sizes m = cols, ...,
/// cols - k + 1 of m^2 / 2 multiply-adds (at most k cols^2 / 2 for k pruned); memory: one
/// [cols, cols] scratch per rayon task on top of the shared H^-1.
fn obs(w: &mut [f64], cols: usize, hinv: &[f64], pattern: Pattern) {
    let (group, quotas): (usize, Vec<usize>) = match pattern {
        Pattern::Unstructured { sparsity } => (cols, vec![count_of(sparsity, cols)]),
        Pattern::NM { group, .. } => (
            group,
            (0..cols)
                .step_by(group)
                .map(|g0| {
                    let len = group.min(cols - g0);
                    len - pattern.keep_in_group(len)
                })
                .collect(),
        ),
    };
    let steps: usize = quotas.iter().sum();
    if steps == 0 {
        return;
    }
    // Rows are independent: each works on its own copy of H^-1 (scratch reused across a task's rows).
    w.par_chunks_mut(cols).for_each_init(
        || ObsScratch {
            h: vec![0.0; cols * cols],
            col: vec![0.0; cols],
            wp: vec![0.0; cols],
            perm: vec![0; cols],
            quota: vec![0; quotas.len()],
        },
        |s, row| obs_row(row, hinv, cols, group, &quotas, steps, s),
    );
}

/// OBS on one row. The active columns are kept as the leading block of `s.h` (upper triangle only):
/// a pruned column is swapped to the end of the active range, so it can never be picked again, and
/// each step costs about m^2 / 2 multiply-adds for m active columns.
fn obs_row(row: &mut [f64], hinv: &[f64], n: usize, group: usize, quotas: &[usize], steps: usize, s: &mut ObsScratch) {
    for a in 0..n {
        s.h[a * n + a..a * n + n].copy_from_slice(&hinv[a * n + a..a * n + n]);
    }
    s.wp.copy_from_slice(row);
    for (a, p) in s.perm.iter_mut().enumerate() {
        *p = a;
    }
    s.quota.copy_from_slice(quotas);
    let mut m = n;
    for _ in 0..steps {
        // Smallest saliency w^2 / [H^-1]_qq among active columns whose group is below its quota.
        // A diagonal made non-positive by rounding means pruning that column is (numerically)
        // infinitely costly; it is only taken when nothing else is left, without an update.
        let mut best: Option<(usize, f64)> = None;
        for a in 0..m {
            if s.quota[s.perm[a] / group] == 0 {
                continue;
            }
            let d = s.h[a * n + a];
            let sal = if d > 0.0 { s.wp[a] * s.wp[a] / d } else { f64::INFINITY };
            let better = match best {
                None => true,
                Some((b, bs)) => match sal.total_cmp(&bs) {
                    Ordering::Less => true,
                    Ordering::Equal => s.perm[a] < s.perm[b],
                    Ordering::Greater => false,
                },
            };
            if better {
                best = Some((a, sal));
            }
        }
        let Some((q, _)) = best else { break };
        s.quota[s.perm[q] / group] -= 1;
        let d = s.h[q * n + q];
        if d > 0.0 && d.is_finite() {
            // col = H^-1 e_q over the active range (row q from the upper triangle).
            for a in 0..q {
                s.col[a] = s.h[a * n + q];
            }
            s.col[q..m].copy_from_slice(&s.h[q * n + q..q * n + m]);
            let c = s.wp[q] / d;
            if c != 0.0 {
                for (x, &h) in s.wp[..m].iter_mut().zip(&s.col[..m]) {
                    *x -= c * h;
                }
            }
            // H^-1 <- H^-1 - col col^T / d, upper triangle of the active block.
            for a in 0..m {
                let f = s.col[a] / d;
                if f != 0.0 {
                    let r = &mut s.h[a * n + a..a * n + m];
                    for (x, &h) in r.iter_mut().zip(&s.col[a..m]) {
                        *x -= f * h;
                    }
                }
            }
        }
        s.wp[q] = 0.0;
        // Move the last active position into q's place (symmetric permutation, upper storage).
        let last = m - 1;
        if q != last {
            for a in 0..q {
                s.h[a * n + q] = s.h[a * n + last];
            }
            for b in q + 1..last {
                s.h[q * n + b] = s.h[b * n + last];
            }
            s.h[q * n + q] = s.h[last * n + last];
            s.wp.swap(q, last);
            s.perm.swap(q, last);
        }
        m -= 1;
    }
    for a in 0..n {
        row[s.perm[a]] = if a < m { s.wp[a] } else { 0.0 };
    }
}

// ---------------------------------------------------------------------------------------------
// SparseGPT

enum MaskRule<'a> {
    /// Given mask, row-major [rows, cols], true = prune.
    Forced(&'a [bool]),
    /// Per block, the fraction p of rows x width with smallest w^2 / U_jj^2.
    Unstructured(f64),
    /// Per row, at each group's first column, the group's smallest w^2 / U_jj^2 beyond its keep.
    NM { keep: usize, group: usize },
}

/// Per-row scratch of the N:M mask choice.
struct NmScratch {
    scores: Vec<f64>,
    prune: Vec<bool>,
    tmp: Vec<f64>,
}

/// SparseGPT (Frantar & Alistarh 2023, Algorithm 1) with `u` the upper factor of H^-1.
fn sparsegpt(w: &mut [f64], rows: usize, cols: usize, u: &[f64], rule: MaskRule<'_>, block: usize) {
    let bs = match rule {
        // Rounded up so every N:M group lies in one block: the mask is chosen on fully updated
        // weights, and the result does not depend on the block size.
        MaskRule::NM { group, .. } => block.div_ceil(group) * group,
        _ => block,
    }
    .min(cols)
    .max(1);
    let mut err = vec![0.0; rows * bs];
    let mut mask = vec![false; rows * bs];
    let mut scores = Vec::new();
    let mut sel = Vec::new();
    let mut sel_tmp = Vec::new();
    let mut i1 = 0;
    while i1 < cols {
        let i2 = (i1 + bs).min(cols);
        let bw = i2 - i1;
        match rule {
            MaskRule::Forced(m) => {
                for r in 0..rows {
                    mask[r * bs..r * bs + bw].copy_from_slice(&m[r * cols + i1..r * cols + i2]);
                }
            }
            MaskRule::Unstructured(p) => {
                scores.clear();
                for r in 0..rows {
                    let seg = &w[r * cols + i1..r * cols + i2];
                    scores.extend(seg.iter().enumerate().map(|(k, &x)| {
                        let d = u[(i1 + k) * cols + i1 + k];
                        x * x / (d * d)
                    }));
                }
                sel.clear();
                sel.resize(rows * bw, false);
                mark_smallest(&scores, count_of(p, rows * bw), &mut sel, &mut sel_tmp);
                for r in 0..rows {
                    mask[r * bs..r * bs + bw].copy_from_slice(&sel[r * bw..(r + 1) * bw]);
                }
            }
            MaskRule::NM { .. } => {}
        }
        let nm = match rule {
            MaskRule::NM { keep, group } => Some((keep, group)),
            _ => None,
        };
        // Rows are independent inside a block: process each row's segment column by column.
        w.par_chunks_mut(cols).zip(err.par_chunks_mut(bs)).zip(mask.par_chunks_mut(bs)).with_min_len(8).for_each_init(
            || NmScratch { scores: Vec::new(), prune: Vec::new(), tmp: Vec::new() },
            |s, ((row, e), mk)| {
                let seg = &mut row[i1..i2];
                for jj in 0..bw {
                    let j = i1 + jj;
                    if let Some((keep, group)) = nm {
                        if j % group == 0 {
                            let len = group.min(cols - j);
                            let pat = Pattern::NM { keep, group };
                            s.scores.clear();
                            s.scores.extend((0..len).map(|k| {
                                let d = u[(j + k) * cols + j + k];
                                seg[jj + k] * seg[jj + k] / (d * d)
                            }));
                            s.prune.clear();
                            s.prune.resize(len, false);
                            mark_smallest(&s.scores, len - pat.keep_in_group(len), &mut s.prune, &mut s.tmp);
                            mk[jj..jj + len].copy_from_slice(&s.prune);
                        }
                    }
                    if mk[jj] {
                        let urow = &u[j * cols + i1..j * cols + i2];
                        let er = seg[jj] / urow[jj];
                        e[jj] = er;
                        seg[jj] = 0.0;
                        if er != 0.0 {
                            for (x, &h) in seg[jj + 1..].iter_mut().zip(&urow[jj + 1..]) {
                                *x -= er * h;
                            }
                        }
                    } else {
                        e[jj] = 0.0;
                    }
                }
            },
        );
        // Lazy batched update of the columns after the block: W[:, i2..] -= Err U[i1..i2, i2..].
        if i2 < cols {
            let rest = cols - i2;
            // Built as the transpose of a column-major view: faer 0.24's
            // `MatMut::from_row_major_slice_with_stride_mut` swaps the strides (writes out of
            // bounds; faer-rs PR #267), so it must not be used.
            let dst = MatMut::from_column_major_slice_with_stride_mut(&mut w[i2..], rest, rows, cols).transpose_mut();
            matmul(
                dst,
                Accum::Add,
                MatRef::from_row_major_slice_with_stride(&err, rows, bw, bs),
                MatRef::from_row_major_slice_with_stride(&u[i1 * cols + i2..], bw, rest, cols),
                -1.0,
                par_for(rows * bw * rest),
            );
        }
        i1 = i2;
    }
}
