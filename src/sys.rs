//! The operating-system calls that need `unsafe` outside the kernels (`crate::cpu`), each in one
//! place with its safety argument: read-only maps of files rora reads (model weights, tokenized
//! datasets), and the process's CPU time and peak memory.

#![allow(unsafe_code)]

use std::fs::File;

use memmap2::Mmap;

/// A read-only map of `file`.
///
/// rora never writes a file it maps: model files are inputs, and cache entries are immutable once
/// committed (the store renames a finished staging directory into place). A concurrent external
/// truncation is the usual mmap caveat, as in candle's and safetensors' own loaders.
pub fn map_readonly(file: &File) -> std::io::Result<Mmap> {
    // SAFETY: see above; the map is read-only and outlives no file handle it needs.
    unsafe { Mmap::map(file) }
}

/// This process's resource usage (CPU time, peak resident memory), where the OS reports it.
pub fn rusage() -> Option<libc::rusage> {
    // SAFETY: getrusage fills the struct it is given; a zeroed rusage is a valid value of it.
    let mut r: libc::rusage = unsafe { std::mem::zeroed() };
    (unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut r) } == 0).then_some(r)
}

/// User + system CPU seconds of this process so far (0 where the OS does not say).
pub fn cpu_seconds() -> f64 {
    rusage().map_or(0.0, |r| {
        let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
        tv(r.ru_utime) + tv(r.ru_stime)
    })
}

/// Peak resident memory of this process in MiB (0 where the OS does not say).
pub fn peak_rss_mb() -> f64 {
    rusage().map_or(0.0, |r| r.ru_maxrss as f64 / 1024.0)
}

/// The local time formatted with C's `strftime` (Python's `time.strftime` is a thin wrapper
/// around the same call): chat templates' `strftime_now`. `None` when the result does not fit
/// 512 bytes or the format holds a NUL.
pub fn strftime_now(format: &str) -> Option<String> {
    let fmt = std::ffi::CString::new(format).ok()?;
    let mut buf = [0u8; 512];
    // SAFETY: `time` and `localtime_r` write only into the locals given; `strftime` writes at most
    // `buf.len()` bytes into `buf` and returns how many it wrote (0 on overflow).
    let n = unsafe {
        let now = libc::time(std::ptr::null_mut());
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&now, &mut tm).is_null() {
            return None;
        }
        libc::strftime(buf.as_mut_ptr().cast(), buf.len(), fmt.as_ptr(), &tm)
    };
    if n == 0 && !format.is_empty() {
        return None;
    }
    Some(String::from_utf8_lossy(&buf[..n]).into_owned())
}
