#!/bin/bash
# No PostgreSQL text ever reaches a client: every error message clients got
# from logbookd during the suite (the "answering CODE: message" lines its
# debug log has, collected by the tests into FILE) is free of PostgreSQL's
# severity and detail prefixes. Runs after every other test; the suite
# must have produced at least MIN messages, so that an empty collection
# cannot pass.
#
#   client_errors_test.sh FILE MIN
set -uo pipefail
file=$1 min=$2
[ -f "$file" ] || { echo "FAIL: $file does not exist: no test collected its errors"; exit 1; }
count=$(wc -l <"$file")
echo "$count error messages from the suite's logbookd processes in $file"
if [ "$count" -lt "$min" ]; then
  echo "FAIL: fewer than $min: the collection is broken (or this was not a full run)"
  exit 1
fi
echo "by code:"
sed -n 's/.*\] answering \([A-Z_]*\): .*/\1/p' "$file" | sort | uniq -c | sort -rn
leaked=$(grep -E 'ERROR:|FATAL:|PANIC:|DETAIL:|HINT:|CONTEXT:|LINE [0-9]+:' "$file")
if [ -n "$leaked" ]; then
  echo "FAIL: PostgreSQL text reached clients:"
  echo "$leaked" | sort -u | head -20
  exit 1
fi
echo "ok: none carries PostgreSQL text"
