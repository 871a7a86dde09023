# query: `popsync query` against a real popsyncd (issue 6): group counts and
# sums, filters, date ranges, org-unit subtrees, list paging, output
# formats, and who may do what.  Every answer is checked against a recount
# in Python of the administrator's export (`popsync list --format json`).
. "$(dirname "$0")/lib4.sh"
make_pki4
issue township $TA townA
issue township $TB townB
issue township $TC townC
issue viewer $D4 viewer
issue collector $TA_V1 coll
start_server4
client admin admin
client ta townA
client tb townB
client tc townC
client viewer viewer
client coll coll

PERSONS=${PS_QUERY_PERSONS:-800}
seed=21
for c in ta tb tc; do
    sq $c generate --persons "$PERSONS" --seed $seed --orgunits "$ORGUNITS" >/dev/null || fail "generate in $c"
    seed=$((seed + 1))
    psync $c
done
# One deleted record, for --deleted.
gone=$(sq ta list --kind service_visit --format json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["id"])')
sq ta delete "$gone" >/dev/null
psync ta
psync admin
sq admin list --format json --deleted >"$T/all.json"

# recount KIND ARGS: the expected answer of a query, computed from the
# export.  ARGS (JSON): {"orgunit", "date_field", "from", "to", "where": {},
# "group": [], "sum", "deleted"}; prints rows as `query --format json` does,
# or the sorted ids for "list".
cat >"$T/recount.py" <<'PY'
import csv, collections, json, sys
recs = json.load(open(sys.argv[1]))
units = {r["code"]: r for r in csv.DictReader(open(sys.argv[2], encoding="utf-8-sig"))}
kind, a = sys.argv[3], json.loads(sys.argv[4])
def within(u, root):
    while u:
        if u == root:
            return True
        u = units[u]["parent"] if u in units else ""
    return False
def township(u):
    while u in units and units[u]["parent"] and units[units[u]["parent"]]["parent"]:
        u = units[u]["parent"]
    return u if u in units and units[u]["parent"] else ""
def text(r, f):
    v = r[f]
    return ("true" if v else "false") if isinstance(v, bool) else str(v)
out = collections.defaultdict(lambda: [0, 0])
ids = []
for r in recs:
    if r["kind"] != kind or (r.get("deleted") and not a.get("deleted")):
        continue
    if a.get("orgunit") and not within(r["orgunit"], a["orgunit"]):
        continue
    if a.get("date_field"):
        d = r[a["date_field"]]
        if (a.get("from") or a.get("to")) and not d:
            continue
        if (a.get("from") and d < a["from"]) or (a.get("to") and d > a["to"]):
            continue
    if any(text(r, f) != v for f, v in a.get("where", {}).items()):
        continue
    ids.append(r["id"])
    key = []
    for g in a.get("group", []):
        if g == "unit":
            key.append(r["orgunit"])
        elif g == "township":
            key.append(township(r["orgunit"]))
        elif g == "month":
            key.append(r[a["date_field"]][:7])
        elif g == "kind":
            key.append(r["kind"])
        else:
            key.append(text(r, g))
    out[tuple(key)][0] += 1
    if a.get("sum"):
        out[tuple(key)][1] += int(r[a["sum"]])
if a.get("list"):
    print(json.dumps(sorted(ids)))
else:
    rows = []
    for k in sorted(out):
        row = dict(zip(a.get("group", []), k))
        row["count"] = out[k][0]
        if a.get("sum"):
            row["sum"] = str(out[k][1])  # 64-bit: a decimal string
        rows.append(row)
    print(json.dumps(rows, ensure_ascii=False, sort_keys=True))
PY
recount() {
    python3 "$T/recount.py" "$T/all.json" "$ORGUNITS" "$1" "$2"
}
# norm: a query's JSON answer in the recount's form.
norm() {
    python3 -c '
import json, sys
d = json.load(sys.stdin)
if sys.argv[1] == "list":
    print(json.dumps(sorted(r["id"] for r in d)))
else:
    print(json.dumps(d, ensure_ascii=False, sort_keys=True))' "${1:-}"
}

# check WHO KIND ARGS_JSON -- QUERY OPTIONS: NAME's query equals the recount.
check() {
    local who=$1 kind=$2 args=$3 what=$4
    shift 5
    local got want
    got=$(sq "$who" query --kind "$kind" --format json "$@" | norm) || { soft_fail "$what: query failed"; return; }
    want=$(recount "$kind" "$args")
    [ "$got" = "$want" ] || soft_fail "$what: got $(echo "$got" | head -c 400) expected $(echo "$want" | head -c 400)"
}

# --- group counts and sums ------------------------------------------------------
check admin person '{"group":["township","sex"]}' "persons by township and sex" -- --group-by township,sex
check admin person '{"group":["unit"]}' "persons by unit" -- --group-by unit
check admin person '{"group":[]}' "persons, no grouping" --
check admin person '{"orgunit":"'$TA_V1'","group":["registration","marital_status"]}' "a community subtree" -- \
    --orgunit $TA_V1 --group-by registration,marital_status
check admin birth '{"date_field":"birth_date","from":"2024-03-01","to":"2025-02-28","group":["month","child_sex"]}' \
    "births by month and sex in a date range" -- --date-field birth_date --from 2024-03-01 --to 2025-02-28 \
    --group-by month,child_sex
check admin benefit '{"where":{"status":"paid"},"group":["township","scheme"],"sum":"amount_fen"}' \
    "paid benefits by township and scheme, summed" -- --where status=paid --group-by township,scheme --sum amount_fen
check admin service_visit '{"group":["service"],"where":{"outcome":""}}' "visits with no outcome, by service" -- \
    --group-by service --where outcome=
check admin migration '{"where":{"direction":"outflow","urgent":"true"},"group":["township"]}' \
    "urgent outflows by township" -- --where direction=outflow --where urgent=true --group-by township
check admin service_visit '{"group":["kind"],"deleted":true}' "with --deleted" -- --group-by kind --deleted
check admin service_visit '{"group":["kind"]}' "without --deleted" -- --group-by kind
check ta person '{"orgunit":"'$TA'","group":["township","sex"]}' "a township sees its own township" -- \
    --group-by township,sex
finish_soft
pass "group counts and sums equal the recount (township, unit, month, field groups; filters; date ranges; subtrees)"

# --- list mode and paging -----------------------------------------------------------
want=$(recount person '{"orgunit":"'$TA'","where":{"sex":"female"},"list":true}')
n=$(echo "$want" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')
[ "$n" -gt 120 ] || fail "too few women in township A for a paging test ($n)"
got=$(sq admin query --kind person --orgunit $TA --where sex=female --list --page-size 50 --format json | norm list)
[ "$got" = "$want" ] || fail "list in pages of 50: not the recount's $n records"
got=$(sq admin query --kind person --orgunit $TA --where sex=female --list --format json | norm list)
[ "$got" = "$want" ] || fail "list in one page"
# Exactly one page's worth, and a page of 1.
got=$(sq admin query --kind person --orgunit $TA_V2 --list --page-size 1 --format json | norm list)
[ "$got" = "$(recount person '{"orgunit":"'$TA_V2'","list":true}')" ] || fail "pages of one record"
# CSV: a header and one row per record; table: a header row and one line per record.
rows=$(sq admin query --kind person --orgunit $TA --where sex=female --list --page-size 37 --format csv | python3 -c '
import csv, sys
r = list(csv.reader(sys.stdin))
assert r[0][:3] == ["id", "orgunit", "id_number"], r[0]
print(len(r) - 1)')
expect_eq "$rows" "$n" "CSV rows"
lines=$(sq admin query --kind person --orgunit $TA --where sex=female --list --page-size 37 | wc -l)
expect_eq "$lines" "$((n + 1))" "table lines"
# --limit caps the rows printed (the first ones, in id order), whatever the page size.
got=$(sq admin query --kind person --orgunit $TA --where sex=female --list --limit 3 --format json | norm list)
want3=$(python3 -c 'import json,sys; print(json.dumps(sorted(json.loads(sys.argv[1]))[:3]))' "$want")
[ "$got" = "$want3" ] || fail "--limit 3 prints the first 3 records"
expect_eq "$(sq admin query --kind person --orgunit $TA --where sex=female --list --limit 3 --page-size 2 | wc -l)" 4 "--limit 3 over pages of 2: header and 3 rows"
# The deleted record shows with --deleted only.
sq admin query --kind service_visit --list --deleted --format json >"$T/with.json"
sq admin query --kind service_visit --list --format json >"$T/without.json"
grep -q "$gone" "$T/with.json" || fail "--deleted lists tombstones"
grep -q "$gone" "$T/without.json" && fail "tombstone listed without --deleted"
pass "list mode: pages of 50, 1 and the default give the recount's records; CSV and table; --deleted"

# --- formats --------------------------------------------------------------------------
sq admin query --kind person --group-by township,sex --format csv >"$T/g.csv"
python3 - "$T/g.csv" "$(recount person '{"group":["township","sex"]}')" <<'PY' || fail "group CSV"
import csv, json, sys
rows = list(csv.DictReader(open(sys.argv[1], encoding="utf-8")))
want = json.loads(sys.argv[2])
assert [(r["township"], r["sex"], int(r["count"])) for r in rows] == \
       [(w["township"], w["sex"], w["count"]) for w in want], rows
PY
table=$(sq admin query --kind person --group-by township --lang zh)
grep -q "建设路街道" <<<"$table" || fail "table names the townships"
grep -q "合计 .* $((PERSONS * 3))\$" <<<"$(tail -1 <<<"$table")" || fail "table total row: $(echo "$table" | tail -1)"
pass "CSV with a header row; aligned table with unit names and a total"

# --- who may query ------------------------------------------------------------------------
set +e
sq viewer query --kind person --list >/dev/null 2>"$T/err"; rc=$?
set -e
expect_soft "$rc" 1 "viewer --list exit code"
grep -q "^popsync: query: server: role viewer may not list records" "$T/err" || soft_fail "viewer refusal: $(cat "$T/err")"
check viewer person '{"group":["township","sex"]}' "viewer: counts by township and sex" -- --group-by township,sex
set +e
sq coll query --kind person --group-by sex >/dev/null 2>"$T/err"; rc=$?
set -e
expect_soft "$rc" 1 "collector query exit code"
grep -q "^popsync: query: server: role collector may not" "$T/err" || soft_fail "collector refusal: $(cat "$T/err")"
set +e
sq admin query --kind person --where nosuch=1 >/dev/null 2>"$T/err"; rc1=$?
sq admin query --group-by sex >/dev/null 2>&1; rc2=$?
sq admin query --kind person --list --group-by sex >/dev/null 2>&1; rc3=$?
sq admin query --kind person --from 2020-01-01 >/dev/null 2>&1; rc4=$?
set -e
expect_soft "$rc1 $rc2 $rc3 $rc4" "1 2 2 2" "unknown field (server); no kind, --list with --group-by, --from alone (usage)"
grep -q "server: .*nosuch" "$T/err" || soft_fail "unknown field message: $(cat "$T/err")"
finish_soft
pass "viewer: counts but no listing; collector refused; bad queries refused with the reason"
stop_server
