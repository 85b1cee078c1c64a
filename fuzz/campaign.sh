#!/usr/bin/env bash
# Every target for SECONDS each (default 600), one after another, with a
# summary per target in fuzz/logs/campaign.txt.
#
#   fuzz/campaign.sh [SECONDS] [TARGET ...]
set -euo pipefail
cd "$(dirname "$0")"
seconds=${1:-600}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(commit tag openpgp ssh_signature allowed_signers policy checkpoint proof hook_stdin push_cert github_rest github_graphql)
fi
mkdir -p logs
for t in "${targets[@]}"; do
  ./run.sh "$t" "$seconds" | tail -1 >> logs/campaign.txt
done
cat logs/campaign.txt
