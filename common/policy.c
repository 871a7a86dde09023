/* policy.c - the access policy (policy.h; docs/security.md §8). */
#include "policy.h"

#include "err.h"
#include "msgtab.h"
#include "scope.h"

#include <stdio.h>
#include <string.h>

#define BIT(r) (1u << (unsigned)(r))
#define PEOPLE (BIT(PS_ROLE_ADMIN) | BIT(PS_ROLE_TOWNSHIP) | BIT(PS_ROLE_COLLECTOR) | BIT(PS_ROLE_VIEWER))
#define SYNCERS (BIT(PS_ROLE_ADMIN) | BIT(PS_ROLE_TOWNSHIP) | BIT(PS_ROLE_COLLECTOR))
#define READERS (BIT(PS_ROLE_ADMIN) | BIT(PS_ROLE_TOWNSHIP) | BIT(PS_ROLE_VIEWER))

/* Which roles may ask for each action, before any scope.  A collector is a
 * field device: it syncs its own unit and has no queries or reports; a
 * viewer sees aggregates only and never receives a record. */
static const struct {
    const char *name;
    uint8_t msg;
    unsigned roles;
} g_actions[PS_ACT_COUNT] = {
    [PS_ACT_HELLO] = {"Hello", PS_MSG_HELLO, PEOPLE},
    [PS_ACT_PING] = {"Ping", PS_MSG_PING, PEOPLE},
    [PS_ACT_ORGUNITS] = {"OrgUnitsRequest", PS_MSG_ORGUNITS_REQUEST, PEOPLE},
    [PS_ACT_PUSH] = {"Push", PS_MSG_PUSH, SYNCERS},
    [PS_ACT_PULL] = {"Pull", PS_MSG_PULL, SYNCERS},
    [PS_ACT_VERIFY] = {"VerifyRequest", PS_MSG_VERIFY_REQUEST, SYNCERS},
    [PS_ACT_VERIFY_BUCKETS] = {"VerifyBucketRequest", PS_MSG_VERIFY_BUCKET_REQUEST, SYNCERS},
    [PS_ACT_FETCH] = {"FetchRequest", PS_MSG_FETCH_REQUEST, SYNCERS},
    /* A collector sees only the conflicts its own edits took part in. */
    [PS_ACT_CONFLICTS] = {"ConflictList", PS_MSG_CONFLICT_LIST, SYNCERS},
    [PS_ACT_QUERY_GROUP] = {"Query/group", PS_MSG_QUERY, READERS},
    [PS_ACT_QUERY_LIST] = {"Query/list", PS_MSG_QUERY, BIT(PS_ROLE_ADMIN) | BIT(PS_ROLE_TOWNSHIP)},
    [PS_ACT_REPORT_MONTHLY] = {"ReportRequest/monthly", PS_MSG_REPORT_REQUEST, READERS},
    [PS_ACT_REPORT_QUALITY] = {"ReportRequest/quality", PS_MSG_REPORT_REQUEST, READERS},
    [PS_ACT_CLOSE_STATUS] = {"CloseRequest/status", PS_MSG_CLOSE_REQUEST, READERS},
    [PS_ACT_CLOSE_SUBMIT] = {"CloseRequest/submit", PS_MSG_CLOSE_REQUEST, BIT(PS_ROLE_ADMIN) | BIT(PS_ROLE_TOWNSHIP)},
    [PS_ACT_CLOSE_APPROVE] = {"CloseRequest/approve", PS_MSG_CLOSE_REQUEST, BIT(PS_ROLE_ADMIN)},
    [PS_ACT_CLOSE_RETURN] = {"CloseRequest/return", PS_MSG_CLOSE_REQUEST, BIT(PS_ROLE_ADMIN)},
    [PS_ACT_NODE_STATUS] = {"NodeStatusRequest", PS_MSG_NODE_STATUS_REQUEST, BIT(PS_ROLE_ADMIN)},
    /* A record's versions and who made them: whoever may fetch the record
     * (and each version only if it may read that version: the store). */
    [PS_ACT_HISTORY] = {"HistoryRequest", PS_MSG_HISTORY_REQUEST, SYNCERS},
};

/* ---- the subtree rule -------------------------------------------------------- */

/* Length of a code's significant prefix: 6 for a district, 9 for a
 * township, 12 for a village.  Codes ending in zeros at other places count
 * as their nearest coarser level, which is what the division code standard
 * means. */
static size_t level_prefix(const char *code)
{
    if (strcmp(code + 6, "000000") == 0)
        return 6;
    if (strcmp(code + 9, "000") == 0)
        return 9;
    return 12;
}

int ps_policy_within(const ps_orgunits_t *tree, const char *unit, const char *root)
{
    if (!ps_orgunit_valid(unit) || !ps_orgunit_valid(root))
        return 0;
    if (tree)
        return ps_orgunits_within(tree, unit, root); /* 0 unless both are in the tree */
    return strncmp(unit, root, level_prefix(root)) == 0;
}

/* ---- who may connect --------------------------------------------------------- */

int ps_policy_tls_role(int client_side, ps_role_t peer_role)
{
    if (client_side)
        return peer_role == PS_ROLE_SERVER;
    return (PEOPLE & BIT(peer_role)) != 0 && peer_role != PS_ROLE_NONE;
}

int ps_policy_admit(const ps_orgunits_t *tree, const ps_peer_t *peer, char *why, size_t whylen)
{
    if (!ps_policy_tls_role(0, peer->role)) {
        snprintf(why, whylen, "certificate role %s may not use the server", ps_role_name(peer->role));
        return PS_EACCES;
    }
    if (!ps_orgunit_valid(peer->orgunit)) {
        snprintf(why, whylen, "certificate org unit is not a 12-digit code");
        return PS_EACCES;
    }
    if (tree && !ps_orgunits_find(tree, peer->orgunit)) {
        snprintf(why, whylen,
                 "certificate org unit %s is not in the server's org-unit tree: this certificate has no scope "
                 "here; ask the district for one issued for a unit of the tree",
                 peer->orgunit);
        return PS_EACCES;
    }
    return PS_OK;
}

/* ---- actions and messages ---------------------------------------------------- */

const char *ps_policy_action_name(ps_action_t act)
{
    return (unsigned)act < PS_ACT_COUNT ? g_actions[act].name : NULL;
}

int ps_policy_may(ps_role_t role, ps_action_t act)
{
    if ((unsigned)act >= PS_ACT_COUNT || role == PS_ROLE_NONE || (unsigned)role > 31)
        return 0;
    return (g_actions[act].roles & BIT(role)) != 0;
}

int ps_policy_may_send(ps_role_t role, uint8_t msg_type)
{
    for (int a = 0; a < PS_ACT_COUNT; a++)
        if (g_actions[a].msg == msg_type && ps_policy_may(role, (ps_action_t)a))
            return 1;
    return 0;
}

/* ---- records ----------------------------------------------------------------- */

static int in_scope(const ps_orgunits_t *tree, const ps_peer_t *peer, const char *unit)
{
    return unit && *unit && ps_policy_within(tree, unit, peer->orgunit);
}

int ps_policy_may_read(const ps_orgunits_t *tree, const ps_peer_t *peer, const char *unit, const char *other)
{
    switch (peer->role) {
    case PS_ROLE_ADMIN: return 1;
    case PS_ROLE_TOWNSHIP:
    case PS_ROLE_COLLECTOR: return in_scope(tree, peer, unit) || in_scope(tree, peer, other);
    default: return 0;
    }
}

int ps_policy_sees_migrant(const ps_orgunits_t *tree, const ps_peer_t *peer, const char *unit, const char *other)
{
    if (!other || !*other || !ps_policy_may_read(tree, peer, unit, other))
        return 0;
    /* Another district's case: nobody here has the person, an admin
     * included, so whoever reads the case gets the summary. */
    return !ps_policy_may_read(tree, peer, unit, NULL) || ps_policy_foreign_case(tree, unit, other);
}

int ps_policy_may_count(const ps_orgunits_t *tree, const ps_peer_t *peer, const char *unit, const char *other)
{
    if (peer->role == PS_ROLE_VIEWER)
        return in_scope(tree, peer, unit);
    return ps_policy_may_read(tree, peer, unit, other);
}

ps_write_t ps_policy_may_write(const ps_orgunits_t *tree, const ps_peer_t *peer, const char *before_unit,
                               const char *before_other, const char *after_unit)
{
    /* Another district's case answers to its owner there: here even an
     * admin is only its other place. */
    if (before_unit && ps_policy_foreign_case(tree, before_unit, before_other))
        return peer->role == PS_ROLE_ADMIN || ((peer->role == PS_ROLE_TOWNSHIP || peer->role == PS_ROLE_COLLECTOR) &&
                                               in_scope(tree, peer, before_other))
                   ? PS_WRITE_OTHER_PLACE
                   : PS_WRITE_NO;
    if (peer->role == PS_ROLE_ADMIN)
        return PS_WRITE_OWNER;
    if (peer->role != PS_ROLE_TOWNSHIP && peer->role != PS_ROLE_COLLECTOR)
        return PS_WRITE_NO;
    if (!before_unit) /* a new record: created inside the subtree */
        return in_scope(tree, peer, after_unit) ? PS_WRITE_OWNER : PS_WRITE_NO;
    /* The owner may hand a record over to any unit; after_unit is then
     * the validator's to check (a known unit), not the policy's. */
    if (in_scope(tree, peer, before_unit))
        return PS_WRITE_OWNER;
    if (in_scope(tree, peer, before_other))
        return PS_WRITE_OTHER_PLACE;
    return PS_WRITE_NO;
}

int ps_policy_foreign_case(const ps_orgunits_t *tree, const char *unit, const char *other)
{
    return tree && unit && other && ps_orgunit_valid(unit) && ps_orgunit_valid(other) &&
           !ps_orgunits_find(tree, unit) && ps_orgunits_find(tree, other);
}

int ps_policy_district_may_set(int sender_owns, const char *field)
{
    if (!field)
        return 0;
    return sender_owns || ps_policy_other_place_may_set(field);
}

int ps_policy_other_place_may_set(const char *field)
{
    return field && (!strcmp(field, "submitted_date") || !strcmp(field, "feedback_date"));
}

/* Kind 7 (KIND_SPOTCHECK, records.proto): policy.h takes kinds as numbers
 * so that it needs no generated header. */
#define KIND_SPOTCHECK 7

int ps_policy_district_drawn(int kind)
{
    return kind == KIND_SPOTCHECK;
}

int ps_policy_may_create_kind(ps_role_t role, int kind)
{
    return !ps_policy_district_drawn(kind) || role == PS_ROLE_ADMIN;
}

int ps_policy_result_field(int kind, const char *field)
{
    return kind == KIND_SPOTCHECK && field &&
           (!strcmp(field, "result") || !strcmp(field, "checked_date") || !strcmp(field, "differs") ||
            !strcmp(field, "note"));
}

/* ---- conflicts, reports, the monthly close ----------------------------------- */

static int same_node(const uint8_t *a, const uint8_t *b)
{
    return a && b && memcmp(a, b, 16) == 0;
}

int ps_policy_may_see_conflict(const ps_orgunits_t *tree, const ps_peer_t *peer, const uint8_t *node,
                               const ps_conflict_view_t *cf)
{
    if (!ps_policy_may(peer->role, PS_ACT_CONFLICTS))
        return 0;
    if (peer->role == PS_ROLE_ADMIN)
        return 1;
    if (same_node(node, cf->lost_node) || same_node(node, cf->kept_node))
        return 1;
    if (peer->role != PS_ROLE_TOWNSHIP)
        return 0;
    return in_scope(tree, peer, cf->unit) || in_scope(tree, peer, cf->kept_unit) ||
           in_scope(tree, peer, cf->lost_unit);
}

int ps_policy_report_township(const ps_orgunits_t *tree, const ps_peer_t *peer, const char *town)
{
    if (peer->role == PS_ROLE_ADMIN)
        return 1;
    if (!ps_policy_may(peer->role, PS_ACT_REPORT_MONTHLY))
        return 0;
    return in_scope(tree, peer, town) || ps_policy_within(tree, peer->orgunit, town);
}

int ps_policy_may_close(const ps_orgunits_t *tree, const ps_peer_t *peer, ps_action_t act, const char *town)
{
    if (act < PS_ACT_CLOSE_STATUS || act > PS_ACT_CLOSE_RETURN || !ps_policy_may(peer->role, act))
        return 0;
    return peer->role == PS_ROLE_ADMIN || in_scope(tree, peer, town);
}

void ps_policy_peer(ps_peer_t *out, const char *role_name, const char *orgunit)
{
    memset(out, 0, sizeof(*out));
    out->role = ps_role_from_name(role_name);
    snprintf(out->role_name, sizeof(out->role_name), "%s", ps_role_name(out->role));
    snprintf(out->orgunit, sizeof(out->orgunit), "%s", orgunit ? orgunit : "");
}
