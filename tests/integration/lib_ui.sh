# lib_ui.sh - starting `popsync ui` and the browser tests (tests/browser/)
# from an integration test.  Source after lib.sh.
#   ui_need_browser      exits 77 when chromium, chromedriver or selenium is missing
#   ui_start NAME [opts] starts `popsync ui` on cache $T/NAME; sets UI_URL, UI_PID
#   ui_browser SCRIPT SHOTS [ARGS]  runs tests/browser/SCRIPT with UI_URL
#   ui_stop              stops it (SIGTERM) and checks it exits 0
UI_PID=""
UI_SRC=${PS_TEST_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
UI_SHOTS=${UI_SHOTS:-$(dirname "$POPSYNC")/ui-shots}

ui_need_browser() {
    UI_PY=""
    for p in /usr/bin/python3 python3; do
        if command -v "$p" >/dev/null && "$p" -c 'import selenium' 2>/dev/null; then UI_PY=$p; break; fi
    done
    if [ -z "$UI_PY" ] || [ ! -x "${CHROMIUM:-/usr/bin/chromium}" ] || [ ! -x "${CHROMEDRIVER:-/usr/bin/chromedriver}" ]; then
        echo "skip: chromium, chromium-driver or python3-selenium missing (scripts/install-deps.sh)"
        exit 77
    fi
}

ui_start() {
    local name=$1; shift
    rm -f "$T/ui-$name.out"
    "$POPSYNC" --data "$T/$name" ui "$@" >"$T/ui-$name.out" 2>>"$T/ui-$name.err" &
    UI_PID=$!
    for _ in $(seq 1 100); do
        grep -q '^popsync ui: ' "$T/ui-$name.out" 2>/dev/null && break
        kill -0 "$UI_PID" 2>/dev/null || fail "popsync ui exited at start: $(cat "$T/ui-$name.err")"
        sleep 0.1
    done
    UI_URL=$(sed -n 's/^popsync ui: //p' "$T/ui-$name.out")
    [ -n "$UI_URL" ] || fail "popsync ui printed no address"
}

ui_browser() {
    local script=$1 shots=$2 args=${3:-"{}"}
    rm -rf "${UI_SHOTS:?}/$shots"
    mkdir -p "$UI_SHOTS/$shots"
    (cd "$UI_SRC/tests/browser" && env -u http_proxy -u https_proxy -u HTTP_PROXY -u HTTPS_PROXY \
        POPSYNC="$POPSYNC" T="$T" timeout 240 "$UI_PY" "$script" "$UI_URL" "$UI_SHOTS/$shots" "$args") ||
        fail "browser test $script"
}

ui_stop() {
    [ -n "$UI_PID" ] || return 0
    kill -TERM "$UI_PID"
    wait "$UI_PID" || fail "popsync ui exited with $? on SIGTERM"
    UI_PID=""
}

# A failing test must not leave `popsync ui` running.
ui_cleanup() {
    local rc=$?
    if [ -n "$UI_PID" ]; then kill -TERM "$UI_PID" 2>/dev/null || true; fi
    (exit $rc)
    cleanup
}
trap ui_cleanup EXIT
