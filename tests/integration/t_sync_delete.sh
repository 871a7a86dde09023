# Deletes (issue 4, case 3): a delete is a tombstone that syncs like any
# change; an edit racing a delete becomes a conflict, whichever reaches the
# server first: never a silent resurrection, never a silent loss.
. "$(dirname "$0")/lib4.sh"
make_pki4
issue township $TA ta
issue township $TA ta2
start_server4
client a1 ta
client a2 ta2
client admin admin
CACHES="a1 a2 admin"
sync_all() { for c in $CACHES; do psync "$c" 2>/dev/null; done; }
live() { all_ids "$1" | grep -qx "$2"; }
tomb() { all_ids "$1" --deleted | grep -qx "$2" && ! live "$1" "$2"; }
conflict_check() {
    local cf=$1 cond=$2
    shift 2
    conflicts_json admin "$@" | python3 -c '
import json,sys
c=[x for x in json.load(sys.stdin) if x["id"]==sys.argv[1]]
assert c, "conflict not listed"
c=c[0]
assert '"$cond"', c' "$cf"
}

d=$(add_person a1 1)
e=$(add_person a1 2)
f=$(add_person a1 3)
g=$(add_person a1 4)
psync a1
sync_all

# --- A delete syncs as a tombstone.
sq a1 delete "$d"
tomb a1 "$d" || fail "a local delete is not a tombstone"
sync_all
for c in $CACHES; do
    tomb "$c" "$d" || fail "$c: 'list' shows the deleted record or 'list --deleted' lacks it"
    expect_eq "$(field "$c" "$d" 'r["deleted"], r["rev"]["gen"]')" "True 2" "$c: tombstone revision"
done
set +e
sq a2 edit "$d" --set phone=13800000000 >/dev/null 2>&1
rc=$?
set -e
expect_eq "$rc" 5 "editing a tombstone locally"
pass "a delete syncs as a tombstone"

# Two deletes of the same version agree: no conflict.
sq a1 delete "$g"
sq a2 delete "$g"
psync a1
psync a2
sync_all
for c in $CACHES; do tomb "$c" "$g" || fail "$c: a double delete left $g live"; done
expect_eq "$(conflict_of admin "$g" --all)" "" "two deletes raise no conflict"

# --- Delete pushed first, then an edit of the same base version.
sq a1 delete "$e"
sq a2 edit "$e" --set phone=13800000002 --set address=二号楼
psync a1
out=$(sq a2 sync 2>&1) && fail "a2 sync exited 0 although its edit was kept as a conflict: $out" ||
    [ $? -eq 6 ] || fail "a2 sync: $out"
grep -q "1 conflicts" <<<"$out" || fail "the editor is not told its edit was kept as a conflict: $out"
sync_all
for c in $CACHES; do
    tomb "$c" "$e" || fail "$c: the edit resurrected a deleted record"
done
cf_e=$(conflict_of admin "$e")
[ -n "$cf_e" ] || fail "the edit of a deleted record was dropped without a conflict"
conflict_check "$cf_e" 'c["fields"]==["deleted"] and c["kept"]["deleted"] and not c["lost"]["deleted"] and c["lost"]["phone"]=="13800000002" and c["lost"]["address"]=="二号楼"'
pass "edit after delete: stays deleted, the edit is kept in a conflict"

# --- Edit pushed first, then a delete of the same base version.
sq a2 edit "$f" --set phone=13800000003
sq a1 delete "$f"
psync a2
out=$(sq a1 sync 2>&1) && fail "a1 sync exited 0 although its delete raised a conflict: $out" ||
    [ $? -eq 6 ] || fail "a1 sync: $out"
sync_all
for c in $CACHES; do
    tomb "$c" "$f" || fail "$c: the delete did not stand after a concurrent edit"
done
cf_f=$(conflict_of admin "$f")
[ -n "$cf_f" ] || fail "the edit overwritten by a delete left no conflict"
conflict_check "$cf_f" 'c["fields"]==["deleted"] and c["kept"]["deleted"] and c["lost"]["phone"]=="13800000003" and not c["lost"]["deleted"]'
pass "delete after edit: deleted, the edit is kept in a conflict"

# --- Resolving with --keep mine brings the record back with the edit.
out=$(sq a2 conflicts resolve "$cf_e" --keep mine) || fail "resolve: $out"
expect_eq "$out" "resolved $cf_e (kept mine)" "resolve output"
sync_all
for c in $CACHES; do
    live "$c" "$e" || fail "$c: --keep mine did not bring the record back"
    expect_eq "$(field "$c" "$e" 'r["phone"], r["address"], r["deleted"]')" "13800000002 二号楼 False" "$c: the edit is back"
done
conflict_check "$cf_e" 'c["resolved"]' --all
# --keep theirs on the other one leaves it deleted and closes the conflict.
sq admin conflicts resolve "$cf_f" --keep theirs >/dev/null || fail "resolve theirs"
sync_all
for c in $CACHES; do tomb "$c" "$f" || fail "$c: --keep theirs resurrected the record"; done
expect_eq "$(sq admin conflicts list)" "no open conflicts" "all delete conflicts resolved"
stop_server
pass "a delete/edit conflict resolved with --keep mine restores the edit everywhere"
