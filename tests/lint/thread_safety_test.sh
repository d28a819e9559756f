#!/usr/bin/env bash
# Checks the lock annotations of store/ and service/ (ABSL_GUARDED_BY,
# ABSL_EXCLUSIVE_LOCKS_REQUIRED, ...) with clang's -Wthread-safety, as
# errors: GCC, which builds Logbook, ignores them. Parses each source file of
# the two modules with the flags of the build (compile_commands.json), two
# at a time, without compiling. Escapes (ABSL_NO_THREAD_SAFETY_ANALYSIS) are
# not allowed in either module.
#
#   tests/lint/thread_safety_test.sh BUILD_DIR
set -euo pipefail
build=${1:?usage: thread_safety_test.sh BUILD_DIR}
root=$(cd "$(dirname "$0")/../.." && pwd)
command -v clang++ >/dev/null || { echo "FAIL: clang++ is not installed (deploy/install-deps.sh installs it)"; exit 1; }

escapes=$(grep -rn "NO_THREAD_SAFETY_ANALYSIS" "$root/store" "$root/service" || true)
if [ -n "$escapes" ]; then
  echo "FAIL: thread-safety analysis escapes in store/ or service/:"
  echo "$escapes"
  exit 1
fi

python3 - "$build/compile_commands.json" "$root" <<'PY'
import json, shlex, subprocess, sys
from concurrent.futures import ThreadPoolExecutor

commands, root = json.load(open(sys.argv[1])), sys.argv[2]
jobs = []
for c in commands:
    path = c["file"]
    if not any(path.startswith(f"{root}/{module}/src/") for module in ("store", "service")):
        continue
    args, flags, skip = shlex.split(c["command"]), [], False
    for a in args[1:]:  # The compiler's flags, without its output.
        if skip:
            skip = False
        elif a == "-o":
            skip = True
        elif a != "-c":
            flags.append(a)
    jobs.append((path, c["directory"],
                 ["clang++", "-fsyntax-only", "-Wthread-safety", "-Werror"] + flags))
if len(jobs) < 10:
    sys.exit(f"FAIL: only {len(jobs)} files of store/ and service/ in {sys.argv[1]}")

def check(job):
    path, directory, command = job
    run = subprocess.run(command, cwd=directory, capture_output=True, text=True)
    return path, run.returncode, run.stderr

failed = 0
with ThreadPoolExecutor(2) as pool:
    for path, code, errors in pool.map(check, jobs):
        if code != 0:
            failed += 1
            print(f"FAIL: {path}\n{errors}")
print(f"{len(jobs) - failed} of {len(jobs)} files of store/ and service/ pass -Wthread-safety")
sys.exit(1 if failed else 0)
PY
