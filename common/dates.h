/* dates.h - civil dates as day numbers (proleptic Gregorian calendar).
 *
 * Owns: converting between a year/month/day and the days since 1970-01-01
 * (Howard Hinnant's algorithms), for the server's counters and the client's
 * generator.  Pure; any module may call it.
 */
#ifndef PS_DATES_H
#define PS_DATES_H

#include <stdint.h>

/** Days since 1970-01-01 of y-m-d (m 1..12, d 1..31; not checked). */
int32_t ps_days_from_civil(int y, int m, int d);
/** The civil date of day z (days since 1970-01-01). */
void ps_civil_from_days(int32_t z, int *y, int *m, int *d);

#endif
