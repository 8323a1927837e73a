#!/usr/bin/env bash
# Makes sure a Vulkan driver is present. On a machine with no GPU driver this
# installs Mesa's software Vulkan (lavapipe), which fusedmlp runs on headless.
set -euo pipefail

has_vulkan_driver() {
    # A Vulkan ICD manifest in any standard location means a driver is installed.
    for dir in /usr/share/vulkan/icd.d /etc/vulkan/icd.d /usr/local/share/vulkan/icd.d; do
        if compgen -G "$dir/*.json" > /dev/null; then
            return 0
        fi
    done
    # macOS (Metal) and Windows (DX12) need no Vulkan driver.
    case "$(uname -s)" in
        Darwin|MINGW*|MSYS*|CYGWIN*) return 0 ;;
    esac
    return 1
}

if has_vulkan_driver; then
    exit 0
fi

echo "fusedmlp: no Vulkan driver found; installing Mesa's lavapipe (mesa-vulkan-drivers)" >&2
if command -v apt-get > /dev/null; then
    SUDO=""
    if [ "$(id -u)" != "0" ]; then
        SUDO="sudo"
    fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq mesa-vulkan-drivers > /dev/null
elif command -v dnf > /dev/null; then
    sudo dnf install -y mesa-vulkan-drivers
else
    echo "fusedmlp: cannot install a Vulkan driver on this system automatically;" \
         "install Mesa's Vulkan drivers (lavapipe) with your package manager" >&2
    exit 1
fi
