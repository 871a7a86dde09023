# A late entry into an approved month warns (issue 16 point 4): once the
# district approves a township's month, the server lists it in Welcome
# (field 14), the cache keeps the list, and add, edit, delete, restore and
# import of a record whose counts fall into that month say so (the change is
# still made: it shows as a correction of the approved report).  A change
# that moves no count, a month still open, or another township's month says
# nothing.
. "$(dirname "$0")/lib4.sh"
make_pki4
issue township $TA townA
issue township $TB townB
start_server4
client admin admin
client ta townA
client tb townB

M=$(date -u -d "$(date -u +%Y-%m-15) -1 month" +%Y-%m)   # last month: approved below
NOW=$(date -u +%Y-%m)
mom=$(sq ta add person --set id_number="$(idnum 1990-05-05 12 female)" --set name=母亲 --set sex=female \
    --set birth_date=1990-05-05 --set orgunit=$TA_V1) || fail "mother"
sq ta add birth --set mother_id="$mom" --set child_sex=female --set birth_date="$M-03" --set birth_order=1 \
    --set orgunit=$TA_V1 >/dev/null || fail "birth in M"
psync ta
sq ta report submit --month "$M" >/dev/null || fail "submit"
sq admin report approve --month "$M" --orgunit $TA >/dev/null || fail "approve"
psync ta   # Welcome now lists M for townA
psync tb

late() { grep -c "already approved\|已经批准" "$1" || true; }
b=$(sq ta add birth --set mother_id="$mom" --set child_sex=male --set birth_date="$M-20" --set birth_order=2 \
    --set orgunit=$TA_V1 2>"$T/add.err") || fail "a late birth is still taken: $(cat "$T/add.err")"
grep -q "note: $M is already approved for township $TA: this entry shows as a correction" "$T/add.err" ||
    fail "late add warns: $(cat "$T/add.err")"
sq ta add birth --set mother_id="$mom" --set child_sex=male --set birth_date="$NOW-01" --set birth_order=3 \
    --set orgunit=$TA_V1 >/dev/null 2>"$T/now.err" || fail "birth this month"
expect_eq "$(late "$T/now.err")" 0 "an open month says nothing"
sq ta edit "$mom" --set phone=13900000000 2>"$T/phone.err" >/dev/null || fail "phone edit"
expect_eq "$(late "$T/phone.err")" 0 "an edit that moves no count says nothing"
sq ta edit "$b" --set child_sex=female 2>"$T/edit.err" >/dev/null || fail "edit the late birth"
expect_eq "$(late "$T/edit.err")" 1 "an edit that moves M's counts warns once"
sq ta delete "$b" 2>"$T/del.err" >/dev/null || fail "delete"
expect_eq "$(late "$T/del.err")" 1 "a delete from M warns"
sq ta restore "$b" 2>"$T/res.err" >/dev/null || fail "restore"
expect_eq "$(late "$T/res.err")" 1 "a restore into M warns"
LANG=zh_CN.UTF-8 sq ta edit "$b" --set child_sex=male 2>"$T/zh.err" >/dev/null || fail "zh edit"
grep -q "月报已经批准" "$T/zh.err" || fail "Chinese note: $(cat "$T/zh.err")"
pass "add, edit, delete and restore into an approved month warn; open months and count-neutral edits do not"

# Another township's approved month is not townB's.
momb=$(sq tb add person --set id_number="$(idnum 1991-05-05 13 female)" --set name=母亲乙 --set sex=female \
    --set birth_date=1991-05-05 --set orgunit=$TB_V1) || fail "mother B"
sq tb add birth --set mother_id="$momb" --set child_sex=male --set birth_date="$M-10" --set birth_order=1 \
    --set orgunit=$TB_V1 >/dev/null 2>"$T/b.err" || fail "birth B"
expect_eq "$(late "$T/b.err")" 0 "townB's month M is open"

# Import: one summary for the rows that fall into M.
cat >"$T/births.csv" <<CSV
mother_id,child_sex,birth_date,birth_order,orgunit
$mom,female,$M-25,2,$TA_V1
$mom,male,$NOW-02,3,$TA_V1
CSV
sq ta import "$T/births.csv" --kind birth >"$T/imp.out" 2>"$T/imp.err" || fail "import: $(cat "$T/imp.err")"
grep -q "1 of these rows fall into approved months" "$T/imp.err" || fail "import summary: $(cat "$T/imp.err")"
expect_eq "$(late "$T/imp.err")" 1 "one note for M"

# The district returns the month: no more notes after the next sync.
sq admin report return --month "$M" --orgunit $TA --note "recount" >/dev/null || fail "return"
psync ta
sq ta add birth --set mother_id="$mom" --set child_sex=male --set birth_date="$M-21" --set birth_order=4 \
    --set orgunit=$TA_V1 >/dev/null 2>"$T/ret.err" || fail "birth after return"
expect_eq "$(late "$T/ret.err")" 0 "a returned month is open again"
stop_server
pass "import notes the rows in approved months; a returned month warns no more"
