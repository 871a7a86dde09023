/* spotcheck.h - the statistics of statistical spot checks (统计质量抽查).
 *
 * Owns: the sample size from a margin and a confidence (normal
 * approximation, p = 0.5, finite-population correction), the Wilson score
 * interval of an accuracy rate, and the draw itself: which persons of one
 * township's frame a seed selects (each person's key is the first 8 bytes
 * of SHA-256(seed || township code || record id); the n smallest keys are
 * the sample).  docs/benefits.md §1 gives the formulas; anyone can redraw a
 * sample from the seed, the township code and the frame.  Pure functions
 * (no cache, no clock); cmd_spotcheck.c runs the commands and the report
 * panels over a cache.
 */
#ifndef PS_SPOTCHECK_H
#define PS_SPOTCHECK_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define PS_SPOT_SEED_LEN 16
#define PS_SPOT_METHOD "sha256-rank/v1"

/** The two-sided standard normal quantile z with P(|Z| <= z) = confidence
 *  (0.95 -> 1.95996...); 0 when confidence is not in (0, 1). */
double ps_spot_z(double confidence);

/** Persons to draw from a frame of N to estimate a rate within margin at
 *  confidence: n0 = z^2 * 0.25 / margin^2, n = ceil(n0 / (1 + (n0 - 1) / N)),
 *  at most N.  0 when N is 0 or the arguments are out of range. */
uint32_t ps_spot_sample_size(uint32_t N, double margin, double confidence);

/** Wilson score interval of x successes in n at the z given; n = 0 gives
 *  [0, 1]. */
void ps_spot_wilson(uint32_t x, uint32_t n, double z, double *lo, double *hi);

/** The draw key of a person (smaller keys are drawn first). */
uint64_t ps_spot_key(const uint8_t seed[PS_SPOT_SEED_LEN], const char *township, const uint8_t id[16]);

/**
 * Draws n of the N record ids of one township's frame: sorts ids by id
 * (in place), sets digest to SHA-256 of the sorted ids (the frame's
 * fingerprint), and writes the n ids with the smallest keys to out (in key
 * order).  n is capped at N; returns how many were drawn, or -1 on ENOMEM.
 */
long ps_spot_draw(const uint8_t seed[PS_SPOT_SEED_LEN], const char *township, uint8_t (*ids)[16], size_t N,
                  uint32_t n, uint8_t (*out)[16], uint8_t digest[32]);

#endif
