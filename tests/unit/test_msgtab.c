/* test_msgtab.c - unit tests for the message table (common/msgtab.def).
 *
 * Owns: the table's own consistency, so a row added wrongly fails here
 * before it reaches a server: types 1..N in order, unique names, every
 * descriptor the message of its name (a reply may share its request's), every
 * request answered by a server -> client type, requests with roles and a
 * place to run and server -> client rows with neither, Hello the only
 * request allowed before Hello, and the roles matrix (ps_msg_role_may_send)
 * for every role and every type number 0..255.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "frame.h"
#include "msg.h"
#include "msgtab.h"
#include "tls.h"

#include "wire.pb-c.h"

static void test_rows_in_order(void **state)
{
    size_t n;
    const ps_msg_info_t *t = ps_msg_table(&n);
    (void)state;
    assert_int_equal(n, PS_MSG_MAX_KNOWN);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(t[i].type, i + 1);
        assert_ptr_equal(ps_msg_info(t[i].type), &t[i]);
        assert_string_equal(ps_frame_type_name(t[i].type), t[i].name);
        for (size_t k = 0; k < i; k++)
            assert_true(strcmp(t[i].name, t[k].name) != 0);
    }
    assert_null(ps_msg_info(0));
    assert_null(ps_msg_info(PS_MSG_MAX_KNOWN + 1));
    assert_null(ps_msg_info(255));
    assert_string_equal(ps_frame_type_name(0), "unknown");
    assert_string_equal(ps_frame_type_name(255), "unknown");
}

static void test_descriptors(void **state)
{
    size_t n;
    const ps_msg_info_t *t = ps_msg_table(&n);
    (void)state;
    for (size_t i = 0; i < n; i++) {
        const ProtobufCMessageDescriptor *d = t[i].desc;
        assert_non_null(d);
        assert_int_equal(d->magic, PROTOBUF_C__MESSAGE_DESCRIPTOR_MAGIC);
        assert_ptr_equal(ps_msg_descriptor(t[i].type), d);
        if (strcmp(d->short_name, t[i].name) != 0) {
            /* Only a reply that echoes its request's message (Pong). */
            int shared = 0;
            for (size_t k = 0; k < n; k++)
                if (t[k].reply == t[i].type && t[k].desc == d)
                    shared = 1;
            assert_true(shared);
        }
    }
    assert_ptr_equal(ps_msg_info(PS_MSG_PONG)->desc, &popsync__ping__descriptor);
}

static void test_requests_and_replies(void **state)
{
    size_t n;
    const ps_msg_info_t *t = ps_msg_table(&n);
    int before_hello = 0;
    (void)state;
    for (size_t i = 0; i < n; i++) {
        const ps_msg_info_t *r = &t[i];
        if (r->dir == PS_MSG_DIR_C2S) {
            const ps_msg_info_t *rep = ps_msg_info(r->reply);
            assert_non_null(rep);
            assert_int_equal(rep->dir, PS_MSG_DIR_S2C);
            assert_true(ps_msg_role_may_send(r->type, PS_ROLE_ADMIN)); /* someone may send it */
            assert_false(ps_msg_role_may_send(r->type, PS_ROLE_SERVER)); /* never the server role */
            assert_true(r->run == PS_MSG_RUN_LOOP || r->run == PS_MSG_RUN_POOL || r->run == PS_MSG_RUN_COMMIT);
            if (!r->needs_hello)
                before_hello++;
        } else {
            assert_int_equal(r->dir, PS_MSG_DIR_S2C);
            assert_int_equal(r->reply, PS_MSG_NONE);
            for (int role = PS_ROLE_NONE; role <= PS_ROLE_VIEWER; role++)
                assert_false(ps_msg_role_may_send(r->type, role));
            assert_int_equal(r->needs_hello, 0);
            assert_int_equal(r->run, PS_MSG_RUN_NONE);
        }
    }
    assert_int_equal(before_hello, 1);
    assert_int_equal(ps_msg_info(PS_MSG_HELLO)->needs_hello, 0);
    assert_int_equal(ps_msg_info(PS_MSG_HELLO)->reply, PS_MSG_WELCOME);
    assert_int_equal(ps_msg_info(PS_MSG_FETCH_REQUEST)->reply, PS_MSG_PULL_BATCH);
    assert_int_equal(ps_msg_info(PS_MSG_PUSH)->run, PS_MSG_RUN_COMMIT);
    assert_int_equal(ps_msg_info(PS_MSG_ERROR)->dir, PS_MSG_DIR_S2C);
}

/* The roles of docs/protocol.md §5 and docs/security.md, spelled out once
 * more by hand: a change to the access policy's roles must change this too
 * (ps_msg_role_may_send asks common/policy.c). */
static void test_roles_matrix(void **state)
{
    static const struct {
        uint8_t type;
        int admin, township, collector, viewer;
    } want[] = {
        {PS_MSG_HELLO, 1, 1, 1, 1},          {PS_MSG_PUSH, 1, 1, 1, 0},
        {PS_MSG_PULL, 1, 1, 1, 0},           {PS_MSG_PING, 1, 1, 1, 1},
        {PS_MSG_ORGUNITS_REQUEST, 1, 1, 1, 1}, {PS_MSG_CONFLICT_LIST, 1, 1, 1, 0},
        {PS_MSG_VERIFY_REQUEST, 1, 1, 1, 0}, {PS_MSG_VERIFY_BUCKET_REQUEST, 1, 1, 1, 0},
        {PS_MSG_FETCH_REQUEST, 1, 1, 1, 0},  {PS_MSG_QUERY, 1, 1, 0, 1},
        {PS_MSG_REPORT_REQUEST, 1, 1, 0, 1}, {PS_MSG_CLOSE_REQUEST, 1, 1, 0, 1},
        {PS_MSG_NODE_STATUS_REQUEST, 1, 0, 0, 0}, {PS_MSG_HISTORY_REQUEST, 1, 1, 1, 0},
    };
    size_t checked = 0;
    (void)state;
    for (unsigned type = 0; type < 256; type++) {
        const ps_msg_info_t *mi = ps_msg_info((uint8_t)type);
        int found = 0;
        for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
            if (want[i].type != type)
                continue;
            found = 1;
            assert_int_equal(ps_msg_role_may_send((uint8_t)type, PS_ROLE_ADMIN), want[i].admin);
            assert_int_equal(ps_msg_role_may_send((uint8_t)type, PS_ROLE_TOWNSHIP), want[i].township);
            assert_int_equal(ps_msg_role_may_send((uint8_t)type, PS_ROLE_COLLECTOR), want[i].collector);
            assert_int_equal(ps_msg_role_may_send((uint8_t)type, PS_ROLE_VIEWER), want[i].viewer);
            checked++;
        }
        /* Every request is listed above; nothing else may be sent by anyone. */
        assert_int_equal(found, mi && mi->dir == PS_MSG_DIR_C2S);
        for (int role = -1; role <= PS_ROLE_VIEWER + 1; role++) {
            if (!found || role == PS_ROLE_NONE || role == PS_ROLE_SERVER || role < 0 || role > PS_ROLE_VIEWER)
                assert_int_equal(ps_msg_role_may_send((uint8_t)type, role), 0);
        }
    }
    assert_int_equal(checked, sizeof(want) / sizeof(want[0]));
}

static void test_roles_text(void **state)
{
    char b[64];
    (void)state;
    ps_msg_roles_text(PS_MSG_PING, b, sizeof(b));
    assert_string_equal(b, "any");
    ps_msg_roles_text(PS_MSG_PULL, b, sizeof(b));
    assert_string_equal(b, "admin, township, collector");
    ps_msg_roles_text(PS_MSG_NODE_STATUS_REQUEST, b, sizeof(b));
    assert_string_equal(b, "admin");
    ps_msg_roles_text(PS_MSG_WELCOME, b, sizeof(b));
    assert_string_equal(b, "nobody");
    ps_msg_roles_text(PS_MSG_PULL, b, 8); /* truncated, still a string */
    assert_int_equal(strlen(b), 7);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rows_in_order),
        cmocka_unit_test(test_descriptors),
        cmocka_unit_test(test_requests_and_replies),
        cmocka_unit_test(test_roles_matrix),
        cmocka_unit_test(test_roles_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
