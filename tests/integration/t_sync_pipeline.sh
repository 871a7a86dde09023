# Pipelined sync (issue 17 point 1): the window agreed in Hello/Welcome
# puts several Pushes and several Pulls in flight on one connection; the
# answers come in order and the outbox and cursor move on only over answers
# applied; a client that asks no window (POPSYNC_TEST_WINDOW=1, as before
# pipelining) still syncs one request at a time; a sync cut in the middle
# of a window of pushes or of pulls runs again with nothing lost, nothing
# applied twice and no "copied cache" refusal (Push.ack_floor).
. "$(dirname "$0")/lib4.sh"
make_pki4
issue township $TA ta
start_server4 --pull-batch 7 --max-push 5 --metrics 127.0.0.1:0
client a ta
client admin admin
sj() { sq "$1" sync --json "${@:2}"; }
jget() { python3 -c 'import json,sys; d=json.loads(sys.stdin.read()); print(" ".join(str(d[k]) for k in sys.argv[1:]))' "$@"; }
# full NAME: every record NAME holds, whole, sorted: equal output = equal caches.
full() { sq "$1" list --format json --deleted | python3 -c '
import json,sys
for r in sorted(json.load(sys.stdin), key=lambda r: r["id"]): print(json.dumps(r, sort_keys=True, ensure_ascii=False))'; }
# metric NAME: its value from GET /metrics.
metric() {
    local port
    port=$(sed -n 's/.*serving \/metrics on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$T/server.log" | tail -1)
    python3 - "$port" "$1" <<'PY'
import sys, urllib.request
body = urllib.request.urlopen("http://127.0.0.1:%s/metrics" % sys.argv[1], timeout=10).read().decode()
print(next(l.split()[1] for l in body.splitlines() if l.startswith(sys.argv[2] + " ")))
PY
}

psync a                                   # fetches the org-unit tree
sq a generate --persons 120 --seed 17 >/dev/null
n=$(pending a)
[ "$n" -ge 150 ] || fail "the generator made only $n records"
# 5 changes per Push: 30+ pushes, up to the window (8) of them in flight.
out=$(sj a --batch 5)
expect_eq "$(echo "$out" | jget ok accepted duplicate rejected)" "True $n 0 0" "pipelined push counts"
fl=$(echo "$out" | jget max_in_flight)
[ "$fl" -ge 2 ] && [ "$fl" -le 8 ] || fail "pipelined push: $fl requests in flight at most (want 2..8)"
expect_eq "$(pending a)" 0 "outbox after the pipelined push"
m=$(metric popsync_requests_in_flight_max)
[ "$m" -ge 2 ] && [ "$m" -le 8 ] || fail "server: $m requests of one connection in flight at most (want 2..8)"
# 7 records per PullBatch: the admin's pull keeps several Pulls in flight.
out=$(sj admin)
expect_eq "$(echo "$out" | jget ok pulled)" "True $n" "pipelined admin pull"
fl=$(echo "$out" | jget max_in_flight)
[ "$fl" -ge 2 ] && [ "$fl" -le 4 ] || fail "pipelined pull: $fl requests in flight at most (want 2..4)"
diff <(full a) <(full admin) >/dev/null || fail "pipelined sync: the admin's view differs from the township's"
pass "several pushes and pulls in flight ($n records; window 8, 4 pulls)"

# A client without a window (as before pipelining) gets one at a time.
client old admin
out=$(POPSYNC_TEST_WINDOW=1 sj old)
expect_eq "$(echo "$out" | jget ok pulled max_in_flight)" "True $n 1" "window 1: one request at a time"
diff <(full old) <(full admin) >/dev/null || fail "window 1: the view differs"
ids=($(sq a list --format json | python3 -c 'import json,sys; [print(r["id"]) for r in json.load(sys.stdin) if r["kind"] == "person"]' | sort))
[ "${#ids[@]}" -ge 80 ] || fail "only ${#ids[@]} persons"
for i in $(seq 0 19); do sq a edit "${ids[$i]}" --set address=窗口一 >/dev/null; done
out=$(POPSYNC_TEST_WINDOW=1 sj a --batch 5)
expect_eq "$(echo "$out" | jget ok accepted max_in_flight)" "True 20 1" "window 1 push"
pass "a client asking no window syncs one request at a time"

# --- A cut in the middle of a window of pushes.  Frames received: Welcome,
# then PushResults; the cut comes after two of them, while later Pushes of
# the window are committed (or in flight) and their answers are lost.
for i in $(seq 20 79); do sq a edit "${ids[$i]}" --set phone=1391111$(printf '%04d' "$i") >/dev/null; done
e=$(pending a)
expect_eq "$e" 60 "edits waiting"
set +e
out=$(POPSYNC_TEST_CUT_AFTER_FRAMES=3 sj a --batch 5 2>/dev/null)
rc=$?
set -e
expect_eq "$rc" 3 "sync cut in a window of pushes"
left=$(pending a)
[ "$left" -eq $((e - 10)) ] || fail "after two PushResults the outbox holds $left of $e (want $((e - 10)))"
# The server committed more than it could answer: the resend is answered
# DUPLICATE (remembered: the floor stayed at the oldest unanswered Push).
out=$(sj a --batch 5)
expect_eq "$(echo "$out" | jget ok rejected)" "True 0" "resend after the cut"
d=$(echo "$out" | jget duplicate)
[ "$d" -ge 5 ] || fail "the resend after a cut window found only $d duplicates"
expect_eq "$(pending a)" 0 "outbox after the resend"
expect_eq "$(sq a refused list --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')" 0 "refused after the resend"
pass "a cut window of pushes: $d of its changes came back DUPLICATE, none refused"

# --- A cut in the middle of a window of pulls: Welcome, OrgUnits, two
# PullBatches applied; the rest of the window is lost and pulled again.
client admin2 admin
set +e
POPSYNC_TEST_CUT_AFTER_FRAMES=4 sq admin2 sync --quiet >/dev/null 2>&1
rc=$?
set -e
expect_eq "$rc" 3 "sync cut in a window of pulls"
got=$(sq admin2 list --format json --deleted | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')
[ "$got" -ge 1 ] && [ "$got" -le 14 ] || fail "two PullBatches of 7 carried $got records"
psync admin2
psync admin
diff <(full admin2) <(full admin) >/dev/null || fail "after a cut window of pulls the view differs"
diff <(full a) <(full admin) >/dev/null || fail "after the cut windows the township's view differs"
# Every change applied once: gen 1 + the edits made (address, then phone).
sq admin list --format json --deleted | python3 -c '
import json,sys
ids=sys.argv[1:]
want={i: 1 + (k < 20) + (20 <= k < 80) for k, i in enumerate(ids)}
got={r["id"]: int(r["rev"]["gen"]) for r in json.load(sys.stdin) if r["kind"] == "person"}
bad=[(i, want[i], g) for i, g in got.items() if want.get(i) != g]
assert not bad and len(got) == len(want), "id, expected gen, gen: %s" % bad[:5]
' "${ids[@]}" || fail "a change was applied twice (or lost)"
stop_server
pass "a cut window of pulls is pulled again; every change applied once"
