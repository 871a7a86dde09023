/* policy.h - the access policy: who may do what to which records.
 *
 * Owns: every access decision of popsync and the one subtree rule over the
 * org-unit tree.  Whether a peer (a certificate's role and org unit, and for
 * conflicts the node it syncs as) may use the server at all, send a message,
 * read or count a record, write it (before and after the change: a record
 * may move units), act as the other place of a migration, see a conflict,
 * see a township in a report, or act on a month's close.  docs/security.md
 * §8 holds the same policy as a table; tests/unit/test_policy.c reads that
 * table and checks every cell against these functions.
 *
 * Pure functions of their arguments: no I/O, no clock, no global state, so
 * any thread may call them.  Callers: the server (Hello, the dispatcher, the
 * store's read, apply, query, report and close paths), the client (the
 * checks it makes before a record leaves the device, and its subtree
 * filters), the TLS layer (which certificate roles each side accepts) and
 * the validator (a new record inside the sender's scope).  Nobody else
 * decides access.
 */
#ifndef PS_POLICY_H
#define PS_POLICY_H

#include <stddef.h>
#include <stdint.h>

#include "orgunit.h"
#include "tls.h"

/**
 * The subtree rule: is unit root itself or inside root's subtree?  With a
 * tree, the tree alone decides: a code that is not in it (either one) is
 * inside nothing.  Without a tree (a server started without --orgunits, a
 * cache that has not received one) the 12-digit division code decides: its
 * trailing groups of zeros mark the level (district PPPPPP000000, township
 * PPPPPPTTT000, village PPPPPPTTTVVV).  Invalid codes are inside nothing.
 */
int ps_policy_within(const ps_orgunits_t *tree, const char *unit, const char *root);

/** Whether one side of a TLS connection accepts a peer certificate of this
 *  role: a client accepts only the server; the server accepts every role
 *  but server. */
int ps_policy_tls_role(int client_side, ps_role_t peer_role);

/**
 * May this certificate use the server at all?  Checked at Hello.  Refuses
 * roles that are not people (none, server), org units that are not 12
 * digits, and, when the server has a tree, an org unit that is not in it
 * (such a certificate has no scope the tree can decide).  Returns PS_OK, or
 * PS_EACCES with a reason in why (no personal data: codes and role names).
 */
int ps_policy_admit(const ps_orgunits_t *tree, const ps_peer_t *peer, char *why, size_t whylen);

/** What a peer may ask for: one action per message, split where the
 *  message's content decides (query mode, report kind, close action). */
typedef enum ps_action {
    PS_ACT_HELLO = 0,
    PS_ACT_PING,
    PS_ACT_ORGUNITS,
    PS_ACT_PUSH,
    PS_ACT_PULL,
    PS_ACT_VERIFY,
    PS_ACT_VERIFY_BUCKETS,
    PS_ACT_FETCH,
    PS_ACT_CONFLICTS,
    PS_ACT_QUERY_GROUP,
    PS_ACT_QUERY_LIST,
    PS_ACT_REPORT_MONTHLY,
    PS_ACT_REPORT_QUALITY,
    PS_ACT_CLOSE_STATUS,
    PS_ACT_CLOSE_SUBMIT,
    PS_ACT_CLOSE_APPROVE,
    PS_ACT_CLOSE_RETURN,
    PS_ACT_NODE_STATUS,
    PS_ACT_HISTORY,
    PS_ACT_COUNT
} ps_action_t;

/** "Push", "Query/list", ... as in docs/security.md; NULL when unknown. */
const char *ps_policy_action_name(ps_action_t act);

/** May a peer of this role ask for this action at all (before any scope)? */
int ps_policy_may(ps_role_t role, ps_action_t act);

/** May a peer of this role send this message type (PS_MSG_*)?  True when
 *  the role may ask for at least one action the message carries; messages
 *  only the server sends and unknown types: nobody. */
int ps_policy_may_send(ps_role_t role, uint8_t msg_type);

/** May the peer read (receive) a record whose audience is unit and other
 *  (a migration's other place, or NULL/"")?  Admin: all; township and
 *  collector: either unit inside their subtree; viewer: none (it counts). */
int ps_policy_may_read(const ps_orgunits_t *tree, const ps_peer_t *peer, const char *unit, const char *other);

/** May the peer count a record in a query or report (and see it by id in
 *  the quality report)?  A viewer counts its subtree's records (by owner);
 *  the others count what they may read. */
int ps_policy_may_count(const ps_orgunits_t *tree, const ps_peer_t *peer, const char *unit, const char *other);

/** How a peer may change a record. */
typedef enum ps_write {
    PS_WRITE_NO = 0,      /**< not at all */
    PS_WRITE_OWNER,       /**< any field, including the unit (a hand-over) and deleting */
    PS_WRITE_OTHER_PLACE  /**< a migration's other place: ps_policy_other_place_may_set fields only */
} ps_write_t;

/**
 * May the peer write a record?  before_unit/before_other: the stored
 * version's unit and other place (before_unit NULL: a new record);
 * after_unit: the unit the change gives it.  A new record must be created
 * inside the sender's subtree; an existing one is the owner's (its unit
 * inside the subtree) to change, move to any unit or delete; a migration's
 * other place may set the dates of its answer only.  Admin: everything;
 * viewer and server: nothing.
 */
ps_write_t ps_policy_may_write(const ps_orgunits_t *tree, const ps_peer_t *peer, const char *before_unit,
                               const char *before_other, const char *after_unit);

/**
 * A foreign case (docs/upstream.md §7): a migration of another district,
 * held here because its other place is one of ours.  With a tree: its unit
 * is not in the tree and its other place is.  Nobody here owns it (the
 * owner district's townships do, in their own store): every role that may
 * write it here writes it as its other place only (PS_WRITE_OTHER_PLACE),
 * admins included.  Without a tree there is no telling: never foreign.
 */
int ps_policy_foreign_case(const ps_orgunits_t *tree, const char *unit, const char *other);

/**
 * What another district may change in a migration it shares with us
 * (docs/upstream.md §7, the stream's "who edits what"): the owner district
 * (sender_owns: the case's unit lies in the sender's district) anything;
 * the district of the other place only what the other place may set
 * (ps_policy_other_place_may_set), never the unit and never a delete or
 * restore ("deleted", "orgunit").
 */
int ps_policy_district_may_set(int sender_owns, const char *field);

/** May the other place of a migration change this field ("deleted" for a
 *  delete or restore)?  Only submitted_date and feedback_date. */
int ps_policy_other_place_may_set(const char *field);

/**
 * Kinds whose records only the district draws: spot checks (kind 7,
 * KIND_SPOTCHECK).  Whoever may write such a record but is not an admin
 * (the township owning it, its collectors) may set only the result fields
 * (ps_policy_result_field) and may neither create nor delete one: a
 * township never picks or drops who is checked.  The validator asks these
 * for every change it checks, on the server and before a record leaves a
 * cache.
 */
int ps_policy_district_drawn(int kind);
/** May a peer of this role create (or delete/restore) a record of kind? */
int ps_policy_may_create_kind(ps_role_t role, int kind);
/** May a non-admin owner set this field of a district-drawn kind?  For a
 *  spot check: result, checked_date, differs and note. */
int ps_policy_result_field(int kind, const char *field);

/** Does the peer read a migration (unit, other) only as its other place,
 *  and so get the migrant's summary with it (name, sex, birth date, masked
 *  ID number: FeedEntry.migrant)?  An owner reads the person itself.  Of
 *  another district's case (ps_policy_foreign_case) every reader gets it:
 *  the person is in no store here. */
int ps_policy_sees_migrant(const ps_orgunits_t *tree, const ps_peer_t *peer, const char *unit, const char *other);

/** What the policy needs to know of a conflict. */
typedef struct ps_conflict_view {
    const char *unit;          /**< the record's unit when the conflict arose */
    const char *kept_unit;     /**< the unit of the version kept ("" when none) */
    const char *lost_unit;     /**< the unit of the version that lost */
    const uint8_t *lost_node;  /**< 16 bytes: the cache whose edit lost (NULL: unknown) */
    const uint8_t *kept_node;  /**< 16 bytes: the cache whose edit the kept version holds (NULL: unknown) */
} ps_conflict_view_t;

/**
 * May the peer, syncing as node (16 bytes, or NULL), list this conflict
 * with both versions?  Admin: all.  The author of either side (its node is
 * lost_node or kept_node): yes, whatever its role and wherever the record
 * went since.  A township: also conflicts whose units (then, kept or lost)
 * lie in its subtree.  Everyone else: no.
 */
int ps_policy_may_see_conflict(const ps_orgunits_t *tree, const ps_peer_t *peer, const uint8_t *node,
                               const ps_conflict_view_t *cf);

/** Does township town get a row in the peer's monthly report?  Admin: all;
 *  others: a township inside their subtree, or the one their unit lies in
 *  (its row then counts only their own subtree, ps_policy_may_count). */
int ps_policy_report_township(const ps_orgunits_t *tree, const ps_peer_t *peer, const char *town);

/** May the peer take a close action (PS_ACT_CLOSE_*) on township town's
 *  month?  Submit: admin, or the township itself (or a unit above it);
 *  approve and return: admin; status: admin, and townships and viewers
 *  whose subtree holds the township. */
int ps_policy_may_close(const ps_orgunits_t *tree, const ps_peer_t *peer, ps_action_t act, const char *town);

/** Fills a peer from a role name and org unit (the client's own identity,
 *  as its cache keeps it).  An unknown role gives PS_ROLE_NONE. */
void ps_policy_peer(ps_peer_t *out, const char *role_name, const char *orgunit);

#endif
