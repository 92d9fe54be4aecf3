#!/usr/bin/env bash
# fusion-eval benchmark: the scaling curve (10M, 30M, 100M rows; Parquet; two score columns;
# all six segments from a HISTORY file (CSV; at 10M also Parquet); no bootstrap), the same 10M
# rows from CSV, and the two Python baselines on the 10M CSV, all in one run. Prints wall time, CPU time and peak RSS.
#
#   scripts/bench_fusion_eval.sh [DIR]        (DIR default: ~/.cache/learnrec/bench/fe)
#
# FE_OLD=/path/to/an/older/fusion-eval also runs that binary right after each run of this one
# (interleaved before/after on a shared machine; the JSON reports of both are compared: equal
# counts, floats to 1e-9).
# The 10M Parquet run prints its stage breakdown (LEARNREC_FE_STAGES=1: wall, CPU, RSS).
#
# Generated files (about 5 GB for all sizes) are kept in DIR and reused. Users = rows / 20,
# heavy-tailed rows per user, Zipf-like items (`fusion-eval gen`).
set -euo pipefail
cd "$(dirname "$0")/.."
DIR="${1:-$HOME/.cache/learnrec/bench/fe}"
mkdir -p "$DIR"
cargo build --release -q -p learnrec-eval --bin fusion-eval
FE="${CARGO_TARGET_DIR:-target}/release/fusion-eval"
for n in 10 30 100; do
  [ -f "$DIR/p${n}m.parquet" ] && [ -f "$DIR/h${n}m.csv" ] ||
    "$FE" gen --rows "${n}000000" --users "$((n * 50000))" --out "$DIR/p${n}m.parquet" --history-out "$DIR/h${n}m.csv"
done
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
[ -f "$DIR/p10m.csv" ] || "$FE" gen --rows 10000000 --users 500000 --out "$DIR/p10m.csv"
# The same HISTORY rows as h10m.csv, in Parquet (the predictions written beside it are dropped).
[ -f "$DIR/h10m.parquet" ] ||
  "$FE" gen --rows 10000000 --users 500000 --out "$TMP/unused.parquet" --history-out "$DIR/h10m.parquet"
run() { # label, args...
  local label=$1; shift
  echo "== $label (load $(cut -d' ' -f1-3 /proc/loadavg))"
  /usr/bin/time -f "$label: %e s wall, %U s user, %S s sys, peak RSS %M KB" "$FE" "$@" --bootstrap 0 --quiet --json "$TMP/new.json"
  if [ -n "${FE_OLD:-}" ] && [ -z "${NEW_ONLY:-}" ]; then
    echo "== $label, FE_OLD (load $(cut -d' ' -f1-3 /proc/loadavg))"
    /usr/bin/time -f "$label, FE_OLD: %e s wall, %U s user, %S s sys, peak RSS %M KB" "$FE_OLD" "$@" --bootstrap 0 --quiet --json "$TMP/old.json"
    # Versions before 2026-11-29 key integer ids differently, so users are summed in another
    # order: equal counts, floats equal to ~1e-12 rather than bit for bit.
    python3 - "$TMP/new.json" "$TMP/old.json" "$label" <<'PY'
import json, sys
a, b = (json.load(open(f)) for f in sys.argv[1:3])
worst = [0.0, True]
def walk(x, y):
    if isinstance(x, dict) and isinstance(y, dict) and x.keys() == y.keys():
        return all(walk(x[k], y[k]) for k in x if k != "seconds")
    if isinstance(x, list) and isinstance(y, list) and len(x) == len(y):
        return all(walk(p, q) for p, q in zip(x, y))
    if isinstance(x, float) or isinstance(y, float):
        worst[0] = max(worst[0], abs(x - y)) if x is not None and y is not None else worst[0]
        return x is not None and y is not None and abs(x - y) <= 1e-9
    return x == y
ok = walk(a, b)
print(f"{sys.argv[3]}: JSON reports", "equal (max float difference %.1e)" % worst[0] if ok else "DIFFER")
PY
  fi
}
LEARNREC_FE_STAGES=1 run "parquet 10M" --pred "$DIR/p10m.parquet" --history "$DIR/h10m.csv"
# (versions before 2026-11-29 read no Parquet HISTORY: no FE_OLD run)
NEW_ONLY=1 run "parquet 10M, Parquet HISTORY" --pred "$DIR/p10m.parquet" --history "$DIR/h10m.parquet"
for n in 30 100; do run "parquet ${n}M" --pred "$DIR/p${n}m.parquet" --history "$DIR/h${n}m.csv"; done
run "csv 10M" --pred "$DIR/p10m.csv" --history "$DIR/h10m.csv"
run "parquet 10M, no HISTORY (overall only)" --pred "$DIR/p10m.parquet"
echo "== Python baselines on the 10M CSV (load $(cut -d' ' -f1-3 /proc/loadavg))"
python3 scripts/python_baselines.py "$DIR/p10m.csv" --sklearn-max-rows 1000000
