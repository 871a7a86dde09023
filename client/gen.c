/* gen.c - the generate subcommand: realistic synthetic records for demos,
 * tests and benchmarks, deterministic for a seed.
 *
 * Persons get valid GB 11643 ID numbers (area code from their unit, birth
 * date, sequence with the sex digit, MOD 11-2 check digit), common Chinese
 * surnames and given names.  Records go straight into the outbox in large
 * transactions, as if entered offline.
 */
#include "cli.h"
#include "cache.h"
#include "err.h"
#include "ids.h"
#include "record_fmt.h"
#include "scope.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct rng {
    uint64_t s;
} rng_t;

/* splitmix64: small, fast and good enough for synthetic data. */
static uint64_t rnd(rng_t *r)
{
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint32_t rnd_below(rng_t *r, uint32_t n)
{
    return (uint32_t)(rnd(r) % n);
}

static const char *const surnames[] = {"王", "李", "张", "刘", "陈", "杨", "黄", "赵", "吴", "周",
                                       "徐", "孙", "马", "朱", "胡", "郭", "何", "高", "林", "罗",
                                       "郑", "梁", "谢", "宋", "唐", "许", "韩", "冯", "邓", "曹"};
static const char *const given_m[] = {"伟", "强", "磊", "军", "洋", "勇", "杰", "涛", "明", "超",
                                      "建国", "志强", "俊杰", "浩然", "子轩", "宇航", "文博", "国华"};
static const char *const given_f[] = {"芳", "娜", "敏", "静", "丽", "艳", "娟", "霞", "玲", "婷",
                                      "秀英", "桂兰", "欣怡", "梓涵", "雨桐", "思琪", "佳怡", "晓燕"};
static const char *const ethnicities[] = {"汉族", "汉族", "汉族", "汉族", "汉族", "汉族", "汉族",
                                          "汉族", "回族", "满族", "蒙古族", "土家族"};
static const char *const streets[] = {"建设路", "人民路", "解放街", "和平里", "光明巷", "胜利大街",
                                      "钢城路", "新华路", "幸福街", "朝阳路"};

/** Computes the GB 11643 (ISO 7064 MOD 11-2) check character of 17 digits. */
static char id_check(const char *d17)
{
    static const int w[17] = {7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2};
    static const char map[] = "10X98765432";
    int sum = 0;
    for (int i = 0; i < 17; i++)
        sum += (d17[i] - '0') * w[i];
    return map[sum % 11];
}

static int days_in_month(int y, int m)
{
    static const int d[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
        return 29;
    return d[m - 1];
}

/* Fills a person body.  Strings are malloc'd via ps_record_set. */
static int gen_person(rng_t *r, Popsync__Record *rec, const char *unit)
{
    char name[64], idn[48], date[48], phone[24], addr[128], err[128];
    int male = rnd_below(r, 100) < 51;
    int y = 1940 + (int)rnd_below(r, 84), m = 1 + (int)rnd_below(r, 12), d;
    unsigned seq;
    d = 1 + (int)rnd_below(r, (uint32_t)days_in_month(y, m));
    snprintf(name, sizeof(name), "%s%s", surnames[rnd_below(r, 30)],
             male ? given_m[rnd_below(r, 18)] : given_f[rnd_below(r, 18)]);
    /* Sequence digit 17 is odd for men, even for women. */
    seq = rnd_below(r, 500) * 2 + (male ? 1u : 0u);
    snprintf(idn, sizeof(idn), "%.6s%04d%02d%02d%03u", unit, y, m, d, seq % 1000);
    idn[17] = id_check(idn);
    idn[18] = '\0';
    snprintf(date, sizeof(date), "%04d-%02d-%02d", y, m, d);
    snprintf(phone, sizeof(phone), "1%u%09u", 3 + rnd_below(r, 7), rnd_below(r, 1000000000));
    snprintf(addr, sizeof(addr), "%s%u号", streets[rnd_below(r, 10)], 1 + rnd_below(r, 300));
    if (ps_record_set(rec, "orgunit", unit, err, sizeof(err)) || ps_record_set(rec, "name", name, err, sizeof(err)) ||
        ps_record_set(rec, "id_number", idn, err, sizeof(err)) ||
        ps_record_set(rec, "sex", male ? "male" : "female", err, sizeof(err)) ||
        ps_record_set(rec, "birth_date", date, err, sizeof(err)) ||
        ps_record_set(rec, "ethnicity", ethnicities[rnd_below(r, 12)], err, sizeof(err)) ||
        ps_record_set(rec, "registration", rnd_below(r, 100) < 85 ? "local" : "migrant", err, sizeof(err)) ||
        ps_record_set(rec, "marital_status", y > 2000 ? "single" : "married", err, sizeof(err)) ||
        ps_record_set(rec, "phone", phone, err, sizeof(err)) || ps_record_set(rec, "address", addr, err, sizeof(err)))
        return PS_EINVAL;
    return PS_OK;
}

int ps_cmd_generate(ps_cli_t *cli, int argc, char **argv)
{
    static const struct option lo[] = {{"persons", required_argument, NULL, 'p'},
                                       {"seed", required_argument, NULL, 's'},
                                       {"orgunit", required_argument, NULL, 'o'},
                                       {NULL, 0, NULL, 0}};
    enum { BATCH = 2000 };
    Popsync__Record *recs[BATCH];
    ps_cache_t *c = NULL;
    const char *unit = NULL;
    unsigned long long persons = 0, done = 0;
    rng_t r = {1};
    char err[512];
    int opt, rc = PS_EXIT_FAIL;

    while ((opt = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (opt) {
        case 'p': persons = strtoull(optarg, NULL, 10); break;
        case 's': r.s = strtoull(optarg, NULL, 10); break;
        case 'o': unit = optarg; break;
        default: return PS_EXIT_USAGE;
        }
    }
    if (persons == 0 || optind != argc) {
        ps_cli_err("generate: usage: generate --persons N [--seed S] [--orgunit CODE]");
        return PS_EXIT_USAGE;
    }
    if (ps_cache_open(&c, cli->data_dir, err, sizeof(err))) {
        ps_cli_err("generate: %s", err);
        return PS_EXIT_FAIL;
    }
    if (!unit)
        unit = ps_cache_meta(c)->orgunit;
    if (!ps_orgunit_valid(unit)) {
        ps_cli_err("generate: '%s' is not a 12-digit org unit code", unit);
        rc = PS_EXIT_USAGE;
        goto out;
    }
    while (done < persons) {
        size_t n = persons - done < BATCH ? (size_t)(persons - done) : BATCH, made = 0;
        int frc = PS_OK;
        for (; made < n; made++) {
            Popsync__Record *rec = NULL;
            if ((frc = ps_record_new(&rec, ps_kind_from_name("person"))))
                break;
            recs[made] = rec;
            rec->id.data = malloc(PS_ID_LEN);
            rec->id.len = PS_ID_LEN;
            if (!rec->id.data || (frc = ps_uuid7(rec->id.data)) || (frc = gen_person(&r, rec, unit))) {
                made++;
                frc = frc ? frc : PS_ENOMEM;
                break;
            }
        }
        if (frc == PS_OK)
            frc = ps_cache_put_local_many(c, recs, n);
        for (size_t i = 0; i < made; i++)
            ps_record_free(recs[i]);
        if (frc) {
            ps_cli_err("generate: %s", ps_strerror(frc));
            goto out;
        }
        done += n;
    }
    printf("generated %llu persons in %s\n", done, unit);
    rc = PS_EXIT_OK;
out:
    ps_cache_close(c);
    return rc;
}
