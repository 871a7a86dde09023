# Memory of idle connections is given back (issue 17).  300
# authenticated connections say Hello and then nothing; after a few quiet
# seconds popsyncd has trimmed them (server/conn.c sweep: empty buffers
# freed, mbedTLS's record buffers' pages given back, common/tls.c
# ps_tls_trim; then the heap, server/memtrim.c, counted as a "quiet" trim
# in the metrics), and its RssAnon grows by at most 40 KB per connection
# between 150 and 300 of them (~16 KB measured once settled; 50 KB
# without the record buffers' trim).
# The 30 KB target itself is measured by popsync-bench (1,000 idle
# clients, docs/performance.md §d), not asserted here: a test fails on
# what is broken, not on a figure that moves.  The trimmed connections
# still work: a client syncs while they are open, and each of them is
# still open and closes cleanly at the end.
. "$(dirname "$0")/lib.sh"
: "${PS_TESTCLIENT:?}"

# A sanitizer build keeps redzones and a quarantine per allocation: its
# figure says nothing about the release build's.
if nm -D "$POPSYNCD" 2>/dev/null | grep -q __asan_init || nm "$POPSYNCD" 2>/dev/null | grep -q __asan_init; then
    echo "skip: popsyncd is built with AddressSanitizer"
    exit 77
fi
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt 1024 ]; then
    ulimit -n "$(ulimit -Hn | sed 's/unlimited/4096/')" 2>/dev/null || true
fi
[ "$(ulimit -n)" = unlimited ] || [ "$(ulimit -n)" -ge 400 ] || { echo "skip: descriptor limit"; exit 77; }

make_pki
for i in $(seq 1 6); do
    ps pki issue --dir "$T/pki" --role township --orgunit $TOWN1 --name "idle$i" >/dev/null
done
rss_anon_kb() { awk '/^RssAnon/ {print $2}' "/proc/$SERVER_PID/status"; }
hellos() { grep -c "hello: node" "$T/server.log" || true; }

start_server --metrics 127.0.0.1:0
MPORT=$(sed -n 's/.*serving \/metrics on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$T/server.log" | tail -1)
[ -n "$MPORT" ] || fail "no metrics address in the log"
# quiet_trims: heap trims popsyncd made because connections went quiet.
quiet_trims() {
    python3 - "$MPORT" <<'PY'
import sys, urllib.request
body = urllib.request.urlopen("http://127.0.0.1:%s/metrics" % sys.argv[1], timeout=10).read().decode()
print(next(l.split()[1] for l in body.splitlines() if l.startswith('popsync_heap_trims_total{reason="quiet"}')))
PY
}
client t1 town1
ps --data "$T/t1" generate --persons 200 --seed 3 >/dev/null
ps --data "$T/t1" sync --quiet || fail "initial sync"
before=$(hellos)
pids=()
# open_batches FROM TO: clients FROM..TO, 50 connections each, all said Hello.
open_batches() {
    for i in $(seq "$1" "$2"); do
        "$PS_TESTCLIENT" --server 127.0.0.1:$PORT --ca "$T/pki/ca.crt" --cert "$T/pki/idle$i.crt" \
            --key "$T/pki/idle$i.key" --hello --conns 50 --wait 120000 >"$T/idle$i.out" &
        pids+=($!)
        for _ in $(seq 1 600); do
            [ "$(hellos)" -ge $((before + 50 * i)) ] && break
            sleep 0.05
        done
        [ "$(hellos)" -ge $((before + 50 * i)) ] || fail "only $(($(hellos) - before)) of $((50 * i)) connections said Hello"
    done
}
# Quiet: the sweep runs once a second and trims a connection after a whole
# second without traffic, then the heap is trimmed (at most every 2 s); a
# loaded machine may run the timers late, so wait (up to 30 s) until
# neither RssAnon nor the count of quiet trims has moved for 3 s.
settled_rss() {
    local prev="" cur="" same=0
    for _ in $(seq 1 60); do
        sleep 0.5
        cur="$(quiet_trims) $(rss_anon_kb)"
        if [ "$cur" = "$prev" ]; then
            same=$((same + 1))
            [ "$same" -ge 6 ] && break
        else
            same=0
        fi
        prev=$cur
    done
    echo "${cur#* }"
}
# The cost of a connection is measured at the margin, between 150 and 300
# idle connections: what the first handshakes leave in the handshake
# threads' malloc arenas is paid once, not per connection, and divided by
# 300 it moved the figure by 10 KB from run to run.
open_batches 1 3
mid=$(settled_rss)
open_batches 4 6
held=$(settled_rss)
per=$(((held - mid) / 150))
echo "RssAnon: $mid kB with 150 idle connections, $held kB with 300: $per kB per connection"
[ "$per" -le 40 ] || fail "an idle connection costs $per kB (at most 40; 64 untrimmed)"
pass "idle connections: $per kB each between 150 and 300 (at most 40; 64 untrimmed)"

# The heap was trimmed when they went quiet, not only every half minute.
# (The sync above went quiet too, so at least one; wait up to 10 s.)
for _ in $(seq 1 20); do
    [ "$(quiet_trims)" -ge 1 ] && break
    sleep 0.5
done
[ "$(quiet_trims)" -ge 1 ] || fail "no heap trim after connections went quiet"
pass "the heap is trimmed soon after connections go quiet ($(quiet_trims) trims)"

# Trimmed connections are still good: a sync runs meanwhile, and each idle
# one closes cleanly when told to.
ps --data "$T/t1" sync --quiet || fail "sync with 300 idle connections open"
kill -USR1 "${pids[@]}"
for p in "${pids[@]}"; do wait "$p"; done
for i in $(seq 1 6); do
    grep -q "conns 50 handshake_ok 50 welcome 50 errors 0 closed 0 open 50" "$T/idle$i.out" ||
        fail "idle$i: $(cat "$T/idle$i.out")"
done
pass "trimmed connections stayed open and answered"
kill -0 "$SERVER_PID" || fail "server died"
stop_server
