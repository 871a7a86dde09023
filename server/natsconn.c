/* natsconn.c - popsyncd's connections to NATS (natsconn.h).
 *
 * One natsConnection per user (publisher, migrant consumer, offline
 * command): libnats serializes a connection's writes, and the publisher's
 * asynchronous publishes should not queue behind the consumer's fetches.
 * The connection itself reconnects forever; what a user must redo after a
 * reconnection (look its stream or consumer up again) it learns from
 * ps_natsconn_reconnected.
 */
#include "natsconn.h"
#include "err.h"
#include "log.h"

#include <stdio.h>
#include <string.h>

static void on_connected(natsConnection *nc, void *closure)
{
    ps_natsconn_t *c = closure;
    (void)nc;
    atomic_store(&c->reconnected, 1);
    PS_INFO(c->who, "connected to NATS");
}

static void on_reconnected(natsConnection *nc, void *closure)
{
    ps_natsconn_t *c = closure;
    (void)nc;
    atomic_store(&c->reconnected, 1);
    PS_INFO(c->who, "reconnected to NATS");
}

/* Splits "a,b,c" into at most max URLs in buf; returns how many. */
static int split_urls(const char *urls, char *buf, size_t buflen, const char **out, int max)
{
    int n = 0;
    snprintf(buf, buflen, "%s", urls);
    for (char *save = NULL, *t = strtok_r(buf, ", ", &save); t && n < max; t = strtok_r(NULL, ", ", &save))
        out[n++] = t;
    return n;
}

/* TLS when a CA is configured (it verifies the servers), with the client
 * certificate when one is configured too. */
static natsStatus set_tls(natsOptions *no, const ps_upstream_opts_t *o)
{
    natsStatus s = natsOptions_SetSecure(no, true);
    if (s == NATS_OK)
        s = natsOptions_LoadCATrustedCertificates(no, o->ca_file);
    if (s == NATS_OK && o->cert_file)
        s = natsOptions_LoadCertificatesChain(no, o->cert_file, o->key_file);
    return s;
}

static natsStatus make_options(ps_natsconn_t *c, natsOptions **out)
{
    char buf[2048];
    const char *urls[16];
    int nurls = split_urls(c->o.urls ? c->o.urls : "", buf, sizeof(buf), urls, 16);
    natsStatus s = natsOptions_Create(out);

    if (s == NATS_OK)
        s = nurls ? natsOptions_SetServers(*out, urls, nurls) : NATS_INVALID_ARG;
    if (s == NATS_OK)
        s = natsOptions_SetName(*out, "popsyncd");
    if (s == NATS_OK)
        s = natsOptions_SetTimeout(*out, 2000);
    if (s == NATS_OK)
        s = natsOptions_SetMaxReconnect(*out, -1);
    if (s == NATS_OK)
        s = natsOptions_SetReconnectWait(*out, 500);
    /* Retrying, the first connect goes on in the background instead of
     * blocking the thread (and shutdown) until a server answers. */
    if (s == NATS_OK && c->retry)
        s = natsOptions_SetRetryOnFailedConnect(*out, true, on_connected, c);
    if (s == NATS_OK && c->retry)
        s = natsOptions_SetReconnectedCB(*out, on_reconnected, c);
    if (s == NATS_OK && c->o.ca_file)
        s = set_tls(*out, &c->o);
    /* Replies (a fetch's messages) come on <prefix>.<id>: a district's
     * account may then subscribe to its own prefix only (docs/upstream.md §5). */
    if (s == NATS_OK && c->o.inbox_prefix)
        s = natsOptions_SetCustomInboxPrefix(*out, c->o.inbox_prefix);
    return s;
}

static int connect_once(ps_natsconn_t *c, char *err, size_t errlen)
{
    natsOptions *no = NULL;
    natsStatus s = make_options(c, &no);

    if (s != NATS_OK) {
        snprintf(err, errlen, "NATS options: %s", natsStatus_GetText(s));
        natsOptions_Destroy(no);
        return PS_EINVAL;
    }
    s = natsConnection_Connect(&c->nc, no);
    natsOptions_Destroy(no);
    if (s == NATS_OK || (c->retry && s == NATS_NOT_YET_CONNECTED))
        return PS_OK;
    snprintf(err, errlen, "cannot connect to %s: %s", c->o.urls, natsStatus_GetText(s));
    natsConnection_Destroy(c->nc);
    c->nc = NULL;
    return PS_EIO;
}

void ps_natsconn_init(ps_natsconn_t *c, const char *who, const ps_upstream_opts_t *o, const jsOptions *jo,
                      int retry)
{
    memset(c, 0, sizeof(*c));
    c->o = *o;
    c->who = who;
    c->retry = retry;
    if (jo) {
        c->jo = *jo;
        c->has_jo = 1;
    }
    atomic_init(&c->reconnected, 0);
}

int ps_natsconn_open(ps_natsconn_t *c, char *err, size_t errlen)
{
    natsStatus s;
    int rc;

    if (errlen)
        err[0] = '\0';
    if (!c->nc && (rc = connect_once(c, err, errlen)) != PS_OK)
        return rc;
    if (!c->js && (s = natsConnection_JetStream(&c->js, c->nc, c->has_jo ? &c->jo : NULL)) != NATS_OK) {
        snprintf(err, errlen, "JetStream context: %s", natsStatus_GetText(s));
        c->js = NULL;
        return PS_EIO;
    }
    return ps_natsconn_up(c) ? PS_OK : PS_EIO;
}

int ps_natsconn_reconnected(ps_natsconn_t *c)
{
    return atomic_exchange(&c->reconnected, 0);
}

int ps_natsconn_up(ps_natsconn_t *c)
{
    return c->nc && natsConnection_Status(c->nc) == NATS_CONN_STATUS_CONNECTED;
}

void ps_natsconn_drop_js(ps_natsconn_t *c)
{
    jsCtx_Destroy(c->js);
    c->js = NULL;
}

void ps_natsconn_close(ps_natsconn_t *c)
{
    ps_natsconn_drop_js(c);
    natsConnection_Destroy(c->nc);
    c->nc = NULL;
}

void ps_natsconn_shutdown(void)
{
    nats_Close();
}
