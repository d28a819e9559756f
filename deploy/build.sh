#!/usr/bin/env bash
# Configures and builds everything into build/ (reused by later runs).
# LOGBOOK_JOBS sets the parallelism (default 2).
set -euo pipefail
cd "$(dirname "$0")/.."
echo "==> building (build/, -j${LOGBOOK_JOBS:-2})"
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"${LOGBOOK_JOBS:-2}"
