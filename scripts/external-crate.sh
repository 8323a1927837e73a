#!/usr/bin/env bash
# Builds and runs scripts/external-crate/main.rs as a binary crate of its own,
# outside the repository, depending on fusedmlp by path with its default
# features (what `cargo add fusedmlp` gives): the public API alone must
# train, save, load and predict. Reuses
# the repository's lock file and target folder, so only the two crates
# themselves compile.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
DIR=$(mktemp -d)
trap 'rm -rf "$DIR"' EXIT
mkdir -p "$DIR/src"
cat > "$DIR/Cargo.toml" <<TOML
[package]
name = "fusedmlp-external-check"
version = "0.0.0"
edition = "2021"
publish = false

[dependencies]
fusedmlp = { path = "$ROOT" }

[workspace]
TOML
cp scripts/external-crate/main.rs "$DIR/src/main.rs"
cp Cargo.lock "$DIR/Cargo.lock"
CARGO_TARGET_DIR="$ROOT/target" cargo run --release --quiet --manifest-path "$DIR/Cargo.toml"
