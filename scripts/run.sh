#!/usr/bin/env bash
# The main job on the embedded digits, on a fresh machine: sets up a
# Vulkan driver when none is present, then runs the job.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/gpu-env.sh
cargo run --release --features cli --example relu_vs_sigmoid -- "$@"
