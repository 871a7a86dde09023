/* ui_town_sync.c - the sync button, conflicts and refused changes of
 * `popsync ui` (ui_town.h).
 *
 * A sync runs the client's sync (sync.h) in a worker thread that holds the
 * cache lock for the whole sync: pages asking for the cache meanwhile are
 * answered "busy" and retry; the status request needs no cache.  Each sync
 * also asks the server for the open conflicts in this cache's scope, kept
 * in memory for the conflicts page (as `popsync conflicts list`).
 * Resolving a conflict stores the resolving change (as `popsync conflicts
 * resolve`, with the field-by-field merge the clerk made), to be sent by the
 * next sync; correcting a refused change puts it back into the outbox (as
 * `popsync refused edit`).
 */
#include "ui_town.h"

#include "cli.h"
#include "err.h"
#include "i18n.h"
#include "ids.h"
#include "policy.h"
#include "record_fmt.h"
#include "sync.h"
#include "ui_reach.h"
#include "validate.h"
#include "vctx.h"
#include "wire.pb-c.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

typedef struct syncw {
    pthread_mutex_t mu; /* guards everything below */
    pthread_t th;
    int joinable, running, ran, rc;
    uint64_t started_ms, finished_ms;
    char err[512];
    ps_sync_stats_t st;
    ps_sync_progress_t prog; /* where the running (or last) sync is */
    Popsync__Conflict **cf; /* open conflicts of the last sync (copies) */
    size_t ncf;
    ps_ui_t *ui;
} syncw_t;

static uint64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void free_conflicts(Popsync__Conflict **cf, size_t n)
{
    for (size_t i = 0; i < n; i++)
        popsync__conflict__free_unpacked(cf[i], NULL);
    free(cf);
}

static void syncw_free(void *p)
{
    syncw_t *w = p;

    if (!w)
        return;
    if (w->joinable)
        pthread_join(w->th, NULL);
    free_conflicts(w->cf, w->ncf);
    pthread_mutex_destroy(&w->mu);
    free(w);
}

static syncw_t *syncw_of(ps_ui_t *ui)
{
    syncw_t *w = ps_ui_state(ui, PS_UI_SLOT_SYNC);

    if (!w && (w = calloc(1, sizeof(*w)))) {
        pthread_mutex_init(&w->mu, NULL);
        w->ui = ui;
        ps_ui_set_state(ui, PS_UI_SLOT_SYNC, w, syncw_free);
    }
    return w;
}

static Popsync__Conflict *conflict_copy(const Popsync__Conflict *cf)
{
    size_t sz = protobuf_c_message_get_packed_size(&cf->base);
    uint8_t *buf = malloc(sz ? sz : 1);
    Popsync__Conflict *out = NULL;

    if (buf) {
        protobuf_c_message_pack(&cf->base, buf);
        out = popsync__conflict__unpack(NULL, sz, buf);
        free(buf);
    }
    return out;
}

typedef struct got {
    Popsync__Conflict **cf;
    size_t n;
} got_t;

static void on_conflicts(const Popsync__ConflictListResult *res, void *arg)
{
    got_t *g = arg;
    Popsync__Conflict **v = realloc(g->cf, (g->n + res->n_conflicts + 1) * sizeof(*v));

    if (!v)
        return;
    g->cf = v;
    for (size_t i = 0; i < res->n_conflicts; i++)
        if (!res->conflicts[i]->resolved && (v[g->n] = conflict_copy(res->conflicts[i])))
            g->n++;
}

/* The sync's progress (on the sync worker), for the status request. */
static void on_progress(const ps_sync_progress_t *p, void *arg)
{
    syncw_t *w = arg;
    pthread_mutex_lock(&w->mu);
    w->prog = *p;
    pthread_mutex_unlock(&w->mu);
}

static void *sync_main(void *arg)
{
    syncw_t *w = arg;
    ps_sync_stats_t st;
    got_t g = {NULL, 0};
    char err[512] = "";
    int rc, lock;

    memset(&st, 0, sizeof(st));
    /* One sync of a cache at a time, with the CLI's too (DIR/sync.lock). */
    lock = ps_cli_sync_lock(ps_ui_data_dir(w->ui), "ui sync");
    ps_ui_cache_lock(w->ui);
    if (lock < 0) {
        rc = PS_EIO;
        snprintf(err, sizeof(err), "cannot take this cache's sync lock");
    } else {
        rc = ps_sync_with_progress(ps_ui_cache_of(w->ui), 0, 0, 30000, &st, on_conflicts, &g, on_progress, w, err,
                                   sizeof(err));
        close(lock);
    }
    if (rc == PS_OK) { /* the count `popsync status` shows */
        ps_cache_set_conflicts_open(ps_ui_cache_of(w->ui), g.n);
        ps_ui_reach_answered(w->ui); /* the pages may ask the server again at once */
    }
    ps_ui_cache_unlock(w->ui);
    pthread_mutex_lock(&w->mu);
    w->running = 0;
    w->ran = 1;
    w->rc = rc;
    w->st = st;
    w->finished_ms = now_ms();
    snprintf(w->err, sizeof(w->err), "%s", rc ? err : "");
    if (rc == PS_OK) {
        free_conflicts(w->cf, w->ncf);
        w->cf = g.cf;
        w->ncf = g.n;
    } else {
        free_conflicts(g.cf, g.n);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

/* POST /api/sync: starts a sync unless one runs. */
static int h_sync_start(ps_ui_req_t *rq)
{
    syncw_t *w = syncw_of(ps_ui_server(rq));
    int started = 0;

    if (!w)
        return ps_ui_reply_error(rq, 500, "out of memory", NULL);
    pthread_mutex_lock(&w->mu);
    if (!w->running) {
        if (w->joinable)
            pthread_join(w->th, NULL);
        w->joinable = 0;
        w->running = 1;
        w->started_ms = now_ms();
        memset(&w->prog, 0, sizeof(w->prog));
        if (pthread_create(&w->th, NULL, sync_main, w) == 0)
            w->joinable = started = 1;
        else
            w->running = 0;
    }
    pthread_mutex_unlock(&w->mu);
    return ps_ui_reply_json(rq, 202, json_pack("{s:b}", "started", started));
}

/* {pushed, push_total, pulled, pull_total, percent}: the changes sent of
 * those waiting at the start, and the server's feed read of what it had
 * (head minus our cursor at the start); the percentage of both together,
 * 100 only once the sync has completed. */
static json_t *progress_json(const syncw_t *w)
{
    const ps_sync_progress_t *p = &w->prog;
    uint64_t done = p->pushed + p->pulled, total = p->push_total + p->pull_total;
    json_int_t pct = !w->running && w->ran && w->rc == PS_OK ? 100
                     : total ? (json_int_t)(done >= total ? 99 : done * 100 / total)
                             : 0;
    return json_pack("{s:I,s:I,s:I,s:I,s:I}", "pushed", (json_int_t)p->pushed, "push_total",
                     (json_int_t)p->push_total, "pulled", (json_int_t)p->pulled, "pull_total",
                     (json_int_t)p->pull_total, "percent", pct);
}

static json_t *stats_json(const ps_sync_stats_t *s)
{
    return json_pack("{s:I,s:I,s:I,s:I,s:I,s:I}", "accepted", (json_int_t)s->accepted, "rejected",
                     (json_int_t)s->rejected, "conflicts", (json_int_t)s->conflicts, "pulled", (json_int_t)s->pulled,
                     "merged_conflicts", (json_int_t)s->merged_conflicts, "conflicts_lost",
                     (json_int_t)s->conflicts_lost);
}

/* GET /api/sync: running or not, the last sync's outcome, and (when the
 * cache is free) last sync time, changes waiting and refused. */
static int h_sync_status(ps_ui_req_t *rq)
{
    ps_ui_t *ui = ps_ui_server(rq);
    syncw_t *w = syncw_of(ui);
    json_t *o = json_object();
    char t[600];

    if (!w)
        return ps_ui_reply_error(rq, 500, "out of memory", NULL);
    pthread_mutex_lock(&w->mu);
    json_object_set_new(o, "running", json_boolean(w->running));
    if (w->running || w->ran)
        json_object_set_new(o, "progress", progress_json(w));
    if (w->running)
        json_object_set_new(o, "elapsed_ms", ps_json_u64(now_ms() - w->started_ms));
    if (w->ran)
        json_object_set_new(o, "last", json_pack("{s:b,s:s,s:o,s:o,s:I}", "ok", w->rc == PS_OK, "error",
                                                 ps_ui_zh(rq) ? ps_i18n_reason(w->err, t, sizeof(t)) : w->err,
                                                 "stats", stats_json(&w->st), "finished_ms",
                                                 ps_json_u64(w->finished_ms), "open_conflicts", (json_int_t)w->ncf));
    pthread_mutex_unlock(&w->mu);
    if (ps_ui_cache_trylock(ui) == 0) {
        ps_cache_t *c = ps_ui_cache_of(ui);
        const ps_cache_meta_t *m = ps_cache_meta(c);
        uint64_t out = 0, ref = 0;
        ps_cache_outbox_count(c, &out);
        ps_cache_refused_count(c, &ref);
        json_object_set_new(o, "pending", ps_json_u64(out));
        json_object_set_new(o, "refused", ps_json_u64(ref));
        json_object_set_new(o, "last_sync_ms", ps_json_u64(m->last_sync_ms));
        json_object_set_new(o, "last_attempt_ms", ps_json_u64(m->last_attempt_ms));
        json_object_set_new(o, "last_error", json_string(m->last_error));
        ps_ui_cache_unlock(ui);
    }
    return ps_ui_reply_json(rq, 200, o);
}

int ps_ui_sync_conflict_of(ps_ui_t *ui, const uint8_t *id, char cid[37])
{
    syncw_t *w = ps_ui_state(ui, PS_UI_SLOT_SYNC);
    int found = 0;

    if (!w)
        return 0;
    pthread_mutex_lock(&w->mu);
    for (size_t i = 0; i < w->ncf && !found; i++)
        if (w->cf[i]->record_id.len == PS_ID_LEN && memcmp(w->cf[i]->record_id.data, id, PS_ID_LEN) == 0 &&
            w->cf[i]->id.len == PS_ID_LEN) {
            ps_uuid_format(w->cf[i]->id.data, cid);
            found = 1;
        }
    pthread_mutex_unlock(&w->mu);
    return found;
}

/* --- conflicts ------------------------------------------------------------------------- */

/* Which side holds this cache's own edit: "lost", "kept" or NULL. */
static const char *my_side(const Popsync__Conflict *cf, const uint8_t *node)
{
    if (cf->lost_node.len == 16 && memcmp(cf->lost_node.data, node, 16) == 0)
        return "lost";
    if (cf->kept_node.len == 16 && memcmp(cf->kept_node.data, node, 16) == 0)
        return "kept";
    return NULL;
}

static void side_text(const Popsync__Record *r, const char *field, char *out, size_t n)
{
    out[0] = '\0';
    if (!r)
        return;
    if (strcmp(field, "deleted") == 0)
        snprintf(out, n, "%s", r->deleted ? "true" : "false");
    else if (strcmp(field, "*") != 0)
        ps_record_get_text(r, field, out, n);
}

static json_t *conflict_json(ps_ui_req_t *rq, const Popsync__Conflict *cf)
{
    const char *side = my_side(cf, ps_cache_meta(ps_ui_cache(rq))->node);
    char cid[PS_UUID_STR] = "", rid[PS_UUID_STR] = "";
    json_t *fields = json_array();

    if (cf->id.len == 16)
        ps_uuid_format(cf->id.data, cid);
    if (cf->record_id.len == 16)
        ps_uuid_format(cf->record_id.data, rid);
    for (size_t i = 0; i < cf->n_fields; i++) {
        char k[1024], l[1024];
        side_text(cf->kept, cf->fields[i], k, sizeof(k));
        side_text(cf->lost, cf->fields[i], l, sizeof(l));
        json_array_append_new(fields, json_pack("{s:s,s:s,s:s}", "field", cf->fields[i], "kept", k, "lost", l));
    }
    char why[512];
    const char *reason = cf->reason ? cf->reason : "";

    if (ps_ui_zh(rq))
        reason = ps_i18n_reason(reason, why, sizeof(why));
    return json_pack("{s:s,s:s,s:s,s:s,s:o,s:s,s:o,s:o,s:o,s:o}", "id", cid, "record_id", rid, "kind",
                     ps_kind_name(cf->kind) ? ps_kind_name(cf->kind) : "", "orgunit", cf->orgunit ? cf->orgunit : "",
                     "fields", fields, "reason", reason, "created_ms",
                     ps_json_u64(cf->created_ms), "mine", side ? json_string(side) : json_null(), "kept",
                     cf->kept ? ps_ui_record_json(rq, cf->kept) : json_null(), "lost",
                     cf->lost ? ps_ui_record_json(rq, cf->lost) : json_null());
}

/* GET /api/conflicts: the open conflicts the last sync listed. */
static int h_conflicts(ps_ui_req_t *rq)
{
    syncw_t *w = syncw_of(ps_ui_server(rq));
    json_t *arr = json_array();
    int ran;

    if (!w)
        return ps_ui_reply_error(rq, 500, "out of memory", NULL);
    pthread_mutex_lock(&w->mu);
    ran = w->ran && w->rc == PS_OK;
    for (size_t i = 0; i < w->ncf; i++)
        json_array_append_new(arr, conflict_json(rq, w->cf[i]));
    pthread_mutex_unlock(&w->mu);
    return ps_ui_reply_json(rq, 200, json_pack("{s:o,s:b}", "conflicts", arr, "listed", ran));
}

static Popsync__Record *record_copy(const Popsync__Record *r)
{
    size_t sz = protobuf_c_message_get_packed_size(&r->base);
    uint8_t *buf = malloc(sz ? sz : 1);
    Popsync__Record *out = NULL;

    if (buf) {
        protobuf_c_message_pack(&r->base, buf);
        out = popsync__record__unpack(NULL, sz, buf);
        free(buf);
    }
    return out;
}

/* The conflict cid (a copy), or NULL. */
static Popsync__Conflict *conflict_find(ps_ui_t *ui, const uint8_t *cid)
{
    syncw_t *w = syncw_of(ui);
    Popsync__Conflict *out = NULL;

    if (!w)
        return NULL;
    pthread_mutex_lock(&w->mu);
    for (size_t i = 0; i < w->ncf && !out; i++)
        if (w->cf[i]->id.len == 16 && memcmp(w->cf[i]->id.data, cid, 16) == 0)
            out = conflict_copy(w->cf[i]);
    pthread_mutex_unlock(&w->mu);
    return out;
}

static void errs_add(ps_ui_req_t *rq, json_t *errs, const char *field, const char *en)
{
    char t[512];

    json_array_append_new(errs, json_pack("{s:s,s:s}", "field", field, "reason",
                                          ps_ui_zh(rq) ? ps_i18n_reason(en, t, sizeof(t)) : en));
}

/* The resolving version: our copy (else the kept one) with the values the
 * clerk chose field by field; "deleted" chooses whether it stays deleted;
 * take "lost" first takes the losing version whole (a "*" conflict). */
static Popsync__Record *merged(ps_ui_req_t *rq, const Popsync__Conflict *cf, json_t *b, json_t *errs)
{
    const char *take = json_string_value(json_object_get(b, "take"));
    json_t *values = json_object_get(b, "values"), *v;
    Popsync__Record *r = NULL;
    const char *k;
    char err[256];

    if (ps_cache_get(ps_ui_cache(rq), cf->record_id.data, &r) != PS_OK)
        r = record_copy(cf->kept);
    if (r && take && strcmp(take, "lost") == 0 && cf->lost) {
        ps_record_free(r);
        r = record_copy(cf->lost);
        if (r && cf->kept && cf->kept->rev) { /* based on the version the record has */
            Popsync__Record *k2 = record_copy(cf->kept);
            if (k2) {
                Popsync__Rev *tmp = r->rev;
                r->rev = k2->rev;
                k2->rev = tmp;
                ps_record_free(k2);
            }
        }
    }
    if (!r)
        return NULL;
    json_object_foreach(values, k, v) {
        const char *s = json_string_value(v);
        if (!s)
            continue;
        if (strcmp(k, "deleted") == 0)
            r->deleted = strcmp(s, "true") == 0;
        else if (ps_record_set(r, k, s, err, sizeof(err)) != PS_OK)
            errs_add(rq, errs, k, err);
    }
    return r;
}

/* POST /api/conflicts/resolve {id, values{field: value}, take?}. */
static int h_resolve(ps_ui_req_t *rq)
{
    json_t *b = ps_ui_body_json(rq), *errs = json_array();
    const char *idt = b ? json_string_value(json_object_get(b, "id")) : NULL;
    ps_cache_t *c = ps_ui_cache(rq);
    const ps_cache_meta_t *m = ps_cache_meta(c);
    Popsync__Conflict *cf = NULL;
    Popsync__Record *r = NULL, *local = NULL;
    uint8_t cid[16];
    ps_client_vctx_t vc;
    ps_verrs_t v;
    ps_orgunits_t *tree;
    ps_peer_t me;
    ps_write_t may;
    int rc;

    if (!idt || ps_uuid_parse(idt, cid) != PS_OK || !(cf = conflict_find(ps_ui_server(rq), cid)) || !cf->kept ||
        cf->record_id.len != 16) {
        json_decref(errs);
        popsync__conflict__free_unpacked(cf, NULL);
        return ps_ui_reply_error(rq, 404, "no such open conflict: sync again to refresh the list",
                                 "没有这个未解决的冲突：请再同步一次以刷新列表");
    }
    /* The record may have left this cache's scope since its edit. */
    ps_policy_peer(&me, m->role, m->orgunit);
    tree = ps_client_orgunits(c);
    may = ps_policy_may_write(tree, &me, cf->kept->orgunit,
                              cf->kept->body_case == POPSYNC__RECORD__BODY_MIGRATION && cf->kept->migration
                                  ? cf->kept->migration->other_place_code
                                  : NULL,
                              cf->kept->orgunit);
    ps_orgunits_free(tree);
    if (may == PS_WRITE_NO) {
        rc = ps_ui_reply_error(rq, 403, "the record is now outside this cache's scope: its unit or the district can settle it",
                               "记录已不在本机范围内：请由其所属单位或区里解决");
        goto out;
    }
    if (!(r = merged(rq, cf, b, errs)))
        goto oom;
    /* The other place of a migration resolves as it edits: only its dates
     * (the form's rule, next to the field), not first refused at sync. */
    if (may == PS_WRITE_OTHER_PLACE && json_array_size(errs) == 0)
        ps_ui_other_place_errors(rq, r, cf->kept, errs);
    if (json_array_size(errs) == 0) {
        memset(&v, 0, sizeof(v));
        ps_client_vctx_init(&vc, c);
        vc.ctx.current = cf->kept;
        ps_validate_record(r, &vc.ctx, &v);
        ps_client_vctx_free(&vc);
        for (size_t i = 0; i < v.n && i < PS_VERR_MAX; i++)
            errs_add(rq, errs, v.e[i].field, v.e[i].reason);
    }
    if (json_array_size(errs)) {
        rc = ps_ui_reply_json(rq, 200, json_pack("{s:O}", "errors", errs));
        goto out;
    }
    /* The cache whose edit the record kept, keeping it: nothing to send
     * (as `conflicts resolve --keep mine`); the other side is told. */
    if (ps_cache_get(c, cf->record_id.data, &local) == PS_OK && ps_record_same_content(r, local) &&
        my_side(cf, m->node) && strcmp(my_side(cf, m->node), "kept") == 0) {
        rc = ps_ui_reply_json(rq, 200, json_pack("{s:[],s:b}", "errors", "unchanged", 1));
        goto out;
    }
    if ((rc = ps_cache_put_resolution(c, r, cid)) != PS_OK) {
        rc = ps_ui_reply_error(rq, 500, ps_strerror(rc), "无法保存");
        goto out;
    }
    rc = ps_ui_reply_json(rq, 200, json_pack("{s:[],s:b}", "errors", "stored", 1));
    goto out;
oom:
    rc = ps_ui_reply_error(rq, 500, "out of memory", NULL);
out:
    json_decref(errs);
    ps_record_free(r);
    ps_record_free(local);
    popsync__conflict__free_unpacked(cf, NULL);
    return rc;
}

/* --- refused changes --------------------------------------------------------------------- */

typedef struct refwalk {
    ps_ui_req_t *rq;
    json_t *arr;         /* list: every entry */
    const uint8_t *want; /* one record: its latest entry below */
    Popsync__Record *latest;
    Popsync__Rev base;
    uint8_t base_node[16], resolves[16];
    int has_resolves, status;
} refwalk_t;

static int ref_one(const Popsync__ChangeResult *res, const Popsync__Change *ch, void *arg)
{
    refwalk_t *w = arg;

    if (!ch->record || ch->record->id.len != PS_ID_LEN)
        return 0;
    if (w->arr) {
        json_t *errs = json_array();
        for (size_t i = 0; i < res->n_errors; i++)
            errs_add(w->rq, errs, res->errors[i]->field ? res->errors[i]->field : "",
                     res->errors[i]->reason ? res->errors[i]->reason : "");
        json_array_append_new(
            w->arr, json_pack("{s:o,s:s,s:s,s:o}", "record", ps_ui_record_json(w->rq, ch->record), "change",
                              ch->record->deleted ? "delete" : ch->base_rev && ch->base_rev->gen ? "edit" : "new",
                              "status", res->status == POPSYNC__CHANGE_STATUS__CHANGE_STATUS_CONFLICT ? "conflict" : "rejected",
                              "errors", errs));
        return 0;
    }
    if (memcmp(ch->record->id.data, w->want, PS_ID_LEN) != 0)
        return 0;
    /* Oldest first: the last holds the clerk's latest version. */
    ps_record_free(w->latest);
    w->latest = record_copy(ch->record);
    w->status = res->status;
    popsync__rev__init(&w->base);
    if (ch->base_rev) {
        w->base.gen = ch->base_rev->gen;
        w->base.hlc = ch->base_rev->hlc;
        if (ch->base_rev->node.len == 16) {
            memcpy(w->base_node, ch->base_rev->node.data, 16);
            w->base.node.data = w->base_node;
            w->base.node.len = 16;
        }
    }
    w->has_resolves = ch->resolves.len == 16;
    if (w->has_resolves)
        memcpy(w->resolves, ch->resolves.data, 16);
    return 0;
}

/* GET /api/refused: every refused change with the server's reasons. */
static int h_refused(ps_ui_req_t *rq)
{
    refwalk_t w;
    int rc;

    memset(&w, 0, sizeof(w));
    w.rq = rq;
    w.arr = json_array();
    if ((rc = ps_cache_foreach_rejected(ps_ui_cache(rq), ref_one, &w)) != PS_OK) {
        json_decref(w.arr);
        return ps_ui_reply_error(rq, 500, ps_strerror(rc), NULL);
    }
    return ps_ui_reply_json(rq, 200, json_pack("{s:o}", "refused", w.arr));
}

/* POST /api/refused/discard {id}. */
static int h_refused_discard(ps_ui_req_t *rq)
{
    json_t *b = ps_ui_body_json(rq);
    const char *idt = b ? json_string_value(json_object_get(b, "id")) : NULL;
    uint8_t id[16];
    size_t n = 0;

    if (!idt || ps_uuid_parse(idt, id) != PS_OK || ps_cache_refused_discard(ps_ui_cache(rq), id, &n) != PS_OK)
        return ps_ui_reply_error(rq, 404, "no refused change of that record", "这条记录没有被退回的修改");
    return ps_ui_reply_json(rq, 200, json_pack("{s:I}", "discarded", (json_int_t)n));
}

/* POST /api/refused/resubmit {id, values}: the corrected change goes back
 * into the outbox (as `popsync refused edit`). */
static int h_refused_resubmit(ps_ui_req_t *rq)
{
    json_t *b = ps_ui_body_json(rq), *values = b ? json_object_get(b, "values") : NULL, *errs = json_array(), *v;
    const char *idt = b ? json_string_value(json_object_get(b, "id")) : NULL, *k;
    ps_cache_t *c = ps_ui_cache(rq);
    Popsync__Record *current = NULL;
    uint8_t id[16];
    refwalk_t w;
    size_t n = 0;
    int rc;

    memset(&w, 0, sizeof(w));
    w.rq = rq;
    w.want = id;
    if (!idt || ps_uuid_parse(idt, id) != PS_OK || ps_cache_foreach_rejected(c, ref_one, &w) != PS_OK || !w.latest) {
        rc = ps_ui_reply_error(rq, 404, "no refused change of that record", "这条记录没有被退回的修改");
        goto out;
    }
    if (w.status == POPSYNC__CHANGE_STATUS__CHANGE_STATUS_CONFLICT) {
        rc = ps_ui_reply_error(rq, 409, "the server kept this change as a conflict: settle it on the conflicts page",
                               "服务器将此修改作为冲突保留：请在“冲突”页面解决");
        goto out;
    }
    json_object_foreach(values, k, v) {
        char err[256];
        if (json_is_string(v) && ps_record_set(w.latest, k, json_string_value(v), err, sizeof(err)) != PS_OK)
            errs_add(rq, errs, k, err);
    }
    if (ps_cache_get(c, id, &current) != PS_OK)
        current = NULL;
    if (json_array_size(errs) == 0) {
        ps_client_vctx_t vc;
        ps_verrs_t ve;
        memset(&ve, 0, sizeof(ve));
        ps_client_vctx_init(&vc, c);
        vc.ctx.current = current;
        ps_validate_record(w.latest, &vc.ctx, &ve);
        ps_client_vctx_free(&vc);
        for (size_t i = 0; i < ve.n && i < PS_VERR_MAX; i++)
            errs_add(rq, errs, ve.e[i].field, ve.e[i].reason);
    }
    if (json_array_size(errs)) {
        rc = ps_ui_reply_json(rq, 200, json_pack("{s:O}", "errors", errs));
        goto out;
    }
    {
        Popsync__Rev *sent = w.latest->rev; /* the refused change's own stamp */
        w.latest->rev = w.base.gen ? &w.base : NULL;
        rc = ps_cache_refused_resubmit(c, w.latest, w.has_resolves ? w.resolves : NULL, &n);
        w.latest->rev = sent;
    }
    if (rc == PS_EEXIST)
        rc = ps_ui_reply_error(rq, 409, "this record has newer changes waiting: sync first",
                               "这条记录还有更新的修改等待同步：请先同步");
    else if (rc)
        rc = ps_ui_reply_error(rq, 500, ps_strerror(rc), "无法保存");
    else {
        rc = ps_ui_reply_json(rq, 200, json_pack("{s:[],s:b}", "errors", "stored", 1));
    }
out:
    json_decref(errs);
    ps_record_free(w.latest);
    ps_record_free(current);
    return rc;
}

static const ps_ui_route_t sync_routes[] = {
    {"POST", "/api/sync", 0, 0, h_sync_start},
    {"GET", "/api/sync", 0, 0, h_sync_status},
    {"GET", "/api/conflicts", 0, 1, h_conflicts},
    {"POST", "/api/conflicts/resolve", 0, 1, h_resolve},
    {"GET", "/api/refused", 0, 1, h_refused},
    {"POST", "/api/refused/discard", 0, 1, h_refused_discard},
    {"POST", "/api/refused/resubmit", 0, 1, h_refused_resubmit},
};

static const ps_ui_nav_t sync_nav[] = {
    {"/sync.html", "同步", "Sync", NULL},
    {"/refused.html", "被退回", "Refused", NULL},
    {"/conflicts.html", "冲突", "Conflicts", NULL},
};

const ps_ui_module_t ps_ui_town_sync_module = {"town-sync", sync_routes, sizeof(sync_routes) / sizeof(sync_routes[0]),
                                               sync_nav, sizeof(sync_nav) / sizeof(sync_nav[0])};
