#!/usr/bin/env bash
# The fault campaigns at full length (the test suite runs them test-sized):
# processes killed at random points, failing ledger writes, GitHub chaos,
# concurrent pushes. Prints each scenario's rounds and outcome.
#
#   scripts/fault-campaign.sh [ROUNDS] [CHAOS_SEEDS] [PUSHES]   # defaults 300 50 50
set -euo pipefail
cd "$(dirname "$0")/.."
export GIT_AUDIT_FAULT_ROUNDS=${1:-300} GIT_AUDIT_CHAOS_SEEDS=${2:-50} GIT_AUDIT_LOAD_PUSHES=${3:-50}
cargo test --locked --test main -- --nocapture --test-threads 1 faults:: sync::chaos 2>&1 |
  grep -E '^(verify --record|pushes|sync/anchor|chaos|[0-9]+ concurrent)|^test |test result'
