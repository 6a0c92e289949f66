//! Exact verification of piecewise-linear networks by mixed-integer linear programming, solved
//! by HiGHS (built from source by the `highs-sys` crate).
//!
//! **Encoding.** Every element of every value gets a column, bounded by sound intermediate
//! bounds (`lipcert_bounds::value_bounds`, CROWN by default):
//! - a linear node (Dense, Conv2d, Affine, Add, AvgPool, Pad, Reshape, Transpose) becomes one
//!   equality row per output element, `y_j - sum_i A_ji x_i = b_j`, with only the nonzeros of
//!   A. The rows of A come from the node's adjoint (`Network::linear_vjp` on unit vectors) and
//!   b from the node evaluated at zero, so every operator is encoded by the same code. A row
//!   that only copies one input (Reshape, Transpose, the inside of Pad) reuses that input's
//!   column; a row without inputs (the border of Pad) is a fixed column;
//! - ReLU and LeakyReLU (slope alpha in [0, 1)) with input bounds l < 0 < u (Tjeng, Xiao and
//!   Tedrake 2019): a binary a and y >= z, y >= alpha z, y <= z - (1 - alpha) l (1 - a),
//!   y <= alpha z + (1 - alpha) u a. A stable neuron needs no binary: l >= 0 reuses z's
//!   column, u <= 0 gives y = alpha z;
//! - MaxPool: the window's candidates are the inputs whose upper bound reaches the largest
//!   lower bound. One candidate reuses its column. Otherwise, with U the largest upper bound,
//!   one binary a_i per candidate, sum a_i = 1, y >= x_i and y <= x_i + (U - l_i)(1 - a_i).
//!
//! Other activations (sigmoid, tanh, ELU, GELU) are rejected with an error.
//!
//! **Property.** A conjunction of atoms c_i . y <= d_i is one MILP: minimize t subject to
//! t >= c_i . y - d_i for every atom. Its optimum is the best margin of the conjunction over
//! the box: the conjunction holds somewhere iff the optimum is <= 0. The MILP is always
//! feasible in exact arithmetic (the network's own outputs satisfy every row, since the column
//! bounds are sound), so "infeasible" from the solver can only mean numerical trouble.
//!
//! **Soundness.** HiGHS computes in floating point with feasibility tolerances (1e-7 on rows
//! and bounds, 1e-6 on integrality), so its answers are not taken at face value:
//! - `Sat` only with the solver's input point clipped to the box and confirmed by lipcert's
//!   own forward pass (every atom of the conjunction holds). A point that does not confirm
//!   gives `Unknown`, never `Sat`.
//! - `Unsat` only when the solver shows t > `margin * (1 + scale)` everywhere, where `scale`
//!   bounds |c_i . y| + |d_i| over the box: its dual bound exceeds that tolerance, or, with the
//!   tolerance as cutoff (`objective_bound`), it discards every node ("infeasible", the same
//!   claim, since without the cutoff the MILP is always feasible). The tolerances let the
//!   relaxations that prove the bound drift by amounts of the order of the tolerances times
//!   the magnitudes of the model; an optimum within the margin of zero gives `Unknown`. This
//!   is a floating-point argument, not a certificate like CROWN's (see docs/GUARANTEES.md).
//!
//! `milp_minimize` solves to an absolute gap of 1e-9 with feasibility tolerances of 1e-9.

use crate::{BoxProperty, Verdict};
use highs::{Col, HighsModelStatus, HighsSolutionStatus, RowProblem, Sense};
use lipcert_bounds::{value_bounds, Atom, InputSet, Interval, Method, Options};
use lipcert_core::kernels::for_each_window;
use lipcert_core::{Activation, GraphError, Network, Op};
use std::time::Instant;

#[derive(Clone, Debug)]
pub struct MilpOptions {
    /// Every solve stops at this instant (HiGHS's `time_limit`); None: no limit.
    pub deadline: Option<Instant>,
    /// `Unsat` needs the solver's dual bound on the best margin above `margin * (1 + scale)`.
    pub margin: f64,
    /// Intermediate bounds for the column bounds and the big-M constants (sound for any method).
    pub bounds: Method,
    /// `milp_minimize`: absolute optimality gap at which HiGHS stops.
    pub gap: f64,
}

impl Default for MilpOptions {
    fn default() -> Self {
        MilpOptions { deadline: None, margin: 1e-6, bounds: Method::Crown, gap: 1e-9 }
    }
}

/// The result of one conjunction's MILP.
#[derive(Clone, Debug)]
pub struct ConjunctionSolve {
    /// HiGHS's model status (`Optimal`, `ReachedTimeLimit`, `ObjectiveTarget`, ...).
    pub status: String,
    /// The solver's lower bound on min over the box of max_i (c_i . y - d_i), in its floating
    /// point (see the module documentation).
    pub dual_bound: f64,
    /// The best value of that objective the solver found, if any (its own arithmetic).
    pub primal: Option<f64>,
    /// What the dual bound must exceed for `Unsat`.
    pub tolerance: f64,
    pub verdict: Verdict,
    pub time_s: f64,
}

#[derive(Clone, Debug)]
pub struct MilpOutcome {
    pub verdict: Verdict,
    /// Binary variables of the encoding (unstable ReLU-like neurons and max-pool candidates).
    pub binaries: usize,
    /// One entry per conjunction solved, in order; solving stops at the first `Sat`.
    pub conjunctions: Vec<ConjunctionSolve>,
    pub time_s: f64,
}

/// The minimum of c . y over a box.
#[derive(Clone, Debug)]
pub struct Minimum {
    /// The best point found (in the box; the box center when the solver found none).
    pub x: Vec<f64>,
    /// c . f(x) by lipcert's forward pass: a value the network attains, so >= the minimum.
    pub value: f64,
    /// The solver's lower bound on the minimum (floating point, not certified).
    pub lower: f64,
    /// The solver reported an optimum (value and lower within `gap`, up to its tolerances).
    pub optimal: bool,
    pub status: String,
    pub binaries: usize,
}

/// Decides a box property by one MILP per conjunction.
pub fn milp_verify(net: &Network, prop: &BoxProperty, opts: &MilpOptions) -> Result<MilpOutcome, GraphError> {
    check_property(net, prop)?;
    let bounds = value_bounds(net, &InputSet::Box(prop.input.clone()), opts.bounds, &Options::default())?;
    milp_verify_with_bounds(net, prop, &bounds, opts)
}

/// The least time left (per nonzero of the affine rows) for which a MILP is started.
const MIN_SECONDS_PER_NONZERO: f64 = 10e-6;

/// `milp_verify` with intermediate bounds already computed (sound bounds of every value over
/// `prop.input`, indexed by value id).
pub fn milp_verify_with_bounds(
    net: &Network,
    prop: &BoxProperty,
    bounds: &[Interval],
    opts: &MilpOptions,
) -> Result<MilpOutcome, GraphError> {
    let start = Instant::now();
    check_property(net, prop)?;
    let enc = encode(net, bounds)?;
    let mut out =
        MilpOutcome { verdict: Verdict::Unsat, binaries: enc.binaries, conjunctions: Vec::new(), time_s: 0.0 };
    let mut undecided: Option<Verdict> = None;
    for conj in &prop.unsafe_.any_of {
        let s = solve_conjunction(net, prop, bounds, &enc, conj, opts, Mode::Decide)?.solve;
        let v = s.verdict.clone();
        out.conjunctions.push(s);
        match v {
            Verdict::Sat { .. } => {
                out.verdict = v;
                out.time_s = start.elapsed().as_secs_f64();
                return Ok(out);
            }
            Verdict::Unsat => {}
            Verdict::Timeout => {
                // Later conjunctions have no time left either.
                undecided = Some(Verdict::Timeout);
                break;
            }
            other => undecided = undecided.or(Some(other)),
        }
    }
    out.verdict = undecided.unwrap_or(Verdict::Unsat);
    out.time_s = start.elapsed().as_secs_f64();
    Ok(out)
}

/// The minimum of c . y over the box [lo, hi], solved to `opts.gap`.
pub fn milp_minimize(
    net: &Network,
    lo: &[f64],
    hi: &[f64],
    c: &[f64],
    opts: &MilpOptions,
) -> Result<Minimum, GraphError> {
    let prop = BoxProperty::new(lo.to_vec(), hi.to_vec(), vec![vec![(c.to_vec(), 0.0)]]);
    check_property(net, &prop)?;
    let bounds = value_bounds(net, &InputSet::Box(prop.input.clone()), opts.bounds, &Options::default())?;
    let enc = encode(net, &bounds)?;
    let s = solve_conjunction(net, &prop, &bounds, &enc, &prop.unsafe_.any_of[0], opts, Mode::Minimize)?;
    let x = s.x.unwrap_or_else(|| lo.iter().zip(hi).map(|(l, h)| 0.5 * l + 0.5 * h).collect());
    let y = net.forward(&x, 1)?;
    Ok(Minimum {
        value: c.iter().zip(&y).map(|(a, b)| a * b).sum(),
        x,
        lower: s.solve.dual_bound,
        optimal: s.solve.status == format!("{:?}", HighsModelStatus::Optimal),
        status: s.solve.status,
        binaries: enc.binaries,
    })
}

/// The number of binary variables the encoding needs with these intermediate bounds (indexed
/// by value id), or an error for operators the MILP does not support.
pub fn milp_binaries(net: &Network, bounds: &[Interval]) -> Result<usize, GraphError> {
    check_bounds(net, bounds)?;
    let mut count = 0;
    for (k, node) in net.nodes.iter().enumerate() {
        let z = &bounds[node.inputs[0]];
        match &node.op {
            Op::Activation(a) => {
                let alpha = relu_slope(net, k, *a)?;
                if alpha < 1.0 {
                    count += z.lo.iter().zip(&z.hi).filter(|(l, u)| **l < 0.0 && **u > 0.0).count();
                }
            }
            Op::MaxPool(_) => {
                count += max_windows(net, k).iter().map(|w| candidates(w, z).len()).filter(|&n| n > 1).sum::<usize>()
            }
            // Linear nodes need no binaries.
            Op::Dense(_)
            | Op::Conv2d(_)
            | Op::Affine { .. }
            | Op::Add
            | Op::AvgPool(_)
            | Op::Pad { .. }
            | Op::Reshape { .. }
            | Op::Transpose { .. } => {}
        }
    }
    Ok(count)
}

/// Whether the MILP encodes every operator of the network (the error names the first that it
/// does not).
pub fn milp_supported(net: &Network) -> Result<(), GraphError> {
    for (k, node) in net.nodes.iter().enumerate() {
        if let Op::Activation(a) = node.op {
            relu_slope(net, k, a)?;
        }
    }
    Ok(())
}

fn check_property(net: &Network, prop: &BoxProperty) -> Result<(), GraphError> {
    let (lo, hi) = (&prop.input.lo, &prop.input.hi);
    if lo.len() != net.input_len() || hi.len() != net.input_len() {
        return Err(GraphError::Data(format!(
            "input box has {} and {} bounds, the network has {} inputs",
            lo.len(),
            hi.len(),
            net.input_len()
        )));
    }
    if let Some(i) = (0..lo.len()).find(|&i| !(lo[i] <= hi[i] && lo[i].is_finite() && hi[i].is_finite())) {
        return Err(GraphError::Data(format!("input element {i}: [{}, {}] is not a finite interval", lo[i], hi[i])));
    }
    prop.unsafe_.check(net.output_len())
}

/// The slope alpha of a ReLU-like activation (ReLU: 0), or the error for any other.
fn relu_slope(net: &Network, k: usize, a: Activation) -> Result<f64, GraphError> {
    match a {
        Activation::Relu => Ok(0.0),
        Activation::LeakyRelu { alpha } if (0.0..=1.0).contains(&alpha) => Ok(alpha),
        _ => Err(GraphError::Invalid(format!(
            "MILP supports piecewise-linear networks only (node {} is {}{})",
            net.nodes[k].name,
            net.nodes[k].op.kind(),
            if matches!(a, Activation::LeakyRelu { .. }) { " with a slope outside [0, 1]" } else { "" }
        ))),
    }
}

/// The input elements of every output element of max-pooling node `k` (flat indices).
fn max_windows(net: &Network, k: usize) -> Vec<Vec<usize>> {
    let Op::MaxPool(p) = &net.nodes[k].op else { unreachable!("a max-pooling node") };
    let (s, o) = (&net.shapes[net.nodes[k].inputs[0]], &net.shapes[k + 1]);
    let (hw, ohw) = ([s[2], s[3]], [o[2], o[3]]);
    let (plane_in, plane_out) = (hw[0] * hw[1], ohw[0] * ohw[1]);
    let mut windows = vec![Vec::new(); s[0] * s[1] * plane_out];
    for plane in 0..s[0] * s[1] {
        for_each_window(p, hw, ohw, |out, inp| windows[plane * plane_out + out].push(plane * plane_in + inp));
    }
    windows
}

/// The window elements that can be the maximum: upper bound at least the largest lower bound.
fn candidates(window: &[usize], z: &Interval) -> Vec<usize> {
    let top = window.iter().map(|&i| z.lo[i]).fold(f64::NEG_INFINITY, f64::max);
    window.iter().copied().filter(|&i| z.hi[i] >= top).collect()
}

/// The network part of the MILP (no objective yet).
struct Encoding {
    pb: RowProblem,
    /// The column of every element of every value (value id, element).
    cols: Vec<Vec<Col>>,
    binaries: usize,
    /// Nonzeros of the affine rows (almost all of the matrix): sizes HiGHS's presolve.
    affine_nonzeros: usize,
}

fn finite(lo: f64, hi: f64, what: impl Fn() -> String) -> Result<(), GraphError> {
    if lo.is_finite() && hi.is_finite() && lo <= hi {
        Ok(())
    } else {
        Err(GraphError::Invalid(format!("MILP needs finite bounds: {} has [{lo}, {hi}]", what())))
    }
}

/// Sorts terms by column and adds up repeated columns (aliases can repeat one).
fn merge(mut terms: Vec<(Col, f64)>) -> Vec<(Col, f64)> {
    terms.sort_by_key(|t| t.0.index());
    let mut out: Vec<(Col, f64)> = Vec::with_capacity(terms.len());
    for (c, v) in terms {
        match out.last_mut() {
            Some(last) if last.0 == c => last.1 += v,
            _ => out.push((c, v)),
        }
    }
    out.retain(|t| t.1 != 0.0);
    out
}

fn check_bounds(net: &Network, bounds: &[Interval]) -> Result<(), GraphError> {
    let fits = |v: usize| bounds[v].lo.len() == net.value_len(v) && bounds[v].hi.len() == net.value_len(v);
    if bounds.len() != net.shapes.len() || !(0..bounds.len()).all(fits) {
        return Err(GraphError::Invalid(format!(
            "the intermediate bounds do not fit the network ({} values for {})",
            bounds.len(),
            net.shapes.len()
        )));
    }
    Ok(())
}

fn encode(net: &Network, bounds: &[Interval]) -> Result<Encoding, GraphError> {
    check_bounds(net, bounds)?;
    let mut pb = RowProblem::default();
    let mut cols: Vec<Vec<Col>> = Vec::with_capacity(net.shapes.len());
    let (mut binaries, mut affine_nonzeros) = (0, 0);
    let b0 = &bounds[0];
    let mut input = Vec::with_capacity(b0.lo.len());
    for i in 0..b0.lo.len() {
        finite(b0.lo[i], b0.hi[i], || format!("input element {i}"))?;
        input.push(pb.add_column(0.0, b0.lo[i]..=b0.hi[i]));
    }
    cols.push(input);
    for (k, node) in net.nodes.iter().enumerate() {
        let name = || format!("node {} ({})", node.name, node.op.kind());
        let (zv, yb) = (node.inputs[0], &bounds[k + 1]);
        let z = &bounds[zv];
        let y: Vec<Col> = match &node.op {
            Op::Reshape { .. } => cols[zv].clone(),
            Op::Activation(a) => {
                let alpha = relu_slope(net, k, *a)?;
                let mut y = Vec::with_capacity(z.lo.len());
                for (i, &x) in cols[zv].iter().enumerate() {
                    let (l, u) = (z.lo[i], z.hi[i]);
                    if l >= 0.0 || alpha == 1.0 {
                        y.push(x);
                        continue;
                    }
                    finite(l, u, || format!("{} element {i}", name()))?;
                    if u <= 0.0 {
                        let c = pb.add_column(0.0, alpha * l..=alpha * u);
                        if alpha != 0.0 {
                            pb.add_row(0.0..=0.0, [(c, 1.0), (x, -alpha)]);
                        }
                        y.push(c);
                        continue;
                    }
                    let c = pb.add_column(0.0, alpha * l..=u);
                    let a = pb.add_integer_column(0.0, 0.0..=1.0);
                    binaries += 1;
                    // y >= z and y >= alpha z.
                    pb.add_row(0.0.., [(c, 1.0), (x, -1.0)]);
                    if alpha != 0.0 {
                        pb.add_row(0.0.., [(c, 1.0), (x, -alpha)]);
                    }
                    // y <= z - (1 - alpha) l (1 - a).
                    let m = (1.0 - alpha) * l;
                    pb.add_row(..=-m, [(c, 1.0), (x, -1.0), (a, -m)]);
                    // y <= alpha z + (1 - alpha) u a.
                    pb.add_row(..=0.0, [(c, 1.0), (x, -alpha), (a, -(1.0 - alpha) * u)]);
                    y.push(c);
                }
                y
            }
            Op::MaxPool(_) => {
                let mut y = Vec::new();
                for w in &max_windows(net, k) {
                    let cand = candidates(w, z);
                    if cand.len() == 1 {
                        y.push(cols[zv][cand[0]]);
                        continue;
                    }
                    let top = cand.iter().map(|&i| z.hi[i]).fold(f64::NEG_INFINITY, f64::max);
                    for &i in &cand {
                        finite(z.lo[i], z.hi[i], || format!("{} input element {i}", name()))?;
                    }
                    let low = cand.iter().map(|&i| z.lo[i]).fold(f64::NEG_INFINITY, f64::max);
                    let c = pb.add_column(0.0, low..=top);
                    let mut pick = Vec::with_capacity(cand.len());
                    for &i in &cand {
                        let (x, a) = (cols[zv][i], pb.add_integer_column(0.0, 0.0..=1.0));
                        binaries += 1;
                        // y >= x_i and y <= x_i + (U - l_i)(1 - a_i).
                        let m = top - z.lo[i];
                        pb.add_row(0.0.., [(c, 1.0), (x, -1.0)]);
                        pb.add_row(..=m, [(c, 1.0), (x, -1.0), (a, m)]);
                        pick.push((a, 1.0));
                    }
                    pb.add_row(1.0..=1.0, pick);
                    y.push(c);
                }
                y
            }
            Op::Dense(_)
            | Op::Conv2d(_)
            | Op::Affine { .. }
            | Op::Add
            | Op::AvgPool(_)
            | Op::Pad { .. }
            | Op::Transpose { .. } => {
                // Linear: rows of the matrix from the adjoint on unit vectors, bias at zero.
                let out_len = net.value_len(k + 1);
                let in_lens: Vec<usize> = node.inputs.iter().map(|&v| net.value_len(v)).collect();
                let zeros: Vec<Vec<f64>> = in_lens.iter().map(|&l| vec![0.0; l]).collect();
                let zero_refs: Vec<&[f64]> = zeros.iter().map(|v| v.as_slice()).collect();
                let bias = net.eval_node_batch(k, &zero_refs, 1);
                let mut y = Vec::with_capacity(out_len);
                const CHUNK: usize = 128;
                for start in (0..out_len).step_by(CHUNK) {
                    let rows = CHUNK.min(out_len - start);
                    let mut gy = vec![0.0; rows * out_len];
                    for r in 0..rows {
                        gy[r * out_len + start + r] = 1.0;
                    }
                    let g = net
                        .linear_vjp(k, &gy, rows)
                        .ok_or_else(|| GraphError::Invalid(format!("MILP: {} has no linear encoding", name())))?;
                    for r in 0..rows {
                        let j = start + r;
                        let mut terms = Vec::new();
                        for (s, gs) in g.iter().enumerate() {
                            let len = in_lens[s];
                            for (i, &v) in gs[r * len..(r + 1) * len].iter().enumerate() {
                                if v != 0.0 {
                                    terms.push((cols[node.inputs[s]][i], v));
                                }
                            }
                        }
                        let terms = merge(terms);
                        let b = bias[j];
                        if terms.len() == 1 && terms[0].1 == 1.0 && b == 0.0 {
                            y.push(terms[0].0);
                            continue;
                        }
                        if terms.is_empty() {
                            y.push(pb.add_column(0.0, b..=b));
                            continue;
                        }
                        finite(yb.lo[j], yb.hi[j], || format!("{} element {j}", name()))?;
                        let c = pb.add_column(0.0, yb.lo[j]..=yb.hi[j]);
                        let mut row = vec![(c, 1.0)];
                        row.extend(terms.iter().map(|&(x, v)| (x, -v)));
                        affine_nonzeros += row.len();
                        pb.add_row(b..=b, row);
                        y.push(c);
                    }
                }
                y
            }
        };
        cols.push(y);
    }
    Ok(Encoding { pb, cols, binaries, affine_nonzeros })
}

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    /// Is the optimum <= 0? Stops at a clear violation, or once the sign is settled.
    Decide,
    /// The optimum to the gap.
    Minimize,
}

struct Solved {
    solve: ConjunctionSolve,
    /// The solver's input point, clipped to the box.
    x: Option<Vec<f64>>,
}

fn solve_conjunction(
    net: &Network,
    prop: &BoxProperty,
    bounds: &[Interval],
    enc: &Encoding,
    conj: &[Atom],
    opts: &MilpOptions,
    mode: Mode,
) -> Result<Solved, GraphError> {
    let start = Instant::now();
    let (lo, hi) = (&prop.input.lo, &prop.input.hi);
    let out = &bounds[net.output];
    // |c . y - d| <= scale over the box.
    let scale = conj
        .iter()
        .map(|a| {
            a.d.abs() + a.c.iter().enumerate().map(|(j, c)| c.abs() * out.lo[j].abs().max(out.hi[j].abs())).sum::<f64>()
        })
        .fold(0.0, f64::max);
    let tolerance = opts.margin * (1.0 + scale);
    let mut solve = ConjunctionSolve {
        status: String::new(),
        dual_bound: f64::NEG_INFINITY,
        primal: None,
        tolerance,
        verdict: Verdict::Unknown(String::new()),
        time_s: 0.0,
    };
    let finish = |mut solve: ConjunctionSolve, x| -> Result<Solved, GraphError> {
        solve.time_s = start.elapsed().as_secs_f64();
        Ok(Solved { solve, x })
    };
    let confirm = |x: &[f64]| -> Result<Option<Vec<f64>>, GraphError> {
        let y = net.forward(x, 1)?;
        Ok(conj.iter().all(|a| a.value(&y) <= 0.0).then_some(y))
    };
    if conj.is_empty() {
        // Holds everywhere.
        let x: Vec<f64> = lo.iter().zip(hi).map(|(l, h)| 0.5 * l + 0.5 * h).collect();
        let y = net.forward(&x, 1)?;
        solve.status = "trivial".into();
        solve.verdict = Verdict::Sat { x: x.clone(), y };
        return finish(solve, Some(x));
    }
    let time_limit = match opts.deadline {
        Some(d) => {
            let left = d.saturating_duration_since(Instant::now()).as_secs_f64();
            // HiGHS's first LP relaxation does not look at the clock either (also without
            // presolve): on eran mnist_relu_9_200 (0.44 M nonzeros) a 0.24 s limit ended after
            // 1.9 s, and with 5 us per nonzero as the least time, oval21 cifar_base_kw still
            // overran a 15 s timeout by 1.5 s. Less than that much time is no time.
            if left <= MIN_SECONDS_PER_NONZERO * enc.affine_nonzeros as f64 {
                solve.status = "no time left".into();
                solve.verdict = Verdict::Timeout;
                return finish(solve, None);
            }
            Some(left)
        }
        None => None,
    };
    // The objective t >= c_i . y - d_i.
    let mut pb = enc.pb.clone();
    let t = pb.add_column(1.0, f64::NEG_INFINITY..=f64::INFINITY);
    let y = &enc.cols[net.output];
    for a in conj {
        let mut row: Vec<(Col, f64)> =
            a.c.iter().zip(y).filter(|(c, _)| **c != 0.0).map(|(c, &col)| (col, *c)).collect();
        row = merge(row);
        row.push((t, -1.0));
        pb.add_row(..=a.d, row);
    }
    let mut model = pb.try_optimise(Sense::Minimise).map_err(|e| GraphError::Invalid(format!("HiGHS: {e:?}")))?;
    model.set_option("threads", 1);
    if let Some(l) = time_limit {
        model.set_option("time_limit", l);
        // HiGHS checks the time limit only between presolve's passes: on mnist-net_256x6
        // (1167 binaries, 0.54M nonzeros) presolve ran 8.3 s past a 0.5 s limit. Without
        // presolve the simplex honours the limit; keep presolve where it should fit in a
        // quarter of the time left (measured about 15 s per million nonzeros).
        if l < 4.0 * 15e-6 * enc.affine_nonzeros as f64 {
            model.set_option("presolve", "off");
        }
    }
    match mode {
        Mode::Decide => {
            // Stop at a solution with t < -tolerance (a clear violation). Discard every node
            // whose relaxation bound exceeds the tolerance (it cannot hold a violation); with
            // an incumbent in between, stop once the dual bound is half of it.
            model.set_option("objective_target", -tolerance);
            model.set_option("objective_bound", tolerance);
            model.set_option("mip_rel_gap", 0.5);
            model.set_option("mip_abs_gap", tolerance);
        }
        Mode::Minimize => {
            model.set_option("mip_rel_gap", 0.0);
            model.set_option("mip_abs_gap", opts.gap);
            model.set_option("primal_feasibility_tolerance", 1e-9);
            model.set_option("mip_feasibility_tolerance", 1e-9);
        }
    }
    let solved = match model.try_solve() {
        Ok(s) => s,
        Err(e) => {
            solve.status = format!("{e:?}");
            solve.verdict = Verdict::Unknown(format!("HiGHS failed ({e:?})"));
            return finish(solve, None);
        }
    };
    let status = solved.status();
    solve.status = format!("{status:?}");
    let has_solution = solved.primal_solution_status() == HighsSolutionStatus::Feasible;
    if has_solution {
        solve.primal = Some(solved.objective_value());
    }
    solve.dual_bound = if enc.binaries > 0 {
        solved.double_info_value(c"mip_dual_bound").unwrap_or(f64::NEG_INFINITY)
    } else if status == HighsModelStatus::Optimal {
        solved.objective_value()
    } else {
        f64::NEG_INFINITY
    };
    let x = has_solution.then(|| {
        let cols = solved.get_solution();
        let v = cols.columns();
        enc.cols[0].iter().enumerate().map(|(i, c)| v[c.index()].clamp(lo[i], hi[i])).collect::<Vec<f64>>()
    });
    drop(solved);
    // 1. A counterexample, only when lipcert's forward pass confirms it.
    if let Some(x) = &x {
        if let Some(y) = confirm(x)? {
            solve.verdict = Verdict::Sat { x: x.clone(), y };
            return finish(solve, Some(x.clone()));
        }
    }
    // 2. Unsat, only with a margin. Without a cutoff the model is always feasible in exact
    //    arithmetic, so "infeasible" is numerical trouble. In `Decide` mode the cutoff
    //    (`objective_bound` = tolerance) makes HiGHS discard every node whose relaxation bound
    //    exceeds the tolerance: "infeasible" there means that every node was discarded, which
    //    is the same claim as a dual bound above the tolerance.
    let proven = matches!(status, HighsModelStatus::Optimal | HighsModelStatus::ReachedTimeLimit)
        && solve.dual_bound.is_finite()
        && solve.dual_bound > tolerance;
    let cut_off = mode == Mode::Decide
        && matches!(status, HighsModelStatus::Infeasible | HighsModelStatus::ObjectiveBound)
        && solve.primal.is_none();
    solve.verdict = if proven || cut_off {
        Verdict::Unsat
    } else if status == HighsModelStatus::ReachedTimeLimit {
        Verdict::Timeout
    } else {
        Verdict::Unknown(match (status, solve.primal) {
            (HighsModelStatus::Infeasible, _) => "HiGHS reports the MILP infeasible (numerical trouble)".into(),
            (_, Some(p)) if p <= 0.0 => format!(
                "HiGHS's point (margin {p:.3e}) is not a counterexample by lipcert's forward pass (dual bound {:.3e})",
                solve.dual_bound
            ),
            _ => format!(
                "HiGHS status {status:?}: dual bound {:.3e} does not exceed the tolerance {tolerance:.3e}",
                solve.dual_bound
            ),
        })
    };
    finish(solve, x)
}
