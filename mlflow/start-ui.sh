#!/usr/bin/env bash
# Start the MLflow UI on the default local store (SQLite + artifacts under .defectqa/).
# Run from anywhere; it serves http://127.0.0.1:${PORT:-5000}. Ctrl-C stops it.
set -euo pipefail
cd "$(dirname "$0")/.."                      # repo root: the store path below is relative to it
MLFLOW="${MLFLOW:-.venv/bin/mlflow}"
WORKDIR="${DEFECTQA_WORKDIR:-.defectqa}"      # same as paths.workdir in params.yaml

if [ ! -f "$WORKDIR/mlflow.db" ]; then
  echo "no MLflow store at $WORKDIR/mlflow.db yet: run 'make run' first" >&2
  exit 1
fi
exec "$MLFLOW" ui --backend-store-uri "sqlite:///$WORKDIR/mlflow.db" --host 127.0.0.1 --port "${PORT:-5000}"
