#!/usr/bin/env bash
# Installs the Debian packages thatch needs. Idempotent: when everything is
# present it makes no apt call at all.
set -euo pipefail

packages=(
  build-essential pkg-config
  libseccomp-dev libcap-dev libnl-3-dev libnl-route-3-dev
  capnproto libcapnp-dev
  libpython3.11-dev python3.11
  libgtest-dev libgmock-dev
  iproute2 procps
  libtomlplusplus-dev libarchive-dev
  bubblewrap hyperfine
)

missing=()
for p in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  [[ "$status" == "install ok installed" ]] || missing+=("$p")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

echo "install-deps: installing ${missing[*]}"
if [[ $(id -u) -ne 0 ]]; then
  echo "install-deps: must run as root to install packages" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
