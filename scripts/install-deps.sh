#!/usr/bin/env bash
# Installs the Debian 12 packages vigil needs, when they are missing.
#   scripts/install-deps.sh [build|test|bench]   (default: build)
# As root it runs apt-get; otherwise it prints the exact apt-get line and exits 1.
set -euo pipefail

profile="${1:-build}"
packages=(build-essential cmake pkg-config
  libcpp-httplib-dev libcurl4-openssl-dev libsqlitecpp-dev nlohmann-json3-dev
  prometheus-cpp-dev libgtest-dev)
case "$profile" in
  build) ;;
  test) packages+=(prometheus sqlite3 curl) ;;  # promtool checks /metrics; sqlite3 and curl for scripted tests
  bench) packages+=(prometheus sqlite3 curl nginx-light wrk prometheus-blackbox-exporter libbenchmark-dev) ;;
  *) echo "usage: $0 [build|test|bench]" >&2; exit 2 ;;
esac

missing=()
for pkg in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
  [[ "$status" == "install ok installed" ]] || missing+=("$pkg")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

if [[ $(id -u) -ne 0 ]]; then
  echo "vigil needs these Debian packages; install them with:" >&2
  echo "  sudo apt-get install -y --no-install-recommends ${missing[*]}" >&2
  exit 1
fi
echo "Installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
