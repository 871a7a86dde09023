# report_layout: `report monthly` and `report quality` fit a terminal of 100
# columns (issue 16 point 8; CJK characters count 2), the quality report is
# summarised by check and township (record ids only with --details or in
# JSON) and is all Chinese with --lang zh, and both reports write .xlsx
# workbooks (mode 0600) holding the same numbers as the JSON.
. "$(dirname "$0")/lib4.sh"
make_pki4
issue township $TA townA
issue township $TB townB
issue township $TC townC
start_server4
client admin admin
client ta townA
client tb townB
client tc townC

seed=3
for c in ta tb tc; do
    sq $c generate --persons 150 --seed $seed --orgunits "$ORGUNITS" >/dev/null || fail "generate in $c"
    seed=$((seed + 1))
done
# Issues of three checks: a duplicate ID number in two townships, an
# overdue migration, a birth whose mother is deleted.
dup=$(idnum 1971-03-03 77 male)
sq ta add person --set id_number="$dup" --set name=重复甲 --set sex=male --set birth_date=1971-03-03 \
    --set orgunit=$TA_V1 >/dev/null || fail "dup A"
# The server keeps one live person per ID number (server/store_idnum.c):
# a pair like this one can only come from a store written before that
# index.  Empty the index (as t_clerk_dups.sh does) so tb's copy goes in.
psync ta
stop_server
"$PS_LMDBPOKE" "$T/server" idnum drop >/dev/null || fail "empty the ID-number index"
start_server4
for c in admin ta tb tc; do sq $c config set server "127.0.0.1:$PORT" >/dev/null || fail "config $c"; done
sq tb add person --set id_number="$dup" --set name=重复乙 --set sex=male --set birth_date=1971-03-03 \
    --set orgunit=$TB_V1 >/dev/null || fail "dup B"
someone=$(sq tc list --kind person --format json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["id"])')
sq tc add migration --set person_id="$someone" --set direction=outflow --set other_place_code=110105001000 \
    --set other_place=北京市朝阳区 --set start_date=2023-01-05 --set submitted_date=2023-01-10 \
    --set orgunit=$TC >/dev/null || fail "migration"
mom=$(sq tb add person --set id_number="$(idnum 1990-05-05 12 female)" --set name=母亲 --set sex=female \
    --set birth_date=1990-05-05 --set orgunit=$TB_V1)
psync tb
sq tb add birth --set mother_id="$mom" --set child_sex=female --set birth_date=2024-02-02 --set birth_order=1 \
    --set orgunit=$TB_V1 >/dev/null || fail "birth"
for c in ta tb tc; do psync $c; done
sq tb delete "$mom" --force >/dev/null || fail "delete the mother"
psync tb
psync admin
M=$(date -u +%Y-%m)

# widest FILE: the widest line of FILE in display columns (East Asian wide
# and full-width characters count 2).
cat >"$T/width.py" <<'PY'
import sys, unicodedata
w = 0
for line in open(sys.argv[1], encoding="utf-8"):
    w = max(w, sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in line.rstrip("\n")))
print(w)
PY
for lang in en zh; do
    sq admin report monthly --month "$M" --lang $lang >"$T/m.$lang.txt" || fail "monthly $lang"
    sq admin report quality --lang $lang >"$T/q.$lang.txt" || fail "quality $lang"
    sq admin report quality --lang $lang --details >"$T/qd.$lang.txt" || fail "quality --details $lang"
    for f in m q qd; do
        w=$(python3 "$T/width.py" "$T/$f.$lang.txt")
        [ "$w" -le 100 ] || fail "$f.$lang is $w columns wide: $(cat "$T/$f.$lang.txt")"
    done
done
grep -q "登记人口" "$T/m.zh.txt" && grep -q "Follow-up rate" "$T/m.en.txt" || fail "the monthly panels lost columns"
pass "monthly and quality tables are at most 100 columns wide, in English and in Chinese"

# The summary: counts per check and township; the ids only with --details.
sq admin report quality --format json --lang en >"$T/q.json" || fail "quality json"
python3 - "$T/q.json" "$T/q.en.txt" "$T/qd.en.txt" "$T/q.zh.txt" "$ORGUNITS" <<'PY' || fail "quality summary"
import collections, csv, json, re, sys
q = json.load(open(sys.argv[1]))
units = {r["code"]: r for r in csv.DictReader(open(sys.argv[5], encoding="utf-8-sig"))}
def township(code):
    u = units.get(code)
    while u and u["parent"] and units[u["parent"]]["parent"]:
        u = units[u["parent"]]
    return u["code"] if u else code
want = collections.Counter((i["check"], township(i["orgunit"])) for i in q["issues"])
got = collections.Counter({(s["check"], s["township"]): s["count"] for s in q["summary"]})
assert want == got, (want, got)
for s in q["summary"]:
    assert s["township_name"] == units[s["township"]]["name"], s
for ck, n in q["counts"].items():
    assert n == sum(c for (k, _), c in got.items() if k == ck), ck
assert {"duplicate_id_number", "missing_mother", "feedback_overdue"} <= {k for k, _ in got}, got
plain, det, zh = open(sys.argv[2]).read(), open(sys.argv[3]).read(), open(sys.argv[4]).read()
ids = {i["record_id"] for i in q["issues"]}
assert not any(i in plain for i in ids), "record ids in the summary"
assert all(i in det for i in ids), "--details lacks record ids"
# The table's numbers are the JSON's: each township line of each check.
for (ck, tw), n in got.items():
    assert re.search(r"^  %s  .*\b%d$" % (tw, n), plain, re.M), (ck, tw, n)
    name = units[tw]["name"]
    assert name in zh, name
PY
pass "quality: counts per check and township equal the issues; ids only with --details"

# Chinese: no English check names or English details.
for s in "ID number registered more than once" "Birth whose mother is missing" \
    "Migration feedback overdue" "duplicate_id_number" "missing_mother" "feedback_overdue" \
    "no feedback" "also registered" "also held" "same name" "no live" "person" "birth" "migration" "Records" "Give --details"; do
    grep -qF "$s" "$T/qd.zh.txt" && fail "zh quality report says '$s': $(grep -F "$s" "$T/qd.zh.txt")"
done
grep -q "出生记录的母亲不存在" "$T/qd.zh.txt" && grep -q "天未反馈" "$T/qd.zh.txt" &&
    grep -q "没有有效的" "$T/qd.zh.txt" || fail "zh details: $(cat "$T/qd.zh.txt")"
pass "quality report with --lang zh is all Chinese, details included"

# Workbooks: mode 0600, the JSON's numbers.
sq admin report monthly --month "$M" --format json >"$T/m.json" || fail "monthly json"
sq admin report monthly --month "$M" --format xlsx --out "$T/m.xlsx" --lang en >/dev/null || fail "monthly xlsx"
sq admin report quality --format xlsx --out "$T/q.xlsx" --details --lang zh >/dev/null || fail "quality xlsx"
for f in m q; do
    expect_eq "$(stat -c %a "$T/$f.xlsx")" 600 "$f.xlsx mode"
done
rc=0
sq admin report monthly --month "$M" --format xlsx >/dev/null 2>&1 || rc=$?
expect_eq $rc 2 "xlsx without --out"
python3 - "$T/m.json" "$T/m.xlsx" "$T/q.json" "$T/q.xlsx" <<'PY' || fail "the workbooks' numbers"
import json, re, sys, zipfile
import xml.etree.ElementTree as ET
NS = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
def sheet(path):
    z = zipfile.ZipFile(path)
    shared = []
    if "xl/sharedStrings.xml" in z.namelist():
        for si in ET.fromstring(z.read("xl/sharedStrings.xml")).iter(NS + "si"):
            shared.append("".join(t.text or "" for t in si.iter(NS + "t")))
    rows = {}
    for c in ET.fromstring(z.read("xl/worksheets/sheet1.xml")).iter(NS + "c"):
        m = re.match(r"([A-Z]+)(\d+)", c.get("r"))
        col = 0
        for ch in m.group(1):
            col = col * 26 + ord(ch) - 64
        v = c.find(NS + "v")
        if c.get("t") == "s":
            text = shared[int(v.text)]
        elif c.get("t") == "inlineStr":
            text = "".join(t.text or "" for t in c.iter(NS + "t"))
        else:
            text = v.text if v is not None else ""
        rows.setdefault(int(m.group(2)) - 1, {})[col - 1] = text
    return [[r.get(i, "") for i in range(max(r) + 1)] for _, r in sorted(rows.items())]
m = json.load(open(sys.argv[1]))
rows = sheet(sys.argv[2])
head = rows[0]
assert len(rows) - 1 == len(m["rows"]), (len(rows), len(m["rows"]))
for want, got in zip(m["rows"], rows[1:]):
    g = dict(zip(head, got))
    assert g["orgunit"] == want["orgunit"], (g, want)
    for k in ("persons_total", "births_total", "migrations", "visits_total", "benefits_paid_fen"):
        assert int(g[k]) == int(want[k]), (k, g[k], want[k])
    assert g["benefits_paid_yuan"] == want["benefits_paid_yuan"]
q = json.load(open(sys.argv[3]))
rows = sheet(sys.argv[4])
summ = {(r[0], r[2]): int(r[4]) for r in rows[1:] if len(r) >= 5 and r[4].isdigit()}
assert summ == {(s["check"], s["township"]): s["count"] for s in q["summary"]}, summ
ids = {r[1] for r in rows if len(r) >= 6}
assert {i["record_id"] for i in q["issues"]} <= ids, "details missing from the workbook"
PY
pass "monthly and quality workbooks (mode 0600) hold the JSON's numbers"
