#!/usr/bin/env bash
# README command 2: installs what is missing, builds, and runs every test.
# The tests start their own throwaway PostgreSQL; nothing else is needed.
# Extra arguments go to ctest (e.g. -L unit, -R subscribe).
set -euo pipefail
cd "$(dirname "$0")/.."
deploy/install-deps.sh
deploy/build.sh
echo "==> testing"
cd build
exec ctest --output-on-failure -j"${LOGBOOK_JOBS:-2}" "$@"
