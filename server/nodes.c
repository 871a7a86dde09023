/* nodes.c - who has synced: the in-memory node table.
 *
 * Owns: ps_nodes_t, a table on the loop thread of every node seen since
 * start (last seen, its cursor as last known, its certificate's name, role
 * and org unit), updated on Hello, Pull and each PullBatch sent.  Changed
 * entries are persisted by commit.c (ps_commit_flush_nodes) every few
 * seconds in a transaction of their own, so a Hello never takes the write
 * lock.  The metrics endpoint reads the table for popsync_pull_lag.
 *
 * Threads: the table is touched only on the loop thread; the
 * NodeStatusRequest job (server/sync.c) gets a copy of it.
 */
#include "server.h"
#include "err.h"
#include "log.h"
#include "vec.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FLUSH_EVERY_MS 5000

struct ps_nodes {
    ps_node_info_t *v;
    uint8_t *dirty;
    size_t n, cap;
    uv_timer_t timer;
    int timer_started;
};

static ps_node_info_t *node_get(ps_nodes_t *t, const uint8_t node[PS_ID_LEN], size_t *idx)
{
    for (size_t i = 0; i < t->n; i++)
        if (memcmp(t->v[i].node, node, PS_ID_LEN) == 0) {
            *idx = i;
            return &t->v[i];
        }
    if (t->n == t->cap) {
        size_t ncap = t->cap;
        if (PS_VEC_ROOM(t->v, t->n, ncap, 64) || PS_VEC_RESIZE(t->dirty, ncap))
            return NULL;
        t->cap = ncap;
    }
    *idx = t->n;
    memset(&t->v[t->n], 0, sizeof(t->v[0]));
    memcpy(t->v[t->n].node, node, PS_ID_LEN);
    t->dirty[t->n] = 0;
    return &t->v[t->n++];
}

static void on_flush_timer(uv_timer_t *timer)
{
    ps_commit_flush_nodes(timer->data);
}

int ps_nodes_start(ps_server_t *srv)
{
    ps_nodes_t *t = calloc(1, sizeof(*t));
    if (!t)
        return PS_ENOMEM;
    srv->nodes = t;
    uv_timer_init(srv->loop, &t->timer);
    t->timer.data = srv;
    uv_timer_start(&t->timer, on_flush_timer, FLUSH_EVERY_MS, FLUSH_EVERY_MS);
    t->timer_started = 1;
    return PS_OK;
}

void ps_nodes_stop(ps_server_t *srv)
{
    /* The last changes are written by the shutdown's ps_commit_flush_nodes. */
    if (srv->nodes && srv->nodes->timer_started) {
        srv->nodes->timer_started = 0;
        uv_close((uv_handle_t *)&srv->nodes->timer, NULL);
    }
}

void ps_nodes_free(ps_server_t *srv)
{
    if (!srv->nodes)
        return;
    free(srv->nodes->v);
    free(srv->nodes->dirty);
    free(srv->nodes);
    srv->nodes = NULL;
}

void ps_nodes_seen(ps_server_t *srv, const uint8_t node[PS_ID_LEN], const ps_peer_t *peer, uint64_t cursor)
{
    ps_node_info_t *e;
    size_t i;
    if (!srv->nodes || !(e = node_get(srv->nodes, node, &i)))
        return; /* bookkeeping only: out of memory loses a status line, not data */
    e->last_seen_ms = ps_now_ms();
    e->cursor = cursor;
    snprintf(e->name, sizeof(e->name), "%s", peer->name);
    snprintf(e->role, sizeof(e->role), "%s", peer->role_name);
    snprintf(e->orgunit, sizeof(e->orgunit), "%s", peer->orgunit);
    srv->nodes->dirty[i] = 1;
}

void ps_nodes_pulled(ps_server_t *srv, const uint8_t node[PS_ID_LEN], uint64_t cursor)
{
    ps_node_info_t *e;
    size_t idx;

    if (!srv->nodes || cursor == 0 || !(e = node_get(srv->nodes, node, &idx)))
        return;
    e->last_seen_ms = ps_now_ms();
    e->cursor = cursor;
    srv->nodes->dirty[idx] = 1;
}

size_t ps_nodes_take_dirty(ps_server_t *srv, ps_node_info_t **out)
{
    ps_nodes_t *t = srv->nodes;
    size_t n = 0, k = 0;
    *out = NULL;
    if (!t)
        return 0;
    for (size_t i = 0; i < t->n; i++)
        n += t->dirty[i] != 0;
    if (n == 0 || !(*out = malloc(n * sizeof(**out))))
        return 0;
    for (size_t i = 0; i < t->n; i++)
        if (t->dirty[i]) {
            (*out)[k++] = t->v[i];
            t->dirty[i] = 0;
        }
    return n;
}

void ps_nodes_redirty(ps_server_t *srv, const ps_node_info_t *v, size_t n)
{
    size_t idx;
    for (size_t i = 0; srv->nodes && i < n; i++)
        if (node_get(srv->nodes, v[i].node, &idx))
            srv->nodes->dirty[idx] = 1;
}

void ps_nodes_foreach(ps_server_t *srv, void (*fn)(const ps_node_info_t *n, void *arg), void *arg)
{
    for (size_t i = 0; srv->nodes && i < srv->nodes->n; i++)
        fn(&srv->nodes->v[i], arg);
}

int ps_nodes_copy(ps_server_t *srv, ps_node_info_t **out, size_t *n)
{
    ps_nodes_t *t = srv->nodes;
    *out = NULL;
    *n = 0;
    if (!t || !t->n)
        return PS_OK;
    if (!(*out = malloc(t->n * sizeof(**out))))
        return PS_ENOMEM;
    memcpy(*out, t->v, t->n * sizeof(**out));
    *n = t->n;
    return PS_OK;
}
