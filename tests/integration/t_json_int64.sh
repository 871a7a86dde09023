# json_int64: every JSON popsync writes carries its 64-bit values (clocks,
# revisions, feed positions, times, amounts of money) as decimal strings,
# as the protobuf JSON mapping does (issue 21 point 9, docs/data-model.md
# §4.1): an hlc is about 1.2e17, above 2^53, and JavaScript, spreadsheets
# and most JSON tools round such numbers.  Checks every JSON output: no
# number above 2^53 anywhere, the 64-bit keys are strings, and an exported
# file with strings (or with numbers) still imports.
. "$(dirname "$0")/lib4.sh"
make_pki4
issue township $TA townA
start_server4
client admin admin
client ta townA

sq ta generate --persons 60 --seed 9 --orgunits "$ORGUNITS" >/dev/null || fail "generate"
psync ta
psync admin
# A conflict, so that `conflicts list` has something to print: both edit
# the same field of one person; ta's edit reaches the server first.
p=$(sq ta list --kind person --format json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["id"])')
sq ta edit "$p" --set phone=13900000001 || fail "edit in ta"
sq admin edit "$p" --set phone=13900000002 || fail "edit in admin"
psync ta
sq admin sync --quiet >/dev/null 2>&1 || true
M=$(date -u +%Y-%m)

o=$T/out
mkdir -p "$o"
sq admin list --format json --deleted >"$o/list.json" || fail "list"
sq admin list --kind benefit --format json >"$o/list-benefit.json" || fail "list benefit"
sq admin show "$p" --format json >"$o/show.json" || fail "show"
sq admin export --kind benefit --format json --out "$o/export.json" || fail "export"
sq admin status --json >"$o/status.json" || fail "status"
sq admin status --all --json >"$o/status-all.json" || fail "status --all"
sq ta sync --json >"$o/sync.json" || fail "sync --json"
sq admin conflicts list --all --json >"$o/conflicts.json" || fail "conflicts list"
sq admin query --kind benefit --group-by orgunit --sum amount_fen --format json >"$o/query-sum.json" || fail "query --sum"
sq admin query --kind benefit --list --format json >"$o/query-list.json" || fail "query --list"
sq admin report monthly --month "$M" --format json >"$o/monthly.json" || fail "report monthly"
sq admin report quality --format json >"$o/quality.json" || fail "report quality"
sq ta report submit --month "$M" >/dev/null || fail "report submit"
sq admin report status --month "$M" --format json >"$o/close.json" || fail "report status"
sq admin stats --json >"$o/stats.json" || fail "stats"
sq admin verify --json >"$o/verify.json" || fail "verify"

python3 - "$o" <<'PY' || fail "a JSON output carries a 64-bit value as a number"
import json, os, sys
d = sys.argv[1]
# Keys whose values are 64-bit clocks, positions, times or amounts.
STRING_KEYS = {"hlc", "gen", "seq", "lcn", "cursor", "head", "high_water", "created_ms", "updated_ms",
               "last_sync_ms", "last_seen_ms", "generated_ms", "at_ms", "amount_fen", "sum",
               "benefits_paid_fen"}
bad, seen = [], set()

def walk(v, where):
    if isinstance(v, bool) or v is None:
        return
    if isinstance(v, int):
        if abs(v) > 2 ** 53:
            bad.append("%s: number %d above 2^53" % (where, v))
    elif isinstance(v, float):
        if abs(v) > 2 ** 53:
            bad.append("%s: number %r above 2^53" % (where, v))
    elif isinstance(v, list):
        for i, x in enumerate(v):
            walk(x, "%s[%d]" % (where, i))
    elif isinstance(v, dict):
        for k, x in v.items():
            if k in STRING_KEYS and x is not None and not isinstance(x, (dict, list)):
                seen.add(k)
                if not isinstance(x, str) or not x.lstrip("-").isdigit():
                    bad.append("%s.%s: %r is not a decimal string" % (where, k, x))
            walk(x, "%s.%s" % (where, k))

files = sorted(os.listdir(d))
for f in files:
    text = open(os.path.join(d, f), encoding="utf-8").read()
    walk(json.loads(text), f)
# The check saw what it is about: clocks and amounts were in the outputs.
for k in ("hlc", "gen", "cursor", "head", "created_ms", "amount_fen", "sum", "generated_ms"):
    if k not in seen:
        bad.append("no output carried %s" % k)
for b in bad[:20]:
    print(b, file=sys.stderr)
sys.exit(1 if bad else 0)
PY
pass "no JSON output carries a number above 2^53; hlc, gen, cursor, times and amounts are decimal strings"

# The hlc in JSON is the exact value (the table form prints the same one).
exact=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["rev"]["hlc"])' "$o/show.json")
table=$(sq admin show "$p" | awk '$1 == "rev" {print $2}')
[[ "$table" == *"\"hlc\":\"$exact\""* ]] || fail "hlc differs between JSON ($exact) and table ($table)"
pass "an hlc above 2^53 reads back exactly from JSON"

# Reading accepts both forms: the export (strings) and the same file with
# amount_fen as numbers import as no-op updates of the same records.
python3 - "$o/export.json" "$T/numbers.json" <<'PY'
import json, sys
recs = json.load(open(sys.argv[1]))
for r in recs:
    r["amount_fen"] = int(r["amount_fen"])
json.dump(recs, open(sys.argv[2], "w"), ensure_ascii=False)
PY
sq admin import "$o/export.json" --kind benefit >/dev/null || fail "import of the export (strings)"
sq admin import "$T/numbers.json" --kind benefit >/dev/null || fail "import with numbers"
sq admin export --kind benefit --format json --out "$T/again.json" || fail "export again"
cmp -s "$o/export.json" "$T/again.json" || fail "import of strings or numbers changed the amounts"
pass "import reads 64-bit values as strings and as numbers"
