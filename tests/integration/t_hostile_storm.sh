# Hostile peer, reconnect storm (issue 15, point 1), correctness only: the
# timing figures come from `popsync-bench --storm 1000` (docs/performance.md).
# 150 mutual-TLS connections at once over three certificates whose limit is
# 25 each, while an admin syncs: every connection gets its Welcome or an
# Error frame (none a bare reset), and the admin's sync succeeds.  Then a
# server at --max-conns 30: the 30 connections over it are told "server
# busy" in an Error frame, not reset.
. "$(dirname "$0")/lib.sh"
: "${PS_TESTCLIENT:?}"
make_pki
start_server --max-conns-per-cert 25 --handshake-timeout 60000
client admin admin
client t1 town1
ps --data "$T/t1" generate --persons 200 --seed 9 >/dev/null
ps --data "$T/t1" sync --quiet || fail "warm-up sync"
tc() {
    local who=$1
    shift
    "$PS_TESTCLIENT" --server 127.0.0.1:$PORT --ca "$T/pki/ca.crt" --cert "$T/pki/$who.crt" \
        --key "$T/pki/$who.key" "$@"
}
# summary FILE: "welcome errors handshake_ok conns" from the client's summary.
summary() {
    local line
    line=$(grep '^conns ' "$1") || fail "no summary in $1: $(cat "$1")"
    set -- $line
    echo "$6 $8 $4 $2"
}
pids=""
for who in town1 town2 town3; do
    tc "$who" --conns 50 --hello --wait 3000 >"$T/$who.out" 2>&1 &
    pids="$pids $!"
done
ps --data "$T/admin" sync --quiet || fail "the admin's sync during the storm"
for p in $pids; do wait "$p" || true; done
for who in town1 town2 town3; do
    set -- $(summary "$T/$who.out")
    expect_eq "$3" 50 "$who: handshakes completed"
    expect_eq "$1" 25 "$who: Welcomes (certificate limit 25)"
    expect_eq "$2" 25 "$who: Error frames for the connections over the limit"
    grep -q "first error: too many connections for this certificate (limit 25)" "$T/$who.out" ||
        fail "$who: $(cat "$T/$who.out")"
done
expect_eq "$(count admin)" 200 "records the admin pulled during the storm"
pass "storm of 150: every connection got its Welcome (75) or an Error frame (75); the admin synced meanwhile"
stop_server

start_server --max-conns 30 --max-conns-per-cert 0 --handshake-timeout 60000
tc town1 --conns 60 --hello --wait 2000 >"$T/busy.out" 2>&1
set -- $(summary "$T/busy.out")
expect_eq "$1" 30 "Welcomes at --max-conns 30"
expect_eq "$2" 30 "Error frames over --max-conns"
grep -q "first error: server busy: [0-9]* connections open (limit 30); try again in a minute" "$T/busy.out" ||
    fail "no 'server busy' error: $(cat "$T/busy.out")"
pass "over --max-conns: 30 Welcomes, 30 told 'server busy' in an Error frame"
stop_server
