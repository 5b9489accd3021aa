#!/usr/bin/env bash
# Installs the Debian packages thatch needs, and tests/js's npm packages.
# Idempotent: when everything is present it makes no apt or npm call at all.
set -euo pipefail

packages=(
  build-essential pkg-config
  libseccomp-dev libcap-dev libnl-3-dev libnl-route-3-dev
  capnproto libcapnp-dev
  libpython3.11-dev python3.11 python3-numpy
  libgtest-dev libgmock-dev
  iproute2 procps
  libtomlplusplus-dev libarchive-dev
  nftables libnftables-dev
  clang-14 libclang-rt-14-dev
  ca-certificates netbase media-types tzdata
  libssl-dev openssl awscli python3-boto3
  bubblewrap hyperfine
  prometheus  # promtool and a server: tests/lambda/test_metrics.py checks and scrapes /metrics
  libhiredis-dev redis-server  # the Redis stream event source; tests run a redis-server on loopback
  python3-flask  # tests/lambda/test_function_urls.py runs a Flask app behind a function URL
)

missing=()
for p in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  [[ "$status" == "install ok installed" ]] || missing+=("$p")
done
# Node.js and npm run tests/js, a capnp-es client of the API. Checked as
# commands, not packages: a machine's Node.js may come from elsewhere (e.g.
# NodeSource's nodejs, which bundles npm and conflicts with Debian's npm).
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)

if [[ ${#missing[@]} -gt 0 ]]; then
  echo "install-deps: installing ${missing[*]}"
  if [[ $(id -u) -ne 0 ]]; then
    echo "install-deps: must run as root to install packages" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
  # Debian's prometheus enables and starts its service on install: the tests
  # start their own server on loopback, and nothing else should listen.
  if [[ " ${missing[*]} " == *" prometheus "* ]]; then
    if [[ -d /run/systemd/system ]]; then
      systemctl disable --now prometheus.service
    else
      # What `systemctl disable` would remove, without systemd to ask.
      rm -f /etc/systemd/system/multi-user.target.wants/prometheus.service
      if [[ -x /etc/init.d/prometheus ]]; then
        /etc/init.d/prometheus stop || true  # not running: policy-rc.d kept it from starting
        update-rc.d prometheus disable >/dev/null
      fi
    fi
  fi
fi

# tests/js's npm packages, exactly as its lock file says. `npm ci` empties
# node_modules first, so a stamp copied from the lock file after it succeeds
# says whether node_modules still matches; with it, no npm call at all.
js_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/tests/js"
stamp="$js_dir/node_modules/.thatch-package-lock.json"
if ! cmp -s "$js_dir/package-lock.json" "$stamp"; then
  echo "install-deps: npm ci in tests/js"
  (cd "$js_dir" && npm ci --no-audit --no-fund --loglevel=error)
  cp "$js_dir/package-lock.json" "$stamp"
fi
