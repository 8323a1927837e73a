#!/usr/bin/env bash
# The browser test: installs what it needs (Chromium from Debian, the wasm
# toolchain and wasm-bindgen-cli through scripts/web.sh, the test's npm
# packages from web/test/package-lock.json), builds the playground and opens
# it in headless Chromium with WebGPU (SwiftShader where there is no GPU).
# The page runs the self-test, the step check against the CPU reference and
# two experiments, the downloads and a device loss, and reports back;
# web/test/run.mjs checks what it reports (the downloaded model against
# `fusedmlp predict`), opens the page with bad URL settings and with CSV
# files, and checks the screenshots it takes (web/test/out/).
set -euo pipefail
cd "$(dirname "$0")/.."
log() { echo "web-test.sh: $*" >&2; }
as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
        log "need root to run: $*"; return 1; fi
}
CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
if [ ! -x "$CHROMIUM" ]; then
    log "installing Chromium (Debian's chromium package)"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null \
        || { as_root apt-get update -q >/dev/null && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null; } \
        || { log "FAILED: no browser: could not install Chromium; install it (or set CHROMIUM to a Chromium binary) to run the web test"; exit 1; }
fi
command -v node >/dev/null || { log "FAILED: the web test needs Node.js and npm (to drive Chromium)"; exit 1; }
scripts/web.sh --build-only
# The native command line reads back the model the page lets a user download.
cargo build --release --quiet --features cli --bin fusedmlp
(cd web/test && npm ci --no-audit --no-fund --loglevel=error)
# A browser that fails to start, crashes or goes silent (exit 3) gets one
# more try; a failed check does not.
status=0
CHROMIUM="$CHROMIUM" node web/test/run.mjs "$@" || status=$?
if [ "$status" = 3 ]; then
    log "the browser failed (above); trying once more"
    status=0
    CHROMIUM="$CHROMIUM" node web/test/run.mjs "$@" || status=$?
fi
exit "$status"
