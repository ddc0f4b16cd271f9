#!/usr/bin/env python3
"""Per-job scheduling overhead of `rora run --executor slurm`, from the JSONL event logs in a cache.

For every job the head computed: (head saw the entry committed) - (head submitted it), minus the
job's own compute time as its worker reports it (`job_done.secs` in the worker's log). What is
left is sbatch, queueing (behind other jobs too), process start, planning in the worker, and the
head's poll latency. With one job at a time on the cluster, (wall - compute) / jobs is the
per-job overhead alone.

    python3 scripts/slurm_overhead.py CACHE_DIR      # the newest head log in CACHE_DIR/runs
"""
import glob
import json
import os
import statistics
import sys


def events(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def main():
    cache = sys.argv[1]
    logs = sorted(glob.glob(os.path.join(cache, "runs", "*.jsonl")), key=os.path.getmtime)
    runs = [(p, events(p)) for p in logs]
    heads = [(p, ev) for p, ev in runs if any(e["event"] == "job_submitted" for e in ev)]
    if not heads:
        sys.exit(f"no Slurm head log in {cache}/runs")
    head_path, head = heads[-1]
    compute = {}
    for p, ev in runs:
        if p == head_path:
            continue
        for e in ev:
            if e["event"] == "job_done":
                compute[e["job"]["key"]] = e["secs"]
    submitted = {e["job"]["key"]: e["t"] for e in head if e["event"] == "job_submitted"}
    rows = []
    for e in head:
        if e["event"] != "job_done":
            continue
        key = e["job"]["key"]
        if key not in submitted or key not in compute:
            continue
        wall = e["t"] - submitted[key]
        rows.append((e["job"]["label"], wall, compute[key], wall - compute[key]))
    if not rows:
        sys.exit("no job of the head log was computed by a worker")
    over = [r[3] for r in rows]
    total = [e for e in head if e["event"] == "run_finished"]
    print(f"{head_path}: {len(rows)} jobs")
    print(f"overhead per job (s): median {statistics.median(over):.2f}  mean {statistics.mean(over):.2f}"
          f"  min {min(over):.2f}  max {max(over):.2f}")
    print(f"job compute (s): sum {sum(r[2] for r in rows):.1f}")
    if total:
        wall = total[-1]["secs"]
        print(f"head wall time (s): {wall:.1f}")
        # With one job at a time on the cluster (a profile whose jobs take every CPU), the wall
        # time is the jobs' compute plus each job's overhead.
        print(f"(wall - compute) / jobs (s): {(wall - sum(r[2] for r in rows)) / len(rows):.2f}"
              "  (the per-job overhead when the jobs ran one at a time)")


if __name__ == "__main__":
    main()
