/* vec.h - the one growable array.
 *
 * Owns: growing a heap array by doubling, with the size arithmetic checked
 * once here instead of at every call site.  An array is three fields the
 * caller keeps (T *v; size_t n, cap); these macros keep their types:
 *
 *     if (PS_VEC_ROOM(t->v, t->n, t->cap, 64))
 *         return PS_ENOMEM;
 *     t->v[t->n++] = x;
 *
 * Arrays that grow together (a value and its flag) grow the first with
 * PS_VEC_ROOM on a copy of cap and the others to that cap with
 * PS_VEC_RESIZE, then store the cap.  On failure nothing changes: the old
 * array and cap stay valid.  Any thread.
 */
#ifndef PS_VEC_H
#define PS_VEC_H

#include <stddef.h>

/** Makes room for element n: cap grows (doubling from first) when n == cap.
 *  PS_OK, or PS_ENOMEM when memory or size_t runs out. */
#define PS_VEC_ROOM(v, n, cap, first) \
    ((n) < (cap) ? 0 : ps_vec_room_((void *)&(v), &(cap), (n), sizeof(*(v)), (first)))
/** Reallocates v to hold count elements.  PS_OK or PS_ENOMEM. */
#define PS_VEC_RESIZE(v, count) ps_vec_resize_((void *)&(v), (count), sizeof(*(v)))

/* The functions behind the macros: pp is the address of the array pointer. */
int ps_vec_room_(void *pp, size_t *cap, size_t n, size_t elem, size_t first);
int ps_vec_resize_(void *pp, size_t count, size_t elem);

#endif
