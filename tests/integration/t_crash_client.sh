# Client crash (issue 8, item 2): clients are killed with SIGKILL in the
# middle of pushing, pulling and generating, many times at random moments.
# Afterwards every cache opens, finishes syncing when run again, has an
# empty outbox, holds no record twice, agrees with the server (`popsync
# verify`: in sync), and the server holds every record the township caches
# made exactly once, each change applied once (generation 1).
. "$(dirname "$0")/lib.sh"
ROUNDS=${PS_CLIENT_KILLS:-25}
SEED=${PS_CRASH_SEED:-$((RANDOM % 10000 + 1))}
echo "seed $SEED, $ROUNDS rounds (PS_CRASH_SEED, PS_CLIENT_KILLS)"
RANDOM=$SEED
make_pki
start_server
client admin admin
client c1 town1
client c2 town2
ps --data "$T/c1" generate --persons 3000 --seed "$SEED" >/dev/null
ps --data "$T/c2" generate --persons 1000 --seed "$((SEED + 1))" >/dev/null

# pause_rand [MAX]: 0 to MAX (default 400) ms.
pause_rand() {
    local ms=$((RANDOM % ${1:-400}))
    sleep "0.$(printf '%03d' "$ms")"
}
# killed PID: SIGKILL; true when it was still running (the kill landed mid-work).
killed() {
    local landed=1
    kill -KILL "$1" 2>/dev/null && landed=0
    wait "$1" 2>/dev/null || true
    return $landed
}

push_kills=0
pull_kills=0
gen_kills=0
for r in $(seq 1 "$ROUNDS"); do
    # Both townships push (small batches: many commits to land between),
    # the admin pulls; all three die at the same random moment.
    "$POPSYNC" --data "$T/c1" sync --quiet --batch 200 >/dev/null 2>&1 &
    p1=$!
    "$POPSYNC" --data "$T/c2" sync --quiet --batch 200 >/dev/null 2>&1 &
    p2=$!
    "$POPSYNC" --data "$T/admin" sync --quiet >/dev/null 2>&1 &
    pa=$!
    pause_rand
    killed $p1 && push_kills=$((push_kills + 1))
    killed $p2 && push_kills=$((push_kills + 1))
    killed $pa && pull_kills=$((pull_kills + 1))
    # More local work every round, so there is always something to push;
    # every third round it is killed halfway through.
    c=c$((r % 2 + 1))
    "$POPSYNC" --data "$T/$c" generate --persons 400 --seed "$((SEED * 100 + r))" >/dev/null 2>&1 &
    pg=$!
    if [ $((r % 3)) -eq 0 ]; then
        pause_rand 150
        killed $pg && gen_kills=$((gen_kills + 1))
    else
        wait $pg || fail "generate in $c"
    fi
done
echo "killed: $push_kills pushing, $pull_kills pulling, $gen_kills generating"
[ $((push_kills + pull_kills)) -gt 0 ] || fail "no kill landed mid-sync"

for c in c1 c2 admin; do
    ps --data "$T/$c" status --json >"$T/status.$c" || fail "$c: the cache does not open after the kills"
    ok=""
    for _ in $(seq 1 5); do
        if ps --data "$T/$c" sync --quiet >"$T/sync.out" 2>&1; then ok=1; break; fi
    done
    [ -n "$ok" ] || fail "$c: sync after the kills: $(cat "$T/sync.out")"
done
ps --data "$T/admin" sync --quiet || fail "admin: last pull"
for c in c1 c2 admin; do
    st=$(ps --data "$T/$c" status --json | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["pending"], d["rejected_count"])')
    expect_eq "$st" "0 0" "$c: outbox drained, nothing rejected"
    total=$(ids "$c" | wc -l)
    expect_eq "$(ids "$c" | uniq | wc -l)" "$total" "$c: no record twice in the cache"
    out=$(ps --data "$T/$c" verify 2>&1) || fail "$c verify: $out"
    grep -q "in sync" <<<"$out" || fail "$c does not agree with the server: $out"
done
# The server (as the admin sees it) holds exactly the townships' records,
# each once, each at generation 1.
# (Migrations between the two townships are held by both: count them once.)
sort -u <(ids c1) <(ids c2) >"$T/made"
ids admin >"$T/server.ids"
lost=$(comm -23 "$T/made" "$T/server.ids" | wc -l)
extra=$(comm -13 "$T/made" "$T/server.ids" | wc -l)
[ "$lost" -eq 0 ] || fail "$lost records of the townships are not on the server"
[ "$extra" -eq 0 ] || fail "$extra records on the server that no township holds"
twice=$(ps --data "$T/admin" list --format json | python3 -c '
import json,sys
print(sum(1 for r in json.load(sys.stdin) if int(r["rev"]["gen"]) != 1))')
expect_eq "$twice" 0 "records whose change was applied more than once"
stop_server
echo "client crash: $ROUNDS rounds, kills $((push_kills + pull_kills + gen_kills)) ($push_kills mid-push, $pull_kills mid-pull, $gen_kills mid-generate), caches checked 3, records $(wc -l <"$T/server.ids"), lost 0, duplicated 0"
pass "SIGKILLed clients: caches open, converge, nothing lost or applied twice"
