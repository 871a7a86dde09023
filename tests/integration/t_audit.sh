# The audit log chains every accepted change, one hash per write
# transaction (docs/security.md §5); `popsyncd audit verify` finds an altered
# entry (in the middle of a transaction and in the last one), a removed one,
# two swapped ones and a truncated log.  The old rule (one hash per entry, a
# data directory from before session 4) is tested in test_server_persist.
. "$(dirname "$0")/lib.sh"
: "${PS_LMDBPOKE:?}"
make_pki
start_server
client t1 town1
ps --data "$T/t1" generate --persons 40 --seed 3 >/dev/null
ps --data "$T/t1" sync --quiet
id=$(ps --data "$T/t1" list --kind person --format json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["id"])')
ps --data "$T/t1" edit "$id" --set phone=13912345678
ps --data "$T/t1" delete "$id" --force
ps --data "$T/t1" sync --quiet
total=$(ps --data "$T/t1" status --json | python3 -c 'import json,sys; s=json.load(sys.stdin); print(s["records"]+s["deleted"])')
# Verification works on a live store.
out=$("$POPSYNCD" audit verify --data "$T/server")
grep -q "audit log intact: $((total + 2)) entries" <<<"$out" || fail "live verify: $out (expected $((total + 2)) entries)"
stop_server

cp -a "$T/server" "$T/altered"
cp -a "$T/server" "$T/removed"
cp -a "$T/server" "$T/truncated"
cp -a "$T/server" "$T/swapped"
cp -a "$T/server" "$T/altered_last"
# Alter one byte inside entry 5: its write transaction no longer matches the
# hash the next transaction's first entry carries.
"$PS_LMDBPOKE" "$T/altered" audit flip 0000000000000005 20
set +e
out=$("$POPSYNCD" audit verify --data "$T/altered"); rc=$?
set -e
expect_eq "$rc" 1 "altered log exit status"
grep -Eq "entries 1 to [0-9]+ \(one write transaction\) do not match the hash entry [0-9]+ carries" <<<"$out" ||
    fail "alteration not located: $out"
# Alter the newest entry: only the head can tell.
last=$(printf '%016x' $((total + 2)))
"$PS_LMDBPOKE" "$T/altered_last" audit flip "$last" 20
set +e
out=$("$POPSYNCD" audit verify --data "$T/altered_last"); rc=$?
set -e
expect_eq "$rc" 1 "altered last entry exit status"
grep -Eq "with another hash: one of entries [0-9]+ to $((total + 2)) \(the last write transaction\)" <<<"$out" ||
    fail "alteration of the last entry not found: $out"
# Swap entries 3 and 4.
"$PS_LMDBPOKE" "$T/swapped" audit swap 0000000000000003 0000000000000004
set +e
out=$("$POPSYNCD" audit verify --data "$T/swapped"); rc=$?
set -e
expect_eq "$rc" 1 "reordered log exit status"
grep -q "entry 4 is stored in place of entry 3" <<<"$out" || fail "reordering not found: $out"
# Remove entry 7 from the middle.
"$PS_LMDBPOKE" "$T/removed" audit delete 0000000000000007
set +e
out=$("$POPSYNCD" audit verify --data "$T/removed"); rc=$?
set -e
expect_eq "$rc" 1 "removed entry exit status"
grep -q "entry 7 missing" <<<"$out" || fail "removal not found: $out"
# Remove the newest entry: only the head can tell.
"$PS_LMDBPOKE" "$T/truncated" audit delete "$last"
set +e
out=$("$POPSYNCD" audit verify --data "$T/truncated"); rc=$?
set -e
expect_eq "$rc" 1 "truncated log exit status"
grep -q "head names entry $((total + 2))" <<<"$out" || fail "truncation not found: $out"
pass "audit chain verifies; altered, removed, swapped and truncated logs are detected"
