#!/usr/bin/env bash
# Makes sure what building syncmq needs beyond Rust is there: the `tls`
# feature (on by default) builds native-tls on OpenSSL, which needs its
# headers (libssl-dev) and pkg-config. Installs them with apt-get when
# missing and run as root; otherwise says what to install. CI and
# scripts/test.sh run it before any cargo call.
set -euo pipefail

if pkg-config --exists openssl 2>/dev/null; then
    exit 0
fi
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
    echo "build-deps.sh: installing libssl-dev and pkg-config" >&2
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libssl-dev pkg-config >/dev/null
else
    echo "build-deps.sh: OpenSSL headers or pkg-config missing (install libssl-dev and pkg-config, or run as root to let this script do it)" >&2
    exit 1
fi
