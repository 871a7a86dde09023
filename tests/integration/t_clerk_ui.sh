# popsync ui's form, as the clerk fills it (curl, as the page posts it): a
# visit's person given by the person's ID number, as `popsync add` takes it.
# It was refused as "not a valid record id (UUID)", in English, with the
# ID number quoted whole: the person resolver is per thread and the form is
# saved on one of the HTTP server's threads, where it was never set.
# And the import page's check (preview) of a file with more bad rows than
# it lists: it lists the first 500 (all are in the rejected rows); a
# leftover `if (!preview)` made it list them all, and trim the import's.
# And a workbook whose first sheet is instructions: the data sheet is read
# and the answer says which (and that a later sheet was not).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_ui.sh"
. "$(dirname "$0")/lib_silent.sh"
command -v curl >/dev/null || { echo "skip: curl is not installed"; exit 77; }

make_pki
client t1 town1
idn=110105199003071239
ps --data "$T/t1" add person --set name=吴十 --set id_number=$idn >/dev/null || fail "add"
login t1

save() {
    curl -sS --noproxy '*' -b "$T/jar" -b popsync_lang=zh -H "X-CSRF-Token: $CSRF" -H 'Content-Type: application/json' \
        --max-time 30 -d "$1" -o "$T/s.json" "$BASE/api/record/save" || fail "POST save"
}
save '{"kind":"service_visit","values":{"person_id":"'$idn'","service":"随访","visit_date":"2026/11/3"}}'
python3 -c 'import json,sys; r = json.load(open(sys.argv[1])); assert r["errors"] == [], r' "$T/s.json" ||
    fail "a visit by the person's ID number: $(cat "$T/s.json")"
expect_eq "$(count t1 service_visit)" 1 "the visit stored"

other=110105199003071247
save '{"kind":"service_visit","values":{"person_id":"'$other'","service":"随访","visit_date":"2026/11/3"}}'
grep -q "$other" "$T/s.json" && fail "the ID number quoted whole: $(cat "$T/s.json")"
python3 -c '
import json, sys
e = json.load(open(sys.argv[1]))["errors"]
assert len(e) == 1 and e[0]["field"] == "person_id", e
assert e[0]["reason"].startswith("既不是记录 ID，也不是本机已登记人员的身份证号"), e' "$T/s.json" ||
    fail "an unknown person in Chinese: $(cat "$T/s.json")"
pass "the form takes a person by ID number; an unknown one is said in Chinese, unquoted"

# 600 rows, each with a sex that is none of the choices.
python3 -c '
print("name,sex,birth_date")
for i in range(600): print("人员%d,不明,1990-01-01" % i)' >"$T/bad.csv"
for mode in preview import; do
    curl -sS --noproxy '*' -b "$T/jar" -H "X-CSRF-Token: $CSRF" -H 'Content-Type: application/octet-stream' \
        --max-time 60 --data-binary @"$T/bad.csv" -o "$T/i.json" \
        "$BASE/api/import?mode=$mode&kind=person&name=bad.csv" || fail "POST import ($mode)"
    python3 -c '
import json, sys
r = json.load(open(sys.argv[1]))
assert r["rows"] == 600 and r["rejected"] == 600 and r["imported"] == 0, r
assert len(r["errors"]) == 500, len(r["errors"])
assert r["rejects"], r' "$T/i.json" || fail "$mode of 600 bad rows: $(head -c 300 "$T/i.json")"
done
expect_eq "$(count t1 person)" 1 "persons after importing only bad rows"
# A workbook whose first sheet is instructions (填表说明): the page reads the
# data sheet and says which sheet it read, and that a later one was not.
python3 - "$T/multi.xlsx" <<'PY'
import sys, zipfile
def sheet(rows):
    return ('<?xml version="1.0"?><worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>%s'
            '</sheetData></worksheet>' % "".join('<row r="%d">%s</row>' % (i + 1, "".join(
                '<c r="%s%d" t="inlineStr"><is><t>%s</t></is></c>' % ("AB"[j], i + 1, t) for j, t in enumerate(r)))
                for i, r in enumerate(rows)))
z = zipfile.ZipFile(sys.argv[1], "w")
z.writestr("xl/workbook.xml", '<?xml version="1.0"?><workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
           '<sheets><sheet name="填表说明" sheetId="1"/><sheet name="人员" sheetId="2"/><sheet name="二组" sheetId="3"/></sheets></workbook>')
z.writestr("xl/worksheets/sheet1.xml", sheet([["填表说明"], ["每人一行"], ["身份证号设为文本"], ["不要合并单元格"], ["不要删除表头"], ["交镇政府"], ["谢谢"]]))
z.writestr("xl/worksheets/sheet2.xml", sheet([["姓名", "出生日期"], ["表一", "1990-01-01"]]))
z.writestr("xl/worksheets/sheet3.xml", sheet([["姓名", "出生日期"], ["表二", "1991-01-01"]]))
z.close()
PY
curl -sS --noproxy '*' -b "$T/jar" -H "X-CSRF-Token: $CSRF" -H 'Content-Type: application/octet-stream' \
    --max-time 60 --data-binary @"$T/multi.xlsx" -o "$T/m.json" \
    "$BASE/api/import?mode=preview&kind=person&name=multi.xlsx" || fail "POST import (workbook)"
python3 -c '
import json, sys
r = json.load(open(sys.argv[1]))
assert r["rows"] == 1, r  # the one row of 人员 (its missing fields do not matter here)
s = r["sheet"]
assert (s["read"], s["index"], s["count"], s["skipped"], s["others"]) == ("人员", 2, 3, "\"填表说明\"", "\"二组\""), s' \
    "$T/m.json" || fail "the workbook's data sheet read and said: $(head -c 400 "$T/m.json")"
ui_stop
pass "import page: a check and an import of 600 bad rows list the first 500, all in the rejected rows"
