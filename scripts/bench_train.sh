#!/usr/bin/env bash
# Side-by-side training throughput: rora (`rora bench train`) vs PyTorch + transformers + PEFT
# (../shared/bench/peft_baseline.py), on the rows of issue 4, with 2 threads each. For every row
# and repeat the peer and rora run back to back (same minute), so machine load hits both alike.
#
# Usage: scripts/bench_train.sh [STEPS]        (default 5 timed steps after 2 warm-up steps)
# Env:   RORA_SHARED_DIR  (default ../shared)
#        PEFT_VENV        (default: setup.sh's default, $TMPDIR/peft-venv; made by setup.sh if missing)
#        WARMUP           (default 2) untimed steps before the timed ones
#        REPEATS          (default 2) pairs per row; the table gives the median ratio and its range
#        THREADS          (default 2) RAYON_NUM_THREADS / torch threads
#        RORA_BIN         (default target/release/rora, built first)
#        RORA_BEFORE      optional older rora binary, run in the same minute as a "before" column
#        ROWS="preset:r:batch:variant:dtype ..." (dtype is rora's base dtype; the peer always runs fp32)
# Prints one JSON line per run on stderr and a table on stdout.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SHARED=${RORA_SHARED_DIR:-$ROOT/../shared}
VENV=${PEFT_VENV:-${TMPDIR:-/tmp}/peft-venv}
STEPS=${1:-5}
WARMUP=${WARMUP:-2}
REPEATS=${REPEATS:-2}
THREADS=${THREADS:-2}
export RAYON_NUM_THREADS=$THREADS OMP_NUM_THREADS=$THREADS MKL_NUM_THREADS=$THREADS
ROWS=${ROWS:-"tiny:8:8:lora:fp32 tiny:64:8:lora:fp32 smollm2-135m:8:4:lora:fp32 smollm2-135m:8:4:dora:fp32"}

"$SHARED/bench/setup.sh" "$VENV" >&2
if [ -z "${RORA_BIN:-}" ]; then
  (cd "$ROOT" && cargo build --release --bin rora >&2)
  RORA_BIN="$ROOT/target/release/rora"
fi
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)

for row in $ROWS; do
  IFS=: read -r preset r batch variant dtype <<<"$row"
  flags=()
  [ "$variant" = dora ] && flags+=(--dora)
  [ "$variant" = rslora ] && flags+=(--rslora)
  common=(--preset "$preset" --r "$r" --batch "$batch" --seq 128 --steps "$STEPS" --warmup "$WARMUP" "${flags[@]}")
  for rep in $(seq 1 "$REPEATS"); do
    "$VENV/bin/python" "$SHARED/bench/peft_baseline.py" "${common[@]}" --threads "$THREADS" --dtype fp32 --quiet \
      | tail -n1 | tee "$OUT/peft-$row-$rep.json" >&2
    "$RORA_BIN" bench train "${common[@]}" --dtype "$dtype" | tail -n1 | tee "$OUT/rora-$row-$rep.json" >&2
    if [ -n "${RORA_BEFORE:-}" ]; then
      "$RORA_BEFORE" bench train "${common[@]}" --dtype "$dtype" | tail -n1 | tee "$OUT/before-$row-$rep.json" >&2
    fi
  done
done

python3 - "$OUT" "$REPEATS" "$THREADS" "$LOAD_START" "$(cut -d' ' -f1-3 /proc/loadavg)" $ROWS <<'PY'
import json, sys, os, statistics as st
out, reps, threads, load0, load1, rows = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6:]
before = os.path.exists(os.path.join(out, f"before-{rows[0]}-1.json"))
bh = " before tok/s | before ratio |" if before else ""
print(f"| preset | r | batch | variant | rora dtype | peft fp32 tok/s |{bh} rora tok/s | ratio (median, range) | peft RSS MB | rora RSS MB |")
print("|---|---|---|---|---|---|" + ("---|---|" if before else "") + "---|---|---|---|")
for row in rows:
    preset, r, batch, variant, dtype = row.split(":")
    p = [json.load(open(os.path.join(out, f"peft-{row}-{i}.json"))) for i in range(1, reps + 1)]
    q = [json.load(open(os.path.join(out, f"rora-{row}-{i}.json"))) for i in range(1, reps + 1)]
    ratios = [b["tokens_per_s"] / a["tokens_per_s"] for a, b in zip(p, q)]
    pt = st.median(a["tokens_per_s"] for a in p)
    rt = st.median(b["tokens_per_s"] for b in q)
    bc = ""
    if before:
        o = [json.load(open(os.path.join(out, f"before-{row}-{i}.json"))) for i in range(1, reps + 1)]
        br = [b["tokens_per_s"] / a["tokens_per_s"] for a, b in zip(p, o)]
        bc = f" {st.median(b['tokens_per_s'] for b in o):.1f} | {st.median(br):.2f} |"
    print(f"| {preset} | {r} | {batch} | {variant} | {dtype} | {pt:.1f} |{bc} {rt:.1f} | "
          f"{st.median(ratios):.2f} ({min(ratios):.2f}-{max(ratios):.2f}) | "
          f"{max(a['peak_rss_mb'] for a in p):.0f} | {max(b['peak_rss_mb'] for b in q):.0f} |")
print(f"threads: RAYON_NUM_THREADS={threads}, torch threads {threads}; {os.cpu_count()} CPUs visible; "
      f"{reps} back-to-back pairs per row; load average at start {load0}, at end {load1}")
PY
