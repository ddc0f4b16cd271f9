//! The `rora` binary: process-level setup, then the CLI.

fn main() -> std::process::ExitCode {
    keep_freed_memory_for_reuse();
    rora::cli::main()
}

/// Allocator tuning for this process (glibc only); `RORA_NO_MALLOPT=1` skips it.
///
/// Candle allocates a fresh buffer for every op's output and every gradient. glibc serves
/// allocations above its mmap threshold (128 KiB, adaptive up to 32 MiB) with fresh `mmap`s, so
/// each training step page-faults and zeroes its activation memory again: a profile of the tiny
/// preset spent about a fifth of its time in the kernel's page-fault path. Raising the mmap and
/// trim thresholds keeps freed blocks in the heap for reuse by the next step. Peak memory is
/// unchanged (the same blocks are live at the peak); the heap is not returned to the OS between
/// steps. Results do not depend on it.
fn keep_freed_memory_for_reuse() {
    if std::env::var_os("RORA_NO_MALLOPT").is_some() {
        return;
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; called before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 30);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
    }
}
