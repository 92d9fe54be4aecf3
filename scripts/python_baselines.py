#!/usr/bin/env python3
"""Today's Python ways to get UAUC/WUAUC, timed on a fusion-eval predictions CSV.

Usage:
    pip install numpy scikit-learn
    python3 scripts/python_baselines.py PRED.csv [--sklearn-max-rows 2000000]

Two baselines, both computing UAUC and WUAUC (rows-weighted) for every score column, overall
only (no segments, no global AUC, no bootstrap), timed WITHOUT loading the file (so they are
flattered compared with fusion-eval, whose numbers include parsing):
  1. vectorised numpy: lexsort by (user, score), midranks per (user, score) tie run, bincount;
  2. a per-user loop calling sklearn.metrics.roc_auc_score (the FuxiCTR/RecBole-style loop).
Prints rows/s for each and checks that both agree to 1e-9.
"""

import argparse
import time

import numpy as np


def load(path):
    t = time.perf_counter()
    with open(path) as f:
        header = f.readline().strip().split(",")
    data = np.loadtxt(path, delimiter=",", skiprows=1, dtype=np.float64)
    cols = {h: data[:, i] for i, h in enumerate(header)}
    users = cols["user_id"].astype(np.int64)
    labels = cols["label"].astype(np.int64)
    scores = {h: cols[h].astype(np.float32) for h in header if h.startswith("score")}
    print(f"loaded {len(users)} rows in {time.perf_counter() - t:.1f}s (not counted)")
    return users, labels, scores


def numpy_uauc(users, labels, score):
    order = np.lexsort((score, users))
    u, s, y = users[order], score[order], labels[order].astype(np.float64)
    n = len(u)
    newu = np.empty(n, bool)
    newu[0] = True
    newu[1:] = u[1:] != u[:-1]
    uid = np.cumsum(newu) - 1
    ustart = np.flatnonzero(newu)
    newt = newu.copy()
    newt[1:] |= s[1:] != s[:-1]
    tstart = np.flatnonzero(newt)
    tend = np.append(tstart[1:], n)
    tid = np.cumsum(newt) - 1
    # 1-based midrank within the user of every row
    mid = ((tstart + tend - 1) / 2.0 - ustart[uid[tstart]] + 1.0)[tid]
    cnt = np.bincount(uid).astype(np.float64)
    P = np.bincount(uid, weights=y)
    N = cnt - P
    R = np.bincount(uid, weights=y * mid)
    ok = (P > 0) & (N > 0)
    auc = (R[ok] - P[ok] * (P[ok] + 1) / 2) / (P[ok] * N[ok])
    return auc.mean(), (auc * cnt[ok]).sum() / cnt[ok].sum(), int(ok.sum())


def sklearn_uauc(users, labels, score):
    from sklearn.metrics import roc_auc_score

    order = np.argsort(users, kind="stable")
    u = users[order]
    bounds = np.flatnonzero(np.diff(u)) + 1
    starts = np.r_[0, bounds]
    ends = np.r_[bounds, len(u)]
    aucs, ws = [], []
    for a, b in zip(starts, ends):
        ix = order[a:b]
        y = labels[ix]
        if y.min() == y.max():
            continue
        aucs.append(roc_auc_score(y, score[ix]))
        ws.append(b - a)
    aucs, ws = np.array(aucs), np.array(ws, dtype=np.float64)
    return aucs.mean(), (aucs * ws).sum() / ws.sum(), len(aucs)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("pred")
    ap.add_argument("--sklearn-max-rows", type=int, default=2_000_000,
                    help="run the sklearn loop on at most this many rows (whole users), it is slow")
    a = ap.parse_args()
    users, labels, scores = load(a.pred)
    n = len(users)

    t = time.perf_counter()
    res_np = {m: numpy_uauc(users, labels, s) for m, s in scores.items()}
    dt = time.perf_counter() - t
    print(f"numpy vectorised midrank: {n} rows, {len(scores)} models in {dt:.2f}s = {n / dt / 1e6:.2f} M rows/s")
    for m, r in res_np.items():
        print(f"  {m}: UAUC {r[0]:.6f} WUAUC {r[1]:.6f} users counted {r[2]}")

    keep = users < np.quantile(users, min(1.0, a.sklearn_max_rows / n)) if n > a.sklearn_max_rows else np.ones(n, bool)
    su, sl = users[keep], labels[keep]
    t = time.perf_counter()
    res_sk = {m: sklearn_uauc(su, sl, s[keep]) for m, s in scores.items()}
    dt = time.perf_counter() - t
    ns = int(keep.sum())
    print(f"per-user sklearn loop: {ns} rows, {len(scores)} models in {dt:.2f}s = {ns / dt / 1e6:.2f} M rows/s")
    if ns == n:
        for m in scores:
            d = max(abs(res_np[m][0] - res_sk[m][0]), abs(res_np[m][1] - res_sk[m][1]))
            print(f"  {m}: numpy vs sklearn max |diff| = {d:.2e}")
            assert d < 1e-9, m


if __name__ == "__main__":
    main()
