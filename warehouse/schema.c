/* schema.c - the warehouse's SQL schema (docs/warehouse.md §2 documents it).
 *
 * One table per record kind, named as the kind (person, household, birth,
 * migration, benefit, service_visit), LIST-partitioned by district (one
 * partition per district, <kind>_d<district>, made when the district's first
 * message arrives).  Columns: the envelope, then one per field of the field
 * dictionary (common/fields.c) with an SQL type from the field's type, then
 * the record as the stream carried it (bytea), so a version's counters can be
 * taken back exactly and nothing of a record is lost to the column mapping.
 */
#include "wh_int.h"

#include <stdio.h>
#include <string.h>

#include "err.h"
#include "fields.h"
#include "record_fmt.h"

static const int g_kinds[WH_NKINDS] = {POPSYNC__KIND__KIND_PERSON,    POPSYNC__KIND__KIND_HOUSEHOLD,
                                       POPSYNC__KIND__KIND_BIRTH,     POPSYNC__KIND__KIND_MIGRATION,
                                       POPSYNC__KIND__KIND_BENEFIT,   POPSYNC__KIND__KIND_SERVICE_VISIT};

int wh_kind_at(size_t i)
{
    return i < WH_NKINDS ? g_kinds[i] : 0;
}

const char *wh_kind_table(int kind)
{
    return ps_kind_name(kind);
}

const char *wh_sql_type(int type)
{
    switch ((ps_ftype_t)type) {
    case PS_FT_DATE: return "date";
    case PS_FT_REF: return "uuid";
    case PS_FT_INT: return "bigint";
    case PS_FT_FEN: return "bigint";
    case PS_FT_BOOL: return "boolean";
    default: return "text";
    }
}

size_t wh_columns(int kind, const ps_field_t **out, size_t max)
{
    size_t n = 0, nf = 0;
    const ps_field_t *f = ps_fields_of(kind, &nf);
    for (size_t i = 0; i < nf; i++) {
        /* orgunit is an envelope column; "amount" (yuan) is only an input
         * form of amount_fen. */
        if (!strcmp(f[i].name, "orgunit") || f[i].stored)
            continue;
        if (n < max)
            out[n] = &f[i];
        n++;
    }
    return n;
}

int wh_district_valid(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n < 1 || n > 20)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_'))
            return 0;
    }
    return 1;
}

int wh_exec(PGconn *pg, const char *sql, char *err, size_t errlen)
{
    PGresult *r = PQexec(pg, sql);
    int ok = r && (PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK);
    if (!ok)
        snprintf(err, errlen, "%s", r ? PQresultErrorMessage(r) : PQerrorMessage(pg));
    PQclear(r);
    return ok ? PS_OK : PS_EDB;
}

static const char *const g_common_sql =
    "CREATE TABLE IF NOT EXISTS wh_meta (key text PRIMARY KEY, value text NOT NULL);"
    "INSERT INTO wh_meta VALUES ('schema_version', '1') ON CONFLICT DO NOTHING;"
    "CREATE TABLE IF NOT EXISTS wh_stream (stream text PRIMARY KEY, last_stream_seq bigint NOT NULL,"
    " updated_at timestamptz NOT NULL);"
    "CREATE TABLE IF NOT EXISTS wh_position (district text PRIMARY KEY, last_seq bigint NOT NULL,"
    " messages bigint NOT NULL, last_stream_seq bigint NOT NULL, updated_at timestamptz NOT NULL);"
    "CREATE TABLE IF NOT EXISTS wh_counter (district text NOT NULL, month integer NOT NULL, unit text NOT NULL,"
    " metric text NOT NULL, value bigint NOT NULL, PRIMARY KEY (district, month, unit, metric));"
    /* The monthly report reads one month (and the stocks, month 0) of every district. */
    "CREATE INDEX IF NOT EXISTS wh_counter_month ON wh_counter (month);"
    "CREATE TABLE IF NOT EXISTS wh_rejected (stream_seq bigint PRIMARY KEY, district text, seq bigint,"
    " reason text NOT NULL, payload bytea, at timestamptz NOT NULL DEFAULT now());";

static int kind_table_sql(int kind, char *sql, size_t len)
{
    const ps_field_t *cols[32];
    const char *t = wh_kind_table(kind);
    size_t n = wh_columns(kind, cols, 32), off;
    int w;

    w = snprintf(sql, len,
                 "CREATE TABLE IF NOT EXISTS %s (district text NOT NULL, id uuid NOT NULL, orgunit text NOT NULL,"
                 " deleted boolean NOT NULL, gen bigint NOT NULL, hlc bigint NOT NULL, node bytea NOT NULL,"
                 " created_at timestamptz, updated_at timestamptz, synthetic boolean NOT NULL,"
                 " feed_seq bigint NOT NULL, stream_seq bigint NOT NULL",
                 t);
    if (w < 0 || (size_t)w >= len)
        return PS_ETOOBIG;
    off = (size_t)w;
    for (size_t i = 0; i < n && i < 32; i++) {
        w = snprintf(sql + off, len - off, ", %s %s", cols[i]->name, wh_sql_type((int)cols[i]->type));
        if (w < 0 || (size_t)w >= len - off)
            return PS_ETOOBIG;
        off += (size_t)w;
    }
    w = snprintf(sql + off, len - off,
                 ", record bytea NOT NULL, PRIMARY KEY (district, id)) PARTITION BY LIST (district);"
                 "CREATE INDEX IF NOT EXISTS %s_orgunit ON %s (orgunit);"
                 "CREATE OR REPLACE VIEW %s_live AS SELECT * FROM %s WHERE NOT deleted;",
                 t, t, t, t);
    if (w < 0 || (size_t)w >= len - off)
        return PS_ETOOBIG;
    return PS_OK;
}

int wh_schema_ensure(PGconn *pg, char *err, size_t errlen)
{
    char sql[4096];
    int rc;

    if ((rc = wh_exec(pg, "BEGIN; SELECT pg_advisory_xact_lock(7091219)", err, errlen)))
        return rc;
    if ((rc = wh_exec(pg, g_common_sql, err, errlen)))
        goto fail;
    for (size_t i = 0; i < WH_NKINDS; i++) {
        if ((rc = kind_table_sql(g_kinds[i], sql, sizeof(sql)))) {
            snprintf(err, errlen, "schema statement too long");
            goto fail;
        }
        if ((rc = wh_exec(pg, sql, err, errlen)))
            goto fail;
    }
    /* The quality check looks people up by ID number across districts. */
    if ((rc = wh_exec(pg, "CREATE INDEX IF NOT EXISTS person_id_number ON person (id_number)", err, errlen)))
        goto fail;
    return wh_exec(pg, "COMMIT", err, errlen);
fail:
    PQclear(PQexec(pg, "ROLLBACK"));
    return rc;
}

int wh_schema_district(PGconn *pg, const char *district, char *err, size_t errlen)
{
    char sql[256];
    int rc;
    if (!wh_district_valid(district)) {
        snprintf(err, errlen, "district code must be 1 to 20 letters, digits or _");
        return PS_EINVAL;
    }
    for (size_t i = 0; i < WH_NKINDS; i++) {
        const char *t = wh_kind_table(g_kinds[i]);
        /* The code was checked above: only [0-9A-Za-z_] reaches the SQL. */
        snprintf(sql, sizeof(sql), "CREATE TABLE IF NOT EXISTS %s_d%s PARTITION OF %s FOR VALUES IN ('%s')", t,
                 district, t, district);
        if ((rc = wh_exec(pg, sql, err, errlen)))
            return rc;
    }
    return PS_OK;
}
