/* tz.h - the district's time zone: which calendar day it is there.
 *
 * Owns: checking an IANA zone name ("Asia/Shanghai") against the system tz
 * database (tzdata, /usr/share/zoneinfo or $TZDIR), its offset from UTC,
 * and the date in that zone at an instant.  Dates in records are judged by
 * the district's calendar, not by the clock of the machine that judges
 * them (docs/sync.md, "Dates and the district's time zone").
 *
 * Threads: glibc reads a zone only through the TZ environment variable, and
 * setenv is not thread safe.  ps_tz_load sets TZ for a moment (and puts it
 * back), so it may be called only while the process has a single thread:
 * popsyncd at start, the popsync CLI.  It fixes the zone's offset at that
 * instant; ps_tz_date is then pure arithmetic and safe anywhere.  (A zone
 * with summer time is an hour off after a change until the next start;
 * dates get a day of grace, so this never refuses a date.)
 * A process that starts threads and still needs zones afterwards (popsync
 * ui: its pages judge today's date and print stamps on libmicrohttpd's
 * threads) asks through ps_tz_get: each zone is loaded once, on first
 * use, and kept; the process loads the zones it needs while it is still
 * single-threaded and then calls ps_tz_freeze, after which ps_tz_get never
 * touches TZ again.
 * Callers: server/main.c (ps_tz_load at start), server/config.c
 * (ps_tz_valid), client/vctx.c and client/offline.c and client/ui_reach.c
 * (ps_tz_get), client/cmd_ui.c (the loads before its threads, the freeze).
 */
#ifndef PS_TZ_H
#define PS_TZ_H

#include <stddef.h>
#include <stdint.h>

#define PS_TZ_DEFAULT "Asia/Shanghai"

typedef struct ps_tz {
    char name[64];    /**< IANA zone name; "" = UTC */
    int32_t offset_s; /**< seconds east of UTC at load */
} ps_tz_t;

/** Is name a zone of the system tz database?  On failure err says why. */
int ps_tz_valid(const char *name, char *err, size_t errlen);

/**
 * Loads zone name with its UTC offset at now_ms (ms since the epoch).
 * PS_EINVAL (with err) when the name is not in the tz database.  Call only
 * while the process is single-threaded (see above).
 */
int ps_tz_load(ps_tz_t *tz, const char *name, uint64_t now_ms, char *err, size_t errlen);

/**
 * Zone name as ps_tz_load gives it, loaded once per process and kept (a
 * few zones at most; its offset is the one at the first load).  Until
 * ps_tz_freeze the first call for a name loads it, so it must come while
 * the process is single-threaded; any call may come from any thread after
 * that.  After ps_tz_freeze a name never loaded is PS_ENOTFOUND (err says
 * to restart) with *tz the first zone kept (UTC when none): callers keep
 * going with the zone the process started with.
 */
int ps_tz_get(ps_tz_t *tz, const char *name, char *err, size_t errlen);

/** From now on ps_tz_get loads nothing (the process is starting threads). */
void ps_tz_freeze(void);

/** The date (YYYYMMDD) in zone tz at now_ms. */
uint32_t ps_tz_date(const ps_tz_t *tz, uint64_t now_ms);

#endif
