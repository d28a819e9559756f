#!/usr/bin/env bash
# Installs the Debian packages Logbook needs to build, run and test, if any
# are missing (checked with dpkg-query; apt-get runs only when something is
# missing). Uses sudo when not root.
set -euo pipefail

packages=(
  build-essential cmake pkg-config
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  grpc-proto            # health.proto and reflection.proto (proto/CMakeLists.txt)
  libpqxx-dev libabsl-dev libspdlog-dev libgtest-dev libssl-dev libcli11-dev
  nlohmann-json3-dev libutfcpp-dev
  libsimdjson-dev       # JSON checks of appended events (store/src/validation.cc)
  libjemalloc-dev       # logbookd's allocator (service/CMakeLists.txt)
  libjwt-dev            # JWT signatures (service/src/jwt_auth.cc)
  prometheus-cpp-dev libcpp-httplib-dev  # /metrics, /healthz, /readyz (service/src/metrics.cc)
  postgresql postgresql-client
  python3               # clients/bench/run.sh summarizes its results with it
  python3-yaml          # tests/e2e/container_e2etest.sh reads deploy/'s YAML files
  python3-grpcio python3-protobuf  # the Python client (clients/python)
  python3-venv python3-pip python3-setuptools python3-wheel python3-pytest  # ...installed and tested
  clang                 # tests/lint/thread_safety_test.sh: -Wthread-safety
  systemd               # systemd-analyze: tests/e2e/deploy_e2etest.sh verifies the unit
  openssl               # signing keys (docs/receipts.md); tests/e2e/cli_e2etest.sh makes one
  nodejs                # the TypeScript client (clients/node) and the console's browser test
  chromium              # the console's browser test (tests/browser), headless
)

missing=()
for p in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  case "$status" in
    *" ok installed") ;;
    *) missing+=("$p") ;;
  esac
done
# npm comes with some builds of nodejs (NodeSource's) and is Debian's own
# package otherwise; install Debian's only when there is none.
command -v npm >/dev/null || missing+=(npm)
if [ ${#missing[@]} -eq 0 ]; then
  echo "==> dependencies: all present"
  exit 0
fi

sudo=()
if [ "$(id -u)" != 0 ]; then
  command -v sudo >/dev/null || {
    echo "install-deps: missing packages: ${missing[*]}; run this as root or install sudo" >&2
    exit 1
  }
  sudo=(sudo)
fi
echo "==> installing ${missing[*]}"
"${sudo[@]}" apt-get update -qq
# sudo drops most of the environment, so DEBIAN_FRONTEND goes through env.
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
