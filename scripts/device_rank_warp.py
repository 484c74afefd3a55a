"""Rank a temporal sweep's runs from an eval-real real.json, best first, one run name a line, so the
call that scores them can fetch the best before the machine goes back (no reply in between).
Detail trades NIQE for warp error along one curve per model; a run is better only if it lies below
BASE's curve. Each row "NAME@D" of a run is read against BASE's warp error at the same damaged-chain
NIQE (linear between BASE's details, the end segments extended); a run's score is its best such
gain (x bicubic) among rows that keep Y-PSNR within 0.05 dB of BASE's at 0.25. BASE is not listed.
usage: python3 scripts/device_rank_warp.py REAL_JSON BASE"""
import json
import sys

res, base = json.load(open(sys.argv[1])), sys.argv[2]


def rows(name):
    """(niqe, warp x bicubic, psnr) of each detail row of `name`, by NIQE."""
    out = [(res["damaged"][m]["niqe"], res["temporal"][m]["warp_x"], res["damaged"][m]["psnr_y"])
           for m in res["methods"] if m.split("@")[0] == name and not m.endswith(" clean")]
    return sorted(out)


curve = rows(base)
if len(curve) < 2:
    sys.exit(f"device_rank_warp: {base} needs rows at two details or more")
floor = res["damaged"][f"{base}@0.25"]["psnr_y"] - 0.05


def base_warp(niqe):
    i = min(max(1, sum(n < niqe for n, _, _ in curve)), len(curve) - 1)
    (n0, w0, _), (n1, w1, _) = curve[i - 1], curve[i]
    return w0 + (w1 - w0) * (niqe - n0) / (n1 - n0)


def score(name):
    gains = [base_warp(n) - w for n, w, p in rows(name) if p >= floor]
    return max(gains, default=float("-inf"))


names = {m.split("@")[0] for m in res["methods"] if "@" in m} - {base}
for name in sorted(names, key=score, reverse=True):
    print(name, f"{score(name):+.3f}", file=sys.stderr)
    print(name)
