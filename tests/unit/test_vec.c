/* test_vec.c - the one growable array (common/vec.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <stdlib.h>

#include "err.h"
#include "vec.h"

typedef struct pair {
    int a;
    double b;
} pair_t;

static void grows_by_doubling(void **state)
{
    pair_t *v = NULL;
    unsigned char *flag = NULL;
    size_t n = 0, cap = 0;
    (void)state;
    for (int i = 0; i < 1000; i++) {
        size_t ncap = cap;
        assert_int_equal(PS_VEC_ROOM(v, n, ncap, 4), PS_OK);
        if (ncap != cap)
            assert_int_equal(PS_VEC_RESIZE(flag, ncap), PS_OK);
        cap = ncap;
        assert_true(n < cap);
        v[n].a = i;
        v[n].b = i / 2.0;
        flag[n++] = (unsigned char)(i & 1);
    }
    assert_int_equal(cap, 1024); /* 4, 8, ..., 1024 */
    for (int i = 0; i < 1000; i++)
        assert_true(v[i].a == i && v[i].b == i / 2.0 && flag[i] == (i & 1));
    free(v);
    free(flag);
}

static void no_room_needed_no_call(void **state)
{
    int *v = NULL;
    size_t n = 0, cap = 0;
    (void)state;
    assert_int_equal(PS_VEC_ROOM(v, n, cap, 8), PS_OK);
    assert_int_equal(cap, 8);
    int *before = v;
    n = 7;
    assert_int_equal(PS_VEC_ROOM(v, n, cap, 8), PS_OK);
    assert_ptr_equal(v, before);
    assert_int_equal(cap, 8);
    free(v);
}

static void overflow_leaves_array(void **state)
{
    int *v = NULL;
    size_t cap = 0;
    (void)state;
    assert_int_equal(PS_VEC_ROOM(v, 0, cap, 2), PS_OK);
    v[0] = 42;
    assert_int_equal(PS_VEC_RESIZE(v, SIZE_MAX / 2), PS_ENOMEM);
    size_t huge = SIZE_MAX / 2 + 1;
    assert_int_equal(PS_VEC_ROOM(v, huge, huge, 2), PS_ENOMEM);
    assert_int_equal(v[0], 42);
    free(v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(grows_by_doubling),
        cmocka_unit_test(no_room_needed_no_call),
        cmocka_unit_test(overflow_leaves_array),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
