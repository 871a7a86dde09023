/* testhooks.h - knobs the test suite turns, compiled into test builds only.
 *
 * Owns: reading test hooks (POPSYNC_KDF_ITERATIONS, POPSYNC_CLOCK_OFFSET_MS,
 * POPSYNC_NO_COMPRESSION, POPSYNC_TEST_CUT_AFTER_FRAMES, POPSYNC_UI_TLS: TLS on
 * loopback for `popsync ui`; POPSYNC_TEST_MIGRANTS_BATCH and _PAUSE_MS: small,
 * slow batches of the migrant consumer, server/migrants.c;
 * POPSYNC_TEST_CACHE_MAP_BYTES: a client cache's LMDB map, so it fills up
 * like a full disk) from the
 * environment.  Only a build with PS_TEST_HOOKS defined (CMake option
 * PS_TEST_HOOKS, on with PS_BUILD_TESTS) reads them; a package built with
 * -DPS_BUILD_TESTS=OFF ignores them all.  Production code asks here and
 * never calls getenv for a test hook itself.
 */
#ifndef PS_TESTHOOKS_H
#define PS_TESTHOOKS_H

#include <stdint.h>

/** 1 and *out set when the hook name is set to a decimal number, 0 when it
 *  is unset or empty (or this is not a test build), PS_EINVAL otherwise. */
int ps_test_hook_u64(const char *name, uint64_t *out);
/** The same for a signed number. */
int ps_test_hook_i64(const char *name, int64_t *out);

#endif
