# lib_pg.sh - a real PostgreSQL 15 for the integration tests (issue 19):
# initdb and postgres in the test's directory (under the build tree), on a
# loopback port, as an unprivileged user even when the test runs as root
# (CI does: postgres refuses to run as root).  Source it after lib.sh (and
# after lib_nats.sh when a test uses both):
#
#   . "$(dirname "$0")/lib_pg.sh"
#   pg_start "$T/pg"          # initdb + postgres; exports PG_DSN
#   psql "$PG_DSN" -c ...     # database "warehouse", superuser "popsync"
#   pg_stop                   # lib.sh's cleanup calls it too
#
# As root the cluster belongs to "nobody" (the data directory is chowned to
# it, and the test directory made traversable, 0711, for it): runuser starts
# initdb, postgres and pg_ctl as that user.  The server listens on
# 127.0.0.1 only, with no Unix socket, trust authentication (a throw-away
# cluster only the test can reach) and fsync off unless PG_FSYNC=on (the
# benchmark turns it on).  The port is chosen by the kernel just before the
# start (bind to port 0); a clash is retried with another.  Every wait is
# bounded.  PG_BIN overrides the directory of the binaries (default
# /usr/lib/postgresql/15/bin); without them the test is skipped (exit 77).

PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
PG_DIR=""
PG_PORT=""
PG_DSN=""
PG_USER=""

# pg_as CMD...: runs CMD as the cluster's owner.
pg_as() {
    if [ -n "$PG_USER" ]; then
        runuser -u "$PG_USER" -- "$@"
    else
        "$@"
    fi
}

pg_free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# pg_start DIR: a new cluster in DIR/data, started, with a database
# "warehouse"; exports PG_DSN, PG_PORT, PG_DIR.  Fails the test when
# PostgreSQL does not start within 30 s (three attempts with new ports).
pg_start() {
    local attempt d
    for b in initdb postgres pg_ctl pg_isready; do
        [ -x "$PG_BIN/$b" ] || { echo "SKIP: PostgreSQL 15 not installed ($PG_BIN/$b; scripts/install-deps.sh)"; exit 77; }
    done
    command -v psql >/dev/null || { echo "SKIP: psql not installed"; exit 77; }
    PG_DIR=$1
    mkdir -p "$PG_DIR"
    if [ "$(id -u)" = 0 ]; then
        PG_USER=nobody
        # nobody must reach DIR: every directory above it is at least
        # traversable (the test directory is 0700 from mktemp).
        d=$PG_DIR
        while [ "$d" != / ]; do
            d=$(dirname "$d")
            [ -x "$d" ] && runuser -u "$PG_USER" -- test -x "$d" && continue
            chmod o+x "$d"
        done
        chown "$PG_USER" "$PG_DIR"
    fi
    pg_as "$PG_BIN/initdb" -D "$PG_DIR/data" -U popsync --auth=trust --no-sync -E UTF8 --locale=C.UTF-8 \
        >"$PG_DIR/initdb.log" 2>&1 || { cat "$PG_DIR/initdb.log" >&2; fail "initdb failed"; }
    for attempt in 1 2 3; do
        PG_PORT=$(pg_free_port)
        pg_as "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/postgres.log" -w -t 30 \
            -o "-c listen_addresses=127.0.0.1 -p $PG_PORT -c unix_socket_directories= -c fsync=${PG_FSYNC:-off} -c max_connections=40" \
            start >/dev/null 2>&1 && break
        PG_PORT=""
        echo "lib_pg: postgres did not start (attempt $attempt)" >&2
        tail -n 5 "$PG_DIR/postgres.log" >&2 || true
    done
    [ -n "$PG_PORT" ] || fail "PostgreSQL did not start"
    psql "host=127.0.0.1 port=$PG_PORT user=popsync dbname=postgres" -qAt -c "CREATE DATABASE warehouse" \
        >/dev/null || fail "cannot create the database"
    export PG_DSN="host=127.0.0.1 port=$PG_PORT user=popsync dbname=warehouse" PG_PORT PG_DIR
}

# pg_stop: a fast shutdown (at most 30 s), then SIGKILL of what is left.
pg_stop() {
    local pid
    [ -n "$PG_DIR" ] && [ -f "$PG_DIR/data/postmaster.pid" ] || return 0
    pid=$(head -n 1 "$PG_DIR/data/postmaster.pid")
    pg_as "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m fast -w -t 30 stop >/dev/null 2>&1 || {
        [ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null || true
    }
    return 0
}

# psql_q SQL: one value (or rows, |-separated) from the warehouse database.
psql_q() {
    psql "$PG_DSN" -qAtX -v ON_ERROR_STOP=1 -c "$1"
}

# Chain into the EXIT trap already set (lib.sh's cleanup, or lib_nats.sh's).
PG_PREV_TRAP=$(trap -p EXIT | sed -e "s/^trap -- '//" -e "s/' EXIT\$//")
pg_exit() {
    local rc=$?
    pg_stop
    [ $rc -eq 0 ] || tail -n 15 "$PG_DIR/postgres.log" >&2 2>/dev/null || true
    # The previous handler reads the test's status from $? (errexit off:
    # the test is ending either way).
    set +e
    (exit $rc)
    eval "${PG_PREV_TRAP:-exit $rc}"
}
trap pg_exit EXIT
