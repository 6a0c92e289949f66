#!/usr/bin/env python3
"""Samples from VNN-LIB robustness properties: the centre of each input box and its label.

usage: scripts/vnnlib_centers.py PROPERTY.vnnlib... --out PREFIX

Writes PREFIX_x.npy (float32, [N, inputs]) and PREFIX_y.npy (int64, [N]). The label is the
output index that appears in every output atom (the class the property says must stay on
top). For mnistfc's l_inf properties the centre is the MNIST test image, moved by at most eps/2
where the box is clipped at 0 or 1.
"""

import argparse
import re
import sys

import numpy as np

ATOM = re.compile(r"\((<=|>=)\s+X_(\d+)\s+([-+0-9.eE]+)\)")
OUTPUT_ATOM = re.compile(r"\((?:<=|>=)\s+Y_(\d+)\s+Y_(\d+)\)")


def centre_and_label(path):
    text = open(path).read()
    lo, hi = {}, {}
    for op, i, v in ATOM.findall(text):
        (hi if op == "<=" else lo)[int(i)] = float(v)
    n = max(max(lo), max(hi)) + 1
    x = np.array([(lo[i] + hi[i]) / 2 for i in range(n)], dtype=np.float32)
    pairs = [set(map(int, p)) for p in OUTPUT_ATOM.findall(text)]
    common = set.intersection(*pairs) if pairs else set()
    if len(common) != 1:
        raise SystemExit(f"error: {path}: cannot tell the label from the output constraints")
    return x, common.pop()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("properties", nargs="+")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    xs, ys = zip(*(centre_and_label(p) for p in args.properties))
    np.save(f"{args.out}_x.npy", np.stack(xs))
    np.save(f"{args.out}_y.npy", np.array(ys, dtype=np.int64))
    print(f"wrote {len(xs)} samples to {args.out}_x.npy and {args.out}_y.npy", file=sys.stderr)


if __name__ == "__main__":
    main()
