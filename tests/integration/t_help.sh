# Every command and subcommand explains itself: `popsync --help` lists them
# all, and `popsync COMMAND [SUB] --help` prints the arguments and an
# example, exit 0, with no cache needed; popsyncd's subcommands too.
. "$(dirname "$0")/lib.sh"
ps --help >"$T/all.txt" || fail "popsync --help"
n=0
while read -r cmd sub _; do
    out=$(ps $cmd $sub --help) || fail "popsync $cmd $sub --help exits non-zero"
    grep -q "^usage: popsync $cmd" <<<"$out" || fail "popsync $cmd $sub --help: no usage line"
    grep -q "^example:" <<<"$out" || fail "popsync $cmd $sub --help: no example"
    n=$((n + 1))
done < <(sed -n '/^commands:/,/^$/p' "$T/all.txt" | sed '1d;$d' | awk '{ if ($2 ~ /^[a-z-]+$/ && $1 != "generate") print $1, $2; else print $1 }')
[ "$n" -ge 30 ] || fail "only $n commands listed"
# A command with subcommands lists them all.
ps report --help | grep -c "^usage: popsync report" | grep -qx 6 || fail "report --help lists its six subcommands"
# The help needs no cache and no POPSYNC_DATA.
(unset POPSYNC_DATA; ps add --help >/dev/null) || fail "help without a cache"
# popsyncd: the options and each subcommand.
"$POPSYNCD" --help | grep -q -- "--listen" || fail "popsyncd --help"
for sub in "audit verify" "counters check" backup restore "node rebind"; do
    "$POPSYNCD" $sub --help >"$T/sub.txt" 2>&1 || fail "popsyncd $sub --help exits non-zero: $(cat "$T/sub.txt")"
    grep -q "^usage: popsyncd $sub" "$T/sub.txt" || fail "popsyncd $sub --help: $(cat "$T/sub.txt")"
    grep -q "^example:" "$T/sub.txt" || fail "popsyncd $sub --help: no example"
done
pass "$n popsync commands and popsyncd's subcommands explain themselves"
