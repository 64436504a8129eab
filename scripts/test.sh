#!/usr/bin/env bash
# Set up a venv with the serve and server extras and the test tools, and run the test suite.
# Usage: bash scripts/test.sh [pytest args]
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/venv.sh '.[serve,server]' -r scripts/requirements-test.txt
export PATH="$PWD/$VENV/bin:$PATH"
# One BLAS/OpenMP thread per process: on 2 cores a model fit next to a gateway went from
# 65 s to 0.3 s once threads stopped fighting over the cores.
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
# Two workers (pytest-xdist), a test file per worker so its module fixtures (trained models,
# servers) are built once; the deployment tests' files are handed out first, in the order
# tests/conftest.py gives them; tests marked `exclusive` (timed assertions) run alone.
# MLCI_TEST_WORKERS=0 runs everything in this one process.
exec "$VENV/bin/python" -m pytest -n "${MLCI_TEST_WORKERS:-2}" --dist loadfile \
  --no-loadscope-reorder "$@"
