#!/usr/bin/env bash
# Builds the browser playground (web/) into web/dist/ and serves it on
# 127.0.0.1.
#
#   scripts/web.sh               build, then serve on http://127.0.0.1:8080/
#   scripts/web.sh --port 9000   another port
#   scripts/web.sh --build-only  build only (what the web test uses)
#
# The wasm32 target comes from `rustup target add wasm32-unknown-unknown`
# where rustup can fetch it; where it cannot, from Debian's rustc-web
# toolchain, building std for the target (-Zbuild-std). wasm-bindgen-cli
# is installed at the version web/Cargo.lock pins.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PORT=8080
SERVE=1
while [ $# -gt 0 ]; do
    case "$1" in
        --port) PORT="$2"; shift 2 ;;
        --build-only) SERVE=0; shift ;;
        *) echo "web.sh: unknown argument '$1' (expected --port N or --build-only)" >&2; exit 2 ;;
    esac
done

log() { echo "web.sh: $*" >&2; }

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
        log "need root to run: $*"; return 1; fi
}

# --- the wasm32 toolchain -------------------------------------------------
TARGET=wasm32-unknown-unknown
BUILD=()
if command -v rustup >/dev/null && rustup target list --installed 2>/dev/null | grep -qx "$TARGET"; then
    BUILD=(cargo build --release --target "$TARGET")
elif command -v rustup >/dev/null && timeout 120 rustup target add "$TARGET" >/dev/null 2>&1; then
    BUILD=(cargo build --release --target "$TARGET")
else
    log "rustup cannot provide $TARGET here; using Debian's rustc-web with -Zbuild-std"
    need=()
    for p in rustc-web cargo-web rust-web-src; do
        dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
    done
    if ! ls /usr/lib/llvm-*/bin/wasm-ld >/dev/null 2>&1; then need+=(lld-22); fi
    if [ ${#need[@]} -gt 0 ]; then
        log "installing ${need[*]}"
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need[@]}" >/dev/null \
            || { as_root apt-get update -q >/dev/null && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need[@]}" >/dev/null; } \
            || { log "could not install ${need[*]}: install a Rust toolchain with the $TARGET target"; exit 1; }
    fi
    # The wasm-ld of the LLVM that Debian's rustc is built on.
    llvm=$(/usr/bin/rustc -vV | sed -n 's/^LLVM version: \([0-9]*\).*/\1/p')
    linker=/usr/lib/llvm-$llvm/bin/wasm-ld
    [ -x "$linker" ] || linker=$(ls /usr/lib/llvm-*/bin/wasm-ld | sort -V | tail -1)
    export RUSTC=/usr/bin/rustc RUSTC_BOOTSTRAP=1 CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_LINKER="$linker"
    BUILD=(/usr/bin/cargo build --release --target "$TARGET" -Zbuild-std=std,panic_abort)
fi

# --- wasm-bindgen-cli at the pinned version ----------------------------------
WB_VERSION=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' web/Cargo.lock)
WB="$HOME/.cargo/bin/wasm-bindgen"
if ! { [ -x "$WB" ] && "$WB" --version | grep -q " $WB_VERSION\$"; }; then
    if command -v wasm-bindgen >/dev/null && wasm-bindgen --version | grep -q " $WB_VERSION\$"; then
        WB=$(command -v wasm-bindgen)
    else
        log "installing wasm-bindgen-cli $WB_VERSION (a few minutes, once)"
        cargo install -q wasm-bindgen-cli --version "$WB_VERSION"
    fi
fi

# --- build -------------------------------------------------------------------
log "building the playground (${BUILD[*]})"
(cd web && "${BUILD[@]}")
rm -rf web/dist
mkdir -p web/dist
# wasm-opt (binaryen), where installed, shrinks the module for the page. It
# runs on the compiler's output, before wasm-bindgen: run after it, the
# binaryen of Debian 12 (108) breaks wasm-bindgen's externref table.
BUILT=web/target/$TARGET/release/fusedmlp_web.wasm
if command -v wasm-opt >/dev/null; then
    opt_dir=$(mktemp -d)
    if wasm-opt -Oz "$BUILT" -o "$opt_dir/fusedmlp_web.wasm" 2>"$opt_dir/log"; then
        BUILT="$opt_dir/fusedmlp_web.wasm"
        OPTIMISED=1
    else
        log "wasm-opt failed (the module is used as built): $(tail -1 "$opt_dir/log")"
    fi
else
    log "wasm-opt not installed (apt-get install binaryen): the module is not size-optimised"
fi
"$WB" --target web --no-typescript --out-dir web/dist/pkg "$BUILT"
cp web/index.html web/app.js web/experiments.js web/style.css web/dist/
WASM=web/dist/pkg/fusedmlp_web_bg.wasm
if [ -n "${OPTIMISED:-}" ]; then
    plain_dir="$opt_dir/plain"
    "$WB" --target web --no-typescript --out-dir "$plain_dir" "web/target/$TARGET/release/fusedmlp_web.wasm"
    log "wasm-opt -Oz: $(($(wc -c < "$plain_dir/fusedmlp_web_bg.wasm") / 1024)) KiB -> $(($(wc -c < "$WASM") / 1024)) KiB"
fi
[ -n "${opt_dir:-}" ] && rm -rf "$opt_dir"
log "built web/dist ($(($(wc -c < "$WASM") / 1024)) KiB of wasm)"

if [ "$SERVE" = 1 ]; then
    echo "fusedmlp playground: http://127.0.0.1:$PORT/  (Ctrl-C stops the server)"
    exec python3 -m http.server "$PORT" --bind 127.0.0.1 --directory "$ROOT/web/dist"
fi
