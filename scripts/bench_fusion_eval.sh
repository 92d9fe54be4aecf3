#!/usr/bin/env bash
# fusion-eval benchmark: the scaling curve (10M, 30M, 100M rows; Parquet; two score columns;
# all six segments from a HISTORY file; no bootstrap), the same 10M rows from CSV, and the two
# Python baselines on the 10M CSV, all in one run. Prints wall time, CPU time and peak RSS.
#
#   scripts/bench_fusion_eval.sh [DIR]        (DIR default: ~/.cache/learnrec/bench/fe)
#
# FE_OLD=/path/to/an/older/fusion-eval also runs that binary right after each run of this one
# (interleaved before/after on a shared machine; the JSON reports of both are compared).
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
[ -f "$DIR/p10m.csv" ] || "$FE" gen --rows 10000000 --users 500000 --out "$DIR/p10m.csv"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
run() { # label, args...
  local label=$1; shift
  echo "== $label (load $(cut -d' ' -f1-3 /proc/loadavg))"
  /usr/bin/time -f "$label: %e s wall, %U s user, %S s sys, peak RSS %M KB" "$FE" "$@" --bootstrap 0 --quiet --json "$TMP/new.json"
  if [ -n "${FE_OLD:-}" ]; then
    echo "== $label, FE_OLD (load $(cut -d' ' -f1-3 /proc/loadavg))"
    /usr/bin/time -f "$label, FE_OLD: %e s wall, %U s user, %S s sys, peak RSS %M KB" "$FE_OLD" "$@" --bootstrap 0 --quiet --json "$TMP/old.json"
    cmp -s "$TMP/new.json" "$TMP/old.json" && echo "$label: JSON reports identical" || echo "$label: JSON reports DIFFER"
  fi
}
LEARNREC_FE_STAGES=1 run "parquet 10M" --pred "$DIR/p10m.parquet" --history "$DIR/h10m.csv"
for n in 30 100; do run "parquet ${n}M" --pred "$DIR/p${n}m.parquet" --history "$DIR/h${n}m.csv"; done
run "csv 10M" --pred "$DIR/p10m.csv" --history "$DIR/h10m.csv"
run "parquet 10M, no HISTORY (overall only)" --pred "$DIR/p10m.parquet"
echo "== Python baselines on the 10M CSV (load $(cut -d' ' -f1-3 /proc/loadavg))"
python3 scripts/python_baselines.py "$DIR/p10m.csv" --sklearn-max-rows 1000000
