/* test_pinyin.c - the pinyin initials of names (common/pinyin.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <string.h>

#include "pinyin.h"

static void expect(const char *name, int surname, const char *want)
{
    char out[32];
    int n = ps_pinyin_initials(name, surname, out, sizeof(out));
    if (!want) {
        assert_int_equal(n, -1);
        return;
    }
    assert_int_equal(n, (int)strlen(want));
    assert_string_equal(out, want);
}

static void common_names(void **state)
{
    (void)state;
    expect("张三", 0, "zs");
    expect("李四", 0, "ls");
    expect("王小明", 1, "wxm");
    expect("欧阳娜娜", 0, "oynn");
    expect("钱志强", 0, "qzq");
    expect("吕琪", 0, "lq"); /* 吕 lü, 琪 (GB2312 level 2) */
    expect("赵六", 0, "zl");
}

static void surnames(void **state)
{
    (void)state;
    expect("单田芳", 0, "dtf"); /* customary dan */
    expect("单田芳", 1, "stf"); /* the family name shan */
    expect("曾国藩", 1, "zgf");
    expect("曾国藩", 0, "cgf");
    expect("解缙", 1, "xj");
    expect("王曾", 1, "wc"); /* only the first character is the family name */
}

static void other_scripts(void **state)
{
    (void)state;
    expect("阿依古丽·买买提", 0, "ayglmmt"); /* middle dot skipped */
    expect("Anna Li", 0, "annali");
    expect("张3", 0, NULL);
    expect("", 0, "");
    expect("😀", 0, NULL);
    {
        char small[3];
        assert_int_equal(ps_pinyin_initials("王小明", 0, small, sizeof(small)), -1);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(common_names),
        cmocka_unit_test(surnames),
        cmocka_unit_test(other_scripts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
