/* spotcheck.c - sample size, Wilson interval and the draw (see spotcheck.h). */
#include "spotcheck.h"

#include "crypto.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

double ps_spot_z(double confidence)
{
    double lo = 0.0, hi = 10.0, target;

    if (!(confidence > 0.0 && confidence < 1.0))
        return 0.0;
    /* P(|Z| <= z) = erf(z / sqrt 2): increasing in z, so bisection on
     * [0, 10] to well below the precision anyone reads. */
    target = confidence;
    for (int i = 0; i < 100; i++) {
        double mid = (lo + hi) / 2.0;
        if (erf(mid / sqrt(2.0)) < target)
            lo = mid;
        else
            hi = mid;
    }
    return (lo + hi) / 2.0;
}

uint32_t ps_spot_sample_size(uint32_t N, double margin, double confidence)
{
    double z = ps_spot_z(confidence), n0, n;

    if (N == 0 || !(margin > 0.0 && margin < 1.0) || z <= 0.0)
        return 0;
    n0 = z * z * 0.25 / (margin * margin);
    n = n0 / (1.0 + (n0 - 1.0) / (double)N);
    /* A hair of tolerance so that an exact integer is not rounded up by
     * floating-point noise. */
    n = ceil(n - 1e-9);
    if (n < 1.0)
        n = 1.0;
    return n >= (double)N ? N : (uint32_t)n;
}

void ps_spot_wilson(uint32_t x, uint32_t n, double z, double *lo, double *hi)
{
    double p, z2, den, centre, half;

    if (n == 0) {
        *lo = 0.0;
        *hi = 1.0;
        return;
    }
    p = (double)x / (double)n;
    z2 = z * z;
    den = 1.0 + z2 / n;
    centre = (p + z2 / (2.0 * n)) / den;
    half = z * sqrt(p * (1.0 - p) / n + z2 / (4.0 * n * (double)n)) / den;
    *lo = centre - half < 0.0 ? 0.0 : centre - half;
    *hi = centre + half > 1.0 ? 1.0 : centre + half;
}

uint64_t ps_spot_key(const uint8_t seed[PS_SPOT_SEED_LEN], const char *township, const uint8_t id[16])
{
    uint8_t buf[PS_SPOT_SEED_LEN + 12 + 16], h[PS_SHA256_LEN];
    uint64_t k = 0;

    memcpy(buf, seed, PS_SPOT_SEED_LEN);
    memset(buf + PS_SPOT_SEED_LEN, '0', 12);
    memcpy(buf + PS_SPOT_SEED_LEN, township, strnlen(township, 12));
    memcpy(buf + PS_SPOT_SEED_LEN + 12, id, 16);
    ps_sha256(buf, sizeof(buf), h);
    for (int i = 0; i < 8; i++)
        k = k << 8 | h[i];
    return k;
}

typedef struct keyed {
    uint64_t key;
    const uint8_t *id;
} keyed_t;

static int cmp_id(const void *a, const void *b)
{
    return memcmp(a, b, 16);
}

static int cmp_keyed(const void *a, const void *b)
{
    const keyed_t *x = a, *y = b;
    if (x->key != y->key)
        return x->key < y->key ? -1 : 1;
    return memcmp(x->id, y->id, 16);
}

long ps_spot_draw(const uint8_t seed[PS_SPOT_SEED_LEN], const char *township, uint8_t (*ids)[16], size_t N,
                  uint32_t n, uint8_t (*out)[16], uint8_t digest[32])
{
    keyed_t *k;

    if (N)
        qsort(ids, N, 16, cmp_id);
    ps_sha256(ids, N * 16, digest);
    if (n > N)
        n = (uint32_t)N;
    if (N == 0)
        return 0;
    if (!(k = malloc(N * sizeof(*k))))
        return -1;
    for (size_t i = 0; i < N; i++) {
        k[i].key = ps_spot_key(seed, township, ids[i]);
        k[i].id = ids[i];
    }
    if (N)
        qsort(k, N, sizeof(*k), cmp_keyed);
    for (uint32_t i = 0; i < n; i++)
        memcpy(out[i], k[i].id, 16);
    free(k);
    return (long)n;
}
