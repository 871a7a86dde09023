# Server crash (issue 8, item 1): three township clients ingest (generate
# and sync, over and over) while popsyncd is killed with SIGKILL at random
# moments and restarted, PS_CRASH_KILLS times (default 20; soak: 500).
#
# A client's change is acknowledged when the server's PushResult reached it:
# the cache then gives the record the server's revision.  After every sync
# attempt each client's records that have a server revision are added to
# the set of acknowledged records.  At the end every client syncs to
# completion, and then:
#   - every acknowledged record is on the server (an admin pulls all) once,
#     at generation 1 (no change applied twice), and the server holds
#     exactly the records the three clients hold;
#   - the store reopens after each kill, its audit chain verifies and its
#     report counters match a recount;
#   - every client's `popsync verify` says "in sync".
. "$(dirname "$0")/lib.sh"
KILLS=${PS_CRASH_KILLS:-20}
SEED=${PS_CRASH_SEED:-$((RANDOM % 10000 + 1))}
echo "seed $SEED, $KILLS kills (PS_CRASH_SEED, PS_CRASH_KILLS)"
RANDOM=$SEED
LOOP_PIDS=()
trap 'rc=$?; rm -f "$T/run"; for p in "${LOOP_PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; set +e; (exit $rc); cleanup' EXIT

make_pki
start_server --idle-timeout 30000
client admin admin
client c1 town1
client c2 town2
client c3 town3

# restart: popsyncd again on the same port (the caches know it); a port
# still held by the dead process's sockets is retried a few times.
restart() {
    local try
    for try in $(seq 1 50); do
        rm -f "$T/port"
        "$POPSYNCD" --listen "127.0.0.1:$PORT" --port-file "$T/port" --data "$T/server" --allow-synthetic \
            --ca "$T/pki/ca.crt" --cert "$T/pki/popsyncd.crt" --key "$T/pki/popsyncd.key" \
            --idle-timeout 30000 >>"$T/server.log" 2>&1 &
        SERVER_PID=$!
        for _ in $(seq 1 200); do
            [ -s "$T/port" ] && return 0
            kill -0 "$SERVER_PID" 2>/dev/null || break
            sleep 0.05
        done
        wait "$SERVER_PID" 2>/dev/null || true
        sleep 0.2
    done
    fail "popsyncd could not be restarted on port $PORT: $(tail -3 "$T/server.log")"
}

# acked_snapshot NAME: adds the ids of records with a server revision.
acked_snapshot() {
    ps --data "$T/$1" list --deleted --format json 2>/dev/null | python3 -c '
import json,sys
for r in json.load(sys.stdin):
    if r["rev"] and int(r["rev"].get("gen", 0)) >= 1: print(r["id"])' >"$T/snap.$1" || return 0
    sort -u "$T/snap.$1" "$T/acked.$1" -o "$T/acked.$1"
}

# ingest NAME N: generate and sync until $T/run goes away (at most 2000 rounds).
ingest() {
    local name=$1 n=$2 r=0
    while [ -e "$T/run" ] && [ $r -lt 2000 ]; do
        r=$((r + 1))
        ps --data "$T/$name" generate --persons 12 --seed $((SEED * 10000 + n * 2000 + r)) >/dev/null
        ps --data "$T/$name" sync --quiet --timeout 20000 >>"$T/sync.$name.log" 2>&1 || true
        acked_snapshot "$name"
    done
    echo $r >"$T/rounds.$name"
}

touch "$T/run"
for i in 1 2 3; do
    : >"$T/acked.c$i"
    ingest "c$i" "$i" &
    LOOP_PIDS+=($!)
done

kills=0
for k in $(seq 1 "$KILLS"); do
    # A random moment: 50 ms to 1.25 s after the restart.
    ms=$((50 + RANDOM % 1200))
    sleep "$((ms / 1000)).$(printf '%03d' $((ms % 1000)))"
    kill -KILL "$SERVER_PID"
    wait "$SERVER_PID" 2>/dev/null || true
    kills=$((kills + 1))
    restart
done
rm -f "$T/run"
for p in "${LOOP_PIDS[@]}"; do wait "$p"; done
LOOP_PIDS=()

# Every client syncs to completion.
for i in 1 2 3; do
    ok=""
    for _ in $(seq 1 10); do
        if ps --data "$T/c$i" sync --quiet --timeout 60000 >>"$T/sync.c$i.log" 2>&1; then ok=1; break; fi
        sleep 0.5
    done
    [ -n "$ok" ] || fail "c$i could not finish syncing: $(tail -3 "$T/sync.c$i.log")"
    acked_snapshot "c$i"
    pending=$(ps --data "$T/c$i" status --json | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["pending"], d["rejected_count"])')
    expect_eq "$pending" "0 0" "c$i: pending and rejected changes after the final sync"
done
ps --data "$T/admin" sync --quiet || fail "admin pull"

# Compare.
sort -u "$T"/acked.c1 "$T"/acked.c2 "$T"/acked.c3 >"$T/acked.all"
ps --data "$T/admin" list --deleted --format json | python3 -c '
import json,sys
for r in json.load(sys.stdin): print(r["id"], r["rev"]["gen"] if r["rev"] else 0)' | sort >"$T/server.state"
cut -d' ' -f1 "$T/server.state" >"$T/server.ids"
acked=$(wc -l <"$T/acked.all")
[ "$acked" -gt 0 ] || fail "no record was ever acknowledged"
lost=$(comm -23 "$T/acked.all" "$T/server.ids" | wc -l)
dup_ids=$(uniq -d "$T/server.ids" | wc -l)
twice=$(awk '$2 != 1' "$T/server.state" | wc -l)
duplicated=$((dup_ids + twice))
clients_total=$(for i in 1 2 3; do ids "c$i"; done | sort -u | wc -l)
[ "$lost" -eq 0 ] || fail "$lost acknowledged records are not on the server: $(comm -23 "$T/acked.all" "$T/server.ids" | head -3)"
[ "$duplicated" -eq 0 ] || fail "$dup_ids duplicate ids and $twice records above generation 1 on the server: $(awk '$2 != 1' "$T/server.state" | head -3)"
expect_eq "$(wc -l <"$T/server.ids")" "$clients_total" "records on the server and in the three caches"
for i in 1 2 3; do
    out=$(ps --data "$T/c$i" verify 2>&1) || fail "c$i verify: $out"
    grep -q "in sync" <<<"$out" || fail "c$i does not converge: $out"
done
stop_server
"$POPSYNCD" audit verify --data "$T/server" >"$T/audit.out" || fail "audit chain: $(cat "$T/audit.out")"
"$POPSYNCD" counters check --data "$T/server" >"$T/counters.out" 2>&1 || fail "counters: $(cat "$T/counters.out")"
rounds=$(($(cat "$T/rounds.c1") + $(cat "$T/rounds.c2") + $(cat "$T/rounds.c3")))
echo "server crash: kills $kills, ingest rounds $rounds, acknowledged records checked $acked, server records $(wc -l <"$T/server.ids"), lost $lost, duplicated $duplicated"
echo "  $(cat "$T/audit.out")"
pass "SIGKILLed server: every acknowledged record survives exactly once"
