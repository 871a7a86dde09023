# generate: deterministic for a seed, realistic in its proportions, and
# valid: everything it makes is accepted by a real server and reaches an
# administrator intact.
. "$(dirname "$0")/lib.sh"
make_pki

# A small district on lib.sh's codes: two 街道 with communities, one 镇 with villages.
UNITS="$T/units.csv"
cat >"$UNITS" <<'EOF'
code,parent,name,kind
110105000000,,朝阳区,district
110105001000,110105000000,建外街道,subdistrict
110105001001,110105001000,永安里社区,community
110105001002,110105001000,建外SOHO社区,community
110105001003,110105001000,光华里社区,community
110105001004,110105001000,北郎家园社区,community
110105002000,110105000000,朝外街道,subdistrict
110105002001,110105002000,吉祥里社区,community
110105002002,110105002000,芳草地社区,community
110105002003,110105002000,雅宝里社区,community
110105003000,110105000000,东坝镇,town
110105003201,110105003000,单店村,village
110105003202,110105003000,驹子房村,village
110105003203,110105003000,东坝村,village
EOF

start_server --orgunits "$UNITS"
for c in a b c notree; do client $c town1; done
client big admin
client admin admin

# Normalised JSON of a cache: what the generator decides, without what the
# cache adds at write time (creation time, node, revision).
norm() {
    ps --data "$T/$1" list --format json | python3 -c '
import json,sys
recs=json.load(sys.stdin)
for r in recs:
    for k in ("created_ms","updated_ms","changed_by","rev"):
        r.pop(k,None)
print(json.dumps(recs,ensure_ascii=False,sort_keys=True,indent=0))'
}

# --- determinism -------------------------------------------------------------
outa=$(ps --data "$T/a" generate --persons 3000 --seed 11 --orgunits "$UNITS")
outb=$(ps --data "$T/b" generate --persons 3000 --seed 11 --orgunits "$UNITS")
outc=$(POPSYNC_ORGUNITS="$UNITS" ps --data "$T/c" generate --persons 3000 --seed 12)
echo "$outa" | grep -Eq '^generated 3000 persons, [0-9]+ households, [0-9]+ births, [0-9]+ migrations, [0-9]+ benefits, [0-9]+ service visits in 110105001000$' ||
    fail "summary line: $outa"
expect_eq "$outb" "$outa" "same seed, same summary"
norm a >"$T/a.json"
norm b >"$T/b.json"
norm c >"$T/c.json"
cmp -s "$T/a.json" "$T/b.json" || fail "same seed gave different records: $(diff "$T/a.json" "$T/b.json" | head -5)"
cmp -s "$T/a.json" "$T/c.json" && fail "a different seed gave the same records"
[ -z "$(comm -12 <(ids a) <(ids c))" ] || fail "two seeds share record ids"
pass "same seed, same records field for field (ids included); another seed differs"

# --- realism and validity of one township's records ---------------------------
python3 - "$T/a.json" <<'PY' || fail "township data"
import collections, datetime, json, sys
recs = json.load(open(sys.argv[1]))
by = collections.defaultdict(list)
for r in recs:
    by[r["kind"]].append(r)
P = {r["id"]: r for r in by["person"]}
H = {r["id"]: r for r in by["household"]}
n = len(P)
assert n == 3000, n
today = datetime.date.today()
def d(s): return datetime.date.fromisoformat(s)
def between(kind, lo, hi):
    x = len(by[kind]) / n
    assert lo <= x <= hi, "%s: %d per person is %.3f, expected %.3f..%.3f" % (kind, len(by[kind]), x, lo, hi)
between("household", 1 / 3.3, 1 / 2.4)
between("birth", 0.008, 0.04)
between("migration", 0.015, 0.05)
between("benefit", 0.02, 0.07)
between("service_visit", 0.10, 0.22)
# Spread over the communities of the township, never the township itself.
units = collections.Counter(r["orgunit"] for r in recs)
assert set(units) <= {"110105001001", "110105001002", "110105001003", "110105001004"}, units
assert len(units) == 4, units
# ID numbers: GB 11643 check digit, district area code, birth date and sex digit agree, unique.
W = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
for p in P.values():
    idn = p["id_number"]
    assert len(idn) == 18 and idn[:6] == "110105", idn
    assert "10X98765432"[sum(int(c) * w for c, w in zip(idn[:17], W)) % 11] == idn[17], idn
    assert idn[6:14] == p["birth_date"].replace("-", ""), p
    assert (int(idn[16]) % 2 == 1) == (p["sex"] == "male"), p
    assert d(p["birth_date"]) <= today and p["name"] and p["address"], p
assert len({p["id_number"] for p in P.values()}) == n, "duplicate ID numbers"
reg = collections.Counter(p["registration"] for p in P.values())
assert 0.75 <= reg["local"] / n <= 0.95, reg
eth = collections.Counter(p["ethnicity"] for p in P.values())
assert eth["汉族"] / n > 0.85, eth
# Households: the head is a person of the unit; every other person names its household.
heads = {h["head_id"] for h in H.values()}
for h in H.values():
    assert h["head_id"] in P and P[h["head_id"]]["orgunit"] == h["orgunit"], h
for p in P.values():
    assert p["household_id"] in H or p["id"] in heads, p
assert sum(p["household_id"] != "" for p in P.values()) + len(heads) == n
# Births: mothers are women of the unit aged 20-42 on the day, within three years.
for b in by["birth"]:
    m = P[b["mother_id"]]
    age = (d(b["birth_date"]) - d(m["birth_date"])).days / 365.25
    assert m["sex"] == "female" and m["orgunit"] == b["orgunit"] and 20 <= age < 43, (b, m)
    assert (today - d(b["birth_date"])).days <= 3 * 366 and 1 <= b["birth_order"] <= 3, b
# Migrations: both directions, another place's code, the exchange dates in order.
mg = by["migration"]
dirs = collections.Counter(r["direction"] for r in mg)
assert dirs["inflow"] > 0 and dirs["outflow"] > 0, dirs
for r in mg:
    assert r["person_id"] in P and len(r["other_place_code"]) == 12 and r["other_place_code"] != r["orgunit"], r
    if r["submitted_date"]:
        assert d(r["start_date"]) <= d(r["submitted_date"]) <= today, r
    if r["feedback_date"]:
        assert d(r["submitted_date"]) <= d(r["feedback_date"]) <= today, r
sub = sum(1 for r in mg if r["submitted_date"]) / len(mg)
assert 0.75 <= sub < 1.0, "submission rate %.2f" % sub
assert any(not r["other_place_code"].startswith("110105") for r in mg), "no migration leaves the district"
# Benefits: known schemes, amounts in fen, paid ones have a paid date.
for r in by["benefit"]:
    assert r["scheme"] in ("rural_reward", "special_support", "only_child_reward", "first_birth_subsidy"), r
    assert int(r["amount_fen"]) > 0 and (r["status"] == "paid") == (r["paid_date"] != ""), r
    assert len(r["period"]) == (4 if r["scheme"] == "rural_reward" else 7), r
for r in by["service_visit"]:
    assert r["person_id"] in P and (today - d(r["visit_date"])).days <= 2 * 366 and r["provider"], r
print("ok: %d persons, %s" % (n, {k: len(v) for k, v in by.items()}))
PY
pass "one township: plausible proportions, valid ID numbers, references and dates"

# With no tree at all, everything goes to the unit itself.
ps --data "$T/notree" generate --persons 200 --seed 3 >/dev/null
[ "$(ps --data "$T/notree" list --format json | python3 -c 'import json,sys; print(sorted({r["orgunit"] for r in json.load(sys.stdin)}))')" = "['110105001000']" ] ||
    fail "no tree: records outside the cache's own unit"
# Bad arguments are usage errors and write nothing.
set +e
ps --data "$T/notree" generate --persons 0 2>/dev/null; rc1=$?
ps --data "$T/notree" generate --persons 10 --orgunit 110105002000 --orgunits "$UNITS" 2>/dev/null; rc2=$?
ps --data "$T/notree" generate --persons 10 --orgunit 110105009000 --orgunits "$UNITS" 2>/dev/null; rc3=$?
set -e
expect_eq "$rc1 $rc2 $rc3" "2 2 2" "exit codes for --persons 0, another township, an unknown unit"

# --- a whole district: sex ratio at birth and record size ---------------------
ps --json --data "$T/big" generate --persons 20000 --seed 5 --orgunits "$UNITS" --stats >"$T/big-stats.json"
python3 - "$T/big-stats.json" <<'PY' || fail "district stats"
import json, sys
s = json.load(open(sys.argv[1]))
assert s["counts"]["person"] == 20000, s
assert 200 <= s["person_avg_bytes"] <= 400, "average person %.1f bytes" % s["person_avg_bytes"]
print("ok: average person %.1f bytes packed (%.1f in the outbox), %.0f persons/s" %
      (s["person_avg_bytes"], s["person_avg_bytes_outbox"], s["persons_per_second"]))
PY
ps --data "$T/big" list --format json | python3 -c '
import collections, json, sys
recs = json.load(sys.stdin)
births = [r for r in recs if r["kind"] == "birth"]
boys = sum(r["child_sex"] == "male" for r in births)
ratio = 100.0 * boys / (len(births) - boys)
assert 100 <= ratio <= 120, "sex ratio at birth %.1f over %d births" % (ratio, len(births))
towns = collections.Counter(r["orgunit"][:9] for r in recs if r["kind"] == "person")
assert len(towns) == 3 and min(towns.values()) > 2000, towns
# Some migrations name another township of the district: both ends are ours.
inner = [r for r in recs if r["kind"] == "migration" and r["other_place_code"].startswith("110105")]
assert inner and all(r["other_place_code"][:9] != r["orgunit"][:9] for r in inner), inner[:3]
print("ok: %d births, sex ratio %.1f; persons per township %s" % (len(births), ratio, dict(towns)))
' || fail "district records"
pass "district of 20,000: sex ratio at birth and record size plausible"

# --- everything syncs: zero rejected, and an administrator receives it all ----
ps --data "$T/a" sync --quiet || fail "township sync"
ps --data "$T/big" sync --quiet || fail "district sync"
for c in a big; do
    st=$(ps --data "$T/$c" status --json)
    expect_eq "$(echo "$st" | python3 -c 'import json,sys; s=json.load(sys.stdin); print(s["rejected_count"], s["pending"])')" \
        "0 0" "$c: rejected and pending after sync"
done
ps --data "$T/admin" sync --quiet || fail "admin sync"
# (big, an admin cache, has pulled a's records too by now.)
expect_eq "$(ids admin)" "$( (ids a; ids big) | sort -u)" "admin holds exactly the generated records"
norm admin | python3 -c '
import json, sys
admin = {r["id"]: r for r in json.load(sys.stdin)}
a = json.load(open(sys.argv[1]))
for r in a:
    assert admin[r["id"]] == r, (r, admin[r["id"]])
print("ok: %d township records arrived field for field" % len(a))
' "$T/a.json" || fail "records changed on the way"
stop_server
pass "generated data of every kind syncs with nothing rejected"
