# No existence oracle (issue 21, point 6): answers about records outside
# the sender's scope do not depend on whether they exist.  Township A probes
# an existing person of township B (X) and an id the server has never seen
# (Y) with the same requests, sent past the client's own checks
# (ps_testclient --dump), and the answers must be byte-identical once the
# probed id itself is masked.  Before, an edit or a create of X was kept as a
# "moved out of scope" CONFLICT (and a junk conflict was attached to B's
# record) where Y was REJECTED.
. "$(dirname "$0")/lib4.sh"
: "${PS_TESTCLIENT:?}"
make_pki4
issue township $TA ta
issue township $TB tb
start_server4
client tb tb
x=$(add_person tb 1 --set orgunit=$TB_V1)
psync tb
idn=$(idnum 1985-06-02 7 male)
xhex=$(python3 -c 'import sys,uuid; print(uuid.UUID(sys.argv[1]).hex)' "$x")
# Y: X's time and version bits with other random bits.
yhex=$(python3 -c 'import os,sys; print(sys.argv[1][:16] + os.urandom(8).hex())' "$xhex")

# frame HEX_ID KIND ARGS: the hex of one request frame (request id 2).
#   push UNIT GEN [deleted]: a Push of one person change with that id, unit
#     and base generation (0: a new record)
#   fetch: a FetchRequest for that id
#   history: a HistoryRequest for that id (a record's versions, issue 18)
frame() {
    python3 - "$@" "$idn" <<'PY'
import struct, sys, time
args = sys.argv[1:]
rid, what, idn = bytes.fromhex(args[0]), args[1], args[-1]
def varint(n):
    out = b""
    while True:
        b = n & 0x7f; n >>= 7
        if n: out += bytes([b | 0x80])
        else: return out + bytes([b])
def f_varint(f, n): return varint(f << 3) + varint(n) if n else b""
def f_bytes(f, b): return varint(f << 3 | 2) + varint(len(b)) + b if b else b""
def f_str(f, s): return f_bytes(f, s.encode())
if what == "fetch":
    typ, body = 18, f_bytes(1, rid)
elif what == "history":
    typ, body = 27, f_bytes(1, rid)
else:
    unit, gen, deleted = args[2], int(args[3]), len(args) > 5 and args[4] == "deleted"
    person = f_str(1, idn) + f_str(2, "探测") + f_varint(3, 1) + f_str(4, "1985-06-02")
    rec = (f_bytes(1, rid) + f_varint(2, 1) + f_str(3, unit) + f_varint(5, int(deleted)) +
           f_varint(6, 1700000000000) + f_bytes(16, person))
    change = f_varint(1, 1) + f_bytes(2, rec) + f_bytes(3, f_varint(1, gen))
    typ, body = 3, f_bytes(1, change)
print((struct.pack(">IBBHI", 8 + len(body), typ, 0, 0, 2) + body).hex())
PY
}

# probe HEX_ID ARGS: township A's answer to that request, the id masked.
probe() {
    local id=$1
    "$PS_TESTCLIENT" --server 127.0.0.1:$PORT --ca "$T/pki/ca.crt" --cert "$T/pki/ta.crt" --key "$T/pki/ta.key" \
        --hello --dump --hex "$(frame "$@")" --wait 1000 | grep '^frame' | grep -v '^frame Welcome' |
        sed "s/$id/<ID>/g"
}

for c in "fetch" "history" "push $TA_V1 1" "push $TB_V1 1" "push $TA_V1 9" "push $TB_V1 0" "push $TB_V1 1 deleted"; do
    # shellcheck disable=SC2086
    ax=$(probe "$xhex" $c)
    # shellcheck disable=SC2086
    ay=$(probe "$yhex" $c)
    [ -n "$ax" ] || fail "$c: no answer"
    expect_soft "$ax" "$ay" "$c: the answer about B's existing record (got) differs from the one about an unknown id (expected)"
done
finish_soft
pass "fetch, history, edits (pulling the record in, as it is, on a future revision), create and delete: identical answers"

# The probes changed nothing: B's record is as it was and no conflict was
# attached to it.
psync tb
expect_eq "$(field tb "$x" 'r["rev"]["gen"], r["name"]')" "1 测试1" "B's record after the probes"
expect_eq "$(sq tb conflicts list)" "no open conflicts" "conflicts after the probes"
stop_server
pass "the probes left no trace on B's record"
