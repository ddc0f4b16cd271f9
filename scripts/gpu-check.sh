#!/usr/bin/env bash
# One prepared check of rora's CUDA build on a GPU machine with no network (about 10 minutes).
#
# Usage: scripts/gpu-check.sh [RORA_BINARY]
#   RORA_BINARY  a rora built with `--features cuda` (default: target-cuda/release/rora, as
#                README "GPU" builds it); it travels to the GPU machine, nothing is compiled there.
# Env:  PYTHON (default python3: the GPU machine's Python with torch, transformers, peft and
#       NVIDIA's CUDA 13 wheels), RESULTS (default: $OUT when set, else ./gpu-check-results),
#       SHAPES (default "llama-1b llama-8b"), RANKS (default "8 64"), BATCH (4), SEQ (512),
#       STEPS (5 timed), WARMUP (2), ROW_TIMEOUT (seconds per throughput command, 150),
#       GPU_CHECK_DEVICE (default cuda; `cpu` is a dry run of the script's plumbing on a machine
#       without a GPU, e.g. `GPU_CHECK_DEVICE=cpu SHAPES=tiny RANKS=8 BATCH=2 SEQ=32
#       scripts/gpu-check.sh target/release/rora`: every comparison is then cpu against cpu).
#
# Steps, each printed with PASS/FAIL:
#  1. device query: the CUDA libraries the binary needs resolve, and rora opens cuda:0 and reads
#     its memory (`rora plan --device cuda` on the quickstart pipeline);
#  2. the tiny random model's logits on cuda vs cpu: within 1e-3 in f32 and 2e-2 in bf16
#     (`rora model logits --compare cpu`);
#  3. a LoRA and a DoRA training run of 3 steps on cuda and cpu from the same weights and batches:
#     the losses agree within 1e-3 relative (step 2 and 3 see the weights after the updates);
#  4. the quickstart pipeline end to end (`rora run`: model, data, adapters, train, merge, loglik
#     eval, report) on cuda and on cpu with separate caches: every train job's final loss agrees
#     within 1e-2 relative, and the two report tables are printed;
#  5. throughput on LLaMA-shaped random weights (bf16 base, f32 adapters), rora vs PyTorch + PEFT
#     (scripts/peft_gpu_baseline.py) on the same GPU, printed as a table with ratios.
# Exit status: the number of failed checks (throughput rows never fail the run).
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${1:-$ROOT/target-cuda/release/rora}
DEV=${GPU_CHECK_DEVICE:-cuda}
PY=${PYTHON:-python3}
RES=${RESULTS:-${OUT:-$ROOT/gpu-check-results}}
SHAPES=${SHAPES:-"llama-1b llama-8b"}
RANKS=${RANKS:-"8 64"}
BATCH=${BATCH:-4} SEQ=${SEQ:-512} STEPS=${STEPS:-5} WARMUP=${WARMUP:-2} ROW_TIMEOUT=${ROW_TIMEOUT:-150}
mkdir -p "$RES"
FAILS=0
pass() { echo "PASS  $*"; }
fail() { echo "FAIL  $*"; FAILS=$((FAILS + 1)); }

# The CUDA 13 libraries (cudart, cublas, cublasLt, curand, nvrtc) from the Python env's nvidia
# wheels (nvidia/cu13/lib, or nvidia/<name>/lib in older layouts); the driver's libcuda.so.1 from
# the system (or /usr/local/nvidia/lib64).
NVLIBS=$("$PY" - <<'EOF'
import os
try:
    import nvidia
except ImportError:
    raise SystemExit(0)
dirs = []
for base in list(nvidia.__path__):
    for d in sorted(os.listdir(base)):
        lib = os.path.join(base, d, "lib")
        if os.path.isdir(lib):
            dirs.append(lib)
print(":".join(dirs))
EOF
)
for d in /usr/local/nvidia/lib64 /usr/local/nvidia/lib; do [ -d "$d" ] && NVLIBS="$NVLIBS:$d"; done
export LD_LIBRARY_PATH="${NVLIBS}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export RORA_CACHE_DIR="$RES/cache"

echo "== 1. device"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
missing=$(ldd "$BIN" 2>&1 | grep -E "not found" || true)
if [ -n "$missing" ]; then fail "libraries: $missing"; echo "FAILED checks: 1 (the binary cannot start)"; exit 1; fi
pass "libraries resolve: $(ldd "$BIN" | grep -oE 'lib(cuda|cudart|cublas|cublasLt|curand|nvrtc)\.so[.0-9]*' | sort -u | tr '\n' ' ')"
if "$BIN" plan --device "$DEV" >"$RES/plan.txt" 2>&1; then
  pass "rora opens cuda: $(grep -m1 '^memory per train job' "$RES/plan.txt")"
else
  fail "rora plan --device $DEV: $(tail -3 "$RES/plan.txt")"
fi

echo "== 2. logits, cuda vs cpu"
for dt in f32 bf16; do
  if "$BIN" model logits random:tiny,seed=3 --device "$DEV" --compare cpu --dtype "$dt" >"$RES/logits-$dt.json" 2>"$RES/logits-$dt.err"; then
    pass "logits $dt: $(cat "$RES/logits-$dt.json")"
  else
    fail "logits $dt: $(cat "$RES/logits-$dt.json" "$RES/logits-$dt.err" | tail -3)"
  fi
done

echo "== 3. training steps, cuda vs cpu"
for variant in lora dora; do
  flags=(--preset tiny --r 8 --alpha 24 --batch 2 --seq 32 --steps 3 --warmup 0 --seed 5)
  [ "$variant" = dora ] && flags+=(--dora)
  "$BIN" bench train "${flags[@]}" --device cpu >"$RES/step-$variant-cpu.json" 2>&1
  "$BIN" bench train "${flags[@]}" --device "$DEV" >"$RES/step-$variant-$DEV.json" 2>&1
  if verdict=$("$PY" - "$RES/step-$variant-cpu.json" "$RES/step-$variant-$DEV.json" <<'EOF'
import json, sys
a, b = (json.loads(open(f).read().strip().splitlines()[-1])["losses"] for f in sys.argv[1:3])
rel = max(abs(x - y) / max(abs(x), 1e-12) for x, y in zip(a, b))
print(f"cpu {a} cuda {b} max rel diff {rel:.2e}")
sys.exit(0 if len(a) == len(b) == 3 and rel <= 1e-3 else 1)
EOF
  ); then pass "$variant step: $verdict"; else fail "$variant step: $verdict $(tail -2 "$RES/step-$variant-$DEV.json")"; fi
done

echo "== 4. the quickstart pipeline, cuda vs cpu"
for dev in "$DEV" cpu; do
  start=$(date +%s)
  if RORA_CACHE_DIR="$RES/qs-$dev" "$BIN" run "$ROOT/pipelines/quickstart.kdl" --device "$dev" >"$RES/qs-$dev.log" 2>&1; then
    pass "quickstart on $dev: $(tail -1 "$RES/qs-$dev.log") ($(( $(date +%s) - start )) s)"
  else
    fail "quickstart on $dev: $(tail -3 "$RES/qs-$dev.log")"
  fi
done
if verdict=$("$PY" - "$RES/qs-cpu" "$RES/qs-$DEV" <<'EOF'
import json, pathlib, sys
cpu, cuda = map(pathlib.Path, sys.argv[1:3])
worst, n = 0.0, 0
def last(f):
    return [json.loads(l)["loss"] for l in f.read_text().splitlines() if '"train"' in l][-1]
for m in sorted(cpu.rglob("metrics.jsonl")):
    a, b = last(m), last(cuda / m.relative_to(cpu))
    worst, n = max(worst, abs(a - b) / abs(a)), n + 1
for t in sorted(cpu.rglob("table.md")):
    print(f"--- cpu\n{t.read_text()}--- cuda\n{(cuda / t.relative_to(cpu)).read_text()}", file=sys.stderr)
print(f"{n} train jobs, final losses max rel diff {worst:.2e}")
sys.exit(0 if n == 6 and worst <= 1e-2 else 1)
EOF
); then pass "quickstart losses: $verdict"; else fail "quickstart losses: $verdict"; fi
# the same pipeline with a bf16 base (the train stage computes in the model stage's dtype; adapters f32)
sed 's/dtype "f32"/dtype "bf16"/' "$ROOT/pipelines/quickstart.kdl" >"$ROOT/pipelines/.quickstart-bf16.kdl"
start=$(date +%s)
if RORA_CACHE_DIR="$RES/qs-bf16" "$BIN" run "$ROOT/pipelines/.quickstart-bf16.kdl" --device "$DEV" >"$RES/qs-bf16.log" 2>&1; then
  pass "quickstart, bf16 base, on cuda: $(tail -1 "$RES/qs-bf16.log") ($(( $(date +%s) - start )) s)"
  find "$RES/qs-bf16" -name table.md -exec cat {} \;
else
  fail "quickstart, bf16 base, on cuda: $(tail -3 "$RES/qs-bf16.log")"
fi

echo "== 5. throughput (bf16 base, f32 adapters, batch $BATCH x seq $SEQ, $STEPS timed steps)"
printf '%-10s %4s  %14s  %14s  %7s\n' shape r "rora tok/s" "peft tok/s" ratio | tee "$RES/throughput.txt"
for shape in $SHAPES; do
  for r in $RANKS; do
    timeout "$ROW_TIMEOUT" "$BIN" bench train --preset "$shape" --r "$r" --dtype bf16 --device "$DEV" --batch "$BATCH" --seq "$SEQ" \
      --steps "$STEPS" --warmup "$WARMUP" >"$RES/rora-$shape-$r.json" 2>"$RES/rora-$shape-$r.err"
    timeout "$ROW_TIMEOUT" "$PY" "$ROOT/scripts/peft_gpu_baseline.py" --shape "$shape" --r "$r" --dtype bf16 --batch "$BATCH" \
      --seq "$SEQ" --steps "$STEPS" --warmup "$WARMUP" --device "$DEV" >"$RES/peft-$shape-$r.json" 2>"$RES/peft-$shape-$r.err"
    "$PY" - "$shape" "$r" "$RES/rora-$shape-$r.json" "$RES/peft-$shape-$r.json" <<'EOF' | tee -a "$RES/throughput.txt"
import json, sys
def tps(f):
    try:
        return json.loads(open(f).read().strip().splitlines()[-1])["tokens_per_s"]
    except Exception:
        return None
a, b = tps(sys.argv[3]), tps(sys.argv[4])
ratio = f"{a / b:.2f}" if a and b else "n/a"
print(f"{sys.argv[1]:<10} {sys.argv[2]:>4}  {a if a else 'failed':>14}  {b if b else 'failed':>14}  {ratio:>7}")
EOF
  done
done

echo "FAILED checks: $FAILS (results in $RES)"
exit "$FAILS"
