#!/bin/sh
# The entrypoint of Logbook's image (deploy/Containerfile; docs/operations.md
# explains each command). Options come from LOGBOOK_* variables (logbookd
# --help lists them) or follow the command.
#
#   serve [OPTION...]    logbookd (the default; so does a first argument that
#                        starts with -)
#   migrate              logbook migrate up, as the schema's owner role, whose
#                        DSN is LOGBOOK_MIGRATE_DATABASE_URL
#   logbook ARG...       the logbook CLI
#
# LOGBOOK_BIN_DIR (default /usr/local/bin) is where the binaries are: set
# only to run this outside the image, as tests/e2e/container_e2etest.sh does.
set -eu
bin=${LOGBOOK_BIN_DIR:-/usr/local/bin}

usage() {
  echo "usage: logbook-entrypoint [serve [OPTION...] | migrate | logbook ARG...]" >&2
}

command=${1:-serve}
case "$command" in
  serve)
    [ $# -gt 0 ] && shift
    exec "$bin/logbookd" "$@"
    ;;
  -*)
    exec "$bin/logbookd" "$@"
    ;;
  migrate)
    if [ $# -ne 1 ]; then usage; exit 2; fi
    if [ -z "${LOGBOOK_MIGRATE_DATABASE_URL:-}" ]; then
      echo "logbook-entrypoint: migrate needs LOGBOOK_MIGRATE_DATABASE_URL, the DSN of the schema's owner role" >&2
      exit 2
    fi
    exec "$bin/logbook" migrate up --database "$LOGBOOK_MIGRATE_DATABASE_URL"
    ;;
  logbook)
    shift
    exec "$bin/logbook" "$@"
    ;;
  *)
    echo "logbook-entrypoint: unknown command '$command'" >&2
    usage
    exit 2
    ;;
esac
