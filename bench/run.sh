#!/usr/bin/env bash
# Runs the load benchmark matrix and writes bench/RESULTS.md and its plots.
# Flags go to bench/cmd/benchrun: bash bench/run.sh -scale 0.05 for a quick run.
set -euo pipefail
cd "$(dirname "$0")/.."
exec go run ./bench/cmd/benchrun "$@"
