#!/usr/bin/env bash
# The first GPU session (issue 22, point 6): <= 10 min on one H100. Writes benchmarks/results/gpu_session.json
# and .md (the book's architecture page shows the .md when it exists). Extra arguments go to gpu_session.py.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
exec timeout 600 "$PY" benchmarks/gpu_session.py --out benchmarks/results "$@"
