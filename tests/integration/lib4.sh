# lib4.sh - helpers for the sync-rule tests of issue 4 (t_sync_*.sh):
# the demo org-unit tree (district 130203000000), identities inside it,
# valid persons and small JSON probes.  Sources lib.sh, which it does not
# change: everything here is added on top.
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

: "${PS_TEST_SRC:?PS_TEST_SRC must point at the source tree}"
ORGUNITS="$PS_TEST_SRC/demo/orgunits.csv"
D4=130203000000          # 钢城区, the district
TA=130203001000          # 建设路街道 (township A)
TA_V1=130203001001       # 建设路社区, a community of A
TA_V2=130203001002       # 光明里社区, another community of A
TB=130203002000          # 文化路街道 (township B)
TB_V1=130203002001       # 文化里社区, a community of B
TC=130203100000          # 韩城镇 (township C, a 镇)

# issue ROLE ORGUNIT NAME: one more identity in $T/pki.
issue() {
    ps pki issue --dir "$T/pki" --role "$1" --orgunit "$2" --name "$3" >/dev/null
}

# make_pki4: a CA, the server and an admin of the demo district.  Tests
# issue township, collector and viewer identities they need with `issue`.
make_pki4() {
    ps pki init-ca --dir "$T/pki" >/dev/null
    issue server $D4 popsyncd
    issue admin $D4 admin
}

# start_server4 [popsyncd options]: popsyncd with the demo tree loaded.
start_server4() {
    start_server --orgunits "$ORGUNITS" "$@"
}

# idnum BIRTH(YYYY-MM-DD) SEQ(0..99) SEX(male|female): a valid 18-character
# national ID number for that birth date, with its GB 11643 check character.
idnum() {
    python3 - "$1" "$2" "$3" <<'PY'
import sys
birth, seq, sex = sys.argv[1].replace("-", ""), int(sys.argv[2]), sys.argv[3]
d = "130203" + birth + "%02d" % (seq % 100)
d += str((1 if sex == "male" else 2) + 2 * (seq // 100 % 4))
w = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
print(d + "10X98765432"[sum(int(c) * x for c, x in zip(d, w)) % 11])
PY
}

# sq NAME ARGS...: popsync on cache NAME.
sq() {
    local name=$1
    shift
    ps --data "$T/$name" "$@"
}

# add_person NAME SEQ [--set ...]: adds a valid person to cache NAME
# (born 1985-MM-DD), prints its id.
add_person() {
    local name=$1 seq=$2
    shift 2
    local day
    day=$(printf '%02d' $((seq % 28 + 1)))
    sq "$name" add person --set "id_number=$(idnum 1985-06-$day "$seq" male)" --set "name=测试$seq" \
        --set sex=male --set birth_date=1985-06-$day "$@"
}

# psync NAME: a quiet sync that must complete (exit 0, or 6: completed, but
# some changes were refused or kept as conflicts).
psync() {
    sq "$1" sync --quiet || [ $? -eq 6 ] || fail "sync of $1 failed"
}

# field NAME ID PATH: a value of record ID in cache NAME; PATH is a Python
# expression on the record dict r, e.g. 'r["phone"]' or 'r["rev"]["gen"]'.
field() {
    sq "$1" show "$2" --format json | python3 -c "import json,sys; r=json.load(sys.stdin); print($3)"
}

# has NAME ID: is record ID in cache NAME (live or tombstone)?
has() {
    sq "$1" show "$2" --format json >/dev/null 2>&1
}

# conflicts_json NAME [--all]: the conflicts NAME's identity may see, as JSON.
conflicts_json() {
    local name=$1
    shift
    sq "$name" conflicts list --json "$@"
}

# conflict_of NAME RECORD_ID [--all]: the id of the (last) conflict on a
# record, or nothing.
conflict_of() {
    local name=$1 rid=$2
    shift 2
    conflicts_json "$name" "$@" | python3 -c '
import json,sys
rid=sys.argv[1]
c=[x for x in json.load(sys.stdin) if x["record_id"]==rid]
print(c[-1]["id"] if c else "")' "$rid"
}

# status_json NAME: `popsync status --json`.
status_json() {
    sq "$1" status --json
}

# pending NAME: changes waiting in NAME's outbox.
pending() {
    status_json "$1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["pending"])'
}

# all_ids NAME [--deleted]: sorted ids of the live records in NAME (with
# --deleted: tombstones included, as `list --deleted` shows them).
all_ids() {
    local name=$1
    shift
    sq "$name" list --format json "$@" | python3 -c 'import json,sys; [print(r["id"]) for r in json.load(sys.stdin)]' | sort
}

# snapshot NAME: "id gen hlc deleted" for every record NAME holds, live or
# tombstone, sorted: two caches with the same snapshot hold the same
# versions.
snapshot() {
    sq "$1" list --format json --deleted | python3 -c '
import json,sys
for r in sorted(json.load(sys.stdin), key=lambda r: r["id"]):
    rev=r.get("rev") or {}
    print(r["id"], rev.get("gen",0), rev.get("hlc",0), bool(r.get("deleted", False)))'
}

# soft_fail MSG: records a failed check and goes on, so one test can show
# several independent failures; finish_soft fails the test if any was
# recorded.
soft_fail() {
    echo "FAIL: $*" >&2
    echo "$*" >>"$T/soft_failures"
}

finish_soft() {
    if [ -s "$T/soft_failures" ]; then
        echo "$(wc -l <"$T/soft_failures") check(s) failed:" >&2
        sed 's/^/  - /' "$T/soft_failures" >&2
        exit 1
    fi
}

# expect_soft GOT WANT WHAT: expect_eq that records and goes on.
expect_soft() {
    [ "$1" = "$2" ] || soft_fail "$3: expected '$2', got '$1'"
}

# cachetool DIR OP...: edits a closed LMDB cache (or store) behind
# popsync's back, with mdb_dump/mdb_load (lmdb-utils), for tests that must
# damage a cache.  Operations, applied in order:
#   get DB KEYHEX            print the value (hex) of one key
#   put DB KEYHEX VALHEX     set one key
#   del DB KEYHEX            delete one key
#   keys DB                  print every key (hex)
# Record ids are keys of the `records` database: the UUID without dashes.
# Values there are a format byte (0x00: plain) and the packed Record.
cachetool() {
    python3 - "$@" <<'PY'
import os, subprocess, sys, tempfile, shutil
d = sys.argv[1]
ops = sys.argv[2:]
dump = subprocess.run(["mdb_dump", "-a", d], check=True, capture_output=True, text=True).stdout
dbs, order, cur, headers = {}, [], None, {}
hdr, pending = [], None
for line in dump.splitlines():
    if line.startswith("VERSION="):
        hdr = [line]; cur = None
    elif cur is None:
        hdr.append(line)
        if line.startswith("database="):
            name = line.split("=", 1)[1]
        if line == "HEADER=END":
            cur = name; order.append(name); dbs[name] = {}; headers[name] = hdr; pending = None
    elif line == "DATA=END":
        cur = None
    else:
        if pending is None:
            pending = line.strip()
        else:
            dbs[cur][pending] = line.strip(); pending = None
changed = False
i = 0
while i < len(ops):
    op = ops[i]
    if op == "get":
        print(dbs[ops[i + 1]].get(ops[i + 2].replace("-", ""), "")); i += 3
    elif op == "keys":
        for k in sorted(dbs[ops[i + 1]]): print(k)
        i += 2
    elif op == "put":
        dbs[ops[i + 1]][ops[i + 2].replace("-", "")] = ops[i + 3]; changed = True; i += 4
    elif op == "del":
        dbs[ops[i + 1]].pop(ops[i + 2].replace("-", ""), None); changed = True; i += 3
    else:
        sys.exit("cachetool: unknown operation " + op)
if changed:
    new = tempfile.mkdtemp(dir=os.path.dirname(os.path.abspath(d)))
    for name in order:
        text = "\n".join(headers[name]) + "\n"
        text += "".join(" %s\n %s\n" % (k, v) for k, v in sorted(dbs[name].items()))
        text += "DATA=END\n"
        r = subprocess.run(["mdb_load", "-s", name, new], input=text, text=True, capture_output=True)
        if r.returncode != 0:
            sys.exit("cachetool: mdb_load failed: " + r.stderr)
    os.replace(os.path.join(new, "data.mdb"), os.path.join(d, "data.mdb"))
    try: os.remove(os.path.join(d, "lock.mdb"))
    except FileNotFoundError: pass
    shutil.rmtree(new)
PY
}

# push_hex JSON_FILE LCN: the hex of a Push frame (request id 2) carrying
# one Change: the migration record in JSON_FILE (as `show --format json`
# prints it), based on its own rev.gen.  With ps_testclient --hello it
# sends a change exactly as given, past the client's local checks, to see
# what the server alone decides.
push_hex() {
    python3 - "$1" "$2" <<'PY'
import json, struct, sys, uuid
r = json.load(open(sys.argv[1])); lcn = int(sys.argv[2])
def varint(n):
    out = b""
    while True:
        b = n & 0x7f; n >>= 7
        if n: out += bytes([b | 0x80])
        else: return out + bytes([b])
def f_varint(f, n): return varint(f << 3) + varint(n) if n else b""
def f_bytes(f, b): return varint(f << 3 | 2) + varint(len(b)) + b if b else b""
def f_str(f, s): return f_bytes(f, (s or "").encode())
def uid(s): return uuid.UUID(s).bytes if s else b""
assert r["kind"] == "migration", "push_hex knows migration records only"
direction = {"": 0, "inflow": 1, "outflow": 2}[r["direction"]]
mig = (f_bytes(1, uid(r["person_id"])) + f_varint(2, direction) + f_str(3, r["other_place_code"]) +
       f_str(4, r["other_place"]) + f_str(5, r["start_date"]) + f_str(6, r["end_date"]) +
       f_str(7, r["employer"]) + f_varint(8, int(bool(r["urgent"]))) + f_str(9, r["submitted_date"]) +
       f_str(10, r["feedback_date"]))
rec = (f_bytes(1, uid(r["id"])) + f_varint(2, 4) + f_str(3, r["orgunit"]) +
       f_varint(5, int(str(r.get("deleted")) in ("True", "true", "1"))) +
       f_varint(6, int(r["created_ms"])) + f_bytes(19, mig))
base = f_varint(1, int(r["rev"]["gen"])) + f_varint(2, int(r["rev"]["hlc"])) + f_bytes(3, bytes.fromhex(r["rev"]["node"]))
change = f_varint(1, lcn) + f_bytes(2, rec) + f_bytes(3, base)
body = f_bytes(1, change)
print((struct.pack(">IBBHI", 8 + len(body), 3, 0, 0, 2) + body).hex())
PY
}
