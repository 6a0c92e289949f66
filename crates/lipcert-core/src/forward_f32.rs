//! Batched f32 inference for throughput (randomized smoothing, sampling). Analyses stay in
//! f64 (`Network::forward`); this path trades precision (f32 rounding, about 1e-6 relative
//! per operation) for speed.
//!
//! A [`PlanF32`] is compiled once from a [`Network`]: weights converted to f32, index tables
//! for pooling windows, padding and transposes precomputed.
//! Dense layers are one GEMM over the whole batch, convolutions im2col + one GEMM per chunk
//! of images (each image first copied into a zero-bordered, column-phase-split buffer, so
//! that every im2col row is a plain copy, also for strided convolutions). An activation whose
//! input is a dense or convolution output used nowhere else is fused into that node (applied
//! to each thread's block of rows right after its GEMM, while it is in cache, instead of two
//! more passes over memory). A reshape has no step: its value reads its input's buffer.
//! Buffers for every computed value are kept in the plan and reused across calls, so the hot
//! loop allocates nothing once the largest batch has been seen.

use crate::error::GraphError;
use crate::graph::{Activation, Network, Op};
use crate::kernels;
use faer::{Accum, MatMut, MatRef, Par};
use rayon::prelude::*;

/// Work (multiply-adds) above which one product uses all threads.
const PARALLEL_WORK: usize = 1 << 17;
/// Elementwise work is split across threads in chunks of this many values.
const ELEMENTWISE_CHUNK: usize = 1 << 15;
/// Target size (values) of one im2col matrix: it and the GEMM's packed blocks stay in L2.
const CONV_COLUMN_VALUES: usize = 1 << 15;

/// An activation in f32 (mirrors [`Activation`]).
#[derive(Clone, Copy, Debug)]
enum ActF32 {
    Relu,
    LeakyRelu(f32),
    Elu(f32),
    GeluErf,
    GeluTanh,
    Sigmoid,
    Tanh,
}

impl ActF32 {
    fn new(a: Activation) -> Self {
        match a {
            Activation::Relu => ActF32::Relu,
            Activation::LeakyRelu { alpha } => ActF32::LeakyRelu(alpha as f32),
            Activation::Elu { alpha } => ActF32::Elu(alpha as f32),
            Activation::Gelu { tanh_approx: false } => ActF32::GeluErf,
            Activation::Gelu { tanh_approx: true } => ActF32::GeluTanh,
            Activation::Sigmoid => ActF32::Sigmoid,
            Activation::Tanh => ActF32::Tanh,
        }
    }
}

/// Windows of a pooling node on one plane, as compressed rows: the input offsets of output
/// position `o` are `index[start[o]..start[o + 1]]`.
#[derive(Clone, Debug)]
struct Windows {
    start: Vec<u32>,
    index: Vec<u32>,
    in_len: usize,
    out_len: usize,
}

impl Windows {
    fn new(p: &crate::graph::Pool2d, hw: [usize; 2], ohw: [usize; 2]) -> Self {
        let out_len = ohw[0] * ohw[1];
        let mut lists = vec![Vec::new(); out_len];
        kernels::for_each_window(p, hw, ohw, |o, i| lists[o].push(i as u32));
        let mut start = vec![0u32];
        let mut index = vec![];
        for l in lists {
            index.extend(l);
            start.push(index.len() as u32);
        }
        Windows { start, index, in_len: hw[0] * hw[1], out_len }
    }
}

#[derive(Clone, Debug)]
enum Step {
    /// y = act(x W^T + b) on the last axis; `w` is `[out, in]`.
    Dense {
        w: Vec<f32>,
        b: Vec<f32>,
        in_f: usize,
        out_f: usize,
        act: Option<ActF32>,
    },
    Conv(ConvPlan),
    Affine {
        scale: Vec<f32>,
        shift: Vec<f32>,
    },
    Act(ActF32),
    Add,
    AvgPool {
        win: Windows,
        inv_div: Vec<f32>,
    },
    MaxPool {
        win: Windows,
    },
    /// Output element `index[i]` of each sample takes input element i; the rest is `value`.
    Pad {
        index: Vec<u32>,
        value: f32,
    },
    /// Output element i of each sample is input element `index[i]`.
    Gather {
        index: Vec<u32>,
    },
}

#[derive(Clone, Debug)]
struct ConvPlan {
    /// `[O, k]` row-major (k = C/groups * kh * kw).
    w: Vec<f32>,
    b: Vec<f32>,
    groups: usize,
    og: usize,
    k: usize,
    /// Output positions per image.
    p: usize,
    /// Elements per input image `[C, H, W]`.
    in_len: usize,
    geo: Im2col,
    /// Images per GEMM.
    chunk: usize,
    /// Fused activation of the output.
    act: Option<ActF32>,
}

/// Geometry of one convolution group, for im2col: row `(ci, ki, kj)` of the `[k, p]` column
/// matrix holds input `(ci, oy s + ki d - pad, ox s + kj d - pad)` at column `(oy, ox)`.
#[derive(Clone, Copy, Debug)]
struct Im2col {
    cg: usize,
    kernel: [usize; 2],
    hw: [usize; 2],
    ohw: [usize; 2],
    stride: [usize; 2],
    dilation: [usize; 2],
    /// Top and left padding.
    pad: [usize; 2],
    /// Plane size of the zero-bordered copy: every window of every output lies inside it.
    padded: [usize; 2],
    /// Each padded row is stored split by column phase modulo the column stride (phase q
    /// holds columns q, q + s, q + 2 s, ..., `phase_len` slots per phase), so that the inputs
    /// of one output row for one kernel column are contiguous.
    phase_len: usize,
}

impl Im2col {
    /// The geometry of one group of `c` on `[.., C, h, w]` inputs with `[oh, ow]` outputs.
    fn new(c: &crate::graph::Conv2d, hw: [usize; 2], ohw: [usize; 2]) -> Self {
        let (kernel, stride, dilation, pad) = (c.kernel, c.stride, c.dilation, [c.pads[0], c.pads[1]]);
        let side = |a: usize| {
            let reach = if ohw[a] == 0 { 0 } else { (ohw[a] - 1) * stride[a] + (kernel[a] - 1) * dilation[a] + 1 };
            reach.max(hw[a] + pad[a])
        };
        let padded = [side(0), side(1)];
        Im2col {
            cg: c.in_channels / c.groups,
            kernel,
            hw,
            ohw,
            stride,
            dilation,
            pad,
            padded,
            phase_len: padded[1].div_ceil(stride[1]),
        }
    }

    /// Values per stored padded row (all phases).
    fn row_len(&self) -> usize {
        self.stride[1] * self.phase_len
    }

    /// Length of the scratch that [`pad_image`] writes one image's group channels into.
    fn padded_len(&self) -> usize {
        self.cg * self.padded[0] * self.row_len()
    }
}

crate::multiversion! {
    /// Copies `img` (`[cg, h, w]`) into `padded` with zero borders, each row split by column
    /// phase (see [`Im2col::phase_len`]): input column i goes to padded column pl + i, which
    /// is slot (pl + i) / s of phase (pl + i) % s. Unit and 2 strides are a copy and a
    /// deinterleave per row.
    fn pad_image(geo: &Im2col, img: &[f32], padded: &mut [f32]) {
        let [h, w] = geo.hw;
        let hp = geo.padded[0];
        let [pt, pl] = geo.pad;
        let sx = geo.stride[1];
        let (row_len, phase_len) = (geo.row_len(), geo.phase_len);
        padded.fill(0.0);
        if h * w == 0 {
            return;
        }
        // Where input column r (< s) lands; columns r + s j follow it, one slot apart.
        let slot = |r: usize| ((pl + r) % sx) * phase_len + (pl + r) / sx;
        for (chan, plane) in img.chunks_exact(h * w).zip(padded.chunks_exact_mut(hp * row_len)) {
            for (src, dst) in chan.chunks_exact(w).zip(plane[pt * row_len..].chunks_exact_mut(row_len)) {
                match sx {
                    1 => dst[pl..pl + w].copy_from_slice(src),
                    2 => {
                        // The two phases are disjoint runs of `dst`.
                        let (a, b) = (slot(0), slot(1));
                        let (lo, hi) = dst.split_at_mut(a.max(b));
                        let (run_a, run_b) = if a < b { (&mut lo[a..], hi) } else { (hi, &mut lo[b..]) };
                        let pairs = src.chunks_exact(2);
                        if let [last] = pairs.remainder() {
                            run_a[w / 2] = *last;
                        }
                        for ((x, y), pair) in run_a.iter_mut().zip(run_b.iter_mut()).zip(pairs) {
                            *x = pair[0];
                            *y = pair[1];
                        }
                    }
                    _ => {
                        for r in 0..sx.min(w) {
                            let at = slot(r);
                            dst[at..].iter_mut().zip(src[r..].iter().step_by(sx)).for_each(|(d, &v)| *d = v);
                        }
                    }
                }
            }
        }
    }
}

/// `dst = src` for short rows: 8-value blocks (one vector move each under AVX2) instead of a
/// `memcpy` call per row.
#[inline(always)]
fn copy_short(dst: &mut [f32], src: &[f32]) {
    let mut d = dst.chunks_exact_mut(8);
    let mut s = src.chunks_exact(8);
    for (d8, s8) in (&mut d).zip(&mut s) {
        let s8: &[f32; 8] = s8.try_into().expect("8 values");
        d8.copy_from_slice(s8);
    }
    d.into_remainder().iter_mut().zip(s.remainder()).for_each(|(d, &v)| *d = v);
}

/// Rows of `ow` values: row `oy` of `dst` (rows back to back) is `src[start + oy * step..]`.
/// A compile-time `N = ow` makes each row a few vector moves with no per-row loop.
#[inline(always)]
fn copy_rows<const N: usize>(dst: &mut [f32], src: &[f32], start: usize, step: usize) {
    for (oy, d) in dst.chunks_exact_mut(N).enumerate() {
        let s: &[f32; N] = src[start + oy * step..][..N].try_into().expect("N values");
        d.copy_from_slice(s);
    }
}

crate::multiversion! {
    /// Writes the columns of one image's group channels, already padded and phase-split in
    /// `padded` (see [`pad_image`]), into `cols` (`k` rows of `cols_n`, this image's block
    /// starting at column `col0`). Every output row of every kernel position is then one
    /// contiguous copy: no bounds tests, no strided loads.
    fn im2col(geo: &Im2col, padded: &[f32], cols: &mut [f32], cols_n: usize, col0: usize) {
        let [kh, kw] = geo.kernel;
        let hp = geo.padded[0];
        let [oh, ow] = geo.ohw;
        let [sy, sx] = geo.stride;
        let [dy, dx] = geo.dilation;
        let (row_len, phase_len) = (geo.row_len(), geo.phase_len);
        for ci in 0..geo.cg {
            let plane = &padded[ci * hp * row_len..(ci + 1) * hp * row_len];
            for ki in 0..kh {
                for kj in 0..kw {
                    let r = (ci * kh + ki) * kw + kj;
                    let row = &mut cols[r * cols_n + col0..][..oh * ow];
                    let start = ki * dy * row_len + ((kj * dx) % sx) * phase_len + (kj * dx) / sx;
                    let step = sy * row_len;
                    match ow {
                        4 => copy_rows::<4>(row, plane, start, step),
                        8 => copy_rows::<8>(row, plane, start, step),
                        16 => copy_rows::<16>(row, plane, start, step),
                        32 => copy_rows::<32>(row, plane, start, step),
                        _ => {
                            for (oy, dst) in row.chunks_exact_mut(ow).enumerate() {
                                copy_short(dst, &plane[start + oy * step..][..ow]);
                            }
                        }
                    }
                }
            }
        }
    }
}

#[derive(Clone, Debug)]
struct PlanNode {
    step: Step,
    inputs: Vec<usize>,
    /// The value it writes (a fused node writes its activation's value).
    output: usize,
    /// Per-sample length of the output value.
    out_len: usize,
    /// Per-sample length of the first input.
    in_len: usize,
}

/// A network compiled for f32 batched inference. See the module documentation.
#[derive(Clone, Debug)]
pub struct PlanF32 {
    nodes: Vec<PlanNode>,
    lens: Vec<usize>,
    output: usize,
    /// One buffer per value (value 0, the input, is read from the caller's slice).
    bufs: Vec<Vec<f32>>,
    /// Per worker: im2col scratch.
    scratch: Vec<Vec<f32>>,
    capacity: usize,
}

fn f32s(v: &[f64]) -> Vec<f32> {
    v.iter().map(|&x| x as f32).collect()
}

fn u32s(v: Vec<usize>) -> Vec<u32> {
    v.into_iter().map(|i| u32::try_from(i).expect("per-sample sizes fit in u32")).collect()
}

impl PlanF32 {
    /// Compiles `net`. Every operator of the IR is supported (the match is exhaustive, so a
    /// new operator does not compile until it has an f32 rule here).
    pub fn new(net: &Network) -> Self {
        let lens: Vec<usize> = net.shapes.iter().map(|s| s.iter().product()).collect();
        // A reshape is the same data under a new shape: its value reads its input's buffer
        // (`source`), and it has no step.
        let mut source: Vec<usize> = (0..lens.len()).collect();
        for (k, node) in net.nodes.iter().enumerate() {
            if let Op::Reshape { .. } = node.op {
                source[k + 1] = source[node.inputs[0]];
            }
        }
        // Readers of each buffer (the network output counts as one).
        let mut uses = vec![0usize; lens.len()];
        uses[source[net.output]] += 1;
        for node in net.nodes.iter().filter(|n| !matches!(n.op, Op::Reshape { .. })) {
            node.inputs.iter().for_each(|&v| uses[source[v]] += 1);
        }
        let mut nodes: Vec<PlanNode> = Vec::with_capacity(net.nodes.len());
        for (k, node) in net.nodes.iter().enumerate() {
            let in_shape = &net.shapes[node.inputs[0]];
            let out_shape = &net.shapes[k + 1];
            let step = match &node.op {
                Op::Dense(d) => Step::Dense {
                    w: f32s(&d.weight),
                    b: f32s(&d.bias),
                    in_f: d.in_features,
                    out_f: d.out_features,
                    act: None,
                },
                Op::Conv2d(c) => {
                    let (h, w) = (in_shape[2], in_shape[3]);
                    let (oh, ow) = (out_shape[2], out_shape[3]);
                    let cg = c.in_channels / c.groups;
                    let [kh, kw] = c.kernel;
                    let kk = cg * kh * kw;
                    let p = oh * ow;
                    let in_len = c.in_channels * h * w;
                    let og = c.out_channels / c.groups;
                    let geo = Im2col::new(c, [h, w], [oh, ow]);
                    Step::Conv(ConvPlan {
                        w: f32s(&c.weight),
                        b: f32s(&c.bias),
                        groups: c.groups,
                        og,
                        k: kk,
                        p,
                        in_len,
                        geo,
                        chunk: (CONV_COLUMN_VALUES / (kk * p).max(1)).max(1),
                        act: None,
                    })
                }
                Op::Affine { scale, shift } => Step::Affine { scale: f32s(scale), shift: f32s(shift) },
                Op::Activation(a) => Step::Act(ActF32::new(*a)),
                Op::Add => Step::Add,
                Op::AvgPool(p) => {
                    let win = Windows::new(p, [in_shape[2], in_shape[3]], [out_shape[2], out_shape[3]]);
                    let inv_div =
                        kernels::avgpool_divisors(p, [in_shape[2], in_shape[3]], [out_shape[2], out_shape[3]])
                            .iter()
                            .map(|d| (1.0 / d) as f32)
                            .collect();
                    Step::AvgPool { win, inv_div }
                }
                Op::MaxPool(p) => {
                    Step::MaxPool { win: Windows::new(p, [in_shape[2], in_shape[3]], [out_shape[2], out_shape[3]]) }
                }
                Op::Pad { pads, value } => {
                    Step::Pad { index: u32s(kernels::pad_scatter_index(in_shape, pads)), value: *value as f32 }
                }
                Op::Reshape { .. } => continue,
                Op::Transpose { perm } => Step::Gather { index: u32s(kernels::transpose_gather_index(in_shape, perm)) },
            };
            if let (Step::Act(f), Some(prev)) = (&step, nodes.last_mut()) {
                if fusable(prev, source[node.inputs[0]], &uses) {
                    prev.fuse(*f, k + 1, lens[k + 1]);
                    continue;
                }
            }
            nodes.push(PlanNode {
                step,
                inputs: node.inputs.iter().map(|&v| source[v]).collect(),
                output: k + 1,
                out_len: lens[k + 1],
                in_len: lens[node.inputs[0]],
            });
        }
        let threads = rayon::current_num_threads().max(1);
        PlanF32 {
            nodes,
            bufs: vec![Vec::new(); lens.len()],
            lens,
            output: source[net.output],
            scratch: vec![Vec::new(); threads],
            capacity: 0,
        }
    }

    pub fn input_len(&self) -> usize {
        self.lens[0]
    }

    pub fn output_len(&self) -> usize {
        self.lens[self.output]
    }

    /// Grows the buffers to hold batches of `n` (the only allocation; later calls with at
    /// most `n` samples allocate nothing).
    pub fn reserve(&mut self, n: usize) {
        if n <= self.capacity {
            return;
        }
        for node in &self.nodes {
            self.bufs[node.output].resize(n * self.lens[node.output], 0.0);
        }
        let workers = self.scratch.len();
        for node in &self.nodes {
            if let Step::Conv(c) = &node.step {
                let images_per_worker = n.div_ceil(workers).max(1) * (node.in_len / c.in_len).max(1);
                let cols = c.chunk.min(images_per_worker) * c.p;
                // im2col matrix, the GEMM result of one group and one padded image.
                let need = c.k * cols + c.og * cols + c.geo.padded_len();
                for s in &mut self.scratch {
                    if s.len() < need {
                        s.resize(need, 0.0);
                    }
                }
            }
        }
        self.capacity = n;
    }

    /// Forward pass of `n` samples (`x` is `[n, input_len]`); returns `[n, output_len]`,
    /// a view into the plan's buffers valid until the next call.
    pub fn forward(&mut self, x: &[f32], n: usize) -> Result<&[f32], GraphError> {
        let len = self.lens[0];
        if x.len() != n * len {
            return Err(GraphError::Data(format!(
                "input batch has {} values, expected {n} samples x {len} elements",
                x.len()
            )));
        }
        self.reserve(n);
        if self.output == 0 {
            let out = &mut self.bufs[0];
            out.clear();
            out.extend_from_slice(x);
            return Ok(&self.bufs[0][..]);
        }
        let PlanF32 { nodes, lens, bufs, scratch, .. } = self;
        for node in nodes.iter() {
            let out = node.output;
            let mut y = std::mem::take(&mut bufs[out]);
            {
                let input = |v: usize| -> &[f32] {
                    if v == 0 {
                        x
                    } else {
                        &bufs[v][..n * lens[v]]
                    }
                };
                let a = input(node.inputs[0]);
                let y = &mut y[..n * node.out_len];
                run_step(node, a, node.inputs.get(1).map(|&v| input(v)), y, n, scratch);
            }
            bufs[out] = y;
        }
        Ok(&self.bufs[self.output][..n * self.lens[self.output]])
    }
}

/// Whether an activation reading `value` can be fused into `prev`: `prev` is a dense or
/// convolution node without a fused activation that writes `value`, read only by the activation.
fn fusable(prev: &PlanNode, value: usize, uses: &[usize]) -> bool {
    let free = match &prev.step {
        Step::Dense { act, .. } => act.is_none(),
        Step::Conv(c) => c.act.is_none(),
        _ => false,
    };
    free && prev.output == value && uses[value] == 1
}

impl PlanNode {
    fn fuse(&mut self, f: ActF32, output: usize, out_len: usize) {
        match &mut self.step {
            Step::Dense { act, .. } => *act = Some(f),
            Step::Conv(c) => c.act = Some(f),
            _ => unreachable!("checked by fusable"),
        }
        self.output = output;
        self.out_len = out_len;
    }
}

fn par_for(work: usize) -> Par {
    if work >= PARALLEL_WORK && rayon::current_num_threads() > 1 {
        Par::rayon(0)
    } else {
        Par::Seq
    }
}

/// dst[m x n] += a[m x k] * b^T where b is stored `[n, k]` (tb) or b[k x n] (!tb); row-major.
#[allow(clippy::too_many_arguments)]
fn gemm(dst: &mut [f32], a: &[f32], b: &[f32], tb: bool, (m, k, n): (usize, usize, usize), accumulate: bool, par: Par) {
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            dst.fill(0.0);
        }
        return;
    }
    let a = MatRef::from_row_major_slice(a, m, k);
    let b = if tb { MatRef::from_row_major_slice(b, n, k).transpose() } else { MatRef::from_row_major_slice(b, k, n) };
    let dst = MatMut::from_row_major_slice_mut(dst, m, n);
    let accum = if accumulate { Accum::Add } else { Accum::Replace };
    faer::linalg::matmul::matmul(dst, accum, a, b, 1.0f32, par);
}

/// `y = f(a)` (or `y = f(y)` for `a = None`) in one pass.
fn map_into<F: Fn(f32) -> f32 + Sync>(a: Option<&[f32]>, y: &mut [f32], par: bool, f: F) {
    let one = |(y, a): (&mut [f32], Option<&[f32]>)| match a {
        Some(a) => y.iter_mut().zip(a).for_each(|(d, &v)| *d = f(v)),
        None => y.iter_mut().for_each(|v| *v = f(*v)),
    };
    if par && y.len() > 2 * ELEMENTWISE_CHUNK && rayon::current_num_threads() > 1 {
        match a {
            Some(a) => y
                .par_chunks_mut(ELEMENTWISE_CHUNK)
                .zip(a.par_chunks(ELEMENTWISE_CHUNK))
                .for_each(|(y, a)| one((y, Some(a)))),
            None => y.par_chunks_mut(ELEMENTWISE_CHUNK).for_each(|y| one((y, None))),
        }
    } else {
        one((y, a));
    }
}

fn sigmoid(x: f32) -> f32 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

/// `y = f(a)` elementwise (`a = None`: in place), split across threads when `par`.
fn activation(f: ActF32, a: Option<&[f32]>, y: &mut [f32], par: bool) {
    const SQRT_2_OVER_PI: f32 = 0.797_884_6;
    match f {
        ActF32::Relu => map_into(a, y, par, |v| v.max(0.0)),
        ActF32::LeakyRelu(alpha) => map_into(a, y, par, move |v| if v >= 0.0 { v } else { alpha * v }),
        ActF32::Elu(alpha) => map_into(a, y, par, move |v| if v > 0.0 { v } else { alpha * v.exp_m1() }),
        ActF32::GeluErf => map_into(a, y, par, |v| 0.5 * v * libm::erfcf(-v * std::f32::consts::FRAC_1_SQRT_2)),
        ActF32::GeluTanh => {
            map_into(a, y, par, |v| 0.5 * v * (1.0 + (SQRT_2_OVER_PI * (v + 0.044715 * v * v * v)).tanh()))
        }
        ActF32::Sigmoid => map_into(a, y, par, sigmoid),
        ActF32::Tanh => map_into(a, y, par, f32::tanh),
    }
}

fn run_step(node: &PlanNode, a: &[f32], b: Option<&[f32]>, y: &mut [f32], n: usize, scratch: &mut [Vec<f32>]) {
    match &node.step {
        Step::Dense { w, b: bias, in_f, out_f, act } => {
            let rows = a.len() / in_f;
            // One block of rows: the product, then bias and activation while it is in cache.
            let block = |y: &mut [f32], a: &[f32], par: Par| {
                gemm(y, a, w, true, (a.len() / in_f, *in_f, *out_f), false, par);
                for row in y.chunks_exact_mut(*out_f) {
                    row.iter_mut().zip(bias).for_each(|(v, b)| *v += b);
                }
                if let Some(f) = act {
                    activation(*f, None, y, false);
                }
            };
            let threads = rayon::current_num_threads();
            if threads > 1 && rows >= 16 * threads && rows * in_f * out_f >= PARALLEL_WORK {
                // Each thread multiplies its own block of rows (no synchronization inside the GEMM).
                let per = rows.div_ceil(threads);
                y.par_chunks_mut(per * out_f).zip(a.par_chunks(per * in_f)).for_each(|(y, a)| block(y, a, Par::Seq));
            } else {
                block(y, a, par_for(rows * in_f * out_f));
            }
        }
        Step::Conv(c) => conv(c, a, y, n * (node.in_len / c.in_len), scratch),
        Step::Affine { scale, shift } => {
            for (dst, src) in y.chunks_exact_mut(scale.len()).zip(a.chunks_exact(scale.len())) {
                for (((d, s), m), t) in dst.iter_mut().zip(src).zip(scale).zip(shift) {
                    *d = s * m + t;
                }
            }
        }
        Step::Act(f) => activation(*f, Some(a), y, true),
        Step::Add => {
            let b = b.expect("Add has two inputs");
            for ((d, s), t) in y.iter_mut().zip(a).zip(b) {
                *d = s + t;
            }
        }
        Step::AvgPool { win, inv_div } => {
            let planes = y.len() / win.out_len;
            let one = |(out, plane): (&mut [f32], &[f32])| {
                for (o, v) in out.iter_mut().enumerate() {
                    let idx = &win.index[win.start[o] as usize..win.start[o + 1] as usize];
                    *v = idx.iter().map(|&i| plane[i as usize]).sum::<f32>() * inv_div[o];
                }
            };
            if planes * win.index.len() > ELEMENTWISE_CHUNK {
                y.par_chunks_mut(win.out_len).zip(a.par_chunks(win.in_len)).for_each(one);
            } else {
                y.chunks_mut(win.out_len).zip(a.chunks(win.in_len)).for_each(one);
            }
        }
        Step::MaxPool { win } => {
            let planes = y.len() / win.out_len;
            let one = |(out, plane): (&mut [f32], &[f32])| {
                for (o, v) in out.iter_mut().enumerate() {
                    let idx = &win.index[win.start[o] as usize..win.start[o + 1] as usize];
                    // NaN propagates (as in the f64 forward).
                    *v = idx.iter().fold(f32::NEG_INFINITY, |m, &i| {
                        let x = plane[i as usize];
                        if x > m || x.is_nan() {
                            x
                        } else {
                            m
                        }
                    });
                }
            };
            if planes * win.index.len() > ELEMENTWISE_CHUNK {
                y.par_chunks_mut(win.out_len).zip(a.par_chunks(win.in_len)).for_each(one);
            } else {
                y.chunks_mut(win.out_len).zip(a.chunks(win.in_len)).for_each(one);
            }
        }
        Step::Pad { index, value } => {
            y.fill(*value);
            for (dst, src) in y.chunks_exact_mut(node.out_len).zip(a.chunks_exact(node.in_len)) {
                for (&i, &v) in index.iter().zip(src) {
                    dst[i as usize] = v;
                }
            }
        }
        Step::Gather { index } => {
            for (dst, src) in y.chunks_exact_mut(node.out_len).zip(a.chunks_exact(node.in_len)) {
                for (d, &i) in dst.iter_mut().zip(index) {
                    *d = src[i as usize];
                }
            }
        }
    }
}

/// Convolution of `images` images: workers take contiguous ranges of images; each processes
/// its range in chunks of `c.chunk` images with one GEMM per group and chunk.
fn conv(c: &ConvPlan, x: &[f32], y: &mut [f32], images: usize, scratch: &mut [Vec<f32>]) {
    let out_len = c.og * c.groups * c.p;
    let workers = scratch.len().min(images).max(1);
    let per = images.div_ceil(workers);
    let range = |x: &[f32], y: &mut [f32], s: &mut [f32], par: Par| {
        let count = y.len() / out_len;
        let mut first = 0;
        while first < count {
            let cb = c.chunk.min(count - first);
            let cols_n = cb * c.p;
            let (cols, rest) = s.split_at_mut(c.k * cols_n);
            let (tmp, rest) = rest.split_at_mut(c.og * cols_n);
            let padded = &mut rest[..c.geo.padded_len()];
            let group_len = c.in_len / c.groups;
            for g in 0..c.groups {
                for i in 0..cb {
                    let img = &x[(first + i) * c.in_len + g * group_len..][..group_len];
                    pad_image(&c.geo, img, padded);
                    im2col(&c.geo, padded, cols, cols_n, i * c.p);
                }
                let w_g = &c.w[g * c.og * c.k..(g + 1) * c.og * c.k];
                gemm(tmp, w_g, cols, false, (c.og, c.k, cols_n), false, par);
                for o in 0..c.og {
                    let bias = c.b[g * c.og + o];
                    for i in 0..cb {
                        let src = &tmp[o * cols_n + i * c.p..][..c.p];
                        let dst = &mut y[((first + i) * c.groups * c.og + g * c.og + o) * c.p..][..c.p];
                        for (d, s) in dst.iter_mut().zip(src) {
                            *d = s + bias;
                        }
                        if let Some(f) = c.act {
                            activation(f, None, dst, false);
                        }
                    }
                }
            }
            first += cb;
        }
    };
    if workers == 1 {
        let work = c.og * c.k * c.p * c.groups * images.min(c.chunk);
        range(x, y, &mut scratch[0], par_for(work));
    } else {
        y.par_chunks_mut(per * out_len)
            .zip(x.par_chunks(per * c.in_len))
            .zip(scratch.par_iter_mut())
            .for_each(|((y, x), s)| range(x, y, s, Par::Seq));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::random::random_network;
    use crate::Rng;

    fn max_scaled_error(a: &[f32], b: &[f64], m: usize) -> f64 {
        a.chunks(m)
            .zip(b.chunks(m))
            .map(|(x, y)| {
                let scale = y.iter().fold(1.0f64, |s, v| s.max(v.abs()));
                x.iter().zip(y).map(|(&p, &q)| (p as f64 - q).abs()).fold(0.0, f64::max) / scale
            })
            .fold(0.0, f64::max)
    }

    /// (batch, scaled error of the f32 plan against the f64 forward) on random inputs in
    /// [-1, 1] (exact in f32), one per batch size.
    fn plan_errors(net: &Network, rng: &mut Rng, batches: &[usize]) -> Vec<(usize, f64)> {
        let mut plan = PlanF32::new(net);
        batches
            .iter()
            .map(|&n| {
                let x: Vec<f64> = (0..n * net.input_len()).map(|_| rng.range(-1.0, 1.0) as f32 as f64).collect();
                let xf: Vec<f32> = x.iter().map(|&v| v as f32).collect();
                let want = net.forward(&x, n).unwrap();
                let got = plan.forward(&xf, n).unwrap().to_vec();
                (n, max_scaled_error(&got, &want, net.output_len()))
            })
            .collect()
    }

    #[test]
    fn f32_plan_matches_f64_forward_on_random_networks() {
        let mut rng = Rng::new(7);
        for case in 0..40 {
            let net = random_network(&mut rng);
            for (n, err) in plan_errors(&net, &mut rng, &[1, 3, 17]) {
                assert!(err < 1e-4, "case {case}, batch {n}: scaled error {err}");
            }
        }
    }

    /// Every convolution geometry the im2col path distinguishes: strides 1-3 and dilations 1-2
    /// on both axes, asymmetric padding up to 2, kernels 1-4, groups, batches that span
    /// several GEMM chunks; against the f64 forward.
    #[test]
    fn f32_convolutions_match_f64_over_strides_dilations_and_padding() {
        use crate::graph::{Conv2d, NetworkBuilder};
        let mut rng = Rng::new(11);
        for case in 0..150 {
            let (groups, cg, og) = (1 + rng.below(2), 1 + rng.below(3), 1 + rng.below(4));
            let kernel = [1 + rng.below(4), 1 + rng.below(4)];
            let (h, w) = (kernel[0] * 2 + rng.below(9), kernel[1] * 2 + rng.below(9));
            let mut conv = Conv2d {
                weight: rng.normals(groups * og * cg * kernel[0] * kernel[1], 0.5),
                bias: rng.normals(groups * og, 0.3),
                out_channels: groups * og,
                in_channels: groups * cg,
                kernel,
                stride: [1 + rng.below(3), 1 + rng.below(3)],
                pads: [rng.below(3), rng.below(3), rng.below(3), rng.below(3)],
                dilation: [1 + rng.below(2), 1 + rng.below(2)],
                groups,
            };
            // The first cases give output rows of the widths im2col copies with fixed-size
            // moves (4, 8, 16, 32), with column stride 1 and 2.
            let w = if case < 8 {
                let sx = 1 + case / 4;
                (conv.kernel, conv.stride, conv.dilation, conv.pads) = ([3, 3], [1, sx], [1, 1], [1, 1, 1, 1]);
                conv.weight = rng.normals(groups * og * cg * 9, 0.5);
                [4, 8, 16, 32][case % 4] * sx
            } else {
                w
            };
            let mut b = NetworkBuilder::new("x", vec![1, groups * cg, h, w]);
            let y = b.push("conv", Op::Conv2d(conv.clone()), &[0]).unwrap();
            let net = b.finish(y, "y").unwrap();
            for (n, err) in plan_errors(&net, &mut rng, &[1, 2, 300]) {
                assert!(err < 1e-5, "case {case} ({conv:?} on {h}x{w}), batch {n}: scaled error {err}");
            }
        }
    }

    #[test]
    fn buffers_are_reused_and_batches_shrink_and_grow() {
        let mut rng = Rng::new(3);
        let net = random_network(&mut rng);
        let mut plan = PlanF32::new(&net);
        let x: Vec<f32> = (0..40 * net.input_len()).map(|_| rng.range(-1.0, 1.0) as f32).collect();
        let big = plan.forward(&x, 40).unwrap().to_vec();
        let ptr = plan.bufs[plan.output].as_ptr();
        let small = plan.forward(&x[..5 * net.input_len()], 5).unwrap().to_vec();
        assert_eq!(ptr, plan.bufs[plan.output].as_ptr(), "no reallocation for a smaller batch");
        assert_eq!(&big[..small.len()], &small[..]);
        assert!(plan.forward(&x[..7], 1).is_err());
    }
}
