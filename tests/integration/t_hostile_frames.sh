# Hostile peer, unfinished frames (issue 15, point 2).  Connections that
# declare a 16,000,000-byte Push, send 15 MB of it and hold: past the
# certificate's budget (32 MiB here) and the server's (48 MiB here) the
# connection holding the most is closed with an Error frame, so popsyncd's
# memory stays within the budget (VmRSS from /proc) instead of 16 MiB per
# connection; a frame sent a byte at a time is closed below the minimum
# rate (slowloris); a normal client syncs throughout.
. "$(dirname "$0")/lib.sh"
: "${PS_TESTCLIENT:?}"
LIMIT_MB=48
if grep -q __asan_init "$POPSYNCD" 2>/dev/null; then
    export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=4:thread_local_quarantine_size_kb=64"
fi
make_pki
# A long handshake deadline: a loaded (or ASan) machine is slow.
start_server --partial-budget "$LIMIT_MB" --partial-budget-per-cert 32 --min-frame-rate 100 --frame-grace 2000 \
    --handshake-timeout 60000
rss() { awk '/^VmRSS:/ { print $2 }' "/proc/$SERVER_PID/status"; }
tc() {
    local who=$1
    shift
    "$PS_TESTCLIENT" --server 127.0.0.1:$PORT --ca "$T/pki/ca.crt" --cert "$T/pki/$who.crt" \
        --key "$T/pki/$who.key" "$@"
}
client t3 town3
ps --data "$T/t3" generate --persons 50 --seed 3 >/dev/null
ps --data "$T/t3" sync --quiet || fail "warm-up sync"
base=$(rss)

# --- 1. Budgets: 6 connections of town1 then 6 of town2, 15 MB each.
ZEROS=$(head -c 1000 /dev/zero | od -An -v -tx1 | tr -d ' \n')
# Run in the background: exec, so $! is the client itself (SIGUSR1 ends its wait).
big() {
    exec "$PS_TESTCLIENT" --server 127.0.0.1:$PORT --ca "$T/pki/ca.crt" --cert "$T/pki/$1.crt" \
        --key "$T/pki/$1.key" --conns 6 --hello --hex 00f42408030000000000000002 --hex "rep:15000:$ZEROS" --wait 60000 \
        >"$T/$1.out" 2>&1
}
closes() { grep -c "unfinished frames over the" "$T/server.log" || true; }
# watch N: samples VmRSS into peak until the server has closed N
# connections over a budget (at most 120 s: a loaded machine is slow).
peak=0
watch() {
    local r
    for _ in $(seq 1 240); do
        r=$(rss)
        [ "$r" -gt "$peak" ] && peak=$r
        [ "$(closes)" -ge "$1" ] && break
        sleep 0.5
    done
}
big town1 &
p1=$!
watch 4
big town2 &
p2=$!
# town1 keeps 2 (32 MiB), the server 48 MiB in all: town2 keeps at most 1.
watch 9
sleep 1
r=$(rss)
[ "$r" -gt "$peak" ] && peak=$r
grow=$(( (peak - base) / 1024 ))
# The budget, plus one 64 KiB read per connection and allocator slack.
bound=$((LIMIT_MB + 40))
grep -q __asan_init "$POPSYNCD" 2>/dev/null && bound=$((bound * 2))
[ "$grow" -le "$bound" ] || fail "popsyncd grew by $grow MiB holding unfinished frames (bound $bound MiB)"
# A normal client is served meanwhile.
ps --data "$T/t3" generate --persons 5 --seed 4 >/dev/null
ps --data "$T/t3" sync --quiet || fail "a normal client during the partial-frame attack"
kill -USR1 "$p1" "$p2"
wait "$p1" "$p2" || true
for who in town1 town2; do
    line=$(grep '^conns ' "$T/$who.out") || fail "$who: no summary: $(cat "$T/$who.out")"
    set -- $line
    # conns N handshake_ok H welcome W errors E closed C open O
    expect_eq "$4" 6 "$who: handshakes"
    [ "${12}" -le 2 ] || fail "$who: ${12} connections kept 15 MB frames (certificate budget 32 MiB): $line"
    [ "$8" -ge 4 ] || fail "$who: only $8 connections got an Error: $line"
    expect_eq "${10}" "$8" "$who: connections closed = connections told why"
    grep -q "first error: unfinished frames over the .* budget" "$T/$who.out" ||
        fail "$who: no budget error: $(cat "$T/$who.out")"
done
closes=$(grep -c "unfinished frames over the" "$T/server.log")
pass "12 connections holding 15 MB frames: popsyncd grew $grow MiB (bound $bound), $closes closed with an Error"
pass "  town1: $(grep '^conns' "$T/town1.out"); town2: $(grep '^conns' "$T/town2.out")"
pass "  $(grep -o 'first error: .*' "$T/town2.out")"

# --- 2. Slowloris: a 1000-byte Push declared, sent at 5 bytes/s.
start=$(date +%s)
tc town1 --hello --trickle "000003f0030000000000000003$(printf '00%.0s' $(seq 1 100))" --trickle-ms 200 \
    --wait 20000 >"$T/slow.out" 2>&1
took=$(( $(date +%s) - start ))
grep -q "error (fatal): frame arriving at [0-9]* bytes/s for [0-9]* s, below the minimum of 100 bytes/s" \
    "$T/slow.out" || fail "slow frame not refused: $(cat "$T/slow.out")"
grep -qx "closed" "$T/slow.out" || fail "slow connection not closed: $(cat "$T/slow.out")"
[ "$took" -lt 15 ] || fail "the slow connection was held $took s"
pass "slowloris closed after about $took s: $(grep -o 'error (fatal): .*' "$T/slow.out")"
ps --data "$T/t3" sync --quiet || fail "a normal client after the attacks"
stop_server
