/* memtrim.h - freed heap given back to the kernel.
 *
 * Owns: popsyncd's heap trims (malloc_trim and the kept Push arenas), run
 * on a libuv worker: every half minute, and soon after connections go quiet
 * (conn.c's sweep calls ps_memtrim_soon), at most once per
 * PS_MEMTRIM_GAP_MS.  main.c starts and stops it; metrics.c reads the
 * counts.  Loop thread only.
 */
#ifndef PS_MEMTRIM_H
#define PS_MEMTRIM_H

#include <stdint.h>
#include <uv.h>

#define PS_MEMTRIM_PERIOD_MS 30000
#define PS_MEMTRIM_GAP_MS 2000

typedef enum { PS_MEMTRIM_PERIODIC = 0, PS_MEMTRIM_QUIET = 1 } ps_memtrim_reason_t;

/** Starts the half-minute trims on loop (the timer never keeps it alive). */
void ps_memtrim_start(uv_loop_t *loop);
/** Connections went quiet and gave their buffers back: trim as soon as
 *  the gap since the last trim allows.  No-op before start or after stop. */
void ps_memtrim_soon(void);
/** Closes the timer; a trim already running finishes on its worker. */
void ps_memtrim_stop(void);
/** Trims done since start, by what asked for them. */
uint64_t ps_memtrim_count(ps_memtrim_reason_t reason);

#endif
