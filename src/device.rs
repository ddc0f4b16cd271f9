//! Compute devices: parsing `cpu | cuda[:N] | auto`, opening them with clear errors, and what
//! they have (name, memory).
//!
//! Guarantees: [`DeviceSpec::parse`] accepts exactly `cpu`, `auto`, `cuda` and `cuda:N`;
//! [`DeviceSpec::open`] never panics: `cuda` in a build without the `cuda` feature is
//! [`DeviceError::NotCompiled`], `cuda` with the feature but no usable GPU (no driver, no device,
//! bad ordinal) is [`DeviceError::Unavailable`]; `auto` is the first GPU when one opens, else the
//! CPU. [`DeviceInfo::query`] reports total memory from the driver (CUDA) or `/proc/meminfo` (CPU).

use std::fmt;

use candle_core::Device;

/// Whether this build of rora has CUDA support compiled in.
pub const CUDA_COMPILED: bool = cfg!(feature = "cuda");

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum DeviceError {
    #[error("unknown device `{0}` (expected cpu, cuda, cuda:N or auto)")]
    Unknown(String),
    #[error(
        "device `{0}`: this build of rora has no CUDA support (build with `--features cuda`, see README \"GPU\"), or use --device cpu"
    )]
    NotCompiled(String),
    #[error("device `{spec}`: no usable CUDA GPU: {reason}")]
    Unavailable { spec: String, reason: String },
}

/// A device as named on the command line or in a pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceSpec {
    Cpu,
    Cuda(usize),
    Auto,
}

impl DeviceSpec {
    pub fn parse(s: &str) -> Result<Self, DeviceError> {
        match s.trim() {
            "cpu" => Ok(Self::Cpu),
            "auto" => Ok(Self::Auto),
            "cuda" => Ok(Self::Cuda(0)),
            t => t
                .strip_prefix("cuda:")
                .and_then(|n| n.parse().ok())
                .map(Self::Cuda)
                .ok_or_else(|| DeviceError::Unknown(s.to_string())),
        }
    }

    /// Open the device. `auto` falls back to the CPU; `cuda` never does.
    pub fn open(self) -> Result<Device, DeviceError> {
        match self {
            Self::Cpu => Ok(Device::Cpu),
            Self::Auto => Ok(if CUDA_COMPILED {
                Device::new_cuda(0).unwrap_or(Device::Cpu)
            } else {
                Device::Cpu
            }),
            Self::Cuda(n) => {
                let spec = self.to_string();
                if !CUDA_COMPILED {
                    return Err(DeviceError::NotCompiled(spec));
                }
                Device::new_cuda(n).map_err(|e| DeviceError::Unavailable {
                    spec,
                    reason: first_line(&e.to_string()),
                })
            }
        }
    }
}

impl fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Cpu => write!(f, "cpu"),
            Self::Auto => write!(f, "auto"),
            Self::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or(s).to_string()
}

/// What a device is and how much memory it has.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceInfo {
    /// `cpu` or `cuda:N`.
    pub label: String,
    /// The GPU's name, or the CPU's model name when known.
    pub name: String,
    /// Total memory in bytes (GPU memory, or RAM), when known.
    pub total_bytes: Option<u64>,
    /// Free memory in bytes (GPU free memory, or MemAvailable), when known.
    pub free_bytes: Option<u64>,
    /// `(major, minor)` compute capability of a GPU.
    pub compute_capability: Option<(i32, i32)>,
}

impl DeviceInfo {
    pub fn query(device: &Device) -> Self {
        match device {
            #[cfg(feature = "cuda")]
            Device::Cuda(d) => cuda_info(d),
            _ => cpu_info(),
        }
    }
}

fn cpu_info() -> DeviceInfo {
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    DeviceInfo {
        label: "cpu".into(),
        name: cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .map(|l| l.trim_start_matches([' ', '\t', ':']).to_string())
            .unwrap_or_else(|| "cpu".into()),
        total_bytes: meminfo_kib(&meminfo, "MemTotal").map(|k| k * 1024),
        free_bytes: meminfo_kib(&meminfo, "MemAvailable").map(|k| k * 1024),
        compute_capability: None,
    }
}

/// A `/proc/meminfo` field in KiB.
pub fn meminfo_kib(text: &str, field: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let rest = l.strip_prefix(field)?.strip_prefix(':')?;
        rest.split_whitespace().next()?.parse().ok()
    })
}

#[cfg(feature = "cuda")]
fn cuda_info(d: &candle_core::CudaDevice) -> DeviceInfo {
    let stream = d.cuda_stream();
    let ctx = stream.context();
    let (free, total) = ctx
        .mem_get_info()
        .map(|(f, t)| (Some(f as u64), Some(t as u64)))
        .unwrap_or((None, None));
    DeviceInfo {
        label: format!("cuda:{}", ctx.ordinal()),
        name: ctx.name().unwrap_or_else(|_| "CUDA device".into()),
        total_bytes: total,
        free_bytes: free,
        compute_capability: ctx.compute_capability().ok(),
    }
}

/// Whether an error (as text) is the device running out of memory (CUDA's
/// `CUDA_ERROR_OUT_OF_MEMORY`, cuBLAS's `CUBLAS_STATUS_ALLOC_FAILED`, or an allocation failure).
pub fn is_out_of_memory(message: &str) -> bool {
    const SIGNS: [&str; 4] = [
        "CUDA_ERROR_OUT_OF_MEMORY",
        "CUBLAS_STATUS_ALLOC_FAILED",
        "out of memory",
        "memory allocation of",
    ];
    SIGNS.iter().any(|s| message.contains(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_four_forms_and_rejects_others() {
        assert_eq!(DeviceSpec::parse("cpu"), Ok(DeviceSpec::Cpu));
        assert_eq!(DeviceSpec::parse("auto"), Ok(DeviceSpec::Auto));
        assert_eq!(DeviceSpec::parse("cuda"), Ok(DeviceSpec::Cuda(0)));
        assert_eq!(DeviceSpec::parse("cuda:3"), Ok(DeviceSpec::Cuda(3)));
        for bad in ["gpu", "cuda:", "cuda:x", "cuda:-1", "metal", ""] {
            assert_eq!(
                DeviceSpec::parse(bad),
                Err(DeviceError::Unknown(bad.into())),
                "{bad}"
            );
        }
        assert_eq!(DeviceSpec::Cuda(2).to_string(), "cuda:2");
    }

    #[test]
    fn cpu_and_auto_open_without_a_gpu() {
        assert!(DeviceSpec::Cpu.open().is_ok_and(|d| d.is_cpu()));
        // auto never fails: a GPU when one opens, else the CPU
        assert!(DeviceSpec::Auto.open().is_ok());
    }

    #[test]
    fn cuda_without_support_is_a_clear_error() {
        let err = DeviceSpec::Cuda(0).open();
        if CUDA_COMPILED {
            // with the feature, only a machine with a GPU opens it; otherwise Unavailable
            if let Err(e) = err {
                assert!(matches!(e, DeviceError::Unavailable { .. }), "{e}");
                assert!(e.to_string().contains("no usable CUDA GPU"));
            }
        } else {
            let e = err.expect_err("cuda must not open without the feature");
            assert_eq!(e, DeviceError::NotCompiled("cuda:0".into()));
            assert!(e.to_string().contains("--features cuda"));
        }
    }

    #[test]
    fn meminfo_fields() {
        let t = "MemTotal:       24576000 kB\nMemFree:  100 kB\nMemAvailable:   20000000 kB\n";
        assert_eq!(meminfo_kib(t, "MemTotal"), Some(24_576_000));
        assert_eq!(meminfo_kib(t, "MemAvailable"), Some(20_000_000));
        assert_eq!(meminfo_kib(t, "SwapTotal"), None);
        let cpu = DeviceInfo::query(&Device::Cpu);
        assert_eq!(cpu.label, "cpu");
        if std::path::Path::new("/proc/meminfo").exists() {
            assert!(cpu.total_bytes.is_some_and(|b| b > 1 << 20));
        }
    }

    #[test]
    fn out_of_memory_messages() {
        assert!(is_out_of_memory(
            "DriverError(CUDA_ERROR_OUT_OF_MEMORY, \"out of memory\")"
        ));
        assert!(is_out_of_memory("cublas: CUBLAS_STATUS_ALLOC_FAILED"));
        assert!(!is_out_of_memory("shape mismatch in matmul"));
    }
}
