/* test_policy.c - unit tests for common/policy.c, the access policy.
 *
 * Owns: the table-driven check of every role x action x scope case, and the
 * proof that docs/security.md §8.1 states the policy the code applies: the
 * test reads that markdown table and asks the policy each cell.  A row the
 * test does not know, a case the table lacks, or a cell that differs fails
 * it.  Also: the subtree rule with and without a tree, may_send for every
 * message type, and admission at Hello.
 *
 * Identities (the demo tree, demo/orgunits.csv): an admin of the district,
 * a township and a viewer of township A (建设路街道), a collector of A's
 * community 建设路社区.  Units: "in" = that community; "sibling" = A's
 * other community 光明里社区 (inside the township, outside the collector);
 * "out" = a community of township B; "unknown" = a code with A's prefix
 * that the tree does not have.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "err.h"
#include "msgtab.h"
#include "orgunit.h"
#include "policy.h"

#define D "130203000000"
#define TA "130203001000"
#define IN "130203001001"
#define SIBLING "130203001002"
#define TB "130203002000"
#define OUT "130203002001"
#define UNKNOWN "130203001099"
#define FOREIGN "110105001000" /* a unit of another district (docs/upstream.md §7) */
#define NROLES 4

static ps_orgunits_t *g_tree;
static const uint8_t g_me[16] = {1, 2, 3}, g_other[16] = {9, 9, 9};
static const char *const g_role_names[NROLES] = {"admin", "township", "collector", "viewer"};
static const char *const g_role_units[NROLES] = {D, TA, IN, TA};

static void src_path(const char *rel, char *out, size_t n)
{
    const char *f = __FILE__, *at = strstr(f, "tests/unit/");
    int k = at ? (int)(at - f) : 0;
    snprintf(out, n, "%.*s%s", k, f, rel);
}

static const char *yesno(int v)
{
    return v ? "yes" : "no";
}

static const char *write_word(ps_write_t w)
{
    return w == PS_WRITE_OWNER ? "owner" : w == PS_WRITE_OTHER_PLACE ? "other-place" : "no";
}

/* ---- the cases: one function per (action, case) of the markdown table ---- */

typedef const char *(*case_fn)(const ps_peer_t *p);

#define SEND(name, type) \
    static const char *send_##name(const ps_peer_t *p) { return yesno(ps_policy_may_send(p->role, type)); }
SEND(hello, PS_MSG_HELLO)
SEND(ping, PS_MSG_PING)
SEND(orgunits, PS_MSG_ORGUNITS_REQUEST)
SEND(push, PS_MSG_PUSH)
SEND(pull, PS_MSG_PULL)
SEND(conflicts, PS_MSG_CONFLICT_LIST)
SEND(verify, PS_MSG_VERIFY_REQUEST)
SEND(buckets, PS_MSG_VERIFY_BUCKET_REQUEST)
SEND(fetch, PS_MSG_FETCH_REQUEST)
SEND(history, PS_MSG_HISTORY_REQUEST)
SEND(query, PS_MSG_QUERY)
SEND(report, PS_MSG_REPORT_REQUEST)
SEND(close, PS_MSG_CLOSE_REQUEST)
SEND(nodes, PS_MSG_NODE_STATUS_REQUEST)

/* Messages only the server sends: nobody may send any of them. */
static const char *send_server_only(const ps_peer_t *p)
{
    static const uint8_t s2c[] = {PS_MSG_WELCOME, PS_MSG_PUSH_RESULT, PS_MSG_PULL_BATCH, PS_MSG_ERROR,
                                  PS_MSG_PONG, PS_MSG_ORGUNITS, PS_MSG_CONFLICT_LIST_RESULT,
                                  PS_MSG_VERIFY_DIGESTS, PS_MSG_VERIFY_BUCKET_LIST, PS_MSG_QUERY_RESULT,
                                  PS_MSG_REPORT_RESULT, PS_MSG_CLOSE_RESULT, PS_MSG_NODE_STATUS_RESULT};
    for (size_t i = 0; i < sizeof(s2c); i++)
        if (ps_policy_may_send(p->role, s2c[i]))
            return "yes";
    return ps_policy_may_send(p->role, 0) || ps_policy_may_send(p->role, 200) ? "yes" : "no";
}

#define ACT(name, act) \
    static const char *act_##name(const ps_peer_t *p) { return yesno(ps_policy_may(p->role, act)); }
ACT(query_group, PS_ACT_QUERY_GROUP)
ACT(query_list, PS_ACT_QUERY_LIST)
ACT(report_monthly, PS_ACT_REPORT_MONTHLY)
ACT(report_quality, PS_ACT_REPORT_QUALITY)

static const char *tls_server_accepts(const ps_peer_t *p)
{
    return yesno(ps_policy_tls_role(0, p->role));
}

static const char *admit_with(const ps_peer_t *p, const char *unit, const ps_orgunits_t *tree)
{
    ps_peer_t q = *p;
    char why[256];
    snprintf(q.orgunit, sizeof(q.orgunit), "%s", unit);
    return yesno(ps_policy_admit(tree, &q, why, sizeof(why)) == PS_OK);
}
static const char *admit_in_tree(const ps_peer_t *p) { return admit_with(p, p->orgunit, g_tree); }
static const char *admit_unknown(const ps_peer_t *p) { return admit_with(p, "110105001000", g_tree); }
static const char *admit_no_tree(const ps_peer_t *p) { return admit_with(p, "110105001000", NULL); }

#define READ(name, fn, tree, unit, other) \
    static const char *name(const ps_peer_t *p) { return yesno(fn(tree, p, unit, other)); }
READ(read_in, ps_policy_may_read, g_tree, IN, NULL)
READ(read_sibling, ps_policy_may_read, g_tree, SIBLING, NULL)
READ(read_out, ps_policy_may_read, g_tree, OUT, NULL)
READ(read_other_place, ps_policy_may_read, g_tree, OUT, IN)
READ(read_unknown, ps_policy_may_read, g_tree, UNKNOWN, NULL)
READ(read_foreign, ps_policy_may_read, g_tree, FOREIGN, IN)
READ(read_in_no_tree, ps_policy_may_read, NULL, IN, NULL)
READ(read_out_no_tree, ps_policy_may_read, NULL, OUT, NULL)
READ(count_in, ps_policy_may_count, g_tree, IN, NULL)
READ(count_sibling, ps_policy_may_count, g_tree, SIBLING, NULL)
READ(count_out, ps_policy_may_count, g_tree, OUT, NULL)
READ(count_other_place, ps_policy_may_count, g_tree, OUT, IN)

#define WRITE(name, before, other, after) \
    static const char *name(const ps_peer_t *p) { return write_word(ps_policy_may_write(g_tree, p, before, other, after)); }
WRITE(create_in, NULL, NULL, IN)
WRITE(create_sibling, NULL, NULL, SIBLING)
WRITE(create_out, NULL, NULL, OUT)
WRITE(create_unknown, NULL, NULL, UNKNOWN)
WRITE(edit_in, IN, NULL, IN)
WRITE(edit_in_to_out, IN, NULL, OUT)
WRITE(edit_out_to_in, OUT, NULL, IN)
WRITE(edit_other_place, OUT, IN, OUT)
WRITE(edit_foreign, FOREIGN, IN, FOREIGN)

static const char *other_place_sets(const ps_peer_t *p, const char *field)
{
    ps_write_t w = ps_policy_may_write(g_tree, p, OUT, IN, OUT);
    return yesno(w == PS_WRITE_OWNER || (w == PS_WRITE_OTHER_PLACE && ps_policy_other_place_may_set(field)));
}
static const char *op_submitted(const ps_peer_t *p) { return other_place_sets(p, "submitted_date"); }
static const char *op_feedback(const ps_peer_t *p) { return other_place_sets(p, "feedback_date"); }
static const char *op_phone(const ps_peer_t *p) { return other_place_sets(p, "phone"); }
static const char *op_deleted(const ps_peer_t *p) { return other_place_sets(p, "deleted"); }

static const char *see(const ps_peer_t *p, const char *unit, const char *kept, const char *lost,
                       const uint8_t *lost_node, const uint8_t *kept_node)
{
    ps_conflict_view_t cv = {unit, kept, lost, lost_node, kept_node};
    return yesno(ps_policy_may_see_conflict(g_tree, p, g_me, &cv));
}
static const char *cf_in(const ps_peer_t *p) { return see(p, IN, IN, IN, g_other, g_other); }
static const char *cf_out(const ps_peer_t *p) { return see(p, OUT, OUT, OUT, g_other, g_other); }
static const char *cf_moved(const ps_peer_t *p) { return see(p, IN, OUT, OUT, g_other, g_other); }
static const char *cf_own_lost(const ps_peer_t *p) { return see(p, OUT, OUT, OUT, g_me, g_other); }
static const char *cf_own_kept(const ps_peer_t *p) { return see(p, OUT, OUT, OUT, g_other, g_me); }

static const char *row_own(const ps_peer_t *p) { return yesno(ps_policy_report_township(g_tree, p, TA)); }
static const char *row_other(const ps_peer_t *p) { return yesno(ps_policy_report_township(g_tree, p, TB)); }

#define CLOSE(name, act, town) \
    static const char *name(const ps_peer_t *p) { return yesno(ps_policy_may_close(g_tree, p, act, town)); }
CLOSE(close_status_own, PS_ACT_CLOSE_STATUS, TA)
CLOSE(close_status_other, PS_ACT_CLOSE_STATUS, TB)
CLOSE(close_submit_own, PS_ACT_CLOSE_SUBMIT, TA)
CLOSE(close_submit_other, PS_ACT_CLOSE_SUBMIT, TB)
CLOSE(close_approve, PS_ACT_CLOSE_APPROVE, TA)
CLOSE(close_return, PS_ACT_CLOSE_RETURN, TA)

static const struct {
    const char *action, *scope;
    case_fn fn;
} g_cases[] = {
    {"send Hello", "-", send_hello},
    {"send Ping", "-", send_ping},
    {"send OrgUnitsRequest", "-", send_orgunits},
    {"send Push", "-", send_push},
    {"send Pull", "-", send_pull},
    {"send ConflictList", "-", send_conflicts},
    {"send VerifyRequest", "-", send_verify},
    {"send VerifyBucketRequest", "-", send_buckets},
    {"send FetchRequest", "-", send_fetch},
    {"send Query", "-", send_query},
    {"send ReportRequest", "-", send_report},
    {"send CloseRequest", "-", send_close},
    {"send NodeStatusRequest", "-", send_nodes},
    {"send HistoryRequest", "-", send_history},
    {"send a server message", "-", send_server_only},
    {"Query", "group", act_query_group},
    {"Query", "list", act_query_list},
    {"ReportRequest", "monthly", act_report_monthly},
    {"ReportRequest", "quality", act_report_quality},
    {"TLS handshake", "-", tls_server_accepts},
    {"Hello", "unit in the tree", admit_in_tree},
    {"Hello", "unit not in the tree", admit_unknown},
    {"Hello", "any unit, no tree", admit_no_tree},
    {"read record", "in", read_in},
    {"read record", "sibling", read_sibling},
    {"read record", "out", read_out},
    {"read record", "other place in", read_other_place},
    {"read record", "unit not in the tree", read_unknown},
    {"read record", "another district's, other place in", read_foreign},
    {"read record", "in, no tree", read_in_no_tree},
    {"read record", "out, no tree", read_out_no_tree},
    {"count record", "in", count_in},
    {"count record", "sibling", count_sibling},
    {"count record", "out", count_out},
    {"count record", "other place in", count_other_place},
    {"create record", "in", create_in},
    {"create record", "sibling", create_sibling},
    {"create record", "out", create_out},
    {"create record", "unit not in the tree", create_unknown},
    {"edit record", "in, stays in", edit_in},
    {"edit record", "in, moves out", edit_in_to_out},
    {"edit record", "out, moves in", edit_out_to_in},
    {"edit record", "other place in", edit_other_place},
    {"edit record", "another district's, other place in", edit_foreign},
    {"other place sets", "submitted_date", op_submitted},
    {"other place sets", "feedback_date", op_feedback},
    {"other place sets", "any other field", op_phone},
    {"other place sets", "deleted", op_deleted},
    {"see conflict", "in", cf_in},
    {"see conflict", "out", cf_out},
    {"see conflict", "was in, moved out", cf_moved},
    {"see conflict", "out, own edit lost", cf_own_lost},
    {"see conflict", "out, own edit kept", cf_own_kept},
    {"report row", "own township", row_own},
    {"report row", "other township", row_other},
    {"close status", "own township", close_status_own},
    {"close status", "other township", close_status_other},
    {"close submit", "own township", close_submit_own},
    {"close submit", "other township", close_submit_other},
    {"close approve", "own township", close_approve},
    {"close return", "own township", close_return},
};
#define NCASES (sizeof(g_cases) / sizeof(g_cases[0]))

static void peer_of(int r, ps_peer_t *p)
{
    ps_policy_peer(p, g_role_names[r], g_role_units[r]);
}

/* ---- reading the markdown table ------------------------------------------ */

#define MAX_COLS 8

/* Splits "| a | b |" into trimmed cells (in place); returns their count. */
static int split_row(char *line, char **cells)
{
    int n = 0;
    char *p = strchr(line, '|');
    while (p && n < MAX_COLS) {
        char *start = p + 1, *end = strchr(start, '|');
        if (!end)
            break;
        *end = '\0';
        while (*start == ' ')
            start++;
        for (char *e = end - 1; e >= start && *e == ' '; e--)
            *e = '\0';
        cells[n++] = start;
        p = end;
    }
    return n;
}

static int find_case(const char *action, const char *scope)
{
    for (size_t i = 0; i < NCASES; i++)
        if (!strcmp(g_cases[i].action, action) && !strcmp(g_cases[i].scope, scope))
            return (int)i;
    return -1;
}

static void test_docs_table_is_the_policy(void **state)
{
    char path[4096], line[1024];
    FILE *f;
    int in_table = 0, seen[NCASES], bad = 0, rows = 0;
    (void)state;

    memset(seen, 0, sizeof(seen));
    src_path("docs/security.md", path, sizeof(path));
    f = fopen(path, "r");
    assert_non_null(f);
    while (fgets(line, sizeof(line), f)) {
        char *cells[MAX_COLS];
        int n, c;
        line[strcspn(line, "\r\n")] = '\0';
        if (!in_table) {
            in_table = !strcmp(line, "| action | case | admin | township | collector | viewer |");
            continue;
        }
        if (line[0] != '|')
            break; /* the table ends at its first non-row line */
        if (!strncmp(line, "|---", 4))
            continue;
        n = split_row(line, cells);
        rows++;
        if (n != 2 + NROLES) {
            fprintf(stderr, "docs/security.md: row with %d cells: %s\n", n, line);
            bad++;
            continue;
        }
        if ((c = find_case(cells[0], cells[1])) < 0) {
            fprintf(stderr, "docs/security.md: row the policy test does not know: %s | %s\n", cells[0], cells[1]);
            bad++;
            continue;
        }
        seen[c]++;
        for (int r = 0; r < NROLES; r++) {
            ps_peer_t p;
            const char *got;
            peer_of(r, &p);
            got = g_cases[c].fn(&p);
            if (strcmp(got, cells[2 + r])) {
                fprintf(stderr, "docs/security.md: %s | %s | %s: the table says %s, the policy says %s\n",
                        cells[0], cells[1], g_role_names[r], cells[2 + r], got);
                bad++;
            }
        }
    }
    fclose(f);
    assert_true(in_table);
    for (size_t i = 0; i < NCASES; i++) {
        if (seen[i] != 1) {
            fprintf(stderr, "docs/security.md: case %s | %s appears %d times (once wanted)\n", g_cases[i].action,
                    g_cases[i].scope, seen[i]);
            bad++;
        }
    }
    assert_int_equal(rows, (int)NCASES);
    assert_int_equal(bad, 0);
}

/* ---- the rest of the policy, case by case --------------------------------- */

static void test_subtree_rule(void **state)
{
    (void)state;
    /* The tree decides. */
    assert_true(ps_policy_within(g_tree, IN, TA));
    assert_true(ps_policy_within(g_tree, IN, D));
    assert_true(ps_policy_within(g_tree, TA, TA));
    assert_false(ps_policy_within(g_tree, OUT, TA));
    assert_false(ps_policy_within(g_tree, TA, IN));
    /* Unknown codes are inside nothing, and contain nothing, even when
     * their digits say otherwise. */
    assert_false(ps_policy_within(g_tree, UNKNOWN, TA));
    assert_false(ps_policy_within(g_tree, IN, "130203001990"));
    assert_false(ps_policy_within(g_tree, "110105001001", "110105001000"));
    /* Without a tree, the codes' levels decide. */
    assert_true(ps_policy_within(NULL, UNKNOWN, TA));
    assert_true(ps_policy_within(NULL, IN, D));
    assert_false(ps_policy_within(NULL, OUT, TA));
    assert_false(ps_policy_within(NULL, TA, IN));
    /* Invalid codes: nothing. */
    assert_false(ps_policy_within(NULL, "", TA));
    assert_false(ps_policy_within(NULL, IN, NULL));
    assert_false(ps_policy_within(g_tree, "13020300100", TA));
}

/* may_send agrees with the actions: a role may send a type exactly when it
 * may ask for one of the actions that type carries. */
static void test_may_send_every_type(void **state)
{
    (void)state;
    for (int r = PS_ROLE_NONE; r <= PS_ROLE_VIEWER; r++) {
        for (int t = 0; t < 256; t++) {
            int want = 0;
            if (r == PS_ROLE_NONE || r == PS_ROLE_SERVER) {
                assert_false(ps_policy_may_send((ps_role_t)r, (uint8_t)t));
                continue;
            }
            switch (t) {
            case PS_MSG_HELLO: case PS_MSG_PING: case PS_MSG_ORGUNITS_REQUEST: want = 1; break;
            case PS_MSG_PUSH: case PS_MSG_PULL: case PS_MSG_CONFLICT_LIST: case PS_MSG_VERIFY_REQUEST:
            case PS_MSG_VERIFY_BUCKET_REQUEST: case PS_MSG_FETCH_REQUEST: case PS_MSG_HISTORY_REQUEST:
                want = r != PS_ROLE_VIEWER;
                break;
            case PS_MSG_QUERY: case PS_MSG_REPORT_REQUEST: case PS_MSG_CLOSE_REQUEST:
                want = r != PS_ROLE_COLLECTOR;
                break;
            case PS_MSG_NODE_STATUS_REQUEST: want = r == PS_ROLE_ADMIN; break;
            default: want = 0; break;
            }
            if (ps_policy_may_send((ps_role_t)r, (uint8_t)t) != want)
                fail_msg("role %d type %d: want %d", r, t, want);
        }
    }
    for (int a = 0; a < PS_ACT_COUNT; a++)
        assert_non_null(ps_policy_action_name((ps_action_t)a));
    assert_null(ps_policy_action_name(PS_ACT_COUNT));
    assert_false(ps_policy_may(PS_ROLE_ADMIN, PS_ACT_COUNT));
}

/* The server and unknown roles are refused everywhere; the client accepts
 * only the server. */
static void test_non_people(void **state)
{
    ps_peer_t p;
    ps_conflict_view_t cv = {IN, IN, IN, g_me, g_me};
    char why[256];
    (void)state;
    for (int r = PS_ROLE_NONE; r <= PS_ROLE_SERVER; r++) {
        memset(&p, 0, sizeof(p));
        p.role = (ps_role_t)r;
        snprintf(p.orgunit, sizeof(p.orgunit), "%s", D);
        assert_int_equal(ps_policy_admit(g_tree, &p, why, sizeof(why)), PS_EACCES);
        assert_false(ps_policy_may_read(g_tree, &p, IN, NULL));
        assert_false(ps_policy_may_count(g_tree, &p, IN, NULL));
        assert_int_equal(ps_policy_may_write(g_tree, &p, NULL, NULL, IN), PS_WRITE_NO);
        assert_false(ps_policy_may_see_conflict(g_tree, &p, g_me, &cv));
        assert_false(ps_policy_report_township(g_tree, &p, TA));
        assert_false(ps_policy_may_close(g_tree, &p, PS_ACT_CLOSE_STATUS, TA));
        assert_false(ps_policy_tls_role(0, p.role));
    }
    assert_true(ps_policy_tls_role(1, PS_ROLE_SERVER));
    assert_false(ps_policy_tls_role(1, PS_ROLE_ADMIN));
    /* A malformed unit is refused at Hello with or without a tree. */
    ps_policy_peer(&p, "township", "12345");
    assert_int_equal(ps_policy_admit(NULL, &p, why, sizeof(why)), PS_EACCES);
    /* The reason names the unit, so an operator can act on it. */
    ps_policy_peer(&p, "township", "110105001000");
    assert_int_equal(ps_policy_admit(g_tree, &p, why, sizeof(why)), PS_EACCES);
    assert_non_null(strstr(why, "110105001000 is not in the server's org-unit tree"));
    /* A close action that is not one is refused. */
    ps_policy_peer(&p, "admin", D);
    assert_false(ps_policy_may_close(g_tree, &p, PS_ACT_PUSH, TA));
}

/* Another district's migration held here as its other place (docs/upstream.md
 * §7): admins and the other place's townships answer it as its other place
 * only; from another district only the owner changes more than the dates. */
static void test_foreign_case(void **state)
{
    static const char *const foreign_unit = "110105001000";
    ps_peer_t p;
    (void)state;
    assert_true(ps_policy_foreign_case(g_tree, foreign_unit, TA));
    assert_false(ps_policy_foreign_case(g_tree, IN, TA));           /* ours */
    assert_false(ps_policy_foreign_case(g_tree, foreign_unit, "110105002000")); /* nobody's here */
    assert_false(ps_policy_foreign_case(NULL, foreign_unit, TA));   /* no tree: no telling */
    ps_policy_peer(&p, "admin", D);
    assert_int_equal(ps_policy_may_write(g_tree, &p, foreign_unit, TA, foreign_unit), PS_WRITE_OTHER_PLACE);
    assert_int_equal(ps_policy_may_write(g_tree, &p, IN, TA, IN), PS_WRITE_OWNER);
    ps_policy_peer(&p, "township", TA);
    assert_int_equal(ps_policy_may_write(g_tree, &p, foreign_unit, TA, foreign_unit), PS_WRITE_OTHER_PLACE);
    ps_policy_peer(&p, "township", TB);
    assert_int_equal(ps_policy_may_write(g_tree, &p, foreign_unit, TA, foreign_unit), PS_WRITE_NO);
    ps_policy_peer(&p, "viewer", D);
    assert_int_equal(ps_policy_may_write(g_tree, &p, foreign_unit, TA, foreign_unit), PS_WRITE_NO);
    /* The summary of the migrant: even the admin here has no person record. */
    ps_policy_peer(&p, "admin", D);
    assert_true(ps_policy_sees_migrant(g_tree, &p, foreign_unit, TA));
    assert_false(ps_policy_sees_migrant(g_tree, &p, OUT, IN)); /* ours: the admin reads the person */
    ps_policy_peer(&p, "township", TA);
    assert_true(ps_policy_sees_migrant(g_tree, &p, foreign_unit, TA));
    assert_true(ps_policy_district_may_set(0, "feedback_date"));
    assert_true(ps_policy_district_may_set(0, "submitted_date"));
    assert_false(ps_policy_district_may_set(0, "employer"));
    assert_false(ps_policy_district_may_set(0, "deleted"));
    assert_false(ps_policy_district_may_set(0, "orgunit"));
    assert_true(ps_policy_district_may_set(1, "employer"));
    assert_true(ps_policy_district_may_set(1, "deleted"));
}

static int setup(void **state)
{
    char path[4096], err[256] = "";
    (void)state;
    src_path("demo/orgunits.csv", path, sizeof(path));
    return ps_orgunits_load(path, &g_tree, err, sizeof(err)) == PS_OK ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    ps_orgunits_free(g_tree);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_docs_table_is_the_policy),
        cmocka_unit_test(test_subtree_rule),
        cmocka_unit_test(test_may_send_every_type),
        cmocka_unit_test(test_non_people),
        cmocka_unit_test(test_foreign_case),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
