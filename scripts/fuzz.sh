#!/usr/bin/env bash
# Property-based fuzzing of the CSV, IDX and checkpoint readers
# (tests/fuzz_loaders.rs, tests/fuzz_checkpoint.rs)
# with many cases per property: FUZZ_CASES (default 100000) cases each, in
# release mode. Extra arguments go to the test binary (e.g. a test name).
# Needs no GPU. The normal `cargo test` run uses 2000 cases per property.
set -euo pipefail
cd "$(dirname "$0")/.."
export FUZZ_CASES="${FUZZ_CASES:-100000}"
start=$(date +%s.%N)
status=0
cargo test --release --test fuzz_loaders --test fuzz_checkpoint -- --nocapture "$@" || status=$?
end=$(date +%s.%N)
elapsed=$(awk -v s="$start" -v e="$end" 'BEGIN { printf "%.1f", e - s }')
echo "fuzz.sh: FUZZ_CASES=${FUZZ_CASES} cases per property; ${elapsed}s elapsed (build included); exit status ${status}"
exit "$status"
