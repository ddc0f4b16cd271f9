#!/usr/bin/env bash
# Side-by-side training throughput: rora (`rora bench train`) vs PyTorch + transformers + PEFT
# (../shared/bench/peft_baseline.py), on the rows of issue 4, with 2 threads each.
#
# Usage: scripts/bench_train.sh [STEPS]        (default 10 timed steps, 3 warm-up)
# Env:   RORA_SHARED_DIR (default ../shared), PEFT_VENV (default $TMPDIR/peft-venv),
#        ROWS="preset:r:batch:variant:dtype ..." to override the rows.
# Prints one JSON line per run on stderr and a table with tokens/s ratios on stdout.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SHARED=${RORA_SHARED_DIR:-$ROOT/../shared}
VENV=${PEFT_VENV:-${TMPDIR:-/tmp}/peft-venv}
STEPS=${1:-10}
export RAYON_NUM_THREADS=2 OMP_NUM_THREADS=2 MKL_NUM_THREADS=2
ROWS=${ROWS:-"tiny:8:8:lora:fp32 tiny:64:8:lora:fp32 tiny:8:8:dora:fp32 smollm2-135m:8:4:lora:fp32 smollm2-135m:8:4:dora:fp32 tiny:8:8:lora:bf16 smollm2-135m:8:4:lora:bf16"}

"$SHARED/bench/setup.sh" "$VENV" >&2
(cd "$ROOT" && cargo build --release --bin rora >&2)
RORA="$ROOT/target/release/rora"
OUT=$(mktemp -d)

for row in $ROWS; do
  IFS=: read -r preset r batch variant dtype <<<"$row"
  flags=()
  [ "$variant" = dora ] && flags+=(--dora)
  [ "$variant" = rslora ] && flags+=(--rslora)
  common=(--preset "$preset" --r "$r" --batch "$batch" --seq 128 --steps "$STEPS" --warmup 3 "${flags[@]}")
  # the peer always runs fp32 here: the same-dtype row and the baseline for rora's bf16 row
  if [ ! -s "$OUT/peft-$preset-$r-$batch-$variant.json" ]; then
    "$VENV/bin/python" "$SHARED/bench/peft_baseline.py" "${common[@]}" --threads 2 --dtype fp32 --quiet \
      | tail -n1 | tee "$OUT/peft-$preset-$r-$batch-$variant.json" >&2
  fi
  "$RORA" bench train "${common[@]}" --dtype "$dtype" | tail -n1 | tee "$OUT/rora-$row.json" >&2
done

python3 - "$OUT" $ROWS <<'PY'
import json, sys, os
out, rows = sys.argv[1], sys.argv[2:]
print(f"{'preset':14} {'r':>3} {'batch':>5} {'variant':7} {'rora dtype':10} {'peft fp32 tok/s':>15} {'rora tok/s':>10} {'ratio':>6} {'peft MB':>8} {'rora MB':>8}")
for row in rows:
    preset, r, batch, variant, dtype = row.split(":")
    p = json.load(open(os.path.join(out, f"peft-{preset}-{r}-{batch}-{variant}.json")))
    q = json.load(open(os.path.join(out, f"rora-{row}.json")))
    print(f"{preset:14} {r:>3} {batch:>5} {variant:7} {dtype:10} {p['tokens_per_s']:>15.1f} {q['tokens_per_s']:>10.1f} "
          f"{q['tokens_per_s']/p['tokens_per_s']:>6.2f} {p['peak_rss_mb']:>8.0f} {q['peak_rss_mb']:>8.0f}")
print(f"threads: RAYON_NUM_THREADS=2, torch threads 2; {os.cpu_count()} CPUs visible")
PY
