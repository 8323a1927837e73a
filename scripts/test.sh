#!/usr/bin/env bash
# The test command: sets up a Vulkan driver when none is present, then runs
# every test with the GPU tests required (a missing adapter fails them).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/gpu-env.sh
export FUSEDMLP_REQUIRE_GPU=1
# Release mode: the numerics tests run millions of elements through lavapipe.
cargo test --release --features cli "$@"
# The core alone (no command line, plots or gzip), so a feature gate cannot rot.
cargo test --release --no-default-features --lib "$@"
# A crate of its own, outside the repository, through the public API alone.
scripts/external-crate.sh
# The browser playground in headless Chromium (WebGPU on SwiftShader).
scripts/web-test.sh
