# `popsync status --all` (issue 9): the admin sees every node that has
# synced, when it last did, how far behind it is, its certificate, and the
# open conflicts its changes lost; the server keeps this across a restart.
. "$(dirname "$0")/lib.sh"
make_pki
start_server
client t1 town1
client t2 town2
client adm admin

ps --data "$T/t1" generate --persons 30 --seed 1 >/dev/null
ps --data "$T/t1" sync --quiet
ps --data "$T/t2" generate --persons 20 --seed 2 >/dev/null
ps --data "$T/t2" sync --quiet
ps --data "$T/adm" sync --quiet

status_json() { ps --data "$T/$1" status --all --json; }
cursor_of() { ps --data "$T/$1" status --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["cursor"])'; }
node_of() { ps --data "$T/$1" status --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["node"])'; }

status_json adm >"$T/st1.json"
python3 - "$T/st1.json" "$(node_of t1)" "$(node_of t2)" "$(node_of adm)" "$(cursor_of t1)" <<'PY' || fail "status --all does not describe the nodes"
import json, sys
s = json.load(open(sys.argv[1]))
t1, t2, adm, t1cur = sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
# 64-bit positions and times are decimal strings (docs/data-model.md 4.1).
s["head"] = int(s["head"])
for n in s["nodes"]:
    for k in ("cursor", "high_water", "last_seen_ms"):
        assert isinstance(n[k], str), (k, n)
        n[k] = int(n[k])
nodes = {n["node"]: n for n in s["nodes"]}
assert set(nodes) == {t1, t2, adm}, nodes.keys()
assert (nodes[t1]["name"], nodes[t1]["role"], nodes[t1]["orgunit"]) == ("town1", "township", "110105001000"), nodes[t1]
assert (nodes[adm]["name"], nodes[adm]["role"]) == ("admin", "admin"), nodes[adm]
# t1 synced before t2 pushed: it is behind by exactly what came after its cursor.
assert nodes[t1]["cursor"] == t1cur, (nodes[t1], t1cur)
assert nodes[t1]["behind"] == s["head"] - t1cur and nodes[t1]["behind"] > 0, (nodes[t1], s["head"])
assert nodes[t2]["behind"] == 0 and nodes[adm]["behind"] == 0, (nodes[t2], nodes[adm])
assert nodes[t1]["high_water"] > 0 and nodes[adm]["high_water"] == 0
assert all(n["last_seen_ms"] > 0 for n in nodes.values())
# most recently seen first
seen = [n["last_seen_ms"] for n in s["nodes"]]
assert seen == sorted(seen, reverse=True), seen
assert s["conflicts_open"] == 0
PY
pass "status --all lists every node with its certificate, cursor and lag"

# The text form names them too.
out=$(ps --data "$T/adm" status --all)
grep -q "town2 .*township .*110105002000" <<<"$out" || fail "text status --all: $out"

# A township may not ask.
set +e
out=$(ps --data "$T/t1" status --all 2>&1); rc=$?
set -e
expect_eq "$rc" 3 "status --all exit status for a township"
grep -q "may not" <<<"$out" || fail "township status --all: $out"
pass "only an admin may ask for status --all"

# A conflict: the admin edits a record first, town1 later; town1 pushes
# first, so the admin's older edit loses and is kept as a conflict.
ps --data "$T/t1" sync --quiet
ps --data "$T/adm" sync --quiet
id=$(ps --data "$T/t1" list --kind person --format json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["id"])')
ps --data "$T/adm" edit "$id" --set phone=13900000001
sleep 0.05
ps --data "$T/t1" edit "$id" --set phone=13900000002
ps --data "$T/t1" sync --quiet
ps --data "$T/adm" sync --quiet 2>/dev/null || true
status_json adm >"$T/st2.json"
python3 - "$T/st2.json" "$(node_of adm)" <<'PY' || fail "the open conflict is not counted"
import json, sys
s = json.load(open(sys.argv[1]))
nodes = {n["node"]: n for n in s["nodes"]}
assert s["conflicts_open"] == 1, s
assert nodes[sys.argv[2]]["conflicts_open"] == 1, nodes[sys.argv[2]]
PY
pass "open conflicts are counted, per node whose change lost"

# Persisted: after a restart (the node table is written at shutdown and
# every few seconds) the server still knows every node.
stop_server
rm -f "$T/port"
"$POPSYNCD" --listen "127.0.0.1:$PORT" --port-file "$T/port" --data "$T/server" --allow-synthetic \
    --ca "$T/pki/ca.crt" --cert "$T/pki/popsyncd.crt" --key "$T/pki/popsyncd.key" >>"$T/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 100); do [ -s "$T/port" ] && break; sleep 0.05; done
status_json adm >"$T/st3.json"
python3 - "$T/st1.json" "$T/st3.json" "$(node_of t1)" <<'PY' || fail "node status lost over a restart"
import json, sys
a = {n["node"]: n for n in json.load(open(sys.argv[1]))["nodes"]}
b = {n["node"]: n for n in json.load(open(sys.argv[2]))["nodes"]}
assert set(a) <= set(b), (a.keys(), b.keys())
t1 = sys.argv[3]
assert (b[t1]["name"], b[t1]["role"], b[t1]["orgunit"]) == ("town1", "township", "110105001000"), b[t1]
assert int(b[t1]["last_seen_ms"]) >= int(a[t1]["last_seen_ms"]) and int(b[t1]["high_water"]) >= int(a[t1]["high_water"])
assert not b[t1]["seen_since_start"], b[t1]
PY
pass "node status survives a restart"
