/* cmd_spotcheck.c - `popsync spotcheck draw|redraw|verify|list|check|results`
 * and the spot-check panel of the reports.
 *
 * A draw is made by the district administrator in its cache (which holds
 * every person): per township, the frame is the township's live persons,
 * the seed 16 bytes from the operating system's CSPRNG, the sample the n
 * persons with the smallest keys (spotcheck.h).  Each sampled person
 * becomes one spotcheck record carrying the seed, the method, N, n and the
 * frame's digest; they sync to the township like any record and the server
 * audits their creation.  The township fills in each result; a "differs"
 * goes in as an ordinary edit of the person in the same local transaction.
 * docs/benefits.md §1 describes the method and the figures.
 */
#include "cache.h"
#include "cli.h"
#include "err.h"
#include "fields.h"
#include "ids.h"
#include "panels.h"
#include "policy.h"
#include "record_fmt.h"
#include "report.h"
#include "spotcheck.h"
#include "validate.h"
#include "vctx.h"
#include "vec.h"

#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* strcmp for qsort over arrays of fixed-size strings. */
static int cmp_str(const void *a, const void *b)
{
    return strcmp(a, b);
}

#define SPOT_MAX_TOWNS 512
#define SPOT_FIELDS_MAX 32

/* ---- the persons of the cache, by township ---------------------------------- */

typedef struct pers {
    uint8_t id[PS_ID_LEN];
    char town[13];
    int64_t created_ms;
} pers_t;

typedef struct pscan {
    pers_t *v;
    size_t n, cap;
    int oom;
    const ps_orgunits_t *tree;
    const char *root; /* only persons inside it ("" or NULL: all) */
} pscan_t;

static int scan_person(Popsync__Record *r, void *arg)
{
    pscan_t *s = arg;

    if (r->deleted || r->body_case != POPSYNC__RECORD__BODY_PERSON || r->id.len != PS_ID_LEN || !r->orgunit)
        return 0;
    if (s->root && *s->root && !ps_policy_within(s->tree, r->orgunit, s->root))
        return 0;
    if (PS_VEC_ROOM(s->v, s->n, s->cap, 1024)) {
        s->oom = 1;
        return 1;
    }
    memcpy(s->v[s->n].id, r->id.data, PS_ID_LEN);
    ps_orgunits_township_code(s->tree, r->orgunit, s->v[s->n].town);
    s->v[s->n].created_ms = r->created_ms;
    s->n++;
    return 0;
}

/* The distinct townships of the scan, sorted. */
static size_t towns_of(const pscan_t *s, char (*towns)[13], size_t max)
{
    size_t n = 0;
    for (size_t i = 0; i < s->n; i++) {
        size_t k;
        for (k = 0; k < n && strcmp(towns[k], s->v[i].town) != 0; k++)
            ;
        if (k == n && n < max)
            snprintf(towns[n++], 13, "%s", s->v[i].town);
    }
    if (n)
        qsort(towns, n, 13, cmp_str);
    return n;
}

/* The frame of a township: its persons created at or before before_ms (0:
 * all), plus extra ids (a draw's sampled persons) not already in it. */
static uint8_t (*frame_of(const pscan_t *s, const char *town, int64_t before_ms, uint8_t (*extra)[16],
                          size_t nextra, size_t *n))[16]
{
    uint8_t(*ids)[16] = malloc((s->n + nextra + 1) * 16);
    size_t k = 0;

    if (!ids)
        return NULL;
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->v[i].town, town) == 0 && (!before_ms || s->v[i].created_ms <= before_ms))
            memcpy(ids[k++], s->v[i].id, 16);
    for (size_t j = 0; j < nextra; j++) {
        size_t i;
        for (i = 0; i < k && memcmp(ids[i], extra[j], 16) != 0; i++)
            ;
        if (i == k)
            memcpy(ids[k++], extra[j], 16);
    }
    *n = k;
    return ids;
}

/* ---- the spot-check records of the cache ----------------------------------- */

typedef struct cscan {
    Popsync__Record **v;
    size_t n, cap;
    int oom;
    const char *month, *draw, *root;
    const ps_orgunits_t *tree;
} cscan_t;

static int scan_check(Popsync__Record *r, void *arg)
{
    cscan_t *s = arg;
    const Popsync__SpotCheck *k = r->spotcheck;

    if (r->deleted || r->body_case != POPSYNC__RECORD__BODY_SPOTCHECK || !k)
        return 0;
    if ((s->month && *s->month && strcmp(k->month, s->month) != 0) ||
        (s->draw && *s->draw && strcmp(k->draw_id, s->draw) != 0) ||
        (s->root && *s->root && !ps_policy_within(s->tree, k->township, s->root)))
        return 0;
    if (PS_VEC_ROOM(s->v, s->n, s->cap, 256)) {
        s->oom = 1;
        return 1;
    }
    /* ps_cache_foreach frees r after the callback: keep a copy. */
    {
        size_t len = protobuf_c_message_get_packed_size(&r->base);
        uint8_t *buf = malloc(len ? len : 1);
        Popsync__Record *copy = NULL;
        if (buf) {
            protobuf_c_message_pack(&r->base, buf);
            copy = popsync__record__unpack(NULL, len, buf);
            free(buf);
        }
        if (!copy) {
            s->oom = 1;
            return 1;
        }
        s->v[s->n++] = copy;
    }
    return 0;
}

static void cscan_free(cscan_t *s)
{
    for (size_t i = 0; i < s->n; i++)
        ps_record_free(s->v[i]);
    free(s->v);
}

static int cmp_check(const void *a, const void *b)
{
    const Popsync__SpotCheck *x = (*(Popsync__Record *const *)a)->spotcheck;
    const Popsync__SpotCheck *y = (*(Popsync__Record *const *)b)->spotcheck;
    int c = strcmp(x->township, y->township);
    return c ? c : memcmp(x->person_id.data, y->person_id.data, 16);
}

/* ---- options ----------------------------------------------------------------- */

typedef struct sopts {
    const char *month, *orgunit, *seed, *draw, *note, *date, *lang;
    uint32_t size;
    double margin, confidence;
    int have_margin, matches, differs, pending, json, zh;
    int64_t before_ms;
    char *sets[PS_CLI_MAX_SETS];
    size_t nsets;
} sopts_t;

static const char SPOT_USAGE[] =
    "usage: popsync spotcheck draw --month YYYY-MM [--orgunit CODE] [--size N | --margin 0.05 --confidence 0.95]\n"
    "       popsync spotcheck redraw --seed HEX --month YYYY-MM [--orgunit CODE] [--size N | --margin M --confidence C]\n"
    "       popsync spotcheck verify DRAW_ID\n"
    "       popsync spotcheck list [--month YYYY-MM] [--draw DRAW_ID] [--pending] [--json]\n"
    "       popsync spotcheck check ID (--matches | --differs --set FIELD=VALUE...) [--note TEXT] [--date D]\n"
    "       popsync spotcheck results [--month YYYY-MM] [--orgunit CODE] [--confidence 0.95] [--json] [--lang zh]\n";

static int parse_opts(int argc, char **argv, sopts_t *o)
{
    static const struct option lo[] = {
        {"month", required_argument, NULL, 'm'},      {"orgunit", required_argument, NULL, 'o'},
        {"size", required_argument, NULL, 'n'},       {"margin", required_argument, NULL, 'e'},
        {"confidence", required_argument, NULL, 'c'}, {"seed", required_argument, NULL, 's'},
        {"draw", required_argument, NULL, 'd'},       {"note", required_argument, NULL, 'N'},
        {"date", required_argument, NULL, 'D'},       {"set", required_argument, NULL, 'S'},
        {"matches", no_argument, NULL, 'M'},          {"differs", no_argument, NULL, 'X'},
        {"pending", no_argument, NULL, 'p'},          {"json", no_argument, NULL, 'j'},
        {"lang", required_argument, NULL, 'l'},       {"before-ms", required_argument, NULL, 'b'},
        {"help", no_argument, NULL, 'h'},             {NULL, 0, NULL, 0}};
    int opt;
    char *end;

    o->confidence = 0.95;
    o->margin = 0.05;
    while ((opt = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (opt) {
        case 'm': o->month = optarg; break;
        case 'o': o->orgunit = optarg; break;
        case 'n': {
            unsigned long v = strtoul(optarg, &end, 10);
            if (*end || !*optarg || v == 0 || v > 1000000) {
                ps_cli_err("spotcheck: --size must be a whole number from 1");
                return PS_EXIT_USAGE;
            }
            o->size = (uint32_t)v;
            break;
        }
        case 'e':
        case 'c': {
            double v = strtod(optarg, &end);
            if (*end || !*optarg || !(v > 0.0 && v < 1.0)) {
                ps_cli_err("spotcheck: --%s must be a fraction between 0 and 1, e.g. %s",
                           opt == 'e' ? "margin" : "confidence", opt == 'e' ? "0.05" : "0.95");
                return PS_EXIT_USAGE;
            }
            if (opt == 'e') {
                o->margin = v;
                o->have_margin = 1;
            } else {
                o->confidence = v;
            }
            break;
        }
        case 's': o->seed = optarg; break;
        case 'd': o->draw = optarg; break;
        case 'N': o->note = optarg; break;
        case 'D': o->date = optarg; break;
        case 'S':
            if (o->nsets >= PS_CLI_MAX_SETS)
                return PS_EXIT_USAGE;
            o->sets[o->nsets++] = optarg;
            break;
        case 'M': o->matches = 1; break;
        case 'X': o->differs = 1; break;
        case 'p': o->pending = 1; break;
        case 'j': o->json = 1; break;
        case 'l': o->lang = optarg; break;
        case 'b': o->before_ms = strtoll(optarg, NULL, 10); break;
        case 'h': fputs(SPOT_USAGE, stdout); return -1;
        default: fputs(SPOT_USAGE, stderr); return PS_EXIT_USAGE;
        }
    }
    if (o->size && o->have_margin) {
        ps_cli_err("spotcheck: give --size or --margin/--confidence, not both");
        return PS_EXIT_USAGE;
    }
    if (o->month && (strlen(o->month) != 7 || !ps_report_month_valid(o->month))) {
        ps_cli_err("spotcheck: --month must be YYYY-MM, e.g. 2026-10");
        return PS_EXIT_USAGE;
    }
    o->zh = ps_report_lang_zh(o->lang) == 1;
    return PS_EXIT_OK;
}

static void method_text(const sopts_t *o, char *out, size_t len)
{
    if (o->size)
        snprintf(out, len, "%s size=%u", PS_SPOT_METHOD, o->size);
    else
        snprintf(out, len, "%s margin=%.4g confidence=%.4g p=0.5 fpc", PS_SPOT_METHOD, o->margin, o->confidence);
}

static uint32_t want_size(const sopts_t *o, size_t N)
{
    if (o->size)
        return o->size > N ? (uint32_t)N : o->size;
    return ps_spot_sample_size((uint32_t)N, o->margin, o->confidence);
}

static int parse_seed(const char *hex, uint8_t seed[PS_SPOT_SEED_LEN])
{
    return hex && strlen(hex) == 2 * PS_SPOT_SEED_LEN && ps_unhex(hex, PS_SPOT_SEED_LEN, seed) == PS_OK ? 0 : -1;
}

/* ---- draw ------------------------------------------------------------------ */

static Popsync__Record *new_check(const pers_t *p, const char *unit, const char *month, const char *draw_id,
                                  const char *seed, const char *method, size_t N, uint32_t n, const char *town,
                                  const char *digest, int64_t drawn_ms)
{
    Popsync__Record *r = NULL;
    char err[128], pid[PS_UUID_STR];

    if (ps_record_new(&r, POPSYNC__KIND__KIND_SPOTCHECK) != PS_OK)
        return NULL;
    if (!(r->id.data = malloc(PS_ID_LEN)) || ps_uuid7(r->id.data) != PS_OK) {
        ps_record_free(r);
        return NULL;
    }
    r->id.len = PS_ID_LEN;
    ps_uuid_format(p->id, pid);
    if (ps_record_set(r, "orgunit", unit, err, sizeof(err)) || ps_record_set(r, "person_id", pid, err, sizeof(err)) ||
        ps_record_set(r, "month", month, err, sizeof(err)) || ps_record_set(r, "draw_id", draw_id, err, sizeof(err)) ||
        ps_record_set(r, "seed", seed, err, sizeof(err)) || ps_record_set(r, "method", method, err, sizeof(err)) ||
        ps_record_set(r, "township", town, err, sizeof(err)) ||
        ps_record_set(r, "frame_digest", digest, err, sizeof(err))) {
        ps_record_free(r);
        return NULL;
    }
    r->spotcheck->frame_size = (uint32_t)N;
    r->spotcheck->sample_size = n;
    r->spotcheck->drawn_ms = drawn_ms;
    return r;
}

/* The unit a sampled person's check belongs to: the person's own unit, so
 * that whoever keeps the person sees the check. */
static int person_unit(ps_cache_t *c, const uint8_t id[16], char unit[16])
{
    Popsync__Record *p = NULL;
    if (ps_cache_get(c, id, &p) != PS_OK)
        return -1;
    snprintf(unit, 16, "%s", p->orgunit ? p->orgunit : "");
    ps_record_free(p);
    return 0;
}

typedef struct drawctx {
    ps_cache_t *c;
    ps_orgunits_t *tree;
    pscan_t ps;
    cscan_t cs;
    char towns[SPOT_MAX_TOWNS][13];
    size_t ntowns;
} drawctx_t;

static int load_draw_ctx(ps_cli_t *cli, const char *cmd, const char *root, drawctx_t *d)
{
    char err[512];

    memset(d, 0, sizeof(*d));
    if (ps_cache_open(&d->c, cli->data_dir, err, sizeof(err))) {
        ps_cli_err("%s: %s", cmd, err);
        return PS_EXIT_FAIL;
    }
    d->tree = ps_client_orgunits(d->c);
    d->ps.tree = d->tree;
    d->ps.root = root;
    d->cs.tree = d->tree;
    if (ps_cache_foreach(d->c, scan_person, &d->ps) || d->ps.oom) {
        ps_cli_err("%s: cannot read the cache", cmd);
        return PS_EXIT_FAIL;
    }
    d->ntowns = towns_of(&d->ps, d->towns, SPOT_MAX_TOWNS);
    return PS_EXIT_OK;
}

static void free_draw_ctx(drawctx_t *d)
{
    free(d->ps.v);
    cscan_free(&d->cs);
    ps_orgunits_free(d->tree);
    if (d->c)
        ps_cache_close(d->c);
}

static const char *town_name(const ps_orgunits_t *t, const char *code)
{
    const ps_orgunit_t *u = t ? ps_orgunits_find(t, code) : NULL;
    return u ? u->name : "";
}

/* Records of one township's draw appended to recs. */
static int draw_town(drawctx_t *d, const sopts_t *o, const uint8_t seed[16], const char *seedhex, const char *town,
                     const char *draw_id, const char *method, int64_t drawn_ms, Popsync__Record ***recs,
                     size_t *nrecs, size_t *cap)
{
    size_t N = 0;
    uint8_t(*ids)[16] = frame_of(&d->ps, town, 0, NULL, 0, &N), (*out)[16] = NULL, digest[32];
    char dhex[65];
    uint32_t n = want_size(o, N);
    long got;
    int rc = PS_EXIT_FAIL;

    if (!ids || !(out = malloc((N + 1) * 16)) || (got = ps_spot_draw(seed, town, ids, N, n, out, digest)) < 0)
        goto out;
    ps_hex(digest, 32, dhex);
    if (*nrecs + (size_t)got > *cap) {
        size_t ncap = (*nrecs + (size_t)got) * 2;
        Popsync__Record **nv = realloc(*recs, ncap * sizeof(*nv));
        if (!nv)
            goto out;
        *recs = nv;
        *cap = ncap;
    }
    for (long i = 0; i < got; i++) {
        char unit[16];
        pers_t p;
        memcpy(p.id, out[i], 16);
        if (person_unit(d->c, out[i], unit) ||
            !((*recs)[*nrecs] = new_check(&p, unit, o->month, draw_id, seedhex, method, N, (uint32_t)got, town, dhex,
                                          drawn_ms)))
            goto out;
        (*nrecs)++;
    }
    printf("%s %s: %zu persons, %ld drawn\n", town, town_name(d->tree, town), N, got);
    rc = PS_EXIT_OK;
out:
    free(ids);
    free(out);
    return rc;
}

static int already_drawn(drawctx_t *d, const char *month)
{
    d->cs.month = month;
    if (ps_cache_foreach(d->c, scan_check, &d->cs) || d->cs.oom)
        return -1;
    for (size_t t = 0; t < d->ntowns; t++)
        for (size_t i = 0; i < d->cs.n; i++)
            if (strcmp(d->cs.v[i]->spotcheck->township, d->towns[t]) == 0) {
                ps_cli_err("spotcheck draw: %s was already drawn for %s (draw %s); a second draw would let "
                           "one choose the sample: check that one (popsync spotcheck list --month %s)",
                           month, d->towns[t], d->cs.v[i]->spotcheck->draw_id, month);
                return 1;
            }
    return 0;
}

static int validate_all(ps_cache_t *c, Popsync__Record **recs, size_t n)
{
    ps_client_vctx_t vc;
    int bad = 0;

    ps_client_vctx_init(&vc, c);
    for (size_t i = 0; i < n && !bad; i++) {
        ps_verrs_t v;
        memset(&v, 0, sizeof(v));
        if (ps_validate_record(recs[i], &vc.ctx, &v)) {
            ps_cli_err("spotcheck draw: %s: %s", v.e[0].field, v.e[0].reason);
            bad = 1;
        }
    }
    ps_client_vctx_free(&vc);
    return bad ? PS_EXIT_INVALID : PS_EXIT_OK;
}

static int cmd_draw(ps_cli_t *cli, const sopts_t *o)
{
    drawctx_t d;
    uint8_t seed[PS_SPOT_SEED_LEN], did[PS_ID_LEN];
    char seedhex[2 * PS_SPOT_SEED_LEN + 1], draw_id[PS_UUID_STR], method[200];
    Popsync__Record **recs = NULL;
    size_t nrecs = 0, cap = 0;
    int64_t drawn_ms = (int64_t)ps_now_ms();
    int rc;

    if (!o->month) {
        ps_cli_err("spotcheck draw: --month YYYY-MM is required");
        return PS_EXIT_USAGE;
    }
    if ((rc = load_draw_ctx(cli, "spotcheck draw", o->orgunit, &d)))
        goto out;
    if (!ps_policy_may_create_kind(ps_role_from_name(ps_cache_meta(d.c)->role), POPSYNC__KIND__KIND_SPOTCHECK)) {
        ps_cli_err("spotcheck draw: only the district administrator draws spot checks; a township fills in the "
                   "results (popsync spotcheck list, popsync spotcheck check)");
        rc = PS_EXIT_INVALID;
        goto out;
    }
    if ((rc = already_drawn(&d, o->month)) != 0) {
        rc = rc < 0 ? PS_EXIT_FAIL : PS_EXIT_INVALID;
        goto out;
    }
    /* The seed comes from the operating system's CSPRNG at this moment:
     * nobody, the administrator included, can know the sample before. */
    if (ps_random(seed, sizeof(seed)) != PS_OK || ps_uuid7(did) != PS_OK) {
        ps_cli_err("spotcheck draw: no randomness from the operating system");
        rc = PS_EXIT_FAIL;
        goto out;
    }
    ps_hex(seed, sizeof(seed), seedhex);
    ps_uuid_format(did, draw_id);
    method_text(o, method, sizeof(method));
    for (size_t t = 0; t < d.ntowns; t++)
        if ((rc = draw_town(&d, o, seed, seedhex, d.towns[t], draw_id, method, drawn_ms, &recs, &nrecs, &cap)))
            goto out;
    if (nrecs == 0) {
        ps_cli_err("spotcheck draw: no persons to draw from%s%s", o->orgunit ? " in " : "", o->orgunit ? o->orgunit : "");
        rc = PS_EXIT_NOTFOUND;
        goto out;
    }
    if ((rc = validate_all(d.c, recs, nrecs)))
        goto out;
    if (ps_cache_put_local_many(d.c, recs, nrecs) != PS_OK) {
        ps_cli_err("spotcheck draw: cannot store the sample; nothing was drawn");
        rc = PS_EXIT_FAIL;
        goto out;
    }
    printf("draw %s month %s seed %s method %s: %zu spot checks; push with popsync sync\n", draw_id, o->month,
           seedhex, method, nrecs);
out:
    for (size_t i = 0; i < nrecs; i++)
        ps_record_free(recs[i]);
    free(recs);
    free_draw_ctx(&d);
    return rc;
}

/* ---- redraw and verify ------------------------------------------------------- */

static int cmd_redraw(ps_cli_t *cli, const sopts_t *o)
{
    drawctx_t d;
    uint8_t seed[PS_SPOT_SEED_LEN];
    int rc;

    if (parse_seed(o->seed, seed)) {
        ps_cli_err("spotcheck redraw: --seed must be the 32 hex digits a draw recorded");
        return PS_EXIT_USAGE;
    }
    if ((rc = load_draw_ctx(cli, "spotcheck redraw", o->orgunit, &d)))
        goto out;
    for (size_t t = 0; t < d.ntowns; t++) {
        size_t N = 0;
        uint8_t(*ids)[16] = frame_of(&d.ps, d.towns[t], o->before_ms, NULL, 0, &N), (*sel)[16] = NULL, digest[32];
        char dhex[65], pid[PS_UUID_STR];
        long got = -1;
        if (ids && (sel = malloc((N + 1) * 16)))
            got = ps_spot_draw(seed, d.towns[t], ids, N, want_size(o, N), sel, digest);
        if (got < 0) {
            free(ids);
            free(sel);
            rc = PS_EXIT_FAIL;
            goto out;
        }
        ps_hex(digest, 32, dhex);
        printf("%s N=%zu n=%ld frame_digest=%s\n", d.towns[t], N, got, dhex);
        for (long i = 0; i < got; i++) {
            ps_uuid_format(sel[i], pid);
            printf("  %s\n", pid);
        }
        free(ids);
        free(sel);
    }
out:
    free_draw_ctx(&d);
    return rc;
}

static int in_set(uint8_t (*set)[16], size_t n, const uint8_t *id)
{
    for (size_t i = 0; i < n; i++)
        if (memcmp(set[i], id, 16) == 0)
            return 1;
    return 0;
}

/* One township of a recorded draw, drawn again from its seed. */
static int verify_town(drawctx_t *d, const char *town, int *same)
{
    Popsync__SpotCheck *first = NULL;
    uint8_t(*rec)[16] = malloc((d->cs.n + 1) * 16), (*ids)[16] = NULL, (*sel)[16] = NULL, seed[16], digest[32];
    size_t nrec = 0, N = 0, match = 0;
    char dhex[65];
    long got = -1;

    for (size_t i = 0; rec && i < d->cs.n; i++)
        if (strcmp(d->cs.v[i]->spotcheck->township, town) == 0) {
            first = d->cs.v[i]->spotcheck;
            memcpy(rec[nrec++], first->person_id.data, 16);
        }
    if (!rec || !first || parse_seed(first->seed, seed)) {
        free(rec);
        return -1;
    }
    ids = frame_of(&d->ps, town, first->drawn_ms, rec, nrec, &N);
    if (ids && (sel = malloc((N + 1) * 16)))
        got = ps_spot_draw(seed, town, ids, N, first->sample_size, sel, digest);
    if (got >= 0) {
        ps_hex(digest, 32, dhex);
        for (long i = 0; i < got; i++)
            match += in_set(rec, nrec, sel[i]);
        *same = match == nrec && (size_t)got == nrec;
        printf("%s %s: %zu of %zu drawn again from seed %s (%s); frame %s (N then %u, now %zu)\n", town,
               *same ? "reproduced" : "NOT reproduced", match, nrec, first->seed, first->method,
               strcmp(dhex, first->frame_digest) == 0 ? "unchanged" : "changed since the draw", first->frame_size, N);
    }
    free(rec);
    free(ids);
    free(sel);
    return got < 0 ? -1 : 0;
}

static int cmd_verify(ps_cli_t *cli, const char *draw_id)
{
    drawctx_t d;
    char towns[SPOT_MAX_TOWNS][13];
    size_t nt = 0;
    int rc, all = 1;

    if ((rc = load_draw_ctx(cli, "spotcheck verify", NULL, &d)))
        goto out;
    d.cs.draw = draw_id;
    if (ps_cache_foreach(d.c, scan_check, &d.cs) || d.cs.oom) {
        rc = PS_EXIT_FAIL;
        goto out;
    }
    if (d.cs.n == 0) {
        ps_cli_err("spotcheck verify: no spot checks of draw %s in this cache", draw_id);
        rc = PS_EXIT_NOTFOUND;
        goto out;
    }
    for (size_t i = 0; i < d.cs.n; i++) {
        size_t k;
        for (k = 0; k < nt && strcmp(towns[k], d.cs.v[i]->spotcheck->township) != 0; k++)
            ;
        if (k == nt && nt < SPOT_MAX_TOWNS)
            snprintf(towns[nt++], 13, "%s", d.cs.v[i]->spotcheck->township);
    }
    for (size_t t = 0; t < nt; t++) {
        int same = 0;
        if (verify_town(&d, towns[t], &same) < 0) {
            rc = PS_EXIT_FAIL;
            goto out;
        }
        all &= same;
    }
    rc = all ? PS_EXIT_OK : PS_EXIT_FAIL;
out:
    free_draw_ctx(&d);
    return rc;
}

/* ---- list and check ------------------------------------------------------------ */

static int cmd_list(ps_cli_t *cli, const sopts_t *o)
{
    drawctx_t d;
    json_t *arr = o->json ? json_array() : NULL;
    int rc;

    if ((rc = load_draw_ctx(cli, "spotcheck list", o->orgunit, &d)))
        goto out;
    d.cs.month = o->month;
    d.cs.draw = o->draw;
    if (ps_cache_foreach(d.c, scan_check, &d.cs) || d.cs.oom) {
        rc = PS_EXIT_FAIL;
        goto out;
    }
    if (d.cs.n)
        qsort(d.cs.v, d.cs.n, sizeof(*d.cs.v), cmp_check);
    if (!o->json)
        printf(o->zh ? "%-36s  %-12s  %-7s  %-18s  %-10s  %s\n" : "%-36s  %-12s  %-7s  %-18s  %-10s  %s\n",
               o->zh ? "抽查记录" : "check id", o->zh ? "乡镇" : "township", o->zh ? "月份" : "month",
               o->zh ? "身份证号" : "id_number", o->zh ? "结果" : "result", o->zh ? "姓名" : "name");
    for (size_t i = 0; i < d.cs.n; i++) {
        const Popsync__SpotCheck *k = d.cs.v[i]->spotcheck;
        Popsync__Record *p = NULL;
        char cid[PS_UUID_STR], res[32];
        const char *name = "", *idn = "";
        if (o->pending && k->result != POPSYNC__CHECK_RESULT__CHECK_RESULT_UNSPECIFIED)
            continue;
        ps_uuid_format(d.cs.v[i]->id.data, cid);
        if (k->person_id.len == 16 && ps_cache_get(d.c, k->person_id.data, &p) == PS_OK && p->person) {
            name = p->person->name ? p->person->name : "";
            idn = p->person->id_number ? p->person->id_number : "";
        }
        if (ps_record_get_text(d.cs.v[i], "result", res, sizeof(res)) != PS_OK || !*res)
            snprintf(res, sizeof(res), "%s", o->zh ? "待核查" : "pending");
        else if (o->zh && ps_field_value_zh(ps_field_find(POPSYNC__KIND__KIND_SPOTCHECK, "result"), res))
            snprintf(res, sizeof(res), "%s", ps_field_value_zh(ps_field_find(POPSYNC__KIND__KIND_SPOTCHECK, "result"), res));
        if (arr) {
            json_t *j = ps_record_to_json(d.cs.v[i]);
            json_object_set_new(j, "person_name", json_string(name));
            json_object_set_new(j, "person_id_number", json_string(idn));
            json_array_append_new(arr, j);
        } else {
            printf("%-36s  %-12s  %-7s  %-18s  %-10s  %s\n", cid, k->township, k->month, idn, res, name);
        }
        ps_record_free(p);
    }
    if (arr) {
        char *s = json_dumps(arr, JSON_INDENT(2));
        if (s)
            puts(s);
        free(s);
    }
out:
    json_decref(arr);
    free_draw_ctx(&d);
    return rc;
}

/* The person fields a clerk corrected, by their English names, joined. */
static int differs_list(char *const *sets, size_t n, char *out, size_t len)
{
    size_t off = 0;
    out[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        char key[128];
        const char *eq = strchr(sets[i], '=');
        const ps_field_t *f;
        size_t kl = eq ? (size_t)(eq - sets[i]) : strlen(sets[i]);
        if (kl >= sizeof(key))
            return -1;
        memcpy(key, sets[i], kl);
        key[kl] = '\0';
        if (!(f = ps_field_find(POPSYNC__KIND__KIND_PERSON, key)) || strcmp(f->name, "orgunit") == 0)
            return -1;
        if (strstr(out, f->stored ? f->stored : f->name))
            continue;
        off += (size_t)snprintf(out + off, off < len ? len - off : 0, "%s%s", off ? "," : "",
                                f->stored ? f->stored : f->name);
    }
    return off < len && off > 0 ? 0 : -1;
}

static int fill_result(Popsync__Record *k, const sopts_t *o, const char *differs, uint32_t today)
{
    char err[256], date[16];

    if (o->date)
        snprintf(date, sizeof(date), "%s", o->date);
    else
        snprintf(date, sizeof(date), "%04u-%02u-%02u", today / 10000, today / 100 % 100, today % 100);
    if (ps_record_set(k, "result", o->matches ? "matches" : "differs", err, sizeof(err)) ||
        ps_record_set(k, "checked_date", date, err, sizeof(err)) ||
        ps_record_set(k, "differs", differs, err, sizeof(err)) ||
        ps_record_set(k, "note", o->note ? o->note : "", err, sizeof(err))) {
        ps_cli_err("spotcheck check: %s", err);
        return PS_EXIT_INVALID;
    }
    return PS_EXIT_OK;
}

static int cmd_check(ps_cli_t *cli, const char *idtext, sopts_t *o)
{
    ps_cache_t *c = NULL;
    Popsync__Record *k = NULL, *kbefore = NULL, *p = NULL, *pbefore = NULL, *batch[2];
    uint8_t id[PS_ID_LEN];
    char differs[256] = "", err[512];
    size_t nb = 0;
    int rc = PS_EXIT_FAIL;

    if (o->matches == o->differs || (o->differs && o->nsets == 0) || (o->matches && o->nsets)) {
        ps_cli_err("spotcheck check: give --matches, or --differs with the corrected fields as --set FIELD=VALUE");
        return PS_EXIT_USAGE;
    }
    if (o->differs && differs_list(o->sets, o->nsets, differs, sizeof(differs))) {
        ps_cli_err("spotcheck check: every --set must name a person field (popsync fields person)");
        return PS_EXIT_USAGE;
    }
    if (ps_uuid_parse(idtext, id) != PS_OK) {
        ps_cli_err("spotcheck check: '%s' is not a record id (see popsync spotcheck list)", idtext);
        return PS_EXIT_USAGE;
    }
    if (ps_cache_open(&c, cli->data_dir, err, sizeof(err))) {
        ps_cli_err("spotcheck check: %s", err);
        return PS_EXIT_FAIL;
    }
    if (ps_cache_get(c, id, &k) != PS_OK || k->deleted || k->body_case != POPSYNC__RECORD__BODY_SPOTCHECK) {
        ps_cli_err("spotcheck check: no spot check %s in this cache (see popsync spotcheck list)", idtext);
        rc = PS_EXIT_NOTFOUND;
        goto out;
    }
    if (ps_cache_get(c, id, &kbefore) != PS_OK)
        goto out;
    if (o->differs) {
        if (ps_cache_get(c, k->spotcheck->person_id.data, &p) != PS_OK || p->deleted ||
            ps_cache_get(c, p->id.data, &pbefore) != PS_OK) {
            ps_cli_err("spotcheck check: the sampled person is not in this cache; sync first");
            rc = PS_EXIT_NOTFOUND;
            goto out;
        }
        if ((rc = ps_cli_apply_edits("spotcheck check", p, o->sets, o->nsets, NULL)) ||
            (rc = ps_cli_validate_or_report("spotcheck check", c, p, pbefore)))
            goto out;
        batch[nb++] = p;
    }
    if ((rc = fill_result(k, o, differs, ps_client_today(c))) ||
        (rc = ps_cli_validate_or_report("spotcheck check", c, k, kbefore)))
        goto out;
    batch[nb++] = k;
    if (ps_cache_put_local_many(c, batch, nb) != PS_OK) {
        ps_cli_err("spotcheck check: cannot store the result; nothing was changed");
        rc = PS_EXIT_FAIL;
        goto out;
    }
    printf("%s: %s%s%s; push with popsync sync\n", idtext, o->matches ? "matches" : "differs",
           o->differs ? ", corrected " : "", differs);
    rc = PS_EXIT_OK;
out:
    ps_record_free(k);
    ps_record_free(kbefore);
    ps_record_free(p);
    ps_record_free(pbefore);
    ps_cache_close(c);
    return rc;
}

/* ---- results ----------------------------------------------------------------------- */

typedef struct tally {
    char town[13];
    uint32_t drawn, checked, matches;
    uint32_t wrong[SPOT_FIELDS_MAX]; /* by person field, in descriptor order */
} tally_t;

static void tally_add(tally_t *t, const Popsync__SpotCheck *k)
{
    const ProtobufCMessageDescriptor *pd = &popsync__person__descriptor;

    t->drawn++;
    if (k->result == POPSYNC__CHECK_RESULT__CHECK_RESULT_UNSPECIFIED)
        return;
    t->checked++;
    if (k->result == POPSYNC__CHECK_RESULT__CHECK_RESULT_MATCHES) {
        t->matches++;
        return;
    }
    for (unsigned f = 0; f < pd->n_fields && f < SPOT_FIELDS_MAX; f++) {
        const char *s = k->differs ? k->differs : "";
        size_t len = strlen(pd->fields[f].name);
        for (const char *q = strstr(s, pd->fields[f].name); q; q = strstr(q + 1, pd->fields[f].name))
            if ((q == s || q[-1] == ',') && (q[len] == ',' || q[len] == '\0')) {
                t->wrong[f]++;
                break;
            }
    }
}

/* Tallies by township (towns[0..n)) and for all of them (*all). */
static size_t tally_checks(const cscan_t *cs, tally_t *towns, size_t max, tally_t *all)
{
    size_t n = 0;
    memset(all, 0, sizeof(*all));
    snprintf(all->town, sizeof(all->town), "all");
    for (size_t i = 0; i < cs->n; i++) {
        const Popsync__SpotCheck *k = cs->v[i]->spotcheck;
        size_t t;
        for (t = 0; t < n && strcmp(towns[t].town, k->township) != 0; t++)
            ;
        if (t == n) {
            if (n == max)
                continue;
            memset(&towns[n], 0, sizeof(towns[n]));
            snprintf(towns[n++].town, 13, "%s", k->township);
        }
        tally_add(&towns[t], k);
        tally_add(all, k);
    }
    return n;
}

static json_t *rate_json(uint32_t x, uint32_t n, double z)
{
    double lo, hi;
    json_t *j = json_object();
    ps_spot_wilson(x, n, z, &lo, &hi);
    json_object_set_new(j, "correct", json_integer(x));
    json_object_set_new(j, "checked", json_integer(n));
    json_object_set_new(j, "accuracy", n ? json_real((double)x / n) : json_null());
    json_object_set_new(j, "ci_low", json_real(lo));
    json_object_set_new(j, "ci_high", json_real(hi));
    return j;
}

static json_t *tally_json(const tally_t *t, double z)
{
    const ProtobufCMessageDescriptor *pd = &popsync__person__descriptor;
    json_t *j = rate_json(t->matches, t->checked, z), *f = json_object();
    json_object_set_new(j, "township", json_string(t->town));
    json_object_set_new(j, "drawn", json_integer(t->drawn));
    for (unsigned i = 0; i < pd->n_fields && i < SPOT_FIELDS_MAX; i++)
        json_object_set_new(f, pd->fields[i].name, rate_json(t->checked - t->wrong[i], t->checked, z));
    json_object_set_new(j, "fields", f);
    return j;
}

static void rate_cells(uint32_t x, uint32_t n, double z, char *out, size_t len)
{
    double lo, hi;
    ps_spot_wilson(x, n, z, &lo, &hi);
    if (n)
        snprintf(out, len, "%5.1f%%  [%5.1f%%, %5.1f%%]", 100.0 * x / n, 100.0 * lo, 100.0 * hi);
    else
        snprintf(out, len, "%5s   %s", "-", "-");
}

static void print_tallies(FILE *f, const ps_orgunits_t *tree, const tally_t *towns, size_t n, const tally_t *all,
                          double conf, int zh)
{
    const ProtobufCMessageDescriptor *pd = &popsync__person__descriptor;
    double z = ps_spot_z(conf);
    char cells[64];

    fprintf(f, zh ? "抽查准确率（%.0f%% 置信区间，Wilson）\n" : "Spot-check accuracy (%.0f%% confidence interval, Wilson)\n",
            conf * 100.0);
    fprintf(f, "  %-12s %-16s %6s %6s %6s  %s\n", zh ? "乡镇" : "township", zh ? "名称" : "name", zh ? "抽中" : "drawn",
            zh ? "已查" : "checked", zh ? "一致" : "match", zh ? "准确率 [区间]" : "accuracy [interval]");
    for (size_t i = 0; i <= n; i++) {
        const tally_t *t = i < n ? &towns[i] : all;
        rate_cells(t->matches, t->checked, z, cells, sizeof(cells));
        fprintf(f, "  %-12s %-16s %6u %6u %6u  %s\n", i < n ? t->town : (zh ? "合计" : "total"),
                i < n ? town_name(tree, t->town) : "", t->drawn, t->checked, t->matches, cells);
    }
    for (unsigned k = 0; k < pd->n_fields && k < SPOT_FIELDS_MAX; k++) {
        const ps_field_t *fd;
        if (!all->wrong[k])
            continue;
        fd = ps_field_find(POPSYNC__KIND__KIND_PERSON, pd->fields[k].name);
        rate_cells(all->checked - all->wrong[k], all->checked, z, cells, sizeof(cells));
        fprintf(f, zh ? "  字段 %-16s 不一致 %u  %s\n" : "  field %-16s wrong %u  %s\n",
                zh && fd ? fd->zh : pd->fields[k].name, all->wrong[k], cells);
    }
    if (all->checked)
        fprintf(f, zh ? "  其余字段全部一致\n" : "  every other field: all correct\n");
}

int ps_spot_panel(ps_cache_t *c, const ps_orgunits_t *tree, const char *month, const char *root, int zh, FILE *f)
{
    cscan_t cs;
    tally_t towns[64], all;
    size_t n;

    memset(&cs, 0, sizeof(cs));
    cs.month = month;
    cs.root = root;
    cs.tree = tree;
    if (ps_cache_foreach(c, scan_check, &cs) || cs.oom) {
        cscan_free(&cs);
        return PS_ENOMEM;
    }
    if (cs.n) {
        n = tally_checks(&cs, towns, 64, &all);
        fputc('\n', f);
        print_tallies(f, tree, towns, n, &all, 0.95, zh);
    }
    cscan_free(&cs);
    return PS_OK;
}

static int cmd_results(ps_cli_t *cli, const sopts_t *o)
{
    drawctx_t d;
    tally_t *towns = NULL, all;
    size_t n;
    int rc;

    if ((rc = load_draw_ctx(cli, "spotcheck results", NULL, &d)))
        goto out;
    d.cs.month = o->month;
    d.cs.root = o->orgunit;
    if (ps_cache_foreach(d.c, scan_check, &d.cs) || d.cs.oom || !(towns = calloc(SPOT_MAX_TOWNS, sizeof(*towns)))) {
        rc = PS_EXIT_FAIL;
        goto out;
    }
    if (d.cs.n)
        qsort(d.cs.v, d.cs.n, sizeof(*d.cs.v), cmp_check);
    n = tally_checks(&d.cs, towns, SPOT_MAX_TOWNS, &all);
    if (o->json) {
        json_t *j = json_object(), *arr = json_array();
        char *s;
        for (size_t i = 0; i < n; i++)
            json_array_append_new(arr, tally_json(&towns[i], ps_spot_z(o->confidence)));
        json_object_set_new(j, "month", json_string(o->month ? o->month : ""));
        json_object_set_new(j, "confidence", json_real(o->confidence));
        json_object_set_new(j, "townships", arr);
        json_object_set_new(j, "total", tally_json(&all, ps_spot_z(o->confidence)));
        if ((s = json_dumps(j, JSON_INDENT(2))))
            puts(s);
        free(s);
        json_decref(j);
    } else {
        print_tallies(stdout, d.tree, towns, n, &all, o->confidence, o->zh);
    }
out:
    free(towns);
    free_draw_ctx(&d);
    return rc;
}

int ps_cmd_spotcheck(ps_cli_t *cli, int argc, char **argv)
{
    sopts_t o;
    const char *sub = argc > 1 ? argv[1] : "";
    int rc;

    memset(&o, 0, sizeof(o));
    if (argc < 2 || argv[1][0] == '-') {
        fputs(SPOT_USAGE, stderr);
        return PS_EXIT_USAGE;
    }
    optind = 1;
    if ((rc = parse_opts(argc - 1, argv + 1, &o)))
        return rc < 0 ? PS_EXIT_OK : rc;
    o.json |= cli->json;
    optind++; /* index into argv, past the subcommand */
    if (strcmp(sub, "draw") == 0)
        return cmd_draw(cli, &o);
    if (strcmp(sub, "redraw") == 0)
        return cmd_redraw(cli, &o);
    if (strcmp(sub, "list") == 0)
        return cmd_list(cli, &o);
    if (strcmp(sub, "results") == 0)
        return cmd_results(cli, &o);
    if ((strcmp(sub, "verify") == 0 || strcmp(sub, "check") == 0) && optind == argc - 1)
        return strcmp(sub, "verify") == 0 ? cmd_verify(cli, argv[optind]) : cmd_check(cli, argv[optind], &o);
    fputs(SPOT_USAGE, stderr);
    return PS_EXIT_USAGE;
}
