# report_offline: `report monthly|quality` and `query` work from the local
# cache (issue 16 point 8).  With --local, or when the server cannot be
# reached (then one line says it fell back), they print what the server
# would print for the same records, byte for byte but for one first line
# "as of the last sync, TIME"; the monthly report reads the counters the
# cache keeps in the transaction of every write, which stay equal to a
# recount through local edits, deletes and pulled changes; a township cache
# gets its own scope; a cache made before the counters builds them once.
. "$(dirname "$0")/lib4.sh"
: "${PS_LMDBPOKE:?}"
make_pki4
issue township $TA townA
issue viewer $D4 viewer
start_server4
client gen admin
client admin admin
client ta townA
client v viewer

sq gen generate --persons 300 --seed 5 --orgunits "$ORGUNITS" >/dev/null || fail "generate"
psync gen
psync admin
psync ta

# The months with the most births, and this month (persons_new).
months=$(sq admin query --kind birth --date-field birth_date --group-by month --format json | python3 -c '
import json, sys
rows = sorted(json.load(sys.stdin), key=lambda r: -r["count"])
print(" ".join(r["month"] for r in rows[:3] if r["month"]))')
months="$months $(date -u +%Y-%m)"
[ -n "$months" ] || fail "no months with births"

STAMP_EN='^\(as of the last sync, [0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2} [A-Za-z_/]+(;.*)?\)$'
STAMP_ZH='^\(截至上次同步 [0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}（[A-Za-z_/]+）的本地缓存数据'

# same CACHE TAG ARGS...: the command online and with --local prints the
# same but for the stamp line (tables) or generated_ms (JSON).
same() {
    local c=$1 tag=$2
    shift 2
    sq "$c" "$@" >"$T/$tag.on" 2>"$T/$tag.on.err" || fail "$tag online: $(cat "$T/$tag.on.err")"
    sq "$c" "$@" --local >"$T/$tag.off" 2>"$T/$tag.off.err" || fail "$tag --local: $(cat "$T/$tag.off.err")"
    compare "$tag" "$@"
}

# compare TAG ARGS...: $T/TAG.off against $T/TAG.on.
compare() {
    local tag=$1
    shift
    case " $* " in
    *" --format json "*)
        python3 - "$T/$tag.on" "$T/$tag.off" <<'PY' || fail "$tag: JSON differs"
import json, sys
a, b = (json.load(open(f)) for f in sys.argv[1:])
for x in (a, b):
    if isinstance(x, dict):
        x.pop("generated_ms", None)
assert a == b, (a, b)
PY
        grep -q "as of the last sync" "$T/$tag.off.err" || fail "$tag: no stamp on stderr"
        ;;
    *" --format csv "*)
        cmp -s "$T/$tag.on" "$T/$tag.off" || fail "$tag: CSV differs: $(diff "$T/$tag.on" "$T/$tag.off" | head)"
        grep -q "as of the last sync" "$T/$tag.off.err" || fail "$tag: no stamp on stderr"
        ;;
    *)
        local re=$STAMP_EN
        case " $* " in *" --lang zh "*) re=$STAMP_ZH ;; esac
        head -n 1 "$T/$tag.off" | grep -Eq "$re" || fail "$tag: stamp line is '$(head -n 1 "$T/$tag.off")'"
        tail -n +2 "$T/$tag.off" | cmp -s "$T/$tag.on" - ||
            fail "$tag: differs: $(tail -n +2 "$T/$tag.off" | diff "$T/$tag.on" - | head -20)"
        ;;
    esac
}

# all_same CACHE: every report and query compared for cache CACHE.
all_same() {
    local c=$1 m
    for m in $months; do
        same "$c" "m.$m.en" report monthly --month "$m" --lang en
        same "$c" "m.$m.zh" report monthly --month "$m" --lang zh
        same "$c" "m.$m.json" report monthly --month "$m" --format json
        same "$c" "m.$m.csv" report monthly --month "$m" --format csv
        same "$c" "m.$m.dl" report monthly --month "$m" --deadline-urgent 3 --deadline-normal 90 --lang en
    done
    same "$c" q.en report quality --lang en
    same "$c" q.zh report quality --lang zh --details
    same "$c" q.json report quality --format json
    same "$c" qy.g1 query --kind person --group-by township,sex
    same "$c" qy.g2 query --kind birth --date-field birth_date --from 2000-01-01 --group-by month,child_sex --format csv
    same "$c" qy.g3 query --kind benefit --group-by unit --sum amount_fen --format json
    same "$c" qy.g4 query --kind migration --where direction=inflow --group-by township
    same "$c" qy.l1 query --kind person --where sex=female --list --limit 7 --format csv
    same "$c" qy.l2 query --kind birth --list --limit 5
    same "$c" qy.l3 query --kind service_visit --list --format json --deleted
}

counters_ok() {
    sq "$1" stats --check-counters >"$T/check.out" 2>&1 || fail "$2: $(cat "$T/check.out")"
    grep -q "report counters match a recount" "$T/check.out" || fail "$2: $(cat "$T/check.out")"
}

counters_ok admin "after the first sync"
all_same admin
grep -q "Monthly report" "$T/m.$(echo $months | cut -d' ' -f1).en.on" || fail "no monthly report printed"
pass "report monthly|quality and query: --local prints what the server prints, stamped"

# A township cache: its own scope, the same as the server gives it.
counters_ok ta "township cache"
m1=$(echo $months | cut -d' ' -f1)
same ta ta.m report monthly --month "$m1" --lang en
same ta ta.q report quality --lang en
same ta ta.qy query --kind person --group-by township
grep -q "covers this cache's scope, $TA" "$T/ta.m.off" || fail "the township's stamp does not name its scope"
[ "$(grep -c "^  *$TB \|^$TB " "$T/ta.m.off")" = 0 ] || fail "a township's report shows another township"
pass "a township cache's offline reports cover its scope, like the server's"

# A viewer's cache holds no records: no answer from it, rather than zeros.
rc=0
sq v report monthly --month "$m1" --local >"$T/v.out" 2>"$T/v.err" || rc=$?
expect_eq "$rc" 1 "a viewer's report --local"
grep -q "viewer's cache holds no records" "$T/v.err" || fail "viewer: $(cat "$T/v.err")"
[ ! -s "$T/v.out" ] || fail "viewer: printed $(cat "$T/v.out")"

# Local edits: the counters follow at once (before any sync), then equal
# the server's again after the sync.
read -r bid mb < <(sq admin query --kind birth --list --limit 1 --format json --local 2>/dev/null |
    python3 -c 'import json,sys; r=json.load(sys.stdin)[0]; print(r["id"], r["birth_date"][:7])')
births() {
    sq admin report monthly --month "$1" --format json --local 2>/dev/null |
        python3 -c 'import json,sys; r=json.load(sys.stdin)["rows"][-1]; print(r["births_total"])'
}
before=$(births "$mb")
before19=$(births 2019-02)
sq admin edit "$bid" --set birth_date=2019-02-03 >/dev/null || fail "edit the birth"
expect_eq "$(births "$mb")" "$((before - 1))" "births of $mb after moving one away, before a sync"
expect_eq "$(births 2019-02)" "$((before19 + 1))" "births of 2019-02 after moving one there, before a sync"
sq admin report monthly --month "$mb" --local 2>/dev/null | head -n 1 | grep -q "1 local change(s) not yet sent" ||
    fail "the stamp does not say a local change is waiting"
vid=$(sq admin query --kind service_visit --list --limit 1 --format json --local 2>/dev/null |
    python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["id"])')
sq admin delete "$vid" >/dev/null || fail "delete a visit"
mom=$(sq admin query --kind person --where sex=female --list --limit 1 --format json --local 2>/dev/null |
    python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["id"])')
sq admin add birth --set mother_id="$mom" --set child_sex=male --set birth_date="$m1-02" --set birth_order=1 \
    --set orgunit=$TA_V1 >/dev/null || fail "add a birth"
counters_ok admin "after local edits"
psync admin
counters_ok admin "after pushing the edits"
# Edits made elsewhere arrive by the pull.
pid=$(sq gen query --kind person --list --limit 1 --format json --local 2>/dev/null |
    python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["id"])')
sq gen delete "$pid" --force >/dev/null || fail "delete a person in gen"
bid2=$(sq gen query --kind birth --list --limit 2 --format json --local 2>/dev/null |
    python3 -c 'import json,sys; print(json.load(sys.stdin)[1]["id"])')
sq gen edit "$bid2" --set child_sex=female >/dev/null || fail "edit a birth in gen"
psync gen
psync admin
psync ta
counters_ok admin "after pulling edits and deletes"
counters_ok ta "township after pulling"
all_same admin
same ta ta.m2 report monthly --month "$m1" --lang en
pass "counters equal a recount and the server's report through local edits, deletes and pulls"

# A cache made before the counters: built once, with a message.
cp -a "$T/admin" "$T/old"
"$PS_LMDBPOKE" "$T/old" counters drop || fail "drop the counters"
"$PS_LMDBPOKE" "$T/old" meta delete "$(printf counters_v | od -An -tx1 | tr -d ' \n')" || fail "forget counters_v"
sq old report monthly --month "$m1" --local >"$T/old.m" 2>"$T/old.err" || fail "old cache: $(cat "$T/old.err")"
grep -q "building them once" "$T/old.err" || fail "no message on the one-time build: $(cat "$T/old.err")"
tail -n +2 "$T/old.m" | cmp -s - <(tail -n +2 "$T/m.$m1.en.off") || fail "old cache: the built counters differ"
sq old report monthly --month "$m1" --local >/dev/null 2>"$T/old2.err" || fail "old cache again"
! grep -q "building" "$T/old2.err" || fail "the counters were built twice"
counters_ok old "the built counters"
pass "a cache without counters builds them once, with a message"

# The server down: the same answers, with one line saying so.
sq admin report monthly --month "$m1" --lang en >"$T/last.on" || fail "monthly before stopping"
stop_server
sq admin report monthly --month "$m1" --lang en >"$T/down.m" 2>"$T/down.err" || fail "monthly with the server down: $(cat "$T/down.err")"
[ "$(wc -l <"$T/down.err")" = 1 ] && grep -q "cannot be reached.*answering from the local cache" "$T/down.err" ||
    fail "fallback notice: $(cat "$T/down.err")"
head -n 1 "$T/down.m" | grep -Eq "$STAMP_EN" || fail "fallback not stamped: $(head -n 1 "$T/down.m")"
tail -n +2 "$T/down.m" | cmp -s "$T/last.on" - || fail "fallback monthly differs from the last online one"
sq admin report quality --lang zh --details >"$T/down.q" 2>"$T/down.qerr" || fail "quality with the server down"
grep -q "cannot be reached" "$T/down.qerr" || fail "quality: no fallback notice"
tail -n +2 "$T/down.q" | cmp -s "$T/q.zh.on" - || fail "fallback quality differs"
head -n 1 "$T/down.q" | grep -Eq "$STAMP_ZH" || fail "fallback quality not stamped in Chinese"
sq admin query --kind person --group-by township,sex >"$T/down.qy" 2>"$T/down.qyerr" || fail "query with the server down"
grep -q "cannot be reached" "$T/down.qyerr" || fail "query: no fallback notice"
tail -n +2 "$T/down.qy" | cmp -s "$T/qy.g1.on" - || fail "fallback query differs"
# The monthly close changes the server's state: never offline.
rc=0
sq admin report submit --month "$m1" --orgunit $TA >/dev/null 2>&1 || rc=$?
expect_eq "$rc" 3 "report submit with the server down"
rc=0
sq admin report status --month "$m1" --local >/dev/null 2>&1 || rc=$?
expect_eq "$rc" 2 "report status --local"
pass "with the server down the reports and queries fall back to the cache, stamped; the close does not"
