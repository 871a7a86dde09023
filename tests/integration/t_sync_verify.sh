# Verify (issue 4, case 7): `popsync verify` compares digests of 256 id
# buckets of (id, revision) with the server's view of the cache's scope and
# repairs only what differs: records missing or stale are fetched, records
# the server does not show this cache are dropped.
. "$(dirname "$0")/lib4.sh"
make_pki4
issue township $TA ta
issue township $TB tb
start_server4
client a ta
client b tb
client admin admin
# full NAME: every record NAME holds, whole, sorted.
full() { sq "$1" list --format json --deleted | python3 -c '
import json,sys
for r in sorted(json.load(sys.stdin), key=lambda r: r["id"]): print(json.dumps(r, sort_keys=True, ensure_ascii=False))'; }
hex() { echo "${1//-/}"; }

psync a
psync b
sq a generate --persons 60 --seed 5 >/dev/null
sq b generate --persons 20 --seed 6 >/dev/null
psync a
psync b
psync a
psync admin
out=$(sq a verify)
expect_eq "$out" "in sync" "verify of a converged cache"
expect_eq "$(sq a verify --json)" '{"in_sync":true,"buckets_differed":0,"fetched":0,"dropped":0}' "verify --json"
pass "a converged cache verifies in sync"

# A cache copied now and used after the original moved on is refused.
cp -r "$T/a" "$T/a_copy"

ids=($(sq a list --kind person --format json | python3 -c 'import json,sys; [print(r["id"]) for r in json.load(sys.stdin)]' | sort))
stale=${ids[0]}
tomb=${ids[1]}
miss1=${ids[2]}
miss2=${ids[3]}
miss3=${ids[4]}
moved=${ids[5]}
# (Cache values are sealed with a key bound to the database and record id,
# so the damage below only deletes keys or puts back a value the same cache
# held under the same id earlier.)
# A tombstone to lose later.
sq a delete "$tomb" --force
psync a
# The stale record: keep its gen-1 value, let the admin edit it, sync, then
# put the old value back.  The same for a record the admin then moves to
# township B: A drops it, and gets it back behind the server's back.
old=$(cachetool "$T/a" get records "$(hex "$stale")")
oldmoved=$(cachetool "$T/a" get records "$(hex "$moved")")
[ -n "$old" ] && [ -n "$oldmoved" ] || fail "cannot read a record value from the cache"
psync admin
sq admin edit "$stale" --set phone=13512345678
sq admin edit "$moved" --set orgunit=$TB
psync admin
psync a
expect_eq "$(field a "$stale" 'r["phone"], r["rev"]["gen"]')" "13512345678 2" "the edit reached a"
has a "$moved" && fail "the record moved to B is still in A's cache"
# An extra record the server never had: added locally, its outbox entry lost.
fake=$(add_person a 90)
okey=$(cachetool "$T/a" keys outbox)
[ "$(echo "$okey" | wc -l)" = 1 ] || fail "expected one outbox entry, got: $okey"
cachetool "$T/a" put records "$(hex "$stale")" "$old" put records "$(hex "$moved")" "$oldmoved" \
    del records "$(hex "$tomb")" del records "$(hex "$miss1")" del records "$(hex "$miss2")" del records "$(hex "$miss3")" \
    del outbox "$okey" del pending "$(hex "$fake")"
expect_eq "$(pending a)" 0 "outbox after the damage"
expect_eq "$(field a "$stale" 'r["rev"]["gen"]')" 1 "the damaged cache holds the stale version"
has a "$miss1" && fail "damage did not remove a record"
has a "$moved" || fail "damage did not put back the moved record"
# A plain sync does not notice: nothing new in the feed.
out=$(sq a sync)
case "$out" in "pushed 0 (0 duplicate, 0 rejected, 0 conflicts), pulled 0,"*) ;; *) fail "idle sync: $out" ;; esac
has a "$miss1" && fail "a plain sync repaired the cache (the test damaged nothing?)"

out=$(sq a verify)
echo "verify says: $out"
case "$out" in
"repaired: 5 record(s) fetched, 2 dropped ("*" of 256 buckets differed)") ;;
*) fail "verify of the damaged cache: $out" ;;
esac
expect_eq "$(sq a verify)" "in sync" "a second verify"
expect_eq "$(field a "$stale" 'r["phone"], r["rev"]["gen"]')" "13512345678 2" "the stale record was refreshed"
expect_eq "$(field a "$tomb" 'r["deleted"]')" True "the lost tombstone came back as a tombstone"
has a "$fake" && fail "verify kept a record the server never had"
has a "$moved" && fail "verify kept a record of another township"
# The cache equals the server's view of A's scope: a cache made afresh.
client a_fresh ta
psync a_fresh
diff <(full a) <(full a_fresh) >/dev/null || fail "the repaired cache differs from a fresh one of the same scope"
pass "verify repairs missing, stale and extra records, and only those"

# The copy made earlier: the server has seen later changes from its node.
set +e
out=$(sq a_copy sync 2>&1)
rc=$?
set -e
echo "the copied cache says: $out"
expect_eq "$rc" 3 "sync of a copied cache"
grep -q "restored or copied" <<<"$out" || fail "no explanation for the refused copy: $out"
stop_server
pass "verify: in sync, repaired, in sync; a restored copy is refused"
