#!/usr/bin/env bash
# Install every Debian package that formvault's build, server, tests and
# benchmarks need. Idempotent: packages already present are skipped, and apt
# is not touched at all when nothing is missing. Run as root (apt-get).
set -euo pipefail

PACKAGES=(
    # build
    build-essential cmake pkg-config clang clang-format libclang-rt-14-dev git
    # libraries (DESIGN.md "Dependencies")
    libmicrohttpd-dev libgnutls28-dev libsodium-dev libsqlite3-dev
    libjansson-dev libinih-dev libcsv-dev libp11-kit-dev libgcrypt20-dev
    # unit and black-box tests
    libcmocka-dev python3 python3-pytest python3-requests curl sqlite3
    gnutls-bin openssl softhsm2 p11-kit
    # benchmarks
    wrk nginx-light
)

missing=()
for p in "${PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
        missing+=("$p")
    fi
done

if [ "${#missing[@]}" -eq 0 ]; then
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "install-deps: missing packages: ${missing[*]}" >&2
    echo "install-deps: run as root: sudo scripts/install-deps.sh" >&2
    exit 1
fi

echo "install-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# nginx is only a benchmark peer; never leave the system service running.
if command -v systemctl >/dev/null 2>&1; then
    systemctl disable --now nginx >/dev/null 2>&1 || true
fi
