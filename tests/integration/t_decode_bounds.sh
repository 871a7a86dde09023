# Decoding is bounded (issue 8, item 6), live: frames built to make
# protobuf-c allocate many times their size (1 MiB Push bodies of empty
# submessages, of Changes holding empty Records, and of unknown fields) are
# sent to popsyncd 50 times, five connections at a time.  Each gets an
# Error and its connection is closed; the daemon's memory (VmRSS, and its
# peak VmHWM) stays within 200 MiB of what it used before (400 under ASan); and it still
# serves a normal client.  (tests/unit/test_decode_bounds.c checks the
# budget itself for every message type.)
. "$(dirname "$0")/lib.sh"
: "${PS_TESTCLIENT:?}"
# Under AddressSanitizer freed memory waits in a quarantine (256 MiB by
# default) that counts in VmRSS, and every block has redzones: shrink the
# quarantine and allow twice the room, so the bound still measures the daemon.
LIMIT_MB=200
if grep -q __asan_init "$POPSYNCD" 2>/dev/null; then
    export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=4:thread_local_quarantine_size_kb=64"
    LIMIT_MB=$((LIMIT_MB * 2))
fi
make_pki
start_server --handshake-timeout 10000
tc() {
    "$PS_TESTCLIENT" --server 127.0.0.1:$PORT --ca "$T/pki/ca.crt" --cert "$T/pki/town1.crt" \
        --key "$T/pki/town1.key" "$@"
}
rss() { awk '/^VmRSS:/ { print $2 }' "/proc/$SERVER_PID/status"; }
hwm() { awk '/^VmHWM:/ { print $2 }' "/proc/$SERVER_PID/status"; }

client t1 town1
ps --data "$T/t1" generate --persons 500 --seed 5 >/dev/null
ps --data "$T/t1" sync --quiet || fail "warm-up sync"
base=$(rss)
base_hwm=$(hwm)

# hdr TYPE BODYLEN REQ: a frame header.
hdr() { printf '%08x%02x000000%08x' $(($2 + 8)) "$1" "$3"; }
MIB=1048576
bodies=(
    "$(hdr 3 $MIB 7) rep:$((MIB / 2)):0a00"          # Push: 512 Ki empty Changes
    "$(hdr 3 $MIB 7) rep:$((MIB / 4)):0a021200"      # Push: Changes holding empty Records
    "$(hdr 3 $((MIB / 3 * 3)) 7) rep:$((MIB / 3)):f80100"  # Push: unknown field 31, over and over
    "$(hdr 5 $((MIB / 3 * 3)) 7) rep:$((MIB / 3)):f80100"  # Pull: the same
    "$(hdr 18 $MIB 7) rep:$((MIB / 2)):0a00"         # FetchRequest: 512 Ki empty ids
)
sent=0
errors=0
for round in $(seq 1 10); do
    pids=()
    for k in 0 1 2 3 4; do
        set -- ${bodies[$k]}
        tc --hello --hex "$1" --hex "$2" --wait 8000 >"$T/out.$k" 2>&1 &
        pids+=($!)
    done
    for k in 0 1 2 3 4; do
        wait "${pids[$k]}" || fail "test client failed: $(cat "$T/out.$k")"
        sent=$((sent + 1))
        grep -q "error (fatal): malformed .* body" "$T/out.$k" || fail "frame $k got no fatal error: $(cat "$T/out.$k")"
        tail -1 "$T/out.$k" | grep -qx closed || fail "frame $k did not close its connection: $(cat "$T/out.$k")"
        errors=$((errors + 1))
    done
    kill -0 "$SERVER_PID" || fail "popsyncd died"
done
after=$(rss)
peak=$(hwm)
echo "rss: before ${base} kB, after ${after} kB, peak ${peak} kB (peak before ${base_hwm} kB)"
[ $((after - base)) -lt $((LIMIT_MB * 1024)) ] || fail "VmRSS grew by $(((after - base) / 1024)) MiB after $sent inflating frames"
[ $((peak - base)) -lt $((LIMIT_MB * 1024)) ] || fail "VmHWM reached $(((peak - base) / 1024)) MiB over the baseline"
ps --data "$T/t1" generate --persons 50 --seed 6 >/dev/null
ps --data "$T/t1" sync --quiet || fail "a normal client after the inflating frames"
ps --data "$T/t1" verify | grep -q "in sync" || fail "normal client not in sync"
stop_server
echo "decode bounds: $sent frames of 1 MiB sent, $errors errors, RSS +$(((after - base) / 1024)) MiB, peak +$(((peak - base) / 1024)) MiB over the baseline of $((base / 1024)) MiB"
pass "inflating frames are refused and memory stays bounded"
