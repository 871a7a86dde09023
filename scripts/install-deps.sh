#!/usr/bin/env bash
# Installs the Debian 12 packages popsync needs to build, test and run.
# Only what is missing is installed; nothing is downloaded but Debian packages.
set -euo pipefail

PKGS=(
  build-essential cmake pkg-config clang
  libuv1-dev liblmdb-dev lmdb-utils libprotobuf-c-dev protobuf-c-compiler libmbedtls-dev
  libssl-dev # libcrypto: SHA-256 (audit chain, person index), the TLS handshakes' ECDSA (common/tls_pk.c)
  libjansson-dev libcsv-dev libinih-dev libzstd-dev libcmocka-dev
  libxlsxwriter-dev libzip-dev libxml2-dev
  libmicrohttpd-dev chromium chromium-driver python3-selenium libjs-chart.js fonts-wqy-microhei
  libnss3-tools curl  # t_ui_tls: certutil makes the browser trust the district CA; curl --cacert
  python3 openssl testssl.sh valgrind tzdata unicode-data
  # the province tier (issue 19): the stream's engine and the warehouse's
  postgresql-15 postgresql-client-15 libpq-dev nats-server libnats-dev
)

missing=()
for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
    echo "install-deps: all ${#PKGS[@]} packages present"
    exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "install-deps: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
    SUDO=sudo
fi
echo "install-deps: installing ${missing[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "install-deps: done"
