#!/usr/bin/env python3
"""Bound propagation, side by side in one run: lipcert (`lipcert bounds --json`) against
auto_LiRPA (bench/crown_autolirpa.py, run with the Python of a virtualenv that has torch and
auto_LiRPA: set LIRPA_PYTHON; without it only lipcert is measured).

usage: python3 bench/bounds_compare.py [--rounds 5] [--families mnistfc,acasxu,oval21] [--out FILE.json]

Instances: mnist-net_256x2/4/6 x prop_0_0.03, prop_1_0.05 (mnistfc); the 6 ACAS Xu
network/property pairs in ACASXU, properties 1-4 across the grid (acasxu); the first instance of each oval21 network
(cifar_base_kw / wide / deep). For each instance it alternates the two tools for `rounds`
rounds and takes medians of the times each tool reports for its own bound computation (model
loading excluded on both sides; each tool's figure is itself a median of 3 runs after a
warm-up run: crown_autolirpa.py's `timed` and `lipcert bounds --repeat 3`).

Method pairs (lipcert <-> auto_LiRPA): ibp <-> IBP; crown-pure <-> 'backward' with
sparse_intermediate_bounds off (textbook CROWN, both sides); crown <-> 'backward' (each tool's
default CROWN); alpha-crown <-> auto_LiRPA's default 'CROWN-optimized' (both optimize
separate alphas for the output rows and for every intermediate bound); alpha-crown-fixed
(`--method alpha-crown --fix-intermediate`) <-> 'CROWN-optimized' with CROWN's intermediate
bounds passed in, its time plus the CROWN pass that produced them (lipcert's includes its CROWN
pass). Both tools take 20 steps at most (auto_LiRPA stops after 10 without improvement).
auto_LiRPA 0.7.1 needs torch < 2.9 (see crown_autolirpa.py).

Per instance and method it prints the speedup (auto_LiRPA time / lipcert time: > 1 means
lipcert is faster) and a bound check of spec_lower against auto_LiRPA's: ibp and crown-pure
must agree within 1e-6 (same algorithm), crown and alpha-crown are counted tighter / looser
(beyond 1e-9 relative, the size of lipcert's rounding-error widening).
At the end: per family the median speedup and the summed times, and the whole-set sums.
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
# lipcert method -> auto_LiRPA method(s) in crown_autolirpa.py's output, whose times add up.
PAIRS = {"ibp": ["ibp"], "crown-pure": ["crown-dense"], "crown": ["crown"],
         "alpha-crown": ["alpha-crown"], "alpha-crown-fixed": ["alpha-crown-fixed", "crown"]}
# lipcert's command-line arguments per paired method.
LIPCERT_ARGS = {"ibp": ["--method", "ibp"], "crown-pure": ["--method", "crown-pure"],
                "crown": ["--method", "crown"],
                "alpha-crown": ["--method", "alpha-crown"],
                "alpha-crown-fixed": ["--method", "alpha-crown", "--fix-intermediate"]}
SAME_TOL = 1e-6  # ibp and crown-pure compute the same algorithm on both sides
ROUNDING_REL = 1e-9
ACASXU = [("1_1", 1), ("1_1", 3), ("2_3", 2), ("3_3", 3), ("4_5", 4), ("5_9", 2)]


def instances(families):
    if "mnistfc" in families:
        m = BENCH / "mnistfc"
        for net in ["mnist-net_256x2", "mnist-net_256x4", "mnist-net_256x6"]:
            for prop in ["prop_0_0.03", "prop_1_0.05"]:
                yield "mnistfc", f"{net}/{prop}", m / f"{net}.onnx", m / f"{prop}.vnnlib"
    if "acasxu" in families:
        a = BENCH / "acasxu"
        for net, prop in ACASXU:
            yield ("acasxu", f"ACASXU_{net}/prop_{prop}", a / f"ACASXU_run2a_{net}_batch_2000.onnx",
                   a / f"prop_{prop}.vnnlib")
    if "oval21" in families:
        o = BENCH / "oval21"
        seen = set()
        for line in (o / "oval21_instances.csv").read_text().splitlines():
            net, prop, _ = line.split(",")
            if net not in seen:
                seen.add(net)
                yield "oval21", f"{Path(net).stem}/{Path(prop).stem[:24]}", o / net, o / prop


def lipcert(model, prop, method):
    out = subprocess.run([str(LIPCERT), "bounds", str(model), "--vnnlib", str(prop), *LIPCERT_ARGS[method], "--repeat", "3",
                          "--json"],
                         capture_output=True, text=True, check=True)
    d = json.loads(out.stdout)
    return d["time_s"], d["spec_lower"]


def lirpa(python, model, prop):
    out = subprocess.run([python, str(ROOT / "bench" / "crown_autolirpa.py"), str(model), str(prop), "--spec-only"],
                         capture_output=True, text=True)
    if out.returncode != 0:
        last = (out.stderr.strip().splitlines() or ["no output"])[-1]
        print(f"auto_LiRPA failed on {prop.name}: {last}", file=sys.stderr)
        return None
    return json.loads(out.stdout)


def bound_check(method, ours, theirs):
    """Compares lipcert's spec_lower with auto_LiRPA's, atom by atom (same order)."""
    diff = [a - b for a, b in zip(ours, theirs)]
    if method in ("ibp", "crown-pure"):
        worst = max(abs(d) for d in diff)
        return {"max_abs_diff": worst, "ok": worst <= SAME_TOL}
    # lipcert widens every bound by its floating-point rounding error (f64, relative ~1e-12);
    # a difference below ROUNDING_REL of the bound's size is that widening, not a looser method.
    slack = [ROUNDING_REL * max(1.0, abs(b)) for b in theirs]
    tighter = sum(d > s for d, s in zip(diff, slack))
    looser = sum(d < -s for d, s in zip(diff, slack))
    return {"tighter": tighter, "looser": looser, "max_looser": -min(min(diff), 0.0),
            "ok": looser == 0}


def measure(model, prop, rounds, python):
    ours = {m: [] for m in PAIRS}
    theirs = {m: [] for m in PAIRS}
    ours_lower, theirs_lower = {}, {}
    for _ in range(rounds):
        for m in PAIRS:
            t, lower = lipcert(model, prop, m)
            ours[m].append(t)
            ours_lower[m] = lower
        if python:
            d = lirpa(python, model, prop)
            if d:
                for m, ref in PAIRS.items():
                    theirs[m].append(sum(d[r]["time_s"] for r in ref))
                    theirs_lower[m] = d[ref[0]]["spec_lower"]
    row = {}
    for m in PAIRS:
        row[m] = {"lipcert_s": statistics.median(ours[m])}
        if theirs[m]:
            row[m]["auto_lirpa_s"] = statistics.median(theirs[m])
            row[m]["speedup"] = row[m]["auto_lirpa_s"] / row[m]["lipcert_s"]
            row[m]["bounds"] = bound_check(m, ours_lower[m], theirs_lower[m])
    return row


def cell(m, r):
    c = f"{m} {r['lipcert_s'] * 1e3:.1f}ms"
    if "speedup" in r:
        b = r["bounds"]
        check = (f"diff {b['max_abs_diff']:.1e}" if "max_abs_diff" in b
                 else f"tighter {b['tighter']} looser {b['looser']}")
        c += f" vs {r['auto_lirpa_s'] * 1e3:.1f}ms x{r['speedup']:.2f} ({check}{'' if b['ok'] else ' FAIL'})"
    return c


def summarize(rows):
    families = list(dict.fromkeys(r["family"] for r in rows))
    for fam in families + ["all"]:
        fr = [r for r in rows if fam in ("all", r["family"])]
        for m in PAIRS:
            ours = sum(r[m]["lipcert_s"] for r in fr)
            line = f"{fam:8s} {m:17s} lipcert sum {ours:8.3f}s"
            paired = [r[m] for r in fr if "speedup" in r[m]]
            if paired:
                sp = [p["speedup"] for p in paired]
                theirs = sum(p["auto_lirpa_s"] for p in paired)
                bad = sum(not p["bounds"]["ok"] for p in paired)
                line += (f"  auto_LiRPA sum {theirs:8.3f}s  speedup median {statistics.median(sp):.2f} "
                         f"[{min(sp):.2f}, {max(sp):.2f}] over {len(sp)}  bound checks failed: {bad}")
            print(line)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--families", default="mnistfc,acasxu,oval21")
    ap.add_argument("--out")
    args = ap.parse_args()
    if not LIPCERT.exists():
        sys.exit("build first: cargo build --release")
    python = os.environ.get("LIRPA_PYTHON")
    rows = []
    for family, name, model, prop in instances(args.families.split(",")):
        row = {"family": family, "instance": name, **measure(model, prop, args.rounds, python)}
        rows.append(row)
        print(f"{name:44s} " + " | ".join(cell(m, row[m]) for m in PAIRS), flush=True)
    summarize(rows)
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
