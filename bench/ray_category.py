#!/usr/bin/env python3
"""A whole VNN-COMP category three ways, alternating, on this machine:

  cli    scripts/run_category.py            one `lipcert verify` process per instance, in turn
  local  python -m lipcert.run_category     the Python package in one process, in turn
  ray    python -m lipcert.run_category --ray   one Ray task per instance on a local cluster
                                            (one core and one rayon thread per task)

    python3 bench/ray_category.py [CATEGORY_DIR] [--rounds 5] [--out-dir /tmp/ray_category]

Each variant runs as the command a user types; its wall time includes interpreter start and,
for Ray, starting the local cluster. Per variant: median wall time over the rounds, the sum of
the per-instance times (each measured around one instance: process or call, model load
included), and the overhead per instance = (wall x instances at once - sum) / instances, i.e. the
worker-seconds per instance not spent inside an instance. The answers of every run must agree.
"""
import argparse
import csv
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def variants(category, out):
    py = sys.executable
    return {
        "cli": ([py, str(ROOT / "scripts" / "run_category.py"), category, "--out", f"{out}/cli.csv"], 1),
        "local": ([py, "-m", "lipcert.run_category", category, "--out", f"{out}/local.csv"], 1),
        "ray": ([py, "-m", "lipcert.run_category", category, "--ray", "--out", f"{out}/ray.csv"], 2),
    }


def read(path):
    rows = list(csv.DictReader(open(path)))
    return [(r["onnx"], r["vnnlib"], r["result"]) for r in rows], sum(float(r["time_s"]) for r in rows)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("category", nargs="?", default=str(ROOT.parent / "shared/benchmarks/vnncomp2021/acasxu"))
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--out-dir", default="/tmp/ray_category")
    args = ap.parse_args()
    Path(args.out_dir).mkdir(parents=True, exist_ok=True)
    runs = variants(args.category, args.out_dir)
    walls = {k: [] for k in runs}
    sums = {k: [] for k in runs}
    answers = None
    for r in range(args.rounds):
        for name, (cmd, _) in runs.items():
            start = time.time()
            p = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=os.environ)
            wall = time.time() - start
            if p.returncode != 0:
                sys.exit(f"{name}: exit {p.returncode}\n{p.stderr[-2000:]}")
            rows, total = read(Path(args.out_dir) / f"{name}.csv")
            if answers is None:
                answers = rows
            elif rows != answers:
                diff = [(a, b) for a, b in zip(answers, rows) if a != b]
                sys.exit(f"{name} round {r + 1}: answers differ from the first run: {diff[:5]}")
            walls[name].append(wall)
            sums[name].append(total)
            print(f"round {r + 1} {name:5s} wall {wall:7.1f} s, sum of instances {total:7.1f} s", flush=True)
    n = len(answers)
    counts = {}
    for _, _, res in answers:
        counts[res] = counts.get(res, 0) + 1
    print(f"\n{n} instances, the same answers in every run: {counts}")
    print(f"| variant | instances at once | wall (median of {args.rounds}) | sum of instances | overhead per instance |")
    print("|---|---|---|---|---|")
    base = statistics.median(walls["cli"])
    for name, (_, cores) in runs.items():
        w, s = statistics.median(walls[name]), statistics.median(sums[name])
        print(f"| {name} | {cores} | {w:.1f} s ({w / base:.2f}x cli) | {s:.1f} s | {1000 * (w * cores - s) / n:.0f} ms |")


if __name__ == "__main__":
    main()
