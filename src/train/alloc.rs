//! Allocator tuning for training processes (glibc only).
//!
//! Candle allocates a fresh buffer for every op's output and every gradient. glibc serves
//! allocations above its mmap threshold (128 KiB, adaptive up to 32 MiB) with fresh `mmap`s, so
//! each step page-faults and zeroes its activation memory again: a profile of the tiny preset spent
//! about a fifth of its time in the kernel's page-fault path. Raising the mmap and trim thresholds
//! keeps freed blocks in the heap for reuse by the next step. Peak memory is unchanged (the same
//! blocks are live at the peak); the heap simply is not returned to the OS between steps.

/// Keep large blocks in the heap (call once, before training). No-op off glibc.
pub fn keep_freed_memory_for_reuse() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; it is safe to call at any time.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 30);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
    }
}
