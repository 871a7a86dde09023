#!/usr/bin/env bash
# The popsync demo: a district server on loopback, one client per township
# entering records offline and then syncing at the same time, and a district
# administrator pulling the consolidated data.
#
# usage: demo/run.sh [BUILD_DIR]   (default: build)
# Everything is made fresh under demo/out/ and the server is stopped at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
PS="$BUILD/popsync"
PSD="$BUILD/popsyncd"
OUT=demo/out
UNITS=demo/orgunits.csv
PERSONS_PER_UNIT=${PERSONS_PER_UNIT:-2500}

[ -x "$PS" ] && [ -x "$PSD" ] || { echo "demo: build first (scripts/build.sh)" >&2; exit 1; }
rm -rf "$OUT"
mkdir -p "$OUT"

root=$(awk -F, 'NR>1 && $2=="" {print $1}' "$UNITS")
mapfile -t towns < <(awk -F, -v r="$root" 'NR>1 && $2==r {print $1","$3}' "$UNITS")
echo "== district $root: ${#towns[@]} township-level units (org units from $UNITS)"

echo "== PKI: a district CA and one certificate per node (popsync pki, no openssl)"
"$PS" pki init-ca --dir "$OUT/pki" --name "demo district CA" >/dev/null
"$PS" pki issue --dir "$OUT/pki" --role server --orgunit "$root" --name popsyncd >/dev/null
"$PS" pki issue --dir "$OUT/pki" --role admin --orgunit "$root" --name district-admin >/dev/null
for t in "${towns[@]}"; do
    "$PS" pki issue --dir "$OUT/pki" --role township --orgunit "${t%%,*}" --name "town-${t%%,*}" >/dev/null
done
ls "$OUT/pki" | wc -l | xargs -I{} echo "   {} files in $OUT/pki"

echo "== popsyncd on 127.0.0.1 (port chosen by the kernel)"
# --allow-synthetic: a demo server takes the generated (synthetic) records.
"$PSD" --listen 127.0.0.1:0 --port-file "$OUT/port" --data "$OUT/server" --orgunits "$UNITS" --allow-synthetic \
    --ca "$OUT/pki/ca.crt" --cert "$OUT/pki/popsyncd.crt" --key "$OUT/pki/popsyncd.key" \
    >"$OUT/server.log" 2>&1 &
server=$!
trap 'kill -TERM $server 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do [ -s "$OUT/port" ] && break; sleep 0.05; done
port=$(cat "$OUT/port")
echo "   listening on 127.0.0.1:$port (log: $OUT/server.log)"

echo "== each township enters records offline ($PERSONS_PER_UNIT persons each, with households, births, migrations, benefits, visits)"
i=0
for t in "${towns[@]}"; do
    code=${t%%,*}
    i=$((i + 1))
    # Each device's cache is encrypted at rest under its own key file.
    "$PS" --data "$OUT/town-$code" init --server "127.0.0.1:$port" --ca "$OUT/pki/ca.crt" \
        --cert "$OUT/pki/town-$code.crt" --key "$OUT/pki/town-$code.key" --orgunits "$UNITS" \
        --key-file "$OUT/town-$code.cachekey" >/dev/null
    printf '   %-28s ' "${t#*,} ($code)"
    "$PS" --data "$OUT/town-$code" generate --persons "$PERSONS_PER_UNIT" --seed "$i" --orgunits "$UNITS"
done

echo "== all townships sync at once"
start=$(date +%s.%N)
pids=()
for t in "${towns[@]}"; do
    code=${t%%,*}
    "$PS" --data "$OUT/town-$code" sync --quiet --json >"$OUT/sync-$code.json" &
    pids+=($!)
done
for p in "${pids[@]}"; do wait "$p"; done
end=$(date +%s.%N)
for t in "${towns[@]}"; do
    code=${t%%,*}
    printf '   %-28s %s\n' "${t#*,}" "$(cat "$OUT/sync-$code.json")"
done
awk -v s="$start" -v e="$end" 'BEGIN {printf "   all pushes done in %.2f s\n", e - s}'

echo "== the district administrator pulls everything"
"$PS" --data "$OUT/admin" init --server "127.0.0.1:$port" --ca "$OUT/pki/ca.crt" \
    --cert "$OUT/pki/district-admin.crt" --key "$OUT/pki/district-admin.key" \
    --key-file "$OUT/admin.cachekey" >/dev/null
"$PS" --data "$OUT/admin" sync --quiet --json

echo "== what each node holds"
for t in "${towns[@]}"; do
    code=${t%%,*}
    "$PS" --data "$OUT/town-$code" sync --quiet
    printf '   %-28s %s\n' "${t#*,}" \
        "$("$PS" --data "$OUT/town-$code" status --json | sed -E 's/.*"records":([0-9]+).*"pending":([0-9]+).*"rejected_count":([0-9]+).*/\1 records, \2 pending, \3 rejected/')"
done
printf '   %-28s %s\n' "district admin" \
    "$("$PS" --data "$OUT/admin" status --json | sed -E 's/.*"records":([0-9]+).*"pending":([0-9]+).*/\1 records/')"

echo "== consolidated view at the district (popsync stats on the admin's cache)"
"$PS" --data "$OUT/admin" stats

# The month just ended: the generator spreads its events over the last
# years, so that month has data in every township.
month=$(date -d "$(date +%Y-%m-01) -1 day" +%Y-%m)
echo "== the district's monthly statistical report for $month (counters kept by popsyncd)"
"$PS" --data "$OUT/admin" report monthly --month "$month" --lang zh
echo
"$PS" --data "$OUT/admin" report monthly --month "$month" --lang en
echo "== data-quality report (summary)"
"$PS" --data "$OUT/admin" report quality --format json | python3 -c '
import json, sys, collections
r = json.load(sys.stdin)
issues = r.get("issues", r) if isinstance(r, dict) else r
c = collections.Counter(i.get("check") for i in issues)
print("   " + (", ".join("%s: %d" % kv for kv in sorted(c.items())) or "no issues"))' 2>/dev/null \
  || "$PS" --data "$OUT/admin" report quality | tail -5

kill -TERM $server
wait $server
trap - EXIT
echo "== popsyncd stopped cleanly; everything is in $OUT/"
