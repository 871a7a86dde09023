/* test_fields.c - the field dictionary: Chinese labels, forgiving input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "err.h"
#include "fields.h"
#include "record_fmt.h"

#define PERSON POPSYNC__KIND__KIND_PERSON
#define BENEFIT POPSYNC__KIND__KIND_BENEFIT
#define VISIT POPSYNC__KIND__KIND_SERVICE_VISIT

/* Normalises in for kind's field; returns the text record_fmt would parse,
 * or "ERR" when refused. */
static const char *norm(int kind, const char *field, const char *in)
{
    static char out[PS_FIELD_NORM_MAX];
    const char *why;
    const ps_field_t *f = ps_field_find(kind, field);
    int k;

    assert_non_null(f);
    k = ps_field_normalize(f, in, out, sizeof(out), &why);
    if (k < 0) {
        assert_non_null(why);
        return "ERR";
    }
    return k == 0 ? out : in;
}

static void test_find_by_label(void **state)
{
    (void)state;
    assert_string_equal(ps_field_find(PERSON, "姓名")->name, "name");
    assert_string_equal(ps_field_find(PERSON, "身份证号")->name, "id_number");
    assert_string_equal(ps_field_find(PERSON, "id_number")->name, "id_number");
    assert_string_equal(ps_field_find(BENEFIT, "金额(元)")->name, "amount");
    assert_string_equal(ps_field_find(BENEFIT, "金额（元）")->name, "amount");
    assert_string_equal(ps_field_find(BENEFIT, "所属单位")->name, "orgunit");
    assert_null(ps_field_find(PERSON, "名字"));
    assert_null(ps_field_find(99, "name"));
    /* Other names sheets give the columns; not one that could mean two. */
    assert_string_equal(ps_field_find(PERSON, "身份证号码")->name, "id_number");
    assert_string_equal(ps_field_find(PERSON, "公民身份号码")->name, "id_number");
    assert_string_equal(ps_field_find(PERSON, "手机号码")->name, "phone");
    assert_string_equal(ps_field_find(PERSON, "家庭住址")->name, "address");
    assert_string_equal(ps_field_find(PERSON, "身 份 证 号 码")->name, "id_number");
    assert_null(ps_field_find(PERSON, "出生年月"));
    assert_null(ps_field_find(BENEFIT, "手机"));
    /* Spaced out to line up, or wrapped in the cell. */
    assert_string_equal(ps_field_find(PERSON, "姓\xE3\x80\x80名")->name, "name");
    assert_string_equal(ps_field_find(PERSON, "住  址")->name, "address");
    assert_string_equal(ps_field_find(PERSON, "身份证号\xE3\x80\x80")->name, "id_number");
    assert_string_equal(ps_field_find(PERSON, "身份\n证号")->name, "id_number");
    assert_string_equal(ps_field_find(BENEFIT, "金 额（元）")->name, "amount");
    assert_null(ps_field_find(PERSON, "名 字"));
    assert_null(ps_field_find(PERSON, " "));
}

static void test_dates(void **state)
{
    (void)state;
    assert_string_equal(norm(PERSON, "birth_date", "1992-05-15"), "1992-05-15");
    assert_string_equal(norm(PERSON, "birth_date", "1992-5-15"), "1992-05-15");
    assert_string_equal(norm(PERSON, "birth_date", "1992/5/15"), "1992-05-15");
    assert_string_equal(norm(PERSON, "birth_date", "1992.5.15"), "1992-05-15");
    assert_string_equal(norm(PERSON, "birth_date", "19920515"), "1992-05-15");
    assert_string_equal(norm(PERSON, "birth_date", "1992年5月15日"), "1992-05-15");
    assert_string_equal(norm(PERSON, "birth_date", "１９９２年５月１５日"), "1992-05-15");
    assert_string_equal(norm(PERSON, "birth_date", " 1992/05/15 "), "1992-05-15");
    /* A cell formatted as date and time, 号 for 日; a date Excel saved as
     * its serial number is refused with what to do. */
    assert_string_equal(norm(PERSON, "birth_date", "1992/5/15 0:00"), "1992-05-15");
    assert_string_equal(norm(PERSON, "birth_date", "1992-05-15 00:00:00"), "1992-05-15");
    assert_string_equal(norm(PERSON, "birth_date", "1992-05-15T08:30"), "1992-05-15");
    assert_string_equal(norm(PERSON, "birth_date", "1992年5月15号"), "1992-05-15");
    assert_string_equal(norm(PERSON, "birth_date", "1992/5/15 0"), "1992/5/15 0");
    assert_string_equal(norm(PERSON, "birth_date", "1992/5/15 下午"), "1992/5/15 下午");
    assert_string_equal(norm(PERSON, "birth_date", "33739"), "ERR");
    /* Not a date shape: passed through for validation's own reason. */
    assert_string_equal(norm(PERSON, "birth_date", "15/5/1992"), "15/5/1992");
    assert_string_equal(norm(BENEFIT, "period", "2026/3"), "2026-03");
    assert_string_equal(norm(BENEFIT, "period", "2026年3月"), "2026-03");
    assert_string_equal(norm(BENEFIT, "period", "202603"), "2026-03");
    assert_string_equal(norm(BENEFIT, "period", "2026年"), "2026");
    assert_string_equal(norm(BENEFIT, "period", "2026"), "2026");
}

static void test_id_numbers(void **state)
{
    (void)state;
    assert_string_equal(norm(PERSON, "id_number", "11010519491231002x"), "11010519491231002X");
    assert_string_equal(norm(PERSON, "id_number", "１１０１０５１９４９１２３１００２Ｘ"), "11010519491231002X");
    assert_string_equal(norm(PERSON, "id_number", "110105 19491231 002X"), "11010519491231002X");
    assert_string_equal(norm(PERSON, "id_number", "1.30203E+17"), "ERR");
    assert_string_equal(norm(PERSON, "id_number", "1.10105E17"), "ERR");
    /* Excel's text mark; a number written out with its decimals. */
    assert_string_equal(norm(PERSON, "id_number", "'11010519491231002x"), "11010519491231002X");
    assert_string_equal(norm(PERSON, "id_number", "＇110105 19491231 002X"), "11010519491231002X");
    assert_string_equal(norm(PERSON, "id_number", "110105194912310024.0"), "ERR");
    assert_string_equal(norm(PERSON, "id_number", "110105194912310000.00"), "ERR");
    assert_string_equal(norm(PERSON, "id_number", "1101.0"), "1101.0");
}

static void test_values(void **state)
{
    (void)state;
    assert_string_equal(norm(PERSON, "sex", "女"), "female");
    assert_string_equal(norm(PERSON, "性别", "男"), "male");
    assert_string_equal(norm(PERSON, "registration", "流动人口"), "migrant");
    assert_string_equal(norm(BENEFIT, "status", "已发放"), "paid");
    assert_string_equal(norm(PERSON, "sex", "女性"), "female");
    assert_string_equal(norm(BENEFIT, "scheme", "独生子女父母奖励"), "only_child_reward");
    /* A label's start when it names one choice: 随访 for 随访服务. */
    assert_string_equal(norm(VISIT, "service", "随访"), "followup");
    assert_string_equal(norm(VISIT, "service", "咨询"), "consultation");
    assert_string_equal(norm(VISIT, "service", "随"), "随");
    assert_string_equal(norm(VISIT, "service", "服务"), "服务");
    assert_string_equal(norm(BENEFIT, "amount", "3000.00"), "300000");
    assert_string_equal(norm(BENEFIT, "amount", "3,000.5"), "300050");
    assert_string_equal(norm(BENEFIT, "amount", "¥120元"), "12000");
    assert_string_equal(norm(BENEFIT, "amount", "12.345"), "ERR");
    assert_string_equal(norm(BENEFIT, "amount_fen", "3000.00"), "ERR");
    assert_string_equal(norm(BENEFIT, "amount_fen", "３０００"), "3000");
    /* Free text is kept exactly as typed. */
    assert_string_equal(norm(PERSON, "address", " 幸福路（东段）３号　"), " 幸福路（东段）３号　");
    assert_string_equal(ps_field_value_zh(ps_field_find(PERSON, "sex"), "female"), "女");
}

/* Spaces in a name: none at the ends, none between Chinese characters
 * ("张　三", ideographic or ASCII spaces); a Latin name keeps its own.
 * Other free text is kept as typed. */
static void test_text_spaces(void **state)
{
    char small[4];
    (void)state;

    assert_string_equal(norm(PERSON, "name", "张\xE3\x80\x80三"), "张三");
    assert_string_equal(norm(PERSON, "姓名", " 李 四 "), "李四");
    assert_string_equal(norm(PERSON, "name", "\xE3\x80\x80王\xE3\x80\x80 小明\t"), "王小明");
    assert_string_equal(norm(PERSON, "name", "John  Smith "), "John  Smith");
    assert_string_equal(norm(PERSON, "name", "阿依古丽·买买提"), "阿依古丽·买买提");
    /* The middle dot as people type it: one form. */
    assert_string_equal(norm(PERSON, "name", "阿依古丽.买买提"), "阿依古丽·买买提");
    assert_string_equal(norm(PERSON, "name", "阿依古丽•买买提"), "阿依古丽·买买提");
    assert_string_equal(norm(PERSON, "name", "阿依古丽・买买提"), "阿依古丽·买买提");
    assert_string_equal(norm(PERSON, "name", "阿依古丽 ． 买买提"), "阿依古丽·买买提");
    assert_string_equal(norm(PERSON, "name", "J. Smith"), "J. Smith");
    assert_string_equal(norm(PERSON, "name", "张三."), "张三.");
    assert_string_equal(norm(PERSON, "name", "   "), "");
    assert_string_equal(norm(PERSON, "address", " 幸福路 9 号 "), " 幸福路 9 号 ");
    assert_string_equal(norm(PERSON, "address", "幸福路\xE3\x80\x80" "9号"), "幸福路\xE3\x80\x80" "9号");
    assert_int_equal(ps_field_text_fold("张三李四", 1, small, sizeof(small)), -1);
}

static void test_record_set(void **state)
{
    Popsync__Record *r = NULL;
    char err[512], buf[64];

    (void)state;
    assert_int_equal(ps_record_new(&r, PERSON), PS_OK);
    assert_int_equal(ps_record_set(r, "姓名", "钱志强", err, sizeof(err)), PS_OK);
    assert_int_equal(ps_record_set(r, "性别", "女", err, sizeof(err)), PS_OK);
    assert_int_equal(ps_record_set(r, "出生日期", "1992年5月15日", err, sizeof(err)), PS_OK);
    assert_int_equal(ps_record_get_text(r, "birth_date", buf, sizeof(buf)), PS_OK);
    assert_string_equal(buf, "1992-05-15");
    assert_int_equal(ps_record_get_text(r, "sex", buf, sizeof(buf)), PS_OK);
    assert_string_equal(buf, "female");
    assert_int_equal(ps_record_set(r, "id_number", "1.30203E+17", err, sizeof(err)), PS_EINVAL);
    assert_non_null(strstr(err, "Excel"));
    assert_int_equal(ps_record_set(r, "nmae", "x", err, sizeof(err)), PS_EINVAL);
    assert_non_null(strstr(err, "id_number"));
    ps_record_free(r);

    assert_int_equal(ps_record_new(&r, BENEFIT), PS_OK);
    assert_int_equal(ps_record_set(r, "金额(元)", "3000.00", err, sizeof(err)), PS_OK);
    assert_int_equal(ps_record_get_text(r, "amount_fen", buf, sizeof(buf)), PS_OK);
    assert_string_equal(buf, "300000");
    ps_record_free(r);
}

static void test_complete(void **state)
{
    Popsync__Record *r = NULL;
    char err[256], buf[64];

    (void)state;
    assert_int_equal(ps_record_new(&r, PERSON), PS_OK);
    /* 11010519491231002X: born 1949-12-31, 17th digit 2: female. */
    assert_int_equal(ps_record_set(r, "id_number", "11010519491231002x", err, sizeof(err)), PS_OK);
    ps_fields_complete(r);
    assert_int_equal(ps_record_get_text(r, "birth_date", buf, sizeof(buf)), PS_OK);
    assert_string_equal(buf, "1949-12-31");
    assert_int_equal(ps_record_get_text(r, "sex", buf, sizeof(buf)), PS_OK);
    assert_string_equal(buf, "female");
    ps_record_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_find_by_label), cmocka_unit_test(test_dates),      cmocka_unit_test(test_id_numbers),
        cmocka_unit_test(test_values),        cmocka_unit_test(test_text_spaces),
        cmocka_unit_test(test_record_set), cmocka_unit_test(test_complete),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
