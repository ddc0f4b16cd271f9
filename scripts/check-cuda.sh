#!/usr/bin/env bash
# Build rora's `cuda` feature on a machine without a GPU (CI's kind of machine) and check that the
# binary starts and reports the missing GPU clearly. Not part of .ci/run: candle-kernels' nvcc step
# alone takes longer than CI's remaining time on 2 cores (docs/BENCHMARKS.md, "CUDA").
#
# Usage: scripts/check-cuda.sh          (env: CARGO_TARGET_DIR, default target-cuda; JOBS, default 2)
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/cuda-toolchain.sh
source scripts/cuda-toolchain.sh
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target-cuda}
cargo build --release --features cuda -j "${JOBS:-2}"
BIN="$CARGO_TARGET_DIR/release/rora"
# the wheels' libraries and the stub driver (every call: CUDA_ERROR_NO_DEVICE)
rora_cuda_stub_env
if out=$("$BIN" plan --device cuda 2>&1); then
  echo "FAIL: --device cuda opened without a GPU" >&2
  exit 1
fi
grep -q "no usable CUDA GPU" <<<"$out" || { echo "FAIL: unexpected error: $out" >&2; exit 1; }
"$BIN" plan --device auto >/dev/null # auto falls back to the CPU
echo "ok: the cuda build starts, --device cuda without a GPU is a clear error, auto falls back to cpu"
