# report: the monthly statistical report, the monthly close and the data
# quality report (issue 6), checked against a recount computed here in
# Python from the administrator's export (`popsync list --format json`),
# never with popsync's own report code.
#
# Demo tree (district 130203000000); three townships with generated data;
# an administrator, a viewer, a collector and the township identities.
. "$(dirname "$0")/lib4.sh"
make_pki4
TD=130203400000   # the steel group's enterprise unit: a fourth township with data
issue township $TA townA
issue township $TB townB
issue township $TC townC
issue township $TD townD
issue viewer $D4 viewer
issue collector $TA_V1 coll
start_server4
client admin admin
client ta townA
client tb townB
client tc townC
client td townD
client viewer viewer
client coll coll

PERSONS=${PS_REPORT_PERSONS:-1500}
seed=1
for c in ta tb tc td; do
    sq $c generate --persons "$PERSONS" --seed $seed --orgunits "$ORGUNITS" >/dev/null || fail "generate in $c"
    seed=$((seed + 1))
    psync $c
done
psync admin

# export NAME FILE: every live record NAME holds, as JSON.
export_json() {
    sq "$1" list --format json >"$2"
}

# The recount: expected monthly rows from an export, the tree and a month.
cat >"$T/recount.py" <<'PY'
"""Independent recount of the monthly report (docs/queries.md definitions)."""
import csv, datetime, json, sys

IND = ["persons_total", "persons_new", "births_male", "births_female", "births_total", "inflow", "outflow",
       "migrations", "submitted", "submitted_on_time", "feedback", "feedback_on_time", "benefits_paid",
       "benefits_paid_fen", "visits_prepregnancy_check", "visits_reproductive_check", "visits_followup",
       "visits_contraceptive_supplies", "visits_consultation", "visits_total"]

def tree(path):
    units = {}
    with open(path, encoding="utf-8-sig") as f:
        for row in csv.DictReader(f):
            units[row["code"]] = row
    return units

def township(units, code):
    u = units.get(code)
    while u and u["parent"] and units[u["parent"]]["parent"]:
        u = units[u["parent"]]
    return u["code"] if u and u["parent"] else None

def days(a, b):
    return (datetime.date.fromisoformat(b) - datetime.date.fromisoformat(a)).days

def recount(recs, units, month, dl_u=15, dl_n=30, only=None):
    towns = sorted(c for c, u in units.items() if u["parent"] and not units[u["parent"]]["parent"])
    if only:
        towns = [t for t in towns if t == only]
    rows = {t: dict.fromkeys(IND, 0) for t in towns}
    for r in recs:
        if r.get("deleted"):
            continue
        t = township(units, r["orgunit"])
        if t not in rows:
            continue
        v = rows[t]
        k = r["kind"]
        if k == "person":
            v["persons_total"] += 1
            cm = datetime.datetime.fromtimestamp(int(r["created_ms"]) / 1000, datetime.timezone.utc).strftime("%Y-%m")
            if cm == month:
                v["persons_new"] += 1
        elif k == "birth" and r["birth_date"][:7] == month:
            if r["child_sex"] in ("male", "female"):
                v["births_" + r["child_sex"]] += 1
            v["births_total"] += 1
        elif k == "migration" and r["start_date"][:7] == month:
            if r["direction"] in ("inflow", "outflow"):
                v[r["direction"]] += 1
            v["migrations"] += 1
            dl = dl_u if r["urgent"] else dl_n
            if r["submitted_date"]:
                v["submitted"] += 1
                if days(r["start_date"], r["submitted_date"]) <= dl:
                    v["submitted_on_time"] += 1
                if r["feedback_date"]:
                    v["feedback"] += 1
                    if days(r["submitted_date"], r["feedback_date"]) <= dl:
                        v["feedback_on_time"] += 1
        elif k == "benefit" and r["status"] == "paid" and r["paid_date"][:7] == month:
            v["benefits_paid"] += 1
            v["benefits_paid_fen"] += int(r["amount_fen"])
        elif k == "service_visit" and r["visit_date"][:7] == month and r["service"]:
            v["visits_" + r["service"]] += 1
            v["visits_total"] += 1
    total = {i: sum(rows[t][i] for t in towns) for i in IND}
    return [dict(orgunit=t, **rows[t]) for t in towns] + [dict(orgunit="", **total)]

def rates(v):
    def rate(n, d, s=100.0):
        return None if d <= 0 else n / d * s
    return {
        "sex_ratio_at_birth": rate(v["births_male"], v["births_female"]),
        "submission_rate_pct": rate(v["submitted"], v["migrations"]),
        "feedback_rate_pct": rate(v["feedback"], v["submitted"]),
        "submitted_on_time_pct": rate(v["submitted_on_time"], v["submitted"]),
        "feedback_on_time_pct": rate(v["feedback_on_time"], v["feedback"]),
        "followup_rate_pct": rate(v["visits_followup"],
                                  v["visits_prepregnancy_check"] + v["visits_reproductive_check"]),
        "benefits_paid_yuan": "%d.%02d" % divmod(v["benefits_paid_fen"], 100),
    }

def compare(want, got, what):
    """Every indicator and rate of every row; returns a list of differences."""
    bad = []
    gotrows = {r["orgunit"]: r for r in got["rows"]}
    if [r["orgunit"] for r in got["rows"]] != [r["orgunit"] for r in want]:
        bad.append("%s: rows %s, expected %s" % (what, [r["orgunit"] for r in got["rows"]],
                                                 [r["orgunit"] for r in want]))
    for w in want:
        g = gotrows.get(w["orgunit"])
        if g is None:
            continue
        for i in IND:
            # amounts of money are 64-bit values: decimal strings in JSON
            if g[i] != (str(w[i]) if i.endswith("_fen") else w[i]):
                bad.append("%s %s %s: report %s, recount %s" % (what, w["orgunit"] or "total", i, g[i], w[i]))
        for k, x in rates(w).items():
            y = g[k]
            if (x is None) != (y is None) or (isinstance(x, float) and abs(x - y) > 1e-6) or \
               (isinstance(x, str) and x != y):
                bad.append("%s %s %s: report %s, recount %s" % (what, w["orgunit"] or "total", k, y, x))
    return bad

if __name__ == "__main__":
    export, tree_csv, month, report = sys.argv[1:5]
    dl_u, dl_n = (int(sys.argv[5]), int(sys.argv[6])) if len(sys.argv) > 6 else (15, 30)
    only = sys.argv[7] if len(sys.argv) > 7 else None
    want = recount(json.load(open(export)), tree(tree_csv), month, dl_u, dl_n, only)
    got = json.load(open(report))
    bad = compare(want, got, month)
    for b in bad:
        print(b)
    sys.exit(1 if bad else 0)
PY

# check_monthly NAME MONTH [URGENT NORMAL [ONLY_TOWNSHIP]]: NAME's monthly
# report equals the recount of the admin's export.
check_monthly() {
    local name=$1 month=$2 u=${3:-} n=${4:-} only=${5:-}
    local args=()
    [ -n "$u" ] && args+=(--deadline-urgent "$u" --deadline-normal "$n")
    sq "$name" report monthly --month "$month" --format json "${args[@]}" >"$T/rep-$name.json" ||
        { soft_fail "$name: report monthly $month failed"; return; }
    python3 "$T/recount.py" "$T/admin.json" "$ORGUNITS" "$month" "$T/rep-$name.json" ${u:-15} ${n:-30} $only \
        >"$T/diff" || soft_fail "$name: monthly $month differs from the recount: $(head -5 "$T/diff" | tr '\n' ';')"
}

export_json admin "$T/admin.json"
# The month with the most births, and the month with the most migrations.
read -r M MIG <<<"$(python3 - "$T/admin.json" <<'PY'
import collections, json, sys
recs = json.load(open(sys.argv[1]))
b = collections.Counter(r["birth_date"][:7] for r in recs if r["kind"] == "birth")
m = collections.Counter(r["start_date"][:7] for r in recs if r["kind"] == "migration")
print(b.most_common(1)[0][0], m.most_common(1)[0][0])
PY
)"
echo "busiest birth month $M, busiest migration month $MIG"

# --- the monthly report equals the recount ------------------------------------
check_monthly admin "$M"
check_monthly admin "$MIG"
check_monthly admin "$MIG" 7 20
check_monthly admin "$(date -u +%Y-%m)"      # the current month: persons_new counts
python3 - "$T/rep-admin.json" <<'PY' || soft_fail "the current month shows no new registrations"
import json, sys
rows = json.load(open(sys.argv[1]))["rows"]
assert rows[-1]["orgunit"] == "" and rows[-1]["persons_new"] > 0, rows[-1]
PY
# Every month with any record, for all townships and the total.
for m in $(python3 -c '
import json, sys
recs = json.load(open(sys.argv[1]))
ms = set()
for r in recs:
    for f in ("birth_date", "start_date", "paid_date", "visit_date"):
        if r.get(f) and r["kind"] != "person":
            ms.add(r[f][:7])
print(" ".join(sorted(ms)))' "$T/admin.json"); do
    check_monthly admin "$m"
done
finish_soft
pass "monthly report: every indicator and rate of every township and the total equals the recount, every month"

# Formats and languages: the same numbers in CSV and in the tables.
sq admin report monthly --month "$M" --format csv >"$T/m.csv" || fail "csv"
python3 - "$T/m.csv" "$T/admin.json" "$ORGUNITS" "$M" "$T/recount.py" <<'PY' || fail "csv differs"
import csv, importlib.util, json, sys
spec = importlib.util.spec_from_file_location("rc", sys.argv[5]); rc = importlib.util.module_from_spec(spec)
spec.loader.exec_module(rc)
want = rc.recount(json.load(open(sys.argv[2])), rc.tree(sys.argv[3]), sys.argv[4])
rows = list(csv.DictReader(open(sys.argv[1], encoding="utf-8")))
assert [r["orgunit"] for r in rows] == [w["orgunit"] for w in want], rows
for r, w in zip(rows, want):
    for i in rc.IND:
        assert int(r[i]) == w[i], (i, r[i], w[i])
    for k, x in rc.rates(w).items():
        assert (r[k] == "") == (x is None), (k, r[k], x)
        if isinstance(x, float):
            assert abs(float(r[k]) - x) < 1e-3, (k, r[k], x)
PY
zh=$(sq admin report monthly --month "$M" --lang zh)
en=$(LANG=zh_CN.UTF-8 sq admin report monthly --month "$M" --lang en)
auto=$(LC_ALL= LANG=zh_CN.UTF-8 sq admin report monthly --month "$M")
grep -q "出生性别比" <<<"$zh" || fail "zh table labels"
grep -q "^ *合计" <<<"$zh" || fail "zh total row"
grep -q "Sex ratio" <<<"$en" || fail "en table labels"
grep -q "Total" <<<"$en" || fail "en total row"
[ "$auto" = "$zh" ] || fail "LANG=zh_CN gives the Chinese table by default"
c_out=$(LC_ALL=C LANG=zh_CN.UTF-8 sq admin report monthly --month "$M")
[ "$(head -1 <<<"$c_out")" = "$(head -1 <<<"$en")" ] ||
    fail "LC_ALL=C overrides LANG"
total_births=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["rows"][-1]["births_total"])' "$T/rep-admin.json")
pass "CSV carries the same numbers; zh/en labels, default language from LC_ALL/LANG"

# --- who sees what -------------------------------------------------------------
check_monthly ta "$M" "" "" $TA
sq ta report monthly --month "$M" --format json | python3 -c '
import json, sys
rows = json.load(sys.stdin)["rows"]
assert [r["orgunit"] for r in rows] == [sys.argv[1], ""], rows' $TA || soft_fail "township sees other townships"
check_monthly viewer "$M"
set +e
sq coll report monthly --month "$M" >/dev/null 2>"$T/err"; rc=$?
set -e
expect_soft "$rc" 1 "collector: report refused with exit 1"
grep -q "popsync: report monthly: server: .*collector" "$T/err" || soft_fail "collector refusal message: $(cat "$T/err")"
set +e
sq admin report monthly --month 2024-13 2>/dev/null; rc=$?
set -e
expect_soft "$rc" 2 "bad month is a usage error"
finish_soft
pass "a township sees only its own township, a viewer the district, a collector nothing"

# --- monthly close ----------------------------------------------------------------
close_state() { # NAME MONTH TOWNSHIP: the state `report status` shows
    sq "$1" report status --month "$2" --orgunit "$3" --format json |
        python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["state"] or "open")'
}
expect_eq "$(close_state admin "$M" $TA)" open "state before submitting"
sq ta report submit --month "$M" >/dev/null || fail "township submits its month"
expect_eq "$(close_state ta "$M" $TA)" submitted "state after submit"
set +e
sq ta report approve --month "$M" --orgunit $TA >/dev/null 2>"$T/err"; rc1=$?
sq ta report submit --month "$M" --orgunit $TB >/dev/null 2>&1; rc2=$?
sq admin report return --month "$M" --orgunit $TA >/dev/null 2>&1; rc3=$?
set -e
expect_eq "$rc1 $rc2 $rc3" "1 1 2" "township approves; township submits another; return without a note"
grep -q "server:" "$T/err" || fail "refused approve says why: $(cat "$T/err")"
sq admin report approve --month "$M" --orgunit $TA --note "checked" >/dev/null || fail "admin approves"
expect_eq "$(close_state viewer "$M" $TA)" approved "state after approve (seen by the viewer)"
sq admin report monthly --month "$M" --format json >"$T/before.json"
before=$(python3 -c 'import json,sys; r=[x for x in json.load(open(sys.argv[1]))["rows"] if x["orgunit"]==sys.argv[2]][0]; print(r["births_total"], r["births_male"], r["close_state"], json.dumps(r["corrections"]))' "$T/before.json" $TA)
read -r b_tot b_male b_state b_corr <<<"$before"
expect_eq "$b_state $b_corr" "approved {}" "approved, no corrections yet"

# A birth in the approved month, entered afterwards by the township.
mother=$(sq ta list --kind person --format json | python3 -c '
import json, sys
print([p["id"] for p in json.load(sys.stdin) if p["sex"] == "female" and p["birth_date"] < "2000"][0])')
sq ta add birth --set mother_id="$mother" --set child_sex=male --set birth_date="$M-15" --set birth_order=1 \
    --set place=钢城区妇幼保健院 >/dev/null || fail "add a late birth"
psync ta
sq admin report monthly --month "$M" --format json >"$T/after.json"
python3 - "$T/after.json" $TA "$b_tot" "$b_male" <<'PY' || fail "approved month frozen with corrections"
import json, sys
rows = {r["orgunit"]: r for r in json.load(open(sys.argv[1]))["rows"]}
t, tot, male = rows[sys.argv[2]], int(sys.argv[3]), int(sys.argv[4])
assert t["births_total"] == tot and t["births_male"] == male, ("frozen values changed", t)
assert t["corrections"] == {"births_male": 1, "births_total": 1}, t["corrections"]
assert rows[""]["corrections"].get("births_total") == 1, rows[""]["corrections"]
PY
zh=$(sq admin report monthly --month "$M" --lang zh)
en=$(sq admin report monthly --month "$M" --lang en)
grep -q "出生合计 +1" <<<"$zh" || fail "zh table lists the correction"
grep -q "Births +1" <<<"$en" || fail "en table lists the correction"
grep -q "approved" <<<"$en" || fail "en table shows the close state"
pass "an approved month is frozen: a late birth shows as a correction of +1, not as a silent change"

# The recount sees the new birth: the approved row plus its corrections is the recount.
psync admin
export_json admin "$T/admin.json"
python3 - "$T/after.json" "$T/admin.json" "$ORGUNITS" "$M" "$T/recount.py" <<'PY' || fail "frozen + corrections != recount"
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("rc", sys.argv[5]); rc = importlib.util.module_from_spec(spec)
spec.loader.exec_module(rc)
want = {w["orgunit"]: w for w in rc.recount(json.load(open(sys.argv[2])), rc.tree(sys.argv[3]), sys.argv[4])}
for r in json.load(open(sys.argv[1]))["rows"]:
    for i in rc.IND:
        # amounts (*_fen) are 64-bit values, written as decimal strings
        assert int(r[i]) + int(r["corrections"].get(i, 0)) == want[r["orgunit"]][i], (r["orgunit"], i)
PY

# Returned: the township fixes and resubmits; the report shows live numbers again.
sq admin report return --month "$M" --orgunit $TA --note "late birth: please resubmit" >/dev/null || fail "return"
expect_eq "$(close_state ta "$M" $TA)" returned "state after return"
sq ta report status --month "$M" --format json | python3 -c '
import json, sys
s = json.load(sys.stdin)
assert len(s) == 1 and s[0]["note"] == "late birth: please resubmit" and s[0]["by"] == "admin", s' ||
    fail "the township sees the note of the return"
check_monthly admin "$M"
sq ta report submit --month "$M" >/dev/null || fail "resubmit"
sq admin report approve --month "$M" --orgunit $TA >/dev/null || fail "approve again"
sq admin report monthly --month "$M" --format json | python3 -c '
import json, sys
r = [x for x in json.load(sys.stdin)["rows"] if x["orgunit"] == sys.argv[1]][0]
assert r["births_total"] == int(sys.argv[2]) + 1 and r["corrections"] == {} and r["close_state"] == "approved", r
' $TA "$b_tot" || fail "re-approved month holds the late birth, no corrections"
# Status of every township for the administrator.
sq admin report status --month "$M" --format json | python3 -c '
import json, sys
s = {x["orgunit"]: x["state"] for x in json.load(sys.stdin)}
assert len(s) == 9 and s[sys.argv[1]] == "approved" and s[sys.argv[2]] == "", s' $TA $TB || fail "admin status lists all townships"
grep -q "已批准" <<<"$(sq admin report status --month "$M" --lang zh)" || fail "zh status"
pass "monthly close: submit, approve, return with a note, resubmit; status for each township"

# --- data quality -------------------------------------------------------------------
# A duplicate ID number in two townships: each township's cache accepts it
# (neither sees the other's people), the server refuses the second
# (t_clerk_dups covers the index; duplicates stored before it are listed).
dup=$(idnum 1971-03-03 77 male)
p1=$(sq ta add person --set id_number="$dup" --set name=重复甲 --set sex=male --set birth_date=1971-03-03 --set orgunit=$TA_V1)
p2=$(sq tb add person --set id_number="$dup" --set name=重复乙 --set sex=male --set birth_date=1971-03-03 --set orgunit=$TB_V1)
# A migration submitted long ago with no feedback.
someone=$(sq tc list --kind person --format json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["id"])')
tcv=$(sq tc list --kind person --format json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["orgunit"])')
mig=$(sq tc add migration --set person_id="$someone" --set direction=outflow --set other_place_code=110105001000 \
    --set other_place=北京市朝阳区 --set start_date=2023-01-05 --set submitted_date=2023-01-10 --set orgunit="$tcv")
# A birth whose mother is then deleted.
mom=$(sq tb add person --set id_number="$(idnum 1990-05-05 12 female)" --set name=母亲 --set sex=female \
    --set birth_date=1990-05-05 --set orgunit=$TB_V1)
psync tb
kid=$(sq tb add birth --set mother_id="$mom" --set child_sex=female --set birth_date=2024-02-02 --set birth_order=1 \
    --set orgunit=$TB_V1)
psync ta
psync tb
psync tc
sq tb delete "$mom" --force >/dev/null || fail "delete the mother"
psync tb
psync admin
export_json admin "$T/admin.json"
sq admin report quality --format json >"$T/q.json" || fail "report quality"
python3 - "$T/q.json" "$T/admin.json" "$ORGUNITS" "$T/recount.py" "$p1" "$p2" "$mig" "$kid" $TA_V1 $TB_V1 "$tcv" <<'PY' ||
import collections, datetime, importlib.util, json, sys
spec = importlib.util.spec_from_file_location("rc", sys.argv[4]); rc = importlib.util.module_from_spec(spec)
spec.loader.exec_module(rc)
q = json.load(open(sys.argv[1]))
recs = json.load(open(sys.argv[2]))
units = rc.tree(sys.argv[3])
p1, p2, mig, kid, u1, u2, u3 = sys.argv[5:12]
got = collections.defaultdict(set)
for i in q["issues"]:
    got[i["check"]].add((i["record_id"], i["orgunit"]))
assert q["counts"]["duplicate_id_number"] == len(got["duplicate_id_number"]), q["counts"]
# Our cases, each with its check, record id and owning unit.  The server
# refused whichever of p1 and p2 reached it second.
assert len({p1, p2} & {r["id"] for r in json.load(open(sys.argv[2]))}) == 1, "both registrations stored"
assert (mig, u3) in got["feedback_overdue"], "overdue migration missing"
assert (kid, u2) in got["missing_mother"], "birth of the deleted mother missing"
# The whole of each check, recounted.
live = [r for r in recs if not r.get("deleted")]
persons = {r["id"]: r for r in live if r["kind"] == "person"}
by_idn = collections.defaultdict(list)
for p in persons.values():
    by_idn[p["id_number"]].append(p)
dups = {(p["id"], p["orgunit"]) for ps in by_idn.values()
        if len(ps) > 1 for p in ps}  # within one township too
assert got["duplicate_id_number"] == dups, (got["duplicate_id_number"] ^ dups)
mm = {(b["id"], b["orgunit"]) for b in live if b["kind"] == "birth" and b["mother_id"] not in persons}
assert got["missing_mother"] == mm, (got["missing_mother"] ^ mm)
today = datetime.date.today()
od = {(m["id"], m["orgunit"]) for m in live if m["kind"] == "migration" and m["submitted_date"] and
      not m["feedback_date"] and (today - datetime.date.fromisoformat(m["submitted_date"])).days > (15 if m["urgent"] else 30)}
assert got["feedback_overdue"] == od, ("overdue differs", sorted(got["feedback_overdue"] ^ od)[:5])
assert not got["invalid_id_number"] and not got["impossible_date"], (got["invalid_id_number"], got["impossible_date"])
print("ok: %d duplicate, %d missing mother, %d overdue" % (len(dups), len(mm), len(od)))
PY
    fail "quality report"
for lang in zh en; do
    sq admin report quality --lang $lang --details >"$T/q.$lang.txt" || fail "quality table $lang"
    grep -q "$kid" "$T/q.$lang.txt" || fail "quality table ($lang) lists the birth"
done
grep -q "出生记录的母亲不存在" "$T/q.zh.txt" || fail "zh check label"
grep -q "Birth whose mother is missing" "$T/q.en.txt" || fail "en check label"
grep -q "文化里社区" "$T/q.zh.txt" || fail "unit names from the tree"
sq admin report quality --format csv >"$T/q.csv" || fail "quality CSV"
grep -q '^"\?check"\?,' <<<"$(head -1 "$T/q.csv")" || fail "quality CSV header"
# A township sees the issues of its own township only, and the overdue
# feedback it owes as the other place of another township's migration.
sq ta list --kind migration --format json >"$T/ta-mig.json" || fail "ta migrations"
sq ta report quality --format json | python3 -c '
import json, sys
q = json.load(sys.stdin)
owed = {m["id"] for m in json.load(open(sys.argv[2])) if (m.get("other_place_code") or "").startswith(sys.argv[1][:9])}
assert q["issues"] and all(i["orgunit"].startswith(sys.argv[1][:9]) or
                           (i["check"] == "feedback_overdue" and i["record_id"] in owed) for i in q["issues"]), q["issues"][:3]' $TA "$T/ta-mig.json" ||
    fail "township quality report is its own"
# A viewer gets the same report (reports and counts, no listing); a collector none.
sq viewer report quality --format json >"$T/qv.json" || soft_fail "viewer: report quality failed"
python3 -c '
import json, sys
a, v = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
assert a["counts"] == v["counts"], (a["counts"], v["counts"])' "$T/q.json" "$T/qv.json" 2>"$T/err" ||
    soft_fail "viewer quality report differs from the admin one: $(tail -1 "$T/err")"
set +e
sq coll report quality >/dev/null 2>&1; rc=$?
set -e
expect_soft "$rc" 1 "collector: quality report refused"
finish_soft
pass "quality: duplicate ID number in two townships, overdue feedback and a missing mother, each with its record and unit"
stop_server
