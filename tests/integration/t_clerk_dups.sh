# No person registered twice in the district (issue 16 point 3): the server
# keeps an ID-number index and refuses a second live person with a number
# (create, an edit that takes the number, a restore), naming the holder's
# record id and unit; a store that already holds duplicates opens, serves
# and builds its index with both; the quality report lists duplicates within
# and across townships and same name + birth date pairs; `popsync
# duplicates` lists candidate pairs offline; `popsync merge` merges two
# persons, moving what refers to the other, synced and audited as edits.
. "$(dirname "$0")/lib.sh"
make_pki
start_server
client t1 town1
client t2 town2
client admin admin

mkid() {  # mkid 17DIGITS -> the ID number with its check character
    python3 -c '
import sys; w=[7,9,10,5,8,4,2,1,6,3,7,9,10,5,8,4,2]; d=sys.argv[1]
print(d+"10X98765432"[sum(int(a)*b for a,b in zip(d,w))%11])' "$1"
}
add() {  # add CACHE NAME IDNUMBER [more --set]
    local c=$1 n=$2 i=$3
    shift 3
    ps --data "$T/$c" add person --set "name=$n" --set "id_number=$i" "$@"
}
sync_rc() { local rc=0; ps --data "$T/$1" sync --quiet >"$T/$1.sync.out" 2>"$T/$1.sync.err" || rc=$?; echo $rc; }
x=$(mkid 11010519900307123)
y=$(mkid 11010519900307135)  # same birth date and sex as x: an edit may take x
z=$(mkid 11010519700101555)

# --- a. the server's index ----------------------------------------------------------
a=$(add t1 张三 "$x") || fail "add 张三"
expect_eq "$(sync_rc t1)" 0 "t1 sync"
# town2 cannot see town1's people, so its cache accepts the number; the server does not.
b=$(add t2 张三 "$x") || fail "t2 add"
expect_eq "$(sync_rc t2)" 6 "second registration refused at sync"
ps --data "$T/t2" refused list >"$T/refused.out" 2>&1 || true
grep -q "id_number.*is already registered: record $a in unit $TOWN1" "$T/refused.out" "$T/t2.sync.err" ||
    fail "refusal names the holder: $(cat "$T/refused.out" "$T/t2.sync.err")"
ps --data "$T/t2" refused discard "$b" >/dev/null || fail "discard"
# An edit that takes a registered number.
c=$(add t2 李四 "$y") || fail "add 李四"
expect_eq "$(sync_rc t2)" 0 "t2 sync"
ps --data "$T/t2" edit "$c" --set "id_number=$x" >/dev/null || fail "local edit"
expect_eq "$(sync_rc t2)" 6 "edit to a registered number refused"
ps --data "$T/t2" refused list >"$T/refused.out" 2>&1 || true
grep -q "is already registered: record $a in unit $TOWN1" "$T/refused.out" "$T/t2.sync.err" || fail "edit refusal"
ps --data "$T/t2" refused discard "$c" >/dev/null || fail "discard edit"
# A restore of a person whose number was registered again meanwhile.
d=$(add t1 王五 "$z") || fail "add 王五"
expect_eq "$(sync_rc t1)" 0 "t1 sync"
ps --data "$T/t1" delete "$d" >/dev/null || fail "delete 王五"
expect_eq "$(sync_rc t1)" 0 "t1 sync delete"
e=$(add t2 王五 "$z") || fail "t2 registers the number again"
expect_eq "$(sync_rc t2)" 0 "number of a deleted person may be registered"
ps --data "$T/t1" restore "$d" >/dev/null || fail "local restore"
expect_eq "$(sync_rc t1)" 6 "restore refused"
ps --data "$T/t1" refused list >"$T/refused.out" 2>&1 || true
grep -q "is already registered: record $e in unit $TOWN2" "$T/refused.out" "$T/t1.sync.err" || fail "restore refusal"
ps --data "$T/t1" refused discard "$d" >/dev/null || fail "discard restore"
pass "server refuses a second live person per ID number (create, edit, restore) naming record and unit"

# --- a. a store that holds duplicates already -----------------------------------------
# Emulate a store written before the index: empty the index (its version
# stays), let duplicates in, then make the server rebuild it at open.
restart() {
    stop_server
    "$@"
    start_server
    for c in t1 t1b t2 admin; do
        [ -d "$T/$c" ] && { ps --data "$T/$c" config set server "127.0.0.1:$PORT" >/dev/null || fail "config $c"; }
    done
    return 0
}
w=$(mkid 11010519600505321)
k=$(add t1 赵六 "$w") || fail "add 赵六"
expect_eq "$(sync_rc t1)" 0 "t1 sync"
restart "$PS_LMDBPOKE" "$T/server" idnum drop
client t1b town1   # a second cache of town1 that has not pulled yet
q=$(add t1b 张三 "$x") || fail "t1b add"
expect_eq "$(sync_rc t1b)" 0 "within-township duplicate let in (index emptied)"
r=$(add t2 赵六 "$w") || fail "t2 add"
expect_eq "$(sync_rc t2)" 0 "cross-township duplicate let in (index emptied)"
restart "$PS_LMDBPOKE" "$T/server" meta delete "$(printf idnum_v | od -An -tx1 | tr -d ' \n')"
expect_eq "$("$PS_LMDBPOKE" "$T/server" idnum list 2>/dev/null | wc -l)" 6 "index rebuilt with both of each pair (a, c, e, k, q, r)"
ps --data "$T/t1b" edit "$q" --set phone=13900000001 >/dev/null || fail "edit a duplicate"
expect_eq "$(sync_rc t1b)" 0 "a stored duplicate can still be edited"
f=$(add t2 张三 "$x") || fail "t2 add again"
expect_eq "$(sync_rc t2)" 6 "a third registration is still refused"
ps --data "$T/t2" refused discard "$f" >/dev/null || fail "discard"
pass "a store with duplicates opens, serves, and builds its index with both"

# --- b. the quality report -----------------------------------------------------------
# Same name and birth date, different ID numbers: a possible duplicate.
p1=$(add t1 王芳 "$(mkid 11010519920101031)") || fail "add 王芳"
p2=$(add t2 王芳 "$(mkid 11010519920101052)") || fail "add 王芳 2"
expect_eq "$(sync_rc t1)" 0 "t1 sync"
expect_eq "$(sync_rc t2)" 0 "t2 sync"
ps --data "$T/admin" report quality --format json >"$T/q.json" || fail "report quality"
python3 - "$T/q.json" "$a" "$q" "$k" "$r" "$p1" "$p2" <<'PY' || fail "quality report: $(cat "$T/q.json")"
import collections, json, sys
q = json.load(open(sys.argv[1]))
a, qq, k, r, p1, p2 = sys.argv[2:8]
got = collections.defaultdict(dict)
for i in q["issues"]:
    got[i["check"]][i["record_id"]] = i["detail"]
d = got["duplicate_id_number"]
assert set(d) == {a, qq, k, r}, d
assert "1 record(s) in this township, 0 in others" in d[a], d[a]
assert "0 record(s) in this township, 1 in others" in d[k], d[k]
assert set(got["possible_duplicate"]) == {p1, p2}, got["possible_duplicate"]
assert q["counts"]["possible_duplicate"] == 2, q["counts"]
PY
ps --data "$T/admin" report quality --lang zh >"$T/qzh.out" || fail "zh quality"
grep -q "身份证号重复登记" "$T/qzh.out" || fail "zh check name: $(cat "$T/qzh.out")"
pass "quality report: duplicates within and across townships, same name + birth date"

# --- c. popsync duplicates -------------------------------------------------------------
expect_eq "$(sync_rc t1)" 0 "t1 pulls town1's second 张三 ($q)"
p3=$(add t1 王芳 "$(mkid 11010519920101053)") || fail "add a second 王芳"
ps --data "$T/t1" duplicates --json >"$T/dups.json" || fail "duplicates"
python3 - "$T/dups.json" "$a" "$q" "$p1" "$p3" <<'PY' || fail "duplicates: $(cat "$T/dups.json")"
import json, sys
d = json.load(open(sys.argv[1]))
a, q, p1, p3 = sys.argv[2:6]
got = {(p["reason"], frozenset((p["a"]["id"], p["b"]["id"]))): p for p in d}
assert set(got) == {("id_number", frozenset((a, q))), ("name_birth_date", frozenset((p1, p3)))}, list(got)
pq = got[("id_number", frozenset((a, q)))]
assert pq["a"]["orgunit"] == pq["b"]["orgunit"] == "110105001000", pq
assert set(pq["differ"]) == {"phone"}, pq["differ"]
assert set(got[("name_birth_date", frozenset((p1, p3)))]["differ"]) >= {"id_number"}
PY
ps --data "$T/t1" duplicates >"$T/dups.txt" || fail "duplicates table"
grep -q "^2 candidate pair(s)" "$T/dups.txt" || fail "duplicates table: $(cat "$T/dups.txt")"
pass "popsync duplicates: same ID number, same name + birth date, with the fields that differ"

# --- d. popsync merge ------------------------------------------------------------------
hh=$(ps --data "$T/t1" add household --set "head_id=$q" --set address=幸福路1号) || fail "household"
v=$(ps --data "$T/t1" add service_visit --set "person_id=$q" --set service=consultation --set visit_date=2024-05-01) ||
    fail "visit"
expect_eq "$(sync_rc t1)" 0 "t1 sync"
rc=0; ps --data "$T/t1" merge "$a" "$p1" 2>"$T/merge.err" || rc=$?
expect_eq "$rc" 4 "different ID numbers refused without --force"
grep -q "different ID numbers" "$T/merge.err" || fail "says why: $(cat "$T/merge.err")"
rc=0; ps --data "$T/t1" merge "$a" "$hh" 2>/dev/null || rc=$?
expect_eq "$rc" 4 "a household is not a person"
rc=0; ps --data "$T/t1" merge "$a" "$d" 2>/dev/null || rc=$?
expect_eq "$rc" 4 "a deleted person cannot be merged"
entries() { "$POPSYNCD" audit verify --data "$T/server" | sed -nE 's/.*intact: ([0-9]+) entries.*/\1/p'; }
before=$(entries)
ps --data "$T/t1" merge "$a" "$q" >"$T/merge.out" || fail "merge: $(cat "$T/merge.out")"
grep -q "^moved household $hh (head_id)" "$T/merge.out" || fail "household moved: $(cat "$T/merge.out")"
grep -q "^moved service_visit $v (person_id)" "$T/merge.out" || fail "visit moved"
grep -q "^phone: filled" "$T/merge.out" || fail "phone filled"
show() { ps --data "$T/$1" show "$2" --format json | python3 -c "import json,sys; r=json.load(sys.stdin); print($3)"; }
expect_eq "$(show t1 "$a" 'r["phone"]')" 13900000001 "KEEP took OTHER's phone"
expect_eq "$(show t1 "$hh" 'r["head_id"]')" "$a" "household head moved"
expect_eq "$(show t1 "$v" 'r["person_id"]')" "$a" "visit moved"
expect_eq "$(show t1 "$q" 'r.get("deleted", False)')" True "OTHER deleted"
expect_eq "$(sync_rc t1)" 0 "the merge syncs"
expect_eq "$(entries)" $((before + 4)) "four audited edits"
expect_eq "$(sync_rc admin)" 0 "admin sync"
expect_eq "$(show admin "$hh" 'r["head_id"]')" "$a" "the district sees the move"
expect_eq "$(show admin "$q" 'r.get("deleted", False)')" True "the district sees OTHER deleted"
# --force, --prefer other: KEEP takes OTHER's ID number, which the server
# accepts because OTHER's delete reaches it first.
ps --data "$T/t1" merge "$p1" "$p3" --force --prefer other >"$T/merge2.out" || fail "forced merge"
grep -q "^id_number: taken from the other record" "$T/merge2.out" || fail "id_number taken: $(cat "$T/merge2.out")"
expect_eq "$(sync_rc t1)" 0 "forced merge syncs"
ps --data "$T/admin" report quality --format json >"$T/q2.json" || fail "report quality"
python3 - "$T/q2.json" "$k" "$r" "$p1" "$p2" <<'PY' || fail "quality after merge: $(cat "$T/q2.json")"
import json, sys
q = json.load(open(sys.argv[1]))
dup = {i["record_id"] for i in q["issues"] if i["check"] == "duplicate_id_number"}
assert dup == set(sys.argv[2:4]), dup
# p3 is merged into p1; p1 and town2's 王芳 remain a possible pair.
assert {i["record_id"] for i in q["issues"] if i["check"] == "possible_duplicate"} == set(sys.argv[4:6]), q["issues"]
PY
expect_eq "$(ps --data "$T/t1" duplicates --json)" "[]" "no candidates left in t1"
stop_server
pass "popsync merge: fills KEEP, moves what refers to OTHER, deletes OTHER; synced and audited"
