# noop_edit: an edit or import that changes nothing writes nothing: no new
# revision, no outbox entry, no audit or feed entry on the server (issue 21
# point 7, docs/sync.md §4).  Export, change one cell, import: exactly one
# record changes and one change is pushed.  And on the server: a pushed
# change identical to the stored version (two caches made the same edit)
# creates no revision and no audit entry.
. "$(dirname "$0")/lib4.sh"
make_pki4
issue township $TA townA
issue township $TA townA2
start_server4
client admin admin
client ta townA
client ta2 townA2

audit_n() {
    "$POPSYNCD" audit verify --data "$T/server" | sed -nE 's/.*intact: ([0-9]+) entries.*/\1/p'
}
head_n() {
    sq admin status --all --json | python3 -c 'import json,sys; print(int(json.load(sys.stdin)["head"]))'
}

sq ta generate --persons 30 --seed 4 --orgunits "$ORGUNITS" >/dev/null || fail "generate"
psync ta
psync ta2
expect_eq "$(pending ta)" 0 "nothing pending after the first sync"
n=$(sq ta list --kind person --format json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')
a0=$(audit_n)
h0=$(head_n)
[ -n "$a0" ] && [ "$h0" -gt 0 ] || fail "no audit count ($a0) or head ($h0)"

# Export, change one cell (the phone of the fifth person), import.
sq ta export --kind person --format csv --out "$T/p.csv" || fail "export"
python3 - "$T/p.csv" "$T/p1.csv" >"$T/changed.id" <<'PY'
import csv, sys
text = open(sys.argv[1], encoding="utf-8", newline="").read()
bom = "\ufeff" if text.startswith("\ufeff") else ""
rows = list(csv.reader(text[len(bom):].splitlines(keepends=True)))
i = rows[0].index("phone")
rows[5][i] = "13711112222" if rows[5][i] != "13711112222" else "13711113333"
out = open(sys.argv[2], "w", encoding="utf-8", newline="")
out.write(bom)
csv.writer(out, lineterminator="\r\n").writerows(rows)
out.close()
print(rows[5][rows[0].index("id")])
PY
changed=$(cat "$T/changed.id")
sq ta show "$changed" --format json >"$T/before.json"
expect_eq "$(sq ta import "$T/p1.csv" --kind person)" "imported 1 of $n rows ($((n - 1)) unchanged, 0 rejected)" \
    "import of an export with one changed cell"
expect_eq "$(pending ta)" 1 "one change pending after the import"
# Only the changed record was touched: every other one keeps its revision
# and times.
sq ta list --kind person --format json | python3 -c '
import json, sys
before = json.load(open(sys.argv[1]))
for r in json.load(sys.stdin):
    if r["id"] == sys.argv[2]:
        assert r["phone"] != before["phone"], "the changed cell did not land"
' "$T/before.json" "$changed" || fail "the changed row"
sq ta export --kind person --format csv --out "$T/p2.csv"
cmp -s "$T/p1.csv" "$T/p2.csv" || fail "the cache does not hold what the file says"
psync ta
expect_eq "$(head_n)" $((h0 + 1)) "the server's feed grew by one"
expect_eq "$(audit_n)" $((a0 + 1)) "the server's audit log grew by one"
pass "export, change one cell, import: one record changes, one change is pushed, one audit entry"

# The same file again, as CSV and as JSON: nothing at all.
expect_eq "$(sq ta import "$T/p1.csv" --kind person)" "imported 0 of $n rows ($n unchanged, 0 rejected)" \
    "re-import of the same file"
sq ta export --kind person --format json --out "$T/p.json" || fail "export json"
expect_eq "$(sq ta import "$T/p.json" --kind person)" "imported 0 of $n rows ($n unchanged, 0 rejected)" \
    "import of an unchanged JSON export"
expect_eq "$(pending ta)" 0 "an unchanged import leaves nothing to push"

# An edit to the value the record already has.
phone=$(field ta "$changed" 'r["phone"]')
gen=$(field ta "$changed" 'r["rev"]["gen"]')
sq ta edit "$changed" --set "phone=$phone" 2>"$T/edit.err" || fail "a no-op edit failed"
grep -q "nothing changed" "$T/edit.err" || fail "a no-op edit does not say so: $(cat "$T/edit.err")"
expect_eq "$(pending ta)" 0 "a no-op edit leaves nothing to push"
expect_eq "$(field ta "$changed" 'r["rev"]["gen"]')" "$gen" "a no-op edit keeps the revision"
psync ta
expect_eq "$(head_n)" $((h0 + 1)) "no-op edits reach no feed"
expect_eq "$(audit_n)" $((a0 + 1)) "no-op edits reach no audit log"
pass "an unchanged import or a no-op edit writes nothing"

# Server side: two caches make the same edit offline.  The first is a new
# revision; the second changes nothing on the server: accepted, no revision,
# no feed entry, no audit entry, no conflict, and both caches agree.
psync ta2
p=$(sq ta list --kind person --format json | python3 -c 'import json,sys; print(json.load(sys.stdin)[2]["id"])')
sq ta edit "$p" --set address=同一个地址 || fail "edit in ta"
sq ta2 edit "$p" --set address=同一个地址 || fail "edit in ta2"
psync ta
h1=$(head_n)
a1=$(audit_n)
out=$(sq ta2 sync --json) || fail "sync of the second, identical edit: $out"
python3 -c 'import json,sys; s=json.loads(sys.argv[1]); assert s["accepted"] == 1 and s["conflicts"] == 0 and s["rejected"] == 0, s' "$out" ||
    fail "the identical edit was not simply accepted: $out"
expect_eq "$(head_n)" "$h1" "an identical pushed change adds no feed entry"
expect_eq "$(audit_n)" "$a1" "an identical pushed change adds no audit entry"
expect_eq "$(conflict_of admin "$p" --all)" "" "no conflict for an identical edit"
psync ta
expect_eq "$(field ta2 "$p" 'r["address"], r["rev"]["gen"], r["rev"]["hlc"]')" \
    "$(field ta "$p" 'r["address"], r["rev"]["gen"], r["rev"]["hlc"]')" "both caches hold the same revision"
expect_eq "$(pending ta2)" 0 "nothing left to push"
pass "a pushed change identical to the stored version makes no revision and no audit entry"
