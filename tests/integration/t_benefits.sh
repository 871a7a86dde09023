# Benefit entitlement (issue 20 points 2-4) against an independent recount:
# a generated district of known families (only children, two daughters, two
# sons, a deceased and a disabled only child, rural and urban registration,
# parents crossing the age thresholds in the middle of a year, first births,
# a family giving up a further birth) is imported by two townships and
# synced through a real popsyncd; tests/tools/benefit_recount.py, written
# from docs/benefits.md and the scheme table alone, computes what each
# person is entitled to, period by period, and what each family is owed;
# popsync's `benefits due` and `benefits arrears` must agree.  Then a
# payment batch clears the arrears in one step, a second payment of it is
# refused, a payment to someone not entitled is flagged (refused with
# --strict), and the monthly and quality reports show the figures.
. "$(dirname "$0")/lib.sh"
RECOUNT="$(dirname "$0")/../tools/benefit_recount.py"
make_pki
start_server
client t1 town1
client t2 town2
client admin admin
sync_ok() { ps --data "$T/$1" sync --quiet >/dev/null 2>"$T/$1.sync.err" || fail "$1 sync: $(cat "$T/$1.sync.err")"; }

python3 "$RECOUNT" generate "$T/d" || fail "generate the district"
for t in t1 t2; do
    ps --data "$T/$t" import "$T/d/households_$t.csv" --kind household >/dev/null || fail "$t households"
    ps --data "$T/$t" import "$T/d/persons_$t.csv" --kind person >"$T/imp" 2>&1 || fail "$t persons: $(cat "$T/imp")"
    ps --data "$T/$t" import "$T/d/births_$t.csv" --kind birth >"$T/imp" 2>&1 || fail "$t births: $(cat "$T/imp")"
    sync_ok $t
done
sync_ok admin
ps --data "$T/admin" benefits schemes >"$T/schemes.json" || fail "benefits schemes"
python3 -c 'import json,sys; s=json.load(open(sys.argv[1])); assert len(s["schemes"]) == 5' "$T/schemes.json" \
    || fail "the five schemes ship"

# --- entitlements, period by period -----------------------------------------------------
due() {  # due PERIOD -> "person scheme period entitled" lines, paid or not
    ps --data "$T/admin" benefits due --period "$1" --all --json \
        | python3 -c 'import json,sys; [print(e["person_id"], e["scheme"], e["period"], e["entitled_fen"]) for e in json.load(sys.stdin)]' | sort
}
for y in 2019 2020 2021 2022 2023 2024 2025; do
    due $y >"$T/got.$y"
    python3 "$RECOUNT" entitled "$T/schemes.json" "$T/d/district.json" ${y}0101 ${y}1231 | sort >"$T/want.$y"
    diff "$T/want.$y" "$T/got.$y" >"$T/diff" || fail "entitlements of $y differ from the recount (< recount, > popsync): $(cat "$T/diff")"
done
n=$(cat "$T"/want.20* | wc -l)
[ "$n" -gt 100 ] || fail "the district has only $n entitlements"
# The thresholds: 甲's father turns 60 in 2021, the mother in 2022 (rural reward from that year).
for s in rural_reward special_support only_child_reward first_birth_subsidy give_up_birth_reward; do
    grep -q " $s " "$T"/got.20* || fail "no $s entitlement in the district"
done
# A month: the special support of 戊 (only child deceased) starts the month its mother turns 49.
due 2024-05 | grep -c " special_support 2024-05 72000" | grep -qx 0 || fail "戊: no special support before 49"
due 2024-06 | grep -c " special_support 2024-06 72000" | grep -qx 2 || fail "戊: both parents from June 2024"
pass "entitlements of 2019-2025 equal the independent recount ($n)"

# --- payments already made, arrears ----------------------------------------------------
mom=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(next(p["id"] for p in d["persons"] if p["name"]=="甲父"))' "$T/d/district.json")
bing=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(next(p["id"] for p in d["persons"] if p["name"]=="丙母"))' "$T/d/district.json")
ps --data "$T/admin" add benefit --set person_id="$mom" --set scheme=rural_reward --set period=2021 --set amount=960.00 \
    --set status=paid --set paid_date=2022-01-10 --set orgunit="$TOWN1" >/dev/null || fail "a payment"
ps --data "$T/admin" add benefit --set person_id="$bing" --set scheme=rural_reward --set period=2023 --set amount=960.00 \
    --set status=paid --set paid_date=2024-01-10 --set orgunit="$TOWN1" >/dev/null || fail "a payment to the non-entitled"
sync_ok admin
cat >"$T/paid.json" <<JSON
[{"person_id": "$mom", "scheme": "rural_reward", "period": "2021", "amount_fen": 96000},
 {"person_id": "$bing", "scheme": "rural_reward", "period": "2023", "amount_fen": 96000}]
JSON
ps --data "$T/admin" benefits arrears --since 2020 --as-of 2026-07-01 --json \
    | python3 -c 'import json,sys; [print(f["family_id"], f["owed_fen"]) for f in json.load(sys.stdin)]' | sort >"$T/got.arrears"
python3 "$RECOUNT" owed "$T/schemes.json" "$T/d/district.json" "$T/paid.json" 20200101 20260630 | sort >"$T/want.arrears"
diff "$T/want.arrears" "$T/got.arrears" >"$T/diff" || fail "arrears per family differ from the recount: $(cat "$T/diff")"
[ "$(wc -l <"$T/want.arrears")" -ge 6 ] || fail "few families owed: $(cat "$T/want.arrears")"
pass "arrears per family since 2020 equal the recount"

# --- the monthly and quality reports ----------------------------------------------------
ps --data "$T/admin" report monthly --month 2024-06 >"$T/m.txt" || fail "report monthly"
grep -q "^Benefits" "$T/m.txt" || fail "monthly report: benefits panel: $(cat "$T/m.txt")"
# June 2024 in town 2: 戊 1440 (both parents) + 己 590 = 2030.00 entitled, none paid
grep -qE "^  $TOWN2 +2030\.00 +0\.00 +2030\.00 " "$T/m.txt" || fail "town2 June 2024: $(grep "$TOWN2" "$T/m.txt")"
ps --data "$T/admin" report monthly --month 2024-06 --lang zh | grep -q "奖励扶助" || fail "monthly report (zh)"
ps --data "$T/admin" report quality >"$T/q.txt" || fail "report quality"
grep -A1 "paid_not_entitled .* rural_reward 2023" "$T/q.txt" | grep -q "person $bing" || fail "quality: the payment to 丙母 flagged: $(cat "$T/q.txt")"

# --- a payment batch clears the arrears ---------------------------------------------------
ps --data "$T/admin" benefits batch --arrears --since 2024 --as-of 2026-07-01 --out "$T/b.xlsx" >"$T/b.out" \
    || fail "batch: $(cat "$T/b.out")"
expect_eq "$(stat -c %a "$T/b.xlsx")" 600 "the batch is its owner's alone"
before=$(ps --data "$T/admin" benefits arrears --since 2024 --as-of 2026-07-01 --json | python3 -c 'import json,sys; print(sum(f["owed_fen"] for f in json.load(sys.stdin)))')
[ "$before" -gt 0 ] || fail "nothing owed before the batch"
grep -q "$(python3 -c "print('%d.%02d' % divmod($before, 100))") yuan" "$T/b.out" || fail "batch total: $(cat "$T/b.out") vs $before"
ps --data "$T/admin" benefits pay --batch "$T/b.xlsx" --paid-date 2026-07-05 >"$T/pay.out" 2>&1 || fail "pay: $(cat "$T/pay.out")"
after=$(ps --data "$T/admin" benefits arrears --since 2024 --as-of 2026-07-01 --json | python3 -c 'import json,sys; print(sum(f["owed_fen"] for f in json.load(sys.stdin)))')
expect_eq "$after" 0 "arrears cleared by the batch"
rc=0; ps --data "$T/admin" benefits pay --batch "$T/b.xlsx" >"$T/again" 2>&1 || rc=$?
expect_eq "$rc" 4 "paying a batch twice is refused"
grep -q "double payment" "$T/again" || fail "says double payment: $(cat "$T/again")"
sync_ok admin
ps --data "$T/admin" list --kind benefit --format json | python3 -c '
import json,sys; b=[r for r in json.load(sys.stdin) if r["batch"]]
assert b and all(r["status"] == "paid" and r["paid_date"] == "2026-07-05" for r in b), b' || fail "payments linked to the batch"

# --- a row not entitled: flagged, refused with --strict ------------------------------------
python3 - "$T/b.xlsx" "$T/bad.xlsx" "$bing" <<'PY' || fail "make a batch row for the non-entitled"
import re, sys, zipfile
from xml.sax.saxutils import escape
z = zipfile.ZipFile(sys.argv[1])
from xml.sax.saxutils import unescape
rows = []  # libxlsxwriter writes every cell of a batch as an inline string
for row in re.findall(r"<row[^>]*>(.*?)</row>", z.read("xl/worksheets/sheet1.xml").decode()):
    rows.append([unescape(v) for v in re.findall(r"<t[^>]*>(.*?)</t>", row)])
head, first = rows[0], rows[1]
bad = list(first)
bad[head.index("领取人记录(person_id)")] = sys.argv[3]
bad[head.index("项目(scheme)")] = "rural_reward"
bad[head.index("所属期(period)")] = "2024"
bad[head.index("金额(元)(amount)")] = "960.00"
def cell(c, r, v):
    return '<c r="%s%d" t="inlineStr"><is><t>%s</t></is></c>' % ("ABCDEFGHIJ"[c], r, escape(v))
sheet = "".join('<row r="%d">%s</row>' % (r + 1, "".join(cell(c, r + 1, v) for c, v in enumerate(vals)))
                for r, vals in enumerate([head, bad]))
with zipfile.ZipFile(sys.argv[2], "w") as o:
    o.writestr("[Content_Types].xml", '<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"/>')
    o.writestr("xl/worksheets/sheet1.xml", '<?xml version="1.0"?><worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>%s</sheetData></worksheet>' % sheet)
PY
rc=0; ps --data "$T/admin" benefits pay --batch "$T/bad.xlsx" --strict >"$T/strict" 2>&1 || rc=$?
expect_eq "$rc" 4 "--strict refuses a payment to the non-entitled"
grep -q "not entitled" "$T/strict" || fail "says not entitled: $(cat "$T/strict")"
ps --data "$T/admin" benefits pay --batch "$T/bad.xlsx" >"$T/loose" 2>&1 || fail "without --strict it is recorded: $(cat "$T/loose")"
grep -q "flagged" "$T/loose" || fail "and flagged: $(cat "$T/loose")"
ps --data "$T/admin" report quality | grep -A1 "paid_not_entitled .* rural_reward 2024" | grep -q "person $bing" || fail "quality flags the 2024 payment"
pass "a payment batch clears the arrears in one step; double payments refused; the non-entitled flagged, refused with --strict"
