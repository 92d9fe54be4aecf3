#!/usr/bin/env python3
"""Cross-check `fusion-eval` against scikit-learn's roc_auc_score on a generated file.

Usage:
    pip install numpy scikit-learn
    python3 scripts/sklearn_check.py --bin target/debug/fusion-eval [--rows 100000 --users 3000]

Generates PRED (+HISTORY) with `fusion-eval gen`, runs `fusion-eval --json` (no bootstrap), then
recomputes everything with scikit-learn, user by user: global AUC, UAUC, WUAUC (rows), users
counted/skipped, overall and per user segment / item segment (segments from HISTORY with the
paper's thresholds). Exits non-zero if any value differs by more than --tol (default 1e-9).
Scores are compared as float32 (fusion-eval reads f32), which equals the file's text order.
"""

import argparse
import collections
import csv
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
from sklearn.metrics import roc_auc_score

SEGS = ["cold-start", "long-tail", "regular"]


def seg(count, long_tail_max):
    if count == 0:
        return "cold-start"
    return "long-tail" if count <= long_tail_max else "regular"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--users", type=int, default=3_000)
    ap.add_argument("--items", type=int, default=2_000)
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--tol", type=float, default=1e-9)
    ap.add_argument("--weight", default="rows", choices=["rows", "positives"])
    a = ap.parse_args()

    d = tempfile.mkdtemp()
    pred, hist, js = (os.path.join(d, n) for n in ("pred.csv", "hist.csv", "r.json"))
    subprocess.run([a.bin, "gen", "--rows", str(a.rows), "--users", str(a.users), "--items", str(a.items),
                    "--seed", str(a.seed), "--out", pred, "--history-out", hist], check=True)
    subprocess.run([a.bin, "--pred", pred, "--history", hist, "--bootstrap", "0", "--quiet",
                    "--wuauc-weight", a.weight, "--json", js], check=True)
    rep = json.load(open(js))

    with open(pred) as f:
        r = csv.reader(f)
        hdr = next(r)
        rows = list(r)
    ci = {h: i for i, h in enumerate(hdr)}
    users = [x[ci["user_id"]] for x in rows]
    items = [x[ci["item_id"]] for x in rows]
    labels = np.array([int(x[ci["label"]]) for x in rows])
    models = [h for h in hdr if h.startswith("score")]
    scores = {m: np.array([np.float32(x[ci[m]]) for x in rows], dtype=np.float32) for m in models}

    ucount, iconv = collections.Counter(), collections.Counter()
    with open(hist) as f:
        r = csv.DictReader(f)
        for x in r:
            if x["action"] in ("click", "conversion", "rating"):
                ucount[x["user_id"]] += 1
            else:
                ucount[x["user_id"]] += 0
            iconv[x["item_id"]] += 1 if x["action"] == "conversion" else 0
    th = rep["thresholds"]
    useg = {u: seg(ucount.get(u, 0), th["user_long_tail_max"]) for u in set(users)}
    iseg = np.array([seg(iconv.get(i, 0), th["item_long_tail_max"]) for i in items])

    by_user = collections.defaultdict(list)
    for k, u in enumerate(users):
        by_user[u].append(k)

    def group_metrics(member_rows):
        """member_rows: dict user -> row indices of the group. Returns per model (uauc, wuauc), counted, skipped."""
        out = {}
        counted = skipped = 0
        per = {m: [] for m in models}
        ws = []
        for u, ix in member_rows.items():
            ix = np.array(ix)
            y = labels[ix]
            if y.min() == y.max():
                skipped += 1
                continue
            counted += 1
            ws.append(len(ix) if a.weight == "rows" else int(y.sum()))
            for m in models:
                per[m].append(roc_auc_score(y, scores[m][ix]))
        for m in models:
            v = np.array(per[m])
            w = np.array(ws, dtype=float)
            out[m] = (v.mean() if len(v) else None, (v * w).sum() / w.sum() if len(v) else None)
        return out, counted, skipped

    errs = []
    maxdiff = [0.0]

    def close(what, x, y):
        if x is None or y is None:
            if x != y:
                errs.append(f"{what}: fusion-eval {x} vs sklearn {y}")
            return
        maxdiff[0] = max(maxdiff[0], abs(x - y))
        if abs(x - y) > a.tol:
            errs.append(f"{what}: fusion-eval {x!r} vs sklearn {y!r} (diff {abs(x - y):.3g})")

    def same(what, x, y):
        if x != y:
            errs.append(f"{what}: fusion-eval {x} vs sklearn {y}")

    checked = 0
    groups = [({"kind": "overall"}, by_user)]
    for s in SEGS:
        groups.append(({"kind": "user", "segment": s}, {u: ix for u, ix in by_user.items() if useg[u] == s}))
    for s in SEGS:
        g = {}
        for u, ix in by_user.items():
            sub = [k for k in ix if iseg[k] == s]
            if sub:
                g[u] = sub
        groups.append(({"kind": "item", "segment": s}, g))
    rgroups = [rep["overall"]] + rep["segments"]
    for (kind, members), rg in zip(groups, rgroups):
        name = kind["kind"] + " " + kind.get("segment", "")
        same(f"{name} group", rg["group"], kind)
        met, counted, skipped = group_metrics(members)
        same(f"{name} users counted", rg["users_counted"], counted)
        same(f"{name} users skipped", rg["users_skipped"], skipped)
        same(f"{name} rows", rg["rows"], sum(len(v) for v in members.values()))
        for mm in rg["models"]:
            m = mm["model"]
            close(f"{name} {m} UAUC", mm["uauc"], met[m][0])
            close(f"{name} {m} WUAUC", mm["wuauc"], met[m][1])
            checked += 2
            if kind["kind"] == "overall":
                close(f"AUC {m}", mm["auc"], roc_auc_score(labels, scores[m]))
                checked += 1
    print(f"sklearn check: {len(rows)} rows, {len(by_user)} users, {len(models)} models, "
          f"{len(groups)} groups, {checked} values compared at tol {a.tol:g}; max |diff| = {maxdiff[0]:.3g}")
    if errs:
        print("MISMATCH:\n  " + "\n  ".join(errs))
        sys.exit(1)
    print("all equal")


if __name__ == "__main__":
    main()
