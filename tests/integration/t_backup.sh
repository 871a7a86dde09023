# Hot backup and restore (issue 9): `popsyncd backup` in the middle of an
# ingest by three townships makes a consistent copy while pushes go on;
# `popsyncd restore` makes a store from it that verifies (audit chain,
# counters) and serves: an admin pulling from it gets a subset of what the
# original holds.
. "$(dirname "$0")/lib.sh"
make_pki
start_server
client t1 town1
client t2 town2
client t3 town3
client adm admin
i=0
for t in t1 t2 t3; do
    i=$((i + 1))
    ps --data "$T/$t" generate --persons 3000 --seed $i >/dev/null
done

# The ingest: three townships sync at once, in small pushes so that it
# lasts long enough to back up in the middle of it.
pids=()
for t in t1 t2 t3; do
    ( set +e; ps --data "$T/$t" sync --quiet --batch 25 >"$T/$t.sync.log" 2>&1; echo $? >"$T/$t.rc" ) &
    pids+=($!)
done
head_now() { ps --data "$T/adm" sync --quiet >/dev/null 2>&1; ps --data "$T/adm" status --json |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["cursor"])'; }
# Wait until some changes are in, then back up while the rest arrive.
for _ in $(seq 1 200); do
    [ "$(head_now)" -gt 500 ] && break
    sleep 0.05
done
out=$("$POPSYNCD" backup --data "$T/server" --to "$T/backup.mdb") || fail "backup: $out"
grep -q "backup of $T/server written to $T/backup.mdb" <<<"$out" || fail "backup output: $out"
[ -s "$T/backup.mdb" ] && [ ! -e "$T/backup.mdb.tmp" ] || fail "backup file not in place"
wait "${pids[@]}"
for t in t1 t2 t3; do expect_eq "$(cat "$T/$t.rc")" 0 "sync of $t during the backup ($(cat "$T/$t.sync.log"))"; done
ps --data "$T/adm" sync --quiet
final=$(ps --data "$T/adm" status --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["cursor"])')
pass "backup taken while three townships pushed"

# Restore into a new directory; a non-empty one is refused.
out=$("$POPSYNCD" restore --from "$T/backup.mdb" --data "$T/restored") || fail "restore: $out"
bhead=$(echo "$out" | sed -n 's/.*feed head now \([0-9]*\).*/\1/p')
bhead=$((bhead - 1000000000))
echo "backup head $bhead of $final"
[ "$bhead" -gt 0 ] && [ "$bhead" -le "$final" ] || fail "backup head $bhead not within the ingest (final $final)"
[ "$bhead" -lt "$final" ] || echo "note: the ingest finished before the backup began"
set +e
out=$("$POPSYNCD" restore --from "$T/backup.mdb" --data "$T/restored" 2>&1); rc=$?
set -e
expect_eq "$rc" 1 "restore into a non-empty directory"
grep -q "not empty" <<<"$out" || fail "restore refusal: $out"
"$POPSYNCD" audit verify --data "$T/restored" | grep -q "audit log intact" || fail "audit chain of the restored store"
"$POPSYNCD" counters check --data "$T/restored" | grep -q "counters match" || fail "counters of the restored store"
pass "the restored store verifies: audit chain and counters"

# It serves: a second popsyncd on the restored store, a fresh admin cache.
ids adm >"$T/orig.ids"
SERVER1=$SERVER_PID
PORT1=$PORT
rm -f "$T/port"
"$POPSYNCD" --listen 127.0.0.1:0 --port-file "$T/port" --data "$T/restored" --allow-synthetic \
    --ca "$T/pki/ca.crt" --cert "$T/pki/popsyncd.crt" --key "$T/pki/popsyncd.key" >>"$T/server2.log" 2>&1 &
SERVER2=$!
for _ in $(seq 1 200); do [ -s "$T/port" ] && break; sleep 0.05; done
[ -s "$T/port" ] || fail "popsyncd on the restored store did not start"
PORT=$(cat "$T/port")
client adm2 admin
ps --data "$T/adm2" sync --quiet
ids adm2 >"$T/restored.ids"
n_orig=$(wc -l <"$T/orig.ids")
n_rest=$(wc -l <"$T/restored.ids")
echo "restored $n_rest of $n_orig records"
[ "$n_rest" -gt 0 ] && [ "$n_rest" -le "$n_orig" ] || fail "restored store holds $n_rest records, original $n_orig"
extra=$(comm -13 "$T/orig.ids" "$T/restored.ids" | wc -l)
expect_eq "$extra" 0 "records on the restored server that the original lacks"
# Every record it serves is as the original had it when the backup was taken
# (the ingest only adds records, so: equal to the original's copy).
python3 - "$T/adm" "$T/adm2" "$POPSYNC" <<'PY' || fail "restored records differ from the original's"
import json, subprocess, sys
def load(d):
    out = subprocess.run([sys.argv[3], "--data", d, "list", "--format", "json"], check=True,
                         capture_output=True).stdout
    return {r["id"]: r for r in json.loads(out)}
a, b = load(sys.argv[1]), load(sys.argv[2])
bad = [i for i in b if a.get(i) != b[i]]
assert not bad, bad[:3]
PY
# New changes land on the restored server and reach a cache whose cursor
# passed the backup's head (the head moved on at restore).
client t4 town1
ps --data "$T/t4" generate --persons 5 --seed 44 >/dev/null
ps --data "$T/t4" sync --quiet
ps --data "$T/adm2" sync --quiet
[ "$(ids adm2 | wc -l)" -gt "$n_rest" ] || fail "new changes on the restored server not pulled"
kill -TERM "$SERVER2"
wait "$SERVER2" || fail "second popsyncd exit status"
SERVER_PID=$SERVER1
PORT=$PORT1
stop_server
pass "the restored store serves a consistent subset of the original"
