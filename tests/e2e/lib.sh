# Shell helpers for the e2e scripts. Source it; needs $LOGBOOKD.

# create_database NAME: creates database NAME_<pid> in the pg_cluster
# fixture's cluster (LOGBOOK_TEST_PG_PORT) and prints its DSN.
create_database() {
  local db="$1_$$"
  psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$LOGBOOK_TEST_PG_PORT" -U logbook_admin \
    -d postgres -c "CREATE DATABASE $db" >&2 || return 1
  echo "postgresql://logbook_admin@127.0.0.1:$LOGBOOK_TEST_PG_PORT/$db"
}

# start_logbookd DSN LOG_FILE [ARGS...]: starts logbookd on a port of its own
# choosing, waits for its start-up line, and sets server_pid and
# LOGBOOK_ADDRESS. Returns 1 (with the log on stderr) if it did not start.
start_logbookd() {
  local dsn=$1 log=$2
  shift 2
  : >"$log"
  "$LOGBOOKD" --listen 127.0.0.1:0 --database "$dsn" "$@" 2>>"$log" &
  server_pid=$!
  local line=""
  for _ in $(seq 200); do
    line=$(grep -o 'listening on 127.0.0.1:[0-9]*' "$log" | tail -n 1 || true)
    [ -n "$line" ] && break
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.05
  done
  if [ -z "$line" ]; then
    echo "logbookd did not start:" >&2
    cat "$log" >&2
    return 1
  fi
  export LOGBOOK_ADDRESS="127.0.0.1:${line##*:}"
}
