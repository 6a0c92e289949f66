#!/usr/bin/env python3
"""Bound propagation, side by side in one run: lipcert (`lipcert bounds --json`) against
auto_LiRPA (bench/crown_autolirpa.py, run with the Python of a virtualenv that has torch and
auto_LiRPA: set LIRPA_PYTHON; without it only lipcert is measured).

usage: python3 bench/bounds_compare.py [--rounds 3] [--out FILE.json]

For each instance (mnist-net_256x2/4/6 and the first oval21 cifar_base_kw / wide / deep
instances), it alternates the two tools for `rounds` rounds and reports medians of the times
each tool reports for its own bound computation (model loading excluded on both sides), the
number of refuted atoms, and the time ratio lipcert / auto_LiRPA per method.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = Path(os.environ.get("LIPCERT_SHARED", ROOT.parent / "shared")) / "benchmarks" / "vnncomp2021"
LIPCERT = ROOT / "target" / "release" / "lipcert"
METHODS = ["ibp", "crown", "alpha-crown"]


def instances():
    m = BENCH / "mnistfc"
    for net in ["mnist-net_256x2", "mnist-net_256x4", "mnist-net_256x6"]:
        for prop in ["prop_0_0.03", "prop_1_0.05"]:
            yield f"{net}/{prop}", m / f"{net}.onnx", m / f"{prop}.vnnlib"
    o = BENCH / "oval21"
    seen = set()
    for line in (o / "oval21_instances.csv").read_text().splitlines():
        net, prop, _ = line.split(",")
        if net not in seen:
            seen.add(net)
            yield f"{Path(net).stem}/{Path(prop).stem[:24]}", o / net, o / prop


def lipcert(model, prop, method):
    out = subprocess.run([str(LIPCERT), "bounds", str(model), "--vnnlib", str(prop), "--method", method, "--json"],
                         capture_output=True, text=True, check=True)
    d = json.loads(out.stdout)
    return d["time_s"], sum(d["refuted"]), d["spec_lower"]


def lirpa(python, model, prop):
    out = subprocess.run([python, str(ROOT / "bench" / "crown_autolirpa.py"), str(model), str(prop)],
                         capture_output=True, text=True)
    if out.returncode != 0:
        print(f"auto_LiRPA failed on {prop.name}: {out.stderr.strip()}", file=sys.stderr)
        return None
    return json.loads(out.stdout)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out")
    args = ap.parse_args()
    if not LIPCERT.exists():
        sys.exit("build first: cargo build --release")
    python = os.environ.get("LIRPA_PYTHON")
    rows = []
    for name, model, prop in instances():
        ours = {m: [] for m in METHODS}
        theirs = {m: [] for m in METHODS}
        refuted, lirpa_refuted = {}, {}
        for _ in range(args.rounds):
            for m in METHODS:
                t, r, _ = lipcert(model, prop, m)
                ours[m].append(t)
                refuted[m] = r
            if python:
                d = lirpa(python, model, prop)  # itself a median of 3 after a warm-up
                if d:
                    for m in METHODS:
                        theirs[m].append(d[m]["time_s"])
                        lirpa_refuted[m] = sum(v > 0 for v in d[m]["spec_lower"])
        row = {"instance": name}
        for m in METHODS:
            row[m] = {"lipcert_s": statistics.median(ours[m]), "lipcert_refuted": refuted[m]}
            if theirs[m]:
                row[m]["auto_lirpa_s"] = statistics.median(theirs[m])
                row[m]["auto_lirpa_refuted"] = lirpa_refuted[m]
                row[m]["ratio"] = row[m]["lipcert_s"] / row[m]["auto_lirpa_s"]
        rows.append(row)
        cells = []
        for m in METHODS:
            c = f"{m} {row[m]['lipcert_s']:.3f}s ({row[m]['lipcert_refuted']} ref.)"
            if "ratio" in row[m]:
                c += f" vs {row[m]['auto_lirpa_s']:.3f}s ({row[m]['auto_lirpa_refuted']} ref.) x{row[m]['ratio']:.2f}"
            cells.append(c)
        print(f"{name:48s} " + " | ".join(cells), flush=True)
    for m in METHODS:
        ratios = [r[m]["ratio"] for r in rows if "ratio" in r[m]]
        if ratios:
            print(f"{m}: median time ratio lipcert / auto_LiRPA {statistics.median(ratios):.3f} "
                  f"[{min(ratios):.3f}, {max(ratios):.3f}] over {len(ratios)} instances")
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
