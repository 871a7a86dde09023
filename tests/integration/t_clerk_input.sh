# A township clerk types in Chinese and the way people write on paper:
# Chinese field names and values, dates as 1992/5/15 or 1992年5月15日,
# full-width digits, a lower-case x, amounts in yuan; sex and birth date come
# from the ID number; an ID number Excel turned into 1.30203E+17 is refused
# with what to do; `fields` and `template` show and make the import layout.
. "$(dirname "$0")/lib.sh"
make_pki
start_server
client t1 town1

# 110105199205150021: born 1992-05-15, 17th digit 2 (female); check char 1.
idn=$(python3 -c '
w=[7,9,10,5,8,4,2,1,6,3,7,9,10,5,8,4,2]; d="11010519920515002"
print(d+"10X98765432"[sum(int(a)*b for a,b in zip(d,w))%11])')

# Chinese labels, Chinese values, full-width digits, a slashed date.
fw=$(python3 -c 'import sys; print("".join(chr(ord(c)+0xFEE0) for c in sys.argv[1]))' "$idn")
id1=$(ps --data "$T/t1" add person --set 姓名=钱志强 --set "身份证号=$fw" --set 性别=女 \
      --set 出生日期=1992/5/15 --set 户籍类型=流动人口) || fail "add in Chinese"
expect_eq "$(ps --data "$T/t1" show "$id1" --format json | python3 -c '
import json, sys; r = json.load(sys.stdin)
print(r["id_number"], r["sex"], r["birth_date"], r["registration"])')" "$idn female 1992-05-15 migrant" "stored forms"

# Sex and birth date filled from the ID number; 1992年5月15日 accepted.
idx=$(python3 -c '
w=[7,9,10,5,8,4,2,1,6,3,7,9,10,5,8,4,2]
for s in range(100, 999):
    d="1101051949123%03d" % s + "0"; d=d[:17]
    c="10X98765432"[sum(int(a)*b for a,b in zip(d,w))%11]
    if c == "X": print(d+c); break')
lower=$(printf '%s' "$idx" | tr X x)
id2=$(ps --data "$T/t1" add person --set name=王芳 --set "id_number=$lower") || fail "add with lower-case x, no sex/birth date"
ps --data "$T/t1" show "$id2" --format json | python3 -c '
import json, sys; r = json.load(sys.stdin)
assert r["id_number"].endswith("X"), r["id_number"]
assert r["birth_date"] == r["id_number"][6:10] + "-" + r["id_number"][10:12] + "-" + r["id_number"][12:14], r
assert r["sex"] == ("male" if int(r["id_number"][16]) % 2 else "female"), r' || fail "completed from the ID number"

# A contradiction is refused, naming the field.
idc=$(python3 -c '
w=[7,9,10,5,8,4,2,1,6,3,7,9,10,5,8,4,2]; d="11010519920515004"
print(d+"10X98765432"[sum(int(a)*b for a,b in zip(d,w))%11])')
rc=0; ps --data "$T/t1" add person --set name=李四 --set "id_number=$idc" --set sex=男 2>"$T/e1" || rc=$?
expect_eq "$rc" 4 "sex contradicting the ID number"
grep -q "sex: does not match" "$T/e1" || fail "contradiction names the field: $(cat "$T/e1")"

# Excel's scientific notation: refused with what to do, value not echoed.
rc=0; ps --data "$T/t1" add person --set name=赵六 --set id_number=1.10105E+17 2>"$T/e2" || rc=$?
expect_eq "$rc" 4 "ID number in scientific notation"
grep -q "format the column as text" "$T/e2" || fail "scientific notation says what to do: $(cat "$T/e2")"

# Benefit in yuan; a visit with a Chinese service name and date.
b=$(ps --data "$T/t1" add benefit --set "领取人=$id1" --set 项目=独生子女父母奖励 --set 所属期=2026年3月 \
    --set "金额(元)=3,000.00" --set 状态=已发放 --set 发放日期=2026.3.20) || fail "benefit in Chinese"
expect_eq "$(ps --data "$T/t1" show "$b" --format json | python3 -c '
import json, sys; r = json.load(sys.stdin)
print(r["scheme"], r["period"], r["amount_fen"], r["status"], r["paid_date"])')" \
    "only_child_reward 2026-03 300000 paid 2026-03-20" "benefit stored forms"
rc=0; ps --data "$T/t1" add benefit --set "person_id=$id1" --set scheme=only_child_reward --set period=2026 \
    --set amount_fen=3000.00 --set status=eligible 2>"$T/e3" || rc=$?
expect_eq "$rc" 4 "yuan typed into amount_fen"
grep -q "use the field amount" "$T/e3" || fail "amount_fen hint: $(cat "$T/e3")"

# An unknown field lists the valid ones.
rc=0; ps --data "$T/t1" add person --set nmae=x 2>"$T/e4" || rc=$?
expect_eq "$rc" 4 "unknown field"
grep -q "fields: orgunit, id_number, name" "$T/e4" || fail "unknown field lists fields: $(cat "$T/e4")"

# fields and template need no cache.
ps fields person --lang zh | grep -q "^id_number *身份证号" || fail "fields in Chinese"
ps fields person --json | python3 -c '
import json, sys; f = json.load(sys.stdin)
assert [x["name"] for x in f][:3] == ["orgunit", "id_number", "name"], f
assert next(x for x in f if x["name"] == "sex")["required"] is True' || fail "fields --json"
ps template person --lang zh --out "$T/tpl.csv" >/dev/null || fail "template"
expect_eq "$(head -c 3 "$T/tpl.csv" | od -An -tx1 | tr -d ' ')" "efbbbf" "template has a BOM"

# The template filled in as a clerk would (Chinese values, slashed dates,
# full-width digits) imports.
python3 - "$T/tpl.csv" "$T/filled.csv" <<'PY'
import sys
w=[7,9,10,5,8,4,2,1,6,3,7,9,10,5,8,4,2]
def idn(d):
    return d + "10X98765432"[sum(int(a)*b for a,b in zip(d,w))%11]
head = open(sys.argv[1], encoding="utf-8-sig").read().strip().split(",")
rows = []
for i in range(5):
    d = idn("110105" + "1985%02d%02d" % (i + 1, 10 + i) + "%03d" % (100 + i))
    vals = {"身份证号": "".join(chr(ord(c) + 0xFEE0) for c in d) if i % 2 else d, "姓名": "孙%d" % i,
            "性别": "男" if int(d[16]) % 2 else "女", "出生日期": "%s/%d/%d" % (d[6:10], int(d[10:12]), int(d[12:14])),
            "婚姻状况": "已婚"}
    rows.append(",".join(vals.get(h, "") for h in head))
open(sys.argv[2], "w", encoding="utf-8-sig", newline="").write(",".join(head) + "\r\n" + "\r\n".join(rows) + "\r\n")
PY
expect_eq "$(ps --data "$T/t1" import "$T/filled.csv" --kind person)" "imported 5 of 5 rows (0 unchanged, 0 rejected)" "filled template imports"

# A file Excel saved as "CSV" on a Chinese Windows: GB18030/GBK, Chinese
# headers, full-width digits, slashed dates, an ID number in scientific
# notation, a CRLF inside a quoted address, and a person the cache already
# holds.  The good rows land; the bad ones go to the rejected-rows file
# with reasons in Chinese.
python3 - "$T/gbk.csv" "$T/gbk.expect" "$T/gbk.dup" <<'PY'
import sys
w=[7,9,10,5,8,4,2,1,6,3,7,9,10,5,8,4,2]
def idn(d):
    return d + "10X98765432"[sum(int(a)*b for a,b in zip(d,w))%11]
def fw(s):
    return "".join(chr(ord(c) + 0xFEE0) if c.isdigit() else c for c in s)
rows = ["姓名,身份证号,性别,出生日期,住址"]
good = []
for i in range(6):
    d = idn("110105" + "1978%02d%02d" % (i + 1, 3 + i) + "%03d" % (200 + i))
    sex = "男" if int(d[16]) % 2 else "女"
    name = ["钱志强", "孙丽", "周杰", "吴敏", "郑强", "王静"][i]
    born = "%s/%d/%d" % (d[6:10], int(d[10:12]), int(d[12:14]))
    if i == 2:
        rows.append('%s,1.10105E+17,%s,%s,幸福路%d号' % (name, sex, born, i))   # scientific notation
        continue
    if i == 4:
        rows.append('%s,%s,%s,%s-02-30,幸福路%d号' % (name, d, sex, d[6:10], i))    # no such date
        continue
    addr = '"幸福路%d号\r\n3单元"' % i if i == 1 else "幸福路%d号" % i
    rows.append("%s,%s,%s,%s,%s" % (name, fw(d) if i % 2 else d, sex, born, addr))
    if i == 5:
        open(sys.argv[3], "w").write(d + "\n")   # registered before the import
    else:
        good.append(d)
open(sys.argv[1], "wb").write(("\r\n".join(rows) + "\r\n").encode("gb18030"))
open(sys.argv[2], "w").write("\n".join(sorted(good)) + "\n")
PY
ps --data "$T/t1" add person --set 姓名=王静 --set "身份证号=$(cat "$T/gbk.dup")" >/dev/null || fail "the person already held"
rc=0; ps --data "$T/t1" import "$T/gbk.csv" --kind person --lang zh >"$T/gbk.out" 2>"$T/gbk.err" || rc=$?
expect_eq "$rc" 4 "GBK import with bad rows exits 4"
expect_eq "$(head -n 2 "$T/gbk.out" | tr '\n' '|')" "$T/gbk.csv：已按 GB18030 (GBK) 编码读取|共 6 行，已导入 3 行（0 行无变化，3 行被拒绝）|" "GBK import summary"
grep -q "Excel 把身份证号变成了数字" "$T/gbk.err" || fail "scientific notation explained in Chinese: $(cat "$T/gbk.err")"
grep -q "出生日期: 该月没有这一天" "$T/gbk.err" || fail "bad date explained in Chinese: $(cat "$T/gbk.err")"
python3 - "$T/gbk.csv.rejected.csv" <<'PY' || fail "rejected rows in Chinese"
import csv, sys
rows = list(csv.reader(open(sys.argv[1], encoding="utf-8-sig", newline="")))
assert rows[0] == ["姓名", "身份证号", "性别", "出生日期", "住址", "行号", "错误原因"], rows[0]
assert [r[0] for r in rows[1:]] == ["周杰", "郑强", "王静"], rows
assert "Excel" in rows[1][-1] and "该月没有这一天" in rows[2][-1] and "该身份证号已登记" in rows[3][-1], rows
PY
ps --data "$T/t1" list --kind person --format json | python3 -c '
import json, sys
got = {r["id_number"]: r for r in json.load(sys.stdin)}
want = open(sys.argv[1]).read().split()
assert all(w in got for w in want), "missing good rows"
r = next(r for r in got.values() if r["name"] == "孙丽")
assert r["address"] == "幸福路1号\n3单元", repr(r["address"])
assert got["110105197801032008"]["name"] == "钱志强" and got["110105197801032008"]["birth_date"] == "1978-01-03"' "$T/gbk.expect" \
    || fail "GBK rows stored in UTF-8, CRLF in the address as LF"

# 钱志强 in GB18030 happens to be valid UTF-8 (Ǯ־ǿ): refused with a hint,
# imported with --encoding gbk.
idq=$(python3 -c '
w=[7,9,10,5,8,4,2,1,6,3,7,9,10,5,8,4,2]; d="11010519800101301"
print(d+"10X98765432"[sum(int(a)*b for a,b in zip(d,w))%11])')
printf 'name,id_number\r\n' >"$T/q.csv"
python3 -c 'import sys; open(sys.argv[1], "ab").write("钱志强,%s\r\n".encode("gb18030") % sys.argv[2].encode())' "$T/q.csv" "$idq"
rc=0; ps --data "$T/t1" import "$T/q.csv" --kind person >/dev/null 2>"$T/q.err" || rc=$?
expect_eq "$rc" 4 "ambiguous UTF-8/GBK file refused"
grep -q -- "--encoding gbk" "$T/q.err" || fail "ambiguous file says to give --encoding: $(cat "$T/q.err")"
expect_eq "$(ps --data "$T/t1" import "$T/q.csv" --kind person --encoding gbk | tail -n 1)" "imported 1 of 1 rows (0 unchanged, 0 rejected)" "--encoding gbk"
ps --data "$T/t1" list --kind person --format json | grep -q '"钱志强"' || fail "name read as GBK"

ps --data "$T/t1" sync --quiet || fail "sync"
stop_server
pass "Chinese names and values, forgiving dates, digits and amounts, fields and template"
