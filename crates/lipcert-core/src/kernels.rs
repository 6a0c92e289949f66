//! Numerical kernels of the forward and backward passes, on batches stored as flat
//! row-major slices (outer batch axis first, then the per-sample shape in C order).

use crate::graph::{Conv2d, Dense, Pool2d};
use faer::{Accum, MatMut, MatRef, Par};
use rayon::prelude::*;

/// Work (multiply-adds) above which a single matrix product uses both threads.
const PARALLEL_GEMM_WORK: usize = 1 << 18;

/// dst[m x n] (+)= op(a)[m x k] * op(b)[k x n], all row-major. `a` is stored `[m, k]`, or
/// `[k, m]` when `ta`; `b` is stored `[k, n]`, or `[n, k]` when `tb`.
#[allow(clippy::too_many_arguments)]
pub fn gemm(
    dst: &mut [f64],
    a: &[f64],
    ta: bool,
    b: &[f64],
    tb: bool,
    (m, k, n): (usize, usize, usize),
    accumulate: bool,
    par: Par,
) {
    debug_assert_eq!(dst.len(), m * n);
    debug_assert_eq!(a.len(), m * k);
    debug_assert_eq!(b.len(), k * n);
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            dst.fill(0.0);
        }
        return;
    }
    let a = if ta { MatRef::from_row_major_slice(a, k, m).transpose() } else { MatRef::from_row_major_slice(a, m, k) };
    let b = if tb { MatRef::from_row_major_slice(b, n, k).transpose() } else { MatRef::from_row_major_slice(b, k, n) };
    let dst = MatMut::from_row_major_slice_mut(dst, m, n);
    let accum = if accumulate { Accum::Add } else { Accum::Replace };
    faer::linalg::matmul::matmul(dst, accum, a, b, 1.0, par);
}

/// Parallelism for one product of the given size.
pub fn par_for(work: usize) -> Par {
    if work >= PARALLEL_GEMM_WORK && rayon::current_num_threads() > 1 {
        Par::rayon(0)
    } else {
        Par::Seq
    }
}

/// Dense forward on `rows` rows: y = x W^T + b.
pub fn dense_forward(d: &Dense, x: &[f64], rows: usize) -> Vec<f64> {
    let mut y = Vec::with_capacity(rows * d.out_features);
    for _ in 0..rows {
        y.extend_from_slice(&d.bias);
    }
    let work = rows * d.in_features * d.out_features;
    gemm(&mut y, x, false, &d.weight, true, (rows, d.in_features, d.out_features), true, par_for(work));
    y
}

/// Dense backward to the input: gx = gy W.
pub fn dense_backward(d: &Dense, gy: &[f64], rows: usize) -> Vec<f64> {
    let mut gx = vec![0.0; rows * d.in_features];
    let work = rows * d.in_features * d.out_features;
    gemm(&mut gx, gy, false, &d.weight, false, (rows, d.out_features, d.in_features), false, par_for(work));
    gx
}

/// Dense parameter gradients: (gW = gy^T x, gb = column sums of gy).
pub fn dense_param_grads(d: &Dense, x: &[f64], gy: &[f64], rows: usize) -> (Vec<f64>, Vec<f64>) {
    let mut gw = vec![0.0; d.out_features * d.in_features];
    let work = rows * d.in_features * d.out_features;
    gemm(&mut gw, gy, true, x, false, (d.out_features, rows, d.in_features), false, par_for(work));
    let mut gb = vec![0.0; d.out_features];
    for row in gy.chunks_exact(d.out_features) {
        for (b, g) in gb.iter_mut().zip(row) {
            *b += g;
        }
    }
    (gw, gb)
}

/// Geometry of one convolution applied to `[C, H, W]` images.
struct ConvGeometry {
    h: usize,
    w: usize,
    oh: usize,
    ow: usize,
    /// Input channels per group.
    cg: usize,
    /// Output channels per group.
    og: usize,
    /// Rows of the im2col matrix: cg * kh * kw.
    k: usize,
}

impl ConvGeometry {
    fn new(c: &Conv2d, h: usize, w: usize, oh: usize, ow: usize) -> Self {
        let cg = c.in_channels / c.groups;
        ConvGeometry { h, w, oh, ow, cg, og: c.out_channels / c.groups, k: cg * c.kernel[0] * c.kernel[1] }
    }
    fn p(&self) -> usize {
        self.oh * self.ow
    }
}

/// The zero-padded image split into its stride phases: phase (ry, rx) holds the padded pixels
/// (y, x) with y % sy == ry and x % sx == rx, as `[sy * sx][C][hq][wq]`. Every kernel tap then
/// reads contiguous runs of one phase, so im2col is plain row copies with no bounds tests.
struct Phases {
    data: Vec<f64>,
    hq: usize,
    wq: usize,
}

impl Phases {
    fn new(c: &Conv2d, geo: &ConvGeometry) -> Self {
        let [sy, sx] = c.stride;
        let hq = (geo.h + c.pads[0] + c.pads[2]).div_ceil(sy);
        let wq = (geo.w + c.pads[1] + c.pads[3]).div_ceil(sx);
        Phases { data: vec![0.0; sy * sx * c.in_channels * hq * wq], hq, wq }
    }

    /// Calls `f(image row offset, first, phase offset)` for every run of one image row's
    /// pixels that lands in one phase row: pixels `first, first + sx, ...` of the row go to
    /// consecutive phase entries from the phase offset on.
    fn for_each_run(&self, c: &Conv2d, geo: &ConvGeometry, mut f: impl FnMut(usize, usize, usize)) {
        let [sy, sx] = c.stride;
        let (wq, plane) = (self.wq, self.hq * self.wq);
        let chans = c.in_channels;
        for ch in 0..chans {
            for y in 0..geo.h {
                let py = y + c.pads[0];
                for rx in 0..sx {
                    // Pixels x with (x + pad_left) % sx == rx go to phase (py % sy, rx).
                    let first = (rx + sx - c.pads[1] % sx) % sx;
                    if first >= geo.w {
                        continue;
                    }
                    let phase = (py % sy) * sx + rx;
                    let base = (phase * chans + ch) * plane + (py / sy) * wq + (first + c.pads[1]) / sx;
                    f((ch * geo.h + y) * geo.w, first, base);
                }
            }
        }
    }

    fn fill(&mut self, c: &Conv2d, geo: &ConvGeometry, img: &[f64]) {
        let sx = c.stride[1];
        debug_assert!(self.hq * c.stride[0] >= geo.h + c.pads[0]);
        let mut data = std::mem::take(&mut self.data);
        data.fill(0.0);
        self.for_each_run(c, geo, |row, first, base| {
            for (k, v) in img[row + first..row + geo.w].iter().step_by(sx).enumerate() {
                data[base + k] = *v;
            }
        });
        self.data = data;
    }

    fn im2col(&self, c: &Conv2d, geo: &ConvGeometry, g: usize, cols: &mut [f64]) {
        let [sy, sx] = c.stride;
        let [kh, kw] = c.kernel;
        let (p, plane) = (geo.p(), self.hq * self.wq);
        for ci in 0..geo.cg {
            let ch = g * geo.cg + ci;
            for ki in 0..kh {
                let ay = ki * c.dilation[0];
                for kj in 0..kw {
                    let ax = kj * c.dilation[1];
                    let phase = (ay % sy) * sx + ax % sx;
                    let base = (phase * c.in_channels + ch) * plane + (ay / sy) * self.wq + ax / sx;
                    let row = &mut cols[((ci * kh + ki) * kw + kj) * p..][..p];
                    for (oy, dst) in row.chunks_exact_mut(geo.ow).enumerate() {
                        dst.copy_from_slice(&self.data[base + oy * self.wq..][..geo.ow]);
                    }
                }
            }
        }
    }

    /// The adjoint of `im2col`: adds every column row back into the phase positions it was
    /// read from (contiguous runs, like `im2col`'s copies; padding positions collect terms
    /// that `unfill_add` drops).
    fn col2im_add(&mut self, c: &Conv2d, geo: &ConvGeometry, g: usize, cols: &[f64]) {
        let [sy, sx] = c.stride;
        let [kh, kw] = c.kernel;
        let (p, plane, wq) = (geo.p(), self.hq * self.wq, self.wq);
        for ci in 0..geo.cg {
            let ch = g * geo.cg + ci;
            for ki in 0..kh {
                let ay = ki * c.dilation[0];
                for kj in 0..kw {
                    let ax = kj * c.dilation[1];
                    let phase = (ay % sy) * sx + ax % sx;
                    let base = (phase * c.in_channels + ch) * plane + (ay / sy) * wq + ax / sx;
                    let row = &cols[((ci * kh + ki) * kw + kj) * p..][..p];
                    for (oy, src) in row.chunks_exact(geo.ow).enumerate() {
                        let dst = &mut self.data[base + oy * wq..][..geo.ow];
                        dst.iter_mut().zip(src).for_each(|(d, s)| *d += s);
                    }
                }
            }
        }
    }

    /// The adjoint of `fill`: adds each image pixel's phase entry into `img` (the padding's
    /// entries are dropped: padding is constant).
    fn unfill_add(&self, c: &Conv2d, geo: &ConvGeometry, img: &mut [f64]) {
        let sx = c.stride[1];
        self.for_each_run(c, geo, |row, first, base| {
            for (k, v) in img[row + first..row + geo.w].iter_mut().step_by(sx).enumerate() {
                *v += self.data[base + k];
            }
        });
    }
}

/// Convolution forward on `images` images of shape `[C, H, W]`, output `[O, OH, OW]` each.
pub fn conv_forward(c: &Conv2d, x: &[f64], images: usize, hw: [usize; 2], ohw: [usize; 2]) -> Vec<f64> {
    let geo = ConvGeometry::new(c, hw[0], hw[1], ohw[0], ohw[1]);
    let (in_len, out_len, p) = (c.in_channels * geo.h * geo.w, c.out_channels * geo.p(), geo.p());
    let mut y = vec![0.0; images * out_len];
    let one_image = |img: &[f64], out: &mut [f64], (phases, cols): &mut (Phases, Vec<f64>), par: Par| {
        phases.fill(c, &geo, img);
        for g in 0..c.groups {
            phases.im2col(c, &geo, g, cols);
            let out_g = &mut out[g * geo.og * p..(g + 1) * geo.og * p];
            for (o, row) in out_g.chunks_exact_mut(p).enumerate() {
                row.fill(c.bias[g * geo.og + o]);
            }
            let w_g = &c.weight[g * geo.og * geo.k..(g + 1) * geo.og * geo.k];
            gemm(out_g, w_g, false, cols, false, (geo.og, geo.k, p), true, par);
        }
    };
    let buffers = || (Phases::new(c, &geo), vec![0.0; geo.k * p]);
    if images == 1 {
        one_image(x, &mut y, &mut buffers(), par_for(geo.og * geo.k * p));
    } else {
        y.par_chunks_mut(out_len)
            .zip(x.par_chunks(in_len))
            .for_each_init(buffers, |bufs, (out, img)| one_image(img, out, bufs, Par::Seq));
    }
    y
}

/// The im2col matrix of group `g` over all images: `[k, images * p]` row-major, with
/// k = in_channels / groups * kh * kw in the weight's column order and p = OH * OW, so that
/// (group g's weight rows) x (this matrix) is the group's pre-bias output for every position.
/// Pruners build their layer-wise Hessians from it.
pub fn conv_patches(c: &Conv2d, x: &[f64], images: usize, hw: [usize; 2], ohw: [usize; 2], g: usize) -> Vec<f64> {
    let geo = ConvGeometry::new(c, hw[0], hw[1], ohw[0], ohw[1]);
    let (in_len, p) = (c.in_channels * geo.h * geo.w, geo.p());
    let mut phases = Phases::new(c, &geo);
    let mut cols = vec![0.0; geo.k * p];
    let mut out = vec![0.0; geo.k * images * p];
    for (i, img) in x.chunks_exact(in_len).take(images).enumerate() {
        phases.fill(c, &geo, img);
        phases.im2col(c, &geo, g, &mut cols);
        for (r, row) in cols.chunks_exact(p).enumerate() {
            out[r * images * p + i * p..][..p].copy_from_slice(row);
        }
    }
    out
}

/// Convolution backward to the input.
pub fn conv_backward(c: &Conv2d, gy: &[f64], images: usize, hw: [usize; 2], ohw: [usize; 2]) -> Vec<f64> {
    let geo = ConvGeometry::new(c, hw[0], hw[1], ohw[0], ohw[1]);
    let (in_len, out_len, p) = (c.in_channels * geo.h * geo.w, c.out_channels * geo.p(), geo.p());
    let mut gx = vec![0.0; images * in_len];
    gx.par_chunks_mut(in_len).zip(gy.par_chunks(out_len)).for_each_init(
        // Buffers are allocated on first use: rayon calls this once per split of the work, and
        // sparse rows need neither the phases nor full-size columns.
        || (None::<Phases>, Vec::new(), Vec::new(), Vec::new()),
        |(phases, cols, live, gy_live), (gimg, gout)| {
            let mut phased = false;
            for g in 0..c.groups {
                let w_g = &c.weight[g * geo.og * geo.k..(g + 1) * geo.og * geo.k];
                let gy_g = &gout[g * geo.og * p..(g + 1) * geo.og * p];
                live_positions(gy_g, p, live);
                if 4 * live.len() < p {
                    // Few output positions carry a coefficient (a CROWN row started at one
                    // neuron, or behind stably inactive ReLUs): only their columns are formed.
                    let n = live.len();
                    gy_live.clear();
                    for o in 0..geo.og {
                        gy_live.extend(live.iter().map(|&q| gy_g[o * p + q]));
                    }
                    cols.resize(geo.k * n, 0.0);
                    gemm(&mut cols[..geo.k * n], w_g, true, gy_live, false, (geo.k, geo.og, n), false, Par::Seq);
                    col2im_add_positions(c, &geo, g, &cols[..geo.k * n], live, gimg);
                } else {
                    let ph = phases.get_or_insert_with(|| Phases::new(c, &geo));
                    if !phased {
                        ph.data.fill(0.0);
                        phased = true;
                    }
                    cols.resize(geo.k * p, 0.0);
                    gemm(&mut cols[..geo.k * p], w_g, true, gy_g, false, (geo.k, geo.og, p), false, Par::Seq);
                    ph.col2im_add(c, &geo, g, &cols[..geo.k * p]);
                }
            }
            if let (true, Some(ph)) = (phased, phases.as_ref()) {
                ph.unfill_add(c, &geo, gimg);
            }
        },
    );
    gx
}

/// The output positions (of `p`) where some channel of `gy` (`[channels, p]`) is nonzero.
fn live_positions(gy: &[f64], p: usize, live: &mut Vec<usize>) {
    live.clear();
    let mut any = vec![false; p];
    for row in gy.chunks_exact(p) {
        any.iter_mut().zip(row).for_each(|(a, &v)| *a |= v != 0.0);
    }
    live.extend((0..p).filter(|&q| any[q]));
}

/// `col2im` for the columns of the output positions `live` only (`cols` is `[k, live]`): adds
/// each tap's entry into the input pixel it read, skipping taps that read the padding.
fn col2im_add_positions(c: &Conv2d, geo: &ConvGeometry, g: usize, cols: &[f64], live: &[usize], img: &mut [f64]) {
    let [kh, kw] = c.kernel;
    let n = live.len();
    for ci in 0..geo.cg {
        let chan = &mut img[(g * geo.cg + ci) * geo.h * geo.w..][..geo.h * geo.w];
        for ki in 0..kh {
            for kj in 0..kw {
                let row = &cols[((ci * kh + ki) * kw + kj) * n..][..n];
                for (&q, &v) in live.iter().zip(row) {
                    let (oy, ox) = (q / geo.ow, q % geo.ow);
                    let iy = (oy * c.stride[0] + ki * c.dilation[0]).wrapping_sub(c.pads[0]);
                    let ix = (ox * c.stride[1] + kj * c.dilation[1]).wrapping_sub(c.pads[1]);
                    if iy < geo.h && ix < geo.w {
                        chan[iy * geo.w + ix] += v;
                    }
                }
            }
        }
    }
}

/// Visits the in-bounds input offsets of every pooling window of one `[H, W]` plane.
/// `f(output position, input offset)`; windows are visited in order, each window's taps in order.
#[inline]
pub fn for_each_window(p: &Pool2d, hw: [usize; 2], ohw: [usize; 2], mut f: impl FnMut(usize, usize)) {
    for oy in 0..ohw[0] {
        for ox in 0..ohw[1] {
            for ki in 0..p.kernel[0] {
                let iy = (oy * p.stride[0] + ki * p.dilation[0]) as isize - p.pads[0] as isize;
                if iy < 0 || iy as usize >= hw[0] {
                    continue;
                }
                for kj in 0..p.kernel[1] {
                    let ix = (ox * p.stride[1] + kj * p.dilation[1]) as isize - p.pads[1] as isize;
                    if ix < 0 || ix as usize >= hw[1] {
                        continue;
                    }
                    f(oy * ohw[1] + ox, iy as usize * hw[1] + ix as usize);
                }
            }
        }
    }
}

/// Divisor of each average-pooling window of a plane (in-bounds taps, or the window within
/// the padded input when `count_include_pad`).
pub fn avgpool_divisors(p: &Pool2d, hw: [usize; 2], ohw: [usize; 2]) -> Vec<f64> {
    let mut d = vec![0.0; ohw[0] * ohw[1]];
    if p.count_include_pad {
        // Taps inside the padded input (pads count, positions beyond them do not).
        let padded = [hw[0] + p.pads[0] + p.pads[2], hw[1] + p.pads[1] + p.pads[3]];
        for oy in 0..ohw[0] {
            for ox in 0..ohw[1] {
                let cy = (0..p.kernel[0]).filter(|ki| oy * p.stride[0] + ki * p.dilation[0] < padded[0]).count();
                let cx = (0..p.kernel[1]).filter(|kj| ox * p.stride[1] + kj * p.dilation[1] < padded[1]).count();
                d[oy * ohw[1] + ox] = (cy * cx) as f64;
            }
        }
    } else {
        for_each_window(p, hw, ohw, |o, _| d[o] += 1.0);
    }
    d
}

/// Average pooling on `planes` planes.
pub fn avgpool_forward(p: &Pool2d, x: &[f64], planes: usize, hw: [usize; 2], ohw: [usize; 2]) -> Vec<f64> {
    let div = avgpool_divisors(p, hw, ohw);
    let (il, ol) = (hw[0] * hw[1], ohw[0] * ohw[1]);
    let mut y = vec![0.0; planes * ol];
    y.par_chunks_mut(ol).zip(x.par_chunks(il)).for_each(|(out, plane)| {
        for_each_window(p, hw, ohw, |o, i| out[o] += plane[i]);
        for (v, d) in out.iter_mut().zip(&div) {
            *v /= d;
        }
    });
    y
}

pub fn avgpool_backward(p: &Pool2d, gy: &[f64], planes: usize, hw: [usize; 2], ohw: [usize; 2]) -> Vec<f64> {
    let div = avgpool_divisors(p, hw, ohw);
    let (il, ol) = (hw[0] * hw[1], ohw[0] * ohw[1]);
    let mut gx = vec![0.0; planes * il];
    gx.par_chunks_mut(il).zip(gy.par_chunks(ol)).for_each(|(gplane, gout)| {
        for_each_window(p, hw, ohw, |o, i| gplane[i] += gout[o] / div[o]);
    });
    gx
}

/// Input offset of the first maximum of every window of one plane (padding is -inf,
/// so it never wins; a window with no in-bounds tap cannot occur for valid pads).
pub fn maxpool_argmax(p: &Pool2d, plane: &[f64], hw: [usize; 2], ohw: [usize; 2]) -> Vec<usize> {
    let mut best = vec![usize::MAX; ohw[0] * ohw[1]];
    for_each_window(p, hw, ohw, |o, i| {
        // NaN inputs propagate: a NaN tap replaces the current maximum.
        if best[o] == usize::MAX || plane[i] > plane[best[o]] || plane[i].is_nan() {
            best[o] = i;
        }
    });
    best
}

pub fn maxpool_forward(p: &Pool2d, x: &[f64], planes: usize, hw: [usize; 2], ohw: [usize; 2]) -> Vec<f64> {
    let (il, ol) = (hw[0] * hw[1], ohw[0] * ohw[1]);
    let mut y = vec![0.0; planes * ol];
    y.par_chunks_mut(ol).zip(x.par_chunks(il)).for_each(|(out, plane)| {
        for (v, i) in out.iter_mut().zip(maxpool_argmax(p, plane, hw, ohw)) {
            *v = if i == usize::MAX { f64::NEG_INFINITY } else { plane[i] };
        }
    });
    y
}

pub fn maxpool_backward(p: &Pool2d, x: &[f64], gy: &[f64], planes: usize, hw: [usize; 2], ohw: [usize; 2]) -> Vec<f64> {
    let (il, ol) = (hw[0] * hw[1], ohw[0] * ohw[1]);
    let mut gx = vec![0.0; planes * il];
    gx.par_chunks_mut(il).zip(x.par_chunks(il).zip(gy.par_chunks(ol))).for_each(|(gplane, (plane, gout))| {
        for (g, i) in gout.iter().zip(maxpool_argmax(p, plane, hw, ohw)) {
            if i != usize::MAX {
                gplane[i] += g;
            }
        }
    });
    gx
}

/// Row-major strides of a shape.
pub fn strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * shape[i + 1];
    }
    s
}

/// Offsets visited by walking `shape` in C order, where a step along axis i moves `steps[i]`
/// elements, starting at `base` (an odometer over the axes, last axis fastest).
fn strided_offsets(shape: &[usize], steps: &[usize], base: usize) -> Vec<usize> {
    let n: usize = shape.iter().product();
    let mut offsets = Vec::with_capacity(n);
    let mut counter = vec![0usize; shape.len()];
    let mut offset = base;
    for _ in 0..n {
        offsets.push(offset);
        for ax in (0..shape.len()).rev() {
            counter[ax] += 1;
            offset += steps[ax];
            if counter[ax] < shape[ax] {
                break;
            }
            offset -= steps[ax] * shape[ax];
            counter[ax] = 0;
        }
    }
    offsets
}

/// For each element of the transposed sample, its offset in the input sample.
pub fn transpose_gather_index(shape: &[usize], perm: &[usize]) -> Vec<usize> {
    let in_strides = strides(shape);
    let out_shape: Vec<usize> = perm.iter().map(|&p| shape[p]).collect();
    let src_strides: Vec<usize> = perm.iter().map(|&p| in_strides[p]).collect();
    strided_offsets(&out_shape, &src_strides, 0)
}

/// For each element of the input sample, its offset in the padded sample.
pub fn pad_scatter_index(shape: &[usize], pads: &[usize]) -> Vec<usize> {
    let rank = shape.len();
    let out_shape: Vec<usize> = (0..rank).map(|i| shape[i] + pads[i] + pads[i + rank]).collect();
    let out_strides = strides(&out_shape);
    let base: usize = (0..rank).map(|i| pads[i] * out_strides[i]).sum();
    strided_offsets(shape, &out_strides, base)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Rng;

    /// The transposed convolution by its definition: every weight times every output
    /// coefficient, added into the input pixel its tap reads (padding taps dropped).
    fn reference_backward(c: &Conv2d, gy: &[f64], hw: [usize; 2], ohw: [usize; 2]) -> Vec<f64> {
        let (cg, og) = (c.in_channels / c.groups, c.out_channels / c.groups);
        let [kh, kw] = c.kernel;
        let mut gx = vec![0.0; c.in_channels * hw[0] * hw[1]];
        for o in 0..c.out_channels {
            let g = o / og;
            for oy in 0..ohw[0] {
                for ox in 0..ohw[1] {
                    let v = gy[(o * ohw[0] + oy) * ohw[1] + ox];
                    for ci in 0..cg {
                        for ki in 0..kh {
                            for kj in 0..kw {
                                let iy = (oy * c.stride[0] + ki * c.dilation[0]) as isize - c.pads[0] as isize;
                                let ix = (ox * c.stride[1] + kj * c.dilation[1]) as isize - c.pads[1] as isize;
                                if iy < 0 || ix < 0 || iy as usize >= hw[0] || ix as usize >= hw[1] {
                                    continue;
                                }
                                let w = c.weight[((o * cg + ci) * kh + ki) * kw + kj];
                                gx[((g * cg + ci) * hw[0] + iy as usize) * hw[1] + ix as usize] += w * v;
                            }
                        }
                    }
                }
            }
        }
        gx
    }

    /// Both paths of `conv_backward` (all output positions, and only the few live ones)
    /// match the definition over strides, dilations, asymmetric padding, kernel sizes and
    /// groups, for dense coefficients, a handful of live positions and a single one.
    #[test]
    fn conv_backward_matches_the_definition_on_dense_and_sparse_coefficients() {
        let mut rng = Rng::new(31);
        for case in 0..120 {
            let groups = 1 + rng.below(2);
            let (cin, cout) = (groups * (1 + rng.below(3)), groups * (1 + rng.below(3)));
            let k = [1 + rng.below(4), 1 + rng.below(4)];
            let c = Conv2d {
                weight: rng.normals(cout * cin / groups * k[0] * k[1], 1.0),
                bias: vec![0.0; cout],
                out_channels: cout,
                in_channels: cin,
                kernel: k,
                stride: [1 + rng.below(3), 1 + rng.below(3)],
                pads: [rng.below(3), rng.below(3), rng.below(3), rng.below(3)],
                dilation: [1 + rng.below(2), 1 + rng.below(2)],
                groups,
            };
            let hw = [6 + rng.below(6), 6 + rng.below(6)];
            let span = |i: usize| (hw[i] + c.pads[i] + c.pads[i + 2]).checked_sub(c.dilation[i] * (k[i] - 1) + 1);
            let (Some(sy), Some(sx)) = (span(0), span(1)) else { continue };
            let ohw = [sy / c.stride[0] + 1, sx / c.stride[1] + 1];
            let n = cout * ohw[0] * ohw[1];
            // 0: dense; 1: a few live positions (some channels zero there); 2: one coefficient.
            let gy: Vec<f64> = match case % 3 {
                0 => rng.normals(n, 1.0),
                1 => {
                    let live: Vec<usize> = (0..2).map(|_| rng.below(ohw[0] * ohw[1])).collect();
                    (0..n)
                        .map(|i| {
                            if live.contains(&(i % (ohw[0] * ohw[1]))) && rng.uniform() < 0.7 {
                                rng.range(-1.0, 1.0)
                            } else {
                                0.0
                            }
                        })
                        .collect()
                }
                _ => {
                    let mut v = vec![0.0; n];
                    v[rng.below(n)] = 1.5;
                    v
                }
            };
            let want = reference_backward(&c, &gy, hw, ohw);
            // 300 images, alternately scaled by 1 and -2, to catch a buffer reused dirty
            // (rayon hands several images to one buffer set).
            let scale = |i: usize| if i.is_multiple_of(2) { 1.0 } else { -2.0 };
            let many: Vec<f64> = (0..300).flat_map(|i| gy.iter().map(move |v| scale(i) * v)).collect();
            let got = conv_backward(&c, &many, 300, hw, ohw);
            for (img, got) in got.chunks_exact(want.len()).enumerate() {
                for (i, (a, w)) in got.iter().zip(&want).enumerate() {
                    let w = scale(img) * w;
                    assert!(
                        (a - w).abs() <= 1e-12 * (1.0 + w.abs()),
                        "case {case} image {img} element {i}: {a} vs {w}"
                    );
                }
            }
        }
    }
}
