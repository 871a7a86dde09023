# Exit codes of `popsync sync` (issue 21, point 3): 0 only when every pushed
# change was accepted and the pull completed; 6 when the sync completed but
# some changes were refused or kept as conflicts, with the counts printed;
# 3 when it did not complete.  `popsync --help` documents them.
. "$(dirname "$0")/lib4.sh"
make_pki4
issue township $TA ta
start_server4
client a ta
client a2 ta
client admin admin

"$POPSYNC" --help | grep -q "6 sync completed but" || fail "--help does not document exit code 6"

# sync_rc NAME: runs a sync, prints "EXIT OUTPUT...".
sync_rc() {
    local out rc
    set +e
    out=$(sq "$1" sync 2>&1)
    rc=$?
    set -e
    echo "$rc $out" | tr '\n' ' '
}

p=$(add_person a 1)
r=$(sync_rc a)
expect_eq "${r%% *}" 0 "a sync whose changes were all accepted ($r)"
sync_rc a2 >/dev/null
sync_rc admin >/dev/null

# A refused change: exit 6, counted.
sq admin delete "$p"
sync_rc admin >/dev/null
v=$(sq a add service_visit --set person_id="$p" --set service=followup --set visit_date=2025-05-06)
r=$(sync_rc a)
expect_eq "${r%% *}" 6 "a sync with a refused change ($r)"
grep -q "1 rejected" <<<"$r" || fail "the refusal is not counted: $r"
grep -q "refused list" <<<"$r" || fail "no hint to 'popsync refused list': $r"
# Nothing pushed now: 0, but the kept refusal is recalled.
r=$(sync_rc a)
expect_eq "${r%% *}" 0 "a sync that pushed nothing ($r)"
grep -q "1 refused change(s) kept" <<<"$r" || fail "the kept refusal is not recalled: $r"
sq a refused discard "$v" >/dev/null
pass "exit 6 and the count when a change is refused"

# A same-field clash: the later edit wins, the other is a conflict: exit 6.
q=$(add_person a 2)
sync_rc a >/dev/null
sync_rc a2 >/dev/null
sq a edit "$q" --set phone=13800000001
sq a2 edit "$q" --set phone=13800000002
r=$(sync_rc a2)
expect_eq "${r%% *}" 0 "the first of two clashing edits ($r)"
r=$(sync_rc a)
expect_eq "${r%% *}" 6 "a sync whose change raised a conflict ($r)"
grep -q "1 conflicts" <<<"$r" || fail "the conflict is not counted: $r"
r=$(sq a sync --json 2>/dev/null || echo "rc=$?")
grep -q '"ok":true' <<<"$r" || fail "sync --json: $r"
pass "exit 6 and the count when a change is kept as a conflict"

# Not completed: exit 3.
stop_server
r=$(sync_rc a)
expect_eq "${r%% *}" 3 "a sync with the server down ($r)"
pass "exit 3 when the sync does not complete"
