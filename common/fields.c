/* fields.c - the field dictionary and input normalisation (see fields.h). */
#include "fields.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "validate.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* ---- the tables ------------------------------------------------------------ */

#define ORGUNIT                                                                                        \
    {"orgunit", "所属单位", PS_FT_CODE, 1, "12 位统计用区划代码；不填则为本机证书的单位",              \
     "12-digit division code of the owning unit; empty: the certificate's unit", NULL}

static const ps_field_t person[] = {
    ORGUNIT,
    {"id_number", "身份证号", PS_FT_IDNUM, 1, "18 位公民身份号码，末位可为 X",
     "18-character national ID number; the last may be X", NULL},
    {"name", "姓名", PS_FT_TEXT, 1, "姓名", "full name", NULL},
    {"sex", "性别", PS_FT_ENUM, 1, "男 或 女；不填则取自身份证号", "male or female; empty: from the ID number",
     NULL},
    {"birth_date", "出生日期", PS_FT_DATE, 1, "如 1990-03-07；不填则取自身份证号",
     "e.g. 1990-03-07; empty: from the ID number", NULL},
    {"ethnicity", "民族", PS_FT_TEXT, 0, "如 汉族", "e.g. Han", NULL},
    {"registration", "户籍类型", PS_FT_ENUM, 0, "本地户籍 或 流动人口", "local or migrant", NULL},
    {"marital_status", "婚姻状况", PS_FT_ENUM, 0, "未婚、已婚、离婚 或 丧偶",
     "single, married, divorced or widowed", NULL},
    {"household_id", "家庭户", PS_FT_REF, 0, "所属家庭户的记录 ID", "record id of the household", NULL},
    {"phone", "联系电话", PS_FT_CODE, 0, "5 至 20 位数字", "5 to 20 digits, '+', '-' or spaces", NULL},
    {"address", "住址", PS_FT_TEXT, 0, "现住址", "current address", NULL},
    {"hukou_type", "户口性质", PS_FT_ENUM, 0, "农业 或 非农业（奖励扶助按此判断）",
     "rural or urban registration (benefit schemes use it)", NULL},
    {"deceased_date", "死亡日期", PS_FT_DATE, 0, "已死亡者填写死亡日期", "date of death, when deceased", NULL},
    {"disability_grade", "残疾等级", PS_FT_INT, 0, "残疾证等级 1 至 4，1 级最重；无残疾不填",
     "disability certificate grade 1 (most severe) to 4; empty: none", NULL},
    {"gave_up_birth_date", "放弃再生育日期", PS_FT_DATE, 0, "自愿放弃再生育声明的日期",
     "date the family declared it gives up a further birth", NULL},
};

static const ps_field_t household[] = {
    ORGUNIT,
    {"head_id", "户主", PS_FT_REF, 0, "户主的人员记录 ID", "record id of the head of household", NULL},
    {"address", "住址", PS_FT_TEXT, 0, "家庭住址", "address", NULL},
};

static const ps_field_t birth[] = {
    ORGUNIT,
    {"mother_id", "母亲", PS_FT_REF, 1, "母亲的人员记录 ID", "record id of the mother", NULL},
    {"child_sex", "婴儿性别", PS_FT_ENUM, 1, "男 或 女", "male or female", NULL},
    {"birth_date", "出生日期", PS_FT_DATE, 1, "如 2026-10-15", "e.g. 2026-10-15", NULL},
    {"birth_order", "孩次", PS_FT_INT, 1, "第几个孩子，1 起", "1 for the first child", NULL},
    {"place", "出生地点", PS_FT_TEXT, 0, "医院或地点", "hospital or place", NULL},
    {"child_id", "婴儿", PS_FT_REF, 0, "婴儿的人员记录 ID（add birth --child-name 可同时登记婴儿）",
     "record id of the child's person record (add birth --child-name registers the child too)", NULL},
};

static const ps_field_t migration[] = {
    ORGUNIT,
    {"person_id", "流动人员", PS_FT_REF, 1, "流动人员的人员记录 ID", "record id of the person", NULL},
    {"direction", "流向", PS_FT_ENUM, 1, "流入 或 流出", "inflow or outflow", NULL},
    {"other_place_code", "对方地代码", PS_FT_CODE, 0, "流出地或流入地的 12 位区划代码",
     "12-digit division code of the other place", NULL},
    {"other_place", "对方地", PS_FT_TEXT, 0, "流出地或流入地名称", "the other place as text", NULL},
    {"start_date", "流动日期", PS_FT_DATE, 1, "开始流动的日期", "date the move began", NULL},
    {"end_date", "结束日期", PS_FT_DATE, 0, "流动结束的日期", "date the move ended", NULL},
    {"employer", "工作单位", PS_FT_TEXT, 0, "负责的用工单位", "responsible employer", NULL},
    {"urgent", "紧急", PS_FT_BOOL, 0, "是 或 否", "true or false", NULL},
    {"submitted_date", "通报日期", PS_FT_DATE, 0, "向对方地通报的日期", "date submitted to the other place",
     NULL},
    {"feedback_date", "反馈日期", PS_FT_DATE, 0, "对方地反馈的日期", "date feedback came back", NULL},
};

static const ps_field_t benefit[] = {
    ORGUNIT,
    {"person_id", "领取人", PS_FT_REF, 1, "领取人的人员记录 ID", "record id of the person", NULL},
    {"scheme", "项目", PS_FT_LIST, 1, "奖励扶助项目", "benefit scheme", NULL},
    {"period", "所属期", PS_FT_PERIOD, 1, "YYYY 或 YYYY-MM", "YYYY or YYYY-MM", NULL},
    {"amount", "金额", PS_FT_YUAN, 0, "金额（元），如 3000.00", "amount in yuan, e.g. 3000.00", "amount_fen"},
    {"amount_fen", "金额（分）", PS_FT_FEN, 0, "金额（分），整数", "amount in fen (1/100 yuan), whole number",
     NULL},
    {"status", "状态", PS_FT_ENUM, 1, "符合条件、已审批 或 已发放", "eligible, approved or paid", NULL},
    {"paid_date", "发放日期", PS_FT_DATE, 0, "状态为已发放时必填", "required when status is paid", NULL},
    {"batch", "发放批次", PS_FT_CODE, 0, "发放批次号（popsync benefits pay 填写）",
     "payment batch (set by popsync benefits pay)", NULL},
};

static const ps_field_t service_visit[] = {
    ORGUNIT,
    {"person_id", "服务对象", PS_FT_REF, 1, "服务对象的人员记录 ID", "record id of the person", NULL},
    {"service", "服务项目", PS_FT_LIST, 1, "服务项目", "service kind", NULL},
    {"visit_date", "服务日期", PS_FT_DATE, 1, "如 2026-10-15", "e.g. 2026-10-15", NULL},
    {"provider", "服务机构", PS_FT_TEXT, 0, "提供服务的机构或人员", "who provided it", NULL},
    {"outcome", "结果", PS_FT_TEXT, 0, "服务结果", "outcome", NULL},
};

/* Drawn by the district (popsync spotcheck draw); the township fills in the
 * last four (common/policy.c, ps_policy_result_field). */
static const ps_field_t spotcheck[] = {
    ORGUNIT,
    {"person_id", "抽查对象", PS_FT_REF, 1, "被抽中人员的记录 ID", "record id of the sampled person", NULL},
    {"month", "抽查月份", PS_FT_PERIOD, 1, "YYYY-MM", "YYYY-MM", NULL},
    {"draw_id", "抽样批次", PS_FT_CODE, 1, "同一次抽样的编号", "id shared by one draw", NULL},
    {"seed", "随机种子", PS_FT_CODE, 1, "32 位十六进制", "32 hex digits", NULL},
    {"method", "抽样方法", PS_FT_CODE, 1, "抽样方法说明", "how the sample was drawn", NULL},
    {"frame_size", "总体人数", PS_FT_INT, 1, "该乡镇抽样框人数", "persons in the township's frame", NULL},
    {"sample_size", "样本量", PS_FT_INT, 1, "该乡镇抽中人数", "persons drawn in the township", NULL},
    {"township", "乡镇", PS_FT_CODE, 1, "分层所属乡镇代码", "12-digit code of the stratum", NULL},
    {"frame_digest", "抽样框摘要", PS_FT_CODE, 1, "抽样框记录 ID 的 SHA-256", "SHA-256 of the frame's ids", NULL},
    {"drawn_ms", "抽样时间", PS_FT_INT, 1, "毫秒时间戳", "ms since the epoch", NULL},
    {"result", "核查结果", PS_FT_ENUM, 0, "一致 或 不一致", "matches or differs", NULL},
    {"checked_date", "核查日期", PS_FT_DATE, 0, "入户核查的日期", "date of the field check", NULL},
    {"differs", "不一致项", PS_FT_CODE, 0, "不一致的字段名，逗号分隔", "person fields found wrong, comma-separated",
     NULL},
    {"note", "核查说明", PS_FT_TEXT, 0, "核查说明", "note", NULL},
};

typedef struct {
    const ps_field_t *f;
    size_t n;
} kind_fields_t;

static const kind_fields_t kinds[] = {
    [POPSYNC__KIND__KIND_PERSON] = {person, N(person)},
    [POPSYNC__KIND__KIND_HOUSEHOLD] = {household, N(household)},
    [POPSYNC__KIND__KIND_BIRTH] = {birth, N(birth)},
    [POPSYNC__KIND__KIND_MIGRATION] = {migration, N(migration)},
    [POPSYNC__KIND__KIND_BENEFIT] = {benefit, N(benefit)},
    [POPSYNC__KIND__KIND_SERVICE_VISIT] = {service_visit, N(service_visit)},
    [POPSYNC__KIND__KIND_SPOTCHECK] = {spotcheck, N(spotcheck)},
};

/* Chinese names of enum values, by the value's text form (record_fmt.h):
 * "female" is SEX_FEMALE.  Extra Chinese spellings a clerk may type come
 * after the display name of the same value. */
typedef struct {
    const char *text, *zh;
} enum_zh_t;

static const enum_zh_t enum_zh[] = {
    {"male", "男"},          {"female", "女"},         {"male", "男性"},       {"female", "女性"},         {"local", "本地户籍"},  {"local", "户籍人口"},
    {"local", "本地"},       {"migrant", "流动人口"},  {"migrant", "流动"},    {"single", "未婚"},
    {"married", "已婚"},     {"divorced", "离婚"},     {"widowed", "丧偶"},    {"inflow", "流入"},
    {"outflow", "流出"},     {"eligible", "符合条件"}, {"approved", "已审批"}, {"paid", "已发放"},
    {"rural", "农业"},       {"rural", "农村"},       {"rural", "农业户口"}, {"urban", "非农业"},
    {"urban", "城镇"},       {"urban", "非农业户口"}, {"matches", "一致"},   {"differs", "不一致"},
};

/* ---- lookup ---------------------------------------------------------------- */

const ps_field_t *ps_fields_of(int kind, size_t *n)
{
    if (kind <= 0 || (size_t)kind >= N(kinds) || !kinds[kind].f) {
        *n = 0;
        return NULL;
    }
    *n = kinds[kind].n;
    return kinds[kind].f;
}

/* name equals label, or label followed by "(…)" / "（…）" (a unit note). */
static int label_matches(const char *label, const char *name)
{
    size_t n = strlen(label);

    if (strncmp(label, name, n) != 0)
        return 0;
    name += n;
    return !*name || *name == '(' || strncmp(name, "（", strlen("（")) == 0;
}

/* Other names township sheets give a person's columns (the headers of
 * forms in use before popsync), each for the one field it can only mean. */
static const struct {
    const char *alias, *field;
} person_aliases[] = {
    {"身份证号码", "id_number"}, {"公民身份号码", "id_number"}, {"身份证", "id_number"},
    {"身份证件号码", "id_number"}, {"电话", "phone"},           {"电话号码", "phone"},
    {"手机", "phone"},           {"手机号", "phone"},           {"手机号码", "phone"},
    {"联系方式", "phone"},       {"地址", "address"},           {"家庭住址", "address"},
    {"现住址", "address"},       {"居住地址", "address"},       {"现居住地址", "address"},
    {"出生年月日", "birth_date"}, {"生日", "birth_date"},        {"婚姻状态", "marital_status"},
};

static const ps_field_t *find_alias(int kind, const char *name)
{
    if (kind != POPSYNC__KIND__KIND_PERSON)
        return NULL;
    for (size_t i = 0; i < N(person_aliases); i++)
        if (label_matches(person_aliases[i].alias, name))
            return ps_field_find(kind, person_aliases[i].field);
    return NULL;
}

/* A label spaced out to line up in a printed form ("姓　名", "住  址"), or
 * wrapped in its cell ("身份\n证号"): found without its spaces and line
 * breaks.  NULL when it has none or still matches nothing. */
static const ps_field_t *find_spaced(int kind, const char *name)
{
    char compact[128];
    size_t o = 0;

    for (const char *p = name; *p; p++) {
        if (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
            continue;
        if (strncmp(p, "\xE3\x80\x80", 3) == 0) {
            p += 2;
            continue;
        }
        if (o + 1 >= sizeof(compact))
            return NULL;
        compact[o++] = *p;
    }
    compact[o] = '\0';
    return o && strcmp(compact, name) != 0 ? ps_field_find(kind, compact) : NULL;
}

const ps_field_t *ps_field_find(int kind, const char *name)
{
    const ps_field_t *hit;
    size_t n, i;
    const ps_field_t *f = ps_fields_of(kind, &n);

    if (!name)
        return NULL;
    for (i = 0; i < n; i++)
        if (strcmp(f[i].name, name) == 0 || strcmp(f[i].zh, name) == 0)
            return &f[i];
    for (i = 0; i < n; i++)
        if (label_matches(f[i].zh, name))
            return &f[i];
    if ((hit = find_alias(kind, name)))
        return hit;
    return find_spaced(kind, name);
}

const char *ps_ftype_name(ps_ftype_t t, int zh)
{
    static const char *const en[] = {"text",    "code",      "date",   "period",      "ID number", "choice",
                                     "choice",  "record id", "number", "amount (fen)", "amount (yuan)", "yes/no"};
    static const char *const cn[] = {"文本", "代码", "日期", "年月", "身份证号", "选项",
                                     "选项", "记录 ID", "整数", "金额（分）", "金额（元）", "是/否"};
    if ((size_t)t >= N(en))
        return "?";
    return zh ? cn[t] : en[t];
}

const char *ps_field_value_zh(const ps_field_t *f, const char *text)
{
    size_t i;

    if (!f || !text || !*text)
        return NULL;
    switch (f->type) {
    case PS_FT_ENUM:
        for (i = 0; i < N(enum_zh); i++)
            if (strcmp(enum_zh[i].text, text) == 0)
                return enum_zh[i].zh;
        return NULL;
    case PS_FT_LIST:
        return strcmp(f->name, "scheme") == 0 ? ps_scheme_label(text, 1) : ps_service_label(text, 1);
    case PS_FT_BOOL:
        return strcmp(text, "true") == 0 ? "是" : strcmp(text, "false") == 0 ? "否" : NULL;
    default:
        return NULL;
    }
}

/* ---- normalisation --------------------------------------------------------- */

/* Copies in to out folding full-width ASCII (U+FF01..U+FF5E) and the
 * ideographic space (U+3000) to ASCII, and trimming spaces at both ends;
 * with drop_spaces, spaces inside are removed too.  0, or -1 when out is
 * too small. */
static int fold(const char *in, char *out, size_t outlen, int drop_spaces)
{
    const unsigned char *s = (const unsigned char *)in;
    size_t o = 0;

    while (*s) {
        unsigned c = *s;
        size_t adv = 1;
        if (c == 0xEF && s[1] >= 0xBC && s[1] <= 0xBD && s[2] >= 0x80 && s[2] <= 0xBF) {
            unsigned cp = 0xF000u | ((unsigned)(s[1] & 0x3F) << 6) | (s[2] & 0x3F);
            if (cp >= 0xFF01 && cp <= 0xFF5E) {
                c = cp - 0xFF01 + 0x21;
                adv = 3;
            }
        } else if (c == 0xE3 && s[1] == 0x80 && s[2] == 0x80) {
            c = ' ';
            adv = 3;
        }
        if (adv == 1 && c >= 0x80) {
            /* Any other multi-byte character is copied whole below. */
            if (o + 1 >= outlen)
                return -1;
            out[o++] = (char)c;
            s++;
            continue;
        }
        s += adv;
        if ((c == ' ' || c == '\t') && (drop_spaces || o == 0))
            continue;
        if (o + 1 >= outlen)
            return -1;
        out[o++] = (char)c;
    }
    while (o > 0 && (out[o - 1] == ' ' || out[o - 1] == '\t'))
        o--;
    out[o] = '\0';
    return 0;
}

/* Length of the space at s: an ASCII space or tab (1), the ideographic
 * space U+3000 (3), or 0 when s is not a space. */
static size_t space_at(const char *s)
{
    if (*s == ' ' || *s == '\t')
        return 1;
    return strncmp(s, "\xE3\x80\x80", 3) == 0 ? 3 : 0;
}

/* Length of a dot at s that people type between the parts of a name in
 * Chinese characters (阿依古丽·买买提) instead of the middle dot U+00B7:
 * a full stop, a bullet, the katakana or hyphenation middle dot, a
 * full-width full stop; 0 for anything else (the middle dot itself
 * included). */
static size_t name_dot_at(const char *s)
{
    static const char *const dots[] = {".", "\xE2\x80\xA2", "\xE3\x83\xBB", "\xEF\xBD\xA5", "\xE2\x80\xA7",
                                       "\xE2\x8B\x85", "\xEF\xBC\x8E"};

    for (size_t i = 0; i < sizeof(dots) / sizeof(dots[0]); i++)
        if (strncmp(s, dots[i], strlen(dots[i])) == 0)
            return strlen(dots[i]);
    return 0;
}

/* Is the first character at or after p (before e) that is not a space a
 * non-ASCII one? */
static int non_ascii_next(const char *p, const char *e)
{
    size_t k;

    while (p < e && (k = space_at(p)) > 0)
        p += k;
    return p < e && (unsigned char)*p >= 0x80;
}

int ps_field_text_fold(const char *in, int name, char *out, size_t outlen)
{
    const char *s = in, *e = in + strlen(in);
    size_t o = 0, k;

    while ((k = space_at(s)) > 0)
        s += k;
    while (e > s && (e[-1] == ' ' || e[-1] == '\t' || (e - s >= 3 && strncmp(e - 3, "\xE3\x80\x80", 3) == 0)))
        e -= e[-1] == ' ' || e[-1] == '\t' ? 1 : 3;
    while (s < e) {
        const char *run = s;
        while (s < e && (k = space_at(s)) > 0)
            s += k;
        /* Spaces inside a name between two Chinese characters are how a
         * two-character name is padded to line up ("张　三"): not part of
         * the name.  Between Latin letters ("John Smith") they are. */
        if (s > run && !(name && (unsigned char)run[-1] >= 0x80 && (unsigned char)*s >= 0x80)) {
            if (o + (size_t)(s - run) >= outlen)
                return -1;
            memcpy(out + o, run, (size_t)(s - run));
            o += (size_t)(s - run);
        }
        if (s < e && name && o > 0 && (unsigned char)out[o - 1] >= 0x80 && (k = name_dot_at(s)) > 0 &&
            non_ascii_next(s + k, e)) {
            if (o + 2 >= outlen)
                return -1;
            memcpy(out + o, "\xC2\xB7", 2);
            o += 2;
            s += k;
        } else if (s < e) {
            if (o + 1 >= outlen)
                return -1;
            out[o++] = *s++;
        }
    }
    if (outlen == 0)
        return -1;
    out[o] = '\0';
    return 0;
}

static int dig(char c)
{
    return c >= '0' && c <= '9';
}

/* Reads 1..max digits at *p; -1 when there are none. */
static int num(const char **p, int max)
{
    int v = 0, k = 0;
    while (k < max && dig(**p)) {
        v = v * 10 + (**p - '0');
        (*p)++;
        k++;
    }
    return k ? v : -1;
}

/* Skips one date separator: '-', '/', '.', or the Chinese 年/月. */
static int sep(const char **p, const char *zh)
{
    if (**p == '-' || **p == '/' || **p == '.') {
        (*p)++;
        return 1;
    }
    if (zh && strncmp(*p, zh, strlen(zh)) == 0) {
        *p += strlen(zh);
        return 1;
    }
    return 0;
}

/* Past a time of day after a date (" 0:00", " 00:00:00", "T08:30"), as
 * Excel saves a cell formatted as date and time: the date is the field's
 * value.  p itself when what follows is not a time. */
static const char *time_of_day(const char *p)
{
    const char *q = p + 1;

    if (*p != ' ' && *p != 'T')
        return p;
    if (num(&q, 2) < 0 || *q++ != ':' || num(&q, 2) < 0)
        return p;
    if (*q == ':' && (q++, num(&q, 2) < 0))
        return p;
    return *q ? p : q;
}

/* YYYY-M-D, YYYY/M/D, YYYY.M.D, YYYY年M月D日 and YYYYMMDD -> YYYY-MM-DD.
 * With day 0 (a period) YYYY-M, YYYY/M, YYYY年M月 and YYYYMM -> YYYY-MM.
 * 0 when s had such a shape. */
static int date_shape(const char *s, int want_day, char *out, size_t outlen)
{
    const char *p = s;
    int y, m, d = 0;
    size_t n = strlen(s);

    if (n == (want_day ? 8u : 6u) && strspn(s, "0123456789") == n) {
        y = (s[0] - '0') * 1000 + (s[1] - '0') * 100 + (s[2] - '0') * 10 + (s[3] - '0');
        m = (s[4] - '0') * 10 + (s[5] - '0');
        d = want_day ? (s[6] - '0') * 10 + (s[7] - '0') : 0;
    } else {
        if (n < 6 || !dig(s[0]) || !dig(s[1]) || !dig(s[2]) || !dig(s[3]))
            return -1;
        y = num(&p, 4);
        if (!sep(&p, "年") || (m = num(&p, 2)) < 0)
            return -1;
        if (want_day && (!sep(&p, "月") || (d = num(&p, 2)) < 0))
            return -1;
        if (want_day && (strncmp(p, "日", strlen("日")) == 0 || strncmp(p, "号", strlen("号")) == 0))
            p += strlen("日");
        else if (!want_day && strncmp(p, "月", strlen("月")) == 0)
            p += strlen("月");
        if (want_day && *p)
            p = time_of_day(p);
        if (*p)
            return -1;
    }
    if (want_day)
        snprintf(out, outlen, "%04d-%02d-%02d", y, m, d);
    else
        snprintf(out, outlen, "%04d-%02d", y, m);
    return 0;
}

/* Scientific notation as Excel shows a long number: 1.30203E+17; or the
 * number written out with a decimal part, as other programs save a column
 * of numbers (110105199003071234.0): past 15 digits its last ones were
 * rounded, so neither can be turned back into the ID number. */
static int looks_scientific(const char *s)
{
    const char *e = strpbrk(s, "eE"), *dot = strchr(s, '.');

    if (!e && dot && (size_t)(dot - s) >= 15 && strspn(s, "0123456789") == (size_t)(dot - s) &&
        dot[1] && strspn(dot + 1, "0") == strlen(dot + 1))
        return 1;
    if (!e || e == s || (e[1] != '+' && e[1] != '-' && !dig(e[1])))
        return 0;
    for (const char *p = s; p < e; p++)
        if (!dig(*p) && *p != '.')
            return 0;
    for (const char *p = e + 1 + (e[1] == '+' || e[1] == '-'); *p; p++)
        if (!dig(*p))
            return 0;
    return 1;
}

/* "3,000.00", "¥3000", "3000元" -> fen; -1 when not an amount. */
static int yuan_to_fen(const char *s, char *out, size_t outlen)
{
    long long whole = 0, frac = 0;
    int fd = 0, any = 0;
    const char *p = s;

    if (strncmp(p, "¥", strlen("¥")) == 0)
        p += strlen("¥");
    else if (*p == '$')
        return -1;
    for (; dig(*p) || *p == ','; p++) {
        if (*p == ',')
            continue;
        if (whole > 1000000000000LL)
            return -1;
        whole = whole * 10 + (*p - '0');
        any = 1;
    }
    if (*p == '.') {
        for (p++; dig(*p); p++, fd++) {
            if (fd >= 2)
                return -1;
            frac = frac * 10 + (*p - '0');
        }
    }
    if (fd == 1)
        frac *= 10;
    if (strcmp(p, "元") == 0)
        p += strlen("元");
    if (*p || (!any && !fd))
        return -1;
    snprintf(out, outlen, "%lld", whole * 100 + frac);
    return 0;
}

/* A Chinese label or extra spelling of an enum/list/bool value -> text form. */
static const char *value_from_zh(const ps_field_t *f, const char *s)
{
    size_t i;
    const char *code;

    switch (f->type) {
    case PS_FT_ENUM:
        for (i = 0; i < N(enum_zh); i++)
            if (strcmp(enum_zh[i].zh, s) == 0)
                return enum_zh[i].text;
        return NULL;
    case PS_FT_LIST: {
        const char *begins = NULL;
        int nbegin = 0;
        for (i = 0; (code = strcmp(f->name, "scheme") == 0 ? ps_scheme_at(i) : ps_service_at(i)); i++) {
            const char *zh = strcmp(f->name, "scheme") == 0 ? ps_scheme_label(code, 1) : ps_service_label(code, 1);
            if (zh && strcmp(zh, s) == 0)
                return code;
            if (zh && strncmp(zh, s, strlen(s)) == 0 && nbegin++ == 0)
                begins = code;
        }
        /* The label's start, as people say it ("随访" for 随访服务), when
         * it is two characters or more and names one choice only. */
        return nbegin == 1 && strlen(s) >= 6 && (unsigned char)s[0] >= 0x80 ? begins : NULL;
    }
    case PS_FT_BOOL:
        if (strcmp(s, "是") == 0 || strcasecmp(s, "yes") == 0 || strcmp(s, "1") == 0)
            return "true";
        if (strcmp(s, "否") == 0 || strcasecmp(s, "no") == 0 || strcmp(s, "0") == 0)
            return "false";
        return NULL;
    default:
        return NULL;
    }
}

int ps_field_normalize(const ps_field_t *f, const char *in, char *out, size_t outlen, const char **why)
{
    char tmp[256];
    const char *v;
    /* Spaces inside are dropped only where people group digits with them
     * ("110105 19491231 002X"); "1 2" stays a bad number. */
    int drop = f->type == PS_FT_IDNUM || f->type == PS_FT_REF || (f->type == PS_FT_CODE && strcmp(f->name, "phone") != 0);

    *why = NULL;
    /* Free text but a name is kept exactly as typed: its full-width
     * punctuation (（）、，) is Chinese text, not ASCII typed in the wrong
     * mode, and an export must import back unchanged.  Anything too long
     * for tmp cannot be a code, date or number: left to validation as it
     * is. */
    if (f->type == PS_FT_TEXT) {
        /* A name is what people are looked up and paired by: spaces at
         * its ends (an Excel cell, a copied name) and the padding between
         * its characters ("张　三") are never part of it. */
        if (strcmp(f->name, "name") != 0 || ps_field_text_fold(in, 1, out, outlen) != 0 || strcmp(out, in) == 0)
            return 1;
        return 0;
    }
    if (fold(in, tmp, sizeof(tmp), drop) != 0)
        return 1;
    switch (f->type) {
    case PS_FT_IDNUM:
        /* Excel's mark for "keep this as text", typed or pasted with it. */
        if (tmp[0] == '\'')
            memmove(tmp, tmp + 1, strlen(tmp));
        if (looks_scientific(tmp)) {
            *why = "Excel turned this ID number into a number: format the column as text (文本) and export again "
                   "(Excel 把身份证号变成了数字：请把该列设为“文本”格式后重新导出)";
            return -1;
        }
        if (strlen(tmp) == 18 && tmp[17] == 'x')
            tmp[17] = 'X';
        break;
    case PS_FT_DATE:
    case PS_FT_PERIOD:
        if (date_shape(tmp, f->type == PS_FT_DATE, out, outlen) == 0)
            return 0;
        if (f->type == PS_FT_DATE && strlen(tmp) == 5 && strspn(tmp, "0123456789") == 5) {
            *why = "Excel saved this date as a number: format the column as a date (日期) and save again "
                   "(Excel 把日期存成了数字：请把该列设为“日期”格式后重新保存)";
            return -1;
        }
        if (f->type == PS_FT_PERIOD) {
            size_t n = strlen(tmp);
            if (n >= 4 && strcmp(tmp + n - strlen("年"), "年") == 0 && n - strlen("年") == 4)
                tmp[4] = '\0';
        }
        break;
    case PS_FT_YUAN:
        if (yuan_to_fen(tmp, out, outlen) != 0) {
            *why = "must be an amount in yuan with at most 2 decimals, e.g. 3000.00 (金额应为元，最多两位小数)";
            return -1;
        }
        return 0;
    case PS_FT_FEN:
        if (strchr(tmp, '.')) {
            *why = "amount_fen is in fen (分) and takes a whole number; for yuan use the field amount (金额), "
                   "e.g. amount=3000.00";
            return -1;
        }
        break;
    case PS_FT_ENUM:
    case PS_FT_LIST:
    case PS_FT_BOOL:
        if ((v = value_from_zh(f, tmp))) {
            snprintf(out, outlen, "%s", v);
            return 0;
        }
        break;
    default:
        break;
    }
    snprintf(out, outlen, "%s", tmp);
    return 0;
}

/* ---- completing a record --------------------------------------------------- */

void ps_fields_complete(Popsync__Record *r)
{
    Popsync__Person *p;
    const char *idn;
    char bd[11];

    if (!r || r->body_case != POPSYNC__RECORD__BODY_PERSON || !(p = r->person))
        return;
    idn = p->id_number;
    if (!idn || strlen(idn) != 18 || ps_validate_id_number_at(idn, 0))
        return;
    if (p->sex == POPSYNC__SEX__SEX_UNSPECIFIED)
        p->sex = ((idn[16] - '0') % 2) ? POPSYNC__SEX__SEX_MALE : POPSYNC__SEX__SEX_FEMALE;
    if (!p->birth_date || !*p->birth_date) {
        char *s;
        snprintf(bd, sizeof(bd), "%.4s-%.2s-%.2s", idn + 6, idn + 10, idn + 12);
        s = strdup(bd);
        if (!s)
            return;
        if (p->birth_date && p->birth_date != protobuf_c_empty_string)
            free(p->birth_date);
        p->birth_date = s;
    }
}

/* ---- showing a value in a message ------------------------------------------ */

/* Length of the UTF-8 character at s (1 for a stray byte). */
static size_t char_len(const char *s)
{
    unsigned char c = (unsigned char)*s;
    size_t k = c < 0xC0 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
    for (size_t i = 1; i < k; i++)
        if (!s[i])
            return i;
    return k;
}

const char *ps_field_shown(int kind, const char *name, const char *value, char *out, size_t outlen)
{
    const ps_field_t *f = ps_field_find(kind, name);
    size_t n = value ? strlen(value) : 0;
    int personal = f && (f->type == PS_FT_IDNUM || strcmp(f->name, "name") == 0 || strcmp(f->name, "phone") == 0 ||
                         strcmp(f->name, "address") == 0);

    if (!outlen)
        return out;
    if (!value) {
        out[0] = '\0';
    } else if (personal && f->type == PS_FT_IDNUM && n >= 12) {
        snprintf(out, outlen, "%.6s%.*s%s", value, (int)(n - 10 < 12 ? n - 10 : 12), "************", value + n - 4);
    } else if (personal) {
        snprintf(out, outlen, "%.*s**", n ? (int)char_len(value) : 0, value);
    } else if (n > 40) {
        size_t cut = 0;
        while (cut + char_len(value + cut) <= 40)
            cut += char_len(value + cut);
        snprintf(out, outlen, "%.*s…", (int)cut, value);
    } else {
        snprintf(out, outlen, "%s", value);
    }
    return out;
}
