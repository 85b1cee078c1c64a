#!/usr/bin/env bash
# Runs one fuzz target for SECONDS on its corpus, then minimises the corpus.
#
#   fuzz/run.sh TARGET SECONDS        # e.g. fuzz/run.sh commit 600
#
# Needs cargo-fuzz (`cargo install cargo-fuzz`); runs on stable Rust with
# `--sanitizer none` (libFuzzer's coverage guidance without ASan). New inputs
# land in fuzz/corpus/TARGET/; a crash, hang (> 10 s) or out-of-memory input
# (> 2 GiB) lands in fuzz/artifacts/TARGET/ — make it a fixed bug and a file
# under tests/fuzz_regressions/TARGET/, which `cargo test` replays.
# The run's log is fuzz/logs/TARGET.log; its last line is the summary.
set -euo pipefail
target=${1:?usage: fuzz/run.sh TARGET SECONDS}
seconds=${2:?usage: fuzz/run.sh TARGET SECONDS}
cd "$(dirname "$0")"
mkdir -p logs "corpus/$target" "artifacts/$target"
log=logs/$target.log
cargo fuzz build --sanitizer none "$target" >/dev/null 2>&1 || cargo fuzz build --sanitizer none "$target"
set +e
cargo fuzz run --sanitizer none "$target" "corpus/$target" -- \
  -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
  -print_final_stats=1 -artifact_prefix="artifacts/$target/" > "$log" 2>&1
status=$?
set -e
cargo fuzz cmin --sanitizer none "$target" "corpus/$target" > "logs/$target.cmin.log" 2>&1 || true
execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
last=$(grep -E '^#[0-9]+' "$log" | tail -1)
cov=$(echo "$last" | grep -o 'cov: [0-9]*' | grep -o '[0-9]*' || true)
ft=$(echo "$last" | grep -o 'ft: [0-9]*' | grep -o '[0-9]*' || true)
found=$(find "artifacts/$target" -type f | wc -l)
corpus=$(find "corpus/$target" -type f | wc -l)
echo "$target seconds=$seconds execs=${execs:-?} cov=${cov:-?} ft=${ft:-?} corpus=$corpus findings=$found exit=$status" | tee -a "$log"
