/* gen.c - the generate subcommand: a realistic synthetic district for demos,
 * tests and benchmarks.
 *
 * Owns: `popsync generate --persons N [--seed S] [--orgunit CODE]
 * [--orgunits FILE] [--stats]` and everything it makes up: persons in
 * households, births, migrations, benefits and service visits, spread over
 * the villages and communities under CODE (default: the cache's own unit).
 * The org-unit tree comes from --orgunits, else $POPSYNC_ORGUNITS, else the
 * copy the cache keeps from init or sync; with no tree everything goes to
 * CODE itself.  Records go straight into the outbox in transactions of
 * about BATCH records, as if entered offline.
 *
 * Determinism: the same seed, --persons, --orgunit and org-unit tree give
 * the same records field for field, record ids included, on a given day.
 * Dates are drawn backwards from "today" (the clock's local date) so that
 * nothing is ever in the future; no generated date is later than yesterday,
 * so a server a timezone behind still accepts them.  A run on another day
 * shifts the dates, nothing else.
 *
 * Ids are UUIDv7-shaped: the timestamp is ID_BASE_MS (2026-01-01) plus one
 * millisecond per record, the 74 random bits come from a stream seeded with
 * (seed, unit).  Ids ascend within a run, so LMDB appends, and runs for
 * other seeds or units do not collide.
 *
 * Order of writing: references first, since the server validates a push in
 * order.  Person and household point at each other, so the cycle is broken
 * at the head, once per household:
 *   1. the head, with household_id empty (the household's head_id is the
 *      link: a household's members are its head plus the persons naming it),
 *   2. the household, head_id = the head,
 *   3. the other members, household_id = the household,
 *   4. their events: births (mother = a woman of the household),
 *      migrations, benefits, service visits.
 * Every record passes ps_validate_record as it is made, with a ref_exists
 * that knows only the records already written in its household group; since
 * no reference ever leaves the group, that checks existence and order, and
 * nothing from earlier groups is kept.  Memory is one batch of records plus
 * a bitmap of used ID-number sequence codes (~5 MB), whatever N is.
 *
 * Proportions (of persons): households 1 per ~2.8, births ~7 per 1000 a year
 * over the last three years with a sex ratio of 108 boys per 100 girls
 * (dealt from shuffled decks, so small runs keep it too), migrations ~3%,
 * benefits ~4%, service visits ~15%.
 */
#include "cli.h"
#include "cache.h"
#include "dates.h"
#include "err.h"
#include "ids.h"
#include "orgunit.h"
#include "record_fmt.h"
#include "scope.h"
#include "policy.h"
#include "validate.h"
#include "vctx.h"

#include <jansson.h>

#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum {
    BATCH = 2000,     /* records per transaction */
    GROUP_MAX = 256,  /* bound on one household's records (6 persons and their events) */
    MAX_PERSONS = 50000000,
    FIRST_YEAR = 1920 /* oldest birth year the ID-number bitmap covers */
};

#define ID_BASE_MS 1767225600000ull /* 2026-01-01T00:00:00Z */

/* ---- random numbers ------------------------------------------------------ */

typedef struct rng {
    uint64_t s;
} rng_t;

/* splitmix64: small, fast, and every seed gives a full-period stream. */
static uint64_t rnd(rng_t *r)
{
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Uniform in [0, n): multiply-shift, no division on the hot path. */
static uint32_t rnd_below(rng_t *r, uint32_t n)
{
    return (uint32_t)(((rnd(r) >> 32) * (uint64_t)n) >> 32);
}

/* Uniform in [lo, hi]. */
static int rnd_range(rng_t *r, int lo, int hi)
{
    return lo + (int)rnd_below(r, (uint32_t)(hi - lo + 1));
}

/* True with probability permille/1000. */
static int chance(rng_t *r, uint32_t permille)
{
    return rnd_below(r, 1000) < permille;
}

static uint64_t hash_str(uint64_t h, const char *s)
{
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 0x100000001b3ull; /* FNV-1a */
    return h;
}

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))
#define PICK(r, a) ((a)[rnd_below((r), (uint32_t)NELEM(a))])

/* ---- dates as day numbers (days since 1970-01-01), proleptic Gregorian ---- */

/* YYYY-MM-DD by hand: dates are on the hot path, and years stay in 1000..9999. */
static void fmt_date(int32_t day, char out[16])
{
    int y, m, d;
    ps_civil_from_days(day, &y, &m, &d);
    out[0] = (char)('0' + y / 1000 % 10);
    out[1] = (char)('0' + y / 100 % 10);
    out[2] = (char)('0' + y / 10 % 10);
    out[3] = (char)('0' + y % 10);
    out[4] = '-';
    out[5] = (char)('0' + m / 10);
    out[6] = (char)('0' + m % 10);
    out[7] = '-';
    out[8] = (char)('0' + d / 10);
    out[9] = (char)('0' + d % 10);
    out[10] = '\0';
}

/* Completed years of someone born on day `birth`, on day `on`. */
static int age_on(int32_t birth, int32_t on)
{
    int by, bm, bd, y, m, d;
    ps_civil_from_days(birth, &by, &bm, &bd);
    ps_civil_from_days(on, &y, &m, &d);
    return y - by - (m < bm || (m == bm && d < bd));
}

/* ---- reference tables ------------------------------------------------------ */

typedef struct weighted {
    const char *s;
    uint16_t w;
} weighted_t;

/* The hundred commonest surnames, weights in 1/10000 of the population. */
static const weighted_t surnames[] = {
    {"王", 710}, {"李", 700}, {"张", 670}, {"刘", 540}, {"陈", 450}, {"杨", 310}, {"黄", 220}, {"赵", 200},
    {"吴", 200}, {"周", 190}, {"徐", 150}, {"孙", 150}, {"马", 140}, {"朱", 130}, {"胡", 130}, {"郭", 110},
    {"何", 110}, {"高", 100}, {"林", 100}, {"罗", 90},  {"郑", 80},  {"梁", 80},  {"谢", 70},  {"宋", 60},
    {"唐", 60},  {"许", 60},  {"韩", 60},  {"冯", 60},  {"邓", 50},  {"曹", 50},  {"彭", 50},  {"曾", 50},
    {"肖", 50},  {"田", 50},  {"董", 50},  {"袁", 40},  {"潘", 40},  {"于", 40},  {"蒋", 40},  {"蔡", 40},
    {"余", 40},  {"杜", 40},  {"叶", 40},  {"程", 40},  {"苏", 30},  {"魏", 30},  {"吕", 30},  {"丁", 30},
    {"任", 30},  {"沈", 30},  {"姚", 30},  {"卢", 30},  {"姜", 30},  {"崔", 30},  {"钟", 30},  {"谭", 30},
    {"陆", 20},  {"汪", 20},  {"范", 20},  {"金", 20},  {"石", 20},  {"廖", 20},  {"贾", 20},  {"夏", 20},
    {"韦", 20},  {"付", 20},  {"方", 20},  {"白", 20},  {"邹", 20},  {"孟", 20},  {"熊", 20},  {"秦", 20},
    {"邱", 20},  {"江", 20},  {"尹", 20},  {"薛", 20},  {"闫", 20},  {"段", 20},  {"雷", 20},  {"侯", 20},
    {"龙", 20},  {"史", 20},  {"陶", 10},  {"黎", 10},  {"贺", 10},  {"顾", 10},  {"毛", 10},  {"郝", 10},
    {"龚", 10},  {"邵", 10},  {"万", 10},  {"钱", 10},  {"严", 10},  {"覃", 10},  {"武", 10},  {"戴", 10},
    {"莫", 10},  {"孔", 10},  {"向", 10},  {"汤", 10},  {"欧阳", 3}, {"司马", 1}, {"诸葛", 1}, {"上官", 1},
};

static const weighted_t ethnicities[] = {
    {"汉族", 9150}, {"回族", 160}, {"满族", 150}, {"蒙古族", 90}, {"壮族", 80}, {"土家族", 60},
    {"朝鲜族", 50}, {"苗族", 50},  {"彝族", 40},  {"藏族", 30},   {"维吾尔族", 30}, {"布依族", 20},
    {"侗族", 20},   {"瑶族", 20},  {"白族", 20},  {"锡伯族", 10}, {"土族", 10},   {"达斡尔族", 10},
};

/* Given names follow the fashion of the decade of birth. */
static const char *const given_m[4][24] = {
    {"建国", "建华", "国庆", "国华", "国强", "志刚", "志明", "德明", "德胜", "振华", "文彬", "永福",
     "长林", "树林", "福贵", "宝山", "玉林", "金生", "卫东", "卫国", "建军", "跃进", "广才", "春生"},
    {"伟", "勇", "军", "强", "刚", "平", "斌", "辉", "明", "建军", "建平", "海涛",
     "志强", "永强", "红兵", "卫东", "立新", "晓东", "海军", "新华", "国平", "立军", "文华", "建新"},
    {"伟", "磊", "涛", "鹏", "超", "杰", "浩", "亮", "强", "波", "宇", "帅",
     "俊杰", "志伟", "晓明", "海波", "鹏飞", "文杰", "振宇", "博文", "家豪", "天宇", "子健", "凯"},
    {"浩然", "子轩", "宇轩", "梓豪", "俊熙", "宇航", "博文", "皓轩", "浩宇", "睿", "奕辰", "明轩",
     "天佑", "思远", "沐阳", "昊天", "晨阳", "铭泽", "一鸣", "子墨", "宇辰", "嘉树", "泽宇", "煜祺"},
};
static const char *const given_f[4][24] = {
    {"秀英", "桂英", "秀兰", "桂兰", "玉兰", "桂芳", "秀珍", "淑珍", "凤英", "玉珍", "玉梅", "凤兰",
     "素芬", "淑英", "翠花", "桂珍", "秀云", "兰英", "凤芝", "金凤", "淑兰", "秀荣", "玉英", "桂香"},
    {"丽", "红", "艳", "敏", "霞", "燕", "萍", "玲", "丽华", "红梅", "艳红", "海燕",
     "晓红", "丽娟", "春梅", "秀梅", "玉霞", "红霞", "丽萍", "雪梅", "美玲", "彩霞", "桂华", "淑芳"},
    {"静", "婷", "娜", "丹", "琳", "敏", "倩", "颖", "婷婷", "晓燕", "丽娜", "雪",
     "慧", "佳", "晶晶", "欣", "梦", "思雨", "雅静", "文静", "亚楠", "璐", "春燕", "晓丽"},
    {"梓涵", "欣怡", "雨桐", "诗涵", "可馨", "紫涵", "一诺", "思琪", "佳怡", "雨涵", "梦瑶", "若曦",
     "语桐", "子萱", "欣妍", "梓萱", "芷若", "晨曦", "安琪", "依诺", "诗琪", "梦琪", "雨萱", "静怡"},
};

static const char *const roads[] = {
    "建设路", "人民路", "解放路", "和平路", "胜利街", "钢城大街", "新华路", "朝阳路", "幸福街", "光明路",
    "文化路", "长江路", "黄河路", "民主路", "团结路", "青年路", "中山路", "工业路", "站前街", "育才路",
    "迎宾大道", "振兴路", "园林路", "滨河路", "体育路", "学府路", "东风路", "红旗街", "前进路", "富民路",
};
static const char *const estates[] = {
    "幸福家园", "阳光花园", "钢城新村", "和平里", "锦绣华庭", "翠竹苑", "金色家园", "康居小区", "怡景苑", "丽水湾",
    "职工新村", "新华里", "光明小区", "盛世华城", "书香园", "东方明珠花园", "龙泉苑", "凤凰城", "碧桂园", "世纪花园",
};
static const char *const groups_cn[] = {"一组", "二组", "三组", "四组", "五组", "六组", "七组", "八组"};

static const char *const phone_prefixes[] = {
    "130", "131", "132", "133", "134", "135", "136", "137", "138", "139", "150", "151", "152", "153",
    "155", "156", "157", "158", "159", "166", "173", "175", "176", "177", "180", "181", "182", "183",
    "185", "186", "187", "188", "189", "191", "198", "199",
};

/* Province-level names by the first two digits of a division code. */
static const struct {
    char code[3];
    const char *name;
} provinces[] = {
    {"11", "北京市"}, {"12", "天津市"}, {"13", "河北省"}, {"14", "山西省"}, {"15", "内蒙古自治区"},
    {"21", "辽宁省"}, {"22", "吉林省"}, {"23", "黑龙江省"}, {"31", "上海市"}, {"32", "江苏省"},
    {"33", "浙江省"}, {"34", "安徽省"}, {"35", "福建省"}, {"36", "江西省"}, {"37", "山东省"},
    {"41", "河南省"}, {"42", "湖北省"}, {"43", "湖南省"}, {"44", "广东省"}, {"45", "广西壮族自治区"},
    {"46", "海南省"}, {"50", "重庆市"}, {"51", "四川省"}, {"52", "贵州省"}, {"53", "云南省"},
    {"54", "西藏自治区"}, {"61", "陕西省"}, {"62", "甘肃省"}, {"63", "青海省"}, {"64", "宁夏回族自治区"},
    {"65", "新疆维吾尔自治区"},
};

/* Places outside the district: counties migrants come from, and the cities
 * people leave for.  A town index i names town i of the list below and gives
 * the code its township digits, so a code always reads as the same name. */
typedef struct place {
    const char *area; /* 6-digit county-level code */
    const char *name;
    int city;         /* 1: urban district (街道), 0: rural county (镇) */
} place_t;

static const place_t far_places[] = {
    {"411627", "河南省周口市太康县", 0},   {"411621", "河南省周口市扶沟县", 0},
    {"411522", "河南省信阳市光山县", 0},   {"341221", "安徽省阜阳市临泉县", 0},
    {"341222", "安徽省阜阳市太和县", 0},   {"341321", "安徽省宿州市砀山县", 0},
    {"371321", "山东省临沂市沂南县", 0},   {"371725", "山东省菏泽市郓城县", 0},
    {"130423", "河北省邯郸市临漳县", 0},   {"511623", "四川省广安市邻水县", 0},
    {"510722", "四川省绵阳市三台县", 0},   {"430524", "湖南省邵阳市隆回县", 0},
    {"421126", "湖北省黄冈市蕲春县", 0},   {"360731", "江西省赣州市于都县", 0},
    {"140224", "山西省大同市灵丘县", 0},   {"230126", "黑龙江省哈尔滨市巴彦县", 0},
    {"610425", "陕西省咸阳市礼泉县", 0},   {"620522", "甘肃省天水市秦安县", 0},
    {"440306", "广东省深圳市宝安区", 1},   {"440307", "广东省深圳市龙岗区", 1},
    {"441900", "广东省东莞市", 1},         {"310115", "上海市浦东新区", 1},
    {"310112", "上海市闵行区", 1},         {"110108", "北京市海淀区", 1},
    {"110105", "北京市朝阳区", 1},         {"120116", "天津市滨海新区", 1},
    {"320506", "江苏省苏州市吴中区", 1},   {"330110", "浙江省杭州市余杭区", 1},
    {"440113", "广东省广州市番禺区", 1},   {"500154", "重庆市开州区", 0},
};
static const char *const rural_towns[] = {"城关镇", "新集镇", "王庄镇", "李集镇", "大营镇", "马头镇",
                                          "张店镇", "石桥镇", "柳河镇", "杨楼镇", "高庙镇", "双庙镇"};
static const char *const city_streets[] = {"新城街道", "城南街道", "东湖街道", "西城街道", "北苑街道",
                                           "南山街道", "滨海街道", "中心街道", "开发区街道", "新安街道"};

static const char *const employers[] = {
    "金城钢铁集团有限公司", "宏达建筑工程有限公司",   "顺通物流有限公司",     "鑫源餐饮管理有限公司",
    "华信电子科技有限公司", "安居家政服务有限公司",   "永盛商贸有限公司",     "恒泰机械制造有限公司",
    "城建市政工程有限公司", "康宁医疗器械有限公司",   "瑞丰食品有限公司",     "个体经营",
    "中通快递网点",         "美佳超市连锁有限公司",   "天成纺织有限公司",     "利民汽车修理厂",
};
static const char *const hospitals[] = {"妇幼保健院", "人民医院", "中医医院", "第二人民医院"};

/* Service kinds and what their visits typically conclude. */
static const char *const outcomes_pre[] = {"检查未见异常，可以计划怀孕", "建议补充叶酸后复查", "发现贫血，已转诊",
                                           "夫妇双方检查完成，结果正常"};
static const char *const outcomes_repro[] = {"未见异常", "宫颈炎症，已给予治疗", "乳腺增生，建议三个月后复查",
                                             "建议进一步检查", "未见异常，已宣教"};
static const char *const outcomes_follow[] = {"已随访，情况稳定", "已随访，症状好转", "电话随访，无不适",
                                              "已随访，建议继续观察"};
static const char *const outcomes_supplies[] = {"已发放避孕套", "已发放口服避孕药", "已发放避孕药具并指导使用",
                                                "已登记，下月领取"};
static const char *const outcomes_consult[] = {"咨询生育政策，已解答", "咨询奖励扶助申领条件，已解答",
                                               "咨询孕前检查，已预约", "咨询避孕方法，已指导",
                                               "咨询流动人口证明办理，已告知"};

/* ---- generator state ------------------------------------------------------- */

enum { MS_SINGLE = 1, MS_MARRIED, MS_DIVORCED, MS_WIDOWED };
enum { ROLE_HEAD, ROLE_SPOUSE, ROLE_CHILD, ROLE_PARENT };

/** A village or community that receives persons. */
typedef struct leaf {
    char code[13];
    const char *name;      /**< NULL with no tree */
    const char *town_name; /**< township's name, NULL when unknown */
    char town[13];         /**< township code */
    int town_digit;        /**< first digit of ID-number sequence codes: keeps townships apart */
    int rural;             /**< village (村) rather than community (社区) */
    uint64_t persons;      /**< how many to place here */
} leaf_t;

typedef struct member {
    uint8_t id[PS_ID_LEN];
    int male;
    int32_t birth;
    int age;
    int marital;
    int role;
} member_t;

typedef struct gen {
    rng_t r;                 /**< content */
    rng_t idr;               /**< random bits of ids */
    uint64_t next_ms;        /**< timestamp of the next id */
    int32_t today, last;     /**< today; the latest date generated (yesterday) */
    int today_y;
    ps_cache_t *c;
    ps_client_vctx_t vc;       /**< validation as `add` does it; the batch is the household group */
    const ps_orgunits_t *tree;
    const char *district_name; /**< tree root's name, or NULL */
    char district[7];          /**< 6-digit area code of ID numbers */
    char addr_prefix[128];     /**< province + district */
    leaf_t *leaves;
    size_t nleaves;
    leaf_t *dleaves;       /**< leaves of the whole district (migrations inside it) */
    size_t ndleaves;
    uint8_t *idbits;       /**< used (birth day, sequence code) pairs */
    int32_t idbits_day0;   /**< day of bit 0: FIRST_YEAR-01-01 */
    int seq_start;         /**< first code index (0..49) tried each day: (seed % 5) * 10 */
    uint8_t sex_deck[25];  /**< child sexes, dealt in shuffled decks */
    size_t deck_pos;
    uint32_t surname_total, ethnicity_total; /**< sums of the weight tables */
    Popsync__Record *recs[BATCH + GROUP_MAX];
    size_t n, group;       /**< records waiting; where the current household starts */
    uint64_t count[8];     /**< records made, by kind */
    uint64_t person_bytes;        /**< packed persons as written to the outbox */
    uint64_t person_bytes_stored; /**< the same with the server's revision and maker */
    double write_secs;            /**< time spent in the cache's transactions */
    int rc;                /**< first failure; later calls do nothing */
    char err[384];
} gen_t;

/* ---- record making -------------------------------------------------------- */

static void make_id(gen_t *g, uint8_t id[PS_ID_LEN])
{
    uint64_t ms = g->next_ms++, a = rnd(&g->idr), b = rnd(&g->idr);
    for (int i = 0; i < 6; i++)
        id[i] = (uint8_t)(ms >> (40 - 8 * i));
    id[6] = (uint8_t)(0x70 | ((a >> 8) & 0x0f)); /* version 7 */
    id[7] = (uint8_t)a;
    id[8] = (uint8_t)(0x80 | ((b >> 56) & 0x3f)); /* variant 10 */
    for (int i = 9; i < 16; i++)
        id[i] = (uint8_t)(b >> (8 * (15 - i)));
}

/* A new record of kind with the given id (or a fresh one) in unit; NULL
 * after a failure (recorded in g->rc).  The caller fills it and passes it
 * to finish(), which owns it from then on. */
static Popsync__Record *start(gen_t *g, int kind, const char *unit, const uint8_t *id)
{
    Popsync__Record *rec = NULL;
    int rc;
    if (g->rc)
        return NULL;
    if ((rc = ps_record_new(&rec, kind)) || !(rec->id.data = malloc(PS_ID_LEN))) {
        ps_record_free(rec);
        g->rc = rc ? rc : PS_ENOMEM;
        snprintf(g->err, sizeof(g->err), "%s", ps_strerror(g->rc));
        return NULL;
    }
    rec->id.len = PS_ID_LEN;
    /* Test data says so, and a real district's server refuses it. */
    rec->synthetic = 1;
    if (id)
        memcpy(rec->id.data, id, PS_ID_LEN);
    else
        make_id(g, rec->id.data);
    if ((rc = ps_record_set(rec, "orgunit", unit, g->err, sizeof(g->err)))) {
        ps_record_free(rec);
        g->rc = rc;
        return NULL;
    }
    return rec;
}

/* Sets one field from its text form; a failure is a generator bug, kept
 * in g->rc with the field named. */
static void set(gen_t *g, Popsync__Record *rec, const char *field, const char *value)
{
    char e[256];
    if (!rec || g->rc)
        return;
    if ((g->rc = ps_record_set(rec, field, value, e, sizeof(e))))
        snprintf(g->err, sizeof(g->err), "%s %s: %s", ps_kind_name((int)rec->kind), field, e);
}

static void set_id(gen_t *g, Popsync__Record *rec, const char *field, const uint8_t id[PS_ID_LEN])
{
    char s[PS_UUID_STR];
    ps_uuid_format(id, s);
    set(g, rec, field, s);
}

static void set_date(gen_t *g, Popsync__Record *rec, const char *field, int32_t day)
{
    char s[16];
    fmt_date(day, s);
    set(g, rec, field, s);
}

/* Validates rec and appends it to the batch, or frees it. */
static void finish(gen_t *g, Popsync__Record *rec)
{
    ps_verrs_t v;
    if (!rec)
        return;
    v.n = 0;
    if (!g->rc && ps_validate_record(rec, &g->vc.ctx, &v) > 0) {
        char id[PS_UUID_STR];
        ps_uuid_format(rec->id.data, id);
        g->rc = PS_EINVAL;
        snprintf(g->err, sizeof(g->err), "generated %s %s is invalid: %s: %s", ps_kind_name((int)rec->kind), id,
                 v.e[0].field, v.e[0].reason);
    }
    if (!g->rc && g->n >= NELEM(g->recs)) {
        g->rc = PS_ETOOBIG;
        snprintf(g->err, sizeof(g->err), "one household made more than %d records", GROUP_MAX);
    }
    if (!g->rc && (g->rc = ps_client_vctx_note(&g->vc, rec->id.data, (int)rec->kind)))
        snprintf(g->err, sizeof(g->err), "%s", ps_strerror(g->rc));
    if (g->rc) {
        ps_record_free(rec);
        return;
    }
    g->recs[g->n++] = rec;
    g->count[rec->kind < 8 ? rec->kind : 0]++;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A record's packed size once synced: the server stores it with its
 * revision and the maker's node, which the outbox copy lacks. */
static size_t stored_size(Popsync__Record *rec, const uint8_t node[PS_ID_LEN])
{
    Popsync__Rev rev = POPSYNC__REV__INIT, *saved = rec->rev;
    ProtobufCBinaryData by = rec->changed_by;
    size_t n;
    rev.gen = 1;
    rev.hlc = ps_now_ms() << 16;
    rev.node.data = (uint8_t *)node;
    rev.node.len = PS_ID_LEN;
    rec->rev = &rev;
    rec->changed_by = rev.node;
    n = protobuf_c_message_get_packed_size(&rec->base);
    rec->rev = saved;
    rec->changed_by = by;
    return n;
}

/* Writes the waiting records in one transaction. */
static void flush(gen_t *g)
{
    int rc;
    if (g->rc || g->n == 0)
        return;
    double t0 = now_s();
    rc = ps_cache_put_local_many(g->c, g->recs, g->n);
    g->write_secs += now_s() - t0;
    if (rc) {
        g->rc = rc;
        snprintf(g->err, sizeof(g->err), "writing to the cache: %s", ps_strerror(rc));
        return;
    }
    for (size_t i = 0; i < g->n; i++) {
        if (g->recs[i]->kind == POPSYNC__KIND__KIND_PERSON) {
            g->person_bytes += protobuf_c_message_get_packed_size(&g->recs[i]->base);
            g->person_bytes_stored += stored_size(g->recs[i], ps_cache_meta(g->c)->node);
        }
        ps_record_free(g->recs[i]);
    }
    g->n = g->group = 0;
}

/* ---- persons ---------------------------------------------------------------- */

static const char *pick_weighted(rng_t *r, const weighted_t *t, size_t n, uint32_t total)
{
    uint32_t x = rnd_below(r, total);
    for (size_t i = 0; i < n; i++) {
        if (x < t[i].w)
            return t[i].s;
        x -= t[i].w;
    }
    return t[0].s;
}

static uint32_t weight_total(const weighted_t *t, size_t n)
{
    uint32_t s = 0;
    for (size_t i = 0; i < n; i++)
        s += t[i].w;
    return s;
}

/* A sequence code (3 digits, odd for men) not yet used for this birth date:
 * the first digit comes from the township, as a police station's block
 * would, so townships generated by separate runs do not collide; within
 * it, a run starts at a tenth chosen by its seed (seq_start), so runs of
 * one township with seeds that differ modulo 5 do not collide either
 * unless a township has more than ten people of one sex born on one day.
 * The bitmap keeps one run's codes unique and holds the numbers already in
 * the cache (mark_cached_numbers), so generating twice into one cache
 * repeats none: the server keeps one live person per ID number.  -1 when
 * all 500 are taken. */
static int take_seq(gen_t *g, int32_t birth, int male, int town_digit)
{
    size_t base = (size_t)(birth - g->idbits_day0) * 1000;
    int start = g->seq_start;
    for (int block = 0; block < 10; block++) {
        int hundreds = (town_digit + block) % 10;
        for (int k = 0; k < 50; k++) {
            int seq = hundreds * 100 + ((start + k) % 50) * 2 + (male ? 1 : 0);
            size_t bit = base + (size_t)seq;
            if (!(g->idbits[bit >> 3] & (1u << (bit & 7)))) {
                g->idbits[bit >> 3] |= (uint8_t)(1u << (bit & 7));
                return seq;
            }
        }
    }
    return -1;
}

/* The number written in n decimal digits at s, or -1. */
static int digits(const char *s, int n)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

/* ps_cache_foreach: marks the (birth day, code) of a person already in the
 * cache whose number is in this district, so this run does not reuse it. */
static int mark_cached_number(Popsync__Record *r, void *arg)
{
    gen_t *g = arg;
    const char *idn = r->body_case == POPSYNC__RECORD__BODY_PERSON ? r->person->id_number : NULL;
    int32_t day;
    int code;
    size_t bit;
    if (r->deleted || !idn || strlen(idn) != 18 || strncmp(idn, g->district, 6) != 0)
        return PS_OK;
    day = ps_days_from_civil(digits(idn + 6, 4), digits(idn + 10, 2), digits(idn + 12, 2));
    code = digits(idn + 14, 3);
    if (day < g->idbits_day0 || day > g->today || code < 0)
        return PS_OK;
    bit = (size_t)(day - g->idbits_day0) * 1000 + (size_t)code;
    g->idbits[bit >> 3] |= (uint8_t)(1u << (bit & 7));
    return PS_OK;
}

static const char *given_name(gen_t *g, const member_t *m)
{
    int y, mo, d, era;
    ps_civil_from_days(m->birth, &y, &mo, &d);
    era = y < 1960 ? 0 : y < 1980 ? 1 : y < 2000 ? 2 : 3;
    return (m->male ? given_m : given_f)[era][rnd_below(&g->r, 24)];
}

/* Writes one person; household may be NULL (the head). */
static void emit_person(gen_t *g, const leaf_t *lf, member_t *m, const char *surname, const char *ethnicity,
                        int migrant, const char *address, const uint8_t *household, char contact[16])
{
    static const char *const marital[] = {"", "single", "married", "divorced", "widowed"};
    Popsync__Record *rec;
    char idn[64], name[64], phone[16];
    int seq = -1;

    /* A full day of codes is rare but possible in a huge single-unit run:
     * the person is then born a day earlier (or later, at the first day). */
    {
        int32_t step = -1;
        if (m->birth < g->idbits_day0)
            m->birth = g->idbits_day0;
        while ((seq = take_seq(g, m->birth, m->male, lf->town_digit)) < 0) {
            if (m->birth == g->idbits_day0)
                step = 1;
            if (m->birth + step > g->today)
                break; /* every code of every day taken: cannot happen below 10^7 persons */
            m->birth += step;
        }
    }
    {
        int y, mo, d;
        ps_civil_from_days(m->birth, &y, &mo, &d);
        snprintf(idn, sizeof(idn), "%.6s%04d%02d%02d%03d", g->district, y, mo, d, seq < 0 ? (m->male ? 1 : 0) : seq);
        idn[17] = ps_id_check_char(idn);
        idn[18] = '\0';
    }
    snprintf(name, sizeof(name), "%s%s", surname, given_name(g, m));
    rec = start(g, POPSYNC__KIND__KIND_PERSON, lf->code, m->id);
    set(g, rec, "id_number", idn);
    set(g, rec, "name", name);
    set(g, rec, "sex", m->male ? "male" : "female");
    set_date(g, rec, "birth_date", m->birth);
    set(g, rec, "ethnicity", ethnicity);
    set(g, rec, "registration", migrant ? "migrant" : "local");
    set(g, rec, "marital_status", marital[m->marital]);
    if (household)
        set_id(g, rec, "household_id", household);
    /* Children under 16 are reached through the household's first adult
     * with a phone; some of the very old have none. */
    if (m->age >= 16 && !(m->age >= 80 && chance(&g->r, 400))) {
        snprintf(phone, sizeof(phone), "%s%08u", PICK(&g->r, phone_prefixes), rnd_below(&g->r, 100000000));
        set(g, rec, "phone", phone);
        if (!contact[0])
            memcpy(contact, phone, sizeof(phone));
    } else if (m->age < 16 && contact[0]) {
        set(g, rec, "phone", contact);
    }
    set(g, rec, "address", address);
    finish(g, rec);
}

/* Birth day for someone `age` completed years old today. */
static int32_t birth_for_age(gen_t *g, int age)
{
    int y, m, d;
    int32_t b;
    ps_civil_from_days(g->today, &y, &m, &d);
    if (m == 2 && d == 29)
        d = 28;
    b = ps_days_from_civil(y - age, m, d) - rnd_range(&g->r, 0, 364);
    return b > g->last ? g->last : b;
}

static void set_member(gen_t *g, member_t *m, int male, int age, int marital, int role)
{
    make_id(g, m->id);
    m->male = male;
    m->age = age < 0 ? 0 : age;
    m->birth = birth_for_age(g, m->age);
    m->age = age_on(m->birth, g->today);
    m->marital = marital;
    m->role = role;
}

/* Marital status of someone not living with a spouse. */
static int marital_alone(gen_t *g, int age, int male)
{
    uint32_t x = rnd_below(&g->r, 100);
    if (age < (male ? 23 : 21))
        return MS_SINGLE;
    if (age < 30)
        return x < 85 ? MS_SINGLE : MS_DIVORCED;
    if (age < 60)
        return x < 35 ? MS_SINGLE : x < 80 ? MS_DIVORCED : MS_WIDOWED;
    return x < 10 ? MS_SINGLE : x < 25 ? MS_DIVORCED : MS_WIDOWED;
}

/* Ages, sexes and relations of a household of `size`; returns the number of
 * members (= size). */
static size_t plan_household(gen_t *g, member_t *mem, size_t size)
{
    rng_t *r = &g->r;
    size_t n = 0;
    int head_age, couple, head_male, mother_age;

    if (size == 1) {
        head_male = chance(r, 480);
        head_age = chance(r, 450) ? rnd_range(r, 20, 54) : rnd_range(r, 55, 92);
        set_member(g, &mem[n++], head_male, head_age, marital_alone(g, head_age, head_male), ROLE_HEAD);
        return n;
    }
    couple = chance(r, size == 2 ? 600 : 880);
    if (size == 2 && couple)
        head_age = chance(r, 380) ? rnd_range(r, 23, 40) : rnd_range(r, 50, 86);
    else if (size == 2)
        head_age = rnd_range(r, 40, 85);
    else
        head_age = rnd_range(r, 29, 60);
    head_male = couple ? chance(r, 820) : chance(r, 350);
    set_member(g, &mem[n++], head_male, head_age, couple ? MS_MARRIED : marital_alone(g, head_age, head_male),
               ROLE_HEAD);
    mother_age = head_age;
    if (couple) {
        int sa = head_age + (head_male ? -rnd_range(r, 0, 5) : rnd_range(r, 0, 5));
        if (sa < 23)
            sa = 23;
        set_member(g, &mem[n++], !head_male, sa, MS_MARRIED, ROLE_SPOUSE);
        if (head_male)
            mother_age = sa;
    }
    /* Large households often keep a widowed parent of the head. */
    if (size >= 5 && n < size && chance(r, 500) && head_age <= 66) {
        int pa = head_age + rnd_range(r, 24, 32);
        set_member(g, &mem[n++], chance(r, 300), pa, chance(r, 250) ? MS_MARRIED : MS_WIDOWED, ROLE_PARENT);
    }
    /* Children: the first born when the mother was 22-34, then 2-6 years apart. */
    {
        int ca = mother_age - rnd_range(r, 22, 34);
        while (n < size) {
            int male = chance(r, 515), ms;
            if (ca < 0)
                ca = rnd_range(r, 0, 2);
            ms = ca < (male ? 23 : 21) ? MS_SINGLE : ca < 30 ? (chance(r, 800) ? MS_SINGLE : MS_DIVORCED)
                                                            : marital_alone(g, ca, male);
            set_member(g, &mem[n++], male, ca, ms, ROLE_CHILD);
            ca -= rnd_range(r, 2, 6);
        }
    }
    return n;
}

/* ---- events ------------------------------------------------------------------ */

static int deal_sex(gen_t *g)
{
    /* 13 boys and 12 girls a deck: 108 to 100, a typical sex ratio at birth.
     * A small deck keeps small runs (a township's few dozen births) close. */
    if (g->deck_pos == 0 || g->deck_pos >= NELEM(g->sex_deck)) {
        for (size_t i = 0; i < NELEM(g->sex_deck); i++)
            g->sex_deck[i] = i < 13;
        for (size_t i = NELEM(g->sex_deck) - 1; i > 0; i--) {
            size_t j = rnd_below(&g->r, (uint32_t)(i + 1));
            uint8_t t = g->sex_deck[i];
            g->sex_deck[i] = g->sex_deck[j];
            g->sex_deck[j] = t;
        }
        g->deck_pos = 0;
    }
    return g->sex_deck[g->deck_pos++];
}

static void fmt_period_month(int32_t day, char out[16])
{
    fmt_date(day, out);
    out[7] = '\0';
}

/* A benefit for person m.  scheme decides period and amount. */
static void emit_benefit(gen_t *g, const leaf_t *lf, const member_t *m, const char *scheme, int32_t when)
{
    Popsync__Record *rec;
    char period[16], amount[24];
    int32_t due, paid;
    long long fen;
    int y, mo, d;
    uint32_t x = rnd_below(&g->r, 100);

    ps_civil_from_days(when, &y, &mo, &d);
    if (strcmp(scheme, "rural_reward") == 0) {
        /* 960 yuan a person a year, paid in the spring. */
        snprintf(period, sizeof(period), "%04d", y);
        fen = 96000;
        due = ps_days_from_civil(y, 3, 1) + rnd_range(&g->r, 0, 90);
    } else if (strcmp(scheme, "special_support") == 0) {
        /* Monthly: a disabled only child, or one who died. */
        fmt_period_month(when, period);
        fen = chance(&g->r, 600) ? 46000 : 59000;
        due = ps_days_from_civil(y, mo, 1) + rnd_range(&g->r, 31, 55);
    } else if (strcmp(scheme, "only_child_reward") == 0) {
        /* 10 yuan a month. */
        fmt_period_month(when, period);
        fen = 1000;
        due = ps_days_from_civil(y, mo, 1) + rnd_range(&g->r, 35, 60);
    } else {
        /* first_birth_subsidy: once, some weeks after the birth. */
        fmt_period_month(when, period);
        fen = 200000;
        due = when + rnd_range(&g->r, 20, 80);
    }
    /* About one in twenty is paid late, as arrears. */
    paid = due + (chance(&g->r, 50) ? rnd_range(&g->r, 60, 180) : 0);
    rec = start(g, POPSYNC__KIND__KIND_BENEFIT, lf->code, NULL);
    set_id(g, rec, "person_id", m->id);
    set(g, rec, "scheme", scheme);
    set(g, rec, "period", period);
    snprintf(amount, sizeof(amount), "%lld", fen);
    set(g, rec, "amount_fen", amount);
    if (paid <= g->last && x < 92) {
        set(g, rec, "status", "paid");
        set_date(g, rec, "paid_date", paid);
    } else {
        set(g, rec, "status", x < 60 ? "approved" : "eligible");
    }
    finish(g, rec);
}

static void emit_births(gen_t *g, const leaf_t *lf, const member_t *m, size_t kids)
{
    static const char *const orders[] = {"1", "2", "3"};
    Popsync__Record *rec;
    int32_t day = 0;
    int order, tries;
    char place[128];

    if (m->male || m->age < 20 || m->age > 45)
        return;
    /* Couples without children at home are the likeliest to have one. */
    if (!chance(&g->r, m->marital != MS_MARRIED ? 8 : kids == 0 ? 400 : kids == 1 ? 190 : 40))
        return;
    /* Mothers are 20 to 42 on the day; a date in the last three years. */
    for (tries = 0; tries < 4; tries++) {
        int a;
        day = g->last - rnd_range(&g->r, 0, 3 * 365 - 1);
        a = age_on(m->birth, day);
        if (a >= 20 && a <= 42)
            break;
    }
    if (tries == 4)
        return;
    /* The order follows the children already at home (a few have others
     * living elsewhere). */
    order = kids >= 2 ? 3 : (int)kids + 1;
    if (order < 3 && chance(&g->r, 100))
        order++;
    if (g->district_name)
        snprintf(place, sizeof(place), "%s%s", g->district_name, PICK(&g->r, hospitals));
    else
        snprintf(place, sizeof(place), "区%s", PICK(&g->r, hospitals));
    rec = start(g, POPSYNC__KIND__KIND_BIRTH, lf->code, NULL);
    set_id(g, rec, "mother_id", m->id);
    set(g, rec, "child_sex", deal_sex(g) ? "male" : "female");
    set_date(g, rec, "birth_date", day);
    set(g, rec, "birth_order", orders[order - 1]);
    set(g, rec, "place", place);
    finish(g, rec);
    if (order == 1 && chance(&g->r, 700))
        emit_benefit(g, lf, m, "first_birth_subsidy", day);
}

/* The township digits (7-9) of a division code. */
static int town_number(const char *code)
{
    return (code[6] - '0') * 100 + (code[7] - '0') * 10 + (code[8] - '0');
}

/* The other place of a migration: another township of this district now and
 * then (so both ends of the two-place exchange are ours), else a county or
 * city elsewhere. */
static void other_place(gen_t *g, const leaf_t *lf, int inflow, char code[32], char *text, size_t textlen)
{
    if (chance(&g->r, 180)) {
        if (g->ndleaves > 0) {
            for (int tries = 0; tries < 8; tries++) {
                const leaf_t *o = &g->dleaves[rnd_below(&g->r, (uint32_t)g->ndleaves)];
                if (strcmp(o->town, lf->town) != 0) {
                    snprintf(code, 32, "%s", o->code);
                    snprintf(text, textlen, "%s%s%s", g->district_name ? g->district_name : "",
                             o->town_name ? o->town_name : "", o->name ? o->name : "");
                    return;
                }
            }
        } else if (!g->tree) {
            /* No tree: a township-level code of the same district. */
            int own = town_number(lf->town), t;
            do
                t = rnd_range(&g->r, 1, 8);
            while (t == own);
            snprintf(code, 32, "%.6s%03d000", g->district, t);
            snprintf(text, textlen, "本区第%d街道", t);
            return;
        }
    }
    for (;;) {
        /* Migrants mostly come from rural counties and leave for cities. */
        const place_t *p = &PICK(&g->r, far_places);
        int want_city = inflow ? chance(&g->r, 150) : chance(&g->r, 700);
        size_t ti;
        if (p->city != want_city || strncmp(p->area, g->district, 6) == 0)
            continue;
        if (p->city) {
            ti = rnd_below(&g->r, (uint32_t)NELEM(city_streets));
            snprintf(code, 32, "%s%03zu000", p->area, ti + 1);
            snprintf(text, textlen, "%s%s", p->name, city_streets[ti]);
        } else {
            ti = rnd_below(&g->r, (uint32_t)NELEM(rural_towns));
            snprintf(code, 32, "%s%03zu000", p->area, 100 + ti + 1);
            snprintf(text, textlen, "%s%s", p->name, rural_towns[ti]);
        }
        return;
    }
}

static void emit_migration(gen_t *g, const leaf_t *lf, const member_t *m, int inflow)
{
    Popsync__Record *rec;
    char code[32], text[256];
    int32_t start_day, sub, fb;
    uint32_t x;

    other_place(g, lf, inflow, code, text, sizeof(text));
    start_day = g->last - rnd_range(&g->r, 0, 3 * 365 - 1);
    if (start_day < m->birth)
        start_day = m->birth;
    rec = start(g, POPSYNC__KIND__KIND_MIGRATION, lf->code, NULL);
    set_id(g, rec, "person_id", m->id);
    set(g, rec, "direction", inflow ? "inflow" : "outflow");
    set(g, rec, "other_place_code", code);
    set(g, rec, "other_place", text);
    set_date(g, rec, "start_date", start_day);
    if (chance(&g->r, 150)) {
        int32_t end = start_day + rnd_range(&g->r, 30, 600);
        if (end <= g->last)
            set_date(g, rec, "end_date", end);
    }
    if (!chance(&g->r, 100))
        set(g, rec, "employer", PICK(&g->r, employers));
    set(g, rec, "urgent", chance(&g->r, 100) ? "true" : "false");
    /* Submission to the other place: 90% of records, most within ten days,
     * some late (after 30); feedback for three in four of those. */
    if (chance(&g->r, 900)) {
        x = rnd_below(&g->r, 100);
        sub = start_day + (x < 70 ? rnd_range(&g->r, 0, 10) : x < 90 ? rnd_range(&g->r, 11, 30)
                                                                      : rnd_range(&g->r, 31, 40));
        if (sub <= g->last) {
            set_date(g, rec, "submitted_date", sub);
            if (chance(&g->r, 750)) {
                fb = sub + (chance(&g->r, 800) ? rnd_range(&g->r, 0, 15) : rnd_range(&g->r, 16, 45));
                if (fb <= g->last)
                    set_date(g, rec, "feedback_date", fb);
            }
        }
    }
    finish(g, rec);
}

static void emit_visit(gen_t *g, const leaf_t *lf, const member_t *m, const char *service, int32_t day)
{
    Popsync__Record *rec;
    const char *outcome;
    char provider[192];
    const char *district = g->district_name ? g->district_name : "区";

    if (strcmp(service, "prepregnancy_check") == 0)
        outcome = PICK(&g->r, outcomes_pre);
    else if (strcmp(service, "reproductive_check") == 0)
        outcome = PICK(&g->r, outcomes_repro);
    else if (strcmp(service, "followup") == 0)
        outcome = PICK(&g->r, outcomes_follow);
    else if (strcmp(service, "contraceptive_supplies") == 0)
        outcome = PICK(&g->r, outcomes_supplies);
    else
        outcome = PICK(&g->r, outcomes_consult);
    /* Checks are done at the district's maternal and child health hospital
     * or the township's centre; the rest close to home. */
    if ((strcmp(service, "prepregnancy_check") == 0 || strcmp(service, "reproductive_check") == 0) &&
        chance(&g->r, 500))
        snprintf(provider, sizeof(provider), "%s妇幼保健院", district);
    else if (lf->rural && lf->name && chance(&g->r, 600))
        snprintf(provider, sizeof(provider), "%s卫生室", lf->name);
    else if (lf->town_name)
        snprintf(provider, sizeof(provider), "%s%s", lf->town_name,
                 lf->rural ? "卫生院" : "社区卫生服务中心");
    else if (lf->name)
        snprintf(provider, sizeof(provider), "%s卫生服务站", lf->name);
    else
        snprintf(provider, sizeof(provider), "%s社区卫生服务中心", district);
    rec = start(g, POPSYNC__KIND__KIND_SERVICE_VISIT, lf->code, NULL);
    set_id(g, rec, "person_id", m->id);
    set(g, rec, "service", service);
    set_date(g, rec, "visit_date", day);
    set(g, rec, "provider", provider);
    set(g, rec, "outcome", outcome);
    finish(g, rec);
}

static void emit_visits(gen_t *g, const leaf_t *lf, const member_t *m)
{
    const char *svc;
    uint32_t p, x;
    int32_t day;

    if (m->age < 15)
        return;
    if (m->age <= 49)
        p = m->male ? 120 : m->marital == MS_MARRIED ? 400 : 180;
    else
        p = m->male ? 50 : 140;
    if (!chance(&g->r, p))
        return;
    x = rnd_below(&g->r, 100);
    if (m->age >= 20 && m->age <= 45 && m->marital == MS_MARRIED && x < 30)
        svc = "prepregnancy_check";
    else if (!m->male && m->age >= 20 && m->age <= 64 && x < 65)
        svc = "reproductive_check";
    else if (m->age <= 49 && m->marital == MS_MARRIED && x < 85)
        svc = "contraceptive_supplies";
    else
        svc = "consultation";
    day = g->last - rnd_range(&g->r, 0, 2 * 365 - 1);
    emit_visit(g, lf, m, svc, day);
    /* Checks that found something get a follow-up visit. */
    if (strcmp(svc, "consultation") != 0 && strcmp(svc, "contraceptive_supplies") != 0 && chance(&g->r, 300)) {
        int32_t f = day + rnd_range(&g->r, 14, 90);
        if (f <= g->last)
            emit_visit(g, lf, m, "followup", f);
    }
}

static void emit_benefits(gen_t *g, const leaf_t *lf, const member_t *m, size_t kids)
{
    int32_t when;
    /* A recent period: this year or the two before (months: the last two years). */
    if (m->age >= 60 && chance(&g->r, lf->rural ? 260 : 60)) {
        int y = g->today_y - rnd_range(&g->r, 0, 2);
        emit_benefit(g, lf, m, "rural_reward", ps_days_from_civil(y, 1, 1));
    } else if (m->age >= 49 && kids == 0 && chance(&g->r, 12)) {
        when = g->last - rnd_range(&g->r, 0, 2 * 365 - 1);
        emit_benefit(g, lf, m, "special_support", when);
    } else if (m->age >= 28 && m->age < 60 && kids == 1 && m->marital == MS_MARRIED && chance(&g->r, 110)) {
        when = g->last - rnd_range(&g->r, 0, 2 * 365 - 1);
        emit_benefit(g, lf, m, "only_child_reward", when);
    }
}

/* One household and everything that happens to its members. */
static void emit_household(gen_t *g, const leaf_t *lf, size_t size)
{
    member_t mem[8];
    const char *surname, *spouse_surname, *ethnicity, *parent_surname;
    uint8_t hh[PS_ID_LEN];
    char address[512], tail[160], contact[16] = "";
    int migrant;
    size_t n, kids = 0;
    rng_t *r = &g->r;
    uint32_t sur_total = g->surname_total;
    Popsync__Record *rec;

    g->group = g->n;
    ps_client_vctx_forget(&g->vc); /* references stay inside the household */
    n = plan_household(g, mem, size);
    make_id(g, hh);
    surname = pick_weighted(r, surnames, NELEM(surnames), sur_total);
    spouse_surname = pick_weighted(r, surnames, NELEM(surnames), sur_total);
    ethnicity = pick_weighted(r, ethnicities, NELEM(ethnicities), g->ethnicity_total);
    migrant = chance(r, lf->rural ? 70 : 190);
    /* Villages: a house in a village group, or a flat in the resettlement
     * blocks many suburban villages have moved into. */
    if (lf->rural && chance(r, 700))
        snprintf(tail, sizeof(tail), "%s%u号", PICK(r, groups_cn), 1 + rnd_below(r, 80));
    else if (lf->rural)
        snprintf(tail, sizeof(tail), "回迁楼%u号楼%u单元%u%02u室", 1 + rnd_below(r, 12), 1 + rnd_below(r, 4),
                 1 + rnd_below(r, 6), 1 + rnd_below(r, 2));
    else
        snprintf(tail, sizeof(tail), "%s%u号%s%u号楼%u单元%u%02u室", PICK(r, roads), 1 + rnd_below(r, 300),
                 PICK(r, estates), 1 + rnd_below(r, 30), 1 + rnd_below(r, 6), 1 + rnd_below(r, 18),
                 1 + rnd_below(r, 4));
    snprintf(address, sizeof(address), "%s%s%s%s", g->addr_prefix, lf->town_name ? lf->town_name : "",
             lf->name ? lf->name : "", tail);
    for (size_t i = 0; i < n; i++)
        kids += mem[i].role == ROLE_CHILD;
    parent_surname = chance(r, 300) ? surname : pick_weighted(r, surnames, NELEM(surnames), sur_total);

    /* 1. the head, 2. the household naming it, 3. the others naming the household. */
    emit_person(g, lf, &mem[0], mem[0].male ? surname : spouse_surname, ethnicity, migrant, address, NULL, contact);
    rec = start(g, POPSYNC__KIND__KIND_HOUSEHOLD, lf->code, hh);
    set_id(g, rec, "head_id", mem[0].id);
    set(g, rec, "address", address);
    finish(g, rec);
    for (size_t i = 1; i < n; i++) {
        const char *sn;
        /* Children carry the father's surname; a spouse and a parent their own. */
        if (mem[i].role == ROLE_SPOUSE)
            sn = mem[i].male ? surname : spouse_surname;
        else if (mem[i].role == ROLE_PARENT)
            sn = mem[i].male ? surname : parent_surname;
        else
            sn = (mem[0].male || (n > 1 && mem[1].role == ROLE_SPOUSE)) ? surname : spouse_surname;
        emit_person(g, lf, &mem[i], sn, ethnicity, migrant, address, hh, contact);
    }
    /* 4. events, each naming a person written above. */
    for (size_t i = 0; i < n; i++) {
        const member_t *m = &mem[i];
        size_t own_kids = (m->role == ROLE_HEAD || m->role == ROLE_SPOUSE) ? kids : 0;
        emit_births(g, lf, m, own_kids);
        if (migrant && m->age >= 16 && chance(r, 150))
            emit_migration(g, lf, m, 1);
        else if (!migrant && m->age >= 18 && m->age <= 60 && chance(r, 22))
            emit_migration(g, lf, m, 0);
        emit_benefits(g, lf, m, own_kids);
        emit_visits(g, lf, m);
    }
}

static size_t household_size(rng_t *r)
{
    /* 1:18% 2:29% 3:27% 4:14% 5:8% 6:4% - about 2.8 persons a household. */
    static const uint32_t cum[] = {18, 47, 74, 88, 96, 100};
    uint32_t x = rnd_below(r, 100);
    size_t i = 0;
    while (x >= cum[i])
        i++;
    return i + 1;
}

/* ---- units ------------------------------------------------------------------- */

static int is_leaf_kind(const char *kind)
{
    return strcmp(kind, "village") == 0 || strcmp(kind, "community") == 0;
}

/* Fills lf for unit u of the tree. */
static void leaf_from_tree(const ps_orgunits_t *t, const ps_orgunit_t *u, leaf_t *lf)
{
    const ps_orgunit_t *town = ps_orgunits_township(t, u->code);
    size_t ordinal = 0;
    memset(lf, 0, sizeof(*lf));
    snprintf(lf->code, sizeof(lf->code), "%s", u->code);
    lf->name = u->depth >= 2 ? u->name : NULL;
    lf->rural = strcmp(u->kind, "village") == 0 || strcmp(u->kind, "town") == 0;
    if (town) {
        snprintf(lf->town, sizeof(lf->town), "%s", town->code);
        lf->town_name = town->name;
        for (size_t i = 0, n = ps_orgunits_count(t); i < n; i++) {
            const ps_orgunit_t *x = ps_orgunits_at(t, i);
            if (x == town)
                break;
            ordinal += x->depth == 1;
        }
    } else {
        ps_orgunit_township(u->code, lf->town);
    }
    lf->town_digit = (int)(ordinal % 10);
}

/* Leaves (villages, communities) under root, or root itself; caller frees. */
static int collect_leaves(const ps_orgunits_t *t, const char *root, leaf_t **out, size_t *nout)
{
    size_t n = ps_orgunits_count(t), k = 0;
    leaf_t *v = calloc(n + 1, sizeof(*v));
    if (!v)
        return PS_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        const ps_orgunit_t *u = ps_orgunits_at(t, i);
        if (is_leaf_kind(u->kind) && ps_policy_within(t, u->code, root))
            leaf_from_tree(t, u, &v[k++]);
    }
    if (k == 0)
        leaf_from_tree(t, ps_orgunits_find(t, root), &v[k++]);
    *out = v;
    *nout = k;
    return PS_OK;
}

/* Shares N among the leaves with random weights (larger and smaller
 * villages), largest remainder first so the counts add up exactly. */
static void share_persons(gen_t *g, uint64_t total)
{
    uint32_t *w = calloc(g->nleaves, sizeof(*w));
    uint64_t sum = 0, given = 0;
    if (!w) {
        g->leaves[0].persons = total;
        for (size_t i = 1; i < g->nleaves; i++)
            g->leaves[i].persons = 0;
        return;
    }
    for (size_t i = 0; i < g->nleaves; i++)
        sum += (w[i] = 50 + rnd_below(&g->r, 100));
    for (size_t i = 0; i < g->nleaves; i++) {
        g->leaves[i].persons = total * w[i] / sum;
        given += g->leaves[i].persons;
    }
    /* The remainder goes one each to leaves in order: at most nleaves - 1. */
    for (size_t i = 0; given < total; i = (i + 1) % g->nleaves, given++)
        g->leaves[i].persons++;
    free(w);
}

/* ---- the command ------------------------------------------------------------- */

static void print_stats(const gen_t *g, const char *unit, double secs, int json)
{
    static const char *const names[] = {"person", "household", "birth", "migration", "benefit", "service_visit"};
    uint64_t total = 0;
    double np = g->count[1] ? (double)g->count[1] : 1.0;
    double avg = (double)g->person_bytes_stored / np, avg_local = (double)g->person_bytes / np;
    for (int k = 1; k <= 6; k++)
        total += g->count[k];
    if (json) {
        json_t *j = json_object(), *counts = json_object();
        for (int k = 1; k <= 6; k++)
            json_object_set_new(counts, names[k - 1], json_integer((json_int_t)g->count[k]));
        json_object_set_new(j, "orgunit", json_string(unit));
        json_object_set_new(j, "counts", counts);
        json_object_set_new(j, "total", json_integer((json_int_t)total));
        json_object_set_new(j, "person_avg_bytes", json_real(avg));
        json_object_set_new(j, "person_avg_bytes_outbox", json_real(avg_local));
        json_object_set_new(j, "seconds", json_real(secs));
        json_object_set_new(j, "write_seconds", json_real(g->write_secs));
        json_object_set_new(j, "persons_per_second", json_real(secs > 0 ? (double)g->count[1] / secs : 0.0));
        json_object_set_new(j, "records_per_second", json_real(secs > 0 ? (double)total / secs : 0.0));
        json_dumpf(j, stdout, JSON_COMPACT);
        fputc('\n', stdout);
        json_decref(j);
        return;
    }
    printf("org unit:        %s\n", unit);
    for (int k = 1; k <= 6; k++)
        printf("%-16s %llu\n", names[k - 1], (unsigned long long)g->count[k]);
    printf("%-16s %llu\n", "total", (unsigned long long)total);
    printf("person size:     %.1f bytes packed as synced (%.1f in the outbox, before the server's revision)\n",
           avg, avg_local);
    printf("time:            %.2f s (%.0f persons/s, %.0f records/s), of which %.2f s writing the cache\n", secs,
           secs > 0 ? (double)g->count[1] / secs : 0.0, secs > 0 ? (double)total / secs : 0.0, g->write_secs);
}

/* Synthetic persons in a real district's data are a harm of their own:
 * refused when the server is known not to take them, warned about before
 * the first sync (they are marked, and such a server refuses them then). */
static int refuse_real_server(const ps_cache_meta_t *m)
{
    if (m->synthetic_policy == PS_SYNTHETIC_REFUSED) {
        ps_cli_err("generate: this cache's server does not take generated test data (it is a real district's "
                   "server); generate is for test servers started with popsyncd --allow-synthetic");
        return 1;
    }
    if (m->synthetic_policy == PS_SYNTHETIC_UNKNOWN)
        fprintf(stderr, "popsync: generate: the records are marked synthetic; a server started without "
                        "--allow-synthetic will refuse them at sync\n");
    return 0;
}

/* The tree to generate from: --orgunits (or POPSYNC_ORGUNITS), else the
 * copy the cache keeps from init or the last sync (the tree the server will
 * validate against), else none.  *path names it for messages.  0, or -1
 * (told). */
static int load_tree(gen_t *g, const char **path, ps_orgunits_t **tree)
{
    char err[512];
    uint8_t *csv = NULL, digest[32];
    size_t len = 0;

    if (*path && **path) {
        if (ps_orgunits_load(*path, tree, err, sizeof(err))) {
            ps_cli_err("generate: %s: %s", *path, err);
            return -1;
        }
        return 0;
    }
    *path = "the cache's org-unit file";
    if (ps_cache_get_orgunits(g->c, &csv, &len, digest) == PS_OK &&
        ps_orgunits_parse(csv, len, tree, err, sizeof(err)) != PS_OK) {
        ps_cli_err("generate: %s: %s", *path, err);
        free(csv);
        return -1;
    }
    free(csv);
    return 0;
}

/* The unit to generate in is a unit of the tree that this cache may write
 * to, as the access policy will judge it at the server (the peer is the
 * cache's identity, from ps_client_vctx_init).  PS_EXIT_OK or
 * PS_EXIT_USAGE (told). */
static int check_unit(gen_t *g, const ps_orgunits_t *tree, const char *unit, const char *tree_path)
{
    const char *scope = ps_cache_meta(g->c)->orgunit;
    if (!ps_orgunit_valid(unit)) {
        ps_cli_err("generate: '%s' is not a 12-digit org unit code", unit);
        return PS_EXIT_USAGE;
    }
    if (tree && !ps_orgunits_find(tree, unit)) {
        ps_cli_err("generate: org unit %s is not in %s", unit, tree_path);
        return PS_EXIT_USAGE;
    }
    if (ps_policy_may_write(tree, &g->vc.peer, NULL, NULL, unit) == PS_WRITE_NO) {
        ps_cli_err("generate: org unit %s is outside this cache's scope (%s)", unit, scope);
        return PS_EXIT_USAGE;
    }
    return PS_EXIT_OK;
}

/* The random streams, today and the tree, for a run of (seed, unit). */
static void start_run(gen_t *g, unsigned long long seed, const char *unit, ps_orgunits_t *tree)
{
    time_t now = time(NULL);
    struct tm tm;

    /* Two streams from (seed, unit): content, and the random bits of ids. */
    g->r.s = hash_str(0xcbf29ce484222325ull ^ seed * 0x9e3779b97f4a7c15ull, unit);
    g->idr.s = rnd(&g->r) ^ 0x5851f42d4c957f2dull;
    g->next_ms = ID_BASE_MS;
    g->surname_total = weight_total(surnames, NELEM(surnames));
    g->ethnicity_total = weight_total(ethnicities, NELEM(ethnicities));
    localtime_r(&now, &tm);
    g->today = ps_days_from_civil(tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday);
    g->today_y = tm.tm_year + 1900;
    g->last = g->today - 1;
    g->vc.ctx.today = (uint32_t)((tm.tm_year + 1900) * 10000 + (tm.tm_mon + 1) * 100 + tm.tm_mday);
    g->tree = tree;
    g->vc.ctx.units = tree; /* the tree generated from: --orgunits or the cache's */
    g->seq_start = (int)(seed % 5) * 10;
}

/* Units: the villages and communities under unit, every leaf of the tree's
 * root for migrations inside the district, the district's code and the
 * address prefix.  PS_OK or PS_ENOMEM. */
static int place_units(gen_t *g, const ps_orgunits_t *tree, const char *unit)
{
    const char *prov = "";
    if (tree) {
        const ps_orgunit_t *root = NULL;
        for (size_t i = 0, n = ps_orgunits_count(tree); i < n && !root; i++)
            if (ps_orgunits_at(tree, i)->depth == 0)
                root = ps_orgunits_at(tree, i);
        if (collect_leaves(tree, unit, &g->leaves, &g->nleaves) ||
            (root && collect_leaves(tree, root->code, &g->dleaves, &g->ndleaves)))
            return PS_ENOMEM;
        g->district_name = root ? root->name : NULL;
        snprintf(g->district, sizeof(g->district), "%.6s", root ? root->code : unit);
    } else {
        if (!(g->leaves = calloc(1, sizeof(leaf_t))))
            return PS_ENOMEM;
        g->nleaves = 1;
        memcpy(g->leaves[0].code, unit, 12); /* checked: 12 digits */
        ps_orgunit_township(unit, g->leaves[0].town);
        g->leaves[0].town_digit = town_number(unit) % 10;
        snprintf(g->district, sizeof(g->district), "%.6s", unit);
    }
    for (size_t i = 0; i < NELEM(provinces); i++)
        if (strncmp(provinces[i].code, g->district, 2) == 0)
            prov = provinces[i].name;
    /* The tree's district name may already start with its province. */
    if (g->district_name && strncmp(g->district_name, prov, strlen(prov)) == 0)
        prov = "";
    snprintf(g->addr_prefix, sizeof(g->addr_prefix), "%s%s", prov, g->district_name ? g->district_name : "");
    return PS_OK;
}

/* The bitmap of used ID-number codes, holding the cache's numbers already
 * (take_seq).  PS_OK or an error. */
static int prepare_idbits(gen_t *g)
{
    g->idbits_day0 = ps_days_from_civil(FIRST_YEAR, 1, 1);
    if (!(g->idbits = calloc((size_t)(g->today - g->idbits_day0 + 1) * 1000 / 8 + 1, 1)))
        return PS_ENOMEM;
    return ps_cache_foreach(g->c, mark_cached_number, g);
}

/* Every household of every leaf, written in batches.  g->rc says how it went. */
static void generate_all(gen_t *g, unsigned long long persons)
{
    share_persons(g, persons);
    for (size_t li = 0; li < g->nleaves && !g->rc; li++) {
        const leaf_t *lf = &g->leaves[li];
        uint64_t left = lf->persons;
        while (left > 0 && !g->rc) {
            size_t size = household_size(&g->r);
            if (size > left)
                size = (size_t)left;
            if (g->n >= BATCH)
                flush(g);
            emit_household(g, lf, size);
            left -= size;
        }
    }
    flush(g);
}

static void gen_free(gen_t *g)
{
    if (!g)
        return;
    for (size_t i = 0; i < g->n; i++)
        ps_record_free(g->recs[i]);
    ps_client_vctx_free(&g->vc);
    ps_cache_close(g->c);
    free(g->idbits);
    free(g->leaves);
    free(g->dleaves);
    free(g);
}

/* The options of generate.  -1 to go on, else the exit code (told). */
static int gen_args(int argc, char **argv, unsigned long long *persons, unsigned long long *seed,
                    const char **unit, const char **tree_path, int *stats)
{
    static const struct option lo[] = {{"persons", required_argument, NULL, 'p'},
                                       {"seed", required_argument, NULL, 's'},
                                       {"orgunit", required_argument, NULL, 'o'},
                                       {"orgunits", required_argument, NULL, 'u'},
                                       {"stats", no_argument, NULL, 'S'},
                                       {NULL, 0, NULL, 0}};
    char *end;
    int opt;

    while ((opt = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (opt) {
        case 'p':
            *persons = strtoull(optarg, &end, 10);
            if (*end || !*optarg || *persons > MAX_PERSONS)
                *persons = 0;
            break;
        case 's':
            *seed = strtoull(optarg, &end, 10);
            if (*end || !*optarg) {
                ps_cli_err("generate: --seed: not a number");
                return PS_EXIT_USAGE;
            }
            break;
        case 'o': *unit = optarg; break;
        case 'u': *tree_path = optarg; break;
        case 'S': *stats = 1; break;
        default: return PS_EXIT_USAGE;
        }
    }
    if (*persons == 0 || optind != argc) {
        ps_cli_err("generate: usage: generate --persons N [--seed S] [--orgunit CODE] [--orgunits FILE] [--stats]"
                   " (1 <= N <= %d)",
                   MAX_PERSONS);
        return PS_EXIT_USAGE;
    }
    return -1;
}

int ps_cmd_generate(ps_cli_t *cli, int argc, char **argv)
{
    gen_t *g = NULL;
    ps_orgunits_t *tree = NULL;
    const char *unit = NULL, *tree_path = getenv("POPSYNC_ORGUNITS");
    unsigned long long persons = 0, seed = 1;
    char err[512];
    int rc, stats = 0;
    double t0 = now_s();

    if ((rc = gen_args(argc, argv, &persons, &seed, &unit, &tree_path, &stats)) >= 0)
        return rc;
    rc = PS_EXIT_FAIL;
    if (!(g = calloc(1, sizeof(*g)))) {
        ps_cli_err("generate: %s", ps_strerror(PS_ENOMEM));
        return PS_EXIT_FAIL;
    }
    if (ps_cache_open(&g->c, cli->data_dir, err, sizeof(err))) {
        ps_cli_err("generate: %s", err);
        goto out;
    }
    if (refuse_real_server(ps_cache_meta(g->c)))
        goto out;
    ps_client_vctx_init(&g->vc, g->c); /* the cache's scope and references */
    if (load_tree(g, &tree_path, &tree))
        goto out;
    if (!unit)
        unit = ps_cache_meta(g->c)->orgunit;
    if ((rc = check_unit(g, tree, unit, tree_path)) != PS_EXIT_OK)
        goto out;
    rc = PS_EXIT_FAIL;
    start_run(g, seed, unit, tree);
    if ((g->rc = place_units(g, tree, unit)) || (g->rc = prepare_idbits(g))) {
        ps_cli_err("generate: %s", ps_strerror(g->rc));
        goto out;
    }
    generate_all(g, persons);
    if (g->rc) {
        ps_cli_err("generate: %s", g->err);
        goto out;
    }
    if (stats)
        print_stats(g, unit, now_s() - t0, cli->json);
    else
        printf("generated %llu persons, %llu households, %llu births, %llu migrations, %llu benefits, "
               "%llu service visits in %s\n",
               (unsigned long long)g->count[1], (unsigned long long)g->count[2], (unsigned long long)g->count[3],
               (unsigned long long)g->count[4], (unsigned long long)g->count[5], (unsigned long long)g->count[6],
               unit);
    rc = PS_EXIT_OK;
out:
    gen_free(g);
    ps_orgunits_free(tree);
    return rc;
}
