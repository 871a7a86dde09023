# lib.sh - shared helpers for integration tests: a real popsyncd on a
# loopback port chosen by the kernel, certificates made by `popsync pki`.
# Sourced by tests/integration/t_*.sh; ctest sets POPSYNCD, POPSYNC and
# PS_TESTCLIENT to the built binaries.
set -eu
# No pipefail: tests check pipelines like `cmd | grep -q X`, where grep -q
# exits at the first match and the producer may die of SIGPIPE; with
# pipefail that turns a pass into a random failure.  A pipeline is judged by
# its last command (a `cmd | python3` check fails on cmd's empty output).
set +o pipefail

: "${POPSYNCD:?POPSYNCD must point at the popsyncd binary}"
: "${POPSYNC:?POPSYNC must point at the popsync binary}"

# Client caches are encrypted at rest; tests use a fixed passphrase and a
# low key-derivation cost (a test knob: real caches use the default).
export POPSYNC_PASSPHRASE=${POPSYNC_PASSPHRASE:-popsync-test-passphrase}
export POPSYNC_KDF_ITERATIONS=${POPSYNC_KDF_ITERATIONS:-1000}

T=$(mktemp -d "${TMPDIR:-/tmp}/popsync-test.XXXXXX")
SERVER_PID=""
PORT=""
DISTRICT=110105000000
TOWN1=110105001000
TOWN2=110105002000
TOWN3=110105003000

# Every test's logs outlive it, for t_log_privacy.sh (which scans them for
# personal data) and for people: $T/*.log, *.err and *.stderr are copied to
# $PS_TEST_LOGS (default: test-logs next to the tests' TMPDIR, i.e. in the
# build directory) under <test name>-<pid>/ before $T is removed.
PS_TEST_LOGS=${PS_TEST_LOGS:-$( [ -n "${TMPDIR:-}" ] && echo "$TMPDIR/../test-logs" || echo /tmp/popsync-test-logs)}
save_logs() {
    local dest f
    dest="$PS_TEST_LOGS/$(basename "$0" .sh)-$$"
    for f in "$T"/*.log "$T"/*.err "$T"/*.stderr; do
        [ -f "$f" ] || continue
        mkdir -p "$dest" 2>/dev/null && cp "$f" "$dest/" 2>/dev/null || true
    done
}

cleanup() {
    local rc=$?
    if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    save_logs
    if [ $rc -ne 0 ]; then
        echo "--- server log (last 40 lines) ---" >&2
        tail -n 40 "$T/server.log" >&2 2>/dev/null || true
        echo "--- test dir kept: $T" >&2
    else
        rm -rf "$T"
    fi
    exit $rc
}
trap cleanup EXIT

fail() { echo "FAIL: $*" >&2; exit 1; }
pass() { echo "ok: $*"; }

ps() { "$POPSYNC" "$@"; }

# make_pki: a CA, the server, an admin and three township identities.
make_pki() {
    ps pki init-ca --dir "$T/pki" >/dev/null
    ps pki issue --dir "$T/pki" --role server --orgunit $DISTRICT --name popsyncd >/dev/null
    ps pki issue --dir "$T/pki" --role admin --orgunit $DISTRICT --name admin >/dev/null
    ps pki issue --dir "$T/pki" --role township --orgunit $TOWN1 --name town1 >/dev/null
    ps pki issue --dir "$T/pki" --role township --orgunit $TOWN2 --name town2 >/dev/null
    ps pki issue --dir "$T/pki" --role township --orgunit $TOWN3 --name town3 >/dev/null
}

# start_server [extra popsyncd options]: starts popsyncd on 127.0.0.1:0 and
# sets PORT once it is listening.
start_server() {
    rm -f "$T/port"
    "$POPSYNCD" --listen 127.0.0.1:0 --port-file "$T/port" --data "$T/server" --allow-synthetic \
        --ca "$T/pki/ca.crt" --cert "$T/pki/popsyncd.crt" --key "$T/pki/popsyncd.key" "$@" \
        >>"$T/server.log" 2>&1 &
    SERVER_PID=$!
    for _ in $(seq 1 200); do
        [ -s "$T/port" ] && break
        kill -0 "$SERVER_PID" 2>/dev/null || fail "popsyncd exited at start"
        sleep 0.05
    done
    [ -s "$T/port" ] || fail "popsyncd did not start listening"
    PORT=$(cat "$T/port")
}

stop_server() {
    kill -TERM "$SERVER_PID"
    wait "$SERVER_PID" || fail "popsyncd exited with $? on SIGTERM"
    SERVER_PID=""
}

# client NAME CERTNAME: makes cache $T/NAME for identity CERTNAME.  The
# server address is fixed at init, so start the server first or pass a port.
client() {
    ps --data "$T/$1" init --server "127.0.0.1:${PORT:-1}" --ca "$T/pki/ca.crt" \
        --cert "$T/pki/$2.crt" --key "$T/pki/$2.key" >/dev/null
}

# count NAME [KIND]: live records in cache NAME.
count() {
    local kind=${2:-person}
    ps --data "$T/$1" list --kind "$kind" --format json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))'
}

# ids NAME: sorted record ids in cache NAME.
ids() {
    ps --data "$T/$1" list --format json | python3 -c 'import json,sys; [print(r["id"]) for r in json.load(sys.stdin)]' | sort
}

expect_eq() {
    [ "$1" = "$2" ] || fail "$3: expected '$2', got '$1'"
}
