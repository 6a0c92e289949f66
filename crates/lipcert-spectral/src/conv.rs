//! Spectral norm of a 2-D convolution layer (as a linear map on C x H x W inputs), as a
//! certified bracket.
//!
//! - Circular padding, stride 1: the operator is block-diagonalized by the 2-D DFT; its
//!   singular values are those of the per-frequency blocks
//!   D(u, v) = sum_{a,b} K[:, :, a, b] exp(-2 pi i (u a / H + v b / W))  (c_out x c_in, complex),
//!   so the norm is max over (u, v) of sigma_1(D(u, v)) (thesis section 3.3, Sedghi et al.).
//!   Each block is handled as its real embedding [[Re D, -Im D], [Im D, Re D]], which has the
//!   same singular values, by the dense methods; D(-u, -v) = conj D(u, v) halves the work.
//! - Zero padding: a zero-padded convolution on H x W with pads <= k - 1 equals a restriction of
//!   the circular convolution on the larger grid (H + max(p_top, p_bottom)) x
//!   (W + max(p_left, p_right)) to zero-extended inputs and to the output window, so the
//!   circular norm on that grid is an upper bound (no wrap-around reaches a nonzero input).
//!   The plain circular value on H x W is *not* an upper bound for zero padding.
//! - Stride s: the strided output is a subset of the stride-1 output, so the stride-1 norm is an
//!   upper bound.
//! - Lower bounds: ||W x|| / ||x|| of the real operator (with its padding and stride), certified
//!   as in dense.rs, for x built from the top singular vector of the best block (a plane wave)
//!   and refined by power iteration on the real operator.

use crate::dense::{self, Bracket, Method, Options};
use faer::Mat;
use lipcert_core::kernels::{conv_backward, conv_forward};
use lipcert_core::rounding::{down, gamma, up, U};
use lipcert_core::{Conv2d, Rng};
use rayon::prelude::*;
use std::f64::consts::TAU;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Padding {
    Circular,
    /// Zero padding: top, left, bottom, right (each at most kernel - 1).
    Zeros([usize; 4]),
}

/// A convolution layer as a linear operator (no bias).
#[derive(Clone, Debug)]
pub struct ConvOperator {
    /// [c_out, c_in, kh, kw] in C order.
    pub kernel: Vec<f64>,
    pub c_out: usize,
    pub c_in: usize,
    pub kh: usize,
    pub kw: usize,
    /// Input height and width.
    pub h: usize,
    pub w: usize,
    pub stride: [usize; 2],
    pub padding: Padding,
}

impl ConvOperator {
    pub fn validate(&self) -> Result<(), String> {
        if self.kernel.len() != self.c_out * self.c_in * self.kh * self.kw {
            return Err("kernel size does not match its shape".into());
        }
        if [self.c_out, self.c_in, self.kh, self.kw, self.h, self.w].contains(&0) || self.stride.contains(&0) {
            return Err("every dimension and the stride must be positive".into());
        }
        if self.kernel.iter().any(|v| !v.is_finite()) {
            return Err("the kernel holds NaN or infinite values".into());
        }
        match self.padding {
            Padding::Circular if self.kh > self.h || self.kw > self.w => {
                Err(format!("a {}x{} kernel is larger than the {}x{} input", self.kh, self.kw, self.h, self.w))
            }
            Padding::Zeros(p) if p[0].max(p[2]) >= self.kh || p[1].max(p[3]) >= self.kw => {
                Err(format!("zero pads {p:?} must be smaller than the kernel {}x{}", self.kh, self.kw))
            }
            Padding::Zeros(p) if self.h + p[0] + p[2] < self.kh || self.w + p[1] + p[3] < self.kw => {
                Err("the kernel is larger than the padded input".into())
            }
            _ => Ok(()),
        }
    }

    /// Output height and width.
    pub fn output_size(&self) -> [usize; 2] {
        let (ph, pw) = match self.padding {
            Padding::Circular => (self.h, self.w),
            Padding::Zeros(p) => (self.h + p[0] + p[2] - self.kh + 1, self.w + p[1] + p[3] - self.kw + 1),
        };
        [ph.div_ceil(self.stride[0]), pw.div_ceil(self.stride[1])]
    }

    fn as_conv2d(&self, pads: [usize; 4]) -> Conv2d {
        Conv2d {
            weight: self.kernel.clone(),
            bias: vec![0.0; self.c_out],
            out_channels: self.c_out,
            in_channels: self.c_in,
            kernel: [self.kh, self.kw],
            stride: self.stride,
            pads,
            dilation: [1, 1],
            groups: 1,
        }
    }

    fn k(&self, o: usize, c: usize, a: usize, b: usize) -> f64 {
        self.kernel[((o * self.c_in + c) * self.kh + a) * self.kw + b]
    }

    /// y = W x for the real operator (x is [c_in, h, w]).
    pub fn apply(&self, x: &[f64]) -> Vec<f64> {
        match self.padding {
            Padding::Zeros(p) => {
                let [oh, ow] = self.output_size();
                conv_forward(&self.as_conv2d(p), x, 1, [self.h, self.w], [oh, ow])
            }
            Padding::Circular => self.circular(x, false),
        }
    }

    /// x = W^T y.
    pub fn apply_adjoint(&self, y: &[f64]) -> Vec<f64> {
        match self.padding {
            Padding::Zeros(p) => {
                let [oh, ow] = self.output_size();
                conv_backward(&self.as_conv2d(p), y, 1, [self.h, self.w], [oh, ow])
            }
            Padding::Circular => self.circular(y, true),
        }
    }

    /// Circular convolution (output (i, j) reads input ((i s + a) mod H, (j s + b) mod W)), or
    /// its adjoint.
    fn circular(&self, v: &[f64], adjoint: bool) -> Vec<f64> {
        let [oh, ow] = self.output_size();
        let (h, w) = (self.h, self.w);
        let (sy, sx) = (self.stride[0], self.stride[1]);
        if !adjoint {
            let mut y = vec![0.0; self.c_out * oh * ow];
            y.par_chunks_mut(oh * ow).enumerate().for_each(|(o, yo)| {
                for c in 0..self.c_in {
                    let xc = &v[c * h * w..(c + 1) * h * w];
                    for a in 0..self.kh {
                        for b in 0..self.kw {
                            let k = self.k(o, c, a, b);
                            for i in 0..oh {
                                let row = &xc[((i * sy + a) % h) * w..][..w];
                                for j in 0..ow {
                                    yo[i * ow + j] += k * row[(j * sx + b) % w];
                                }
                            }
                        }
                    }
                }
            });
            y
        } else {
            let mut x = vec![0.0; self.c_in * h * w];
            x.par_chunks_mut(h * w).enumerate().for_each(|(c, xc)| {
                for o in 0..self.c_out {
                    let yo = &v[o * oh * ow..(o + 1) * oh * ow];
                    for a in 0..self.kh {
                        for b in 0..self.kw {
                            let k = self.k(o, c, a, b);
                            for i in 0..oh {
                                let base = ((i * sy + a) % h) * w;
                                for j in 0..ow {
                                    xc[base + (j * sx + b) % w] += k * yo[i * ow + j];
                                }
                            }
                        }
                    }
                }
            });
            x
        }
    }

    /// sum over the taps of |K[o, c, :, :]|.
    fn abs_sum(&self, o: usize, c: usize) -> f64 {
        let start = (o * self.c_in + c) * self.kh * self.kw;
        self.kernel[start..start + self.kh * self.kw].iter().map(|v| v.abs()).sum()
    }

    /// Upper bound on ||W||_2 of the real operator, entrywise: sqrt(||W||_1 ||W||_inf) of |W|.
    /// Used to bound the rounding error of a computed product W x.
    fn abs_norm_bound(&self) -> f64 {
        let max_row =
            (0..self.c_out).map(|o| (0..self.c_in).map(|c| self.abs_sum(o, c)).sum::<f64>()).fold(0.0, f64::max);
        let max_col =
            (0..self.c_in).map(|c| (0..self.c_out).map(|o| self.abs_sum(o, c)).sum::<f64>()).fold(0.0, f64::max);
        up((max_col * max_row).sqrt() * (1.0 + gamma(self.c_in * self.c_out * self.kh * self.kw + 4)))
    }

    /// Certified lower bound ||W x|| / ||x|| for a nonzero x.
    pub fn certified_lower(&self, x: &[f64]) -> f64 {
        let xn2: f64 = x.iter().map(|v| v * v).sum();
        if xn2 == 0.0 || !xn2.is_finite() {
            return 0.0;
        }
        let y = self.apply(x);
        let yn = y.iter().map(|v| v * v).sum::<f64>().sqrt();
        let x_up = up(xn2.sqrt() * (1.0 + gamma(x.len() + 2)));
        let y_low = down(yn * (1.0 - gamma(y.len() + 2)));
        let err = up(gamma(self.c_in * self.kh * self.kw + 2) * self.abs_norm_bound() * x_up);
        down((y_low - err).max(0.0) / x_up)
    }

    /// Power iteration on W^T W from `x`, `steps` times; returns the last vector.
    fn power_steps(&self, mut x: Vec<f64>, steps: usize) -> Vec<f64> {
        for _ in 0..steps {
            let z = self.apply_adjoint(&self.apply(&x));
            let n = z.iter().map(|v| v * v).sum::<f64>().sqrt();
            if n == 0.0 || !n.is_finite() {
                break;
            }
            x = z.into_iter().map(|v| v / n).collect();
        }
        x
    }
}

/// The real embedding of the DFT block at (coarse) frequency (u, v) of the strided circular
/// convolution on an nh x nw grid, and the bound on ||computed - exact||_2 of a block.
///
/// With stride (sy, sx) dividing the grid, output frequency (u, v) of the coarse
/// (nh/sy) x (nw/sx) grid collects the sy*sx aliased input frequencies, and the block is
/// [D(u + p nh/sy, v + q nw/sx)]_{p,q} / sqrt(sy sx)  (c_out x sy sx c_in): downsampling folds
/// the spectrum. Stride 1 gives the usual per-frequency blocks.
struct Blocks<'a> {
    op: &'a ConvOperator,
    nh: usize,
    nw: usize,
    stride: [usize; 2],
    error: f64,
}

impl<'a> Blocks<'a> {
    fn new(op: &'a ConvOperator, nh: usize, nw: usize, stride: [usize; 2]) -> Self {
        debug_assert!(nh.is_multiple_of(stride[0]) && nw.is_multiple_of(stride[1]));
        // Each entry sums kh*kw products with twiddles accurate to a few u (sin/cos of an
        // argument reduced exactly modulo the grid): |error| <= 8 (kh kw + 8) u sum |K_oc|.
        let per_abs = 8.0 * ((op.kh * op.kw) as f64 + 8.0) * U;
        let e2: f64 = (0..op.c_out)
            .flat_map(|o| (0..op.c_in).map(move |c| (o, c)))
            .map(|(o, c)| (per_abs * op.abs_sum(o, c)).powi(2))
            .sum();
        // Re and Im errors each appear twice in the embedding; the 1/sqrt(sy sx) scale and
        // the sy*sx stacked blocks cancel in the Frobenius norm of the error.
        Blocks { op, nh, nw, stride, error: up(2.0 * e2.sqrt() * (1.0 + 4.0 * U)) }
    }

    fn coarse(&self) -> (usize, usize) {
        (self.nh / self.stride[0], self.nw / self.stride[1])
    }

    /// Frequencies of the coarse grid up to conjugate symmetry: all u, and v in 0..=mw/2.
    fn frequencies(&self) -> Vec<(usize, usize)> {
        let (mh, mw) = self.coarse();
        (0..mh).flat_map(|u| (0..=mw / 2).map(move |v| (u, v))).collect()
    }

    /// The input frequencies folded into coarse frequency (u, v), in block-column order.
    fn aliases(&self, u: usize, v: usize) -> Vec<(usize, usize)> {
        let (mh, mw) = self.coarse();
        (0..self.stride[0]).flat_map(|p| (0..self.stride[1]).map(move |q| (u + p * mh, v + q * mw))).collect()
    }

    fn block(&self, u: usize, v: usize) -> Mat<f64> {
        let op = self.op;
        let (co, ci) = (op.c_out, op.c_in);
        let aliases = self.aliases(u, v);
        let cols = aliases.len() * ci;
        let mut re = vec![0.0; co * cols];
        let mut im = vec![0.0; co * cols];
        let scale = 1.0 / ((self.stride[0] * self.stride[1]) as f64).sqrt();
        for (slot, &(fu, fv)) in aliases.iter().enumerate() {
            for a in 0..op.kh {
                for b in 0..op.kw {
                    // Angle reduced exactly with integers before converting.
                    let turns =
                        ((fu * a) % self.nh) as f64 / self.nh as f64 + ((fv * b) % self.nw) as f64 / self.nw as f64;
                    let (s, c) = (-TAU * turns).sin_cos();
                    for o in 0..co {
                        for ch in 0..ci {
                            let k = op.k(o, ch, a, b) * scale;
                            re[o * cols + slot * ci + ch] += k * c;
                            im[o * cols + slot * ci + ch] += k * s;
                        }
                    }
                }
            }
        }
        Mat::from_fn(2 * co, 2 * cols, |i, j| {
            let (o, col) = (i % co, j % cols);
            match (i < co, j < cols) {
                (true, true) | (false, false) => re[o * cols + col],
                (true, false) => -im[o * cols + col],
                (false, true) => im[o * cols + col],
            }
        })
    }
}

/// The certified bracket on the norm of the circular convolution with the given stride (which
/// must divide the grid) on an nh x nw grid, with the frequency whose block attains the
/// largest lower bound.
pub fn circular_norm(
    op: &ConvOperator,
    nh: usize,
    nw: usize,
    stride: [usize; 2],
    method: Method,
    opts: Options,
) -> (Bracket, (usize, usize)) {
    let blocks = Blocks::new(op, nh, nw, stride);
    let freqs = blocks.frequencies();
    let tol = opts.tol.unwrap_or(1e-6);
    let finish = |b: &Bracket| Bracket {
        lower: down(b.lower - blocks.error).max(0.0),
        upper: up(b.upper + blocks.error),
        method: b.method,
        iters: b.iters,
    };
    let run = |m: Method, o: Options, (u, v): (usize, usize)| dense::spectral_norm(blocks.block(u, v).as_ref(), m, o);
    // Tier 1: a cheap certified bracket for every block (5 Gram products, or the requested
    // method directly when it is exact or has a fixed iteration count).
    let tier1_method = if method == Method::Exact || opts.iters.is_some() { method } else { Method::Gram };
    let tier1_opts =
        if method == Method::Exact || opts.iters.is_some() { opts } else { Options { iters: Some(5), ..opts } };
    let mut results: Vec<((usize, usize), Bracket)> =
        freqs.par_iter().map(|&f| (f, run(tier1_method, tier1_opts, f))).collect();
    // Tier 2: refine, best first, every block whose upper bound could still be the maximum.
    if tier1_method != method || tier1_opts.iters != opts.iters {
        results.sort_by(|a, b| b.1.upper.total_cmp(&a.1.upper));
        let mut best_lower = results.iter().map(|r| r.1.lower).fold(0.0, f64::max);
        let mut i = 0;
        while i < results.len() && results[i].1.upper > best_lower * (1.0 + tol) {
            // Refine a batch in parallel.
            let end = (i + 2 * rayon::current_num_threads()).min(results.len());
            let refined: Vec<Bracket> = results[i..end].par_iter().map(|(f, _)| run(method, opts, *f)).collect();
            for (slot, b) in results[i..end].iter_mut().zip(refined) {
                best_lower = best_lower.max(b.lower);
                slot.1 = b;
            }
            i = end;
        }
    }
    let best = results.iter().max_by(|a, b| a.1.lower.total_cmp(&b.1.lower)).expect("at least one frequency");
    let upper = results.iter().map(|r| r.1.upper).fold(0.0, f64::max);
    let iters = results.iter().map(|r| r.1.iters).max().unwrap_or(0);
    let bracket = finish(&Bracket { lower: best.1.lower, upper, method: method.name(), iters });
    (bracket, best.0)
}

/// A real input on the op's h x w grid that excites coarse frequency (u, v) of the strided
/// nh x nw grid through the top right singular vector z of that block:
/// x = Re(sum over aliases of z_alias exp(2 pi i (fu y / nh + fv x / nw))).
fn plane_wave(
    op: &ConvOperator,
    nh: usize,
    nw: usize,
    stride: [usize; 2],
    (u, v): (usize, usize),
    seed: u64,
) -> Vec<f64> {
    let blocks = Blocks::new(op, nh, nw, stride);
    let block = blocks.block(u, v);
    let aliases = blocks.aliases(u, v);
    // Top right singular vector of the real embedding (re; im) by a short power iteration.
    let mut rng = Rng::new(seed);
    let half = block.ncols() / 2;
    let mut z = faer::Col::from_fn(block.ncols(), |_| rng.normal());
    for _ in 0..200 {
        let next = block.transpose() * (&block * &z);
        let n = next.norm_l2();
        if n == 0.0 {
            break;
        }
        z = next * (1.0 / n);
    }
    let ci = op.c_in;
    let mut x = vec![0.0; ci * op.h * op.w];
    for (slot, &(fu, fv)) in aliases.iter().enumerate() {
        for c in 0..ci {
            let (zr, zi) = (z[slot * ci + c], z[half + slot * ci + c]);
            for y in 0..op.h {
                for xx in 0..op.w {
                    let turns = ((fu * y) % nh) as f64 / nh as f64 + ((fv * xx) % nw) as f64 / nw as f64;
                    let (s, co) = (TAU * turns).sin_cos();
                    x[(c * op.h + y) * op.w + xx] += zr * co - zi * s;
                }
            }
        }
    }
    x
}

/// Spectral norm bracket of a convolution operator.
///
/// `exact`: per-frequency SVD for circular stride-1 operators (exact); for zero padding or
/// stride > 1 the SVD of the explicit matrix (refused above 4096 columns).
/// `gram` / `auto`: per-frequency certified Gram brackets (upper) and the real operator (lower).
/// `power`: power iteration on the real operator (lower bound only).
pub fn conv_norm(op: &ConvOperator, method: Method, opts: Options) -> Result<Bracket, String> {
    op.validate()?;
    let n_in = op.c_in * op.h * op.w;
    if method == Method::Power {
        let mut rng = Rng::new(opts.seed);
        let x: Vec<f64> = (0..n_in).map(|_| rng.normal()).collect();
        let steps = opts.iters.unwrap_or(100);
        let x = op.power_steps(x, steps);
        return Ok(Bracket { lower: op.certified_lower(&x), upper: f64::INFINITY, method: "power", iters: steps });
    }
    // The circular operator that bounds this one: the grid and the stride of its blocks.
    // Circular padding with a stride that divides the input is block-diagonal exactly; with
    // one that does not, the stride-1 norm bounds it. Zero padding embeds in a larger circular
    // grid (a multiple of the stride) on which no wrap-around reaches a nonzero input.
    let divisible = op.h.is_multiple_of(op.stride[0]) && op.w.is_multiple_of(op.stride[1]);
    let (nh, nw, stride) = match op.padding {
        Padding::Circular if divisible => (op.h, op.w, op.stride),
        Padding::Circular => (op.h, op.w, [1, 1]),
        Padding::Zeros(p) => {
            // Large enough that wrap-around meets only zeros and every output has its own slot.
            let [oh, ow] = op.output_size();
            (
                (op.h + p[0].max(p[2])).max(oh * op.stride[0]).next_multiple_of(op.stride[0]),
                (op.w + p[1].max(p[3])).max(ow * op.stride[1]).next_multiple_of(op.stride[1]),
                op.stride,
            )
        }
    };
    let exact_blocks = op.padding == Padding::Circular && divisible;
    if method == Method::Exact && !exact_blocks {
        if n_in > 4096 {
            return Err(format!(
                "the explicit matrix has {n_in} columns; exact is limited to 4096 (use --method gram)"
            ));
        }
        return Ok(dense::exact(explicit_matrix(op).as_ref()));
    }
    let (upper_bracket, best) = circular_norm(op, nh, nw, stride, method, opts);
    if exact_blocks {
        return Ok(upper_bracket);
    }
    let lower = operator_lower(op, (nh, nw, stride, best), opts.seed).min(upper_bracket.upper);
    Ok(Bracket { lower, upper: upper_bracket.upper, method: upper_bracket.method, iters: upper_bracket.iters })
}

/// Certified lower bound from the real operator: power iteration started at the plane wave of
/// frequency `best` of the (strided) nh x nw grid.
fn operator_lower(
    op: &ConvOperator,
    (nh, nw, stride, best): (usize, usize, [usize; 2], (usize, usize)),
    seed: u64,
) -> f64 {
    let x = plane_wave(op, nh, nw, stride, best, seed);
    let refined = op.power_steps(x.clone(), 30);
    op.certified_lower(&x).max(op.certified_lower(&refined))
}

/// Side of the input window used for lower bounds on large stride-1 inputs.
pub const LOWER_WINDOW: usize = 64;

/// For a stride-1 operator on an input larger than `LOWER_WINDOW` + 2 (k - 1) per side: the
/// fully zero-padded convolution on a `LOWER_WINDOW`-sized window. An input supported on an
/// interior window (k - 1 away from every edge) meets neither the padding nor the wrap-around,
/// and all its outputs exist in the original layer, so ||W x|| is the same for both operators
/// and the window operator's certified lower bounds are lower bounds of the original's.
pub fn lower_window(op: &ConvOperator) -> Option<ConvOperator> {
    let fits = |n: usize, k: usize| n >= LOWER_WINDOW + 2 * (k - 1);
    if op.stride != [1, 1] || !fits(op.h, op.kh) || !fits(op.w, op.kw) {
        return None;
    }
    let pads = [op.kh - 1, op.kw - 1, op.kh - 1, op.kw - 1];
    Some(ConvOperator { h: LOWER_WINDOW, w: LOWER_WINDOW, padding: Padding::Zeros(pads), ..op.clone() })
}

/// Spectral norm bracket of a convolution operator whose upper bound comes from the kernel's
/// symbol sampled on `grid` (`symbol_bound`): the cost depends on the grid, not on the input
/// size. The lower bound comes from the real operator.
pub fn conv_norm_on_grid(
    op: &ConvOperator,
    grid: [usize; 2],
    method: Method,
    opts: Options,
) -> Result<(Bracket, SymbolBound), String> {
    op.validate()?;
    if method == Method::Power {
        return Err("power iteration gives no upper bound; use gram, auto or exact with a frequency grid".into());
    }
    let symbol = symbol_bound(op, grid, method, opts)?;
    // The same plane wave, on a window where one fits: far cheaper on large inputs.
    let window = lower_window(op);
    let lower = operator_lower(window.as_ref().unwrap_or(op), (grid[0], grid[1], [1, 1], symbol.best), opts.seed)
        .min(symbol.upper);
    Ok((Bracket { lower, upper: symbol.upper, method: symbol.on_grid.method, iters: symbol.on_grid.iters }, symbol))
}

/// The operator as an explicit matrix [outputs, inputs] (for `exact` and for tests).
pub fn explicit_matrix(op: &ConvOperator) -> Mat<f64> {
    let n_in = op.c_in * op.h * op.w;
    let [oh, ow] = op.output_size();
    let n_out = op.c_out * oh * ow;
    let mut m = Mat::<f64>::zeros(n_out, n_in);
    let mut e = vec![0.0; n_in];
    for j in 0..n_in {
        e[j] = 1.0;
        let col = op.apply(&e);
        for (i, v) in col.iter().enumerate() {
            m[(i, j)] = *v;
        }
        e[j] = 0.0;
    }
    m
}

/// A convolution kernel `[c_out, c_in, kh, kw]` (correlation form) with its shape.
#[derive(Clone, Debug)]
struct Kernel {
    data: Vec<f64>,
    c_out: usize,
    c_in: usize,
    kh: usize,
    kw: usize,
}

impl Kernel {
    /// The kernel of T^T T, where T is the convolution on the infinite grid (thesis Thm. 3.6.1,
    /// "convolution with maximal non-trivial padding"):
    /// G[c2, c1, dy, dx] = sum_o sum_{a,b} K[o, c2, a, b] K[o, c1, a + dy, b + dx], |d| < k.
    fn gram(&self) -> Kernel {
        let (co, ci, kh, kw) = (self.c_out, self.c_in, self.kh, self.kw);
        let (gh, gw) = (2 * kh - 1, 2 * kw - 1);
        let k = |o: usize, c: usize, a: usize, b: usize| self.data[((o * ci + c) * kh + a) * kw + b];
        let mut out = vec![0.0; ci * ci * gh * gw];
        out.par_chunks_mut(ci * gh * gw).enumerate().for_each(|(c2, rows)| {
            for c1 in 0..ci {
                for gy in 0..gh {
                    for gx in 0..gw {
                        let (dy, dx) = (gy as isize - (kh as isize - 1), gx as isize - (kw as isize - 1));
                        let mut s = 0.0;
                        for o in 0..co {
                            for a in 0..kh {
                                let a2 = a as isize + dy;
                                if a2 < 0 || a2 >= kh as isize {
                                    continue;
                                }
                                for b in 0..kw {
                                    let b2 = b as isize + dx;
                                    if b2 >= 0 && b2 < kw as isize {
                                        s += k(o, c2, a, b) * k(o, c1, a2 as usize, b2 as usize);
                                    }
                                }
                            }
                        }
                        rows[(c1 * gh + gy) * gw + gx] = s;
                    }
                }
            }
        });
        Kernel { data: out, c_out: ci, c_in: ci, kh: gh, kw: gw }
    }

    /// (max over outputs of sum |K[o]|, max over inputs of sum |K[:, c]|): the l_inf and l_1
    /// norms of the infinite-grid operator of |K|, rounded up.
    fn abs_row_col(&self) -> (f64, f64) {
        let taps = self.kh * self.kw;
        let mut col = vec![0.0f64; self.c_in];
        let mut row = vec![0.0f64; self.c_out];
        for (i, chunk) in self.data.chunks_exact(taps).enumerate() {
            let s: f64 = chunk.iter().map(|v| v.abs()).sum();
            row[i / self.c_in] += s;
            col[i % self.c_in] += s;
        }
        let slack = 1.0 + gamma(self.c_in.max(self.c_out) * taps + 2);
        let max = |v: &[f64]| up(v.iter().cloned().fold(0.0, f64::max) * slack);
        (max(&row), max(&col))
    }
}

/// `norm2_toep` (thesis Alg. 6, Thm. 3.6.1): a certified upper bound on the spectral norm of
/// the convolution with any zero padding (and any input size and stride), from `iters` Gram
/// iterations on the kernel itself, read out with sqrt(||.||_1 ||.||_inf) of the final kernel.
/// The rounding of every kernel product is carried as in the dense Gram chain:
/// sigma_1(T_t)^2 <= 2^e sigma_1(T_{t+1}) + gamma(c k^2) ||T_|K_t|||_1 ||T_|K_t|||_inf.
/// Cost grows fast (the kernel grows to 2^t (k - 1) + 1 taps per side), so `iters` <= 4.
pub fn toeplitz_bound(op: &ConvOperator, iters: usize) -> Result<f64, String> {
    op.validate()?;
    if iters > 4 {
        return Err("norm2_toep is limited to 4 kernel Gram iterations (the kernel grows 2x per step)".into());
    }
    let mut kernel = Kernel { data: op.kernel.clone(), c_out: op.c_out, c_in: op.c_in, kh: op.kh, kw: op.kw };
    // Scale by an exact power of two near the largest entry.
    let max = kernel.data.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    if max == 0.0 {
        return Ok(0.0);
    }
    let e0 = lipcert_core::rounding::exponent(max);
    kernel.data.iter_mut().for_each(|v| *v *= lipcert_core::rounding::pow2(-e0));
    let mut levels = vec![];
    for _ in 0..iters {
        let (row, col) = kernel.abs_row_col();
        let product_error = up(gamma(kernel.c_out * kernel.kh * kernel.kw + 2) * row * col) + 1e-300;
        let mut next = kernel.gram();
        let m = next.data.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        let e = if m > 0.0 { lipcert_core::rounding::exponent(m) } else { 0 };
        next.data.iter_mut().for_each(|v| *v *= lipcert_core::rounding::pow2(-e));
        levels.push(dense::Level { product_error, next_exponent: e });
        kernel = next;
    }
    let (row, col) = kernel.abs_row_col();
    let top = up((row * col).sqrt());
    Ok(up(dense::chain_back(&levels, top) * lipcert_core::rounding::pow2(e0)))
}

/// An upper bound on sup over all frequencies omega of sigma_1(E(omega)), where
/// E(omega) = sum_{a,b} K[:, :, a, b] exp(-i (a omega_1 + b omega_2)) is the kernel's symbol.
#[derive(Clone, Debug)]
pub struct SymbolBound {
    /// Certified upper bound on sup_omega sigma_1(E(omega)), hence on the norm of the
    /// convolution with this kernel on every input size, with zero or circular padding and any
    /// stride.
    pub upper: f64,
    /// The certified bracket of the circular convolution on the sampled grid: its upper end
    /// bounds the largest sigma_1 over the grid.
    pub on_grid: Bracket,
    /// The curvature factor 1 / sqrt(1 - c) applied to `on_grid.upper` (rounded up).
    pub factor: f64,
    pub grid: [usize; 2],
    /// The grid frequency whose block has the largest certified lower bound.
    pub best: (usize, usize),
}

/// The curvature constant c = (pi^2 / 2) ((kh - 1) / nh + (kw - 1) / nw)^2 of `symbol_bound`,
/// rounded up.
pub fn curvature_constant(kh: usize, kw: usize, grid: [usize; 2]) -> f64 {
    if kh <= 1 && kw <= 1 {
        // A 1 x 1 kernel has a constant symbol: the grid value is the supremum.
        return 0.0;
    }
    let s = up(up((kh - 1) as f64 / grid[0] as f64) + up((kw - 1) as f64 / grid[1] as f64));
    // PI as an f64 is below pi; the next float is above it.
    let pi = up(std::f64::consts::PI);
    up(up(pi * pi) / 2.0 * up(s * s))
}

/// Certified bound on the norm of the convolution for every input size from the circular
/// blocks on a coarse `grid` (the sound replacement of thesis Thms. 3.7.1 and 3.7.3, whose
/// printed factors fail: see docs/GUARANTEES.md).
///
/// Proof. Let A(omega) = E(omega)^* E(omega) and S = sup_omega lambda_max(A(omega)), attained at
/// omega* with unit top eigenvector v. g(omega) = v^* A(omega) v is a real trigonometric
/// polynomial of degree kh - 1 in omega_1 and kw - 1 in omega_2, with 0 <= g <= S and
/// g(omega*) = S, so grad g(omega*) = 0. The nearest grid point omega_k is within
/// h_i <= pi / n_i per axis; by Taylor and Bernstein's inequality (||g_ij|| <= m_i m_j ||g||),
/// g(omega_k) >= S (1 - (m_1 h_1 + m_2 h_2)^2 / 2) >= S (1 - c). Since
/// lambda_max(A(omega_k)) >= g(omega_k), S <= max_k sigma_1(D_k)^2 / (1 - c). Zero-padded,
/// strided or circular convolutions on any input are compressions of the infinite-grid
/// convolution, whose norm is sqrt(S).
pub fn symbol_bound(op: &ConvOperator, grid: [usize; 2], method: Method, opts: Options) -> Result<SymbolBound, String> {
    if grid.contains(&0) {
        return Err("the frequency grid must be positive".into());
    }
    let c = curvature_constant(op.kh, op.kw, grid);
    if c >= 0.5 {
        let need = |k: usize| ((std::f64::consts::PI * (k.saturating_sub(1)) as f64 * 2.0).ceil() as usize).max(k);
        return Err(format!(
            "a {}x{} frequency grid is too coarse for a {}x{} kernel (curvature constant {c:.2} >= 0.5); use at least {}x{}",
            grid[0],
            grid[1],
            op.kh,
            op.kw,
            need(op.kh),
            need(op.kw)
        ));
    }
    let (on_grid, best) = circular_norm(op, grid[0], grid[1], [1, 1], method, opts);
    let factor = if c == 0.0 { 1.0 } else { up(1.0 / down(down(1.0 - c).sqrt())) };
    Ok(SymbolBound { upper: up(on_grid.upper * factor), on_grid, factor, grid, best })
}
