# Randomized sync test (issue #4, item 8): six clients doing random adds,
# edits, deletes and moves, with random disconnects and restarts, against a
# real popsyncd.  Their clocks are wrong (minutes ahead and behind, one a
# year ahead, one an old cache without Push.clock_ms, clocks that jump), and
# ten timed races check that the later edit wins (issue 21, point 12).  One fixed seed and one random seed (printed), 20,000
# operations each.  A failure prints the seed that replays it:
#   PS_SIM_SEED=N PS_SIM_OPS=N ctest -R sync_random
. "$(dirname "$0")/lib.sh"
: "${PS_SIMSYNC:?}"
make_pki
ps pki issue --dir "$T/pki" --role collector --orgunit 110105001001 --name collector >/dev/null
start_server
ops=${PS_SIM_OPS:-20000}
# Two seeds against one server: their ID numbers come from blocks chosen by
# seed % 360 (ps_simsync), so the random one must not share seed 1's block.
r=$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')
[ $((r % 360)) -eq 1 ] && r=$((r + 1))
seeds=${PS_SIM_SEED:-"1 $r"}
for seed in $seeds; do
    rm -rf "$T/sim"
    mkdir -p "$T/sim"
    "$PS_SIMSYNC" --server 127.0.0.1:$PORT --pki "$T/pki" --dir "$T/sim" --seed "$seed" --ops "$ops" \
        || fail "randomized sync failed for seed $seed (replay: PS_SIM_SEED=$seed PS_SIM_OPS=$ops)"
done
stop_server
# The report counters, kept in every write transaction through edits,
# deletes and moves, equal a full recount; the audit chain is whole.
"$POPSYNCD" counters check --data "$T/server" || fail "counters differ from a recount"
"$POPSYNCD" audit verify --data "$T/server" || fail "audit chain broken"
pass "randomized sync converged for seeds: $seeds"
