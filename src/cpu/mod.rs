//! CPU kernels, behind one seam: the fused ops with their backward passes (RMSNorm, SwiGLU, RoPE,
//! attention softmax, cached attention, the fused decoder layer's slice kernels, the fused LoRA
//! projection and the frozen matmul), the vectorised exponential, and the scoring kernel of
//! evaluation. This is where `unsafe` lives (the crate denies it elsewhere, except `crate::sys`):
//! AVX2 builds of auto-vectorised loops, and disjoint parallel writes into one output.
//!
//! - [`has_avx2`] is the one run-time feature check.
//! - [`simd_fn!`] is the one multiversioning pattern: a kernel body written to auto-vectorize,
//!   compiled a second time with AVX2 + FMA enabled and picked at run time. Rust never contracts
//!   `a * b + c` into a fused multiply-add, so both builds give the same bits (tests compare them).
//!
//! Guarantees of every kernel: results do not depend on the number of threads (fixed reduction
//! orders); the f32 exponential is [`fastexp::exp_approx`] (relative error < 3e-7).
//!
//! Adding a kernel: write the body as an `#[inline(always)]` function over slices, wrap it with
//! `simd_fn!` if it benefits from 8 lanes, keep any `unsafe` inside this module with a `SAFETY:`
//! comment, and test it against a plain reference (and both builds against each other).

#![allow(unsafe_code)]

pub(crate) mod block_kernels;
pub(crate) mod block_proj;
pub mod fastexp;
pub mod frozen;
pub(crate) mod fused;
pub(crate) mod fused_attn;
pub mod fused_lora;
pub(crate) mod math;

use std::sync::OnceLock;

/// The additive attention bias of a masked position (softmax weight 0 after rounding).
pub const MASKED: f32 = -1e30;

/// Whether this CPU has AVX2 and FMA (checked once per process).
pub fn has_avx2() -> bool {
    static AVX2: OnceLock<bool> = OnceLock::new();
    *AVX2.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        {
            std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            false
        }
    })
}

/// `simd_fn!(vis name => body(args) -> R)`: `fn name(args) -> R` running the `#[inline(always)]`
/// kernel `body`, compiled a second time with AVX2 and FMA and picked when [`has_avx2`].
/// `simd_fn!(flag vis name => body(args) -> R)`: the same with a leading `avx2: bool` argument,
/// so tests can run both builds; the AVX2 build runs only when the flag is set *and* the CPU has
/// it, so no caller can reach it on a CPU without.
macro_rules! simd_fn {
    (@pick $avx2:expr, $body:ident ( $($arg:ident : $ty:ty),* ) -> $ret:ty) => {{
        let use_avx2: bool = $avx2;
        #[cfg(target_arch = "x86_64")]
        {
            #[target_feature(enable = "avx2,fma")]
            fn avx2_build($($arg: $ty),*) -> $ret {
                $body($($arg),*)
            }
            if use_avx2 {
                // SAFETY: taken only when `has_avx2()` says the CPU supports AVX2 and FMA.
                return unsafe { avx2_build($($arg),*) };
            }
        }
        let _ = use_avx2;
        $body($($arg),*)
    }};
    (flag $(#[$m:meta])* $vis:vis $name:ident => $body:ident ( $($arg:ident : $ty:ty),* $(,)? ) -> $ret:ty) => {
        $(#[$m])*
        $vis fn $name(avx2: bool, $($arg: $ty),*) -> $ret {
            $crate::cpu::simd_fn!(@pick avx2 && $crate::cpu::has_avx2(), $body ( $($arg : $ty),* ) -> $ret)
        }
    };
    ($(#[$m:meta])* $vis:vis $name:ident => $body:ident ( $($arg:ident : $ty:ty),* $(,)? ) -> $ret:ty) => {
        $(#[$m])*
        $vis fn $name($($arg: $ty),*) -> $ret {
            $crate::cpu::simd_fn!(@pick $crate::cpu::has_avx2(), $body ( $($arg : $ty),* ) -> $ret)
        }
    };
}
pub(crate) use simd_fn;
