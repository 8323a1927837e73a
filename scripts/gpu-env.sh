# Sourced by the scripts that run on the GPU: makes sure a Vulkan driver is
# present (lavapipe where there is no GPU) and gives the Vulkan loader a
# private runtime folder (it warns on stderr without one).
scripts/setup-vulkan.sh
if [ -z "${XDG_RUNTIME_DIR:-}" ]; then
    XDG_RUNTIME_DIR="$(mktemp -d)"
    export XDG_RUNTIME_DIR
fi
