#!/usr/bin/env python3
"""Forward throughput of lipcert (f64) and onnxruntime (f32) side by side, in one run.

usage: bench/forward_compare.py [--rounds 3] [--repeats 50] [--threads 2] [--out FILE] [MODEL ...]

Runs the two measurements alternately for --rounds rounds (so that load on a shared machine
hits both alike), takes the median samples/s of each over the rounds, and prints a table
with the ratio lipcert / onnxruntime. Default models: mnist-net_256x6 and cifar_base_kw.
"""

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT.parent / "shared" / "benchmarks" / "vnncomp2021"
DEFAULT_MODELS = [BENCH / "mnistfc" / "mnist-net_256x6.onnx", BENCH / "oval21" / "nets" / "cifar_base_kw.onnx"]


def run_json_lines(cmd):
    out = subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, text=True).stdout
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="*", type=Path)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=50)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=ROOT / "target" / "bench-forward.json")
    args = ap.parse_args()
    models = args.models or DEFAULT_MODELS
    subprocess.run(["cargo", "bench", "-p", "lipcert-cli", "--bench", "forward_throughput", "--no-run"],
                   cwd=ROOT, check=True, capture_output=True)
    samples = {}  # (runtime, model, batch) -> [samples/s per round]
    for _ in range(args.rounds):
        lip = run_json_lines(["cargo", "bench", "-q", "-p", "lipcert-cli", "--bench", "forward_throughput", "--",
                              "--repeats", str(args.repeats), *map(str, models)])
        ort = []
        for m in models:
            ort += run_json_lines([sys.executable, str(ROOT / "bench" / "forward_ort.py"), str(m), "--json",
                                   "--repeats", str(args.repeats), "--threads", str(args.threads)])
        for rec in lip + ort:
            for r in rec["results"]:
                key = (rec["runtime"], Path(rec["model"]).stem, r["batch"])
                samples.setdefault(key, []).append(r["samples_per_s"])
    rows = []
    for (runtime, model, batch), vals in sorted(samples.items()):
        if runtime != "lipcert":
            continue
        ours = statistics.median(vals)
        theirs = statistics.median(samples[("onnxruntime", model, batch)])
        rows.append({"model": model, "batch": batch, "lipcert_samples_per_s": ours,
                     "onnxruntime_samples_per_s": theirs, "ratio": ours / theirs,
                     "rounds": args.rounds, "repeats": args.repeats})
    print(f"{'model':<18} {'batch':>5} {'lipcert f64 /s':>15} {'onnxruntime f32 /s':>19} {'ratio':>6}")
    for r in rows:
        print(f"{r['model']:<18} {r['batch']:>5} {r['lipcert_samples_per_s']:>15.0f} "
              f"{r['onnxruntime_samples_per_s']:>19.0f} {r['ratio']:>6.2f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(rows, indent=2))
    print(f"(medians over {args.rounds} alternating rounds of {args.repeats} calls; JSON in {args.out})")


if __name__ == "__main__":
    main()
