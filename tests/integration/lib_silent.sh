# lib_silent.sh - `popsync ui` against a district server that keeps it
# waiting (t_ui_silent.sh, t_ui_offline.sh).  Source after lib.sh and
# lib_ui.sh.
#   silent_setup         a district of one person (its id in PERSON), synced
#                        by caches t1 (town1) and admin; popsyncd stopped
#   start_silent NAME MODE [PKI]  tests/tools/silent_server.py (tcp: accepts
#                        and never writes; welcome: TLS and a Welcome, then
#                        silence) as $T/NAME.*; its address in SILENT
#   accepted             the connections the last started one took
#   login NAME           starts `popsync ui` on cache NAME with a cookie jar
#                        ($T/jar) and the CSRF token (CSRF); BASE its address
#   get PATH [LANG]      the UI's answer into $T/a.json, its status in CODE
#   ask PATH [LANG]      get, for a page that must ask the silent server
#   held PATH [LANG]     get, for a page that must not ask it (the count stays)
#   retry                POST /api/server/retry: the 再试 Try again button
#   field KEY            a top-level value of $T/a.json
SILENT_PIDS=""
silent_setup() {
    make_pki
    start_server
    client t1 town1
    client admin admin
    PERSON=$(ps --data "$T/t1" add person --set name=吴十 --set id_number=110105199003071239) || fail "add"
    ps --data "$T/t1" sync >/dev/null || fail "t1 sync"
    ps --data "$T/admin" sync >/dev/null || fail "admin sync"
    stop_server
}
silent_cleanup() {
    local rc=$?
    for pid in $SILENT_PIDS; do kill "$pid" 2>/dev/null || true; done
    (exit $rc)
    ui_cleanup
}
trap silent_cleanup EXIT

SILENT_SRC=${PS_TEST_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
start_silent() {
    python3 "$SILENT_SRC/tests/tools/silent_server.py" "$T/$1" "$2" ${3:+"$3"} 2>>"$T/$1.err" &
    SILENT_PIDS="$SILENT_PIDS $!"
    SILENT_PID=$!
    for _ in $(seq 1 100); do [ -s "$T/$1.port" ] && break; sleep 0.1; done
    [ -s "$T/$1.port" ] || fail "the silent server $1 did not start"
    SILENT=127.0.0.1:$(cat "$T/$1.port")
    SILENT_NAME=$1
}
accepted() { cat "$T/$SILENT_NAME.n" 2>/dev/null || echo 0; }

# The start token exchanged for the session cookie, as the browser does,
# then the CSRF token every POST carries (GET /api/session).
login() {
    ui_start "$1"
    BASE=${UI_URL%%/?token=*}
    curl -sS --noproxy '*' -c "$T/jar" -o /dev/null --max-time 30 "$UI_URL" || fail "token exchange"
    CSRF=$(curl -sS --noproxy '*' -b "$T/jar" --max-time 30 "$BASE/api/session" |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["csrf"])') || fail "no CSRF token"
}
# --max-time 40: the CLI's 60 s silence timeout would not answer in time
# (a bound on the wait, not a speed check).
get() {
    CODE=$(curl -sS --noproxy '*' -b "$T/jar" -b "popsync_lang=${2:-zh}" -o "$T/a.json" -w '%{http_code}' \
        --max-time 40 "$BASE$1") || fail "GET $1: no answer within 40 s (curl exit $?)"
}
ask() {
    local before
    before=$(accepted)
    get "$@"
    [ "$(accepted)" -gt "$before" ] || fail "GET $1 did not ask the silent server"
}
held() {
    local before
    before=$(accepted)
    get "$@"
    expect_eq "$(accepted)" "$before" "GET $1: connections the silent server took"
}
retry() {
    local code
    code=$(curl -sS --noproxy '*' -b "$T/jar" -H "X-CSRF-Token: $CSRF" -H 'Content-Type: application/json' \
        -d '{}' -o "$T/r.json" -w '%{http_code}' --max-time 30 "$BASE/api/server/retry") || fail "POST retry"
    expect_eq "$code" 200 "POST /api/server/retry"
}
field() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get(sys.argv[2]))' "$T/a.json" "$1"; }
