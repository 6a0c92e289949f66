#!/usr/bin/env python3
"""Certified accuracy vs l2 radius of every randomized-smoothing method at sigma 0.12/0.25/0.5,
next to lipcert's deterministic l2 certificates (Lipschitz margin, CROWN) on the same images.

usage: bench/smooth_table.py [--n 100000] [--n0 100] [--alpha 0.001] [--limit N] [--out DIR]
                             [--lipcert BINARY] [--radii 0,0.1,...]

Data and models: scikit-learn's bundled digits test split (360 real 8x8 images, pixels in [0, 1])
and one 64-128-128-10 ReLU classifier per sigma trained with N(0, sigma^2) noise augmentation by
scripts/train_digits.py (run first if DIR has no models). For each sigma and method it runs
`lipcert smooth certify --json`; `--method lipschitz` gets the certified l2 upper bound of
`lipcert lipschitz --norm 2`. The deterministic rows certify the same base model (no smoothing):
`lipcert certify --norm 2 --method lipschitz` once (per-sample radii) and `--method crown` at every
radius of the grid (no --clip, like smoothing: the whole l2 ball).

Writes DIR/smooth_table.md (the markdown table), DIR/smooth_table.json (every number) and
DIR/smooth_curves.svg (one panel per sigma), and prints the table.
"""

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SIGMAS = [0.12, 0.25, 0.5]
METHODS = ["cohen", "two-sided", "cpm", "lipschitz", "lvm"]
COLORS = {"cohen": "#1f77b4", "two-sided": "#ff7f0e", "cpm": "#2ca02c", "lipschitz": "#d62728",
          "lvm": "#9467bd", "deterministic: Lipschitz margin": "#7f7f7f", "deterministic: CROWN": "#000000"}


def run_json(cmd):
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"error: {' '.join(map(str, cmd))}: {out.stderr.strip()}")
    return json.loads(out.stdout)


def curve(correct_radius, radii, total):
    """Certified accuracy at each radius from per-sample (correct, certified radius) pairs."""
    return [sum(1 for ok, r in correct_radius if ok and r >= eps) / total for eps in radii]


def smoothing_rows(lipcert, model, data, labels, sigma, args, radii, lipschitz_l2):
    rows = {}
    for method in METHODS:
        cmd = [lipcert, "smooth", "certify", model, "--data", data, "--labels", labels, "--sigma", str(sigma),
               "--method", method, "--n0", str(args.n0), "--n", str(args.n), "--alpha", str(args.alpha), "--json"]
        if method == "lipschitz":
            cmd += ["--lipschitz", repr(lipschitz_l2)]
        rep = run_json(cmd)
        pairs = [(s["correct"], s["radius"]) for s in rep["per_sample"]]
        rows[method] = {"curve": curve(pairs, radii, len(pairs)), "acr": rep["average_certified_radius"],
                        "clean": rep["clean_accuracy"], "time_s": rep["time_s"]}
        print(f"  sigma {sigma} {method}: ACR {rep['average_certified_radius']:.4f}, {rep['time_s']:.1f} s",
              file=sys.stderr, flush=True)
    return rows


def deterministic_rows(lipcert, model, data, labels, radii):
    base = [lipcert, "certify", model, "--data", data, "--labels", labels, "--norm", "2", "--pgd-restarts", "0", "--json"]
    start = time.perf_counter()
    rep = run_json(base + ["--eps", "0", "--method", "lipschitz"])
    pairs = [(s["label"] == s["predicted"], s["lipschitz_radius"] or 0.0) for s in rep["per_sample"]]
    lip = {"curve": curve(pairs, radii, len(pairs)), "clean": rep["clean_accuracy"],
           "acr": sum(r for ok, r in pairs if ok) / len(pairs), "time_s": time.perf_counter() - start}
    start = time.perf_counter()
    crown = [rep["clean_accuracy"] if eps == 0 else
             run_json(base + ["--eps", repr(eps), "--method", "crown"])["certified_accuracy"]["crown"] for eps in radii]
    crown_row = {"curve": crown, "clean": rep["clean_accuracy"], "acr": None, "time_s": time.perf_counter() - start}
    return {"deterministic: Lipschitz margin": lip, "deterministic: CROWN": crown_row}


def markdown(results, radii):
    head = "| sigma | method | " + " | ".join(f"r={r:g}" for r in radii) + " | ACR | time (s) |"
    lines = [head, "|" + "---|" * (len(radii) + 4)]
    for sigma, rows in results.items():
        for name, row in rows.items():
            acr = "-" if row["acr"] is None else f"{row['acr']:.3f}"
            cells = " | ".join(f"{v:.3f}" for v in row["curve"])
            lines.append(f"| {sigma} | {name} | {cells} | {acr} | {row['time_s']:.1f} |")
    return "\n".join(lines) + "\n"


def svg(results, radii):
    pw, ph, ml, mt, mb = 300, 220, 45, 30, 40
    width = ml + len(results) * (pw + 20) + 170
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{ph + mt + mb}" '
             f'font-family="sans-serif" font-size="11">', f'<rect width="{width}" height="{ph + mt + mb}" fill="white"/>']
    rmax = max(radii)
    for p, (sigma, rows) in enumerate(results.items()):
        x0 = ml + p * (pw + 20)
        sx = lambda r: x0 + pw * r / rmax
        sy = lambda a: mt + ph * (1 - a)
        parts.append(f'<rect x="{x0}" y="{mt}" width="{pw}" height="{ph}" fill="none" stroke="#999"/>')
        parts.append(f'<text x="{x0 + pw / 2}" y="{mt - 10}" text-anchor="middle">sigma = {sigma}</text>')
        for t in (0, 0.25, 0.5, 0.75, 1.0):
            parts.append(f'<text x="{x0 - 4}" y="{sy(t) + 4}" text-anchor="end">{t:g}</text>')
        for r in radii:
            parts.append(f'<text x="{sx(r)}" y="{mt + ph + 14}" text-anchor="middle">{r:g}</text>')
        parts.append(f'<text x="{x0 + pw / 2}" y="{mt + ph + 30}" text-anchor="middle">l2 radius</text>')
        for name, row in rows.items():
            pts = " ".join(f"{sx(r):.1f},{sy(a):.1f}" for r, a in zip(radii, row["curve"]))
            dash = ' stroke-dasharray="4 3"' if name.startswith("deterministic") else ""
            parts.append(f'<polyline points="{pts}" fill="none" stroke="{COLORS[name]}" stroke-width="1.6"{dash}/>')
    lx = ml + len(results) * (pw + 20)
    for i, name in enumerate(COLORS):
        y = mt + 14 * i + 6
        dash = ' stroke-dasharray="4 3"' if name.startswith("deterministic") else ""
        parts.append(f'<line x1="{lx}" y1="{y}" x2="{lx + 18}" y2="{y}" stroke="{COLORS[name]}" stroke-width="2"{dash}/>')
        parts.append(f'<text x="{lx + 22}" y="{y + 4}">{name.replace("deterministic: ", "det. ")}</text>')
    parts.append(f'<text x="12" y="{mt + ph / 2}" transform="rotate(-90 12 {mt + ph / 2})" '
                 f'text-anchor="middle">certified accuracy</text>')
    return "\n".join(parts + ["</svg>"]) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--n0", type=int, default=100)
    ap.add_argument("--alpha", type=float, default=0.001)
    ap.add_argument("--limit", type=int, default=0, help="first N test images only (0: all 360)")
    ap.add_argument("--radii", default="0,0.1,0.2,0.3,0.4,0.5,0.75,1,1.25,1.5")
    ap.add_argument("--out", type=Path, default=ROOT / "target" / "digits")
    ap.add_argument("--lipcert", default=str(ROOT / "target" / "release" / "lipcert"))
    args = ap.parse_args()
    radii = [float(r) for r in args.radii.split(",")]
    if not Path(args.lipcert).exists():
        sys.exit(f"error: {args.lipcert}: no such binary (run `cargo build --release` first)")
    if not all((args.out / f"digits_sigma{s}.onnx").exists() for s in SIGMAS):
        subprocess.run([sys.executable, str(ROOT / "scripts" / "train_digits.py"), "--out", str(args.out)], check=True)
    data, labels = args.out / "digits_test_x.npy", args.out / "digits_test_y.npy"
    if args.limit:
        import numpy as np
        x, y = np.load(data)[:args.limit], np.load(labels)[:args.limit]
        data, labels = args.out / f"digits_test{args.limit}_x.npy", args.out / f"digits_test{args.limit}_y.npy"
        np.save(data, x)
        np.save(labels, y)
    results = {}
    for sigma in SIGMAS:
        model = str(args.out / f"digits_sigma{sigma}.onnx")
        l2 = run_json([args.lipcert, "lipschitz", model, "--norm", "2", "--json"])["global"]["upper"]
        print(f"sigma {sigma}: {model}, certified l2 Lipschitz upper bound {l2:.4f}", file=sys.stderr, flush=True)
        rows = smoothing_rows(args.lipcert, model, str(data), str(labels), sigma, args, radii, l2)
        rows.update(deterministic_rows(args.lipcert, model, str(data), str(labels), radii))
        results[sigma] = rows
    table = markdown(results, radii)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "smooth_table.md").write_text(table)
    (args.out / "smooth_curves.svg").write_text(svg(results, radii))
    (args.out / "smooth_table.json").write_text(json.dumps(
        {"n": args.n, "n0": args.n0, "alpha": args.alpha, "radii": radii, "results": results}, indent=1))
    print(table, end="")
    print(f"wrote {args.out / 'smooth_table.md'}, {args.out / 'smooth_table.json'} and {args.out / 'smooth_curves.svg'}")


if __name__ == "__main__":
    main()
