/* suppress.c - small-cell suppression with complementary suppression
 * (suppress.h; the rule in docs/publish.md §3). */
#include "suppress.h"

#include "err.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void ps_sdc_init(ps_sdc_t *t)
{
    memset(t, 0, sizeof(*t));
}

void ps_sdc_free(ps_sdc_t *t)
{
    free(t->value);
    free(t->state);
    free(t->line_off);
    free(t->line_mem);
    memset(t, 0, sizeof(*t));
}

/* Grows *p (elements of size sz) to hold need; PS_OK or PS_ENOMEM. */
static int grow(void **p, size_t *cap, size_t need, size_t sz)
{
    size_t n = *cap ? *cap : 16;
    void *q;
    if (need <= *cap)
        return PS_OK;
    while (n < need)
        n *= 2;
    q = realloc(*p, n * sz);
    if (!q)
        return PS_ENOMEM;
    *p = q;
    *cap = n;
    return PS_OK;
}

int ps_sdc_cell(ps_sdc_t *t, int64_t value, size_t *idx)
{
    size_t cap = t->cap_cells;
    void *v = t->value, *s = t->state;
    if (grow(&v, &cap, t->ncells + 1, sizeof(int64_t)) != PS_OK)
        return PS_ENOMEM;
    t->value = v;
    cap = t->cap_cells;
    if (grow(&s, &cap, t->ncells + 1, sizeof(uint8_t)) != PS_OK)
        return PS_ENOMEM;
    t->state = s;
    t->cap_cells = cap;
    t->value[t->ncells] = value;
    t->state[t->ncells] = PS_SDC_SHOWN;
    *idx = t->ncells++;
    return PS_OK;
}

int ps_sdc_line(ps_sdc_t *t, size_t total, const size_t *parts, size_t n)
{
    void *o = t->line_off, *m = t->line_mem;
    if (n == 0 || total >= t->ncells)
        return PS_EINVAL;
    for (size_t i = 0; i < n; i++)
        if (parts[i] >= t->ncells)
            return PS_EINVAL;
    if (grow(&o, &t->cap_lines, t->nlines + 2, sizeof(size_t)) != PS_OK)
        return PS_ENOMEM;
    t->line_off = o;
    if (grow(&m, &t->cap_mem, t->nmem + n + 1, sizeof(size_t)) != PS_OK)
        return PS_ENOMEM;
    t->line_mem = m;
    if (t->nlines == 0)
        t->line_off[0] = 0;
    t->line_mem[t->nmem++] = total;
    memcpy(t->line_mem + t->nmem, parts, n * sizeof(size_t));
    t->nmem += n;
    t->line_off[++t->nlines] = t->nmem;
    return PS_OK;
}

size_t ps_sdc_count_suppressed(const ps_sdc_t *t)
{
    size_t n = 0;
    for (size_t i = 0; i < t->ncells; i++)
        n += t->state[i] != PS_SDC_SHOWN;
    return n;
}

/* The published cell of line l with the smallest value (a part before the
 * total on a tie: hiding a total hides more), or SIZE_MAX. */
static size_t smallest_shown(const ps_sdc_t *t, size_t l)
{
    size_t best = SIZE_MAX;
    for (size_t k = t->line_off[l + 1]; k-- > t->line_off[l];) {
        size_t c = t->line_mem[k];
        if (t->state[c] == PS_SDC_SHOWN && (best == SIZE_MAX || t->value[c] < t->value[best]))
            best = c;
    }
    return best;
}

/* Step 2: one pass over the lines; how many cells it suppressed. */
static size_t complement_lines(ps_sdc_t *t)
{
    size_t added = 0;
    for (size_t l = 0; l < t->nlines; l++) {
        size_t hidden = 0, c;
        for (size_t k = t->line_off[l]; k < t->line_off[l + 1]; k++)
            hidden += t->state[t->line_mem[k]] != PS_SDC_SHOWN;
        if (hidden != 1 || (c = smallest_shown(t, l)) == SIZE_MAX)
            continue;
        t->state[c] = PS_SDC_SECONDARY;
        added++;
    }
    return added;
}

/*
 * Which suppressed cells a reader can work out.  Each line is an equation
 * over the suppressed cells (the published ones move to the right-hand
 * side).  A suppressed cell's value is determined exactly when its unit
 * vector lies in the row space of that system, that is when, in reduced
 * row echelon form, its column is a pivot whose row has no other non-zero
 * entry.  Coefficients are +1/-1 and stay small, so doubles are exact
 * enough; 1e-9 separates zero from the rest.  det[i] is set to 1 for each
 * recoverable cell i.  PS_OK or PS_ENOMEM.
 */
static int determined(const ps_sdc_t *t, uint8_t *det)
{
    size_t nu = 0, *col = malloc((t->ncells ? t->ncells : 1) * sizeof(size_t)), *var = NULL;
    double *a = NULL;
    size_t rows = t->nlines, r = 0;
    int rc = PS_ENOMEM;

    if (!col)
        return PS_ENOMEM;
    memset(det, 0, t->ncells);
    for (size_t i = 0; i < t->ncells; i++)
        col[i] = t->state[i] != PS_SDC_SHOWN ? nu++ : SIZE_MAX;
    if (nu == 0 || rows == 0) {
        rc = PS_OK;
        goto out;
    }
    a = calloc(rows * nu, sizeof(double));
    var = malloc(nu * sizeof(size_t));
    if (!a || !var)
        goto out;
    for (size_t i = 0; i < t->ncells; i++)
        if (col[i] != SIZE_MAX)
            var[col[i]] = i;
    for (size_t l = 0; l < rows; l++)
        for (size_t k = t->line_off[l]; k < t->line_off[l + 1]; k++) {
            size_t c = col[t->line_mem[k]];
            if (c != SIZE_MAX)
                a[l * nu + c] += k == t->line_off[l] ? -1.0 : 1.0;
        }
    /* Reduced row echelon form, partial pivoting. */
    for (size_t c = 0; c < nu && r < rows; c++) {
        size_t p = r;
        for (size_t i = r + 1; i < rows; i++)
            if (fabs(a[i * nu + c]) > fabs(a[p * nu + c]))
                p = i;
        if (fabs(a[p * nu + c]) < 1e-9)
            continue;
        if (p != r)
            for (size_t j = 0; j < nu; j++) {
                double x = a[p * nu + j];
                a[p * nu + j] = a[r * nu + j];
                a[r * nu + j] = x;
            }
        for (size_t j = nu; j-- > 0;)
            a[r * nu + j] /= a[r * nu + c];
        for (size_t i = 0; i < rows; i++) {
            double f = a[i * nu + c];
            if (i == r || fabs(f) < 1e-12)
                continue;
            for (size_t j = 0; j < nu; j++)
                a[i * nu + j] -= f * a[r * nu + j];
        }
        r++;
    }
    for (size_t i = 0; i < r; i++) {
        size_t nz = 0, last = 0;
        for (size_t j = 0; j < nu; j++)
            if (fabs(a[i * nu + j]) > 1e-9) {
                nz++;
                last = j;
            }
        if (nz == 1)
            det[var[last]] = 1;
    }
    rc = PS_OK;
out:
    free(a);
    free(var);
    free(col);
    return rc;
}

int ps_sdc_recoverable(const ps_sdc_t *t, size_t idx)
{
    uint8_t *det;
    int rc;
    if (idx >= t->ncells || t->state[idx] == PS_SDC_SHOWN)
        return 0;
    if (!(det = malloc(t->ncells)))
        return PS_ENOMEM;
    rc = determined(t, det);
    if (rc == PS_OK)
        rc = det[idx];
    free(det);
    return rc;
}

/* Step 3: suppresses one more cell for the first recoverable one: the
 * smallest published cell of the lines it is in.  1 when it did, 0 when
 * nothing is recoverable (or nothing is left to hide). */
static int protect_one(ps_sdc_t *t, const uint8_t *det)
{
    for (size_t i = 0; i < t->ncells; i++) {
        size_t best = SIZE_MAX;
        if (!det[i])
            continue;
        for (size_t l = 0; l < t->nlines; l++)
            for (size_t k = t->line_off[l]; k < t->line_off[l + 1]; k++) {
                size_t c;
                if (t->line_mem[k] != i || (c = smallest_shown(t, l)) == SIZE_MAX)
                    continue;
                if (best == SIZE_MAX || t->value[c] < t->value[best])
                    best = c;
            }
        if (best != SIZE_MAX) {
            t->state[best] = PS_SDC_SECONDARY;
            return 1;
        }
    }
    return 0;
}

int ps_sdc_run(ps_sdc_t *t, int64_t threshold)
{
    uint8_t *det = malloc(t->ncells ? t->ncells : 1);
    int rc = PS_OK;
    if (!det)
        return PS_ENOMEM;
    for (size_t i = 0; i < t->ncells; i++)
        t->state[i] = t->value[i] < threshold ? PS_SDC_PRIMARY : PS_SDC_SHOWN;
    /* Every round suppresses at least one more cell or stops, so at most
     * ncells + 1 rounds. */
    for (size_t round = 0; round <= t->ncells; round++) {
        while (complement_lines(t) > 0)
            ;
        if ((rc = determined(t, det)) != PS_OK || !protect_one(t, det))
            break;
    }
    free(det);
    return rc;
}
