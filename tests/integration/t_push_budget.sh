# The decode budget (issue 17, docs/performance.md §d): Pushes decoded and
# waiting for their group commit are bounded across all connections by
# [limits] push_decode_mb; frames over it wait compressed.  Four townships
# push pipelined (8 Pushes in flight each, ~200 KB decoded apiece: ~6 MB
# held without the bound) against a server with push_decode_mb = 1: the
# most held at once stays near 1 MiB (the budget, plus the commit queue's
# head, which is decoded whatever the budget so the queue always moves),
# Pushes were kept compressed, and every record arrives exactly once.
# commit_max_changes = 500 bounds each group commit's write transaction
# (LMDB keeps the dirty pages of the largest one until popsyncd stops).
. "$(dirname "$0")/lib4.sh"
make_pki4
towns=(130203001000 130203002000 130203003000 130203004000)
for i in 0 1 2 3; do issue township "${towns[$i]}" "t$i"; done
printf '[limits]\npush_decode_mb = 1\ncommit_max_changes = 500\n' >"$T/popsyncd.conf"
start_server4 --config "$T/popsyncd.conf" --max-push 250 --metrics 127.0.0.1:0 --log-level debug
# metric NAME: its value from GET /metrics.
metric() {
    local port
    port=$(sed -n 's/.*serving \/metrics on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$T/server.log" | tail -1)
    python3 - "$port" "$1" <<'PY'
import sys, urllib.request
body = urllib.request.urlopen("http://127.0.0.1:%s/metrics" % sys.argv[1], timeout=10).read().decode()
print(next(l.split()[1] for l in body.splitlines() if l.startswith(sys.argv[2] + " ")))
PY
}

total=0
for i in 0 1 2 3; do
    client "t$i" "t$i"
    psync "t$i"                               # fetches the org-unit tree
    sq "t$i" generate --persons 1500 --seed $((40 + i)) >/dev/null
    total=$((total + $(pending "t$i")))
done
[ "$total" -ge 9000 ] || fail "the generator made only $total records"

# All four at once, 250 changes per Push, pipelined.
pids=()
for i in 0 1 2 3; do
    "$POPSYNC" --data "$T/t$i" sync --quiet --batch 250 >"$T/sync$i.log" 2>&1 &
    pids+=($!)
done
for i in 0 1 2 3; do
    wait "${pids[$i]}" || fail "sync of t$i failed: $(cat "$T/sync$i.log")"
    expect_eq "$(pending "t$i")" 0 "outbox of t$i after the sync"
done

held=$(metric popsync_push_decoded_bytes_max)
deferred=$(metric popsync_push_decodes_deferred_total)
pushes=$(metric popsync_pushes_total)
echo "decoded Pushes held at most: $held bytes; $deferred of $pushes Pushes waited compressed"
[ "$held" -gt 0 ] || fail "no decoded Push was counted"
[ "$held" -le $((2 * 1024 * 1024)) ] || fail "decoded Pushes held at once: $held bytes, over the 1 MiB budget plus one Push"
[ "$deferred" -gt 0 ] || fail "no Push waited for the budget (4 townships x 8 in flight should exceed 1 MiB)"
expect_eq "$(metric popsync_push_decoded_bytes)" 0 "decoded bytes held once every Push is answered"
expect_eq "$(metric popsync_changes_accepted_total)" "$total" "changes accepted"
expect_eq "$(metric popsync_changes_duplicate_total)" 0 "changes applied twice"
pass "4 townships pushing $total records: at most $held bytes of decoded Pushes held (budget 1 MiB)"

# commit_max_changes bounds each write transaction (and so the dirty pages
# LMDB keeps): no group commit weighed more than 500 edits, a new record
# weighing a fifth of one (commit.c job_weight), so a group of these new
# records takes up to 2,500 of them: more than 500 in the largest.
read -r big wmax groups < <(sed -n 's/.*group commit of \([0-9]*\) changes, weight \([0-9]*\) of \([0-9]*\).*/\1 \2 \3/p' "$T/server.log" |
    awk 'BEGIN{m=0; w=0; n=0} {n++; if ($1>m) m=$1; if ($2>w) w=$2; if ($3 != 2500) w=-1} END{print m, w, n}')
[ "$wmax" -ge 0 ] && [ "$wmax" -le 2500 ] && [ "$groups" -ge $((total / 2500)) ] && [ "$big" -gt 500 ] ||
    fail "$groups group commits, the largest of $big new records, weight at most $wmax (budget 500 edits = 2,500)"
pass "$groups group commits of at most $big new records (weight $wmax of 2,500: commit_max_changes = 500 edits)"

# Edits weigh a whole change each: four townships push 300 edits each at
# once, 100 per Push, pipelined; counted as new records they would go in
# one group of 1,200; the groups stay at 500 edits or fewer.
for i in 0 1 2 3; do
    sq "t$i" export --kind person --format json --out "$T/persons$i.json" >/dev/null || fail "export of t$i's persons"
    python3 - "$T/persons$i.json" "$T/edits$i.json" "$i" <<'PY'
import json, sys
rows = json.load(open(sys.argv[1]))[:300]
for k, r in enumerate(rows):
    r["phone"] = "13%d0000%04d" % (int(sys.argv[3]) + 5, k)
json.dump(rows, open(sys.argv[2], "w"), ensure_ascii=False)
PY
    sq "t$i" import "$T/edits$i.json" --kind person --format json >"$T/import$i.log" 2>&1 ||
        fail "import of t$i's edits: $(tail -3 "$T/import$i.log")"
    expect_eq "$(pending "t$i")" 300 "edits waiting in t$i's outbox"
done
before=$(grep -c "group commit of .* changes, weight" "$T/server.log")
pids=()
for i in 0 1 2 3; do
    "$POPSYNC" --data "$T/t$i" sync --quiet --batch 100 >"$T/sync-edit$i.log" 2>&1 &
    pids+=($!)
done
for i in 0 1 2 3; do
    wait "${pids[$i]}" || fail "sync of t$i's edits failed: $(cat "$T/sync-edit$i.log")"
    expect_eq "$(pending "t$i")" 0 "outbox of t$i after the edits"
done
read -r ebig ew < <(sed -n 's/.*group commit of \([0-9]*\) changes, weight \([0-9]*\) of.*/\1 \2/p' "$T/server.log" |
    tail -n +$((before + 1)) | awk 'BEGIN{m=0; w=0} {if ($1>m) m=$1; if ($2>w) w=$2} END{print m, w}')
[ "$ebig" -ge 100 ] && [ "$ebig" -le 500 ] && [ "$ew" -le 2500 ] ||
    fail "the largest group of edits: $ebig changes, weight $ew (commit_max_changes = 500)"
pass "1,200 edits from 4 townships in groups of at most $ebig (weight $ew of 2,500)"

client admin admin
psync admin
expect_eq "$(sq admin list --format json --deleted | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')" \
    "$total" "records the admin pulled"
pass "every record arrived once"
