# Batching and interruption (issue 4, case 6): push and pull move in
# bounded batches (popsyncd --pull-batch, --max-push; popsync sync --batch);
# a sync cut after any number of frames simply runs again, and a resend
# after a lost reply is acknowledged, never applied twice.
. "$(dirname "$0")/lib4.sh"
make_pki4
issue township $TA ta
start_server4 --pull-batch 7 --max-push 5 --log-level debug
client a ta
client admin admin
sj() { sq "$1" sync --json "${@:2}"; }
jget() { python3 -c 'import json,sys; d=json.loads(sys.stdin.read()); print(" ".join(str(d[k]) for k in sys.argv[1:]))' "$@"; }
# full NAME: every record NAME holds, whole, sorted: equal output = equal caches.
full() { sq "$1" list --format json --deleted | python3 -c '
import json,sys
for r in sorted(json.load(sys.stdin), key=lambda r: r["id"]): print(json.dumps(r, sort_keys=True, ensure_ascii=False))'; }
# largest_push FROM_LINE: the most changes one Push carried, from the
# server's debug log after line FROM_LINE.
largest_push() { tail -n +"$1" "$T/server.log" | sed -n 's/.* push: \([0-9]*\) accepted, \([0-9]*\) duplicate, \([0-9]*\) rejected.*/\1 \2 \3/p' |
    awk 'BEGIN{m=0; n=0} {s=$1+$2+$3; n++; if (s>m) m=s} END{print m, n}'; }
logline() { wc -l <"$T/server.log"; }

psync a                                   # fetches the org-unit tree
sq a generate --persons 150 --seed 4 >/dev/null
n=$(pending a)
[ "$n" -ge 200 ] || fail "the generator made only $n records"
# Push three at a time, pull seven at a time.
l0=$(logline)
out=$(sj a --batch 3)
expect_eq "$(echo "$out" | jget ok accepted duplicate rejected conflicts)" "True $n 0 0 0" "push counts"
read -r big pushes < <(largest_push "$l0")
[ "$big" -eq 3 ] && [ "$pushes" -ge $((n / 3)) ] || fail "sync --batch 3: $pushes pushes, the largest of $big changes"
expect_eq "$(echo "$out" | jget pulled)" "$n" "a pulled its own records back"
expect_eq "$(pending a)" 0 "outbox after the batched sync"
out=$(sj admin)
expect_eq "$(echo "$out" | jget ok pulled)" "True $n" "admin pull counts"
diff <(full a) <(full admin) >/dev/null || fail "batched sync: the admin's view differs from the township's"
# A cut after three frames (Welcome, OrgUnits for this new cache, one
# PullBatch) leaves at most 7 records pulled.
client admin2 admin
set +e
POPSYNC_TEST_CUT_AFTER_FRAMES=3 sq admin2 sync --quiet >/dev/null 2>&1
rc=$?
set -e
expect_eq "$rc" 3 "cut sync exit code"
got=$(sq admin2 list --format json --deleted | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')
[ "$got" -ge 1 ] && [ "$got" -le 7 ] || fail "one PullBatch carried $got records with --pull-batch 7"
# --batch 10 is capped by the server's --max-push 5: 200+ changes need 40+ pushes.
# expected gen per record: 1, plus one per change accepted locally.
for id in $(all_ids a); do echo "$id 1"; done >"$T/gens"
bump() { python3 - "$T/gens" "$1" <<'PY'
import sys
p, rid = sys.argv[1], sys.argv[2]
rows = [l.split() for l in open(p)]
open(p, "w").write("".join("%s %d\n" % (i, int(g) + (i == rid)) for i, g in rows) + ("" if any(i == rid for i, _ in rows) else "%s 1\n" % rid))
PY
}
for id in $(all_ids a | head -60); do
    if sq a edit "$id" --set address=批量改 >/dev/null 2>&1; then bump "$id"; fi
done
e=$(pending a)
[ "$e" -ge 40 ] || fail "only $e edits were made"
l0=$(logline)
sq a sync --quiet --batch 10 || fail "sync --batch 10"
read -r big pushes < <(largest_push "$l0")
[ "$big" -eq 5 ] && [ "$pushes" -ge $((e / 5)) ] || fail "--max-push 5 with sync --batch 10: $pushes pushes, the largest of $big changes"
psync admin
diff <(full a) <(full admin) >/dev/null || fail "after the capped push the caches differ"
pass "push and pull move in bounded batches ($n records, $e edits)"

# --- Cut anywhere, run again.  New work: adds, edits and deletes.
ids=($(all_ids a))
for i in $(seq 0 29); do
    if sq a edit "${ids[$i]}" --set phone=1390000$(printf '%04d' "$i") >/dev/null 2>&1; then bump "${ids[$i]}"; fi
done
for i in $(seq 30 39); do sq a delete "${ids[$i]}" --force >/dev/null && bump "${ids[$i]}"; done
for i in $(seq 200 229); do bump "$(add_person a "$i")"; done
work=$(pending a)
dups=0
k=1
while [ $k -le 60 ] && [ "$(pending a)" -gt 0 ]; do
    set +e
    out=$(POPSYNC_TEST_CUT_AFTER_FRAMES=$k sq a sync --json --batch 3 2>/dev/null)
    set -e
    dups=$((dups + $(echo "$out" | jget duplicate)))
    k=$((k + 1))
done
expect_eq "$(pending a)" 0 "the outbox emptied by interrupted syncs (k reached $k)"
out=$(sj a --batch 3)
dups=$((dups + $(echo "$out" | jget duplicate)))
[ "$dups" -gt 0 ] || fail "no resend was ever acknowledged as a duplicate: the cuts never hit a lost reply"
# The admin pulls everything through cut connections too.
k=1
while [ $k -le 60 ]; do
    if POPSYNC_TEST_CUT_AFTER_FRAMES=$k sq admin sync --quiet >/dev/null 2>&1; then break; fi
    k=$((k + 1))
done
[ $k -gt 2 ] || fail "the admin's pull needed only $k frames: it was not cut"
psync admin
psync a
diff <(full a) <(full admin) >/dev/null || fail "after interrupted syncs the admin's view differs from the township's"
# No change applied twice: every record's gen is 1 plus the changes made to it.
sq admin list --format json --deleted | python3 -c '
import json,sys
want=dict(l.split() for l in open(sys.argv[1]))
got={r["id"]: str(r["rev"]["gen"]) for r in json.load(sys.stdin)}
bad=[(i, want.get(i), g) for i, g in got.items() if want.get(i) != g]
assert not bad and len(got)==len(want), "id, expected gen, gen: %s (%d of %d)" % (bad[:5], len(got), len(want))
' "$T/gens" || fail "a change was applied twice (or lost)"
expect_eq "$(all_ids admin | uniq -d | wc -l)" 0 "duplicate ids"
stop_server
pass "interrupted syncs converge: $work changes, $dups duplicate acknowledgements, nothing applied twice"
