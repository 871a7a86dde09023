/* test_client_suppress.c - unit tests for client/suppress.c.
 *
 * Owns: checks that the small-cell suppression of `popsync publish`
 * leaves no cell under 5 visible, that no line (row, column, count and
 * complement) has exactly one suppressed cell, and that no suppressed cell
 * can be worked out from the published ones.  The last is audited
 * independently of suppress.c's own linear algebra: in a two-way table
 * with its margins, a suppressed cell is recoverable exactly when it is a
 * bridge of the bipartite graph of suppressed cells (rows and columns as
 * nodes, suppressed cells as edges; a cell on a cycle can move by +x/-x
 * around it without changing any total).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "err.h"
#include "suppress.h"

#define MAXR 10
#define MAXC 8

/* A two-way table with margins: cells[i][j] for i <= R, j <= C, row R and
 * column C being the totals. */
typedef struct grid {
    size_t R, C;
    size_t cell[MAXR + 1][MAXC + 1];
    ps_sdc_t t;
} grid_t;

static void grid_build(grid_t *g, size_t R, size_t C, int64_t v[MAXR][MAXC])
{
    int64_t rowt[MAXR + 1] = {0}, colt[MAXC + 1] = {0};
    size_t parts[MAXR + MAXC];
    g->R = R;
    g->C = C;
    ps_sdc_init(&g->t);
    for (size_t i = 0; i < R; i++)
        for (size_t j = 0; j < C; j++) {
            rowt[i] += v[i][j];
            colt[j] += v[i][j];
            colt[C] += v[i][j];
        }
    for (size_t i = 0; i <= R; i++)
        for (size_t j = 0; j <= C; j++) {
            int64_t x = i < R && j < C ? v[i][j] : i < R ? rowt[i] : colt[j];
            assert_int_equal(ps_sdc_cell(&g->t, x, &g->cell[i][j]), PS_OK);
        }
    for (size_t i = 0; i <= R; i++) {
        for (size_t j = 0; j < C; j++)
            parts[j] = g->cell[i][j];
        assert_int_equal(ps_sdc_line(&g->t, g->cell[i][C], parts, C), PS_OK);
    }
    for (size_t j = 0; j <= C; j++) {
        for (size_t i = 0; i < R; i++)
            parts[i] = g->cell[i][j];
        assert_int_equal(ps_sdc_line(&g->t, g->cell[R][j], parts, R), PS_OK);
    }
}

static int hidden(const grid_t *g, size_t i, size_t j)
{
    return g->t.state[g->cell[i][j]] != PS_SDC_SHOWN;
}

/* Nodes 0..R are the row lines, R+1..R+C+1 the column lines; is there a
 * path from row node a to column node b over suppressed cells other than
 * (skip_i, skip_j)? */
static int connected_without(const grid_t *g, size_t skip_i, size_t skip_j)
{
    size_t n = g->R + g->C + 2, queue[MAXR + MAXC + 2], head = 0, tail = 0;
    int seen[MAXR + MAXC + 2] = {0};
    queue[tail++] = skip_i;
    seen[skip_i] = 1;
    while (head < tail) {
        size_t u = queue[head++];
        for (size_t w = 0; w < n; w++) {
            size_t i, j;
            if (seen[w] || (u <= g->R) == (w <= g->R))
                continue;
            i = u <= g->R ? u : w;
            j = (u <= g->R ? w : u) - g->R - 1;
            if ((i == skip_i && j == skip_j) || !hidden(g, i, j))
                continue;
            seen[w] = 1;
            queue[tail++] = w;
        }
    }
    return seen[g->R + 1 + skip_j];
}

/* The three properties, checked without suppress.c's own algebra. */
static void audit(const grid_t *g)
{
    for (size_t i = 0; i <= g->R; i++)
        for (size_t j = 0; j <= g->C; j++) {
            int64_t v = g->t.value[g->cell[i][j]];
            if (!hidden(g, i, j)) {
                assert_true(v >= 5); /* no cell under 5 visible */
                continue;
            }
            if (v < 5)
                assert_int_equal(g->t.state[g->cell[i][j]], PS_SDC_PRIMARY);
            /* not a bridge: some other path of suppressed cells joins its
             * row and its column, so it is on a cycle */
            assert_true(connected_without(g, i, j));
            assert_int_equal(ps_sdc_recoverable(&g->t, g->cell[i][j]), 0);
        }
    for (size_t i = 0; i <= g->R; i++) { /* no line with exactly one hidden */
        size_t n = 0;
        for (size_t j = 0; j <= g->C; j++)
            n += (size_t)hidden(g, i, j);
        assert_true(n != 1);
    }
    for (size_t j = 0; j <= g->C; j++) {
        size_t n = 0;
        for (size_t i = 0; i <= g->R; i++)
            n += (size_t)hidden(g, i, j);
        assert_true(n != 1);
    }
}

static void test_one_way(void **state)
{
    ps_sdc_t t;
    size_t c[5], parts[4];
    int64_t v[5] = {213, 100, 3, 50, 60};
    (void)state;
    ps_sdc_init(&t);
    for (size_t i = 0; i < 5; i++)
        assert_int_equal(ps_sdc_cell(&t, v[i], &c[i]), PS_OK);
    memcpy(parts, c + 1, sizeof(parts));
    assert_int_equal(ps_sdc_line(&t, c[0], parts, 4), PS_OK);
    assert_int_equal(ps_sdc_run(&t, 5), PS_OK);
    assert_int_equal(t.state[c[2]], PS_SDC_PRIMARY);
    assert_int_equal(t.state[c[3]], PS_SDC_SECONDARY); /* 50: the smallest other */
    assert_int_equal(t.state[c[0]], PS_SDC_SHOWN);
    assert_int_equal(t.state[c[1]], PS_SDC_SHOWN);
    assert_int_equal(t.state[c[4]], PS_SDC_SHOWN);
    assert_int_equal(ps_sdc_count_suppressed(&t), 2);
    assert_int_equal(ps_sdc_recoverable(&t, c[2]), 0);
    /* Without the complement, 213 - 100 - 50 - 60 gives the 3 away. */
    t.state[c[3]] = PS_SDC_SHOWN;
    assert_int_equal(ps_sdc_recoverable(&t, c[2]), 1);
    ps_sdc_free(&t);
}

/* Zero counts fewer than 5 people: suppressed too. */
static void test_zero_suppressed(void **state)
{
    ps_sdc_t t;
    size_t a, b, s;
    (void)state;
    ps_sdc_init(&t);
    assert_int_equal(ps_sdc_cell(&t, 7, &s), PS_OK);
    assert_int_equal(ps_sdc_cell(&t, 0, &a), PS_OK);
    assert_int_equal(ps_sdc_cell(&t, 7, &b), PS_OK);
    assert_int_equal(ps_sdc_line(&t, s, (size_t[]){a, b}, 2), PS_OK);
    assert_int_equal(ps_sdc_run(&t, 5), PS_OK);
    assert_int_equal(t.state[a], PS_SDC_PRIMARY);
    /* 7 and 7: the part goes before the total on a tie */
    assert_int_equal(t.state[b], PS_SDC_SECONDARY);
    assert_int_equal(t.state[s], PS_SDC_SHOWN);
    assert_int_equal(ps_sdc_line(&t, s, (size_t[]){a}, 0), PS_EINVAL);
    assert_int_equal(ps_sdc_line(&t, 99, (size_t[]){a}, 1), PS_EINVAL);
    ps_sdc_free(&t);
}

/* Two 2x2 blocks of small cells joined by one small cell: every row and
 * column has 0, 2 or 3 suppressed cells, so "one suppressed cell in a
 * line" never fires, yet the joining cell is a bridge: the sum of rows 0-1
 * minus the sum of columns 0-1 leaves it alone.  The exact check must
 * catch it. */
static void test_bridge(void **state)
{
    grid_t g;
    int64_t v[MAXR][MAXC];
    (void)state;
    for (size_t i = 0; i < 5; i++)
        for (size_t j = 0; j < 5; j++)
            v[i][j] = 100 + (int64_t)(i * 5 + j);
    v[0][0] = v[0][1] = v[1][0] = v[1][1] = 2;
    v[2][2] = v[2][3] = v[3][2] = v[3][3] = 3;
    v[1][2] = 4;
    grid_build(&g, 5, 5, v);
    /* Primary pattern alone: (1,2) is recoverable. */
    for (size_t i = 0; i < g.t.ncells; i++)
        g.t.state[i] = g.t.value[i] < 5 ? PS_SDC_PRIMARY : PS_SDC_SHOWN;
    assert_int_equal(ps_sdc_recoverable(&g.t, g.cell[1][2]), 1);
    assert_false(connected_without(&g, 1, 2));
    assert_int_equal(ps_sdc_recoverable(&g.t, g.cell[0][0]), 0);
    assert_int_equal(ps_sdc_run(&g.t, 5), PS_OK);
    audit(&g);
    assert_true(ps_sdc_count_suppressed(&g.t) > 9);
    ps_sdc_free(&g.t);
}

/* Random tables of a township-sized district: mostly small monthly counts,
 * some large; every run passes the audit. */
static void test_random_tables(void **state)
{
    unsigned seed = 18;
    (void)state;
    for (int round = 0; round < 300; round++) {
        grid_t g;
        int64_t v[MAXR][MAXC];
        size_t R = 1 + (size_t)(rand_r(&seed) % MAXR), C = 1 + (size_t)(rand_r(&seed) % MAXC);
        int big = rand_r(&seed) % 4;
        for (size_t i = 0; i < R; i++)
            for (size_t j = 0; j < C; j++)
                v[i][j] = rand_r(&seed) % 3 == 0 ? (int64_t)(rand_r(&seed) % 5)
                                                 : (int64_t)(rand_r(&seed) % (big ? 200 : 12));
        grid_build(&g, R, C, v);
        assert_int_equal(ps_sdc_run(&g.t, 5), PS_OK);
        audit(&g);
        ps_sdc_free(&g.t);
    }
}

/* A table with nothing small publishes everything. */
static void test_nothing_small(void **state)
{
    grid_t g;
    int64_t v[MAXR][MAXC];
    (void)state;
    for (size_t i = 0; i < 4; i++)
        for (size_t j = 0; j < 3; j++)
            v[i][j] = 5 + (int64_t)(i + j);
    grid_build(&g, 4, 3, v);
    assert_int_equal(ps_sdc_run(&g.t, 5), PS_OK);
    assert_int_equal(ps_sdc_count_suppressed(&g.t), 0);
    ps_sdc_free(&g.t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_one_way),       cmocka_unit_test(test_zero_suppressed),
        cmocka_unit_test(test_bridge),        cmocka_unit_test(test_random_tables),
        cmocka_unit_test(test_nothing_small),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
