#!/usr/bin/env bash
# Runs the load benchmark matrix and writes bench/RESULTS.md and its plots.
# Flags go to bench/cmd/benchrun: bash bench/run.sh -scale 0.05 for a quick run.
set -euo pipefail
# bench/ is a module of its own: its plotting libraries stay out of leanxds's.
cd "$(dirname "$0")"
exec go run ./cmd/benchrun "$@"
