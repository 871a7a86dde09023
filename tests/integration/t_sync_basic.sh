# Two townships add records offline, then sync; an admin pulls everything.
. "$(dirname "$0")/lib.sh"
make_pki
start_server
client t1 town1
client t2 town2
client admin admin

# Offline entry: no server traffic here.
ps --data "$T/t1" add person --set name=张三 --set id_number=110105199003071239 --set sex=male \
    --set birth_date=1990-03-07 >/dev/null
ps --data "$T/t1" generate --persons 300 --seed 1 >/dev/null
ps --data "$T/t2" generate --persons 200 --seed 2 >/dev/null
# Every record entered offline waits in the outbox (the generator makes
# households, births, migrations, benefits and visits besides persons).
read -r held pending < <(ps --data "$T/t1" status --json | python3 -c 'import json,sys; s=json.load(sys.stdin); print(s["records"], s["pending"])')
expect_eq "$pending" "$held" "t1 pending before sync"
expect_eq "$(count t1)" 301 "t1 persons before sync"

ps --data "$T/t1" sync --quiet || fail "t1 sync"
ps --data "$T/t2" sync --quiet || fail "t2 sync"
expect_eq "$(ps --data "$T/t1" status --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["pending"])')" 0 "t1 pending after sync"

ps --data "$T/admin" sync --quiet || fail "admin sync"
expect_eq "$(count admin)" 501 "admin sees every township's records"
# Each township pulls its own subtree only.
ps --data "$T/t1" sync --quiet
expect_eq "$(count t1)" 301 "township 1 keeps its own records"
comm -23 <(ids admin) <( (ids t1; ids t2) | sort) | grep -q . && fail "admin holds records no township made"

# The record arrives intact, Chinese text included, with a server revision.
id=$(ps --data "$T/t1" list --kind person --format json | python3 -c '
import json,sys
print([r["id"] for r in json.load(sys.stdin) if r["id_number"]=="110105199003071239"][0])')
ps --data "$T/admin" show "$id" --format json > "$T/show.json"
python3 - "$T/show.json" <<'PY'
import json,sys
r=json.load(open(sys.argv[1]))
assert r["name"]=="张三" and r["sex"]=="male" and r["birth_date"]=="1990-03-07", r
assert r["orgunit"]=="110105001000" and r["rev"]["gen"]=="1", r
PY
# An edit syncs as a new revision, a delete as a tombstone.
ps --data "$T/t1" edit "$id" --set phone=13800000000
ps --data "$T/t1" sync --quiet
ps --data "$T/admin" sync --quiet
expect_eq "$(ps --data "$T/admin" show "$id" --format json | python3 -c 'import json,sys; r=json.load(sys.stdin); print(r["phone"], r["rev"]["gen"])')" "13800000000 2" "edit reached admin"
ps --data "$T/t1" delete "$id" --force
ps --data "$T/t1" sync --quiet
ps --data "$T/admin" sync --quiet
expect_eq "$(count admin)" 500 "delete reached admin"
# A second sync with nothing new moves nothing.
out=$(ps --data "$T/admin" sync)
expect_eq "$out" "pushed 0 (0 duplicate, 0 rejected, 0 conflicts), pulled 0, cursor $(ps --data "$T/admin" status --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["cursor"])')" "idle sync"
stop_server
pass "two townships reach the admin; edits and deletes follow"
