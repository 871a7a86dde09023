# The client cache is encrypted at rest (issue #5, item 4).
#
# A township writes known names and ID numbers, syncs, and an admin pulls
# them; the raw LMDB files of both caches hold none of them, while the
# server's store (not encrypted) does: that proves the scan would find them.
# A wrong passphrase or key file exits 1 with a clear message and prints no
# record; no passphrase and no terminal fails init cleanly.  A key-file cache
# works without a passphrase, and fails cleanly without its key file.
. "$(dirname "$0")/lib.sh"
# This test's own settings (lib.sh may set others): a passphrase with
# non-ASCII bytes, and the low iteration count tests use (a test knob).
export POPSYNC_PASSPHRASE='t1 口令 correct horse'
export POPSYNC_KDF_ITERATIONS=1000
unset POPSYNC_KEY_FILE
ADMIN_PASS='admin 口令 battery staple'

make_pki
start_server
client t1 town1
POPSYNC_PASSPHRASE=$ADMIN_PASS client admin admin

# idnum BIRTH(YYYYMMDD) SEQ(00..99) SEXDIGIT: a valid GB 11643 ID number in 110105.
idnum() {
    python3 - "$1" "$2" "$3" <<'PY'
import sys
d = "110105" + sys.argv[1] + sys.argv[2] + sys.argv[3]
w = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
print(d + "10X98765432"[sum(int(c) * x for c, x in zip(d, w)) % 11])
PY
}

# Known people: unusual names, so a hit can only be ours.
names=(欧阳明辉 司马文静 诸葛晓燕 Zyxwvuts-Qponm)
births=(19830412 19910627 20010930 19771105)
sexes=(male female female male)
ids=()
for i in "${!names[@]}"; do
    sexdigit=$([ "${sexes[$i]}" = male ] && echo 7 || echo 4)
    idn=$(idnum "${births[$i]}" "3$i" "$sexdigit")
    ids+=("$idn")
    b=${births[$i]}
    ps --data "$T/t1" add person --set "name=${names[$i]}" --set "id_number=$idn" --set "sex=${sexes[$i]}" \
        --set "birth_date=${b:0:4}-${b:4:2}-${b:6:2}" >/dev/null || fail "adding ${names[$i]}"
done
ps --data "$T/t1" generate --persons 50 --seed 7 >/dev/null
ps --data "$T/t1" sync --quiet || fail "t1 sync"
POPSYNC_PASSPHRASE=$ADMIN_PASS ps --data "$T/admin" sync --quiet || fail "admin sync"
stop_server

# The records read back intact with the right passphrase, in both caches.
for c in t1 admin; do
    pass=$POPSYNC_PASSPHRASE
    [ $c = admin ] && pass=$ADMIN_PASS
    POPSYNC_PASSPHRASE=$pass ps --data "$T/$c" list --kind person --format json >"$T/$c.json" || fail "$c list"
    python3 - "$T/$c.json" "${names[*]}" "${ids[*]}" <<'PY' || fail "$c does not hold the known records"
import json, sys
recs = json.load(open(sys.argv[1]))
have = {(r.get("name"), r.get("id_number")) for r in recs}
for n, i in zip(sys.argv[2].split(), sys.argv[3].split()):
    assert (n, i) in have, (n, i)
PY
done
pass "the known records read back from both caches"

# scan FILE...: prints each known name or ID number found in the raw bytes
# (UTF-8, and UTF-16 in case of a wide copy), one per line.
scan() {
    python3 - "${names[*]}" "${ids[*]}" "$@" <<'PY'
import sys
needles = sys.argv[1].split() + sys.argv[2].split()
for path in sys.argv[3:]:
    raw = open(path, "rb").read()
    for s in needles:
        for enc in ("utf-8", "utf-16-le", "utf-16-be"):
            if s.encode(enc) in raw:
                print(path, s, enc)
PY
}
# Control: the server's store is not encrypted, so the scan must find every one there.
[ -f "$T/server/data.mdb" ] || fail "no server store at $T/server/data.mdb"
found=$(scan "$T/server/data.mdb" | grep -c utf-8 || true)
expect_eq "$found" "$(( ${#names[@]} * 2 ))" "the scan finds the names and ID numbers in the plain server store"
grep -a -q "${names[0]}" "$T/server/data.mdb" || fail "grep -a does not see a name in the server store"
# The caches: nothing, by python nor by grep -a (also a few digits of an ID
# number at its start: region code + birth date).
for c in t1 admin; do
    hits=$(scan "$T/$c"/*.mdb)
    [ -z "$hits" ] || fail "cache $c holds plaintext: $hits"
    for i in "${!names[@]}"; do
        ! grep -a -q -F "${names[$i]}" "$T/$c/data.mdb" || fail "grep -a finds ${names[$i]} in cache $c"
        ! grep -a -q -F "${ids[$i]}" "$T/$c/data.mdb" || fail "grep -a finds an ID number in cache $c"
        ! grep -a -q -F "${ids[$i]:0:14}" "$T/$c/data.mdb" || fail "grep -a finds an ID number prefix in cache $c"
    done
done
pass "the raw LMDB files of both caches hold no name or ID number; the plain server store holds them all"

# The iteration count is kept per cache (here the test knob's 1000).
kdf_iter() {
    python3 - "$1" <<'PY'
import sys
raw = open(sys.argv[1], "rb").read()
i = raw.find(b"kdf_iterations")
assert i >= 0, "no kdf_iterations in meta"
print(int.from_bytes(raw[i + 14:i + 22], "big"))
PY
}
expect_eq "$(kdf_iter "$T/t1/data.mdb")" 1000 "iterations stored in meta"

# A wrong passphrase: exit 1, the message, and nothing on stdout, for every
# kind of command that opens the cache.
wrong() { # CACHE ARGS...: runs with a wrong passphrase; checks the refusal
    local c=$1 rc=0
    shift
    POPSYNC_PASSPHRASE=not-the-passphrase ps --data "$T/$c" "$@" >"$T/wrong.out" 2>"$T/wrong.err" </dev/null || rc=$?
    expect_eq "$rc" 1 "exit code of '$*' with a wrong passphrase"
    grep -q "wrong passphrase (or key file) for this cache" "$T/wrong.err" || fail "'$*': message: $(cat "$T/wrong.err")"
    [ ! -s "$T/wrong.out" ] || fail "'$*' printed output with a wrong passphrase: $(head -c 200 "$T/wrong.out")"
}
id0=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[0]["id"])' "$T/t1.json")
wrong t1 list --format json
wrong t1 show "$id0" --format json
wrong t1 status --json
wrong t1 stats --json
wrong t1 export --kind person --format csv
wrong t1 sync --quiet
wrong t1 add person --set name=X --set id_number="${ids[0]}" --set sex=male --set birth_date=1983-04-12
wrong admin list --format json
# Each cache has its own key: t1's passphrase does not open admin's cache.
rc=0
ps --data "$T/admin" list --format json >"$T/wrong.out" 2>"$T/wrong.err" || rc=$?
expect_eq "$rc" 1 "t1's passphrase on admin's cache"
grep -q "wrong passphrase (or key file) for this cache" "$T/wrong.err" || fail "message: $(cat "$T/wrong.err")"
[ ! -s "$T/wrong.out" ] || fail "output with another cache's passphrase"
expect_eq "$(ps --data "$T/t1" status --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["pending"])')" 0 \
    "the refused add stored nothing"
pass "a wrong passphrase exits 1 with 'wrong passphrase (or key file) for this cache' and no output"

# No passphrase and no terminal (setsid: no controlling terminal): a clear error.
rc=0
env -u POPSYNC_PASSPHRASE setsid -w "$POPSYNC" --data "$T/t1" list </dev/null >"$T/nopass.out" 2>"$T/nopass.err" || rc=$?
expect_eq "$rc" 1 "exit code without a passphrase"
grep -q "set POPSYNC_PASSPHRASE or run on a terminal" "$T/nopass.err" || fail "no-passphrase message: $(cat "$T/nopass.err")"
[ ! -s "$T/nopass.out" ] || fail "output without a passphrase"
rc=0
env -u POPSYNC_PASSPHRASE setsid -w "$POPSYNC" --data "$T/nopass" init --server 127.0.0.1:1 --ca "$T/pki/ca.crt" \
    --cert "$T/pki/town2.crt" --key "$T/pki/town2.key" </dev/null >/dev/null 2>"$T/nopass.err" || rc=$?
expect_eq "$rc" 1 "init without a passphrase"
grep -q "set POPSYNC_PASSPHRASE or run on a terminal" "$T/nopass.err" || fail "init message: $(cat "$T/nopass.err")"
[ ! -e "$T/nopass/data.mdb" ] || fail "init without a passphrase left a cache behind"
# The iteration knob refuses a count below its floor.
rc=0
POPSYNC_KDF_ITERATIONS=999 ps --data "$T/lowiter" init --server 127.0.0.1:1 --ca "$T/pki/ca.crt" \
    --cert "$T/pki/town2.crt" --key "$T/pki/town2.key" >/dev/null 2>"$T/lowiter.err" || rc=$?
expect_eq "$rc" 1 "init with POPSYNC_KDF_ITERATIONS=999"
[ ! -e "$T/lowiter/data.mdb" ] || fail "a refused init left a cache behind"
pass "no passphrase without a terminal, or too few iterations: a clear error and no cache"

# A new cache needs a passphrase of at least 10 characters (characters, not
# bytes: 口令 counts twice); a weak one is accepted with a warning.
rc=0
POPSYNC_PASSPHRASE='short 口令' ps --data "$T/short" init --server 127.0.0.1:1 --ca "$T/pki/ca.crt" \
    --cert "$T/pki/town2.crt" --key "$T/pki/town2.key" >/dev/null 2>"$T/short.err" || rc=$?
expect_eq "$rc" 1 "init with an 8-character passphrase"
grep -q "at least 10 characters" "$T/short.err" || fail "short passphrase message: $(cat "$T/short.err")"
[ ! -e "$T/short/data.mdb" ] || fail "a refused short passphrase left a cache behind"
POPSYNC_PASSPHRASE='aaaaaaaaaaaa' ps --data "$T/weak" init --server 127.0.0.1:1 --ca "$T/pki/ca.crt" \
    --cert "$T/pki/town2.crt" --key "$T/pki/town2.key" >/dev/null 2>"$T/weak.err" || fail "init with a weak passphrase"
grep -q "the passphrase is weak" "$T/weak.err" || fail "no weak-passphrase warning: $(cat "$T/weak.err")"
POPSYNC_PASSPHRASE='aaaaaaaaaaaa' ps --data "$T/weak" status >/dev/null 2>"$T/weak.err" || fail "weak cache reopens"
[ ! -s "$T/weak.err" ] || fail "warned about the passphrase on open: $(cat "$T/weak.err")"
pass "a new cache refuses a passphrase under 10 characters and warns about a weak one"

# Without the test knob a new cache gets 600,000 iterations (one slow init).
env -u POPSYNC_KDF_ITERATIONS "$POPSYNC" --data "$T/default" init --server 127.0.0.1:1 --ca "$T/pki/ca.crt" \
    --cert "$T/pki/town2.crt" --key "$T/pki/town2.key" >/dev/null || fail "init with the default count"
expect_eq "$(kdf_iter "$T/default/data.mdb")" 600000 "default iterations"
pass "the default PBKDF2 iteration count is 600000, stored per cache"

# A key-file cache: init makes the key file (mode 0600, 64 hex digits);
# later commands find it through the cache, with no passphrase at all.
mkdir -p "$T/keys"
env -u POPSYNC_PASSPHRASE setsid -w "$POPSYNC" --data "$T/kf" init --server 127.0.0.1:1 --ca "$T/pki/ca.crt" \
    --cert "$T/pki/town2.crt" --key "$T/pki/town2.key" --key-file "$T/keys/kf.key" </dev/null >"$T/kf.out" \
    || fail "init --key-file"
grep -q "made key file $T/keys/kf.key" "$T/kf.out" || fail "init did not say it made the key file: $(cat "$T/kf.out")"
expect_eq "$(stat -c %a "$T/keys/kf.key")" 600 "key file mode"
grep -Eq '^[0-9a-f]{64}$' "$T/keys/kf.key" || fail "key file is not 64 hex digits"
kfps() { env -u POPSYNC_PASSPHRASE setsid -w "$POPSYNC" --data "$T/kf" "$@" </dev/null; }
kfps add person --set "name=${names[1]}" --set "id_number=${ids[1]}" --set sex=female --set birth_date=1991-06-27 \
    >/dev/null || fail "add in a key-file cache"
expect_eq "$(kfps list --kind person --format json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["name"])')" \
    "${names[1]}" "key-file cache reads back"
[ -z "$(scan "$T/kf"/*.mdb)" ] || fail "key-file cache holds plaintext"
# Without its key file: exit 1, a message naming the file, no output.
mv "$T/keys/kf.key" "$T/keys/moved.key"
rc=0
kfps list --format json >"$T/kf.out" 2>"$T/kf.err" || rc=$?
expect_eq "$rc" 1 "exit code without the key file"
grep -q "key file $T/keys/kf.key" "$T/kf.err" || fail "missing key file message: $(cat "$T/kf.err")"
[ ! -s "$T/kf.out" ] || fail "output without the key file"
# POPSYNC_KEY_FILE overrides the remembered path.
POPSYNC_KEY_FILE="$T/keys/moved.key" kfps list --format json >/dev/null || fail "POPSYNC_KEY_FILE override"
# Another valid key (32 raw bytes): the wrong-key message.
head -c 32 /dev/urandom >"$T/keys/other.key"
chmod 600 "$T/keys/other.key"
rc=0
POPSYNC_KEY_FILE="$T/keys/other.key" kfps list --format json >"$T/kf.out" 2>"$T/kf.err" || rc=$?
expect_eq "$rc" 1 "exit code with another key file"
grep -q "wrong passphrase (or key file) for this cache" "$T/kf.err" || fail "wrong key file message: $(cat "$T/kf.err")"
[ ! -s "$T/kf.out" ] || fail "output with a wrong key file"
# A malformed key file is refused as such.
printf 'not a key\n' >"$T/keys/bad.key"
rc=0
POPSYNC_KEY_FILE="$T/keys/bad.key" kfps list >/dev/null 2>"$T/kf.err" || rc=$?
expect_eq "$rc" 1 "exit code with a malformed key file"
grep -q "must hold exactly 32 bytes or 64 hex digits" "$T/kf.err" || fail "malformed key file message: $(cat "$T/kf.err")"
# A raw 32-byte key file made beforehand is used as it is.
env -u POPSYNC_PASSPHRASE "$POPSYNC" --data "$T/kf2" init --server 127.0.0.1:1 --ca "$T/pki/ca.crt" \
    --cert "$T/pki/town3.crt" --key "$T/pki/town3.key" --key-file "$T/keys/other.key" </dev/null >"$T/kf2.out" \
    || fail "init with an existing raw key file"
! grep -q "made key file" "$T/kf2.out" || fail "init claimed to make an existing key file"
env -u POPSYNC_PASSPHRASE "$POPSYNC" --data "$T/kf2" status >/dev/null </dev/null || fail "raw key file cache opens"
pass "a key-file cache works without a passphrase and fails cleanly without (or with another) key file"

# Nothing above printed a passphrase: not in any output or log of the test.
! grep -rqaF -e "correct horse" -e "battery staple" -e "not-the-passphrase" "$T"/*.out "$T"/*.err "$T/server.log" 2>/dev/null \
    || fail "a passphrase appears in output or logs"
pass "passphrases never appear in output or logs"
