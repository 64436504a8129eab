#!/usr/bin/env bash
# Set up a venv, install mlci, and run the code-trigger pipeline on the Iris example.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/venv.sh .
cd examples/iris
code=0
"../../$VENV/bin/mlci" run || code=$?
echo
echo "report:     examples/iris/.mlci/report.md"
echo "data docs:  examples/iris/.mlci/data-docs/index.html"
echo "registry:   sqlite:///$(pwd)/.mlci/mlflow.db  (mlflow ui --backend-store-uri ...)"
exit "$code"
