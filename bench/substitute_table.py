#!/usr/bin/env python3
"""Paper 004's Table 1 on our networks: how well the exact distance to the decision boundary of a
local substitute network estimates the original's, and how much faster its MILP solves are.

usage: bench/substitute_table.py [--anchors 3] [--timeout 60] [--nets mnist256x2,...] [--out DIR]
                                 [--lipcert BINARY] [--from-json DIR/substitute_table.json]

For each network and anchor (the centres of its VNN-COMP 2021 boxes, scripts/vnnlib_centers.py;
anchors the network misclassifies are skipped) it runs `lipcert boundary --json` on the original
once, then `lipcert substitute --json --no-certify` for every kind (con, lin, act) and gamma (0.5,
0.9, 0.99), one run each, one after the other (never two at once). The relative error
|d_hat - d_bnd| / d_bnd is averaged over the anchors where the substitute's search closed and the
original's bracket is within 2% relative (closed, or nearly: d_bnd is then its midpoint; n in the
table; "no boundary found" counts the substitutes whose search found no misclassified
point at all, the paper's boundary collapse); "s/solve" is the mean time of one complete-verifier call (the MILP-backed decision at one
radius) of the boundary search, on the substitute and on the original. Unlike the paper these
calls are not restricted to comparable radii: every call of each search counts. "pruning s/solve"
is Algorithm 1's time divided by the substitute's verify calls (the paper's column).

Writes DIR/substitute_table.md, DIR/substitute_table.json and DIR/substitute_error.svg (mean
relative error vs gamma per kind, one panel per network) and prints the table.
"""

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
from vnnlib_centers import centre_and_label  # noqa: E402

BENCH = ROOT.parent / "shared" / "benchmarks" / "vnncomp2021"
NETS = {
    "mnist256x2": ("mnistfc/mnist-net_256x2.onnx", "mnistfc/prop_{i}_0.03.vnnlib", [0, 1]),
    "mnist256x4": ("mnistfc/mnist-net_256x4.onnx", "mnistfc/prop_{i}_0.03.vnnlib", [0, 1]),
    "mnist256x6": ("mnistfc/mnist-net_256x6.onnx", "mnistfc/prop_{i}_0.03.vnnlib", [0, 1]),
    "eran_relu_9x200": ("eran/nets/mnist_relu_9_200.onnx", "eran/specs/mnist/*", [0, 1]),
    "cifar_base_kw": ("oval21/nets/cifar_base_kw.onnx", "oval21/vnnlib/cifar_base_kw-*", None),
}
KINDS = ["con", "lin", "act"]
GAMMAS = [0.5, 0.9, 0.99]
REFERENCE_WIDTH = 0.02
COLORS = {"con": "#d62728", "lin": "#1f77b4", "act": "#2ca02c"}


def run_json(cmd):
    out = subprocess.run([str(c) for c in cmd], capture_output=True, text=True)
    if out.returncode != 0:
        return {"error": out.stderr.strip()}
    return json.loads(out.stdout)


def anchors(pattern, count):
    if "{i}" in pattern:
        paths = [BENCH / pattern.format(i=i) for i in range(count)]
    else:
        paths = sorted(BENCH.glob(pattern))[:count]
    return [(p.name, *centre_and_label(p)) for p in paths]


def mean(xs):
    return statistics.fmean(xs) if xs else None


def per_solve(search):
    return search.get("verify_time_per_call_s") if search else None


def reference(orig):
    """The original's d_bnd for the error column: the midpoint of its bracket when the bracket is
    within REFERENCE_WIDTH relative (closed searches are), else None (the anchor is not counted)."""
    lo, up = orig.get("lower"), orig.get("upper")
    if lo is None or up is None or up <= 0 or (up - lo) > REFERENCE_WIDTH * up:
        return None
    return 0.5 * (lo + up)


def svg(table, nets):
    pw, ph, ml, mt, mb = 220, 200, 55, 30, 40
    width = ml + len(nets) * (pw + 25) + 60
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{ph + mt + mb}" '
             f'font-family="sans-serif" font-size="11">', f'<rect width="{width}" height="{ph + mt + mb}" fill="white"/>']
    lo, hi = -4, 1  # log10 of the relative error
    for p, net in enumerate(nets):
        x0 = ml + p * (pw + 25)
        sx = lambda g: x0 + pw * GAMMAS.index(g) / (len(GAMMAS) - 1)
        sy = lambda e: mt + ph * (hi - min(hi, max(lo, np.log10(max(e, 1e-12))))) / (hi - lo)
        parts.append(f'<rect x="{x0}" y="{mt}" width="{pw}" height="{ph}" fill="none" stroke="#999"/>')
        parts.append(f'<text x="{x0 + pw / 2}" y="{mt - 10}" text-anchor="middle">{net}</text>')
        for t in range(lo, hi + 1):
            parts.append(f'<text x="{x0 - 4}" y="{sy(10.0 ** t) + 4}" text-anchor="end">1e{t}</text>')
        for g in GAMMAS:
            parts.append(f'<text x="{sx(g)}" y="{mt + ph + 14}" text-anchor="middle">{g}</text>')
        parts.append(f'<text x="{x0 + pw / 2}" y="{mt + ph + 30}" text-anchor="middle">gamma</text>')
        for kind in KINDS:
            pts = [(g, r["rel_error"]) for r in table if r["net"] == net and r["kind"] == kind
                   for g in [r["gamma"]] if r["rel_error"] is not None]
            if pts:
                line = " ".join(f"{sx(g):.1f},{sy(e):.1f}" for g, e in pts)
                parts.append(f'<polyline points="{line}" fill="none" stroke="{COLORS[kind]}" stroke-width="1.6"/>')
                parts += [f'<circle cx="{sx(g):.1f}" cy="{sy(e):.1f}" r="2.5" fill="{COLORS[kind]}"/>' for g, e in pts]
    lx = ml + len(nets) * (pw + 25)
    for i, kind in enumerate(KINDS):
        y = mt + 14 * i + 6
        parts.append(f'<line x1="{lx}" y1="{y}" x2="{lx + 18}" y2="{y}" stroke="{COLORS[kind]}" stroke-width="2"/>')
        parts.append(f'<text x="{lx + 22}" y="{y + 4}">{kind}</text>')
    parts.append(f'<text x="12" y="{mt + ph / 2}" transform="rotate(-90 12 {mt + ph / 2})" '
                 f'text-anchor="middle">mean |d_hat - d_bnd| / d_bnd (0 drawn at 1e-4)</text>')
    return "\n".join(parts + ["</svg>"]) + "\n"


def fmt(v, spec=".3g"):
    return "-" if v is None else format(v, spec)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--anchors", type=int, default=3)
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds per boundary search")
    ap.add_argument("--nets", default=",".join(NETS))
    ap.add_argument("--out", type=Path, default=ROOT / "target" / "substitute")
    ap.add_argument("--lipcert", default=str(ROOT / "target" / "release" / "lipcert"))
    ap.add_argument("--from-json", type=Path, help="re-tabulate the runs of an earlier substitute_table.json")
    args = ap.parse_args()
    if args.from_json:
        runs = json.loads(args.from_json.read_text())["runs"]
        nets = list(dict.fromkeys(r["net"] for r in runs))
        return tabulate(runs, nets, args.out)
    if not Path(args.lipcert).exists():
        sys.exit(f"error: {args.lipcert}: no such binary (run `cargo build --release` first)")
    if not BENCH.is_dir():
        sys.exit(f"error: {BENCH}: the VNN-COMP 2021 benchmarks are not there")
    args.out.mkdir(parents=True, exist_ok=True)
    nets = args.nets.split(",")
    runs = []
    tmp = Path(tempfile.mkdtemp())
    for net in nets:
        model, pattern, clip = NETS[net]
        model = BENCH / model
        for name, x, label in anchors(pattern, args.anchors):
            xp = tmp / "x.npy"
            np.save(xp, x.reshape(1, -1).astype(np.float64))
            common = ["--input", xp, "--label", label, "--timeout", args.timeout]
            if clip:
                common += ["--clip", *clip]
            orig = run_json([args.lipcert, "boundary", model, *common, "--json"])
            if "error" in orig or orig["predicted"] != label:
                print(f"{net} {name}: skipped ({orig.get('error', 'misclassified')})", file=sys.stderr)
                continue
            print(f"{net} {name}: original [{orig['lower']}, {orig['upper']}] closed={orig['closed']} "
                  f"{orig['time_s']:.1f} s", file=sys.stderr)
            for kind in KINDS:
                for gamma in GAMMAS:
                    sub = run_json([args.lipcert, "substitute", model, *common, "--kind", kind, "--gamma", gamma,
                                    "--no-certify", "--json"])
                    runs.append({"net": net, "anchor": name, "kind": kind, "gamma": gamma, "original": orig,
                                 "substitute": sub})
                    if "error" in sub:
                        print(f"  {kind} {gamma}: {sub['error']}", file=sys.stderr)
                        continue
                    e = sub["d_bnd_estimate"]
                    print(f"  {kind} {gamma}: {sub['neurons_before']} -> {sub['neurons_after']} neurons, "
                          f"estimate {e['value']} closed={e['closed']} {sub['substitute']['time_s']:.2f} s",
                          file=sys.stderr)
    tabulate(runs, nets, args.out)


def tabulate(runs, nets, out):
    table = []
    for net in nets:
        for kind in KINDS:
            for gamma in GAMMAS:
                rs = [r for r in runs if r["net"] == net and r["kind"] == kind and r["gamma"] == gamma
                      and "error" not in r["substitute"]]
                errs = [abs(r["substitute"]["d_bnd_estimate"]["value"] - reference(r["original"])) / reference(r["original"])
                        for r in rs if reference(r["original"]) and r["substitute"]["d_bnd_estimate"]["value"]]
                with_s = [per_solve(r["substitute"]["substitute"]) for r in rs]
                without = [r["original"]["phase_time_s"]["verify"] / r["original"]["calls"]["verify"]
                           for r in rs if r["original"]["calls"]["verify"]]
                pruning = [r["substitute"]["times"]["choose_s"] / max(1, r["substitute"]["substitute"]["calls"]["verify"])
                           for r in rs]
                table.append({
                    "net": net, "kind": kind, "gamma": gamma, "anchors": len(rs), "n": len(errs),
                    "rel_error": mean(errs), "rel_error_median": statistics.median(errs) if errs else None,
                    "neurons": f"{rs[0]['substitute']['neurons_before']} -> "
                               f"{mean([r['substitute']['neurons_after'] for r in rs]):.0f}" if rs else "-",
                    "pruning_s_per_solve": mean(pruning),
                    "s_per_solve_with": mean([v for v in with_s if v is not None]),
                    "s_per_solve_without": mean(without),
                    "estimate_closed": sum(r["substitute"]["d_bnd_estimate"]["closed"] for r in rs),
                    # Boundary collapse: the substitute's search found no misclassified point at all.
                    "collapsed": sum(r["substitute"]["d_bnd_estimate"]["upper"] is None for r in rs),
                    "original_closed": sum(r["original"]["closed"] for r in rs),
                })
    lines = ["| network | kind | gamma | neurons | mean rel. d_bnd error (n) | median | pruning s/solve | "
             "s/solve with | s/solve without | ratio | no boundary found |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for t in table:
        ratio = (t["s_per_solve_without"] / t["s_per_solve_with"]
                 if t["s_per_solve_with"] and t["s_per_solve_without"] else None)
        lines.append(f"| {t['net']} | {t['kind']} | {t['gamma']} | {t['neurons']} | {fmt(t['rel_error'])} ({t['n']}) | "
                     f"{fmt(t['rel_error_median'])} | {fmt(t['pruning_s_per_solve'])} | {fmt(t['s_per_solve_with'])} | "
                     f"{fmt(t['s_per_solve_without'])} | {fmt(ratio, '.0f')}x | {t['collapsed']} of {t['anchors']} |")
    md = "\n".join(lines) + "\n"
    out.mkdir(parents=True, exist_ok=True)
    (out / "substitute_table.md").write_text(md)
    (out / "substitute_table.json").write_text(json.dumps({"table": table, "runs": runs}, indent=1))
    (out / "substitute_error.svg").write_text(svg(table, nets))
    print(md)


if __name__ == "__main__":
    main()
