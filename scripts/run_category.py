#!/usr/bin/env python3
"""Runs `lipcert verify` on every instance of a VNN-COMP category and writes a results csv.

usage: scripts/run_category.py CATEGORY_DIR [--out results.csv] [--timeout-scale 1.0] [--max-timeout S]
                               [--known ../shared/benchmarks/known_answers.csv] [--lipcert BINARY]
                               [--filter SUBSTRING]

CATEGORY_DIR holds <category>_instances.csv (onnx,vnnlib,timeout per line). Each instance runs with
its csv timeout (times --timeout-scale, capped by --max-timeout). The csv gets
onnx,vnnlib,result,time_s,boxes,known; the summary counts answers and flags any answer that
contradicts known_answers.csv (a wrong answer makes the script exit 1). --filter keeps the instances
whose onnx or vnnlib path contains the substring (e.g. `256x2` or `_0.05`); --lipcert runs another binary.
"""
import argparse
import csv
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LIPCERT = ROOT / "target" / "release" / "lipcert"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("category")
    ap.add_argument("--out", default="results.csv")
    ap.add_argument("--timeout-scale", type=float, default=1.0)
    ap.add_argument("--max-timeout", type=float, default=float("inf"))
    ap.add_argument("--known", default=str(ROOT.parent / "shared" / "benchmarks" / "known_answers.csv"))
    ap.add_argument("--lipcert", default=str(LIPCERT))
    ap.add_argument("--filter", action="append", default=[],
                    help="keep instances whose onnx or vnnlib path contains this (repeatable: all must match)")
    args = ap.parse_args()
    cat = Path(args.category)
    name = cat.name
    instances = [r for r in csv.reader(open(cat / f"{name}_instances.csv")) if r]
    instances = [r for r in instances if all(f in r[0] or f in r[1] for f in args.filter)]
    known = {}
    if Path(args.known).exists():
        for row in csv.DictReader(open(args.known)):
            if row["category"] == name:
                known[(Path(row["onnx"]).name, Path(row["vnnlib"]).name)] = row["answer"]
    rows, wrong, counts, total = [], 0, {}, 0.0
    for onnx, prop, timeout in instances:
        t = min(float(timeout) * args.timeout_scale, args.max_timeout)
        start = time.time()
        out = subprocess.run([args.lipcert, "verify", str(cat / onnx), str(cat / prop), "--timeout", str(t), "--json"],
                             capture_output=True, text=True)
        wall = time.time() - start
        if out.returncode != 0:
            result, boxes = "error", 0
            print(f"{onnx} {prop}: {out.stderr.strip()}", file=sys.stderr)
        else:
            d = json.loads(out.stdout)
            result, boxes = d["result"], d["boxes"]
        k = known.get((Path(onnx).name, Path(prop).name), "")
        if {result, k} == {"sat", "unsat"}:
            wrong += 1
            print(f"WRONG ANSWER: {onnx} {prop}: {result}, known {k}", file=sys.stderr)
        counts[result] = counts.get(result, 0) + 1
        total += wall
        rows.append([onnx, prop, result, f"{wall:.3f}", boxes, k])
        print(f"{Path(onnx).name:40s} {Path(prop).name:40s} {result:8s} {wall:8.2f} s  (known: {k or '-'})", flush=True)
    with open(args.out, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["onnx", "vnnlib", "result", "time_s", "boxes", "known"])
        w.writerows(rows)
    solved = counts.get("sat", 0) + counts.get("unsat", 0)
    print(f"{name}: {len(rows)} instances, solved {solved} ({counts}), wrong {wrong}, total {total:.1f} s")
    sys.exit(1 if wrong else 0)


if __name__ == "__main__":
    main()
