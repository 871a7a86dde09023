# A clerk links records by what people know: a birth's mother, a benefit's
# person and a household's head by ID number instead of a record id; a
# birth registers the child as a person in the same step (no ID number yet)
# and links it; rules between records: the mother is a woman of plausible
# age, one payment per person, scheme and period, a first-birth subsidy to
# a woman, amounts within the scheme's bounds.
. "$(dirname "$0")/lib.sh"
make_pki
start_server
client t1 town1
client admin admin

mkid() {
    python3 -c '
import sys; w=[7,9,10,5,8,4,2,1,6,3,7,9,10,5,8,4,2]; d=sys.argv[1]
print(d+"10X98765432"[sum(int(a)*b for a,b in zip(d,w))%11])' "$1"
}
mom=$(mkid 11010519950307102)     # a woman born 1995-03-07
dad=$(mkid 11010519930101201)     # a man
girl=$(mkid 11010520170505202)    # a girl born 2017: too young to be a mother
today=$(date +%Y-%m-%d)
year=$(date +%Y)

h=$(ps --data "$T/t1" add household --set address=幸福路1号) || fail "household"
m=$(ps --data "$T/t1" add person --set 姓名=刘芳 --set "身份证号=$mom" --set "家庭户=$h") || fail "mother"
d=$(ps --data "$T/t1" add person --set 姓名=陈刚 --set "身份证号=$dad") || fail "father"
g=$(ps --data "$T/t1" add person --set 姓名=刘小 --set "身份证号=$girl") || fail "girl"
# A household's head by ID number (lower-case x and full-width digits are fine too).
ps --data "$T/t1" edit "$h" --set "户主=$dad" >/dev/null || fail "head by ID number"
expect_eq "$(ps --data "$T/t1" show "$h" --format json | python3 -c 'import json, sys; print(json.load(sys.stdin)["head_id"])')" "$d" "head resolved"

# A birth: the mother by her ID number, the child registered in the same step.
out=$(ps --data "$T/t1" add birth --set "母亲=$mom" --set 婴儿性别=女 --set "出生日期=$today" --set 孩次=1 \
      --child-name 刘小花) || fail "birth with child"
b=$(head -n 1 <<<"$out")
c=$(sed -n 's/^child: //p' <<<"$out")
[ -n "$c" ] || fail "child id printed: $out"
ps --data "$T/t1" show "$b" --format json | python3 -c '
import json, sys; r = json.load(sys.stdin)
assert r["mother_id"] == sys.argv[1] and r["child_id"] == sys.argv[2], r' "$m" "$c" || fail "birth links mother and child"
ps --data "$T/t1" show "$c" --format json | python3 -c '
import json, sys; r = json.load(sys.stdin)
assert (r["name"], r["sex"], r["birth_date"], r["id_number"], r["household_id"]) == \
       ("刘小花", "female", sys.argv[1], "", sys.argv[2]), r' "$today" "$h" || fail "child person: sex, date, household, no ID yet"
# The ID number is filled in later.
kid=$(python3 -c '
import sys; w=[7,9,10,5,8,4,2,1,6,3,7,9,10,5,8,4,2]; d="110105" + sys.argv[1].replace("-", "") + "002"
print(d+"10X98765432"[sum(int(a)*b for a,b in zip(d,w))%11])' "$today")
ps --data "$T/t1" edit "$c" --set "id_number=$kid" >/dev/null || fail "child's ID number filled in later"
# Older than a year without a number: refused.
rc=0; ps --data "$T/t1" add person --set name=无号 --set sex=male --set birth_date=2000-01-01 2>"$T/e0" || rc=$?
expect_eq "$rc" 4 "no ID number after the first year"
grep -q "first year" "$T/e0" || fail "says when it may be empty: $(cat "$T/e0")"

# Rules between records.
rc=0; ps --data "$T/t1" add birth --set "mother_id=$dad" --set child_sex=male --set "birth_date=$today" \
    --set birth_order=1 2>"$T/e1" || rc=$?
expect_eq "$rc" 4 "a man as mother"
grep -q "mother_id: is a man" "$T/e1" || fail "says the mother is a man: $(cat "$T/e1")"
rc=0; ps --data "$T/t1" add birth --set "mother_id=$girl" --set child_sex=male --set "birth_date=$today" \
    --set birth_order=1 2>"$T/e2" || rc=$?
expect_eq "$rc" 4 "an implausibly young mother"
grep -q "years old at this birth" "$T/e2" || fail "says the age: $(cat "$T/e2")"
rc=0; ps --data "$T/t1" add birth --set mother_id=110105199001011234 --set child_sex=male --set "birth_date=$today" \
    --set birth_order=1 2>"$T/e3" || rc=$?
expect_eq "$rc" 4 "unknown ID number as a reference"
grep -q "neither a record id nor the ID number of a person in this cache" "$T/e3" || fail "unknown person: $(cat "$T/e3")"
grep -q "110105199001011234" "$T/e3" && fail "the typed ID number echoed"

p1=$(ps --data "$T/t1" add benefit --set "领取人=$mom" --set scheme=only_child_reward --set "period=$year" \
     --set 金额=120 --set status=paid --set "paid_date=$today") || fail "benefit by ID number"
rc=0; ps --data "$T/t1" add benefit --set "person_id=$mom" --set scheme=only_child_reward --set "period=$year" \
    --set amount=120 --set status=eligible 2>"$T/e4" || rc=$?
expect_eq "$rc" 4 "second payment for the same person, scheme and period"
grep -q "already has a only_child_reward benefit for this period (record $p1)" "$T/e4" || fail "names the first payment: $(cat "$T/e4")"
ps --data "$T/t1" add benefit --set "person_id=$mom" --set scheme=only_child_reward --set "period=$((year - 1))" \
    --set amount=120 --set status=eligible >/dev/null || fail "another period is fine"
rc=0; ps --data "$T/t1" add benefit --set "person_id=$dad" --set scheme=first_birth_subsidy --set "period=$year" \
    --set amount=2000 --set status=eligible 2>"$T/e5" || rc=$?
expect_eq "$rc" 4 "first-birth subsidy to a man"
grep -q "person_id: is a man" "$T/e5" || fail "says why: $(cat "$T/e5")"
rc=0; ps --data "$T/t1" add benefit --set "person_id=$mom" --set scheme=first_birth_subsidy --set "period=$year" \
    --set amount=999999.99 --set status=eligible 2>"$T/e6" || rc=$?
expect_eq "$rc" 4 "999,999.99 yuan"
grep -q "at most 1000000 fen (10000 yuan) for scheme first_birth_subsidy" "$T/e6" || fail "scheme bound: $(cat "$T/e6")"
# Editing the payment itself is not a second payment.
ps --data "$T/t1" edit "$p1" --set amount=130 >/dev/null || fail "edit of a payment"

# Import: the person column holds ID numbers.
printf '领取人,项目,所属期,金额,状态\r\n%s,rural_reward,%s,960,eligible\r\n%s,rural_reward,%s,960,eligible\r\n' \
    "$dad" "$year" "$dad" "$((year - 1))" >"$T/ben.csv"
expect_eq "$(ps --data "$T/t1" import "$T/ben.csv" --kind benefit | head -n 1)" "imported 2 of 2 rows (0 unchanged, 0 rejected)" "import by ID number"
rc=0; ps --data "$T/t1" import "$T/ben.csv" --kind benefit >"$T/ben2.out" 2>/dev/null || rc=$?
expect_eq "$(head -n 1 "$T/ben2.out")" "imported 0 of 2 rows (2 unchanged, 0 rejected)" "the same payments again are not added again"
sed -i 's/,960,/,980,/' "$T/ben.csv"
rc=0; ps --data "$T/t1" import "$T/ben.csv" --kind benefit >"$T/ben2.out" 2>/dev/null || rc=$?
expect_eq "$(head -n 1 "$T/ben2.out")" "imported 0 of 2 rows (0 unchanged, 2 rejected)" "other payments for the same periods are refused"

ps --data "$T/t1" sync --quiet || fail "t1 sync"
ps --data "$T/admin" sync --quiet || fail "admin sync"
expect_eq "$(ps --data "$T/admin" show "$b" --format json | python3 -c 'import json, sys; print(json.load(sys.stdin)["child_id"])')" "$c" "the link reaches the district"
stop_server
pass "references by ID number, a birth registers its child, rules between records"
