# Kept pull batches (issue 17 point 4, server/pullcache.c): a second cache
# of the same township, and a second admin, are answered from the batches
# kept for the first (popsync_pull_cache_hits_total moves) and hold exactly
# the same records; a new record, a delete and a hand-over after that reach
# every cache (each write drops what was kept); [limits] pull_cache_mb = 0
# keeps nothing and answers the same.
. "$(dirname "$0")/lib.sh"
make_pki
ps pki issue --dir "$T/pki" --role township --orgunit $TOWN1 --name clerk2 >/dev/null
ps pki issue --dir "$T/pki" --role admin --orgunit $DISTRICT --name admin2 >/dev/null
start_server --metrics 127.0.0.1:0 --pull-batch 40
MPORT=""
for _ in $(seq 1 100); do
    MPORT=$(sed -n 's/.*serving \/metrics on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$T/server.log" | tail -1)
    [ -n "$MPORT" ] && break
    sleep 0.05
done
[ -n "$MPORT" ] || fail "no metrics address in the log"
# metric NAME: its value now.
metric() {
    python3 - "$MPORT" "$1" <<'PY'
import sys, urllib.request
body = urllib.request.urlopen("http://127.0.0.1:%s/metrics" % sys.argv[1], timeout=10).read().decode()
for line in body.splitlines():
    if line.startswith(sys.argv[2] + " "):
        print(line.split()[-1]); break
else:
    print("missing")
PY
}
# view NAME: every record of cache NAME (deleted ones too), whole, sorted by id.
view() {
    ps --data "$T/$1" list --deleted --format json |
        python3 -c 'import json,sys; rs=json.load(sys.stdin); rs.sort(key=lambda r: r["id"]); print(json.dumps(rs, sort_keys=True))'
}

client t1 town1
client t2 town2
ps --data "$T/t1" generate --persons 150 --seed 3 >/dev/null
ps --data "$T/t2" generate --persons 150 --seed 4 >/dev/null
ps --data "$T/t1" sync --quiet
ps --data "$T/t2" sync --quiet

client c1 town1
ps --data "$T/c1" sync --quiet
h1=$(metric popsync_pull_cache_hits_total)
client c2 clerk2
ps --data "$T/c2" sync --quiet
h2=$(metric popsync_pull_cache_hits_total)
[ "$h2" -gt "$h1" ] || fail "a second cache of township 1 was not answered from kept batches ($h1 -> $h2)"
[ "$(view c1)" = "$(view c2)" ] || fail "the two caches of township 1 differ"
[ "$(view c1)" = "$(view t1)" ] || fail "a new cache of township 1 differs from the one that entered the records"
expect_eq "$(ids c2 | grep -c .)" "$(ids t1 | grep -c .)" "records of township 1"
pass "a second cache of a township gets the kept batches, and the same records"

client a1 admin
client a2 admin2
ps --data "$T/a1" sync --quiet
h1=$(metric popsync_pull_cache_hits_total)
ps --data "$T/a2" sync --quiet
h2=$(metric popsync_pull_cache_hits_total)
[ "$h2" -gt "$h1" ] || fail "a second admin cache was not answered from kept batches"
[ "$(view a1)" = "$(view a2)" ] || fail "the two admin caches differ"
pass "a second admin cache gets the kept batches, and the same records"

# Writes after that: a new record, a delete, a hand-over to township 2.
ps --data "$T/t1" generate --persons 1 --seed 11 >/dev/null
# Leaves: nothing refers to a service visit.
leaf() {
    ps --data "$T/t1" list --kind service_visit --format json |
        python3 -c 'import json,sys; print(sorted(r["id"] for r in json.load(sys.stdin))['"$1"'])'
}
victim=$(leaf 0)
moved=$(leaf 1)
[ -n "$victim" ] && [ -n "$moved" ] || fail "no service visits generated"
ps --data "$T/t1" delete "$victim" >/dev/null
ps --data "$T/t1" sync --quiet
ps --data "$T/a1" sync --quiet
ps --data "$T/a1" edit "$moved" --set orgunit=$TOWN2 >/dev/null
ps --data "$T/a1" sync --quiet
for c in c1 c2 t1 a1 a2 t2; do
    ps --data "$T/$c" sync --quiet
done
client c3 clerk2
ps --data "$T/c3" sync --quiet
[ "$(view c1)" = "$(view c3)" ] || fail "a cache that pulled from 0 after the writes differs from one that followed them"
[ "$(view c2)" = "$(view c3)" ] || fail "the second clerk's cache differs after the writes"
[ "$(view a1)" = "$(view a2)" ] || fail "the admin caches differ after the writes"
ids c3 | grep -qx "$moved" && fail "the record handed to township 2 is still in township 1's new cache"
ids c2 | grep -qx "$moved" && fail "the record handed to township 2 is still in township 1's cache"
ids t2 | grep -qx "$moved" || fail "township 2 did not get the record handed to it"
ps --data "$T/c3" list --deleted --format json | grep -q "$victim" || fail "the tombstone is not in the new cache"
ids c3 | grep -qx "$victim" && fail "the deleted record is live in the new cache"
expect_eq "$(ids c3 | grep -c .)" "$(ids t1 | grep -c .)" "records of township 1 after the writes"
pass "a new record, a delete and a hand-over reach every cache; none is given a batch kept before them"

# Without the cache: nothing kept, the same answers.
stop_server
printf '[limits]\npull_cache_mb = 0\n' >"$T/nocache.conf"
lines=$(wc -l <"$T/server.log")
start_server --config "$T/nocache.conf" --metrics 127.0.0.1:0 --pull-batch 40
MPORT=""
for _ in $(seq 1 100); do
    MPORT=$(tail -n +"$((lines + 1))" "$T/server.log" |
        sed -n 's/.*serving \/metrics on 127\.0\.0\.1:\([0-9]*\).*/\1/p' | tail -1)
    [ -n "$MPORT" ] && break
    sleep 0.05
done
[ -n "$MPORT" ] || fail "no metrics address in the log after the restart"
client c4 clerk2
ps --data "$T/c4" sync --quiet
[ "$(view c4)" = "$(view c3)" ] || fail "without the cache a new cache differs"
expect_eq "$(metric popsync_pull_cache_hits_total)" missing "the cache's metrics without the cache"
pass "pull_cache_mb = 0 keeps nothing and answers the same"
