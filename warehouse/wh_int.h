/* wh_int.h - what the warehouse's modules share beyond wh.h: the kind
 * tables' columns.  Only the files of warehouse/ include it. */
#ifndef PS_WH_INT_H
#define PS_WH_INT_H

#include "fields.h"
#include "wh.h"

#define WH_NKINDS 6
#define WH_MAX_COLS 32

/** The i-th kind with a table (0 <= i < WH_NKINDS). */
int wh_kind_at(size_t i);
/** The field columns of a kind's table, in table order; returns their count. */
size_t wh_columns(int kind, const ps_field_t **out, size_t max);
/** SQL type of a field type (ps_ftype_t). */
const char *wh_sql_type(int type);

#endif
