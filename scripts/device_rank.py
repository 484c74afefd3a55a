"""Rank a source sweep's runs from an eval-real real.json, best first, one run name a line, so the
call that scores them can fetch the best before the machine goes back (no reply in between).
A run keeps FL2's damaged-chain quality (its "NAME@D" row: Y-PSNR >= MIN_PSNR, NIQE <= MAX_NIQE)
or falls behind every run that does; within each group, the higher clean x4 Y-PSNR of its
"NAME@D clean" row (its "NAME@D" row for runs without one) comes first.
usage: python3 scripts/device_rank.py REAL_JSON [MIN_PSNR] [MAX_NIQE]"""
import json
import sys

res = json.load(open(sys.argv[1]))
min_psnr = float(sys.argv[2]) if len(sys.argv) > 2 else 31.90
max_niqe = float(sys.argv[3]) if len(sys.argv) > 3 else 8.80
runs = {}
for m in res["methods"]:
    if "@" in m and not m.startswith("teacher"):
        runs.setdefault(m.split("@")[0], []).append(m)


def key(rows):
    plain = [r for r in rows if not r.endswith(" clean")][0]
    clean = ([r for r in rows if r.endswith(" clean")] or [plain])[0]
    d = res["damaged"][plain]
    ok = d["psnr_y"] >= min_psnr and (d.get("niqe") is None or d["niqe"] <= max_niqe)
    return ok, res["chains"]["clean"][clean]["psnr_y"]


for name in sorted(runs, key=lambda n: key(runs[n]), reverse=True):
    print(name)
