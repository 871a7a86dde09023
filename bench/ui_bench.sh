#!/usr/bin/env bash
# ui_bench.sh - how fast `popsync ui` answers on a district-sized cache
# (issue 18 point 6): a township cache with N generated persons (default
# 200,000, with their households, births, migrations, benefits and visits),
# `popsync ui` on it, and each request timed server side (the Server-Timing
# header every answer carries: from the complete request to the reply
# queued) over several runs.  Figures go to docs/performance.md §UI; no test
# asserts them.
# usage: bench/ui_bench.sh [--persons N] [--runs R] [BUILD_DIR]
set -euo pipefail
persons=200000 runs=20 build=
while [ $# -gt 0 ]; do
    case $1 in
    --persons) persons=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    *) build=$1; shift ;;
    esac
done
build=${build:-$(cd "$(dirname "$0")/.." && pwd)/build}
P=$build/popsync
D=$(mktemp -d "${TMPDIR:-/tmp}/popsync-uibench.XXXXXX")
UI=""
trap '[ -n "$UI" ] && kill "$UI" 2>/dev/null; wait 2>/dev/null; rm -rf "$D"' EXIT
export POPSYNC_PASSPHRASE=popsync-bench-passphrase POPSYNC_KDF_ITERATIONS=1000
"$P" pki init-ca --dir "$D/pki" >/dev/null
"$P" pki issue --dir "$D/pki" --role township --orgunit 110105001000 --name town1 >/dev/null
"$P" --data "$D/c" init --server 127.0.0.1:1 --ca "$D/pki/ca.crt" --cert "$D/pki/town1.crt" --key "$D/pki/town1.key" >/dev/null
t0=$(date +%s.%N)
"$P" --data "$D/c" generate --persons "$persons" --seed 7 2>/dev/null | tail -n 1
echo "generated in $(echo "$(date +%s.%N) - $t0" | bc) s; cache $(du -sh "$D/c" | cut -f1)"
"$P" --data "$D/c" ui >"$D/ui.out" 2>"$D/ui.err" &
UI=$!
for _ in $(seq 1 100); do grep -q '^popsync ui: ' "$D/ui.out" 2>/dev/null && break; sleep 0.1; done
url=$(sed -n 's/^popsync ui: //p' "$D/ui.out")
"$P" --data "$D/c" list --kind person --format json 2>/dev/null | python3 -c '
import json, sys
rs = json.load(sys.stdin)
p = next(r for r in rs if r["id_number"])
print(p["id"], p["name"], p["id_number"], p["birth_date"])' >"$D/sample"
read -r pid pname pidn pbirth <"$D/sample"
python3 - "$url" "$runs" "$pid" "$pname" "$pidn" "$pbirth" <<'PY'
import http.client, json, statistics, sys, urllib.parse
url, runs, pid, name, idn, birth = sys.argv[1], int(sys.argv[2]), *sys.argv[3:]
u = urllib.parse.urlsplit(url)
def req(path, cookie=None, method="GET", body=None, extra=None):
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=120)
    h = {"Host": u.netloc}
    if cookie: h["Cookie"] = cookie
    h.update(extra or {})
    c.request(method, path, body=body, headers=h)
    r = c.getresponse(); data = r.read(); c.close()
    st = r.getheader("Server-Timing") or "app;dur=nan"
    return r.status, data, r.getheader("Set-Cookie"), float(st.split("dur=")[1])
_, _, ck, _ = req(u.path + "?" + u.query)
ck = ck.split(";")[0]
csrf = json.loads(req("/api/session", ck)[1])["csrf"]
q = urllib.parse.quote
cases = [
    ("session (page shell)", "/api/session"),
    ("static page (index.html)", "/index.html"),
    ("search: whole ID number", "/api/find?q=" + q(idn)),
    ("search: last 4 of ID number", "/api/find?q=" + q(idn[-4:])),
    ("search: name", "/api/find?q=" + q(name)),
    ("search: surname (1 char)", "/api/find?q=" + q(name[0])),
    ("search: name + birth date", "/api/find?q=" + q(name + " " + birth)),
    ("pick-list (search as you type, 15)", "/api/find?limit=15&q=" + q(name[:2])),
    ("duplicate check while typing", "/api/dupcheck?id_number=" + q(idn)),
    ("field dictionary (form)", "/api/fields?kind=birth"),
    ("person page (first: builds link index)", "/api/record/" + pid),
    ("person page", "/api/record/" + pid),
    ("records: first page of persons", "/api/list?kind=person&limit=50"),
    ("records: page filtered by a value", "/api/list?kind=person&limit=50&q=" + q(name)),
    ("records: page of migrations (sparse)", "/api/list?kind=migration&limit=50"),
    ("records: waiting to sync (page)", "/api/list?pending=1&limit=50"),
    ("refused changes", "/api/refused"),
    ("migration cases (whole cache)", "/api/migrations"),
    ("sync status", "/api/sync"),
]
print("%-42s %9s %9s %9s" % ("request (server side, ms)", "median", "p90", "max"))
for label, path in cases:
    n = 1 if "first:" in label else runs
    ts = []
    for _ in range(n):
        st, data, _, t = req(path, ck)
        if st != 200: print("  %s: HTTP %d %s" % (label, st, data[:100])); break
        ts.append(t)
    if not ts: continue
    ts.sort()
    print("%-42s %9.2f %9.2f %9.2f" % (label, statistics.median(ts), ts[int(0.9 * (len(ts) - 1))], ts[-1]))
# A save (validation + one LMDB transaction).
ts = []
for i in range(runs):
    body = json.dumps({"kind": "service_visit", "values": {"person_id": pid, "service": "followup", "visit_date": "2025-05-0%d" % (1 + i % 9)}})
    st, data, _, t = req("/api/record/save", ck, "POST", body, {"X-CSRF-Token": csrf, "Content-Type": "application/json"})
    ts.append(t)
ts.sort()
print("%-42s %9.2f %9.2f %9.2f" % ("save a visit (validate + store)", statistics.median(ts), ts[int(0.9 * (len(ts) - 1))], ts[-1]))
PY
