# The audit log chains every accepted change; `popsyncd audit verify` finds
# an altered entry and a removed one.
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
# Alter one byte inside entry 5.
"$PS_LMDBPOKE" "$T/altered" audit flip 0000000000000005 20
set +e
out=$("$POPSYNCD" audit verify --data "$T/altered"); rc=$?
set -e
expect_eq "$rc" 1 "altered log exit status"
grep -q "entry 6 does not follow from entry 5" <<<"$out" || fail "alteration not located: $out"
# Remove entry 7 from the middle.
"$PS_LMDBPOKE" "$T/removed" audit delete 0000000000000007
set +e
out=$("$POPSYNCD" audit verify --data "$T/removed"); rc=$?
set -e
expect_eq "$rc" 1 "removed entry exit status"
grep -q "entry 7 missing" <<<"$out" || fail "removal not found: $out"
# Remove the newest entry: only the head can tell.
last=$(printf '%016x' $((total + 2)))
"$PS_LMDBPOKE" "$T/truncated" audit delete "$last"
set +e
out=$("$POPSYNCD" audit verify --data "$T/truncated"); rc=$?
set -e
expect_eq "$rc" 1 "truncated log exit status"
grep -q "head names entry $((total + 2))" <<<"$out" || fail "truncation not found: $out"
pass "audit chain verifies; altered, removed and truncated logs are detected"
