# publish: `popsync publish` writes the district's public statistics site
# (issue 18 point 4): aggregate numbers only (no name or ID number of any
# generated person in any file), every cell under 5 shown as "<5", no row
# or column with exactly one hidden cell, shown numbers equal to the
# monthly report's, rates only with their numerator and denominator,
# Chart.js copied from Debian's libjs-chart.js, nothing loaded from
# elsewhere, files 0644; a township's cache is refused.
. "$(dirname "$0")/lib4.sh"
[ -r /usr/share/javascript/chart.js/chart.min.js ] || { echo "skip: libjs-chart.js is not installed"; exit 77; }
make_pki4
issue township $TA townA
issue township $TB townB
issue township $TC townC
start_server4
client admin admin
client ta townA
client tb townB
client tc townC
seed=11
for c in ta tb tc; do
    sq $c generate --persons 120 --seed $seed --orgunits "$ORGUNITS" >/dev/null || fail "generate in $c"
    seed=$((seed + 1))
    psync $c
done
psync admin

# The month with the most births, and more of them in townships A and B so
# that some cells pass 5 and a small one needs a complement: A gets 6 boys
# and 6 girls, B 7 boys and 1 girl (B's girls are under 5, so one more of
# B's birth cells, and one more township's girls, must be hidden).
M=$(sq admin query --kind birth --date-field birth_date --group-by month --format json |
    python3 -c 'import json,sys,time; r=[x for x in json.load(sys.stdin) if x["month"] < time.strftime("%Y-%m")]
print(max(r, key=lambda x: (x["count"], x["month"]))["month"])')
[ -n "$M" ] || fail "no month with births"
births() { # CACHE UNIT MOTHER_SEQ BOYS GIRLS
    local mom i sex
    mom=$(sq "$1" add person --set "id_number=$(idnum 1990-04-0$3 $3 female)" --set name=母亲$3 --set sex=female \
        --set birth_date=1990-04-0$3 --set orgunit="$2") || fail "mother in $1"
    for i in $(seq 1 $(($4 + $5))); do
        sex=male
        [ "$i" -le "$4" ] || sex=female
        sq "$1" add birth --set mother_id="$mom" --set child_sex=$sex --set birth_date="$M-1$((i % 9))" \
            --set birth_order=1 --set orgunit="$2" >/dev/null || fail "birth $i in $1"
    done
    psync "$1"
}
births ta $TA_V1 1 6 6
births tb $TB_V1 2 7 1
psync admin

# A township's cache may not publish the district.
out=$(sq ta publish --month "$M" --out "$T/site-ta" 2>&1) && fail "a township published: $out"
echo "$out" | grep -q "administrator" || fail "refusal does not say why: $out"
[ ! -e "$T/site-ta/index.html" ] || fail "the refused publish wrote a site"
pass "a township's cache is refused"

umask 077
sq admin publish --month "$M" --out "$T/site" >"$T/pub.out" || fail "publish: $(cat "$T/pub.out")"
for f in index.html site.css site.js data.js indicators.csv trend.csv chart.min.js; do
    [ -s "$T/site/$f" ] || fail "$f missing"
    [ "$(stat -c %a "$T/site/$f")" = 644 ] || fail "$f is mode $(stat -c %a "$T/site/$f"), not 644"
done
cmp -s "$T/site/chart.min.js" /usr/share/javascript/chart.js/chart.min.js || fail "chart.min.js is not Debian's copy"
grep -q '<script src="chart.min.js"></script>' "$T/site/index.html" || fail "index.html does not load chart.min.js"
grep -q "小数保护规则" "$T/site/index.html" && grep -q "&lt;5" "$T/site/index.html" || fail "the rule is not on the page"
grep -q 'lang="zh-CN"' "$T/site/index.html" || fail "not Chinese by default"
! grep -Eo '(src|href)="[^"]*"' "$T/site/index.html" | grep -Eq '"(https?:)?//' || fail "index.html loads something from elsewhere"
pass "the site's files are there, 0644, with Debian's Chart.js and the rule stated, in Chinese"

# No personal data: no name or ID number of any person in any file.
sq admin list --kind person --format json >"$T/persons.json" || fail "list persons"
python3 - "$T/persons.json" "$T/site" <<'PY' || fail "personal data in the site"
import json, os, sys
people = json.load(open(sys.argv[1]))
assert len(people) >= 300, len(people)
text = ""
for f in ("index.html", "data.js", "indicators.csv", "trend.csv"):
    raw = open(os.path.join(sys.argv[2], f), encoding="utf-8-sig").read()
    text += raw
    # data.js escapes non-ASCII as \uXXXX: read it back as JSON too
    if f == "data.js":
        text += json.dumps(json.loads(raw[raw.index("=") + 1:raw.rindex(";")]), ensure_ascii=False)
for p in people:
    for k in ("id_number", "name", "phone", "address"):
        v = p.get(k) or ""
        if len(v) >= 2 and v in text:
            sys.exit("%s %r of a person is in the site" % (k, v))
PY
pass "no name, ID number, phone or address of the $(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))))' "$T/persons.json") persons in the site"

# The numbers: against the monthly report.
sq admin report monthly --month "$M" --format json >"$T/report.json" || fail "report"
python3 - "$T/report.json" "$T/site/indicators.csv" <<'PY' || fail "published numbers"
import csv, json, sys
rep = {r["orgunit"]: r for r in json.load(open(sys.argv[1]))["rows"]}
rows = list(csv.DictReader(open(sys.argv[2], encoding="utf-8-sig")))
towns = [r for r in rows if r["orgunit"]]
assert len(towns) == len(rep) - 1 and rows[-1]["orgunit"] == "", (len(towns), len(rep))
counts = ["persons_total", "persons_new", "births_male", "births_female", "births_total", "inflow", "outflow",
          "migrations", "submitted", "feedback", "benefits_paid", "visits_prepregnancy_check",
          "visits_reproductive_check", "visits_followup", "visits_contraceptive_supplies", "visits_consultation",
          "visits_total"]
small = hidden2 = 0
for r in rows:
    want = rep[r["orgunit"]]
    for k in counts:
        v, cell = want[k], r[k]
        if v < 5:
            assert cell == "<5", (r["orgunit"], k, v, cell)   # every cell under 5: "<5"
            small += 1
        elif cell == "x":
            hidden2 += 1
        else:
            assert cell == str(v), (r["orgunit"], k, v, cell)  # shown: the report's number
    if r["benefits_paid"] in ("<5", "x"):
        assert r["benefits_paid_yuan"] == "", r
    else:
        assert r["benefits_paid_yuan"] == want["benefits_paid_yuan"], r
    for rate, parts in (("sex_ratio_at_birth", ["births_male", "births_female"]),
                        ("submission_rate_pct", ["submitted", "migrations"]),
                        ("feedback_rate_pct", ["feedback", "submitted"]),
                        ("followup_rate_pct", ["visits_followup", "visits_prepregnancy_check",
                                               "visits_reproductive_check"])):
        if r[rate]:
            assert all(r[p] not in ("<5", "x") for p in parts), (rate, r)
            assert abs(float(r[rate]) - want[rate]) < 0.051, (rate, r[rate], want[rate])
hid = lambda c: c in ("<5", "x")
# No line with exactly one hidden cell: within a row, and down each column.
lines = [["births_male", "births_female", "births_total"], ["inflow", "outflow", "migrations"],
         ["visits_prepregnancy_check", "visits_reproductive_check", "visits_followup",
          "visits_contraceptive_supplies", "visits_consultation", "visits_total"]]
for r in rows:
    for l in lines:
        assert sum(hid(r[k]) for k in l) != 1, (r["orgunit"], l, [r[k] for k in l])
    # submitted + not submitted = migrations: a shown pair leaves at least 5 out
    if not hid(r["submitted"]) and not hid(r["migrations"]):
        assert int(r["migrations"]) - int(r["submitted"]) >= 5, r
    if not hid(r["feedback"]) and not hid(r["submitted"]):
        assert int(r["submitted"]) - int(r["feedback"]) >= 5, r
for k in counts:
    assert sum(hid(r[k]) for r in rows) != 1, (k, [r[k] for r in rows])
assert small > 0 and hidden2 > 0, "no small or no complementary cell: the test proves nothing"
print("small cells %d, complementary %d" % (small, hidden2))
PY
pass "every cell under 5 is \"<5\", no line has a single hidden cell, shown numbers are the report's"

# The trend: 12 months, the last being M.
python3 - "$T/site/trend.csv" "$M" <<'PY' || fail "trend"
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1], encoding="utf-8-sig")))
assert len(rows) == 12 and rows[-1]["month"] == sys.argv[2], [r["month"] for r in rows]
for r in rows:
    for k, v in r.items():
        if k != "month" and v not in ("<5", "x"):
            assert int(v) >= 5, (r, k)
PY
pass "trend.csv has the 12 months up to $M, nothing under 5 shown"

# English on request.
sq admin publish --month "$M" --out "$T/site-en" --lang en >/dev/null || fail "publish --lang en"
grep -q 'lang="en"' "$T/site-en/index.html" && grep -q "How small numbers are protected" "$T/site-en/index.html" ||
    fail "English site"
sq admin publish --month 2025-13 --out "$T/x" 2>/dev/null && fail "a bad month was taken"
[ $? -eq 2 ] || fail "a bad month is not a usage error"
pass "--lang en writes the English site; a bad month is a usage error"
