# lib_nats.sh - a real 3-node NATS JetStream cluster on loopback for the
# integration tests (issue 19).  Source it after lib.sh:
#
#   . "$(dirname "$0")/lib_nats.sh"
#   nats_cluster_start "$T/nats"     # 3 nats-server processes, JetStream on
#   echo "$NATS_URLS"                # nats://127.0.0.1:P1,nats://...:P2,...:P3
#   nats_kill 2                      # SIGKILL node 2 (1..3)
#   nats_start 2                     # start it again (same ports, same store)
#   nats_stop 2                      # SIGTERM node 2 and wait for it
#   nats_cluster_stop                # every node (lib.sh's cleanup calls it too)
#
# The servers run as the current user (root in CI is fine: nothing is
# installed or written outside DIR), listen on 127.0.0.1 only, and every wait
# is bounded.  Ports are chosen by the kernel (bind to port 0) just before
# the servers start; a clash (another process took the port meanwhile) is
# retried with new ports.  NATS_SERVER overrides the binary
# (default: nats-server on PATH, else /usr/sbin/nats-server).  Without it the
# test is skipped (exit 77).
#
# Exports: NATS_URLS (client URLs, comma-separated), NATS_URL1..3,
# NATS_MON1..3 (monitoring http://127.0.0.1:PORT), NATS_DIR.

NATS_SERVER=${NATS_SERVER:-$(command -v nats-server || echo /usr/sbin/nats-server)}
NATS_DIR=""
NATS_PIDS=("" "" "")
NATS_URLS=""

# nats_free_ports N: N distinct ports the kernel hands out now.
nats_free_ports() {
    python3 - "$1" <<'EOF'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
for s in socks:
    s.close()
EOF
}

# nats_write_conf I CLIENT MON ROUTE ROUTES: the config of node I.
nats_write_conf() {
    local i=$1
    mkdir -p "$NATS_DIR/n$i"
    cat >"$NATS_DIR/n$i.conf" <<EOF
server_name: n$i
listen: 127.0.0.1:$2
http: 127.0.0.1:$3
jetstream {
  store_dir: "$NATS_DIR/n$i"
  max_memory_store: 64MB
  max_file_store: 2GB
}
cluster {
  name: popsync-test
  listen: 127.0.0.1:$4
  routes: [$5]
}
EOF
}

# nats_start I: starts node I (1..3) with its config; returns at once.
nats_start() {
    local i=$1
    "$NATS_SERVER" -c "$NATS_DIR/n$i.conf" >>"$NATS_DIR/n$i.log" 2>&1 &
    NATS_PIDS[$((i - 1))]=$!
}

# nats_kill I: SIGKILL node I and reap it.
nats_kill() {
    local pid=${NATS_PIDS[$(($1 - 1))]}
    [ -n "$pid" ] || return 0
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    NATS_PIDS[$(($1 - 1))]=""
}

# nats_stop I: SIGTERM node I (a clean shutdown), at most 10 s, then SIGKILL.
nats_stop() {
    local pid=${NATS_PIDS[$(($1 - 1))]}
    [ -n "$pid" ] || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    nats_kill "$1"
}

# nats_healthy I: node I answers /healthz with JetStream current (0/1).
nats_healthy() {
    python3 - "$(eval echo "\$NATS_MON$1")" <<'EOF'
import json, sys, urllib.request
try:
    with urllib.request.urlopen(sys.argv[1] + "/healthz", timeout=2) as r:
        ok = json.load(r).get("status") == "ok"
except Exception:
    ok = False
sys.exit(0 if ok else 1)
EOF
}

# nats_wait_ready [SECONDS]: every running node healthy and a JetStream
# meta leader elected, within SECONDS (default 30).  Returns 1 on timeout.
nats_wait_ready() {
    local limit=${1:-30} i up
    for _ in $(seq 1 $((limit * 4))); do
        up=1
        for i in 1 2 3; do
            [ -n "${NATS_PIDS[$((i - 1))]}" ] || continue
            nats_healthy "$i" || { up=0; break; }
        done
        [ $up = 1 ] && return 0
        sleep 0.25
    done
    return 1
}

# nats_cluster_start DIR: three nodes, JetStream, one cluster; waits until
# they are ready (at most 30 s per attempt, 3 attempts with new ports).
nats_cluster_start() {
    local p routes i attempt
    [ -x "$NATS_SERVER" ] || { echo "SKIP: nats-server not installed (scripts/install-deps.sh)"; exit 77; }
    NATS_DIR=$1
    mkdir -p "$NATS_DIR"
    for attempt in 1 2 3; do
        read -r -a p <<<"$(nats_free_ports 9)"
        routes="nats-route://127.0.0.1:${p[6]},nats-route://127.0.0.1:${p[7]},nats-route://127.0.0.1:${p[8]}"
        for i in 1 2 3; do
            nats_write_conf "$i" "${p[$((i - 1))]}" "${p[$((i + 2))]}" "${p[$((i + 5))]}" "$routes"
            eval "export NATS_URL$i=nats://127.0.0.1:${p[$((i - 1))]}"
            eval "export NATS_MON$i=http://127.0.0.1:${p[$((i + 2))]}"
        done
        export NATS_URLS="$NATS_URL1,$NATS_URL2,$NATS_URL3" NATS_DIR
        for i in 1 2 3; do nats_start "$i"; done
        nats_wait_ready 30 && return 0
        echo "lib_nats: cluster not ready (attempt $attempt); logs:" >&2
        tail -n 5 "$NATS_DIR"/n*.log >&2 || true
        nats_cluster_stop
    done
    fail "NATS cluster did not start"
}

nats_cluster_stop() {
    local i
    for i in 1 2 3; do nats_stop "$i"; done
}

# Chain into lib.sh's cleanup so a failing test never leaves servers behind.
nats_cleanup() {
    local rc=$1 f
    nats_cluster_stop 2>/dev/null || true
    if [ -n "$NATS_DIR" ] && [ $rc -ne 0 ]; then
        for f in "$NATS_DIR"/n*.log; do
            [ -f "$f" ] || continue
            echo "--- $(basename "$f") (last 15 lines) ---" >&2
            tail -n 15 "$f" >&2 || true
        done
    fi
    return 0
}
nats_exit() {
    local rc=$?
    nats_cleanup $rc
    if [ $rc -ne 0 ]; then (exit $rc) || cleanup; else true && cleanup; fi
}
trap nats_exit EXIT
