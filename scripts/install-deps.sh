#!/usr/bin/env bash
# Installs the Debian 12 packages vigil needs, when they are missing.
#   scripts/install-deps.sh [build|test|sanitize|fuzz|bench|lint|openapi]   (default: build)
# As root it runs apt-get; otherwise it prints the exact apt-get line and exits 1.
set -euo pipefail

profile="${1:-build}"
packages=(build-essential cmake pkg-config
  lld  # links in half the time of the default linker (CMakeLists.txt, VIGIL_USE_LLD)
  libcpp-httplib-dev libcurl4-openssl-dev libssl-dev libsqlitecpp-dev nlohmann-json3-dev
  prometheus-cpp-dev libre2-dev
  libpq-dev  # the PostgreSQL backend's client library (storage/postgres/)
  libgtest-dev  # `make local-run` and `make test` share one build directory, so its configure sets up the tests too
  tzdata)  # /usr/share/zoneinfo: maintenance windows in IANA time zones, and their tests
case "$profile" in
  build) ;;
  test) packages+=(prometheus sqlite3 curl jq openssl python3 chromium postgresql-15) ;;  # promtool checks /metrics; sqlite3 and curl for scripted tests; curl and jq run the docs' examples (tests/docs_examples_test.cpp); openssl makes the TLS tests' certificates; python3 runs tests/crash; chromium (headless) renders the status page in tests/e2e_status_page_test.cpp; postgresql-15: the PostgreSQL tests start their own server (tests/support/postgres_server.h)
  sanitize) packages+=(prometheus sqlite3 curl jq openssl python3 postgresql-15 libasan8 libubsan1 libtsan2) ;;  # the test suite under GCC's ASan/UBSan/TSan runtimes
  fuzz) packages+=(clang libclang-rt-14-dev llvm) ;;  # libFuzzer and clang's sanitizer runtimes; llvm-symbolizer for readable reports
  lint) packages+=(clang-format clang-tidy) ;;  # make format-check and make tidy (.clang-format, .clang-tidy)
  openapi)  # `make lint-openapi`: Node and npm run the pinned Redocly CLI; nothing of the C++ build.
    # A Node installed otherwise (e.g. NodeSource's nodejs, which bundles npm) is used as it is.
    if command -v node >/dev/null && command -v npm >/dev/null; then exit 0; fi
    packages=(nodejs npm) ;;
  bench) packages+=(python3 sqlite3 nginx-light wrk prometheus-blackbox-exporter libbenchmark-dev) ;;  # bench/vigil_bench.py: the target, the load generator, the exporter compared; micro-benchmarks
  *) echo "usage: $0 [build|test|sanitize|fuzz|bench|lint|openapi]" >&2; exit 2 ;;
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
