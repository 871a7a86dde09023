# Excel workbooks both ways: export .xlsx (every cell text, so ID numbers
# stay as typed; mode 0600; Chinese headers with --lang zh), import it back
# to the same records; import a workbook as Excel writes one by hand: shared
# strings, a date cell as a serial number, an ID number that Excel turned
# into a number (refused with what to do), an inline string; a workbook
# whose first sheet is instructions (the first sheet with a header is read;
# --sheet NAME|N picks one).
. "$(dirname "$0")/lib.sh"
make_pki
start_server
client t1 town1
client t2 town1

python3 - "$T/p.csv" <<'PY'
import sys
w=[7,9,10,5,8,4,2,1,6,3,7,9,10,5,8,4,2]
rows = ["name,id_number,address,marital_status"]
for i in range(30):
    d = "110105" + "1980%02d%02d" % (i % 12 + 1, i % 28 + 1) + "%03d" % (400 + i)
    d += "10X98765432"[sum(int(a)*b for a,b in zip(d,w))%11]
    rows.append('赵%d,%s,"幸福路%d号,2单元",married' % (i, d, i))
open(sys.argv[1], "w", encoding="utf-8").write("\r\n".join(rows) + "\r\n")
PY
ps --data "$T/t1" import "$T/p.csv" --kind person >/dev/null || fail "seed"

ps --data "$T/t1" export --kind person --format xlsx --lang zh --out "$T/p.xlsx" || fail "xlsx export"
expect_eq "$(stat -c %a "$T/p.xlsx")" 600 "an .xlsx of personal data is its owner's alone"
rc=0; ps --data "$T/t1" export --kind person --format xlsx >/dev/null 2>&1 || rc=$?
expect_eq "$rc" 2 "xlsx to stdout refused"
python3 - "$T/p.xlsx" <<'PY' || fail "workbook layout"
import re, sys, zipfile
z = zipfile.ZipFile(sys.argv[1])
styles = z.read("xl/styles.xml").decode()
assert 'formatCode="@"' in styles, "text format"
sheet = z.read("xl/worksheets/sheet1.xml").decode()
strings = z.read("xl/sharedStrings.xml").decode() if "xl/sharedStrings.xml" in z.namelist() else ""
assert "身份证号" in strings + sheet, "Chinese header"
ids = re.findall(r"\b11010519\d{9}[\dX]\b", strings + sheet)
assert len(set(ids)) == 30, len(set(ids))
# every cell is a string cell: no number can round an ID number
assert not re.search(r'<c [^>]*t="n"', sheet) and all('t="' in c for c in re.findall(r"<c [^>]*>", sheet)), "all text"
PY
expect_eq "$(ps --data "$T/t2" import "$T/p.xlsx" --kind person)" "imported 30 of 30 rows (0 unchanged, 0 rejected)" "xlsx import"
ps --data "$T/t1" export --kind person --format csv --out "$T/a.csv"
ps --data "$T/t2" export --kind person --format csv --out "$T/b.csv"
cmp "$T/a.csv" "$T/b.csv" || fail "xlsx export -> import differs"

# A workbook as Excel saves one typed by hand.
mkid() { python3 -c '
import sys; w=[7,9,10,5,8,4,2,1,6,3,7,9,10,5,8,4,2]; d=sys.argv[1]
print(d+"10X98765432"[sum(int(a)*b for a,b in zip(d,w))%11])' "$1"; }
good=$(mkid 11010519900307501)
python3 - "$T/hand.xlsx" "$good" <<'PY'
import sys, zipfile
good = sys.argv[2]
shared = ["姓名", "身份证号", "出生日期", "孙悟空", good, "猪八戒"]
si = "".join("<si><t>%s</t></si>" % s for s in shared)
# 1990-03-07 is Excel serial 32939; the second ID number was typed as a number.
sheet = """<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>
<row r="1"><c r="A1" t="s"><v>0</v></c><c r="B1" t="s"><v>1</v></c><c r="C1" t="s"><v>2</v></c></row>
<row r="2"><c r="A2" t="s"><v>3</v></c><c r="B2" t="s"><v>4</v></c><c r="C2" s="1"><v>32939</v></c></row>
<row r="3"><c r="A3" t="s"><v>5</v></c><c r="B3"><v>1.10105199003075E+17</v></c><c r="C3" t="inlineStr"><is><t>1990/3/7</t></is></c></row>
</sheetData></worksheet>"""
z = zipfile.ZipFile(sys.argv[1], "w", zipfile.ZIP_DEFLATED)
z.writestr("[Content_Types].xml", '<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"/>')
z.writestr("xl/workbook.xml", '<?xml version="1.0"?><workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheets><sheet name="人员" sheetId="1"/></sheets></workbook>')
z.writestr("xl/sharedStrings.xml", '<?xml version="1.0"?><sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">%s</sst>' % si)
z.writestr("xl/worksheets/sheet1.xml", sheet)
z.close()
PY
rc=0; ps --data "$T/t2" import "$T/hand.xlsx" --kind person >"$T/hand.out" 2>"$T/hand.err" || rc=$?
expect_eq "$rc" 4 "hand-made workbook with one bad row"
expect_eq "$(head -n 1 "$T/hand.out")" "imported 1 of 2 rows (0 unchanged, 1 rejected)" "good row in, Excel-number row out"
grep -q "Excel turned this ID number into a number" "$T/hand.err" || fail "says what Excel did: $(cat "$T/hand.err")"
ps --data "$T/t2" find "$good" --json | python3 -c '
import json, sys; r = json.load(sys.stdin)[0]
assert (r["name"], r["birth_date"]) == ("孙悟空", "1990-03-07"), r' || fail "date serial read as a date"
[ -f "$T/hand.xlsx.rejected.csv" ] || fail "rejected rows of a workbook kept as CSV"
# A sheet as a township makes one: a merged title row above the header, a
# date cell (a serial number) in the date column, a row whose last cells
# are empty (Excel leaves them out), formatted empty rows below.  The title
# was taken for the header (the whole file refused), and then the date
# column was not known and a short row was refused.
t1=$(mkid 11010519900307521); t2=$(mkid 11010519850101632)
python3 - "$T/titled.xlsx" "$t1" "$t2" <<'PY'
import sys, zipfile
shared = ["某某镇人口登记表", "姓名", "身份证号", "出生日期", "联系电话", "孙悟净", sys.argv[2], "沙和尚", sys.argv[3]]
si = "".join("<si><t>%s</t></si>" % s for s in shared)
sheet = """<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>
<row r="1"><c r="A1" t="s"><v>0</v></c></row>
<row r="2"><c r="A2" t="s"><v>1</v></c><c r="B2" t="s"><v>2</v></c><c r="C2" t="s"><v>3</v></c><c r="D2" t="s"><v>4</v></c></row>
<row r="3"><c r="A3" t="s"><v>5</v></c><c r="B3" t="s"><v>6</v></c><c r="C3" s="1"><v>32939</v></c></row>
<row r="4"><c r="A4" t="s"><v>7</v></c><c r="B4" t="s"><v>8</v></c><c r="D4"><v>13812345678</v></c></row>
<row r="6"><c r="A6" s="1"/><c r="B6" s="1"/></row>
</sheetData><mergeCells count="1"><mergeCell ref="A1:D1"/></mergeCells></worksheet>"""
z = zipfile.ZipFile(sys.argv[1], "w", zipfile.ZIP_DEFLATED)
z.writestr("[Content_Types].xml", '<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"/>')
z.writestr("xl/workbook.xml", '<?xml version="1.0"?><workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheets><sheet name="人员" sheetId="1"/></sheets></workbook>')
z.writestr("xl/sharedStrings.xml", '<?xml version="1.0"?><sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">%s</sst>' % si)
z.writestr("xl/worksheets/sheet1.xml", sheet)
z.close()
PY
rc=0; ps --data "$T/t2" import "$T/titled.xlsx" --kind person >"$T/titled.out" 2>"$T/titled.err" || rc=$?
expect_eq "$rc" 0 "a titled workbook imports: $(cat "$T/titled.err")"
expect_eq "$(tr '\n' '|' <"$T/titled.out")" "skipped 1 title row(s) above the header (not records)|imported 2 of 2 rows (0 unchanged, 0 rejected)|" \
    "title skipped, both rows in"
ps --data "$T/t2" find "$t1" --json | python3 -c '
import json, sys; r = json.load(sys.stdin)[0]
assert (r["name"], r["birth_date"], r["phone"]) == ("孙悟净", "1990-03-07", ""), r' || fail "date under a titled header"
ps --data "$T/t2" find "$t2" --json | python3 -c '
import json, sys; r = json.load(sys.stdin)[0]
assert (r["name"], r["birth_date"], r["phone"]) == ("沙和尚", "1985-01-01", "13812345678"), r' || fail "a row with a gap"
# A workbook as offices hand them out: a sheet of instructions (填表说明)
# first, then the data, then a second group's sheet.  The sheet with a
# header row is read and the import says which; the others are named;
# --sheet picks one by name or number, and a name that is not there is
# refused with the sheets' names.  The sheets' parts are not in tab order
# (the workbook's relationships say which is which, as Excel writes them).
s1=$(mkid 11010519900307541); s2=$(mkid 11010519851212552); s3=$(mkid 11010519700101563)
python3 - "$T/multi.xlsx" "$s1" "$s2" "$s3" "$T/nohdr.xlsx" <<'PY'
import sys, zipfile
def cell(ref, text):
    return '<c r="%s" t="inlineStr"><is><t>%s</t></is></c>' % (ref, text)
def sheet(rows):
    body = "".join('<row r="%d">%s</row>' % (i + 1, "".join(cell("%s%d" % ("ABCD"[j], i + 1), t)
                   for j, t in enumerate(r) if t)) for i, r in enumerate(rows))
    return ('<?xml version="1.0" encoding="UTF-8" standalone="yes"?><worksheet xmlns="http://schemas.openxmlformats.org/'
            'spreadsheetml/2006/main"><sheetData>%s</sheetData></worksheet>' % body)
def book(path, sheets):
    ns = 'xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"'
    z = zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED)
    z.writestr("[Content_Types].xml", '<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"/>')
    z.writestr("xl/workbook.xml", '<?xml version="1.0"?><workbook %s><sheets>%s</sheets></workbook>' % (ns,
               "".join('<sheet name="%s" sheetId="%d" r:id="rId%d"/>' % (n, i + 1, i + 1) for i, (n, f, _) in enumerate(sheets))))
    z.writestr("xl/_rels/workbook.xml.rels", '<?xml version="1.0"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">%s</Relationships>'
               % "".join('<Relationship Id="rId%d" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="%s"/>'
                         % (i + 1, f) for i, (n, f, _) in enumerate(sheets)))
    for n, f, rows in sheets:
        z.writestr("xl/" + f.lstrip("/").replace("xl/", "", 1) if f.startswith("/") else "xl/" + f, sheet(rows))
    z.close()
instr = [["填表说明"], ["1. 每人一行，不要合并单元格"], ["2. 身份证号请设为文本格式"], ["3. 日期写成 2026-01-05"],
         ["4. 不要删除表头"], ["5. 填好后交镇政府"], ["列名", "说明"], ["姓名", "户口簿上的姓名"], ["身份证号", "18 位"]]
book(sys.argv[1], [("填表说明", "worksheets/sheet1.xml", instr),
                   ("人员", "/xl/worksheets/sheet3.xml", [["某村人口登记表"], ["姓名", "身份证号", "住址"],
                                                        ["唐三藏", sys.argv[2], "长安路1号"], ["白龙马", sys.argv[3], ""]]),
                   ("二组", "worksheets/sheet2.xml", [["姓名", "身份证号"], ["红孩儿", sys.argv[4]]])])
book(sys.argv[5], [("填表说明", "worksheets/sheet1.xml", instr), ("Sheet2", "worksheets/sheet2.xml", [])])
PY
rc=0; ps --data "$T/t2" import "$T/multi.xlsx" --kind person >"$T/multi.out" 2>"$T/multi.err" || rc=$?
expect_eq "$rc" 0 "a workbook with an instructions sheet first imports: $(cat "$T/multi.err")"
expect_eq "$(tr '\n' '|' <"$T/multi.out")" 'read sheet "人员" (2 of 3)|skipped the sheets without a header row: "填表说明"|these sheets have a header row too and were not imported: "二组"; import each with --sheet NAME|skipped 1 title row(s) above the header (not records)|imported 2 of 2 rows (0 unchanged, 0 rejected)|' \
    "says which sheet was read, which were skipped, which were left"
ps --data "$T/t2" find "$s1" --json | python3 -c '
import json, sys; r = json.load(sys.stdin)[0]
assert (r["name"], r["address"]) == ("唐三藏", "长安路1号"), r' || fail "the data sheet's row"
expect_eq "$(ps --data "$T/t2" find "$s3" --json)" "[]" "the second group's sheet was not read"
expect_eq "$(ps --data "$T/t2" import "$T/multi.xlsx" --kind person --sheet 3 --dry-run | tr '\n' '|')" \
    'read sheet "二组" (3 of 3)|would import 1 of 1 rows (0 unchanged, 0 rejected)|' "--sheet by number"
expect_eq "$(ps --data "$T/t2" import "$T/multi.xlsx" --kind person --sheet 二组 --lang zh | head -n 1)" \
    '读取的是工作表“二组”（第 3 张，共 3 张）' "--sheet by name, in Chinese"
ps --data "$T/t2" find "$s3" --json | python3 -c '
import json, sys; assert json.load(sys.stdin)[0]["name"] == "红孩儿"' || fail "the second group's row by --sheet"
rc=0; ps --data "$T/t2" import "$T/multi.xlsx" --kind person --sheet 三组 >"$T/nosheet.out" 2>"$T/nosheet.err" || rc=$?
expect_eq "$rc" 4 "a sheet that is not there"
grep -qF 'no sheet "三组" in this workbook: give --sheet one of "填表说明", "人员", "二组"' "$T/nosheet.err" ||
    fail "names the sheets: $(cat "$T/nosheet.err")"
rc=0; ps --data "$T/t2" import "$T/multi.xlsx" --kind person --sheet 9 --lang zh >/dev/null 2>"$T/nosheet.err" || rc=$?
expect_eq "$rc" 4 "a sheet number past the last"
grep -qF '工作簿中没有工作表“9”：--sheet 应为以下之一（名称或序号）："填表说明", "人员", "二组"' "$T/nosheet.err" ||
    fail "names the sheets in Chinese: $(cat "$T/nosheet.err")"
rc=0; ps --data "$T/t2" import "$T/p.csv" --kind person --sheet 1 >/dev/null 2>&1 || rc=$?
expect_eq "$rc" 2 "--sheet on a CSV is a usage error"
rc=0; ps --data "$T/t2" import "$T/nohdr.xlsx" --kind person >"$T/nohdr.out" 2>"$T/nohdr.err" || rc=$?
expect_eq "$rc" 4 "no sheet has a header row"
grep -qF 'no sheet of the workbook has a header row naming the columns, so the first was read' "$T/nohdr.out" ||
    fail "says no sheet has a header: $(cat "$T/nohdr.out")"
grep -q "no header row naming the columns" "$T/nohdr.err" || fail "the usual refusal: $(cat "$T/nohdr.err")"
printf 'not a zip' >"$T/bad.xlsx"
rc=0; ps --data "$T/t2" import "$T/bad.xlsx" --kind person >/dev/null 2>"$T/bad.err" || rc=$?
expect_eq "$rc" 4 "not a workbook"
grep -q "not an .xlsx workbook" "$T/bad.err" || fail "says it is not a workbook: $(cat "$T/bad.err")"
stop_server
pass "xlsx export and import round-trip; Excel's dates and numbers handled"
