#!/usr/bin/env python3
"""Forward throughput of lipcert (f64, and the f32 plan) and onnxruntime (f32) side by side.

usage: bench/forward_compare.py [--rounds 5] [--repeats 50] [--batches 1,256] [--threads 2] [--no-f32] [--out FILE]
                                [MODEL ...]

Runs the measurements alternately for --rounds rounds (so that load on a shared machine
hits all alike), takes the median samples/s of each over the rounds, and prints a table
with the ratios lipcert / onnxruntime. Default models: mnist-net_256x6 and cifar_base_kw.
The f32 rows come from `cargo bench -p lipcert-smooth --bench forward_f32` (PlanF32, the
inference path of `lipcert smooth`).
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
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--no-f32", action="store_true", help="skip the f32 plan")
    ap.add_argument("--repeats", type=int, default=50)
    ap.add_argument("--batches", default="1,256", help="comma-separated batch sizes (all runtimes)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=ROOT / "target" / "bench-forward.json")
    args = ap.parse_args()
    # Absolute: cargo bench runs the benches in their crate's directory.
    models = [m.resolve() for m in (args.models or DEFAULT_MODELS)]
    subprocess.run(["cargo", "bench", "-p", "lipcert-cli", "--bench", "forward_throughput", "--no-run"],
                   cwd=ROOT, check=True, capture_output=True)
    if not args.no_f32:
        subprocess.run(["cargo", "bench", "-p", "lipcert-smooth", "--bench", "forward_f32", "--no-run"],
                       cwd=ROOT, check=True, capture_output=True)
    samples = {}  # (runtime, model, batch) -> [samples/s per round]
    for _ in range(args.rounds):
        lip = run_json_lines(["cargo", "bench", "-q", "-p", "lipcert-cli", "--bench", "forward_throughput", "--",
                              "--repeats", str(args.repeats), "--batches", args.batches, *map(str, models)])
        if not args.no_f32:
            lip += run_json_lines(["cargo", "bench", "-q", "-p", "lipcert-smooth", "--bench", "forward_f32", "--",
                                   "--repeats", str(args.repeats), "--batches", args.batches, *map(str, models)])
        ort = []
        for m in models:
            ort += run_json_lines([sys.executable, str(ROOT / "bench" / "forward_ort.py"), str(m), "--json",
                                   "--repeats", str(args.repeats), "--batches", args.batches,
                                   "--threads", str(args.threads)])
        for rec in lip + ort:
            for r in rec["results"]:
                runtime = rec["runtime"] + (" " + rec["precision"] if "precision" in rec else "")
                key = (runtime, Path(rec["model"]).stem, r["batch"])
                samples.setdefault(key, []).append(r["samples_per_s"])
    rows = []
    for (runtime, model, batch), vals in sorted(samples.items()):
        if not runtime.startswith("lipcert"):
            continue
        ours = statistics.median(vals)
        theirs = statistics.median(samples[("onnxruntime", model, batch)])
        rows.append({"model": model, "batch": batch, "runtime": runtime, "lipcert_samples_per_s": ours,
                     "onnxruntime_samples_per_s": theirs, "ratio": ours / theirs,
                     "rounds": args.rounds, "repeats": args.repeats})
    print(f"{'model':<18} {'batch':>5} {'lipcert':>12} {'lipcert /s':>12} {'onnxruntime f32 /s':>19} {'ratio':>6}")
    for r in rows:
        print(f"{r['model']:<18} {r['batch']:>5} {r['runtime'][8:]:>12} {r['lipcert_samples_per_s']:>12.0f} "
              f"{r['onnxruntime_samples_per_s']:>19.0f} {r['ratio']:>6.2f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(rows, indent=2))
    print(f"(medians over {args.rounds} alternating rounds of {args.repeats} calls; JSON in {args.out})")


if __name__ == "__main__":
    main()
