# cache_format: a cache of the old format (issue 17 point 2) keeps working.
# The old format seals every value with AES-256-GCM under the data key and
# keeps a record's revision inside its sealed value; the test hook
# POPSYNC_TEST_CACHE_FORMAT=1 makes popsync write exactly that, as the old
# code did.  Such a cache, after it pushed, had its pushes acknowledged and
# pulled, is then used by popsync as built: it opens, reads, counts, takes
# edits and syncs, and ends in sync with the server and with a new-format
# cache of the same place (docs/data-model.md, the cache).
. "$(dirname "$0")/lib4.sh"
make_pki4
issue township $TA townA
issue township $TA townA2
start_server4
client admin admin

# The old-format cache: made, filled, synced (push, ack, pull) by the old format.
POPSYNC_TEST_CACHE_FORMAT=1 client old townA
POPSYNC_TEST_CACHE_FORMAT=1 sq old generate --persons 25 --seed 5 --orgunits "$ORGUNITS" >/dev/null || fail "generate"
POPSYNC_TEST_CACHE_FORMAT=1 psync old
ida=$(POPSYNC_TEST_CACHE_FORMAT=1 add_person old 1) || fail "add (old format)"
POPSYNC_TEST_CACHE_FORMAT=1 sq old edit "$ida" --set phone=13000000001 >/dev/null || fail "edit (old format)"
expect_eq "$(pending old)" 2 "two changes (an add, an edit) waiting in the old-format cache"
snapshot old >"$T/old.before"

# The same cache with popsync as built: everything reads as it was written.
snapshot old >"$T/old.after"
cmp -s "$T/old.before" "$T/old.after" || fail "the old-format cache reads differently"
expect_eq "$(field old "$ida" 'r["phone"]')" 13000000001 "the edit made in the old format"
sq old stats --check-counters >/dev/null || fail "report counters of the old-format cache"
expect_eq "$(sq old verify)" "in sync" "verify of the old-format cache"
pass "an old-format cache opens and reads as written"

# Writes: the waiting change is pushed and acknowledged, an edit and a new
# record are made, another cache's edit is pulled.
psync old
expect_eq "$(pending old)" 0 "the old-format change was pushed"
expect_eq "$(field old "$ida" 'r["rev"]["gen"]')" 2 "the acknowledged revision (the add, then the edit)"
sq old edit "$ida" --set phone=13000000002 >/dev/null || fail "edit"
idb=$(add_person old 2) || fail "add"
psync old
client new townA2
psync new
sq new edit "$ida" --set phone=13000000003 >/dev/null || fail "edit in the new cache"
psync new
psync old
expect_eq "$(field old "$ida" 'r["phone"]')" 13000000003 "the pulled edit"
expect_eq "$(field old "$ida" 'r["rev"]["gen"]')" 4 "the pulled revision"
expect_eq "$(field old "$idb" 'r["rev"]["gen"]')" 1 "the new record's revision"
snapshot old >"$T/old.snap"
snapshot new >"$T/new.snap"
cmp -s "$T/old.snap" "$T/new.snap" || fail "the old-format cache and a new one differ"
sq old stats --check-counters >/dev/null || fail "report counters after the writes"
expect_eq "$(sq old verify)" "in sync" "verify after the writes"
psync admin
expect_eq "$(sq admin verify)" "in sync" "verify of the admin's new cache"
pass "an old-format cache takes edits, pushes and pulls, and converges with a new-format cache"
