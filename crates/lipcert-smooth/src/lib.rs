//! lipcert-smooth: randomized smoothing certificates for classifiers (l2 radii that hold with
//! probability at least 1 - alpha over the sampling noise).
//!
//! Methods (see docs/SMOOTHING.md for formulas, guarantees and the corrections to the thesis):
//! - [`Method::Cohen`]: Cohen et al. 2019 CERTIFY, one-sided Clopper-Pearson lower bound on
//!   the top class, radius sigma Phi^-1(pA_lower).
//! - [`Method::TwoSided`]: Bonferroni over all c classes (risk alpha / c each), radius
//!   sigma / 2 (Phi^-1(pA_lower) - Phi^-1(pB_upper)).
//! - [`Method::Cpm`]: the Class Partitioning Method (thesis Algorithm 8).
//! - [`Method::Lipschitz`]: smoothing a base network with a known Lipschitz constant through
//!   the generalized sparsemax onto the r-simplex (thesis §5.2.2-5.2.3, Cor. 5.2.2 corrected).
//! - [`Method::Lvm`]: LVM-RS (thesis Algorithm 9, corrected), choosing the simplex map and
//!   temperature per input on the selection samples.
//!
//! Sampling runs on the f32 batched plan ([`lipcert_core::PlanF32`]); statistics are in f64.

pub mod noise;
pub mod simplex;
pub mod stats;

use lipcert_core::{GraphError, Network, PlanF32};
use serde::Serialize;
use simplex::{argmax, SimplexMap};
use stats::{bernstein_shift, binom_test_half, clopper_pearson_lower, clopper_pearson_upper, norm_ppf};
use std::time::Instant;

/// The certification method.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    Cohen,
    TwoSided,
    Cpm,
    Lipschitz,
    Lvm,
}

impl Method {
    pub fn name(self) -> &'static str {
        match self {
            Method::Cohen => "cohen",
            Method::TwoSided => "two-sided",
            Method::Cpm => "cpm",
            Method::Lipschitz => "lipschitz",
            Method::Lvm => "lvm",
        }
    }
}

/// Options of [`certify_dataset`] and [`predict_dataset`].
#[derive(Clone, Debug, Serialize)]
pub struct SmoothOptions {
    pub method: Method,
    /// Standard deviation of the Gaussian noise (in input units).
    pub sigma: f64,
    /// Selection samples (choose the class, and for CPM the partition, for LVM the map).
    pub n0: usize,
    /// Estimation samples (the confidence bounds).
    pub n: usize,
    /// Total risk: each certificate fails with probability at most alpha.
    pub alpha: f64,
    /// Noisy samples per forward pass.
    pub batch: usize,
    pub seed: u64,
    /// Index of the first sample of `x` in the whole data set: sample i of `x` is reported as
    /// `first_index + i` and draws that index's noise streams, so certifying a data set in
    /// shards gives exactly the per-sample results of one run over all of it.
    pub first_index: usize,
    /// Certified l2 Lipschitz constant of the logits network (method `lipschitz`).
    pub lipschitz: Option<f64>,
    /// Mass r of the simplex the logits are projected onto (method `lipschitz`).
    pub simplex_mass: f64,
    /// Radii of the certified-accuracy curve (empty: 0, sigma/4, ..., 4 sigma).
    pub radii: Vec<f64>,
    /// LVM temperature grid: `count` log-spaced values in [min, max].
    pub lvm_t_min: f64,
    pub lvm_t_max: f64,
    pub lvm_t_count: usize,
}

impl Default for SmoothOptions {
    fn default() -> Self {
        SmoothOptions {
            method: Method::Cohen,
            sigma: 0.25,
            n0: 100,
            n: 100_000,
            alpha: 0.001,
            batch: 1000,
            seed: 0,
            first_index: 0,
            lipschitz: None,
            simplex_mass: 1.0,
            radii: vec![],
            lvm_t_min: 0.01,
            lvm_t_max: 50.0,
            lvm_t_count: 50,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SmoothError {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Graph(#[from] GraphError),
}

fn invalid<T>(msg: String) -> Result<T, SmoothError> {
    Err(SmoothError::Invalid(msg))
}

impl SmoothOptions {
    /// Checks the options (for `predict`, only sigma, n, alpha and batch matter).
    pub fn validate(&self, predict: bool) -> Result<(), SmoothError> {
        if !(self.sigma > 0.0 && self.sigma.is_finite()) {
            return invalid(format!("--sigma must be a positive number, got {}", self.sigma));
        }
        if !(self.alpha > 0.0 && self.alpha < 1.0) {
            return invalid(format!("--alpha must be in (0, 1), got {}", self.alpha));
        }
        if self.n == 0 || self.batch == 0 {
            return invalid("--n and --batch must be at least 1".into());
        }
        if predict {
            return Ok(());
        }
        if self.n0 == 0 {
            return invalid("--n0 must be at least 1".into());
        }
        if self.n0 > self.n {
            return invalid(format!("--n0 ({}) must not exceed --n ({})", self.n0, self.n));
        }
        if matches!(self.method, Method::Lipschitz | Method::Lvm) && self.n < 2 {
            return invalid("--n must be at least 2 for the empirical Bernstein bound".into());
        }
        if self.method == Method::Lipschitz {
            match self.lipschitz {
                Some(l) if l > 0.0 && l.is_finite() => {}
                Some(l) => return invalid(format!("--lipschitz must be a positive number, got {l}")),
                None => return invalid("--method lipschitz needs --lipschitz L (a certified l2 constant)".into()),
            }
            if !(self.simplex_mass > 0.0 && self.simplex_mass.is_finite()) {
                return invalid(format!("--simplex-mass must be positive, got {}", self.simplex_mass));
            }
        }
        if self.method == Method::Lvm
            && !(self.lvm_t_min > 0.0 && self.lvm_t_max >= self.lvm_t_min && self.lvm_t_count >= 1)
        {
            return invalid("the LVM temperature grid needs 0 < min <= max and at least one value".into());
        }
        if let Some(r) = self.radii.iter().find(|r| !(**r >= 0.0 && r.is_finite())) {
            return invalid(format!("radius {r} of the curve is not a non-negative number"));
        }
        Ok(())
    }

    pub fn curve_radii(&self) -> Vec<f64> {
        if self.radii.is_empty() {
            (0..=16).map(|j| j as f64 * self.sigma / 4.0).collect()
        } else {
            self.radii.clone()
        }
    }
}

/// A certificate for one input: the predicted class (None: abstain) and the radius (0 when
/// abstaining), with the confidence bounds behind it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Certificate {
    /// (Not serialized: [`SampleResult`] carries both, with -1 for abstain.)
    #[serde(skip)]
    pub predict: Option<usize>,
    #[serde(skip)]
    pub radius: f64,
    /// Lower confidence bound on the predicted class's smoothed score.
    pub p_lower: f64,
    /// Upper confidence bound on the strongest competitor (None for Cohen's one-class bound).
    pub p_upper: Option<f64>,
    /// CPM: number of buckets c* (the Bonferroni factor).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub buckets: Option<usize>,
    /// LVM: chosen simplex map and temperature.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub map: Option<SimplexMap>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    /// Lipschitz-aware: the margin radius (Cor. 5.2.2) and the Phi^-1 radius of the same
    /// smoothed classifier; `radius` is the larger.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub radius_margin: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub radius_quantile: Option<f64>,
}

impl Certificate {
    fn new(top: usize, p_lower: f64, p_upper: Option<f64>, radius: f64) -> Self {
        let ok = radius > 0.0 && radius.is_finite();
        Certificate {
            predict: ok.then_some(top),
            radius: if ok { radius } else { 0.0 },
            p_lower,
            p_upper,
            buckets: None,
            map: None,
            temperature: None,
            radius_margin: None,
            radius_quantile: None,
        }
    }
}

/// sigma / 2 (Phi^-1(lower) - Phi^-1(upper)) (thesis Eq. 2.12, Cohen Thm 1 in general form).
pub fn radius_two_sided(sigma: f64, lower: f64, upper: f64) -> f64 {
    0.5 * sigma * (norm_ppf(lower) - norm_ppf(upper.max(f64::MIN_POSITIVE)))
}

/// Cohen et al. CERTIFY on the estimation counts: `n_a` of `n` noisy samples fell in the
/// class chosen on the selection samples. Abstains when pA_lower <= 1/2.
pub fn cohen_certify(top: usize, n_a: u64, n: u64, alpha: f64, sigma: f64) -> Certificate {
    let pl = clopper_pearson_lower(n_a, n, alpha);
    let radius = if pl > 0.5 { sigma * norm_ppf(pl) } else { 0.0 };
    Certificate::new(top, pl, None, radius)
}

/// Two-sided (multi-class) certificate: Clopper-Pearson bounds at risk alpha / c for every
/// class simultaneously (Bonferroni); lower bound on `top`, upper bounds on all others.
pub fn two_sided_certify(top: usize, counts: &[u64], alpha: f64, sigma: f64) -> Certificate {
    let n: u64 = counts.iter().sum();
    let risk = alpha / counts.len() as f64;
    let pl = clopper_pearson_lower(counts[top], n, risk);
    let pu =
        (0..counts.len()).filter(|&k| k != top).map(|k| clopper_pearson_upper(counts[k], n, risk)).fold(0.0, f64::max);
    let radius = if pl > pu { radius_two_sided(sigma, pl, pu) } else { 0.0 };
    Certificate::new(top, pl, Some(pu), radius)
}

/// The partition of the Class Partitioning Method (thesis Algorithm 8), chosen on the
/// selection counts: the top class, and buckets of competitors (singletons, then the
/// meta-class of all remaining classes last, when non-empty).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CpmPartition {
    pub top: usize,
    pub buckets: Vec<Vec<usize>>,
}

pub fn cpm_partition(select: &[u64]) -> CpmPartition {
    let c = select.len();
    let top = argmax_u64(select, None);
    if c == 1 {
        return CpmPartition { top, buckets: vec![] };
    }
    let second = argmax_u64(select, Some(top));
    let mut buckets = vec![vec![second]];
    let mut meta: Vec<usize> = (0..c).filter(|&k| k != top && k != second).collect();
    // Move the largest member out of the meta-class while the meta-class outweighs I2.
    while !meta.is_empty() && meta.iter().map(|&k| select[k]).sum::<u64>() > select[second] {
        let (pos, _) =
            meta.iter().enumerate().max_by(|a, b| select[*a.1].cmp(&select[*b.1]).then(b.0.cmp(&a.0))).unwrap();
        buckets.push(vec![meta.remove(pos)]);
    }
    if !meta.is_empty() {
        buckets.push(meta);
    }
    CpmPartition { top, buckets }
}

/// CPM estimation phase: risk alpha / c* with c* = buckets + 1; Clopper-Pearson lower bound
/// on the top class and upper bounds on every bucket's total mass.
pub fn cpm_certify(part: &CpmPartition, counts: &[u64], alpha: f64, sigma: f64) -> Certificate {
    let n: u64 = counts.iter().sum();
    let c_star = part.buckets.len() + 1;
    let risk = alpha / c_star as f64;
    let pl = clopper_pearson_lower(counts[part.top], n, risk);
    let pu = part
        .buckets
        .iter()
        .map(|b| clopper_pearson_upper(b.iter().map(|&k| counts[k]).sum(), n, risk))
        .fold(0.0, f64::max);
    let radius = if pl > pu { radius_two_sided(sigma, pl, pu) } else { 0.0 };
    let mut cert = Certificate::new(part.top, pl, Some(pu), radius);
    cert.buckets = Some(c_star);
    cert
}

fn argmax_u64(v: &[u64], skip: Option<usize>) -> usize {
    let mut best = usize::MAX;
    for (i, &x) in v.iter().enumerate() {
        if Some(i) != skip && (best == usize::MAX || x > v[best]) {
            best = i;
        }
    }
    best
}

/// Per-class sample mean and unbiased variance of scores in [0, 1].
#[derive(Clone, Debug, PartialEq)]
pub struct ScoreStats {
    pub n: u64,
    pub mean: Vec<f64>,
    pub var: Vec<f64>,
}

impl ScoreStats {
    /// From `n` rows of `c` scores.
    pub fn from_rows(rows: &[f64], c: usize) -> Self {
        let mut acc = Accumulator::new(c);
        for r in rows.chunks_exact(c) {
            acc.add(r);
        }
        acc.finish()
    }
}

struct Accumulator {
    n: u64,
    sum: Vec<f64>,
    sumsq: Vec<f64>,
}

impl Accumulator {
    fn new(c: usize) -> Self {
        Accumulator { n: 0, sum: vec![0.0; c], sumsq: vec![0.0; c] }
    }
    fn add(&mut self, row: &[f64]) {
        self.n += 1;
        for ((s, q), &v) in self.sum.iter_mut().zip(&mut self.sumsq).zip(row) {
            *s += v;
            *q += v * v;
        }
    }
    fn finish(self) -> ScoreStats {
        let n = self.n as f64;
        let mean: Vec<f64> = self.sum.iter().map(|s| s / n).collect();
        let var = self
            .sumsq
            .iter()
            .zip(&mean)
            .map(|(q, m)| if self.n > 1 { ((q - n * m * m) / (n - 1.0)).max(0.0) } else { 0.0 })
            .collect();
        ScoreStats { n: self.n, mean, var }
    }
}

/// Empirical Bernstein bounds at risk alpha / c for every class (one-sided each): a lower
/// bound on `top` and the largest upper bound over the others, for scores in [0, 1] with the
/// statistics of `n_eff` samples (`n_eff` = the actual count, or for LVM's selection, the
/// estimation size the bound is predicted for).
fn bernstein_bounds(top: usize, s: &ScoreStats, n_eff: u64, alpha: f64) -> (f64, f64) {
    let c = s.mean.len();
    let risk = alpha / c as f64;
    let pl = (s.mean[top] - bernstein_shift(s.var[top], n_eff, risk)).clamp(0.0, 1.0);
    let pu = (0..c)
        .filter(|&k| k != top)
        .map(|k| (s.mean[k] + bernstein_shift(s.var[k], n_eff, risk)).clamp(0.0, 1.0))
        .fold(0.0, f64::max);
    (pl, pu)
}

/// Certificate for a soft smoothed classifier (scores in [0, 1]) from empirical Bernstein
/// bounds (Bonferroni over the c classes), radius sigma / 2 (Phi^-1(pl) - Phi^-1(pu)) by
/// Lemma 2.1.7 (Phi^-1 of any [0, 1]-valued smoothed function is 1/sigma-Lipschitz).
pub fn bernstein_certify(top: usize, s: &ScoreStats, alpha: f64, sigma: f64) -> Certificate {
    let (pl, pu) = bernstein_bounds(top, s, s.n, alpha);
    let radius = if pl > pu { radius_two_sided(sigma, pl, pu) } else { 0.0 };
    Certificate::new(top, pl, Some(pu), radius)
}

/// Upper bound on the l2 Lipschitz constant of the smoothed map F~ = E[tau(f(x + delta))] for
/// f L-Lipschitz and tau a 1-Lipschitz map into the r-simplex (thesis Cor. 5.2.2, corrected:
/// `<=`, and `r / (sqrt(pi) sigma)` in the relaxation): L erf(r / (2 L sigma)).
pub fn smoothed_lipschitz(l: f64, sigma: f64, r: f64) -> f64 {
    l * libm::erf(r / (2.0 * l * sigma))
}

/// The sigma maximizing the gain of Cor. 5.2.2 over the deterministic bound: r / (L sqrt(pi)).
pub fn optimal_sigma(l: f64, r: f64) -> f64 {
    r / (l * std::f64::consts::PI.sqrt())
}

/// Lipschitz-aware certificate (thesis §5.2.2-5.2.3). `s` holds the statistics of
/// tau(f(x + delta)) / r with tau the generalized sparsemax onto the r-simplex. With the
/// Bonferroni-Bernstein bounds pl (top) and pu (others) in [0, 1] units, the margin of F~ is at
/// least r (pl - pu), so the Tsuzuku radius is r (pl - pu) / (sqrt 2 L erf(r / (2 L sigma)));
/// the Phi^-1 radius sigma / 2 (Phi^-1(pl) - Phi^-1(pu)) certifies the same classifier under
/// the same event, so the certificate is the larger of the two.
pub fn lipschitz_certify(top: usize, s: &ScoreStats, alpha: f64, sigma: f64, l: f64, r: f64) -> Certificate {
    let (pl, pu) = bernstein_bounds(top, s, s.n, alpha);
    let (margin, quantile) = if pl > pu {
        (r * (pl - pu) / (std::f64::consts::SQRT_2 * smoothed_lipschitz(l, sigma, r)), radius_two_sided(sigma, pl, pu))
    } else {
        (0.0, 0.0)
    };
    let mut cert = Certificate::new(top, pl, Some(pu), margin.max(quantile));
    cert.radius_margin = Some(margin);
    cert.radius_quantile = Some(quantile);
    cert
}

/// LVM-RS selection (thesis Algorithm 9, corrected): on the n0 selection logits, for every map
/// (hardmax, softmax, sparsemax) and temperature of the grid, the class with the largest mean
/// score and the radius the estimation phase would give with these means and variances at n
/// samples; returns the best (map, temperature, class).
pub fn lvm_select(logits: &[f32], c: usize, n: u64, opts: &SmoothOptions) -> (SimplexMap, f64, usize) {
    let rows = logits.len() / c;
    let mut best = (SimplexMap::Hardmax, 1.0, 0usize, f64::NEG_INFINITY);
    let mut scores = vec![0.0; rows * c];
    let count = opts.lvm_t_count.max(1);
    let temps: Vec<f64> = (0..count)
        .map(|i| {
            let f = if count == 1 { 0.0 } else { i as f64 / (count - 1) as f64 };
            opts.lvm_t_min * (opts.lvm_t_max / opts.lvm_t_min).powf(f)
        })
        .collect();
    for map in [SimplexMap::Hardmax, SimplexMap::Softmax, SimplexMap::Sparsemax] {
        // Hardmax does not depend on the temperature.
        let ts: &[f64] = if map == SimplexMap::Hardmax { &[1.0] } else { &temps };
        for &t in ts {
            for (z, out) in logits.chunks_exact(c).zip(scores.chunks_exact_mut(c)) {
                map.apply(z, t, out);
            }
            let s = ScoreStats::from_rows(&scores, c);
            let top = argmax_f64(&s.mean);
            let score = if map == SimplexMap::Hardmax {
                let counts: Vec<u64> = s.mean.iter().map(|m| (m * n as f64).round() as u64).collect();
                two_sided_certify(top, &counts, opts.alpha, opts.sigma).radius
            } else {
                let (pl, pu) = bernstein_bounds(top, &s, n, opts.alpha);
                radius_two_sided(opts.sigma, pl, pu)
            };
            if score > best.3 {
                best = (map, t, top, score);
            }
        }
    }
    (best.0, best.1, best.2)
}

fn argmax_f64(v: &[f64]) -> usize {
    (0..v.len()).fold(0, |b, i| if v[i] > v[b] { i } else { b })
}

/// Draws noisy copies of an input and runs them through the f32 plan in batches.
pub struct Sampler {
    plan: PlanF32,
    batch: usize,
    sigma: f32,
    d: usize,
    classes: usize,
    xf: Vec<f32>,
    noisy: Vec<f32>,
    row: Vec<f64>,
    /// Noisy samples evaluated so far.
    pub evaluated: u64,
}

impl Sampler {
    pub fn new(net: &Network, batch: usize, sigma: f64) -> Self {
        let plan = PlanF32::new(net);
        let (d, classes) = (plan.input_len(), plan.output_len());
        Sampler {
            plan,
            batch,
            sigma: sigma as f32,
            d,
            classes,
            xf: vec![0.0; d],
            noisy: vec![0.0; batch * d],
            row: vec![0.0; classes],
            evaluated: 0,
        }
    }

    pub fn classes(&self) -> usize {
        self.classes
    }

    /// Calls `f` on each batch of logits (`[m, classes]`) of `num` noisy copies of `x`.
    fn for_each_batch(
        &mut self,
        x: &[f64],
        num: usize,
        key: u64,
        mut f: impl FnMut(&[f32], &mut [f64]),
    ) -> Result<(), GraphError> {
        for (a, &b) in self.xf.iter_mut().zip(x) {
            *a = b as f32;
        }
        let (mut done, mut b) = (0usize, 0u64);
        while done < num {
            let m = self.batch.min(num - done);
            let noisy = &mut self.noisy[..m * self.d];
            noise::noisy_copies(&self.xf, self.sigma, noise::stream_key(key, b, 0), noisy);
            let out = self.plan.forward(noisy, m)?;
            f(out, &mut self.row);
            done += m;
            b += 1;
        }
        self.evaluated += num as u64;
        Ok(())
    }

    /// Hardmax counts per class over `num` noisy samples.
    pub fn counts(&mut self, x: &[f64], num: usize, key: u64) -> Result<Vec<u64>, GraphError> {
        let c = self.classes;
        let mut counts = vec![0u64; c];
        self.for_each_batch(x, num, key, |out, _| {
            for z in out.chunks_exact(c) {
                counts[argmax(z)] += 1;
            }
        })?;
        Ok(counts)
    }

    /// All logits of `num` noisy samples, `[num, classes]`.
    pub fn logits(&mut self, x: &[f64], num: usize, key: u64) -> Result<Vec<f32>, GraphError> {
        let mut all = Vec::with_capacity(num * self.classes);
        self.for_each_batch(x, num, key, |out, _| all.extend_from_slice(out))?;
        Ok(all)
    }

    /// Statistics of the scores `map(logits / t)` over `num` noisy samples.
    pub fn score_stats(
        &mut self,
        x: &[f64],
        num: usize,
        key: u64,
        map: SimplexMap,
        t: f64,
    ) -> Result<ScoreStats, GraphError> {
        let c = self.classes;
        let mut acc = Accumulator::new(c);
        self.for_each_batch(x, num, key, |out, row| {
            for z in out.chunks_exact(c) {
                map.apply(z, t, row);
                acc.add(row);
            }
        })?;
        Ok(acc.finish())
    }
}

/// Certifies one input (`x` of the network's input length); `idx` keys the noise streams.
pub fn certify_one(
    sampler: &mut Sampler,
    x: &[f64],
    idx: usize,
    opts: &SmoothOptions,
) -> Result<Certificate, SmoothError> {
    let key_sel = noise::stream_key(opts.seed, idx as u64, 1);
    let key_est = noise::stream_key(opts.seed, idx as u64, 2);
    let (sigma, alpha) = (opts.sigma, opts.alpha);
    let cert = match opts.method {
        Method::Cohen => {
            let top = argmax_u64(&sampler.counts(x, opts.n0, key_sel)?, None);
            let counts = sampler.counts(x, opts.n, key_est)?;
            cohen_certify(top, counts[top], opts.n as u64, alpha, sigma)
        }
        Method::TwoSided => {
            let top = argmax_u64(&sampler.counts(x, opts.n0, key_sel)?, None);
            two_sided_certify(top, &sampler.counts(x, opts.n, key_est)?, alpha, sigma)
        }
        Method::Cpm => {
            let part = cpm_partition(&sampler.counts(x, opts.n0, key_sel)?);
            cpm_certify(&part, &sampler.counts(x, opts.n, key_est)?, alpha, sigma)
        }
        Method::Lipschitz => {
            let l = opts.lipschitz.expect("validated");
            let r = opts.simplex_mass;
            // sparsemax_r(z) / r = sparsemax(z / r): scores in [0, 1].
            let sel = sampler.score_stats(x, opts.n0, key_sel, SimplexMap::Sparsemax, r)?;
            let top = argmax_f64(&sel.mean);
            let est = sampler.score_stats(x, opts.n, key_est, SimplexMap::Sparsemax, r)?;
            lipschitz_certify(top, &est, alpha, sigma, l, r)
        }
        Method::Lvm => {
            let logits = sampler.logits(x, opts.n0, key_sel)?;
            let (map, t, top) = lvm_select(&logits, sampler.classes(), opts.n as u64, opts);
            let mut cert = if map == SimplexMap::Hardmax {
                two_sided_certify(top, &sampler.counts(x, opts.n, key_est)?, alpha, sigma)
            } else {
                bernstein_certify(top, &sampler.score_stats(x, opts.n, key_est, map, t)?, alpha, sigma)
            };
            cert.map = Some(map);
            cert.temperature = (map != SimplexMap::Hardmax).then_some(t);
            cert
        }
    };
    Ok(cert)
}

/// One row of a certification run.
#[derive(Clone, Debug, Serialize)]
pub struct SampleResult {
    pub idx: usize,
    pub label: usize,
    /// Predicted class, -1 for abstain.
    pub predict: i64,
    pub radius: f64,
    pub correct: bool,
    pub time_s: f64,
    #[serde(flatten)]
    pub certificate: Certificate,
}

/// Certified accuracy at one radius: correct and certified with radius >= `radius`.
#[derive(Clone, Debug, Serialize)]
pub struct CurvePoint {
    pub radius: f64,
    pub certified: usize,
    pub certified_accuracy: f64,
}

/// Result of [`certify_dataset`].
#[derive(Clone, Debug, Serialize)]
pub struct SmoothReport {
    pub method: Method,
    pub sigma: f64,
    pub n0: usize,
    pub n: usize,
    pub alpha: f64,
    pub seed: u64,
    pub batch: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lipschitz: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub simplex_mass: Option<f64>,
    pub samples: usize,
    pub abstained: usize,
    pub correct: usize,
    /// Fraction of samples predicted correctly without abstaining (the curve at radius 0).
    pub clean_accuracy: f64,
    /// Mean over samples of the radius of correct predictions (0 otherwise).
    pub average_certified_radius: f64,
    pub curve: Vec<CurvePoint>,
    pub time_s: f64,
    /// Noisy forward passes per second over the run.
    pub noise_samples_per_s: f64,
    pub per_sample: Vec<SampleResult>,
}

fn check_data(net: &Network, x: &[f64], rows: usize) -> Result<(), SmoothError> {
    let d = net.input_len();
    if x.len() != rows * d {
        return invalid(format!("the data has {} values, expected {rows} samples x {d} inputs", x.len()));
    }
    if let Some(i) = x.iter().position(|v| !v.is_finite()) {
        return invalid(format!("sample {} holds a NaN or infinite value", i / d.max(1)));
    }
    Ok(())
}

fn check_labels(labels: &[usize], classes: usize) -> Result<(), SmoothError> {
    if let Some(i) = labels.iter().position(|&l| l >= classes) {
        return invalid(format!("label {} of sample {i} is not a class index below {classes}", labels[i]));
    }
    Ok(())
}

/// Certifies every sample of `x` (`[labels.len(), input_len]`) by `opts.method`; calls
/// `progress(done)` after each sample. This is the library entry point of `lipcert smooth
/// certify` (and of any report built on it).
pub fn certify_dataset(
    net: &Network,
    x: &[f64],
    labels: &[usize],
    opts: &SmoothOptions,
    progress: &dyn Fn(usize),
) -> Result<SmoothReport, SmoothError> {
    opts.validate(false)?;
    check_data(net, x, labels.len())?;
    check_labels(labels, net.output_len())?;
    let d = net.input_len();
    let start = Instant::now();
    let mut sampler = Sampler::new(net, opts.batch.min(opts.n.max(opts.n0)), opts.sigma);
    let mut per_sample = Vec::with_capacity(labels.len());
    for (i, (row, &label)) in x.chunks_exact(d.max(1)).zip(labels).enumerate() {
        let idx = opts.first_index + i;
        let t = Instant::now();
        let cert = certify_one(&mut sampler, row, idx, opts)?;
        per_sample.push(SampleResult {
            idx,
            label,
            predict: cert.predict.map_or(-1, |p| p as i64),
            radius: cert.radius,
            correct: cert.predict == Some(label),
            time_s: t.elapsed().as_secs_f64(),
            certificate: cert,
        });
        progress(i + 1);
    }
    let time_s = start.elapsed().as_secs_f64();
    let samples = per_sample.len();
    let frac = |k: usize| if samples == 0 { 0.0 } else { k as f64 / samples as f64 };
    let correct = per_sample.iter().filter(|s| s.correct).count();
    let curve = opts
        .curve_radii()
        .into_iter()
        .map(|r| {
            let certified = per_sample.iter().filter(|s| s.correct && s.radius >= r).count();
            CurvePoint { radius: r, certified, certified_accuracy: frac(certified) }
        })
        .collect();
    let acr = if samples == 0 {
        0.0
    } else {
        per_sample.iter().filter(|s| s.correct).map(|s| s.radius).sum::<f64>() / samples as f64
    };
    Ok(SmoothReport {
        method: opts.method,
        sigma: opts.sigma,
        n0: opts.n0,
        n: opts.n,
        alpha: opts.alpha,
        seed: opts.seed,
        batch: opts.batch,
        lipschitz: (opts.method == Method::Lipschitz).then_some(opts.lipschitz).flatten(),
        simplex_mass: (opts.method == Method::Lipschitz).then_some(opts.simplex_mass),
        samples,
        abstained: per_sample.iter().filter(|s| s.predict < 0).count(),
        correct,
        clean_accuracy: frac(correct),
        average_certified_radius: acr,
        curve,
        time_s,
        noise_samples_per_s: sampler.evaluated as f64 / time_s.max(1e-12),
        per_sample,
    })
}

/// One row of a prediction run.
#[derive(Clone, Debug, Serialize)]
pub struct PredictResult {
    pub idx: usize,
    pub label: Option<usize>,
    /// Predicted class, -1 for abstain.
    pub predict: i64,
    pub correct: Option<bool>,
    pub time_s: f64,
    /// Counts of the two most frequent classes and the binomial test's p-value.
    pub count_top: u64,
    pub count_second: u64,
    pub p_value: f64,
}

/// Result of [`predict_dataset`].
#[derive(Clone, Debug, Serialize)]
pub struct PredictReport {
    pub sigma: f64,
    pub n: usize,
    pub alpha: f64,
    pub seed: u64,
    pub samples: usize,
    pub abstained: usize,
    /// With labels: fraction predicted correctly (abstentions count as wrong).
    pub accuracy: Option<f64>,
    pub time_s: f64,
    pub per_sample: Vec<PredictResult>,
}

/// Cohen et al. PREDICT: `n` noisy samples, the two most frequent classes, a two-sided
/// binomial test of their counts at p = 1/2; abstain when its p-value exceeds alpha. A
/// returned class differs from the smoothed classifier's with probability at most alpha.
pub fn predict_one(
    sampler: &mut Sampler,
    x: &[f64],
    idx: usize,
    opts: &SmoothOptions,
) -> Result<PredictResult, SmoothError> {
    let t = Instant::now();
    let counts = sampler.counts(x, opts.n, noise::stream_key(opts.seed, idx as u64, 3))?;
    let top = argmax_u64(&counts, None);
    let second = if counts.len() > 1 { counts[argmax_u64(&counts, Some(top))] } else { 0 };
    let p_value = binom_test_half(counts[top], counts[top] + second);
    Ok(PredictResult {
        idx,
        label: None,
        predict: if p_value <= opts.alpha { top as i64 } else { -1 },
        correct: None,
        time_s: t.elapsed().as_secs_f64(),
        count_top: counts[top],
        count_second: second,
        p_value,
    })
}

/// PREDICT on every sample of `x`; `labels` (optional) are only compared with.
pub fn predict_dataset(
    net: &Network,
    x: &[f64],
    labels: Option<&[usize]>,
    opts: &SmoothOptions,
    progress: &dyn Fn(usize),
) -> Result<PredictReport, SmoothError> {
    opts.validate(true)?;
    let d = net.input_len();
    if d == 0 || !x.len().is_multiple_of(d) {
        return invalid(format!("the data has {} values, not a whole number of samples of {d} inputs", x.len()));
    }
    let rows = x.len() / d;
    check_data(net, x, rows)?;
    if let Some(l) = labels {
        if l.len() != rows {
            return invalid(format!("{} labels for {rows} samples", l.len()));
        }
        check_labels(l, net.output_len())?;
    }
    let start = Instant::now();
    let mut sampler = Sampler::new(net, opts.batch.min(opts.n), opts.sigma);
    let mut per_sample = Vec::with_capacity(rows);
    for (i, row) in x.chunks_exact(d.max(1)).enumerate() {
        let mut r = predict_one(&mut sampler, row, opts.first_index + i, opts)?;
        if let Some(l) = labels {
            r.label = Some(l[i]);
            r.correct = Some(r.predict == l[i] as i64);
        }
        per_sample.push(r);
        progress(i + 1);
    }
    let correct = per_sample.iter().filter(|r| r.correct == Some(true)).count();
    Ok(PredictReport {
        sigma: opts.sigma,
        n: opts.n,
        alpha: opts.alpha,
        seed: opts.seed,
        samples: rows,
        abstained: per_sample.iter().filter(|r| r.predict < 0).count(),
        accuracy: labels.map(|_| if rows == 0 { 0.0 } else { correct as f64 / rows as f64 }),
        time_s: start.elapsed().as_secs_f64(),
        per_sample,
    })
}
