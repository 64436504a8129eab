#!/usr/bin/env bash
# Set up a venv with the test extras and run the whole test suite.
# Usage: bash scripts/test.sh [pytest args]
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/venv.sh '.[test,serve,server]'
export PATH="$PWD/$VENV/bin:$PATH"
# One BLAS/OpenMP thread per process: on 2 cores a model fit next to a gateway went from
# 65 s to 0.3 s once threads stopped fighting over the cores.
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
exec "$VENV/bin/python" -m pytest "$@"
