#!/usr/bin/env bash
# The main job on the embedded digits, on a fresh machine: sets up a
# Vulkan driver when none is present, then runs the job.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-vulkan.sh
if [ -z "${XDG_RUNTIME_DIR:-}" ]; then
    XDG_RUNTIME_DIR="$(mktemp -d)"
    export XDG_RUNTIME_DIR
fi
cargo run --release --example relu_vs_sigmoid -- "$@"
