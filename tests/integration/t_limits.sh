# Limits (issue 5, item 6): connections in total and per certificate, the
# handshake/Hello deadline, the idle deadline, the largest frame, and bounded
# output: a client that pipelines large Pulls and never reads its replies,
# and 500 idle authenticated connections, leave the server's memory bounded
# while a normal client still syncs.
. "$(dirname "$0")/lib.sh"
: "${PS_TESTCLIENT:?}"

# 500 connections from this test's client processes plus the server's own:
# raise the soft descriptor limit when it is low and the hard one allows.
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt 2048 ]; then
    ulimit -n "$(ulimit -Hn | sed 's/unlimited/4096/')" 2>/dev/null || ulimit -n 2048 2>/dev/null || true
fi
[ "$(ulimit -n)" = unlimited ] || [ "$(ulimit -n)" -ge 600 ] || fail "descriptor limit $(ulimit -n) is too low for 500 connections"

# Under AddressSanitizer freed memory waits in a quarantine (256 MB by
# default) before reuse, which would count as growth here: keep it small.
export ASAN_OPTIONS="${ASAN_OPTIONS:-}${ASAN_OPTIONS:+:}quarantine_size_mb=16"

make_pki
for i in $(seq 1 10); do
    ps pki issue --dir "$T/pki" --role township --orgunit $TOWN1 --name "idle$i" >/dev/null
done
tc() {
    local who=$1
    shift
    "$PS_TESTCLIENT" --server 127.0.0.1:$PORT --ca "$T/pki/ca.crt" --cert "$T/pki/$who.crt" \
        --key "$T/pki/$who.key" "$@"
}
rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$SERVER_PID/status"; }
# mark: remembers where the server log ends now.
# wait_log PATTERN N: until the log has N lines matching PATTERN after the
# mark (20 s at most).
MARK=0
mark() { MARK=$(wc -l <"$T/server.log"); }
wait_log() {
    for _ in $(seq 1 400); do
        [ "$(tail -n +$((MARK + 1)) "$T/server.log" | grep -c -- "$1" || true)" -ge "$2" ] && return 0
        sleep 0.05
    done
    fail "server log never had $2 lines of '$1' (has $(tail -n +$((MARK + 1)) "$T/server.log" | grep -c -- "$1"))"
}

# ---- Run 1: small limits -------------------------------------------------
start_server --max-conns 8 --max-conns-per-cert 3 --handshake-timeout 1500 --idle-timeout 4000 \
    --max-frame 65536

# Per certificate: three connections of town1 are open, the fourth is
# refused with the reason; another certificate still gets in.
mark
tc town1 --hello --conns 3 --wait 2500 >"$T/three.out" &
three=$!
wait_log "hello: node" 3
out=$(tc town1 --hello --wait 1000)
grep -q "error (fatal): too many connections for this certificate" <<<"$out" || fail "4th connection of town1: $out"
echo "$out" | tail -1 | grep -qx closed || fail "4th connection of town1 was not closed: $out"
out=$(tc town2 --hello --wait 300)
grep -q "frame Welcome" <<<"$out" || fail "town2 refused while town1 is at its limit: $out"
wait $three
grep -q "conns 3 handshake_ok 3 welcome 3 errors 0 closed 0 open 3" "$T/three.out" ||
    fail "town1's three connections: $(cat "$T/three.out")"
pass "per-certificate limit: the 4th connection of one certificate is refused, others connect"

# In total: 3 + 3 connections are open, 3 more arrive with a limit of 8.
mark
tc town1 --hello --conns 3 --wait 2500 >"$T/a.out" &
a=$!
tc town2 --hello --conns 3 --wait 2500 >"$T/b.out" &
b=$!
wait_log "hello: node" 6
out=$(tc town3 --hello --conns 3 --wait 300)
# The 9th is told why in an Error frame after its handshake (issue 15).
grep -q "conns 3 handshake_ok 3 welcome 2 errors 1 closed 1" <<<"$out" || fail "3 more over a total of 8: $out"
grep -q "first error: server busy: [0-9]* connections open (limit 8)" <<<"$out" || fail "the 9th was not told why: $out"
wait $a $b
grep -q "refused: 8 connections open (limit 8)" "$T/server.log" || fail "no refusal logged at the total limit"
pass "total limit: the 9th connection is refused"

# Handshake deadline: TCP without TLS, and TLS without Hello, are closed
# after 1.5 s; idle deadline: a silent client after Hello after 4 s.
start=$(date +%s%N)
exec 3<>/dev/tcp/127.0.0.1/$PORT
timeout 10 cat <&3 >/dev/null || fail "a connection without TLS was not closed within 10 s"
exec 3<&-
ms=$((($(date +%s%N) - start) / 1000000))
[ $ms -ge 1000 ] && [ $ms -lt 5000 ] || fail "no-TLS connection closed after $ms ms (deadline 1500)"
out=$(tc town1 --wait 6000)
expect_eq "$(echo "$out" | tr '\n' ' ')" "handshake ok closed " "TLS without Hello"
start=$(date +%s%N)
out=$(tc town1 --hello --wait 10000)
ms=$((($(date +%s%N) - start) / 1000000))
echo "$out" | tail -1 | grep -qx closed || fail "idle connection not closed: $out"
[ $ms -ge 3500 ] && [ $ms -lt 9000 ] || fail "idle connection closed after $ms ms (deadline 4000)"
pass "handshake+Hello deadline and idle deadline close silent connections"

# Largest frame: a header announcing 65537 body bytes is refused at once.
out=$(tc town1 --hello --hex 000100090500000000000009 --wait 2000)
grep -q "error (fatal): frame larger than the limit of 65536 bytes" <<<"$out" || fail "oversized frame: $out"
echo "$out" | tail -1 | grep -qx closed || fail "oversized frame did not close: $out"
pass "a frame over --max-frame closes the connection"
stop_server

# ---- Run 2: default limits, a few thousand records -----------------------
start_server --idle-timeout 60000
client t1 town1
client admin admin
ps --data "$T/t1" generate --persons 2000 --seed 5 >/dev/null
ps --data "$T/t1" sync --quiet || fail "initial sync"
ps --data "$T/admin" sync --quiet || fail "admin sync"
nrec=$(ps --data "$T/admin" status --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["records"])')
[ "$nrec" -ge 2000 ] || fail "only $nrec records on the server"
# How big one full Pull answer is, read by a client that does read.
out=$(tc town2 --hello --flood 1 --wait 3000)
bytes=$(echo "$out" | sed -n 's/^received [0-9]* frames \([0-9]*\) bytes$/\1/p')
[ -n "$bytes" ] || fail "flood 1: $out"
out=$(tc admin --hello --flood 1 --wait 3000)
batch=$(echo "$out" | sed -n 's/^received [0-9]* frames \([0-9]*\) bytes$/\1/p')
[ "$batch" -gt 500000 ] || fail "a Pull from cursor 0 answers only $batch bytes; the flood would prove nothing"
base=$(rss_kb)
echo "server RSS at rest: $base kB; one Pull answer: $batch bytes"

# Two clients each pipeline 400 Pulls (about 400 x $batch bytes of answers
# each) and never read.  The server stops reading from them once their
# queued output passes --max-output (8 MiB).
tc admin --hello --flood 400 --no-read --wait 9000 >"$T/flood1.out" &
f1=$!
tc admin --hello --flood 400 --no-read --wait 9000 >"$T/flood2.out" &
f2=$!
sleep 2
# Others are served meanwhile: a push, a pull and a full pull of everything.
ps --data "$T/t1" add person --set "id_number=110105198501010012" --set name=限流测试 --set sex=male \
    --set birth_date=1985-01-01 >/dev/null
ps --data "$T/t1" sync --quiet || fail "sync during the flood"
client admin2 admin
ps --data "$T/admin2" sync --quiet || fail "full pull during the flood"
peak=0
for _ in $(seq 1 8); do
    r=$(rss_kb)
    [ "$r" -gt "$peak" ] && peak=$r
    sleep 0.5
done
wait $f1 $f2
grep -q "^open$" "$T/flood1.out" || fail "flood client 1: $(cat "$T/flood1.out")"
growth=$(((peak - base) / 1024))
echo "server RSS with two non-reading flood clients: peak $peak kB, growth $growth MB (unbounded: $((2 * 400 * batch / 1048576)) MB)"
[ $growth -lt 100 ] || fail "server memory grew by $growth MB under a non-reading client"
pass "a client that never reads its replies cannot grow the server's memory"

# 500 idle authenticated connections: 10 certificates x 50 (the default
# per-certificate limit is 64), opened 50 at a time so that slow (sanitizer)
# builds on 2 cores finish each handshake well inside its deadline.  They
# stay open until SIGUSR1.
sleep 1
base=$(rss_kb)
mark
pids=()
for i in $(seq 1 10); do
    # Not through tc: $! must be the client itself, which SIGUSR1 ends.
    "$PS_TESTCLIENT" --server 127.0.0.1:$PORT --ca "$T/pki/ca.crt" --cert "$T/pki/idle$i.crt" \
        --key "$T/pki/idle$i.key" --hello --conns 50 --wait 120000 >"$T/idle$i.out" &
    pids+=($!)
    wait_log "hello: node" $((50 * i))
done
sleep 1
held=$(rss_kb)
ps --data "$T/t1" edit "$(ps --data "$T/t1" list --format json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["id"])')" \
    --set phone=13900000000 >/dev/null
ps --data "$T/t1" sync --quiet || fail "sync with 500 idle connections open"
ps --data "$T/admin" sync --quiet || fail "admin sync with 500 idle connections open"
kill -USR1 "${pids[@]}"
for p in "${pids[@]}"; do wait "$p"; done
for i in $(seq 1 10); do
    grep -q "conns 50 handshake_ok 50 welcome 50 errors 0 closed 0 open 50" "$T/idle$i.out" ||
        fail "idle$i: $(cat "$T/idle$i.out")"
done
per=$(((held - base) / 500))
echo "server RSS: $base kB before, $held kB with 500 idle connections: about $per kB per connection"
[ $((held - base)) -lt $((150 * 1024)) ] || fail "500 idle connections cost $(((held - base) / 1024)) MB"
pass "500 idle connections: memory bounded, others served"
kill -0 "$SERVER_PID" || fail "server died"
stop_server
