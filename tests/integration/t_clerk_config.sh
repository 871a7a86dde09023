# An init mistake is fixed without losing the cache: a wrong server name
# fails the sync with both names and the command that fixes it; `config set`
# fixes it and the changes entered meanwhile are sent; a wrong port, and a
# certificate of another unit, are handled; `config show` lists it all.
. "$(dirname "$0")/lib.sh"
make_pki
ps pki issue --dir "$T/pki" --role township --orgunit $TOWN1 --name town1b >/dev/null
start_server
ps --data "$T/t1" init --server "127.0.0.1:$PORT" --ca "$T/pki/ca.crt" --cert "$T/pki/town1.crt" \
    --key "$T/pki/town1.key" --server-name district-server >/dev/null || fail "init"
idn=$(python3 -c '
w=[7,9,10,5,8,4,2,1,6,3,7,9,10,5,8,4,2]; d="11010519900307123"
print(d+"10X98765432"[sum(int(a)*b for a,b in zip(d,w))%11])')
ps --data "$T/t1" add person --set name=张三 --set "id_number=$idn" >/dev/null || fail "add offline"

rc=0; ps --data "$T/t1" sync --quiet 2>"$T/s1.err" || rc=$?
expect_eq "$rc" 3 "sync with the wrong server name"
grep -q "the server's certificate is named 'popsyncd', but 'district-server' was expected (set the expected name with popsync config set server_name NAME)" "$T/s1.err" \
    || fail "names both names and the fix: $(cat "$T/s1.err")"

ps --data "$T/t1" config show | grep -q "^server_name  district-server$" || fail "config show"
expect_eq "$(ps --data "$T/t1" config set server_name popsyncd)" "server_name set to popsyncd" "config set server_name"
ps --data "$T/t1" sync --quiet || fail "sync after the fix"
ps --data "$T/t1" status --json | python3 -c '
import json, sys; s = json.load(sys.stdin); assert int(s["pending"]) == 0, s' || fail "the change entered before the fix was sent"

# A wrong port, then the right one.
ps --data "$T/t1" config set server 127.0.0.1:1 >/dev/null || fail "set server"
rc=0; ps --data "$T/t1" sync --quiet 2>/dev/null || rc=$?
expect_eq "$rc" 3 "sync to a wrong port"
ps --data "$T/t1" config set server "127.0.0.1:$PORT" >/dev/null || fail "set server back"
ps --data "$T/t1" sync --quiet || fail "sync after fixing the port"

# Another certificate of the same unit and role is fine; one of another unit is not.
ps --data "$T/t1" config set cert "$T/pki/town1b.crt" >/dev/null 2>&1 && fail "cert without its key accepted"
rc=0; ps --data "$T/t1" config set cert "$T/pki/town2.crt" 2>"$T/c.err" || rc=$?
expect_eq "$rc" 4 "certificate of another unit refused"
rc=0; ps --data "$T/t1" config set key "$T/pki/missing.key" 2>/dev/null || rc=$?
expect_eq "$rc" 4 "missing file refused"
rc=0; ps --data "$T/t1" config set colour red 2>/dev/null || rc=$?
expect_eq "$rc" 2 "unknown setting"
ps --data "$T/t1" sync --quiet || fail "cache still works"
stop_server
pass "config show/set fixes an init mistake without losing unsent changes"
