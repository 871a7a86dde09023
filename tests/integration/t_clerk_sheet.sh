# A clerk's Excel sheet as it really arrives: a merged title row and a
# "filled in by" row above the header, labels spaced out to line up
# ("姓　名", refused as unknown columns before), rows of empty cells below
# the records, saved as GBK CSV.  The title rows are skipped (and said), the
# empty rows are not refused rows.  A CSV broken halfway down (a stray
# quote) imports nothing at all and writes no rejected-rows file: before,
# the rows above the break were stored, the rows below it were in neither
# the cache nor the rejected-rows file, and the clerk was told to fix that
# file, losing them.
. "$(dirname "$0")/lib.sh"
make_pki
start_server
client t1 town1

python3 - "$T/sheet.csv" "$T/broken.csv" <<'PY'
import sys
w=[7,9,10,5,8,4,2,1,6,3,7,9,10,5,8,4,2]
def idn(d):
    return d + "10X98765432"[sum(int(a)*b for a,b in zip(d,w))%11]
rows = ["某某镇流动人口登记表,,,,", ",填报单位：某某镇,,填报日期：2026年1月5日,", ",,,,",
        "姓　名,身份证号,性　别,出生日期,住  址"]     # labels spaced out to line up
people = []
for i in range(4):
    d = idn("110105" + "1981%02d%02d" % (i + 1, 5 + i) + "%03d" % (610 + i))
    people.append(d)
    rows.append("%s,%s,,%s/%d/%d,幸福路%d号" % ("钱孙李周"[i] + "明", d, d[6:10], int(d[10:12]), int(d[12:14]), i))
rows += [",,,,", ",,,,", ",,,,"]
open(sys.argv[1], "wb").write(("\r\n".join(rows) + "\r\n").encode("gb18030"))
broken = ["姓名,身份证号,住址"]
for i in range(5):
    d = idn("110105" + "1972%02d%02d" % (i + 1, 5 + i) + "%03d" % (710 + i))
    broken.append("%s,%s,%s" % ("赵吴郑王冯"[i] + "强", d, '幸福路"5"号' if i == 2 else "幸福路%d号" % i))
open(sys.argv[2], "w", encoding="utf-8-sig").write("\r\n".join(broken) + "\r\n")
PY

rc=0; ps --data "$T/t1" import "$T/sheet.csv" --kind person --lang zh >"$T/s.out" 2>"$T/s.err" || rc=$?
expect_eq "$rc" 0 "a sheet with a title and empty rows imports: $(cat "$T/s.err")"
grep -q "^表头之上的 2 行是表格标题，已跳过" "$T/s.out" || fail "title rows said: $(cat "$T/s.out")"
grep -q "^共 4 行，已导入 4 行（0 行无变化，0 行被拒绝）" "$T/s.out" || fail "summary: $(cat "$T/s.out")"
[ ! -e "$T/sheet.csv.rejected.csv" ] || fail "empty rows are not rejected rows"
expect_eq "$(count t1)" 4 "four persons"
pass "title rows and empty rows of an Excel sheet"

rc=0; ps --data "$T/t1" import "$T/broken.csv" --kind person --lang zh >"$T/b.out" 2>"$T/b.err" || rc=$?
expect_eq "$rc" 4 "a broken CSV exits 4"
expect_eq "$(count t1)" 4 "nothing of a broken CSV is stored"
[ ! -e "$T/broken.csv.rejected.csv" ] || fail "no rejected-rows file for a refused file: $(cat "$T/broken.csv.rejected.csv")"
grep -q "第 4 行: 文件: CSV 格式错误" "$T/b.err" || fail "the break named in Chinese with its line: $(cat "$T/b.err")"
grep -q "未导入任何一行：请按上面的提示改正该文件后重新导入" "$T/b.out" || fail "what to do: $(cat "$T/b.out")"
grep -q "rejected rows are in\|已写入" "$T/b.out" && fail "points at a rejected-rows file: $(cat "$T/b.out")"
sed -i 's/幸福路"5"号/幸福路5号/' "$T/broken.csv"
expect_eq "$(ps --data "$T/t1" import "$T/broken.csv" --kind person)" "imported 5 of 5 rows (0 unchanged, 0 rejected)" \
    "the corrected file imports whole"
pass "a CSV broken halfway imports nothing and says to fix the file"

# The same entries again: a file imported twice, or imported once more after
# an import stopped part way (Ctrl-C, a full disk: the batches before the
# stop are stored).  Visits were added a second time, and a person row was
# refused as "already registered" although it said nothing new.  A row
# copied twice in the sheet is one entry.
python3 - "$T/visits.csv" "$(ps --data "$T/t1" list --kind person --format json | python3 -c '
import json, sys; print(",".join(r["id_number"] for r in json.load(sys.stdin)))')" <<'PY'
import sys
ids = sys.argv[2].split(",")
rows = ["服务对象,服务项目,服务日期,服务机构"]
for i, d in enumerate(ids):
    rows.append("%s,followup,2026/11/%d,镇卫生院" % (d, i + 1))
rows.append(rows[-1])                                   # copied twice in the sheet
open(sys.argv[1], "w", encoding="utf-8-sig").write("\r\n".join(rows) + "\r\n")
PY
nv=$(($(wc -l <"$T/visits.csv") - 2))
head -n 4 "$T/visits.csv" >"$T/visits_part.csv"          # what an interrupted import stored
expect_eq "$(ps --data "$T/t1" import "$T/visits_part.csv" --kind service_visit)" \
    "imported 3 of 3 rows (0 unchanged, 0 rejected)" "the first part"
ps --data "$T/t1" import "$T/visits.csv" --kind service_visit --lang zh >"$T/v.out" || fail "the whole file again"
grep -q "^共 $((nv + 1)) 行，已导入 $((nv - 3)) 行（4 行无变化，0 行被拒绝）" "$T/v.out" || fail "visits again: $(cat "$T/v.out")"
grep -q "^其中 4 行与已有的记录（或本文件前面的某行）完全相同，未重复添加" "$T/v.out" || fail "repeats said: $(cat "$T/v.out")"
expect_eq "$(count t1 service_visit)" "$nv" "each visit once"
expect_eq "$(ps --data "$T/t1" import "$T/visits.csv" --kind service_visit | head -n 1)" \
    "imported 0 of $((nv + 1)) rows ($((nv + 1)) unchanged, 0 rejected)" "a third time adds nothing"
rc=0; ps --data "$T/t1" import "$T/sheet.csv" --kind person >"$T/p2.out" 2>"$T/p2.err" || rc=$?
expect_eq "$rc" 0 "persons imported again: $(cat "$T/p2.err")"
grep -q "^imported 0 of 4 rows (4 unchanged, 0 rejected)" "$T/p2.out" || fail "persons again: $(cat "$T/p2.out")"
expect_eq "$(count t1)" 9 "no person twice"
pass "a file imported again adds nothing; a row copied twice is one entry"

# Visits as a clerk writes them: the service by the start of its Chinese
# name (随访 for 随访服务), a date cell formatted as date and time, 号 for
# 日; a date Excel saved as its serial number and an unknown service are
# refused in Chinese with what to do and the choices by their Chinese names.
pid1=$(ps --data "$T/t1" list --kind person --format json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["id_number"])')
printf '服务对象,服务项目,服务日期\r\n%s,随访,2026/10/5 0:00\r\n%s,咨询,2026年10月6号\r\n%s,随访,46300\r\n%s,体检,2026/10/7\r\n' \
    "$pid1" "$pid1" "$pid1" "$pid1" | iconv -f utf-8 -t gb18030 >"$T/v3.csv"
rc=0; ps --data "$T/t1" import "$T/v3.csv" --kind service_visit --lang zh >"$T/v3.out" 2>"$T/v3.err" || rc=$?
expect_eq "$rc" 4 "two visits refused"
grep -q "^共 4 行，已导入 2 行（0 行无变化，2 行被拒绝）" "$T/v3.out" || fail "visits: $(cat "$T/v3.out") $(cat "$T/v3.err")"
grep -q "第 4 行: 服务日期: Excel 把日期存成了数字：请把该列设为“日期”格式后重新保存" "$T/v3.err" || fail "serial date: $(cat "$T/v3.err")"
grep -q "第 5 行: 服务项目: 应为以下之一：免费孕前优生健康检查、生殖健康检查、随访服务、避孕药具发放、咨询服务" "$T/v3.err" ||
    fail "choices in Chinese: $(cat "$T/v3.err")"
ps --data "$T/t1" list --kind service_visit --format json | python3 -c '
import json, sys
got = sorted((r["service"], r["visit_date"]) for r in json.load(sys.stdin) if r["visit_date"].startswith("2026-10"))
assert got == [("consultation", "2026-10-06"), ("followup", "2026-10-05")], got' || fail "visits stored"
pass "services by their Chinese names' start, dates with a time or 号; serial dates and unknown services explained"

# `add` of a person already registered, for a clerk whose language is
# Chinese: the refusal was English while every other reason was Chinese.
rc=0; LANG=zh_CN.UTF-8 ps --data "$T/t1" add person --set 姓名=某某 --set "身份证号=$pid1" 2>"$T/dup.err" >/dev/null || rc=$?
expect_eq "$rc" 4 "add of a registered person"
grep -q "^popsync: add: 该身份证号已登记：记录 .*要修改那条记录请加 --update" "$T/dup.err" || fail "in Chinese: $(cat "$T/dup.err")"
pass "a registered person refused in the clerk's language"

# The server gone when the clerk syncs: what failed, that nothing is lost
# and what to do, in Chinese for a Chinese clerk (it was English only).
ps --data "$T/t1" edit "$(ps --data "$T/t1" find "$pid1" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["id"])')" \
    --set 联系电话=13812345678 >/dev/null || fail "an edit to send"
stop_server
rc=0; LANG=zh_CN.UTF-8 ps --data "$T/t1" sync >/dev/null 2>"$T/sync.err" || rc=$?
expect_eq "$rc" 3 "sync without the server"
grep -q "^popsync: 同步失败：" "$T/sync.err" || fail "failure in Chinese: $(cat "$T/sync.err")"
grep -q "没有丢失任何内容：[0-9]* 条修改仍在本机缓存中" "$T/sync.err" || fail "nothing lost, in Chinese: $(cat "$T/sync.err")"
grep -q "怎么办：检查网络" "$T/sync.err" || fail "what to do, in Chinese: $(cat "$T/sync.err")"
pass "a failed sync explained in Chinese"

# The sheet saved as Excel's "Unicode text" (Unicode 文本): UTF-16 with a
# BOM, cells separated by tabs.  It was refused with a misleading reason
# ("a column name is not valid UTF-8").
python3 - "$T/u16.txt" <<'PY'
import sys
w=[7,9,10,5,8,4,2,1,6,3,7,9,10,5,8,4,2]
d = "11010519770707881"; d += "10X98765432"[sum(int(a)*b for a,b in zip(d,w))%11]
text = "姓名\t联系电话\t身份证号\t住址\r\n杜甫\t\t%s\t成都, 草堂\r\n" % d
open(sys.argv[1], "wb").write(text.encode("utf-16"))
PY
rc=0; ps --data "$T/t1" import "$T/u16.txt" --kind person >"$T/u16.out" 2>"$T/u16.err" || rc=$?
expect_eq "$rc" 0 "Unicode text imports: $(cat "$T/u16.err")"
expect_eq "$(tr '\n' '|' <"$T/u16.out")" "read $T/u16.txt as UTF-16 (Unicode text) text|imported 1 of 1 rows (0 unchanged, 0 rejected)|" \
    "Unicode text summary"
ps --data "$T/t1" find 杜甫 --json | python3 -c '
import json, sys; r = json.load(sys.stdin)[0]
assert (r["phone"], r["address"]) == ("", "成都, 草堂"), r' || fail "Unicode text cells"
pass "Excel's Unicode text (UTF-16, tabs) imports"

# A value that is none of the choices, typed with --set by a Chinese clerk:
# the choices in Chinese (it was "invalid value ... (expected one of:
# single married divorced widowed)"); 女性 is 女.
rc=0; LANG=zh_CN.UTF-8 ps --data "$T/t1" add person --set 姓名=某某 --set "身份证号=$pid1" --set 性别=女性 --set 婚姻状况=再婚 \
    2>"$T/set.err" >/dev/null || rc=$?
expect_eq "$rc" 4 "a value none of the choices"
expect_eq "$(cat "$T/set.err")" "popsync: add: --set 婚姻状况: 不是可选的值：未婚、已婚、离婚 或 丧偶" "the choices in Chinese"
pass "--set choices said in Chinese"

# The cache fills up halfway through an import (a test hook caps its map:
# a full disk without one).  What was stored is said with what to do, and
# importing the same file again once there is room adds only the rest.
python3 - "$T/many.csv" <<'PY'
import sys, datetime
w=[7,9,10,5,8,4,2,1,6,3,7,9,10,5,8,4,2]
rows = ["姓名,身份证号,住址"]
day = datetime.date(1950, 1, 1)
for i in range(6000):
    d = "110105" + (day + datetime.timedelta(days=i)).strftime("%Y%m%d") + "%03d" % (100 + i % 800)
    d += "10X98765432"[sum(int(a)*b for a,b in zip(d,w))%11]
    rows.append("赵%d,%s,幸福路%d号" % (i, d, i))
open(sys.argv[1], "w", encoding="utf-8-sig").write("\r\n".join(rows) + "\r\n")
PY
client full town1
rc=0; POPSYNC_TEST_CACHE_MAP_BYTES=3500000 ps --data "$T/full" import "$T/many.csv" --kind person --lang zh \
    >"$T/full.out" 2>"$T/full.err" || rc=$?
expect_eq "$rc" 1 "an import the cache cannot hold"
stored=$(count full)
[ "$stored" -gt 0 ] && [ "$stored" -lt 6000 ] || fail "part stored: $stored"
grep -q "本机缓存已满：前 $stored 行已保存；请联系区县信息部门，之后重新导入同一文件" "$T/full.err" || fail "said: $(cat "$T/full.err")"
ps --data "$T/full" import "$T/many.csv" --kind person >"$T/full2.out" || fail "the same file again"
grep -q "^imported $((6000 - stored)) of 6000 rows ($stored unchanged, 0 rejected)" "$T/full2.out" || fail "again: $(cat "$T/full2.out")"
expect_eq "$(count full)" 6000 "every row once"
pass "a cache that fills up mid-import: said, and the same file again adds the rest"

# Headers as the township's older forms name the columns (身份证号码,
# 手机号码, 家庭住址): the file was refused for unknown columns.  An
# unknown --set field, for a Chinese clerk, lists the Chinese labels (it
# was English, cut off mid-word).
python3 - "$T/alias.csv" <<'PY'
import sys
w=[7,9,10,5,8,4,2,1,6,3,7,9,10,5,8,4,2]
d = "11010519660606991"; d += "10X98765432"[sum(int(a)*b for a,b in zip(d,w))%11]
open(sys.argv[1], "w", encoding="utf-8-sig").write("姓名,身份证号码,手机号码,家庭住址\r\n白居易,%s,13900000001,洛阳\r\n" % d)
PY
expect_eq "$(ps --data "$T/t1" import "$T/alias.csv" --kind person)" "imported 1 of 1 rows (0 unchanged, 0 rejected)" "other column names"
ps --data "$T/t1" find 白居易 --json | python3 -c '
import json, sys; r = json.load(sys.stdin)[0]
assert (r["phone"], r["address"]) == ("13900000001", "洛阳"), r' || fail "aliased columns stored"
rc=0; LANG=zh_CN.UTF-8 ps --data "$T/t1" add person --set 姓名=某某 --set 职业=农民 2>"$T/unk.err" >/dev/null || rc=$?
expect_eq "$rc" 4 "an unknown field"
grep -q "^popsync: add: --set 职业: 没有这个字段；可用的字段：所属单位、身份证号、姓名、.*（详见 popsync fields person --lang zh）$" "$T/unk.err" ||
    fail "unknown field in Chinese: $(cat "$T/unk.err")"
pass "older forms' column names; an unknown field said in Chinese"

# A file another system exported for Excel: ID numbers written ="…" (Excel's
# formula for text), GBK.  The whole file was refused as malformed CSV.
printf '姓名,身份证号码,性别\r\n王维,="%s",\r\n' "$(python3 -c '
w=[7,9,10,5,8,4,2,1,6,3,7,9,10,5,8,4,2]; d="11010519701010551"
print(d+"10X98765432"[sum(int(a)*b for a,b in zip(d,w))%11])')" | iconv -f utf-8 -t gb18030 >"$T/eq.csv"
ps --data "$T/t1" import "$T/eq.csv" --kind person >"$T/eq.out" 2>"$T/eq.err" || fail "=\"…\" cells: $(cat "$T/eq.err")"
grep -q "^imported 1 of 1 rows" "$T/eq.out" || fail "=\"…\" summary: $(cat "$T/eq.out")"
expect_eq "$(ps --data "$T/t1" find 王维 --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["birth_date"])')" \
    "1970-10-10" "the ID number read from =\"…\""
pass "ID numbers written =\"…\" for Excel"

# The disk itself full (tests/tools/ps_enospc.c makes the cache's writes fail
# with ENOSPC while a flag file exists): said as a full disk with what to
# do in Chinese, and once there is room the same file imports whole.
if [ -n "${PS_ENOSPC_LIB:-}" ] && [ -f "$PS_ENOSPC_LIB" ]; then
    client disk town1
    : >"$T/disk.flag"
    rc=0; LD_PRELOAD=$PS_ENOSPC_LIB PS_ENOSPC_FLAG=$T/disk.flag ps --data "$T/disk" import "$T/many.csv" --kind person \
        --lang zh >/dev/null 2>"$T/disk.err" || rc=$?
    expect_eq "$rc" 1 "an import on a full disk"
    grep -q "^popsync: import: 磁盘已满：前 0 行已保存；请腾出磁盘空间后重新导入同一文件" "$T/disk.err" || fail "disk full said: $(cat "$T/disk.err")"
    rm -f "$T/disk.flag"
    expect_eq "$(ps --data "$T/disk" import "$T/many.csv" --kind person | head -n 1)" \
        "imported 6000 of 6000 rows (0 unchanged, 0 rejected)" "the same file once there is room"
    pass "a full disk said with what to do"
fi

# The server refuses a change (a visit to a person the district deleted
# meanwhile): the sync's note is in Chinese for a Chinese clerk, and the
# change is kept to correct.
start_server
ps --data "$T/t1" config set server "127.0.0.1:$PORT" >/dev/null || fail "t1 to the restarted server"
client adm admin
ps --data "$T/t1" sync --quiet || fail "t1 sync"
gone=$(ps --data "$T/t1" add person --set 姓名=孟浩然 --set "身份证号=$(python3 -c '
w=[7,9,10,5,8,4,2,1,6,3,7,9,10,5,8,4,2]; d="11010519690101771"
print(d+"10X98765432"[sum(int(a)*b for a,b in zip(d,w))%11])')") || fail "a person to delete"
ps --data "$T/t1" sync --quiet || fail "t1 sync (person)"
ps --data "$T/adm" sync --quiet || fail "adm sync"
ps --data "$T/adm" delete "$gone" >/dev/null || fail "the district deletes"
ps --data "$T/adm" sync --quiet || fail "adm sync (delete)"
ps --data "$T/t1" add service_visit --set "服务对象=$gone" --set 服务项目=随访 --set 服务日期=2026/11/2 >/dev/null || fail "a visit"
rc=0; LANG=zh_CN.UTF-8 ps --data "$T/t1" sync >/dev/null 2>"$T/ref.err" || rc=$?
expect_eq "$rc" 6 "a refused change"
grep -q "^popsync: sync: 1 条修改被服务器退回，已完整保留在本机缓存中；请用 'popsync refused edit ID' 改正" "$T/ref.err" ||
    fail "refusal note in Chinese: $(cat "$T/ref.err")"
expect_eq "$(ps --data "$T/t1" refused list --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')" 1 "kept to correct"
stop_server
pass "a refusal at sync said in Chinese, the change kept"
