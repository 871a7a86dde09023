# What a clerk whose language is Chinese reads from the CLI (LANG=zh_CN):
# the import summary line, `status`, `refused list`, `conflicts list` and
# the table of `find` are Chinese (they were English while the reasons
# around them were Chinese); under LANG=C the same commands print the same
# English as before (scripts and the other tests read it), and --json is
# the same whatever the language.
. "$(dirname "$0")/lib4.sh"
make_pki4
issue township $TA ta
start_server4
client a ta
client a2 ta
client adm admin

zh() { LANG=zh_CN.UTF-8 LC_ALL= sq "$@"; }
en() { LANG=C LC_ALL= sq "$@"; }

# Import: the summary line.
p1=$(idnum 1985-06-01 1 male)
p2=$(idnum 1985-06-02 2 male)
printf '姓名,身份证号\n钱明,%s\n孙明,%s\n' "$p1" "$p2" >"$T/p.csv"
expect_eq "$(zh a import "$T/p.csv" --kind person --dry-run | head -n 1)" "共 2 行，将导入 2 行（0 行无变化，0 行被拒绝）" \
    "dry-run summary in Chinese"
expect_eq "$(zh a import "$T/p.csv" --kind person | head -n 1)" "共 2 行，已导入 2 行（0 行无变化，0 行被拒绝）" \
    "import summary in Chinese"
expect_eq "$(en a import "$T/p.csv" --kind person | head -n 1)" "imported 0 of 2 rows (2 unchanged, 0 rejected)" \
    "import summary under LANG=C"
expect_eq "$(en a import "$T/p.csv" --kind person --lang zh | head -n 1)" "共 2 行，已导入 0 行（2 行无变化，0 行被拒绝）" \
    "--lang zh gives Chinese under LANG=C"
python3 -c 'import sys; open(sys.argv[1], "wb").write("姓名,身份证号\r\n钱明,{}\r\n".format(sys.argv[2]).encode("gb18030"))' \
    "$T/g.csv" "$p1"
expect_eq "$(zh a import "$T/g.csv" --kind person --dry-run | head -n 1)" "$T/g.csv：已按 GB18030 (GBK) 编码读取" \
    "the encoding read, in Chinese"
expect_eq "$(en a import "$T/g.csv" --kind person --dry-run | head -n 1)" "read $T/g.csv as GB18030 (GBK) text" \
    "the encoding read under LANG=C"
pass "import summary in the clerk's language"

# find: the table's header.
out=$(zh a find 钱明)
grep -q "^姓名 .*性别 .*出生日期 .*身份证号 .*单位 .*记录 ID$" <<<"$out" || fail "find header in Chinese: $out"
out=$(en a find 钱明)
grep -q "^name .*sex .*born .*ID number .*unit .*record id$" <<<"$out" || fail "find header under LANG=C: $out"
expect_eq "$(zh a find 钱明 --json)" "$(en a find 钱明 --json)" "find --json whatever the language"
pass "find table header in the clerk's language"

# status before any sync, and the empty lists.
st=$(zh a status)
grep -q "^待上传：  2 条修改（2 person）$" <<<"$st" || fail "pending in Chinese: $st"
grep -q "^上次同步：从未$" <<<"$st" || fail "last sync in Chinese: $st"
grep -q "^上次尝试：从未$" <<<"$st" || fail "last attempt in Chinese: $st"
grep -q "^冲突：尚不知道（请运行 'popsync sync'）$" <<<"$st" || fail "conflicts in Chinese: $st"
grep -q "^记录：    2 条（另有 0 条已删除）$" <<<"$st" || fail "records in Chinese: $st"
grep -q "pending\|last sync\|records:" <<<"$st" && fail "English left in the Chinese status: $st"
st=$(en a status)
grep -q "^pending:  2 change(s) to push (2 person)$" <<<"$st" || fail "pending under LANG=C: $st"
grep -q "^last sync: never$" <<<"$st" || fail "last sync under LANG=C: $st"
expect_eq "$(zh a refused list)" "没有被退回的修改" "no refused changes in Chinese"
expect_eq "$(en a refused list)" "no refused changes" "no refused changes under LANG=C"
pass "status before a sync in the clerk's language"

psync a
expect_eq "$(zh a conflicts list)" "没有未解决的冲突" "no open conflicts in Chinese"
expect_eq "$(en a conflicts list)" "no open conflicts" "no open conflicts under LANG=C"
st=$(zh a status)
grep -q "^上次同步：.*（已完成）$" <<<"$st" || fail "last sync done in Chinese: $st"
grep -q "^冲突：0 处未解决" <<<"$st" || fail "0 conflicts in Chinese: $st"
grep -q "^待上传：  0 条修改（无）$" <<<"$st" || fail "nothing pending in Chinese: $st"

# A conflict: both edit one person's phone.
p=$(zh a find 钱明 --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["id"])')
psync a2
sq a edit "$p" --set phone=13800000001 >/dev/null
sq a2 edit "$p" --set phone=13800000002 >/dev/null
psync a2
psync a
tab=$(zh a conflicts list)
grep -q "^冲突 .*记录 .*类别 .*单位 .*发生时间 .*状态$" <<<"$tab" || fail "conflict table header in Chinese: $tab"
grep -q " 未解决$" <<<"$tab" || fail "state in Chinese: $tab"
grep -q "^    字段 .*保留的（记录现在的值） .*未采用的（另一处修改）$" <<<"$tab" || fail "field header in Chinese: $tab"
grep -q "^    联系电话 *13800000002  *13800000001$" <<<"$tab" || fail "the field by its Chinese label: $tab"
grep -q "本机的修改未被采用：--keep mine 可恢复本机的修改" <<<"$tab" || fail "whose edit lost, in Chinese: $tab"
tab=$(en a conflicts list)
grep -q "^CONFLICT .*RECORD .*KIND .*UNIT .*RAISED .*STATE$" <<<"$tab" || fail "conflict table under LANG=C: $tab"
grep -q "^ *phone  *13800000002  *13800000001$" <<<"$tab" || fail "field line under LANG=C: $tab"
grep -q "your edit lost: --keep mine puts it back" <<<"$tab" || fail "whose edit lost under LANG=C: $tab"
expect_eq "$(zh a conflicts list --json)" "$(en a conflicts list --json)" "conflicts list --json whatever the language"
grep -q "^冲突：1 处未解决" <<<"$(zh a status)" || fail "1 conflict in Chinese: $(zh a status)"
pass "conflicts list in the clerk's language"

# A refused change: a visit to a person the district deleted meanwhile.
gone=$(en a find 孙明 --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["id"])')
psync adm
sq adm delete "$gone" >/dev/null || fail "the district deletes"
psync adm
sq a add service_visit --set "服务对象=$gone" --set 服务项目=随访 --set 服务日期=2026/11/2 >/dev/null || fail "a visit"
psync a
out=$(zh a refused list)
grep -q "^[0-9a-f-]\{36\}  service_visit *新增  .*：" <<<"$out" || fail "refused line in Chinese: $out"
grep -q "^共 1 条被退回的修改：用 'popsync refused edit ID --set 字段=值' 改正，或用 'popsync refused discard ID' 放弃$" <<<"$out" ||
    fail "refused summary in Chinese: $out"
out=$(en a refused list)
grep -q "^[0-9a-f-]\{36\}  service_visit *new    [a-z_]*: " <<<"$out" || fail "refused line under LANG=C: $out"
grep -q "^1 refused change(s): correct one with" <<<"$out" || fail "refused summary under LANG=C: $out"
expect_eq "$(zh a refused list --json)" "$(en a refused list --json)" "refused list --json whatever the language"
st=$(zh a status)
grep -q "^被退回：  1 条修改被服务器退回" <<<"$st" || fail "refused count in Chinese: $st"
grep -q "^  被退回 [0-9a-f-]\{36\}：" <<<"$st" || fail "refused entry in Chinese: $st"
grep -q "^请用 'popsync refused edit ID' 改正" <<<"$st" || fail "what to do in Chinese: $st"
st=$(en a status)
grep -q "^refused:  1 change(s)" <<<"$st" || fail "refused count under LANG=C: $st"
grep -q "^  rejected [0-9a-f-]\{36\}: " <<<"$st" || fail "refused entry under LANG=C: $st"
expect_eq "$(zh a status --json)" "$(en a status --json)" "status --json whatever the language"
pass "refused list and status in the clerk's language"

# status --all (the district's admin): the summary line and the header.
out=$(zh adm status --all)
grep -q "^服务器最新位置 [0-9]*；[0-9]* 处未解决的冲突；[0-9]* 台设备同步过$" <<<"$out" || fail "status --all in Chinese: $out"
grep -q "^节点 .*名称 .*角色 .*单位 .*上次联系 .*落后条数 .*冲突$" <<<"$out" || fail "status --all header in Chinese: $out"
out=$(en adm status --all)
grep -q "^server head [0-9]*; [0-9]* open conflict(s); [0-9]* node(s) have synced$" <<<"$out" || fail "status --all under LANG=C: $out"
grep -q "^node .*name .*role .*org unit .*last seen .*behind .*conflicts$" <<<"$out" || fail "status --all header under LANG=C: $out"
pass "status --all in the clerk's language"
