#!/usr/bin/env bash
# The notebooks' pins under every kernel path and thread count (issue "Any machine"):
# for each ATEN_CPU_CAPABILITY a tiny zoo is trained under it, then nbval runs every notebook
# with 1 and 2 OpenMP threads. Not part of `make test` (which runs the native path and
# `default`); run it by hand on a CPU that has the paths:  bash tests/nbval_matrix.sh [CAPS...]
set -uo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
WORK=${WORK:-$(mktemp -d)}
export SOLU_DATA_DIR=${SOLU_DATA_DIR:-$WORK/data} PYTHONHASHSEED=0
status=0
for cap in "${@:-default avx2 avx512}"; do
  for cap1 in $cap; do
    for t in 1 2; do
      export ATEN_CPU_CAPABILITY=$cap1 OMP_NUM_THREADS=$t SOLU_RUNS_DIR=$WORK/runs-$cap1
      "$BIN/solu-repro" zoo --scale tiny --quiet >/dev/null 2>&1 || { echo "zoo failed under $cap1"; status=1; continue; }
      out=$("$BIN/python" -m pytest -p no:cacheprovider -p tests.nbval_patience -q --no-header --nbval-lax \
        --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg notebooks/ 2>&1)
      rc=$?; status=$((status | rc))
      echo "ATEN_CPU_CAPABILITY=$cap1 OMP_NUM_THREADS=$t: $(tail -1 <<<"$out")"
    done
  done
done
exit $status
