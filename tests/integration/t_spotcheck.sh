# Statistical spot checks (issue 20 point 1): the administrator draws a
# stratified sample per township from an unpredictable seed recorded with
# the method; the draw is reproducible from the seed, audited, and only the
# district may draw; a township fills in the results (a "differs" corrects
# the person as an ordinary edit) and nothing else; accuracy per township
# and per field with its Wilson interval matches a hand count.
. "$(dirname "$0")/lib.sh"
make_pki
start_server
client t1 town1
client t2 town2
client admin admin

people() {  # people N FIRSTSERIAL -> CSV of N persons with valid ID numbers
    python3 - "$1" "$2" <<'PY'
import sys
w=[7,9,10,5,8,4,2,1,6,3,7,9,10,5,8,4,2]
n, first = int(sys.argv[1]), int(sys.argv[2])
print("name,id_number")
for i in range(n):
    d = "110105198%d%02d%02d%03d" % (i % 10, 1 + i % 12, 1 + i % 28, first + i)
    print("人%d,%s" % (first + i, d + "10X98765432"[sum(int(a)*b for a,b in zip(d,w)) % 11]))
PY
}
sync_ok() { ps --data "$T/$1" sync --quiet >/dev/null 2>"$T/$1.sync.err" || fail "$1 sync: $(cat "$T/$1.sync.err")"; }
people 40 100 >"$T/p1.csv"
people 12 300 >"$T/p2.csv"
ps --data "$T/t1" import "$T/p1.csv" --kind person >/dev/null || fail "import t1"
ps --data "$T/t2" import "$T/p2.csv" --kind person >/dev/null || fail "import t2"
sync_ok t1; sync_ok t2; sync_ok admin

# --- only the district draws --------------------------------------------------------
rc=0; ps --data "$T/t1" spotcheck draw --month 2026-10 --size 3 >/dev/null 2>"$T/e" || rc=$?
expect_eq "$rc" 4 "a township's draw is refused"
grep -q "only the district administrator" "$T/e" || fail "refusal says who draws: $(cat "$T/e")"

# --- the draw: sample size from margin/confidence with the finite-population correction
audit_n() { "$POPSYNCD" audit verify --data "$T/server" | sed -n 's/.*intact: \([0-9]*\) entries.*/\1/p'; }
before=$(audit_n)
ps --data "$T/admin" spotcheck draw --month 2026-10 --margin 0.2 --confidence 0.9 >"$T/draw.out" || fail "draw: $(cat "$T/draw.out")"
# n0 = 1.6449^2 * 0.25 / 0.04 = 16.91; N=40: n = ceil(16.91 / (1 + 15.91/40)) = 13; N=12: ceil(16.91/(1+15.91/12)) = 8
grep -q "$TOWN1 .*40 persons, 13 drawn" "$T/draw.out" || fail "town1 sample size: $(cat "$T/draw.out")"
grep -q "$TOWN2 .*12 persons, 8 drawn" "$T/draw.out" || fail "town2 sample size: $(cat "$T/draw.out")"
draw=$(sed -n 's/^draw \([0-9a-f-]*\) month.*/\1/p' "$T/draw.out")
seed=$(sed -n 's/.* seed \([0-9a-f]*\) method.*/\1/p' "$T/draw.out")
[ ${#seed} = 32 ] || fail "seed recorded: $(cat "$T/draw.out")"
rc=0; ps --data "$T/admin" spotcheck draw --month 2026-10 --size 2 >/dev/null 2>"$T/e" || rc=$?
expect_eq "$rc" 4 "a second draw of the month is refused"
sync_ok admin
after=$(audit_n)
expect_eq "$((after - before))" 21 "the server audited the 21 spot checks created"
ps --data "$T/admin" spotcheck verify "$draw" >"$T/verify.out" || fail "verify: $(cat "$T/verify.out")"
expect_eq "$(grep -c "^[0-9]* reproduced: " "$T/verify.out")" 2 "both townships reproduced"
# Anyone may draw again from the seed: the same persons come out.
ps --data "$T/admin" spotcheck redraw --seed "$seed" --month 2026-10 --margin 0.2 --confidence 0.9 \
    | sed -n 's/^  //p' | sort >"$T/redraw.ids"
ps --data "$T/admin" spotcheck list --draw "$draw" --json \
    | python3 -c 'import json,sys; [print(r["person_id"]) for r in json.load(sys.stdin)]' | sort >"$T/drawn.ids"
cmp -s "$T/redraw.ids" "$T/drawn.ids" || fail "redraw from the seed differs: $(diff "$T/redraw.ids" "$T/drawn.ids")"
# Another seed gives another sample.
ps --data "$T/admin" spotcheck redraw --seed 00000000000000000000000000000001 --month 2026-10 --size 13 \
    --orgunit "$TOWN1" | sed -n 's/^  //p' | sort >"$T/other.ids"
cmp -s "$T/other.ids" <(grep -F -f "$T/other.ids" "$T/drawn.ids") && fail "another seed drew the same persons"

# --- the township sees its own sample only, fills in results ---------------------------
sync_ok t1; sync_ok t2
ps --data "$T/t1" spotcheck list --month 2026-10 --json >"$T/t1.json"
mapfile -t checks < <(python3 -c 'import json,sys; [print(r["id"]) for r in json.load(open(sys.argv[1]))]' "$T/t1.json")
expect_eq "${#checks[@]}" 13 "town1 sees its 13 spot checks"
expect_eq "$(ps --data "$T/t2" spotcheck list --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')" 8 \
    "town2 sees its 8"
# 13 checked: 9 match, 4 differ (address in 3, name in 2)
for i in 0 1 2 3 4 5 6 7 8; do
    ps --data "$T/t1" spotcheck check "${checks[$i]}" --matches --date 2026-10-20 >/dev/null || fail "check matches $i"
done
ps --data "$T/t1" spotcheck check "${checks[9]}" --differs --set 住址=幸福路8号 --note 已搬家 >/dev/null || fail "differs 9"
ps --data "$T/t1" spotcheck check "${checks[10]}" --differs --set address=幸福路9号 --set name=李四 >/dev/null || fail "differs 10"
ps --data "$T/t1" spotcheck check "${checks[11]}" --differs --set address=幸福路10号 >/dev/null || fail "differs 11"
ps --data "$T/t1" spotcheck check "${checks[12]}" --differs --set 姓名=王五 >/dev/null || fail "differs 12"
pid=$(ps --data "$T/t1" show "${checks[10]}" --format json | python3 -c 'import json,sys; print(json.load(sys.stdin)["person_id"])')
ps --data "$T/t1" show "$pid" --format json | python3 -c '
import json,sys; p=json.load(sys.stdin); assert p["name"]=="李四" and p["address"]=="幸福路9号", p' \
    || fail "the correction was applied to the person"
# A township changes only the results.
rc=0; ps --data "$T/t1" edit "${checks[0]}" --set seed=00000000000000000000000000000000 >/dev/null 2>"$T/e" || rc=$?
expect_eq "$rc" 4 "a township may not change the draw"
grep -q "set by the district's draw" "$T/e" || fail "says why: $(cat "$T/e")"
rc=0; ps --data "$T/t1" delete "${checks[0]}" >/dev/null 2>"$T/e" || rc=$?
[ "$rc" != 0 ] || fail "a township may not delete a spot check"
sync_ok t1; sync_ok admin

# --- accuracy against a hand count -----------------------------------------------------
ps --data "$T/admin" spotcheck results --month 2026-10 --json >"$T/res.json" || fail "results"
python3 - "$T/res.json" "$TOWN1" <<'PY' || fail "results differ from the hand count: $(cat "$T/res.json")"
import json, math, sys
r = json.load(open(sys.argv[1]))
t = [x for x in r["townships"] if x["township"] == sys.argv[2]][0]
def wilson(x, n, z=1.959963984540054):
    p = x / n
    c = (p + z*z/(2*n)) / (1 + z*z/n)
    h = z * math.sqrt(p*(1-p)/n + z*z/(4*n*n)) / (1 + z*z/n)
    return c - h, c + h
assert (t["drawn"], t["checked"], t["correct"]) == (13, 13, 9), t
lo, hi = wilson(9, 13)
assert abs(t["accuracy"] - 9/13) < 1e-9 and abs(t["ci_low"] - lo) < 1e-6 and abs(t["ci_high"] - hi) < 1e-6, (t, lo, hi)
for f, wrong in (("address", 3), ("name", 2), ("sex", 0)):
    g = t["fields"][f]
    lo, hi = wilson(13 - wrong, 13)
    assert g["correct"] == 13 - wrong and abs(g["ci_low"] - lo) < 1e-6 and abs(g["ci_high"] - hi) < 1e-6, (f, g)
tot = r["total"]
assert (tot["drawn"], tot["checked"]) == (21, 13), tot
PY
ps --data "$T/admin" report monthly --month 2026-10 >"$T/m.txt" || fail "report monthly"
grep -q "Spot-check accuracy" "$T/m.txt" || fail "monthly report has the accuracy panel: $(cat "$T/m.txt")"
grep -q " 69.2%" "$T/m.txt" || fail "monthly report shows town1's 9/13"
ps --data "$T/admin" report monthly --month 2026-10 --lang zh | grep -q "抽查准确率" || fail "monthly report (zh)"
ps --data "$T/admin" report quality | grep -q "Spot-check accuracy" || fail "quality report has the accuracy panel"
pass "spot checks: drawn by the district only, reproducible from the seed, audited, results and accuracy as counted by hand"
