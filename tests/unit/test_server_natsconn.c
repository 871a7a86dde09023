/* test_server_natsconn.c - unit tests for server/natsconn.c, the NATS
 * connection shared by the publisher, the migrant consumer and the rebuild:
 * bad options are refused with the reason (the inbox prefix reaches
 * libnats); a connection that must not
 * retry fails at once when no server answers (a closed loopback port); one
 * that retries returns at once, not up, with no error to log, and closes
 * cleanly.  The connection to a real cluster is t_upstream*.sh's.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "err.h"
#include "natsconn.h"

/* A loopback port nothing listens on (bound by the kernel, then closed). */
static int closed_port(void)
{
    struct sockaddr_in a;
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

static void opts(ps_upstream_opts_t *o, const char *urls)
{
    memset(o, 0, sizeof(*o));
    o->urls = urls;
    o->district = "110105000000";
}

static void test_no_urls(void **state)
{
    ps_upstream_opts_t o;
    ps_natsconn_t c;
    char err[256];
    (void)state;
    opts(&o, " , ");
    ps_natsconn_init(&c, "test", &o, NULL, 0);
    assert_int_equal(ps_natsconn_open(&c, err, sizeof(err)), PS_EINVAL);
    assert_non_null(strstr(err, "NATS options"));
    assert_null(c.nc);
    ps_natsconn_close(&c);
}

static void test_missing_ca(void **state)
{
    ps_upstream_opts_t o;
    ps_natsconn_t c;
    char err[256];
    (void)state;
    opts(&o, "tls://127.0.0.1:1");
    o.ca_file = "/nonexistent/nats-ca.crt";
    ps_natsconn_init(&c, "test", &o, NULL, 0);
    assert_int_equal(ps_natsconn_open(&c, err, sizeof(err)), PS_EINVAL);
    assert_non_null(strstr(err, "NATS options"));
    ps_natsconn_close(&c);
}

/* The inbox prefix goes to libnats (which refuses a wildcard). */
static void test_inbox_prefix_passed(void **state)
{
    ps_upstream_opts_t o;
    ps_natsconn_t c;
    char err[256];
    (void)state;
    opts(&o, "nats://127.0.0.1:1");
    o.inbox_prefix = "_INBOX.*";
    ps_natsconn_init(&c, "test", &o, NULL, 0);
    assert_int_equal(ps_natsconn_open(&c, err, sizeof(err)), PS_EINVAL);
    assert_non_null(strstr(err, "NATS options"));
    ps_natsconn_close(&c);
}

static void test_no_server_once(void **state)
{
    ps_upstream_opts_t o;
    ps_natsconn_t c;
    char err[256], url[64], want[96];
    (void)state;
    snprintf(url, sizeof(url), "nats://127.0.0.1:%d", closed_port());
    opts(&o, url);
    ps_natsconn_init(&c, "test", &o, NULL, 0);
    assert_int_equal(ps_natsconn_open(&c, err, sizeof(err)), PS_EIO);
    snprintf(want, sizeof(want), "cannot connect to %s", url);
    assert_non_null(strstr(err, want));
    assert_null(c.nc);
    assert_null(c.js);
    assert_false(ps_natsconn_up(&c));
    ps_natsconn_close(&c);
}

/* The threads' connection: no server yet is not an error to log; the
 * library keeps trying in the background until it is closed. */
static void test_no_server_retrying(void **state)
{
    ps_upstream_opts_t o;
    ps_natsconn_t c;
    char err[256], url[64];
    (void)state;
    snprintf(url, sizeof(url), "nats://127.0.0.1:%d", closed_port());
    opts(&o, url);
    ps_natsconn_init(&c, "test", &o, NULL, 1);
    assert_int_equal(ps_natsconn_open(&c, err, sizeof(err)), PS_EIO);
    assert_string_equal(err, "");
    assert_non_null(c.nc);
    assert_non_null(c.js);
    assert_false(ps_natsconn_up(&c));
    assert_false(ps_natsconn_reconnected(&c));
    /* A second open reuses the connection and context. */
    natsConnection *nc = c.nc;
    assert_int_equal(ps_natsconn_open(&c, err, sizeof(err)), PS_EIO);
    assert_ptr_equal(c.nc, nc);
    ps_natsconn_drop_js(&c);
    assert_null(c.js);
    ps_natsconn_close(&c);
    assert_null(c.nc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_urls),
        cmocka_unit_test(test_missing_ca),
        cmocka_unit_test(test_inbox_prefix_passed),
        cmocka_unit_test(test_no_server_once),
        cmocka_unit_test(test_no_server_retrying),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    ps_natsconn_shutdown();
    return rc;
}
