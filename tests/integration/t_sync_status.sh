# Status that tells the clerk what happened (issue 16 point 7): last
# completed sync, last attempt and its error, pending changes by kind,
# refused and conflict counts equal to what `refused list` and `conflicts
# list` show; a conflict table with a header and both values side by side;
# the progress line ended before the summary; a failed sync prints the
# failure and what to do, never a summary of zeros.
. "$(dirname "$0")/lib4.sh"
make_pki4
issue township $TA ta
start_server4
client a ta
client a2 ta

# Pending by kind, before any sync.
p=$(add_person a 1)
add_person a 2 >/dev/null
sq a add household --set head_id="$p" --set address=一号 >/dev/null 2>&1 ||
    sq a add household --set head_id="$p" >/dev/null
st=$(sq a status)
grep -q "^pending:  3 change(s) to push (2 person, 1 household)$" <<<"$st" || fail "pending by kind: $st"
grep -q "^last sync: never$" <<<"$st" || fail "last sync before any: $st"
grep -q "^last attempt: never$" <<<"$st" || fail "last attempt before any: $st"
j=$(status_json a)
python3 - "$j" <<'PY' || fail "status --json pending_by_kind: $j"
import json,sys
j=json.loads(sys.argv[1])
assert j["pending_by_kind"]=={"person":2,"household":1}, j
assert j["pending"]==3 and int(j["last_sync_ms"])==0 and int(j["last_attempt_ms"])==0 and j["last_error"] is None, j
PY
pass "status: pending changes by kind"

# A cut sync: the failure and what to do, no summary of zeros; status tells.
set +e
out=$(POPSYNC_TEST_CUT_AFTER_FRAMES=1 sq a sync 2>&1)
rc=$?
set -e
expect_eq "$rc" 3 "exit of a cut sync ($out)"
grep -q "^pushed" <<<"$out" && fail "a failed sync printed a summary: $out"
grep -q "^popsync: sync failed: " <<<"$out" || fail "no failure line: $out"
grep -q "what to do: .*'popsync sync' again" <<<"$out" || fail "no advice: $out"
grep -q "3 change(s) wait in this cache" <<<"$out" || fail "pending not told: $out"
st=$(sq a status)
grep -q "^last sync: never$" <<<"$st" || fail "last sync after a cut sync: $st"
grep -q "^last attempt: .* FAILED: " <<<"$st" || fail "the failed attempt is not shown: $st"
j=$(status_json a)
python3 -c 'import json,sys; j=json.loads(sys.argv[1]); assert int(j["last_attempt_ms"])>0 and j["last_error"], j' "$j" ||
    fail "status --json after a cut sync: $j"
pass "a cut sync prints the failure; status shows the failed attempt"

# A completed sync, run on a terminal: the progress line ends before the
# summary line.
script -qec "$POPSYNC --data $T/a sync" /dev/null >"$T/tty.out" </dev/null || true
tr '\r' '\n' <"$T/tty.out" | grep -q "^pushed 3 " || fail "summary not on a line of its own: $(od -c "$T/tty.out" | head -20)"
grep -a "pushed 3" "$T/tty.out" | grep -q "push:\|pull:" && fail "progress runs into the summary: $(cat -A "$T/tty.out")"
st=$(sq a status)
grep -q "^last sync: .* (completed)$" <<<"$st" || fail "last sync after a sync: $st"
grep -q "^last attempt: .* completed$" <<<"$st" || fail "last attempt after a sync: $st"
grep -q "^pending:  0 change(s) to push (none)$" <<<"$st" || fail "pending after a sync: $st"
grep -q "^conflicts: 0 open" <<<"$st" || fail "conflicts after a sync: $st"
pass "progress line ended before the summary; status after a completed sync"

# A conflict: status counts what `conflicts list` shows; the table has a
# header and both values.
psync a2
sq a edit "$p" --set phone=13800000001
sq a2 edit "$p" --set phone=13800000002
psync a2
psync a
st=$(sq a status)
n=$(conflicts_json a | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')
expect_eq "$n" 1 "conflicts listed"
grep -q "^conflicts: 1 open" <<<"$st" || fail "status does not count the conflict: $st"
rl=$(sq a refused list --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')
rs=$(status_json a | python3 -c 'import json,sys; j=json.load(sys.stdin); print(j["refused_count"], j["conflicts_open"])')
expect_eq "$rs" "$rl 1" "status --json refused_count and conflicts_open vs the lists"
tab=$(sq a conflicts list)
grep -q "^CONFLICT .*RECORD .*KIND .*UNIT .*RAISED .*STATE" <<<"$tab" || fail "conflict table without header: $tab"
grep -q "FIELD .*KEPT .*LOST" <<<"$tab" || fail "no field header: $tab"
grep -q "^ *phone  *13800000002  *13800000001$" <<<"$tab" || fail "both values not side by side: $tab"
pass "status counts the conflict; the table shows both values"
