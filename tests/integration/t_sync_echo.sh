# The pull after a push leaves out the versions the cache holds already
# (Pull.skip_own, docs/protocol.md §9.1, issue 17: in the incremental sync
# the echo of a township's own edits was most of its pull): an edit of the
# current version stored exactly as sent is not sent back on the same
# connection; a new record (the server sets its created_ms), a merged edit
# and a sync cut before its pull still bring the server's version; and in
# every case the township's copy equals the admin's, field for field,
# revision included.
. "$(dirname "$0")/lib4.sh"
make_pki4
issue township $TA ta
start_server4
client a ta
client b ta
client admin admin
sj() { sq "$1" sync --json "${@:2}"; }
jget() { python3 -c 'import json,sys; d=json.loads(sys.stdin.read()); print(" ".join(str(d[k]) for k in sys.argv[1:]))' "$@"; }
# full NAME: every record NAME holds, whole (revision, created, changed by), sorted.
full() { sq "$1" list --format json --deleted | python3 -c '
import json,sys
for r in sorted(json.load(sys.stdin), key=lambda r: r["id"]): print(json.dumps(r, sort_keys=True, ensure_ascii=False))'; }
same_as_admin() {
    psync admin
    diff <(full "$1") <(full admin) >/dev/null || { diff <(full "$1") <(full admin) | head -20 >&2; fail "$2: $1 differs from the admin's view"; }
}

psync a
sq a generate --persons 40 --seed 5 >/dev/null
n=$(pending a)
# New records: the server sets created_ms, so their versions come back.
out=$(sj a)
expect_eq "$(echo "$out" | jget ok accepted pulled)" "True $n $n" "first sync: new records come back"
same_as_admin a "after the first sync"
full a | grep -q '"rev"' || fail "the listing shows no revision: the comparison would prove nothing"
pass "new records: the server's version is pulled ($n)"

ids=($(sq a list --format json | python3 -c 'import json,sys; [print(r["id"]) for r in json.load(sys.stdin) if r["kind"] == "person"]' | sort))
[ "${#ids[@]}" -ge 20 ] || fail "only ${#ids[@]} persons"
for i in $(seq 0 9); do sq a edit "${ids[$i]}" --set phone=1390000$(printf '%04d' "$i") >/dev/null; done
out=$(sj a)
expect_eq "$(echo "$out" | jget ok accepted pulled)" "True 10 0" "edits: their echo is left out"
same_as_admin a "after edits of the current version"
pass "edits stored as sent are not pulled back, and the cache equals the server"

# Another cache's edit comes in the same pull as ours, which is left out.
psync b
sq b edit "${ids[10]}" --set address=乙的地址 >/dev/null
psync b
sq a edit "${ids[11]}" --set address=甲的地址 >/dev/null
out=$(sj a)
expect_eq "$(echo "$out" | jget ok accepted pulled)" "True 1 1" "own edit left out, the other cache's pulled"
same_as_admin a "with another cache's edit"
pass "another cache's edit is pulled next to our own left out"

# A merged edit (b changed the record since a's base) comes back whole.
sq b edit "${ids[12]}" --set address=乙改了 >/dev/null
psync b
sq a edit "${ids[12]}" --set phone=13911112222 >/dev/null
out=$(sj a)
expect_eq "$(echo "$out" | jget ok accepted)" "True 1" "merged edit accepted"
expect_eq "$(field a "${ids[12]}" 'r["address"] + " " + r["phone"]')" "乙改了 13911112222" "merged record in a"
same_as_admin a "after a merged edit"
pass "a merged edit brings the merged version"

# Cut after the PushResult (frames: Welcome, PushResult, then the PullBatch
# is cut): the next sync is a new connection, which sends the versions.
for i in $(seq 13 17); do sq a edit "${ids[$i]}" --set phone=1398888$(printf '%04d' "$i") >/dev/null; done
set +e
POPSYNC_TEST_CUT_AFTER_FRAMES=2 sq a sync --quiet 2>/dev/null
rc=$?
set -e
expect_eq "$rc" 3 "sync cut before its pull"
expect_eq "$(pending a)" 0 "the cut sync recorded its push's answers"
out=$(sj a)
expect_eq "$(echo "$out" | jget ok accepted pulled)" "True 0 5" "after a cut: the versions come on the next connection"
same_as_admin a "after a cut sync"
pass "a sync cut before its pull gets the versions on the next connection"

# PS_TRACE_SYNC=1: the sync's steps with their times on stderr (the
# timeline of docs/performance.md §c), step names and counts only.
sq a edit "${ids[18]}" --set phone=13977776666 >/dev/null
PS_TRACE_SYNC=1 sq a sync --quiet 2>"$T/trace.txt" >/dev/null || fail "traced sync failed"
for step in 'client: sync start' 'client: TLS established' 'client: TLS session saved' 'client: Push out (1 changes)' 'client: PushResult recorded' \
    'client: PullBatch in (0 entries, more 0)' 'client: sync recorded'; do
    grep -q "^trace [0-9.]* t[0-9]* cpu [0-9.]* $step" "$T/trace.txt" || fail "trace: no line '$step'"
done
grep -q "${ids[18]}\|13977776666" "$T/trace.txt" && fail "the trace names a record or a value"
sq a edit "${ids[18]}" --set phone=13977775555 >/dev/null
sq a sync --quiet 2>"$T/notrace.txt" >/dev/null || fail "sync failed"
grep -q '^trace ' "$T/notrace.txt" && fail "a trace without PS_TRACE_SYNC"
pass "PS_TRACE_SYNC traces the steps, and only when set"
