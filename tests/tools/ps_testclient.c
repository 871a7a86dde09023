/* ps_testclient.c - a TLS client for protocol tests: sends chosen bytes.
 *
 * usage: ps_testclient --server HOST:PORT --ca F --cert F --key F [--server-name N]
 *                      [--hello] [--hex HEX]... [--wait MS]
 *
 * Connects with mutual TLS, optionally sends a valid Hello, then each --hex
 * argument as raw bytes, and prints every frame the server sends back
 * ("frame TYPE req=N [error: MESSAGE]").  Ends with "closed" when the server
 * closes the connection or "open" when it is still open after --wait ms
 * (default 2000).  Exit status 0 unless the client itself failed; the test
 * script judges the output.
 */
#include "err.h"
#include "frame.h"
#include "ids.h"
#include "msg.h"
#include "stream.h"
#include "tls.h"

#include "wire.pb-c.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct tc {
    uv_loop_t loop;
    ps_stream_t s;
    uv_timer_t wait;
    int hello;
    char **hex;
    int nhex;
    uint64_t wait_ms;
    int closed_by_peer;
    int handshake_failed;
} tc_t;

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* "rep:N:HEX" repeats HEX N times, so tests can send large inputs. */
static void send_hex(tc_t *t, const char *h)
{
    ps_buf_t b;
    long rep = 1;
    ps_buf_init(&b);
    if (strncmp(h, "rep:", 4) == 0) {
        char *end;
        rep = strtol(h + 4, &end, 10);
        h = end + 1;
    }
    for (long r = 0; r < rep; r++)
        for (const char *p = h; p[0] && p[1]; p += 2) {
            uint8_t byte = (uint8_t)(hexval(p[0]) << 4 | hexval(p[1]));
            ps_buf_append(&b, &byte, 1);
        }
    ps_stream_write(&t->s, ps_buf_head(&b), ps_buf_size(&b));
    ps_buf_free(&b);
}

static void on_wait(uv_timer_t *w)
{
    tc_t *t = w->data;
    printf("open\n");
    ps_stream_close(&t->s);
    uv_close((uv_handle_t *)w, NULL);
}

static void on_handshake(ps_stream_t *s, int status)
{
    tc_t *t = s->data;
    if (status) {
        printf("handshake failed: %s\n", ps_tls_last_error(s->tls));
        t->handshake_failed = 1;
        return;
    }
    printf("handshake ok\n");
    if (t->hello) {
        Popsync__Hello h = POPSYNC__HELLO__INIT;
        uint8_t node[PS_ID_LEN];
        ps_buf_t b;
        ps_random(node, sizeof(node));
        h.protocol_version = 1;
        h.node.data = node;
        h.node.len = PS_ID_LEN;
        ps_buf_init(&b);
        ps_msg_pack_frame(&b, PS_MSG_HELLO, 1, &h.base);
        ps_stream_write(s, ps_buf_head(&b), ps_buf_size(&b));
        ps_buf_free(&b);
    }
    for (int i = 0; i < t->nhex; i++)
        send_hex(t, t->hex[i]);
    uv_timer_start(&t->wait, on_wait, t->wait_ms, 0);
}

static void on_read(ps_stream_t *s)
{
    ps_buf_t *in = &s->plain_in;
    for (;;) {
        ps_frame_t f;
        size_t used;
        int rc = ps_frame_decode(ps_buf_head(in), ps_buf_size(in), 64u << 20, &f, &used);
        if (rc)
            break;
        printf("frame %s req=%u", ps_frame_type_name(f.type), f.request_id);
        if (f.type == PS_MSG_ERROR) {
            ProtobufCMessage *m = NULL;
            if (ps_msg_unpack(f.type, f.body, f.body_len, &m) == PS_OK) {
                Popsync__Error *e = (Popsync__Error *)m;
                printf(" error%s: %s", e->fatal ? " (fatal)" : "", e->message);
                ps_msg_free(m);
            }
        }
        printf("\n");
        ps_buf_consume(in, used);
    }
    fflush(stdout);
}

static void on_error(ps_stream_t *s, int err)
{
    tc_t *t = s->data;
    if (!t->handshake_failed && err != PS_ETLS)
        printf("closed\n");
    else if (err == PS_ETLS && !t->handshake_failed)
        printf("closed (tls: %s)\n", ps_tls_last_error(s->tls));
    else
        printf("closed\n");
    if (!uv_is_closing((uv_handle_t *)&t->wait))
        uv_close((uv_handle_t *)&t->wait, NULL);
    ps_stream_close(s);
}

static const ps_stream_cbs_t cbs = {on_handshake, on_read, on_error, NULL, NULL};

int main(int argc, char **argv)
{
    const char *server = NULL, *ca = NULL, *cert = NULL, *key = NULL, *sname = "popsyncd";
    char *hex[64];
    tc_t t;
    ps_tls_conf_t *conf = NULL;
    ps_tls_t *tls = NULL;
    struct sockaddr_in addr;
    char err[512], host[64];
    int port;

    memset(&t, 0, sizeof(t));
    t.hex = hex;
    t.wait_ms = 2000;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--hello")) { t.hello = 1; continue; }
        if (!v) break;
        if (!strcmp(a, "--server")) server = v;
        else if (!strcmp(a, "--ca")) ca = v;
        else if (!strcmp(a, "--cert")) cert = v;
        else if (!strcmp(a, "--key")) key = v;
        else if (!strcmp(a, "--server-name")) sname = v;
        else if (!strcmp(a, "--hex") && t.nhex < 64) hex[t.nhex++] = (char *)v;
        else if (!strcmp(a, "--wait")) t.wait_ms = strtoull(v, NULL, 10);
        else { fprintf(stderr, "unknown option %s\n", a); return 2; }
        i++;
    }
    if (!server || !ca || !cert || !key || sscanf(server, "%63[^:]:%d", host, &port) != 2) {
        fprintf(stderr, "usage: ps_testclient --server HOST:PORT --ca F --cert F --key F [--hello] [--hex HEX]...\n");
        return 2;
    }
    if (ps_tls_conf_new(&conf, PS_TLS_CLIENT, ca, cert, key, NULL, err, sizeof(err))) {
        fprintf(stderr, "tls: %s\n", err);
        return 1;
    }
    ps_tls_new(&tls, conf, sname);
    uv_loop_init(&t.loop);
    uv_timer_init(&t.loop, &t.wait);
    t.wait.data = &t;
    ps_stream_init(&t.s, &t.loop, tls, &cbs, &t);
    ps_stream_set_timeouts(&t.s, 10000, 0);
    uv_ip4_addr(host, port, &addr);
    ps_stream_connect(&t.s, (struct sockaddr *)&addr);
    uv_run(&t.loop, UV_RUN_DEFAULT);
    uv_loop_close(&t.loop);
    ps_tls_conf_free(conf);
    return 0;
}
