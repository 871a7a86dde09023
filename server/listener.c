/* listener.c - the listening socket. */
#include "server.h"
#include "err.h"
#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>

/* A whole district reconnecting at once (after a restart) must not have its
 * SYNs dropped and retried seconds later: the kernel caps this at
 * net.core.somaxconn (4096 on current kernels). */
#define PS_LISTEN_BACKLOG 4096

static void on_connection(uv_stream_t *l, int status)
{
    ps_server_t *srv = l->data;
    if (status < 0) {
        PS_WARN("listen", "accept failed: %s", uv_strerror(status));
        return;
    }
    ps_conn_accept(srv);
}

/* Splits "HOST:PORT" or "[V6]:PORT". */
static int parse_addr(const char *s, struct sockaddr_storage *ss)
{
    char host[128];
    const char *colon;
    long port;
    char *end;
    if (s[0] == '[') {
        const char *rb = strchr(s, ']');
        if (!rb || rb[1] != ':' || (size_t)(rb - s - 1) >= sizeof(host))
            return PS_EINVAL;
        memcpy(host, s + 1, (size_t)(rb - s - 1));
        host[rb - s - 1] = '\0';
        colon = rb + 1;
    } else {
        colon = strrchr(s, ':');
        if (!colon || (size_t)(colon - s) >= sizeof(host))
            return PS_EINVAL;
        memcpy(host, s, (size_t)(colon - s));
        host[colon - s] = '\0';
    }
    port = strtol(colon + 1, &end, 10);
    if (*end || port < 0 || port > 65535)
        return PS_EINVAL;
    if (uv_ip4_addr(host, (int)port, (struct sockaddr_in *)ss) == 0)
        return PS_OK;
    if (uv_ip6_addr(host, (int)port, (struct sockaddr_in6 *)ss) == 0)
        return PS_OK;
    return PS_EINVAL;
}

int ps_listener_start(ps_server_t *srv, char *err, size_t errlen)
{
    struct sockaddr_storage ss;
    int r;
    if (parse_addr(srv->opts.listen, &ss)) {
        snprintf(err, errlen, "bad listen address '%s' (want HOST:PORT)", srv->opts.listen);
        return PS_EINVAL;
    }
    ps_conn_sweep_start(srv);
    uv_tcp_init(srv->loop, &srv->listener);
    srv->listener.data = srv;
    if ((r = uv_tcp_bind(&srv->listener, (struct sockaddr *)&ss, 0)) ||
        (r = uv_listen((uv_stream_t *)&srv->listener, PS_LISTEN_BACKLOG, on_connection))) {
        snprintf(err, errlen, "cannot listen on %s: %s", srv->opts.listen, uv_strerror(r));
        return PS_EIO;
    }
    if (srv->opts.port_file) {
        struct sockaddr_storage bound;
        int len = sizeof(bound);
        FILE *f;
        char tmp[4096];
        uv_tcp_getsockname(&srv->listener, (struct sockaddr *)&bound, &len);
        /* Write then rename, so a reader never sees a half-written file. */
        snprintf(tmp, sizeof(tmp), "%s.tmp", srv->opts.port_file);
        f = fopen(tmp, "w");
        if (!f || fprintf(f, "%d\n", ntohs(((struct sockaddr_in *)&bound)->sin_port)) < 0 || fclose(f) != 0 ||
            rename(tmp, srv->opts.port_file) != 0) {
            snprintf(err, errlen, "cannot write %s", srv->opts.port_file);
            return PS_EIO;
        }
    }
    return PS_OK;
}

void ps_listener_stop(ps_server_t *srv)
{
    if (!uv_is_closing((uv_handle_t *)&srv->listener))
        uv_close((uv_handle_t *)&srv->listener, NULL);
    ps_conn_sweep_stop(srv);
}

int ps_listen_addr_parse(const char *s, struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof(*ss));
    return parse_addr(s, ss);
}
