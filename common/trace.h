/* trace.h - PS_TRACE_SYNC=1: a timeline of each sync's steps on stderr.
 *
 * Owns: the switch (the environment variable PS_TRACE_SYNC, read once per
 * process) and the line format
 *   "trace <CLOCK_REALTIME ms> t<thread> cpu <thread CPU ms> <side>: <step>"
 * The clock is the wall clock (as strace -ttt prints it), so the lines of popsyncd and of
 * its clients on one machine sort into one timeline (docs/performance.md
 * §c).  Any module may call it; callers pass step names and counts only,
 * never names, ID numbers or record ids (the privacy rule of log.h).
 */
#ifndef PS_TRACE_H
#define PS_TRACE_H

/** 1 when PS_TRACE_SYNC is set to a non-empty value other than "0". */
int ps_trace_on(void);
/** Writes one line when tracing is on; side is "client" or "server". */
void ps_trace(const char *side, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define PS_TRACE(side, ...)                                                                                            \
    do {                                                                                                               \
        if (ps_trace_on())                                                                                             \
            ps_trace(side, __VA_ARGS__);                                                                               \
    } while (0)

#endif
