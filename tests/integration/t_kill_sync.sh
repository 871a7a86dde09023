# A client killed with SIGKILL in the middle of a sync resyncs with no
# record lost or duplicated: push and pull are both idempotent.
. "$(dirname "$0")/lib.sh"
make_pki
start_server
client t1 town1
client admin admin
N=20000
ps --data "$T/t1" generate --persons $N --seed 7 >/dev/null

# Kill the pusher a few times at different moments.  Wherever the kill lands
# (before, during or after a commit), a rerun must converge.
for delay in 0.05 0.15 0.3; do
    "$POPSYNC" --data "$T/t1" sync --quiet --batch 500 >/dev/null 2>&1 &
    pid=$!
    sleep $delay
    kill -KILL $pid 2>/dev/null || true
    wait $pid 2>/dev/null || true
done
ps --data "$T/t1" sync --quiet --batch 500 || fail "resync after kills"
pending=$(ps --data "$T/t1" status --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["pending"])')
expect_eq "$pending" 0 "outbox empty after resync"

# The admin pull is killed the same way, then completed.
for delay in 0.05 0.2; do
    "$POPSYNC" --data "$T/admin" sync --quiet >/dev/null 2>&1 &
    pid=$!
    sleep $delay
    kill -KILL $pid 2>/dev/null || true
    wait $pid 2>/dev/null || true
done
ps --data "$T/admin" sync --quiet || fail "admin resync"
expect_eq "$(count admin)" $N "admin holds every record once"
total=$(ids admin | wc -l)
expect_eq "$(ids admin | uniq | wc -l)" "$total" "no duplicate ids"
expect_eq "$total" "$(ids t1 | wc -l)" "admin holds every record of the township"
diff <(ids t1) <(ids admin) >/dev/null || fail "admin and township differ"
# The server holds each record exactly once, at generation 1: no change was
# applied twice.
ps --data "$T/admin" list --kind person --format json | python3 -c '
import json,sys
recs=json.load(sys.stdin)
gens=[int(r["rev"]["gen"]) for r in recs]
assert all(g==1 for g in gens), "a change was applied twice: gens %s" % sorted(set(gens))
'
# One sync of a cache at a time: a second one waits for the first (two at
# once would send one outbox twice in parallel, which looks like a copy).
flock "$T/t1/sync.lock" sleep 2 &
holder=$!
sleep 0.5
ps --data "$T/t1" sync --quiet 2>"$T/wait.err" || fail "sync waiting for the lock"
grep -q "another sync of this cache is running; waiting" "$T/wait.err" || fail "says it waits: $(cat "$T/wait.err")"
wait $holder
stop_server
pass "killed push and pull converge: $N records, none lost or duplicated"
