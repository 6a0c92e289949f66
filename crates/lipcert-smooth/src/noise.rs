//! Gaussian noise for smoothing, in f32: a counter-based generator (the SplitMix64 output
//! function applied to `key + counter`), so every element depends only on (key, position)
//! and batches can be filled in parallel blocks with results independent of the thread count;
//! Box-Muller turns each 64-bit draw into two standard normals.
//!
//! The first uniform is `(k + 1/2) 2^-32` for a 32-bit k, so the radius sqrt(-2 ln u) reaches
//! 6.77 standard deviations (the mass beyond, 1.3e-11 per coordinate, is not sampled).

use rayon::prelude::*;

const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;
/// Elements per parallel block (even, so blocks start on a Box-Muller pair).
const BLOCK: usize = 1 << 13;

#[inline(always)]
pub fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A key for a stream, from a seed and stream indices.
pub fn stream_key(seed: u64, a: u64, b: u64) -> u64 {
    mix64(mix64(seed ^ GOLDEN).wrapping_add(a.wrapping_mul(GOLDEN)) ^ mix64(b.wrapping_add(0x632B_E59B_D9B4_E019)))
}

/// Two standard normals from draw number `counter` of stream `key`.
#[inline(always)]
fn normal_pair(key: u64, counter: u64) -> (f32, f32) {
    let r = mix64(key.wrapping_add(counter.wrapping_mul(GOLDEN)));
    let u1 = ((r >> 32) as f32 + 0.5) * (1.0 / 4_294_967_296.0);
    let u2 = ((r as u32) >> 8) as f32 * (1.0 / 16_777_216.0);
    let rad = (-2.0 * u1.ln()).sqrt();
    let (s, c) = (std::f32::consts::TAU * u2).sin_cos();
    (rad * c, rad * s)
}

/// `out[r * d + i] = x[i] + sigma * z` for every row r, with z standard normal drawn from
/// stream `key` at position `r * d + i`.
pub fn noisy_copies(x: &[f32], sigma: f32, key: u64, out: &mut [f32]) {
    let d = x.len();
    let fill = |(b, block): (usize, &mut [f32])| {
        let start = b * BLOCK;
        let mut pos = start;
        let mut chunks = block.chunks_exact_mut(2);
        for pair in &mut chunks {
            let (z0, z1) = normal_pair(key, (pos / 2) as u64);
            pair[0] = x[pos % d] + sigma * z0;
            pair[1] = x[(pos + 1) % d] + sigma * z1;
            pos += 2;
        }
        if let [last] = chunks.into_remainder() {
            let (z0, _) = normal_pair(key, (pos / 2) as u64);
            *last = x[pos % d] + sigma * z0;
        }
    };
    if out.len() > 2 * BLOCK && rayon::current_num_threads() > 1 {
        out.par_chunks_mut(BLOCK).enumerate().for_each(fill);
    } else {
        out.chunks_mut(BLOCK).enumerate().for_each(fill);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn noise_is_standard_normal_and_reproducible() {
        let x = vec![0.0f32; 7];
        let mut a = vec![0.0f32; 7 * 30_001];
        noisy_copies(&x, 1.0, stream_key(1, 2, 3), &mut a);
        let n = a.len() as f64;
        let mean = a.iter().map(|&v| v as f64).sum::<f64>() / n;
        let var = a.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
        let kurt = a.iter().map(|&v| (v as f64 - mean).powi(4)).sum::<f64>() / n / (var * var);
        assert!(mean.abs() < 0.01 && (var - 1.0).abs() < 0.01 && (kurt - 3.0).abs() < 0.05, "{mean} {var} {kurt}");
        // Tail mass beyond 2 and 3 standard deviations.
        let beyond = |t: f32| a.iter().filter(|v| v.abs() > t).count() as f64 / n;
        assert!((beyond(2.0) - 0.0455).abs() < 0.002 && (beyond(3.0) - 0.0027).abs() < 0.0005);
        // Neighbouring coordinates are uncorrelated.
        let corr = a.windows(2).map(|w| w[0] as f64 * w[1] as f64).sum::<f64>() / n;
        assert!(corr.abs() < 0.01, "{corr}");
        let mut b = vec![0.0f32; a.len()];
        noisy_copies(&x, 1.0, stream_key(1, 2, 3), &mut b);
        assert_eq!(a, b);
        noisy_copies(&x, 1.0, stream_key(1, 2, 4), &mut b);
        assert_ne!(a, b);
    }
}
