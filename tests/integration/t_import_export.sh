# A township imports a spreadsheet of 2,000 persons of which exactly 5% are
# bad in known ways: the good rows land, each bad row is reported by line and
# field, export -> import -> export gives the same bytes (CSV, JSON and JSON
# Lines), and after a sync the admin holds exactly the good rows.
. "$(dirname "$0")/lib.sh"
make_pki
start_server
client t1 town1
client admin admin
for c in t1csv t1json t1jsonl t1zh; do client "$c" town1; done

# people.csv as a spreadsheet program saves it: BOM, CRLF, quoted cells with
# commas, quotes and line breaks, Chinese text, empty cells.  bad.txt lists
# "LINE FIELD" of each bad row, good.txt the ID numbers that must land.
python3 - "$T/people.csv" "$T/bad.txt" "$T/good.txt" <<'PY'
import datetime, random, sys
rng = random.Random(20240611)
W = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
def check(d17):
    return "10X98765432"[sum(int(c) * w for c, w in zip(d17, W)) % 11]
surnames = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
given_m = ["伟", "强", "磊", "军", "建国", "志强", "俊杰", "浩然", "子轩"]
given_f = ["芳", "娜", "敏", "静", "秀英", "桂兰", "欣怡", "梓涵", "雨桐"]
streets = ["建设路", "人民路", "解放街", "和平里", "光明巷", "胜利大街"]
N, NBAD = 2000, 100
bad_rows = sorted(rng.sample(range(N), NBAD))
bad_kind = {r: k % 5 for k, r in enumerate(bad_rows)}

def cell(v):
    b = v if isinstance(v, bytes) else v.encode()
    if any(c in b for c in b',"\r\n') or b[:1] in (b" ", b"\t") or b[-1:] in (b" ", b"\t"):
        b = b'"' + b.replace(b'"', b'""') + b'"'
    return b

header = ["name", "id_number", "sex", "birth_date", "ethnicity", "registration",
          "marital_status", "phone", "address", "orgunit"]
out = [b"\xef\xbb\xbf" + b",".join(cell(h) for h in header) + b"\r\n"]
line = 2
bad, good = [], []
seen = set()
for i in range(N):
    male = rng.random() < 0.51
    while True:
        born = datetime.date(1940, 1, 1) + datetime.timedelta(days=rng.randrange(365 * 65))
        seq = rng.randrange(50) * 2 + (1 if male else 0)
        d17 = "110105" + born.strftime("%Y%m%d") + "%02d" % rng.randrange(100) + str(seq % 10)
        if d17 not in seen:
            seen.add(d17)
            break
    idn = d17 + check(d17)
    name = rng.choice(surnames) + rng.choice(given_m if male else given_f)
    addr = "北京市东城区%s%d号" % (rng.choice(streets), rng.randrange(1, 300))
    if i % 7 == 0:
        addr += ", %d单元" % rng.randrange(1, 9)      # a comma: quoted
    if i % 11 == 0:
        addr += ' "东院"'                             # quotes: doubled
    if i % 50 == 0:
        addr += "\n%d层" % rng.randrange(1, 30)       # a second physical line
    row = {
        "name": name, "id_number": idn, "sex": "male" if male else "female",
        "birth_date": born.isoformat(),
        "ethnicity": rng.choice(["汉族"] * 8 + ["回族", "满族", "蒙古族"]),
        "registration": rng.choice(["local", "local", "migrant", ""]),
        "marital_status": rng.choice(["single", "married", "married", "divorced", "widowed", ""]),
        "phone": "1%d%09d" % (rng.choice([3, 5, 8]), rng.randrange(10 ** 9)) if i % 3 else "",
        "address": addr,
        "orgunit": "1101050010%02d" % rng.randrange(1, 6) if i % 2 else "",
    }
    field = None
    k = bad_kind.get(i)
    if k == 0:    # wrong check character
        row["id_number"] = d17 + next(c for c in "0123456789X" if c != check(d17))
        field = "id_number"
    elif k == 1:  # a date that does not exist
        row["birth_date"] = "%d-02-30" % born.year
        field = "birth_date"
    elif k == 2:  # not a sex, or the other sex than the ID number's
        row["sex"] = rng.choice(["unknown", "M", "女" if male else "男"])
        field = "sex"
    elif k == 3:  # a real date, not the one in the ID number
        row["birth_date"] = (born + datetime.timedelta(days=1)).isoformat()
        field = "birth_date"
    elif k == 4:  # a name cut in the middle of a character
        row["name"] = row["name"].encode()[:-1]
        field = "name"
    if field:
        bad.append("%d %s" % (line, field))
    else:
        good.append(idn)
    data = [row[h] for h in header]
    out.append(b",".join(cell(v) for v in data) + b"\r\n")
    line += 1 + sum((v if isinstance(v, bytes) else v.encode()).count(b"\n") for v in data)
open(sys.argv[1], "wb").write(b"".join(out))
open(sys.argv[2], "w").write("\n".join(bad) + "\n")
open(sys.argv[3], "w").write("\n".join(sorted(good)) + "\n")
PY
expect_eq "$(wc -l < "$T/bad.txt")" 100 "bad rows generated"
expect_eq "$(wc -l < "$T/good.txt")" 1900 "good rows generated"

# A dry run reports the same and stores nothing.
rc=0
ps --data "$T/t1" import "$T/people.csv" --kind person --dry-run >"$T/dry.out" 2>"$T/dry.err" || rc=$?
expect_eq "$rc" 4 "dry-run exit code"
expect_eq "$(cat "$T/dry.out")" "would import 1900 of 2000 rows (0 unchanged, 100 rejected)" "dry-run summary"
expect_eq "$(count t1)" 0 "dry run stores nothing"

rc=0
ps --data "$T/t1" import "$T/people.csv" --kind person >"$T/import.out" 2>"$T/import.err" || rc=$?
expect_eq "$rc" 4 "import with bad rows exits 4"
expect_eq "$(head -n 1 "$T/import.out")" "imported 1900 of 2000 rows (0 unchanged, 100 rejected)" "import summary"
expect_eq "$(tail -n 1 "$T/import.out")" "the 100 rejected rows are in $T/people.csv.rejected.csv: fix them there and import that file" "rejected-rows file named"
# The rejected rows as read, with line and reason columns, owner-only; it
# imports as it is (the two extra columns are read past): the same 100
# refusals, and nothing else.
expect_eq "$(stat -c %a "$T/people.csv.rejected.csv")" 600 "rejected-rows file mode"
python3 - "$T/people.csv.rejected.csv" "$T/bad.txt" <<'PY' || fail "rejected-rows file content"
import csv, sys
rows = list(csv.reader(open(sys.argv[1], encoding="utf-8-sig", newline="", errors="surrogateescape")))
assert rows[0][-2:] == ["line", "reason"], rows[0]
lines = sorted(int(r[-2]) for r in rows[1:])
want = sorted(int(l.split()[0]) for l in open(sys.argv[2]))
assert lines == want, (lines[:5], want[:5])
assert all(r[-1] for r in rows[1:])
PY
rc=0; ps --data "$T/t1" import "$T/people.csv.rejected.csv" --kind person --dry-run >"$T/again.out" 2>/dev/null || rc=$?
expect_eq "$(cat "$T/again.out")" "would import 0 of 100 rows (0 unchanged, 100 rejected)" "rejected file re-imports to the same refusals"
# Exactly the bad rows, by line and field, one error each.
sed -nE "s|^popsync: import: $T/people.csv:([0-9]+): ([a-z_()]+): .+\$|\\1 \\2|p" "$T/import.err" >"$T/reported.txt"
expect_eq "$(wc -l < "$T/import.err")" 100 "one stderr line per bad row"
diff <(sort -n "$T/bad.txt") <(sort -n "$T/reported.txt") >&2 || fail "reported rows differ from the bad rows"
cmp -s "$T/import.err" "$T/dry.err" || fail "dry run and import report differently"
# Messages show the value as read, but no whole ID number or name: ID
# numbers as first 6 + last 4, names as their first character.
grep -qE '[0-9]{17}[0-9X]' "$T/import.err" && fail "an ID number leaked into an error message"
grep -qE 'id_number: .*value as read: [0-9]{6}\*+[0-9]{3}[0-9X]$' "$T/import.err" || fail "masked ID number shown"
python3 -c 'import re, sys; sys.exit(1 if re.search("[\u4e00-\u9fff]{2}", open(sys.argv[1], encoding="utf-8", errors="replace").read()) else 0)' \
    "$T/import.err" || fail "Chinese text (a name?) leaked into an error message"
expect_eq "$(count t1)" 1900 "exactly the good rows landed"
ps --data "$T/t1" list --kind person --format json | python3 -c '
import json, sys
got = sorted(r["id_number"] for r in json.load(sys.stdin))
want = open(sys.argv[1]).read().split()
assert got == want, "landed rows are not the good rows"
' "$T/good.txt" || fail "the rows that landed are not the good ones"
# Rows with an empty orgunit cell belong to the township itself.
expect_eq "$(ps --data "$T/t1" list --kind person --orgunit $TOWN1 --format json | python3 -c '
import json, sys; print(sorted({r["orgunit"][:9] for r in json.load(sys.stdin)}))')" "['110105001']" "orgunits in the township"

# CSV: export -> import into a fresh cache -> export, byte for byte.
ps --data "$T/t1" export --kind person --format csv --out "$T/e1.csv"
[ -e "$T/e1.csv.tmp" ] && fail "export left its temporary file"
expect_eq "$(head -c 3 "$T/e1.csv" | od -An -tx1 | tr -d ' ')" "efbbbf" "a BOM by default (Chinese Excel needs it)"
expect_eq "$(stat -c %a "$T/e1.csv")" 600 "an export of personal data is its owner's alone"
expect_eq "$(ps --data "$T/t1csv" import "$T/e1.csv" --kind person)" "imported 1900 of 1900 rows (0 unchanged, 0 rejected)" "CSV re-import"
ps --data "$T/t1csv" export --kind person --format csv >"$T/e2.csv"
cmp "$T/e1.csv" "$T/e2.csv" || fail "CSV export -> import -> export differs"
# Without a BOM (for scripts) it reads back the same too.
ps --data "$T/t1" export --kind person --format csv --no-bom >"$T/e1nobom.csv"
expect_eq "$(head -c 3 "$T/e1nobom.csv" | od -An -tx1 | tr -d ' ')" "69642c" "--no-bom starts with 'id,'"
cmp "$T/e1nobom.csv" <(tail -c +4 "$T/e1.csv") || fail "--no-bom changed more than the BOM"
# In Chinese: labels as the header and Chinese values; it imports back to
# the same records.
ps --data "$T/t1" export --kind person --format csv --lang zh --out "$T/zh.csv"
expect_eq "$(head -c 60 "$T/zh.csv" | tail -c +4 | cut -d, -f1-4)" "记录ID,所属单位,身份证号,姓名" "Chinese header"
grep -q ',女,' "$T/zh.csv" || fail "Chinese values in the zh export"
expect_eq "$(ps --data "$T/t1zh" import "$T/zh.csv" --kind person)" "imported 1900 of 1900 rows (0 unchanged, 0 rejected)" "Chinese CSV import"
ps --data "$T/t1zh" export --kind person --format csv >"$T/e4.csv"
cmp "$T/e1.csv" "$T/e4.csv" || fail "Chinese export -> import differs"

# JSON: the same, and JSON Lines made from it.
ps --data "$T/t1" export --kind person --format json --out "$T/j1.json"
expect_eq "$(ps --data "$T/t1json" import "$T/j1.json" --kind person)" "imported 1900 of 1900 rows (0 unchanged, 0 rejected)" "JSON re-import"
ps --data "$T/t1json" export --kind person --format json >"$T/j2.json"
cmp "$T/j1.json" "$T/j2.json" || fail "JSON export -> import -> export differs"
python3 -c '
import json, sys
for r in json.load(open(sys.argv[1])):
    print(json.dumps(r, ensure_ascii=False))' "$T/j1.json" >"$T/j1.jsonl"
expect_eq "$(ps --data "$T/t1jsonl" import "$T/j1.jsonl" --kind person)" "imported 1900 of 1900 rows (0 unchanged, 0 rejected)" "JSON Lines import"
ps --data "$T/t1jsonl" export --kind person --format csv >"$T/e3.csv"
cmp "$T/e1.csv" "$T/e3.csv" || fail "JSON Lines import differs from the CSV one"

# Importing an unchanged export into the cache it came from changes nothing
# (t_noop_edit.sh checks that one changed cell makes one change).
expect_eq "$(ps --data "$T/t1" import "$T/e1.csv" --kind person --dry-run)" "would import 0 of 1900 rows (1900 unchanged, 0 rejected)" "re-import dry run"

# Usage and file errors.
rc=0; ps --data "$T/t1" import "$T/people.csv" >/dev/null 2>&1 || rc=$?
expect_eq "$rc" 2 "import without --kind"
cp "$T/people.csv" "$T/people.dat"
rc=0; ps --data "$T/t1" import "$T/people.dat" --kind person >/dev/null 2>&1 || rc=$?
expect_eq "$rc" 2 "import of a file of unknown format"
rc=0; ps --data "$T/t1" import "$T/missing.csv" --kind person >/dev/null 2>&1 || rc=$?
expect_eq "$rc" 1 "import of a missing file"
printf 'name,colour\r\n张三,red\r\n' >"$T/cols.csv"
rc=0; ps --data "$T/t1" import "$T/cols.csv" --kind person >/dev/null 2>"$T/cols.err" || rc=$?
expect_eq "$rc" 4 "unknown column"
expect_eq "$(cat "$T/cols.err")" "popsync: import: $T/cols.csv:1: colour: unknown column for kind person; columns: orgunit,id_number,name,sex,birth_date,ethnicity,registration,marital_status,household_id,phone,address,hukou_type,deceased_date,disability_grade,gave_up_birth_date" "unknown column message"
rc=0; ps --data "$T/t1" export --kind person >/dev/null 2>&1 || rc=$?
expect_eq "$rc" 2 "export without a format"
expect_eq "$(count t1)" 1900 "failed imports stored nothing"

# After a sync the admin holds exactly the good rows, field for field.
ps --data "$T/t1" sync --quiet || fail "t1 sync"
ps --data "$T/admin" sync --quiet || fail "admin sync"
expect_eq "$(count admin)" 1900 "admin receives the good rows"
ps --data "$T/admin" export --kind person --format csv >"$T/admin.csv"
cmp "$T/e1.csv" "$T/admin.csv" || fail "admin's records differ from the imported ones"
stop_server
pass "import lands the good rows and reports the bad ones; exports round-trip"
