//! What can go wrong between rora and Slurm: a profile that does not parse, a command that is
//! missing or refuses, an answer rora cannot read, a store that cannot be shared.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum SlurmError {
    #[error("{}:{line}:{col}: {msg}", path.display())]
    Profile {
        path: PathBuf,
        line: usize,
        col: usize,
        msg: String,
    },
    #[error("cannot read the Slurm profile {}: {source}", path.display())]
    ProfileRead {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "--resources {text:?}: {why} (expected `STAGE:key=value,...`, keys cpus, mem, time, gpus)"
    )]
    Override { text: String, why: String },
    #[error("cannot run `{program}`: {source} (is Slurm installed here, and SLURM_CONF set?)")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`{command}` failed ({status}): {stderr}")]
    Command {
        command: String,
        status: String,
        stderr: String,
    },
    #[error("`{command}` printed {output:?}, not a job id")]
    BadJobId { command: String, output: String },
    #[error(
        "the store {} cannot be shared by Slurm jobs: {why}. rora needs advisory locks (flock) that \
         work across nodes and atomic renames within the store; put the cache on a filesystem that \
         has them (docs/SLURM.md)",
        path.display()
    )]
    Store { path: PathBuf, why: String },
}
