/* validate.c - record validation shared by client and server.
 *
 * Owns: every rule a record must satisfy (envelope, then the body of its
 * kind), the national ID number and date checks, and the tables of benefit
 * schemes and service kinds with their Chinese and English labels.  One
 * record's checks never stop early: every field is checked and every error
 * collected, so a clerk fixes a row in one pass.  Reasons never quote the
 * value, because values are personal data and errors end up in logs.
 */
#include "validate.h"
#include "err.h"
#include "ids.h"
#include "record_fmt.h"
#include "policy.h"
#include "scope.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define MIN_YEAR 1890
#define AMOUNT_MAX_FEN 100000000 /* 1,000,000 yuan: far above any single payment */
#define BIRTH_ORDER_MAX 20

void ps_verrs_add(ps_verrs_t *v, const char *field, const char *fmt, ...)
{
    va_list ap;
    ps_field_error_t *e;
    if (v->n >= PS_VERR_MAX) {
        v->n++;
        return;
    }
    e = &v->e[v->n++];
    snprintf(e->field, sizeof(e->field), "%s", field);
    va_start(ap, fmt);
    vsnprintf(e->reason, sizeof(e->reason), fmt, ap);
    va_end(ap);
}

/* ---- labels -------------------------------------------------------------- */

typedef struct label {
    const char *code, *zh, *en;
} label_t;

static const label_t schemes[] = {
    {"rural_reward", "农村部分计划生育家庭奖励扶助", "Rural family planning reward support"},
    {"special_support", "计划生育家庭特别扶助", "Family planning special support"},
    {"only_child_reward", "独生子女父母奖励", "Only-child parents' reward"},
    {"first_birth_subsidy", "首次分娩补助", "First-birth subsidy"},
    {"give_up_birth_reward", "放弃再生育奖励", "Reward for giving up a further birth"},
};

/* The most one payment of a scheme may be, in fen, in the order of
 * schemes[]: well above the national standards (rural reward 960 yuan a
 * person a year; special support 590-720 yuan a month, a year's arrears at
 * once; only-child reward 10 yuan a month or a one-off sum at retirement;
 * first-birth subsidy a local one-off sum), so a real payment always fits
 * and a slip of the keyboard (999,999.99 yuan) does not.  docs/data-model.md
 * lists them. */
static const int64_t scheme_max_fen[] = {300000, 1200000, 1000000, 1000000, 1000000};

static const label_t services[] = {
    {"prepregnancy_check", "免费孕前优生健康检查", "Free pre-pregnancy health check"},
    {"reproductive_check", "生殖健康检查", "Reproductive health check"},
    {"followup", "随访服务", "Follow-up visit"},
    {"contraceptive_supplies", "避孕药具发放", "Contraceptive supplies"},
    {"consultation", "咨询服务", "Consultation"},
};

#define NSCHEMES (sizeof(schemes) / sizeof(schemes[0]))
#define NSERVICES (sizeof(services) / sizeof(services[0]))

static const label_t *label_find(const label_t *t, size_t n, const char *code)
{
    size_t i;
    if (!code)
        return NULL;
    for (i = 0; i < n; i++)
        if (strcmp(t[i].code, code) == 0)
            return &t[i];
    return NULL;
}

const char *ps_scheme_label(const char *scheme, int zh)
{
    const label_t *l = label_find(schemes, NSCHEMES, scheme);
    return l ? (zh ? l->zh : l->en) : NULL;
}

const char *ps_scheme_at(size_t i)
{
    return i < NSCHEMES ? schemes[i].code : NULL;
}

const char *ps_service_label(const char *service, int zh)
{
    const label_t *l = label_find(services, NSERVICES, service);
    return l ? (zh ? l->zh : l->en) : NULL;
}

const char *ps_service_at(size_t i)
{
    return i < NSERVICES ? services[i].code : NULL;
}

/* "a, b or c" of a table's codes, for a reason that tells the user the choices. */
static void codes_list(const label_t *t, size_t n, char *out, size_t outlen)
{
    size_t i, off = 0;
    out[0] = '\0';
    for (i = 0; i < n && off < outlen; i++) {
        int k = snprintf(out + off, outlen - off, "%s%s", i == 0 ? "" : i + 1 == n ? " or " : ", ", t[i].code);
        if (k < 0)
            break;
        off += (size_t)k;
    }
}

/* ---- dates and ID numbers ------------------------------------------------ */

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static unsigned digits(const char *s, size_t n)
{
    unsigned v = 0;
    size_t i;
    for (i = 0; i < n; i++)
        v = v * 10 + (unsigned)(s[i] - '0');
    return v;
}

static int leap(unsigned y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static unsigned days_in_month(unsigned y, unsigned m)
{
    static const unsigned d[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && leap(y) ? 29 : d[m - 1];
}

/* Checks year, month and day already split out; NULL when they form a real date. */
static const char *ymd_reason(unsigned y, unsigned m, unsigned d)
{
    if (y < MIN_YEAR)
        return "year must be 1890 or later";
    if (m < 1 || m > 12)
        return "month must be 01 to 12";
    if (d < 1 || d > days_in_month(y, m))
        return "day does not exist in that month";
    return NULL;
}

/* Parses "YYYY-MM-DD" into YYYYMMDD; NULL when valid, else the reason. */
static const char *parse_date(const char *s, uint32_t *ymd)
{
    const char *why;
    unsigned y, m, d;
    int i;

    if (!s || strlen(s) != 10 || s[4] != '-' || s[7] != '-')
        return "must be a date YYYY-MM-DD";
    for (i = 0; i < 10; i++)
        if (i != 4 && i != 7 && !is_digit(s[i]))
            return "must be a date YYYY-MM-DD";
    y = digits(s, 4);
    m = digits(s + 5, 2);
    d = digits(s + 8, 2);
    if ((why = ymd_reason(y, m, d)))
        return why;
    if (ymd)
        *ymd = y * 10000 + m * 100 + d;
    return NULL;
}

const char *ps_validate_date(const char *s)
{
    return parse_date(s, NULL);
}

/* The last date that is not "in the future" when it is `today` (YYYYMMDD)
 * where the record is judged: today plus one day of grace, so a date that
 * was already today where it was entered (a zone ahead of the judge's) is
 * never refused. */
static uint32_t latest_allowed(uint32_t today)
{
    unsigned y = today / 10000, m = today / 100 % 100, d = today % 100;
    if (m >= 1 && m <= 12 && d < days_in_month(y, m))
        return today + 1;
    if (m < 12)
        return y * 10000 + (m + 1) * 100 + 1;
    return (y + 1) * 10000 + 101;
}

static uint32_t local_today(void)
{
    time_t now = time(NULL);
    struct tm tm;
    if (!localtime_r(&now, &tm))
        return 0;
    return (uint32_t)(tm.tm_year + 1900) * 10000 + (uint32_t)(tm.tm_mon + 1) * 100 + (uint32_t)tm.tm_mday;
}

char ps_id_check_char(const char *first17)
{
    static const int w[17] = {7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2};
    static const char map[] = "10X98765432";
    int i, sum = 0;

    if (!first17)
        return 0;
    for (i = 0; i < 17; i++) {
        if (!is_digit(first17[i]))
            return 0;
        sum += (first17[i] - '0') * w[i];
    }
    return map[sum % 11];
}

const char *ps_validate_id_number_at(const char *idn, uint32_t today)
{
    const char *why;
    unsigned y, m, d;
    int i;

    if (!idn || strlen(idn) != 18)
        return "must be 18 characters";
    for (i = 0; i < 17; i++)
        if (!is_digit(idn[i]))
            return "first 17 characters must be digits";
    if (!is_digit(idn[17]) && idn[17] != 'X')
        return "check character must be a digit or upper-case X";
    /* The date before the check digit: a typo in it is more useful to name. */
    y = digits(idn + 6, 4);
    m = digits(idn + 10, 2);
    d = digits(idn + 12, 2);
    if (y < MIN_YEAR)
        return "birth date inside it is before 1890";
    if ((why = ymd_reason(y, m, d)))
        return "birth date inside it does not exist";
    if (today == 0)
        today = local_today();
    if (y * 10000 + m * 100 + d > latest_allowed(today))
        return "birth date inside it is in the future";
    if (ps_id_check_char(idn) != idn[17])
        return "check character does not match (GB 11643 MOD 11-2)";
    return NULL;
}

const char *ps_validate_id_number(const char *idn)
{
    return ps_validate_id_number_at(idn, 0);
}

/* ---- field checks -------------------------------------------------------- */

typedef struct vstate {
    const ps_validate_ctx_t *ctx;
    uint32_t today;
    ps_verrs_t *v;
    int foreign;    /* ps_validate_foreign_case */
} vstate_t;

static int empty(const char *s)
{
    return !s || !*s;
}

/* Control characters other than '\n' where allowed (multi-line text such as
 * an address); C1 controls (C2 80..C2 9F) count too. */
static int has_control(const char *s, size_t len, int allow_nl)
{
    size_t i;
    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\n' && allow_nl)
            continue;
        if (c < 0x20 || c == 0x7f)
            return 1;
        if (c == 0xc2 && i + 1 < len && (unsigned char)s[i + 1] >= 0x80 && (unsigned char)s[i + 1] <= 0x9f)
            return 1;
    }
    return 0;
}

/* Free text: valid UTF-8, no control characters, at most max bytes; required
 * when min > 0.  Returns 1 when acceptable (empty and optional counts). */
static int check_text(vstate_t *vs, const char *field, const char *s, size_t min, size_t max, int allow_nl)
{
    size_t len = s ? strlen(s) : 0;

    if (len == 0) {
        if (min > 0) {
            ps_verrs_add(vs->v, field, "is required");
            return 0;
        }
        return 1;
    }
    if (!ps_utf8_valid(s, len)) {
        ps_verrs_add(vs->v, field, "is not valid UTF-8");
        return 0;
    }
    if (has_control(s, len, allow_nl)) {
        ps_verrs_add(vs->v, field, allow_nl ? "contains control characters (only line breaks are allowed)"
                                            : "contains control characters");
        return 0;
    }
    if (len < min) {
        ps_verrs_add(vs->v, field, "must be at least %zu bytes", min);
        return 0;
    }
    if (len > max) {
        ps_verrs_add(vs->v, field, "must be at most %zu bytes", max);
        return 0;
    }
    return 1;
}

/* A date field; *out (may be NULL) gets YYYYMMDD when valid, else stays 0.
 * Future dates are refused unless allow_future. */
static int check_date(vstate_t *vs, const char *field, const char *s, int required, int allow_future,
                      uint32_t *out)
{
    const char *why;
    uint32_t ymd = 0;

    if (out)
        *out = 0;
    if (empty(s)) {
        if (required)
            ps_verrs_add(vs->v, field, "is required");
        return !required;
    }
    if ((why = parse_date(s, &ymd))) {
        ps_verrs_add(vs->v, field, "%s", why);
        return 0;
    }
    if (!allow_future && ymd > latest_allowed(vs->today)) {
        ps_verrs_add(vs->v, field, "is in the future");
        return 0;
    }
    if (out)
        *out = ymd;
    return 1;
}

/* An enum field: in range [1, max], or 0 (unspecified) when optional. */
static int check_enum(vstate_t *vs, const char *field, int value, int max, int required)
{
    if (value == 0) {
        if (required)
            ps_verrs_add(vs->v, field, "is required");
        return !required;
    }
    if (value < 0 || value > max) {
        ps_verrs_add(vs->v, field, "is not a known value");
        return 0;
    }
    return 1;
}

/* Does the stored version hold the same id in this reference field? */
static int same_ref_as_current(const Popsync__Record *cur, const char *field, ProtobufCBinaryData id)
{
    const ProtobufCMessage *body = NULL;
    const ProtobufCFieldDescriptor *f;
    const ProtobufCBinaryData *old;
    switch (cur->body_case) {
    case POPSYNC__RECORD__BODY_PERSON: body = &cur->person->base; break;
    case POPSYNC__RECORD__BODY_HOUSEHOLD: body = &cur->household->base; break;
    case POPSYNC__RECORD__BODY_BIRTH: body = &cur->birth->base; break;
    case POPSYNC__RECORD__BODY_MIGRATION: body = &cur->migration->base; break;
    case POPSYNC__RECORD__BODY_BENEFIT: body = &cur->benefit->base; break;
    case POPSYNC__RECORD__BODY_SERVICE_VISIT: body = &cur->service_visit->base; break;
    case POPSYNC__RECORD__BODY_SPOTCHECK: body = &cur->spotcheck->base; break;
    default: return 0;
    }
    if (!body)
        return 0;
    f = protobuf_c_message_descriptor_get_field_by_name(body->descriptor, field);
    if (!f || f->type != PROTOBUF_C_TYPE_BYTES)
        return 0;
    old = (const ProtobufCBinaryData *)(const void *)((const uint8_t *)body + f->offset);
    return old->len == id.len && id.len > 0 && memcmp(old->data, id.data, id.len) == 0;
}

/* A required reference checked for its form only (the foreign-case rule). */
static void check_ref_form(vstate_t *vs, const char *field, ProtobufCBinaryData id)
{
    if (id.len == 0)
        ps_verrs_add(vs->v, field, "is required");
    else if (id.len != PS_ID_LEN || !id.data)
        ps_verrs_add(vs->v, field, "must be a 16-byte record id");
}

/* A reference to another record: a 16-byte id, and, when the context can
 * tell, one of a live record of the expected kind. */
static void check_ref(vstate_t *vs, const char *field, ProtobufCBinaryData id, int required, int kind,
                      const char *noun)
{
    const ps_validate_ctx_t *ctx = vs->ctx;

    if (id.len == 0) {
        if (required)
            ps_verrs_add(vs->v, field, "is required");
        return;
    }
    if (id.len != PS_ID_LEN || !id.data) {
        ps_verrs_add(vs->v, field, "must be a 16-byte record id");
        return;
    }
    if (ctx && ctx->current && same_ref_as_current(ctx->current, field, id))
        return;
    if (ctx && ctx->ref_exists && !ctx->ref_exists(ctx->ref_arg, id.data, kind))
        ps_verrs_add(vs->v, field, "refers to a %s that does not exist", noun);
}

/* ---- bodies ---------------------------------------------------------------- */

/* The facts benefit rules read (docs/benefits.md): all optional. */
static void check_person_benefit_facts(vstate_t *vs, const Popsync__Person *p, uint32_t bd)
{
    uint32_t died = 0, gave_up = 0;

    check_enum(vs, "hukou_type", (int)p->hukou_type, POPSYNC__HUKOU_TYPE__HUKOU_TYPE_URBAN, 0);
    if (check_date(vs, "deceased_date", p->deceased_date, 0, 0, &died) && died && bd && died < bd)
        ps_verrs_add(vs->v, "deceased_date", "is before birth_date: check both dates");
    if (p->disability_grade > 4)
        ps_verrs_add(vs->v, "disability_grade", "must be 1 (most severe) to 4, or empty for none");
    if (check_date(vs, "gave_up_birth_date", p->gave_up_birth_date, 0, 0, &gave_up) && gave_up && bd &&
        gave_up < bd)
        ps_verrs_add(vs->v, "gave_up_birth_date", "is before birth_date: check both dates");
}

#define FROM_ID_NUMBER "is required: left empty it is taken from id_number, so correct id_number first"

static void check_person(vstate_t *vs, const Popsync__Person *p)
{
    const char *why = NULL;
    uint32_t bd = 0;
    int sex_ok, id_ok = 0;
    size_t i, ndig = 0, len;

    check_text(vs, "name", p->name, 1, 64, 0);
    /* Left empty, sex and birth date are taken from a valid ID number
     * (fields.c): with a wrong one, say where they would have come from
     * rather than "is required" beside the ID number's own error. */
    if (!empty(p->id_number) && p->sex == 0 && ps_validate_id_number_at(p->id_number, vs->today)) {
        ps_verrs_add(vs->v, "sex", FROM_ID_NUMBER);
        sex_ok = 0;
    } else {
        sex_ok = check_enum(vs, "sex", (int)p->sex, POPSYNC__SEX__SEX_FEMALE, 1);
    }
    if (!empty(p->id_number) && empty(p->birth_date) && ps_validate_id_number_at(p->id_number, vs->today))
        ps_verrs_add(vs->v, "birth_date", FROM_ID_NUMBER);
    else
        check_date(vs, "birth_date", p->birth_date, 1, 0, &bd);
    /* A newborn is registered before it has an ID number (the number is
     * filled in later); anyone older needs one. */
    if (empty(p->id_number)) {
        if (!bd || bd + 10000 <= vs->today)
            ps_verrs_add(vs->v, "id_number", "is required (it may be left empty only in a newborn's first year)");
    } else if ((why = ps_validate_id_number_at(p->id_number, vs->today))) {
        ps_verrs_add(vs->v, "id_number", "%s", why);
    } else {
        id_ok = 1;
    }
    /* Cross-checks only between values that are valid on their own, so one
     * mistake is not reported three times. */
    if (id_ok && bd && digits(p->id_number + 6, 8) != bd)
        ps_verrs_add(vs->v, "birth_date", "does not match the birth date in id_number");
    if (id_ok && sex_ok && p->sex != 0) {
        int male = (p->id_number[16] - '0') % 2 == 1;
        if (male != (p->sex == POPSYNC__SEX__SEX_MALE))
            ps_verrs_add(vs->v, "sex", "does not match the sex digit (17th character) of id_number");
    }
    check_text(vs, "ethnicity", p->ethnicity, 0, 32, 0);
    check_enum(vs, "registration", (int)p->registration, POPSYNC__REGISTRATION__REGISTRATION_MIGRANT, 0);
    check_enum(vs, "marital_status", (int)p->marital_status, POPSYNC__MARITAL_STATUS__MARITAL_STATUS_WIDOWED, 0);
    check_ref(vs, "household_id", p->household_id, 0, POPSYNC__KIND__KIND_HOUSEHOLD, "household");
    if (!empty(p->phone)) {
        len = strlen(p->phone);
        for (i = 0; i < len; i++) {
            char c = p->phone[i];
            if (is_digit(c))
                ndig++;
            else if (c != '+' && c != '-' && c != ' ')
                break;
        }
        if (i < len || len < 5 || len > 20 || ndig < 5)
            ps_verrs_add(vs->v, "phone",
                         "must be 5 to 20 characters of digits, '+', '-' or spaces, with at least 5 digits");
    }
    check_text(vs, "address", p->address, 0, 256, 1);
    check_person_benefit_facts(vs, p, bd);
}

static void check_household(vstate_t *vs, const Popsync__Household *h)
{
    check_ref(vs, "head_id", h->head_id, 0, POPSYNC__KIND__KIND_PERSON, "person");
    check_text(vs, "address", h->address, 0, 256, 1);
}

static void check_birth(vstate_t *vs, const Popsync__Birth *b)
{
    check_ref(vs, "mother_id", b->mother_id, 1, POPSYNC__KIND__KIND_PERSON, "person");
    check_enum(vs, "child_sex", (int)b->child_sex, POPSYNC__SEX__SEX_FEMALE, 1);
    check_date(vs, "birth_date", b->birth_date, 1, 0, NULL);
    if (b->birth_order < 1 || b->birth_order > BIRTH_ORDER_MAX)
        ps_verrs_add(vs->v, "birth_order", "must be 1 to %d", BIRTH_ORDER_MAX);
    check_text(vs, "place", b->place, 0, 128, 0);
    check_ref(vs, "child_id", b->child_id, 0, POPSYNC__KIND__KIND_PERSON, "person");
}

static void check_migration(vstate_t *vs, const Popsync__Migration *m, const char *orgunit)
{
    uint32_t start = 0, end = 0, sub = 0, fb = 0;

    if (vs->foreign) /* the owner district's person: required, in form only */
        check_ref_form(vs, "person_id", m->person_id);
    else
        check_ref(vs, "person_id", m->person_id, 1, POPSYNC__KIND__KIND_PERSON, "person");
    check_enum(vs, "direction", (int)m->direction, POPSYNC__DIRECTION__DIRECTION_OUTFLOW, 1);
    /* The other place may lie outside the district, so only its form is checked. */
    if (!empty(m->other_place_code)) {
        if (!ps_orgunit_valid(m->other_place_code))
            ps_verrs_add(vs->v, "other_place_code", "must be a 12-digit division code");
        else if (orgunit && strcmp(m->other_place_code, orgunit) == 0)
            ps_verrs_add(vs->v, "other_place_code", "must differ from the record's orgunit");
    }
    check_text(vs, "other_place", m->other_place, 0, 128, 0);
    check_date(vs, "start_date", m->start_date, 1, 0, &start);
    /* A planned end may lie ahead; submission and feedback have happened or not. */
    if (check_date(vs, "end_date", m->end_date, 0, 1, &end) && end && start && end < start)
        ps_verrs_add(vs->v, "end_date", "is before start_date");
    check_text(vs, "employer", m->employer, 0, 128, 0);
    if (check_date(vs, "submitted_date", m->submitted_date, 0, 0, &sub) && sub && start && sub < start)
        ps_verrs_add(vs->v, "submitted_date", "is before start_date");
    if (check_date(vs, "feedback_date", m->feedback_date, 0, 0, &fb) && fb) {
        if (empty(m->submitted_date))
            ps_verrs_add(vs->v, "feedback_date", "requires submitted_date");
        else if (start && fb < start)
            ps_verrs_add(vs->v, "feedback_date", "is before start_date");
        else if (sub && fb < sub)
            ps_verrs_add(vs->v, "feedback_date", "is before submitted_date");
    }
}

/* "YYYY" or "YYYY-MM". */
static void check_period(vstate_t *vs, const char *s)
{
    size_t len = s ? strlen(s) : 0, i;
    unsigned y, m = 1;

    if (len == 0) {
        ps_verrs_add(vs->v, "period", "is required");
        return;
    }
    for (i = 0; i < len; i++)
        if (!(is_digit(s[i]) || (i == 4 && s[i] == '-')))
            break;
    if ((len != 4 && len != 7) || i < len || (len == 7 && s[4] != '-')) {
        ps_verrs_add(vs->v, "period", "must be YYYY or YYYY-MM");
        return;
    }
    y = digits(s, 4);
    if (len == 7)
        m = digits(s + 5, 2);
    if (y < MIN_YEAR)
        ps_verrs_add(vs->v, "period", "year must be 1890 or later");
    else if (m < 1 || m > 12)
        ps_verrs_add(vs->v, "period", "month must be 01 to 12");
}

static void check_benefit(vstate_t *vs, const Popsync__Benefit *b)
{
    char list[128];
    const label_t *sc;
    int status_ok;

    check_ref(vs, "person_id", b->person_id, 1, POPSYNC__KIND__KIND_PERSON, "person");
    if (empty(b->scheme)) {
        ps_verrs_add(vs->v, "scheme", "is required");
    } else if (!label_find(schemes, NSCHEMES, b->scheme)) {
        codes_list(schemes, NSCHEMES, list, sizeof(list));
        ps_verrs_add(vs->v, "scheme", "must be one of %s", list);
    }
    check_period(vs, b->period);
    sc = empty(b->scheme) ? NULL : label_find(schemes, NSCHEMES, b->scheme);
    if (b->amount_fen < 0)
        ps_verrs_add(vs->v, "amount_fen", "must not be negative");
    else if (sc && b->amount_fen > scheme_max_fen[sc - schemes])
        ps_verrs_add(vs->v, "amount_fen", "must be at most %" PRId64 " fen (%" PRId64 " yuan) for scheme %s",
                     scheme_max_fen[sc - schemes], scheme_max_fen[sc - schemes] / 100, sc->code);
    else if (b->amount_fen > AMOUNT_MAX_FEN)
        ps_verrs_add(vs->v, "amount_fen", "must be at most %d fen", AMOUNT_MAX_FEN);
    status_ok = check_enum(vs, "status", (int)b->status, POPSYNC__BENEFIT_STATUS__BENEFIT_STATUS_PAID, 1);
    if (status_ok && b->status == POPSYNC__BENEFIT_STATUS__BENEFIT_STATUS_PAID)
        check_date(vs, "paid_date", b->paid_date, 1, 0, NULL);
    else if (!empty(b->paid_date))
        ps_verrs_add(vs->v, "paid_date", "must be empty unless status is paid");
}

static void check_service_visit(vstate_t *vs, const Popsync__ServiceVisit *s)
{
    char list[160];

    check_ref(vs, "person_id", s->person_id, 1, POPSYNC__KIND__KIND_PERSON, "person");
    if (empty(s->service)) {
        ps_verrs_add(vs->v, "service", "is required");
    } else if (!label_find(services, NSERVICES, s->service)) {
        codes_list(services, NSERVICES, list, sizeof(list));
        ps_verrs_add(vs->v, "service", "must be one of %s", list);
    }
    check_date(vs, "visit_date", s->visit_date, 1, 0, NULL);
    check_text(vs, "provider", s->provider, 0, 128, 0);
    check_text(vs, "outcome", s->outcome, 0, 256, 1);
}

/* The person fields a spot check may find wrong: the comma-separated list
 * in differs names each at most once. */
static void check_differs(vstate_t *vs, const char *list)
{
    char buf[256], *save = NULL, *tok;
    const char *seen[32];
    size_t nseen = 0;

    if (strlen(list) >= sizeof(buf)) {
        ps_verrs_add(vs->v, "differs", "must be at most %zu bytes", sizeof(buf) - 1);
        return;
    }
    snprintf(buf, sizeof(buf), "%s", list);
    for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        const ProtobufCFieldDescriptor *f =
            protobuf_c_message_descriptor_get_field_by_name(&popsync__person__descriptor, tok);
        size_t i;
        if (!f) {
            ps_verrs_add(vs->v, "differs", "names '%.40s', which is not a person field (see popsync fields person)",
                         tok);
            return;
        }
        for (i = 0; i < nseen; i++)
            if (strcmp(seen[i], f->name) == 0)
                break;
        if (i < nseen || nseen == sizeof(seen) / sizeof(seen[0])) {
            ps_verrs_add(vs->v, "differs", "names %s twice", f->name);
            return;
        }
        seen[nseen++] = f->name;
    }
}

static int is_hex(const char *s, size_t n)
{
    size_t i;
    if (!s || strlen(s) != n)
        return 0;
    for (i = 0; i < n; i++)
        if (!is_digit(s[i]) && !(s[i] >= 'a' && s[i] <= 'f'))
            return 0;
    return 1;
}

static void check_spotcheck(vstate_t *vs, const Popsync__SpotCheck *k)
{
    uint8_t id[PS_ID_LEN];
    int res_ok;

    check_ref(vs, "person_id", k->person_id, 1, POPSYNC__KIND__KIND_PERSON, "person");
    if (empty(k->month) || strlen(k->month) != 7)
        ps_verrs_add(vs->v, "month", "must be YYYY-MM");
    else
        check_period(vs, k->month);
    if (empty(k->draw_id) || ps_uuid_parse(k->draw_id, id) != PS_OK)
        ps_verrs_add(vs->v, "draw_id", "must be the draw's UUID");
    if (!is_hex(k->seed, 32))
        ps_verrs_add(vs->v, "seed", "must be 32 lower-case hex digits");
    check_text(vs, "method", k->method, 1, 200, 0);
    if (k->sample_size == 0 || k->sample_size > k->frame_size)
        ps_verrs_add(vs->v, "sample_size", "must be 1 to frame_size");
    if (!ps_orgunit_valid(k->township ? k->township : ""))
        ps_verrs_add(vs->v, "township", "must be a 12-digit division code");
    if (!is_hex(k->frame_digest, 64))
        ps_verrs_add(vs->v, "frame_digest", "must be 64 lower-case hex digits (SHA-256)");
    if (k->drawn_ms <= 0)
        ps_verrs_add(vs->v, "drawn_ms", "must be the draw's time");
    res_ok = check_enum(vs, "result", (int)k->result, POPSYNC__CHECK_RESULT__CHECK_RESULT_DIFFERS, 0);
    if (res_ok && k->result != POPSYNC__CHECK_RESULT__CHECK_RESULT_UNSPECIFIED)
        check_date(vs, "checked_date", k->checked_date, 1, 0, NULL);
    else if (!empty(k->checked_date))
        ps_verrs_add(vs->v, "checked_date", "must be empty until a result is given");
    if (k->result == POPSYNC__CHECK_RESULT__CHECK_RESULT_DIFFERS && empty(k->differs))
        ps_verrs_add(vs->v, "differs", "is required when the result is differs: name the fields found wrong");
    else if (k->result != POPSYNC__CHECK_RESULT__CHECK_RESULT_DIFFERS && !empty(k->differs))
        ps_verrs_add(vs->v, "differs", "must be empty unless the result is differs");
    else if (!empty(k->differs))
        check_differs(vs, k->differs);
    check_text(vs, "note", k->note, 0, 256, 1);
}

/* Records only the district draws (spot checks): a peer that is not an admin
 * may not create, delete or restore one, and may change only the result
 * fields (common/policy.c decides; this applies it to the change). */
static void check_district_drawn(const Popsync__Record *r, const ps_validate_ctx_t *ctx, ps_verrs_t *v)
{
    const Popsync__Record *cur;
    const char *names[64];
    size_t n, i;

    if (!ctx || !ctx->peer || !ps_policy_district_drawn(r->kind) || ctx->peer->role == PS_ROLE_ADMIN)
        return;
    if (!(cur = ctx->current)) {
        ps_verrs_add(v, "kind", "only the district administrator draws spot checks (popsync spotcheck draw)");
        return;
    }
    if (r->deleted != cur->deleted) {
        ps_verrs_add(v, "deleted", "only the district administrator may delete or restore a spot check");
        return;
    }
    if (strcmp(r->orgunit ? r->orgunit : "", cur->orgunit ? cur->orgunit : "") != 0)
        ps_verrs_add(v, "orgunit", "a spot check stays with the unit it was drawn for");
    n = ps_record_field_names(r->kind, names, sizeof(names) / sizeof(names[0]));
    for (i = 0; i < n && i < sizeof(names) / sizeof(names[0]); i++) {
        char a[512], b[512];
        if (ps_policy_result_field(r->kind, names[i]))
            continue;
        if (ps_record_get_text(r, names[i], a, sizeof(a)) != PS_OK ||
            ps_record_get_text(cur, names[i], b, sizeof(b)) != PS_OK || strcmp(a, b) != 0)
            ps_verrs_add(v, names[i], "is set by the district's draw: a township fills in result, checked_date, "
                                      "differs and note only");
    }
}

/* ---- the envelope ---------------------------------------------------------- */

static int body_matches_kind(const Popsync__Record *r)
{
    switch (r->kind) {
    case POPSYNC__KIND__KIND_PERSON: return r->body_case == POPSYNC__RECORD__BODY_PERSON && r->person;
    case POPSYNC__KIND__KIND_HOUSEHOLD: return r->body_case == POPSYNC__RECORD__BODY_HOUSEHOLD && r->household;
    case POPSYNC__KIND__KIND_BIRTH: return r->body_case == POPSYNC__RECORD__BODY_BIRTH && r->birth;
    case POPSYNC__KIND__KIND_MIGRATION: return r->body_case == POPSYNC__RECORD__BODY_MIGRATION && r->migration;
    case POPSYNC__KIND__KIND_BENEFIT: return r->body_case == POPSYNC__RECORD__BODY_BENEFIT && r->benefit;
    case POPSYNC__KIND__KIND_SERVICE_VISIT:
        return r->body_case == POPSYNC__RECORD__BODY_SERVICE_VISIT && r->service_visit;
    case POPSYNC__KIND__KIND_SPOTCHECK: return r->body_case == POPSYNC__RECORD__BODY_SPOTCHECK && r->spotcheck;
    default: return 0;
    }
}

static void check_orgunit(vstate_t *vs, const char *code)
{
    const ps_validate_ctx_t *ctx = vs->ctx;

    if (empty(code)) {
        ps_verrs_add(vs->v, "orgunit", "is required");
        return;
    }
    if (!ps_orgunit_valid(code)) {
        ps_verrs_add(vs->v, "orgunit", "must be a 12-digit division code");
        return;
    }
    if (!ctx || vs->foreign)
        return; /* a foreign case keeps its owner's unit, which the policy judges */
    if (ctx->units && !ps_orgunits_find(ctx->units, code)) {
        ps_verrs_add(vs->v, "orgunit", "is not a known org unit");
        return;
    }
    if (!ctx->peer || ctx->current)
        return;
    if (ps_policy_may_write(ctx->units, ctx->peer, NULL, NULL, code) == PS_WRITE_NO)
        ps_verrs_add(vs->v, "orgunit", "is outside the sender's scope");
}

/* Every known field of every kind fits in about 1 KiB (the text limits
 * above); the rest is room for the unknown fields of a newer build. */
size_t ps_record_max_bytes(int kind)
{
    switch (kind) {
    case POPSYNC__KIND__KIND_PERSON:
    case POPSYNC__KIND__KIND_MIGRATION:
    case POPSYNC__KIND__KIND_SERVICE_VISIT: return 8192;
    case POPSYNC__KIND__KIND_HOUSEHOLD:
    case POPSYNC__KIND__KIND_BIRTH:
    case POPSYNC__KIND__KIND_BENEFIT:
    case POPSYNC__KIND__KIND_SPOTCHECK: return 6144;
    default: return 0;
    }
}

/* Bytes of unknown fields in m and its sub-messages (the schema has no
 * recursion, so the depth is bounded). */
static size_t unknown_bytes(const ProtobufCMessage *m)
{
    const ProtobufCMessageDescriptor *d = m->descriptor;
    const char *base = (const char *)m;
    size_t n = 0;

    for (unsigned i = 0; i < m->n_unknown_fields; i++)
        n += m->unknown_fields[i].len + 1;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        const ProtobufCMessage *sub;
        if (f->type != PROTOBUF_C_TYPE_MESSAGE || f->label == PROTOBUF_C_LABEL_REPEATED)
            continue; /* records have no repeated messages */
        /* Members of a oneof share storage: only the set one is of its type. */
        if ((f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
            *(const uint32_t *)(const void *)(base + f->quantifier_offset) != f->id)
            continue;
        sub = *(const ProtobufCMessage *const *)(const void *)(base + f->offset);
        if (sub)
            n += unknown_bytes(sub);
    }
    return n;
}

/* Size bounds: checked before anything else, tombstones included (their
 * body is not validated, so only this bounds it). */
static void check_size(const Popsync__Record *r, ps_verrs_t *v)
{
    size_t unknown = unknown_bytes(&r->base), max = ps_record_max_bytes(r->kind), packed;

    if (unknown > PS_RECORD_MAX_UNKNOWN) {
        ps_verrs_add(v, "record",
                     "carries %zu bytes of unknown fields (limit %u), made by a newer or foreign program: "
                     "update popsync or re-enter the record",
                     unknown, PS_RECORD_MAX_UNKNOWN);
        return; /* that is why it is big */
    }
    if (!max)
        return; /* the kind check reports it */
    packed = protobuf_c_message_get_packed_size(&r->base);
    if (packed > max)
        ps_verrs_add(v, "record", "is %zu bytes, over the limit of %zu for a %s: shorten its fields", packed, max,
                     ps_kind_name(r->kind));
}

int ps_validate_foreign_case(const Popsync__Record *r, const ps_validate_ctx_t *ctx)
{
    if (!ctx || !ctx->units || !r || r->body_case != POPSYNC__RECORD__BODY_MIGRATION || !r->migration ||
        !r->orgunit || !ps_policy_foreign_case(ctx->units, r->orgunit, r->migration->other_place_code))
        return 0;
    if (ctx->from_upstream)
        return 1;
    return ctx->current && ctx->current->orgunit && strcmp(ctx->current->orgunit, r->orgunit) == 0;
}

size_t ps_validate_record(const Popsync__Record *r, const ps_validate_ctx_t *ctx, ps_verrs_t *v)
{
    size_t before = v->n;
    vstate_t vs;

    vs.ctx = ctx;
    vs.v = v;
    vs.today = ctx && ctx->today ? ctx->today : local_today();
    vs.foreign = ps_validate_foreign_case(r, ctx);

    check_size(r, v);
    if (r->id.len != PS_ID_LEN)
        ps_verrs_add(v, "id", "must be a 16-byte UUID");
    if (r->synthetic && ctx && ctx->refuse_synthetic)
        ps_verrs_add(v, "synthetic",
                     "this server does not take generated test data (popsync generate); only a test server "
                     "started with popsyncd --allow-synthetic does");
    if (!body_matches_kind(r)) {
        ps_verrs_add(v, "kind", "kind is unknown or does not match the record body");
        check_orgunit(&vs, r->orgunit);
        return v->n - before;
    }
    check_orgunit(&vs, r->orgunit);
    check_district_drawn(r, ctx, v);
    if (r->deleted)
        return v->n - before;
    switch (r->body_case) {
    case POPSYNC__RECORD__BODY_PERSON: check_person(&vs, r->person); break;
    case POPSYNC__RECORD__BODY_HOUSEHOLD: check_household(&vs, r->household); break;
    case POPSYNC__RECORD__BODY_BIRTH: check_birth(&vs, r->birth); break;
    case POPSYNC__RECORD__BODY_MIGRATION: check_migration(&vs, r->migration, r->orgunit); break;
    case POPSYNC__RECORD__BODY_BENEFIT: check_benefit(&vs, r->benefit); break;
    case POPSYNC__RECORD__BODY_SERVICE_VISIT: check_service_visit(&vs, r->service_visit); break;
    case POPSYNC__RECORD__BODY_SPOTCHECK: check_spotcheck(&vs, r->spotcheck); break;
    default: break;
    }
    return v->n - before;
}

/* ---- references ------------------------------------------------------------ */

static size_t add_ref(ps_ref_t *refs, size_t n, const char *field, ProtobufCBinaryData id, int kind)
{
    if (n >= PS_REFS_MAX || id.len != PS_ID_LEN || !id.data)
        return n;
    refs[n].field = field;
    refs[n].id = id.data;
    refs[n].kind = kind;
    return n + 1;
}

size_t ps_record_refs(const Popsync__Record *r, ps_ref_t refs[PS_REFS_MAX])
{
    const int person = POPSYNC__KIND__KIND_PERSON;

    if (!r)
        return 0;
    switch (r->body_case) {
    case POPSYNC__RECORD__BODY_PERSON:
        return r->person ? add_ref(refs, 0, "household_id", r->person->household_id, POPSYNC__KIND__KIND_HOUSEHOLD) : 0;
    case POPSYNC__RECORD__BODY_HOUSEHOLD:
        return r->household ? add_ref(refs, 0, "head_id", r->household->head_id, person) : 0;
    case POPSYNC__RECORD__BODY_BIRTH:
        return r->birth ? add_ref(refs, add_ref(refs, 0, "mother_id", r->birth->mother_id, person), "child_id",
                                  r->birth->child_id, person)
                        : 0;
    case POPSYNC__RECORD__BODY_MIGRATION:
        return r->migration ? add_ref(refs, 0, "person_id", r->migration->person_id, person) : 0;
    case POPSYNC__RECORD__BODY_BENEFIT:
        return r->benefit ? add_ref(refs, 0, "person_id", r->benefit->person_id, person) : 0;
    case POPSYNC__RECORD__BODY_SERVICE_VISIT:
        return r->service_visit ? add_ref(refs, 0, "person_id", r->service_visit->person_id, person) : 0;
    case POPSYNC__RECORD__BODY_SPOTCHECK:
        return r->spotcheck ? add_ref(refs, 0, "person_id", r->spotcheck->person_id, person) : 0;
    default:
        return 0;
    }
}
