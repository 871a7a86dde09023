# A record's history of versions (issue 18, gap a): `popsync history ID`
# asks the server (HistoryRequest) for every version with who made it and
# when, from the store's versions and the audit log.  Township 1 creates a
# person and edits her, the district edits her too: three versions, each
# with its certificate, action, time and changed fields.  Township 2 gets
# the same "no such record" for her as for an id that never existed.
# Offline, the command says so and prints what the cache holds.  A store
# written before the audit_rec index builds it when popsyncd opens it.
. "$(dirname "$0")/lib.sh"
: "${PS_LMDBPOKE:?}"
make_pki
start_server
client t1 town1
client t2 town2
client admin admin

p=$(ps --data "$T/t1" add person --set name=周九 --set id_number=110105199003071239) || fail "add"
ps --data "$T/t1" sync >/dev/null || fail "t1 sync"
ps --data "$T/t1" edit "$p" --set phone=13800000001 >/dev/null || fail "t1 edit"
ps --data "$T/t1" sync >/dev/null || fail "t1 sync 2"
ps --data "$T/admin" sync >/dev/null || fail "admin sync"
ps --data "$T/admin" edit "$p" --set address=幸福路1号 >/dev/null || fail "admin edit"
ps --data "$T/admin" sync >/dev/null || fail "admin sync 2"
ps --data "$T/t1" sync >/dev/null || fail "t1 sync 3"

# check CACHE: the three versions as JSON, one line each.
check() {
    ps --data "$T/$1" history "$p" --json >"$T/h.json" || fail "$1: history exited $?"
    python3 - "$T/h.json" <<'PY'
import json, sys
h = json.load(open(sys.argv[1]))
for v in h["versions"]:
    print(v["gen"], v["action"], v["cert_name"], v["cert_role"], v["cert_orgunit"], v["time_ms"] > 0,
          ",".join(v["changed"]) if v["changed"] is not None else "-", v["record"]["name"], v["this_device"])
PY
}
want="1 create town1 township $TOWN1 True - 周九 True
2 update town1 township $TOWN1 True phone 周九 True
3 update admin admin $DISTRICT True address 周九 False"
expect_eq "$(check t1)" "$want" "the history township 1 sees"
ps --data "$T/t1" history 110105199003071239 >"$T/h.txt" || fail "history by ID number"
grep -q '^3 .*update .*admin (admin '"$DISTRICT"'), device ' "$T/h.txt" || fail "text history: $(cat "$T/h.txt")"
pass "history: three versions with who, when, action and the changed fields (CLI, by id and by ID number)"

# Township 2: the same answer as for an id the server never saw.
rc=0; ps --data "$T/t2" history "$p" 2>"$T/t2a.err" || rc=$?
expect_eq "$rc" 5 "township 2 asking for township 1's record"
y=0190f5c2-0000-7000-8000-0000000000ff
rc=0; ps --data "$T/t2" history "$y" 2>"$T/t2b.err" || rc=$?
expect_eq "$rc" 5 "township 2 asking for an unknown id"
expect_eq "$(sed "s/$p/ID/" "$T/t2a.err")" "$(sed "s/$y/ID/" "$T/t2b.err")" "the two refusals"
pass "another township's record history answers as a record that does not exist"

# A store written before the index: popsyncd builds it when it opens.
stop_server
"$PS_LMDBPOKE" "$T/server" audit_rec drop >/dev/null || fail "drop audit_rec"
"$PS_LMDBPOKE" "$T/server" meta delete 61756469745f7265635f76 >/dev/null || fail "delete audit_rec_v"
start_server
ps --data "$T/t1" config set server "127.0.0.1:$PORT" >/dev/null || fail "config set server"
expect_eq "$(check t1)" "$want" "the history after the index was rebuilt"
pass "the audit_rec index is built on open for an older store"

# Offline: said so (exit 3), with what the cache holds.
stop_server
rc=0; ps --data "$T/t1" history "$p" >/dev/null 2>"$T/off.err" || rc=$?
expect_eq "$rc" 3 "history offline"
grep -q 'cannot reach the server' "$T/off.err" || fail "offline: $(cat "$T/off.err")"
grep -q 'holds the latest version only: .*server revision 3' "$T/off.err" || fail "offline: $(cat "$T/off.err")"
pass "offline: says so and shows what the cache holds"
