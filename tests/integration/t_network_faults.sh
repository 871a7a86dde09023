# Network faults (issue 8, item 3): syncs through ps_faultproxy, which
# delays every chunk, cuts connections at random byte offsets (either
# direction) or stalls them, converge with nothing lost or applied twice.
# Per mode: a township device pushes new records, edits and deletes through
# the proxy (retrying until a sync completes, a bounded number of times), a
# second device of the same township pulls through the proxy, and an admin
# pulls directly; all three must hold the same records at the same
# revisions, and each change must have been applied exactly once (new
# records at generation 1, edited or deleted ones at 2).  The seed is random
# and printed (PS_FAULT_SEED=N replays the proxy's decisions).
. "$(dirname "$0")/lib.sh"
: "${PS_FAULTPROXY:?PS_FAULTPROXY must point at ps_faultproxy}"
PROXY_PID=""
trap 'rc=$?; if [ -n "$PROXY_PID" ]; then kill -TERM "$PROXY_PID" 2>/dev/null || true; wait "$PROXY_PID" 2>/dev/null || true; fi; set +e; (exit $rc); cleanup' EXIT

make_pki
start_server --idle-timeout 20000
client admin admin
SEED=${PS_FAULT_SEED:-$((RANDOM % 10000 + 1))}
echo "seed $SEED (rerun with PS_FAULT_SEED=$SEED)"

start_proxy() {
    rm -f "$T/pport"
    "$PS_FAULTPROXY" --to "$PORT" --port-file "$T/pport" --max-seconds 250 "$@" >/dev/null 2>>"$T/proxy.log" &
    PROXY_PID=$!
    for _ in $(seq 1 100); do
        [ -s "$T/pport" ] && break
        sleep 0.05
    done
    [ -s "$T/pport" ] || fail "ps_faultproxy did not start"
    PPORT=$(cat "$T/pport")
}
stop_proxy() {
    kill -TERM "$PROXY_PID"
    wait "$PROXY_PID" || true
    PROXY_PID=""
}

# via NAME CERT: a cache whose server is the proxy.
via() {
    ps --data "$T/$1" init --server "127.0.0.1:$PPORT" --ca "$T/pki/ca.crt" \
        --cert "$T/pki/$2.crt" --key "$T/pki/$2.key" >/dev/null
}

# sync_until NAME MAX [sync options]: syncs until one run completes.
ATTEMPTS=0
sync_until() {
    local name=$1 max=$2 i
    shift 2
    for i in $(seq 1 "$max"); do
        ATTEMPTS=$((ATTEMPTS + 1))
        ps --data "$T/$name" sync --quiet "$@" >"$T/sync.out" 2>&1 && return 0
        rc=$?
        [ $rc -eq 3 ] || fail "sync of $name exited $rc: $(cat "$T/sync.out")"
    done
    fail "sync of $name did not complete in $max attempts: $(cat "$T/sync.out")"
}

# state NAME [list options]: "id gen deleted" per record, sorted.
state() {
    local name=$1
    shift
    ps --data "$T/$name" list --deleted --format json "$@" | python3 -c '
import json,sys
for r in json.load(sys.stdin):
    print(r["id"], (r["rev"] or {}).get("gen", 0), r["deleted"])' | sort
}

# persons NAME: sorted ids of the persons in cache NAME.
persons() {
    ps --data "$T/$1" list --kind person --format json | python3 -c 'import json,sys; [print(r["id"]) for r in json.load(sys.stdin)]' | sort
}

pending() {
    ps --data "$T/$1" status --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["pending"])'
}

total_checked=0
mi=0
for mode in delay cut stall; do
    mi=$((mi + 1))
    case $mode in
        delay) start_proxy --seed "$SEED" --delay 30; opts=(--timeout 30000) ;;
        cut) start_proxy --seed "$SEED" --cut-prob 80 --cut-max 8000; opts=(--timeout 30000 --batch 100) ;;
        # Stalls of 2.5 s against a 1.5 s client deadline: some syncs time
        # out and run again, the rest wait the stall out.
        stall) start_proxy --seed "$SEED" --stall-prob 70 --stall 2500 --stall-max 8000; opts=(--timeout 1500 --batch 100) ;;
    esac
    ATTEMPTS=0
    via "p_$mode" town1
    via "q_$mode" town1
    # The device first pulls what the earlier modes' devices registered, so
    # its generator skips their ID numbers (it skips the numbers its cache
    # holds; the server keeps one live person per number).  Without it, a
    # seed whose runs share a residue mod 5 with an earlier mode's (seed 4)
    # drew two numbers already taken and the server refused them.
    sync_until "p_$mode" 60 "${opts[@]}"
    : >"$T/expect"
    # Rounds of new records, then edits and deletes of some of them, each
    # pushed through the faults until a sync completes.
    for round in 1 2 3 4; do
        persons "p_$mode" >"$T/before"
        ps --data "$T/p_$mode" generate --persons 80 --seed "$((SEED * 100 + mi * 10 + round))" >/dev/null
        persons "p_$mode" | comm -13 "$T/before" - >"$T/new"
        [ "$(wc -l <"$T/new")" -ge 20 ] || fail "$mode: generate made too few persons"
        sync_until "p_$mode" 60 "${opts[@]}"
        mapfile -t new <"$T/new"
        for id in "${new[@]:0:6}"; do
            ps --data "$T/p_$mode" edit "$id" --set phone=13900000001 >/dev/null
        done
        for id in "${new[@]:6:3}"; do
            ps --data "$T/p_$mode" delete "$id" --force >/dev/null
        done
        for id in "${new[@]:0:6}"; do echo "$id 2 False"; done >>"$T/expect"
        for id in "${new[@]:6:3}"; do echo "$id 2 True"; done >>"$T/expect"
        for id in "${new[@]:9}"; do echo "$id 1 False"; done >>"$T/expect"
        sync_until "p_$mode" 60 "${opts[@]}"
        expect_eq "$(pending "p_$mode")" 0 "$mode: outbox drained (round $round)"
    done
    sync_until "q_$mode" 60 "${opts[@]}"
    ps --data "$T/admin" sync --quiet || fail "$mode: admin pull"
    stop_proxy

    state "p_$mode" >"$T/p.state"
    state "q_$mode" >"$T/q.state"
    state admin --orgunit $TOWN1 >"$T/a.state"
    n=$(wc -l <"$T/a.state")
    [ "$n" -gt 0 ] || fail "$mode: the admin holds nothing"
    expect_eq "$(cut -d' ' -f1 "$T/a.state" | uniq -d | wc -l)" 0 "$mode: duplicate ids on the server"
    diff "$T/a.state" "$T/p.state" >"$T/diff" || fail "$mode: the pushing device differs from the server: $(head -5 "$T/diff")"
    diff "$T/a.state" "$T/q.state" >"$T/diff" || fail "$mode: the pulling device differs from the server: $(head -5 "$T/diff")"
    # Exactly once: each new person at generation 1, each edited or deleted
    # one at 2 (a change applied twice would show one more).
    sort "$T/expect" >"$T/expect.sorted"
    join "$T/expect.sorted" "$T/a.state" | awk '$2 != $4 || $3 != $5 { print; bad=1 } END { exit bad }' >"$T/bad" ||
        fail "$mode: a change was applied twice or lost: $(head -3 "$T/bad")"
    expect_eq "$(join "$T/expect.sorted" "$T/a.state" | wc -l)" "$(wc -l <"$T/expect.sorted")" "$mode: every change on the server"
    stats=$(grep '^faultproxy:' "$T/proxy.log" | tail -1)
    total_checked=$((total_checked + n))
    echo "ok: $mode: $n records equal on server and both devices after $ATTEMPTS sync attempts ($stats)"
done
stop_server
echo "network faults: 3 modes, $total_checked record states checked, lost 0, duplicated 0"
pass "syncs through delays, cuts and stalls converge"
