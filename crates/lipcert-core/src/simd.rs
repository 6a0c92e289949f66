//! [`multiversion!`](crate::multiversion): a function compiled three times, for AVX-512,
//! for AVX2 + FMA and for the baseline, with the widest one this CPU has picked at run time,
//! so that its loops are vectorized for that unit. Plain Rust arithmetic gives the same values
//! on every path (no fused multiply-add is formed from `*` and `+`).
//!
//! (A closure passed to one `#[target_feature]` function was not inlined into it and ran at
//! the baseline's width; the body must be an `#[inline(always)]` function, as here.)

/// Whether this CPU has the AVX-512 subset the fast path is compiled for.
#[cfg(target_arch = "x86_64")]
pub fn has_avx512() -> bool {
    std::arch::is_x86_feature_detected!("avx512f")
        && std::arch::is_x86_feature_detected!("avx512dq")
        && std::arch::is_x86_feature_detected!("avx512vl")
        && std::arch::is_x86_feature_detected!("avx512bw")
}

/// Whether this CPU has AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
pub fn has_avx2() -> bool {
    std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
}

/// `multiversion! { fn name(a: A, b: B) { body } }` defines `fn name(a: A, b: B)` that runs
/// `body` compiled for the best vector unit available (see the module documentation).
#[macro_export]
macro_rules! multiversion {
    ($(#[$meta:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $body:block) => {
        $(#[$meta])*
        $vis fn $name($($arg: $ty),*) {
            #[inline(always)]
            fn body($($arg: $ty),*) $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx512dq,avx512vl,avx512bw,avx2,fma")]
                fn wide($($arg: $ty),*) { body($($arg),*) }
                #[target_feature(enable = "avx2,fma")]
                fn avx2($($arg: $ty),*) { body($($arg),*) }
                if $crate::simd::has_avx512() {
                    // SAFETY: the features `wide` is compiled for were detected on this CPU.
                    return unsafe { wide($($arg),*) };
                }
                if $crate::simd::has_avx2() {
                    // SAFETY: as above.
                    return unsafe { avx2($($arg),*) };
                }
            }
            body($($arg),*)
        }
    };
}

#[cfg(test)]
mod tests {
    crate::multiversion! {
        fn scale_add(v: &[f32], out: &mut [f32]) {
            for (o, x) in out.iter_mut().zip(v) {
                *o = x * 3.0 + 1.0;
            }
        }
    }

    #[test]
    fn every_version_gives_the_same_values() {
        let v: Vec<f32> = (0..1000).map(|i| i as f32 * 0.37).collect();
        let mut out = vec![0.0f32; v.len()];
        scale_add(&v, &mut out);
        let plain: Vec<f32> = v.iter().map(|x| x * 3.0 + 1.0).collect();
        assert_eq!(out, plain);
    }
}
