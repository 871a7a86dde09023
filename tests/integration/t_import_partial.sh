# import_partial: a file with only some columns (id and phone) updates those
# fields of the records the cache holds and leaves every other field as it
# was (docs/data-model.md §8.3).  It used to clear them: a left-out column
# read as empty.  An empty cell in a column that is there still clears.
. "$(dirname "$0")/lib4.sh"
make_pki4
issue township $TA townA
start_server4
client admin admin
client ta townA

head_n() {
    sq admin status --all --json | python3 -c 'import json,sys; print(int(json.load(sys.stdin)["head"]))'
}

sq ta generate --persons 12 --seed 8 --orgunits "$ORGUNITS" >/dev/null || fail "generate"
psync ta
expect_eq "$(pending ta)" 0 "nothing pending after the first sync"
sq ta list --kind person --format json >"$T/before.json" || fail "list"
h0=$(head_n)

# Export, keep only id and phone, change the third person's phone.
sq ta export --kind person --format csv --out "$T/p.csv" || fail "export"
python3 - "$T/p.csv" "$T/p1.csv" >"$T/changed.id" <<'PY'
import csv, sys
text = open(sys.argv[1], encoding="utf-8", newline="").read()
bom = "\ufeff" if text.startswith("\ufeff") else ""
rows = list(csv.reader(text[len(bom):].splitlines(keepends=True)))
i, p = rows[0].index("id"), rows[0].index("phone")
rows = [[r[i], r[p]] for r in rows]
rows[3][1] = "13711112222" if rows[3][1] != "13711112222" else "13711113333"
out = open(sys.argv[2], "w", encoding="utf-8", newline="")
out.write(bom)
csv.writer(out, lineterminator="\r\n").writerows(rows)
out.close()
print(rows[3][0])
PY
changed=$(cat "$T/changed.id")
n=$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))))' "$T/before.json")
expect_eq "$(sq ta import "$T/p1.csv" --kind person)" "imported 1 of $n rows ($((n - 1)) unchanged, 0 rejected)" \
    "import of id and phone with one phone changed"
expect_eq "$(pending ta)" 1 "one change pending"

# Every record keeps every field but the one phone.
check_intact() { # $1: the changed id, $2: its new phone, $3: fields expected empty
    sq ta list --kind person --format json | python3 -c '
import json, sys
before = {r["id"]: r for r in json.load(open(sys.argv[1]))}
skip = {"rev", "updated_ms", "changed_by"}
emptied = set(sys.argv[4].split(",")) - {""}
after = json.load(sys.stdin)
assert len(after) == len(before), "record count changed"
for r in after:
    b = before[r["id"]]
    for k in set(b) | set(r):
        if k in skip:
            continue
        if r["id"] == sys.argv[2] and k == "phone":
            assert r[k] == sys.argv[3], "phone did not land"
        elif r["id"] == sys.argv[2] and k in emptied:
            assert not r.get(k), "%s was not cleared" % k
        else:
            assert b.get(k) == r.get(k), "%s of %s changed: %r -> %r" % (k, r["id"], b.get(k), r.get(k))
' "$T/before.json" "$1" "$2" "$3"
}
newphone=$(python3 -c 'import csv,sys; r=list(csv.reader(open(sys.argv[1],encoding="utf-8-sig"))); print(r[3][1])' "$T/p1.csv")
check_intact "$changed" "$newphone" "" || fail "fields left out of the file were changed"
psync ta
expect_eq "$(pending ta)" 0 "the one change was pushed"
expect_eq "$(head_n)" $((h0 + 1)) "the server's feed grew by one"
pass "CSV of id and phone: the other fields are intact, one change pushed"

# JSON with id and phone keys only: the same.
sq ta list --kind person --format json >"$T/before.json"
python3 - "$T/before.json" "$changed" >"$T/p2.json" <<'PY'
import json, sys
out = []
for r in json.load(open(sys.argv[1])):
    out.append({"id": r["id"], "phone": "13799990000" if r["id"] == sys.argv[2] else r.get("phone", "")})
print(json.dumps(out))
PY
expect_eq "$(sq ta import "$T/p2.json" --kind person)" "imported 1 of $n rows ($((n - 1)) unchanged, 0 rejected)" \
    "JSON import of id and phone"
check_intact "$changed" 13799990000 "" || fail "JSON: fields left out were changed"
pass "JSON of id and phone: the other fields are intact"

# A column that is there but empty still clears its field.
sq ta list --kind person --format json >"$T/before.json"
addr=$(field ta "$changed" 'r.get("address", "")')
[ -n "$addr" ] || fail "the generated person has no address to clear"
printf 'id,phone,address\r\n%s,13799990000,\r\n' "$changed" >"$T/p3.csv"
expect_eq "$(sq ta import "$T/p3.csv" --kind person)" "imported 1 of 1 rows (0 unchanged, 0 rejected)" \
    "import of an empty address cell"
check_intact "$changed" 13799990000 address || fail "an empty cell in a present column"
pass "an empty cell in a present column clears the field"
