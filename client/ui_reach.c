/* ui_reach.c - whether the district server answered `popsync ui` lately
 * (ui_reach.h): a page that found it silent spares the next pages the wait. */
#include "ui_reach.h"

#include "cache.h"
#include "err.h"
#include "record_fmt.h"
#include "tz.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

struct ps_ui_reach {
    pthread_mutex_t mu; /* the sync worker reports from its own thread */
    int down;           /* the last question failed, and no answer came since */
    int late;           /* ... by a timeout (else: could not connect) */
    uint64_t since_ms;  /* wall clock: the first failure since the last answer */
    uint64_t retry_ms;  /* wall clock: when the pages ask again (what they say) */
    uint64_t until;     /* monotonic ms: the hold's end (0: not held; what they do) */
};

static uint64_t clock_ms(clockid_t id)
{
    struct timespec ts;

    clock_gettime(id, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

ps_ui_reach_t *ps_ui_reach_new(void)
{
    ps_ui_reach_t *r = calloc(1, sizeof(*r));

    if (r)
        pthread_mutex_init(&r->mu, NULL);
    return r;
}

void ps_ui_reach_free(ps_ui_reach_t *r)
{
    if (!r)
        return;
    pthread_mutex_destroy(&r->mu);
    free(r);
}

int ps_ui_reach_held(const ps_ui_req_t *rq)
{
    ps_ui_reach_t *r = ps_ui_reach_of(ps_ui_server(rq));
    int held;

    pthread_mutex_lock(&r->mu);
    held = r->down && r->until && clock_ms(CLOCK_MONOTONIC) < r->until;
    pthread_mutex_unlock(&r->mu);
    return held;
}

static void answered(ps_ui_reach_t *r)
{
    pthread_mutex_lock(&r->mu);
    r->down = r->late = 0;
    r->since_ms = r->retry_ms = r->until = 0;
    pthread_mutex_unlock(&r->mu);
}

void ps_ui_reach_outcome(const ps_ui_req_t *rq, int rc, int reached)
{
    ps_ui_reach_t *r = ps_ui_reach_of(ps_ui_server(rq));
    uint32_t s = ps_cache_meta(ps_ui_cache(rq))->ui_retry_after_s;
    uint64_t hold = (uint64_t)(s ? s : PS_UI_RETRY_AFTER_DEFAULT_S) * 1000u, now = clock_ms(CLOCK_REALTIME);

    if (rc != PS_ETIMEDOUT && (reached || rc == PS_OK)) {
        answered(r);
        return;
    }
    pthread_mutex_lock(&r->mu);
    if (!r->down)
        r->since_ms = now;
    r->down = 1;
    r->late = rc == PS_ETIMEDOUT;
    r->retry_ms = now + hold;
    r->until = clock_ms(CLOCK_MONOTONIC) + hold;
    pthread_mutex_unlock(&r->mu);
}

void ps_ui_reach_answered(ps_ui_t *ui)
{
    answered(ps_ui_reach_of(ui));
}

/* HH:MM:SS of ms in the district's zone, as the pages' "as of the last
 * sync" stamps (offline.c). */
static void hms(uint64_t ms, int32_t offset_s, char out[16])
{
    time_t t = (time_t)(ms / 1000u) + offset_s;
    struct tm tm;

    if (!gmtime_r(&t, &tm) || !strftime(out, 16, "%H:%M:%S", &tm))
        snprintf(out, 16, "?");
}

void ps_ui_reach_note(const ps_ui_req_t *rq, char *out, size_t len)
{
    ps_ui_reach_t *r = ps_ui_reach_of(ps_ui_server(rq));
    const ps_cache_meta_t *m = ps_cache_meta(ps_ui_cache(rq));
    char since[16], retry[16], err[128];
    uint64_t since_ms, retry_ms;
    ps_tz_t tz;
    int late;

    pthread_mutex_lock(&r->mu);
    since_ms = r->since_ms;
    retry_ms = r->retry_ms;
    late = r->late;
    pthread_mutex_unlock(&r->mu);
    /* The zone popsync ui loaded before its threads (ps_tz_get, cmd_ui.c);
     * not found: the one it started with, which tz then holds. */
    {
        int rc = ps_tz_get(&tz, m->timezone[0] ? m->timezone : PS_TZ_DEFAULT, err, sizeof(err));
        if (rc != PS_OK && rc != PS_ENOTFOUND)
            tz.offset_s = 0;
    }
    hms(since_ms, tz.offset_s, since);
    hms(retry_ms, tz.offset_s, retry);
    if (ps_ui_zh(rq))
        snprintf(out, len, late ? "区县服务器自 %s 起未答复；%s 前本页不再询问"
                                : "无法连接服务器（自 %s 起）；%s 前本页不再询问",
                 since, retry);
    else
        snprintf(out, len, late ? "The district server has not answered since %s; this page does not ask it again "
                                  "before %s"
                                : "The server cannot be reached (since %s); this page does not ask it again before %s",
                 since, retry);
}

json_t *ps_ui_reach_json(const ps_ui_req_t *rq, json_t *o, int held)
{
    ps_ui_reach_t *r = ps_ui_reach_of(ps_ui_server(rq));

    json_object_set_new(o, "held", json_boolean(held));
    pthread_mutex_lock(&r->mu);
    if (r->down) {
        json_object_set_new(o, "since_ms", ps_json_u64(r->since_ms));
        json_object_set_new(o, "retry_ms", ps_json_u64(r->retry_ms));
    }
    pthread_mutex_unlock(&r->mu);
    return o;
}

/* POST /api/server/retry: the 再试 Try again button.  The next page asks
 * the server; what the silence began at is kept until it answers. */
static int h_retry(ps_ui_req_t *rq)
{
    ps_ui_reach_t *r = ps_ui_reach_of(ps_ui_server(rq));

    pthread_mutex_lock(&r->mu);
    r->until = 0;
    pthread_mutex_unlock(&r->mu);
    return ps_ui_reply_json(rq, 200, json_pack("{s:b}", "held", 0));
}

/* No cache: the button works while a sync holds it. */
static const ps_ui_route_t reach_routes[] = {
    {"POST", "/api/server/retry", 0, 0, h_retry},
};

const ps_ui_module_t ps_ui_reach_module = {"reach", reach_routes, sizeof(reach_routes) / sizeof(reach_routes[0]),
                                           NULL, 0};
