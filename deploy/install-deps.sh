#!/usr/bin/env bash
# Installs the Debian packages Logbook needs to build, run and test, if any
# are missing. Uses sudo when not root.
set -euo pipefail

packages=(
  build-essential cmake pkg-config
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler grpc-proto
  libpqxx-dev libabsl-dev libspdlog-dev libgtest-dev libssl-dev libcli11-dev
  nlohmann-json3-dev libutfcpp-dev uuid-dev
  postgresql postgresql-client postgresql-contrib python3
)

missing=()
for p in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  [ "$status" = "install ok installed" ] || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "==> dependencies: all present"
  exit 0
fi

sudo=""
[ "$(id -u)" = 0 ] || sudo="sudo"
echo "==> installing ${missing[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
