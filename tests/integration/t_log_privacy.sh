# Logs never hold names or ID numbers (issue 5, item 7).  A full workload
# of its own - every record kind in several townships, sync, conflicts and
# their resolution, an import with bad rows, queries and reports, verify,
# the monthly close, and failures (a foreign CA, a revoked certificate, a
# viewer trying to sync, an edit outside a collector's scope) - runs with
# popsyncd at --log-level debug and every client command at --log-level
# debug with its stderr kept.  Then every line of those logs is searched
# for every generated name, ID number, phone number and address (taken from
# the admin's export after the sync), and for any 18-character string that
# is a valid GB 11643 ID number.  Log copies left by other tests in
# $PS_TEST_LOGS (lib.sh) are scanned for ID numbers too, as far as present.
. "$(dirname "$0")/lib4.sh"
CL="$T/clients.log"   # every client command's stderr (copied by lib.sh's save_logs)

# c NAME ARGS...: popsync on cache NAME at debug level, stderr kept.
c() {
    local name=$1
    shift
    echo "### popsync $name $1" >>"$CL"
    ps --data "$T/$name" --log-level debug "$@" 2>>"$CL"
}
# cfail NAME ARGS...: the same, for a command that must fail.
cfail() {
    if c "$@" >/dev/null; then
        fail "popsync $* succeeded but should have failed"
    fi
}

make_pki4
issue township $TA ta
issue township $TB tb
issue township $TC tc
issue collector $TA_V1 coll
issue viewer $D4 viewer
issue township $TB doomed
ps pki crl --dir "$T/pki" >/dev/null
ps pki init-ca --dir "$T/other" --name "rogue CA" >/dev/null
ps pki issue --dir "$T/other" --role admin --orgunit $D4 --name intruder >/dev/null
start_server4 --log-level debug --crl "$T/pki/ca.crl"
for n in ta tb tc coll viewer admin; do
    client "$n" "$n"
done
# The device to be revoked keeps its own copy of its certificate (revoke
# moves the CA machine's copy away).
mkdir -p "$T/dev-doomed"
cp "$T/pki/doomed.crt" "$T/pki/doomed.key" "$T/dev-doomed/"
ps --data "$T/doomed" init --server 127.0.0.1:$PORT --ca "$T/pki/ca.crt" --cert "$T/dev-doomed/doomed.crt" \
    --key "$T/dev-doomed/doomed.key" >/dev/null
ps --data "$T/admin2" init --server 127.0.0.1:$PORT --ca "$T/pki/ca.crt" --cert "$T/pki/admin.crt" \
    --key "$T/pki/admin.key" >/dev/null
ps --data "$T/intruder" init --server 127.0.0.1:$PORT --ca "$T/pki/ca.crt" --cert "$T/other/intruder.crt" \
    --key "$T/other/intruder.key" >/dev/null

# Every kind in three townships, then everyone syncs.
seed=1
for n in ta tb tc; do
    case $n in ta) unit=$TA ;; tb) unit=$TB ;; tc) unit=$TC ;; esac
    c "$n" generate --persons 150 --seed $seed --orgunit "$unit" --orgunits "$ORGUNITS" >/dev/null
    seed=$((seed + 1))
done
c coll add person --set "id_number=$(idnum 1990-02-03 7 male)" --set name=田野采集 --set sex=male \
    --set birth_date=1990-02-03 --set phone=13712345678 --set address=建设路社区七号楼 >/dev/null
for n in ta tb tc coll admin admin2; do c "$n" sync >/dev/null || fail "sync of $n"; done

# Conflicts: the two admin caches edit the same persons at once; one is
# resolved.  An offline collector edit to a record moved out of its unit.
mapfile -t some < <(sq admin list --kind person --orgunit $TA --format json |
    python3 -c 'import json,sys; [print(r["id"]) for r in json.load(sys.stdin)[:3]]')
for r in "${some[@]}"; do
    c admin edit "$r" --set phone=13500000001 >/dev/null
    c admin2 edit "$r" --set phone=13500000002 --set address=冲突测试路一号 >/dev/null
done
c admin sync >/dev/null || fail "admin sync with edits"
c admin2 sync >/dev/null || true
c admin conflicts list >/dev/null
cf=$(sq admin conflicts list --json | python3 -c 'import json,sys; c=json.load(sys.stdin); print(c[0]["id"] if c else "")')
[ -n "$cf" ] || fail "no conflict was made"
c admin conflicts resolve "$cf" --keep theirs >/dev/null || fail "resolve"
cid=$(sq coll list --kind person --format json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["id"])')
c admin edit "$cid" --set orgunit=$TA_V2 >/dev/null
c admin sync >/dev/null
c coll edit "$cid" --set phone=13600000003 >/dev/null
c coll sync >/dev/null || true

# An import with bad rows (bad check character, impossible date, unknown sex).
python3 - "$T/import.csv" <<'PY'
import sys
W = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
def idn(d17): return d17 + "10X98765432"[sum(int(c) * w for c, w in zip(d17, W)) % 11]
rows = [("导入甲", idn("13020319800101001"), "male", "1980-01-01"),
        ("导入乙", idn("13020319810202002"), "female", "1981-02-02"),
        ("导入丙", idn("13020319820303003")[:17] + "0", "male", "1982-03-03"),
        ("导入丁", idn("13020319830404004"), "female", "1983-02-30"),
        ("导入戊", idn("13020319840505005"), "other", "1984-05-05")]
with open(sys.argv[1], "w") as f:
    f.write("name,id_number,sex,birth_date,phone,address,orgunit\n")
    for i, (n, d, s, b) in enumerate(rows):
        f.write("%s,%s,%s,%s,1391234000%d,导入路%d号,130203001001\n" % (n, d, s, b, i, i))
PY
c ta import "$T/import.csv" --kind person >/dev/null || true
c ta sync >/dev/null || fail "sync after the import"

# Queries, reports, the monthly close, verify, stats, status.
month=$(date +%Y-%m)
c ta query --kind person --group-by sex >/dev/null
c ta query --kind person --list --limit 5 >/dev/null
c admin query --kind birth --group-by township,month >/dev/null
c viewer query --kind person --group-by township >/dev/null
cfail viewer query --kind person --list
c ta report monthly --month "$month" >/dev/null
c ta report quality >/dev/null
c admin report monthly --month "$month" --lang en >/dev/null
c viewer report quality >/dev/null
c ta report submit --month "$month" >/dev/null
c admin report approve --month "$month" --orgunit $TA >/dev/null
c tb report submit --month "$month" >/dev/null
c admin report return --month "$month" --orgunit $TB --note "请补充" >/dev/null
c ta verify >/dev/null || fail "verify"
c admin verify >/dev/null || fail "admin verify"
c admin stats >/dev/null
c ta status >/dev/null
c tb export --kind person --format csv --out "$T/tb.csv" >/dev/null

# Every message as a township, pushes in and out of its scope included
# (the server refuses one change and says why to the client).
if [ -n "${PS_AUTHMATRIX:-}" ]; then
    pa=$(sq ta list --kind person --orgunit $TA --format json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["id"])')
    pb=$(sq tb list --kind person --orgunit $TB --format json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["id"])')
    idn() { sq admin show "$1" --format json | python3 -c 'import json,sys; print(json.load(sys.stdin)["id_number"])'; }
    c admin sync >/dev/null
    echo "### ps_authmatrix ta" >>"$CL"
    "$PS_AUTHMATRIX" --server 127.0.0.1:$PORT --ca "$T/pki/ca.crt" --cert "$T/pki/ta.crt" --key "$T/pki/ta.key" \
        --month "$month" --close-month 2024-06 --in-id "$pa" --in-idnum "$(idn "$pa")" --in-unit $TA \
        --in-town $TA --out-id "$pb" --out-idnum "$(idn "$pb")" --out-unit $TB --out-town $TB >/dev/null 2>>"$CL" ||
        fail "ps_authmatrix as ta"
fi

# Failures: a viewer syncing, a foreign CA, a revoked certificate.
cfail viewer sync
cfail intruder sync
c doomed sync >/dev/null || fail "doomed sync before its revocation"
ps pki revoke --dir "$T/pki" --name doomed --reason keyCompromise >/dev/null
kill -HUP "$SERVER_PID"
sleep 0.5
cfail doomed sync
c admin sync >/dev/null || fail "final admin sync"
stop_server

# What must never be logged: from the admin's view of everything.
sq admin list --format json --deleted >"$T/all.json"
python3 - "$T/all.json" "$T/secrets" <<'PY'
import json, sys
recs = json.load(open(sys.argv[1]))
out = set()
for r in recs:
    for k in ("name", "id_number", "phone", "address"):
        v = r.get(k)
        if isinstance(v, str) and len(v) >= 2:
            out.add(v)
# Names and IDs that were refused or sit in bad import rows are secrets too.
out.update(["授权测试", "田野采集", "导入甲", "导入乙", "导入丙", "导入丁", "导入戊", "冲突测试路一号"])
with open(sys.argv[2], "w") as f:
    for v in sorted(out):
        f.write(v + "\n")
PY
nsecrets=$(wc -l <"$T/secrets")
[ "$nsecrets" -gt 500 ] || fail "only $nsecrets values to look for: the workload made too little data"
[ "$(wc -l <"$T/server.log")" -gt 100 ] || fail "the debug server log is suspiciously short"

# scan MODE FILE...: prints "FILE:LINE: what" for each finding.  MODE all
# looks for the secrets and valid ID numbers, ids for valid ID numbers only.
scan() {
    python3 - "$T/secrets" "$@" <<'PY'
import re, sys
secrets = [s for s in open(sys.argv[1], encoding="utf-8").read().split("\n") if s]
mode, files = sys.argv[2], sys.argv[3:]
W = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
pat = re.compile(r"(?<![0-9A-Za-z])([1-9][0-9]{5}(?:18|19|20)[0-9]{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12][0-9]|3[01])[0-9]{3}[0-9Xx])(?![0-9A-Za-z])")
def valid(s):
    return "10X98765432"[sum(int(c) * w for c, w in zip(s[:17], W)) % 11] == s[17].upper()
n = 0
for fn in files:
    try:
        lines = open(fn, encoding="utf-8", errors="replace").read().split("\n")
    except OSError:
        continue
    for i, line in enumerate(lines, 1):
        hits = [m for m in pat.findall(line) if valid(m)]
        if mode == "all":
            hits += [s for s in secrets if s in line]
        for h in sorted(set(hits)):
            n += 1
            if n <= 40:
                print("%s:%d: %r in: %s" % (fn, i, h, line[:200]))
print("findings:", n)
PY
}
# The scanner itself must see a leak: a planted name and a valid ID number.
printf 'INFO x: person %s registered\nINFO x: id %s\n' "$(sed -n 1p "$T/secrets")" "$(idnum 1970-01-01 3 male)" \
    >"$T/canary.txt"
expect_eq "$(scan all "$T/canary.txt" | tail -1)" "findings: 2" "the scanner on a planted leak"
out=$(scan all "$T/server.log" "$CL")
echo "$out" | tail -1
[ "$(echo "$out" | tail -1)" = "findings: 0" ] || fail "personal data in this test's logs:
$out"
pass "no name, ID number, phone or address in $(wc -l <"$T/server.log") server and $(wc -l <"$CL") client log lines ($nsecrets values searched)"

# Best effort: the log copies other tests left (lib.sh), for ID numbers.
if [ -d "$PS_TEST_LOGS" ]; then
    mapfile -t others < <(find "$PS_TEST_LOGS" -type f ! -path "*/t_log_privacy-*" | sort)
    if [ ${#others[@]} -gt 0 ]; then
        out=$(scan ids "${others[@]}")
        [ "$(echo "$out" | tail -1)" = "findings: 0" ] || fail "ID numbers in other tests' logs:
$out"
        pass "no ID number in ${#others[@]} log files left by other tests"
    fi
fi
