/* record_fmt.h - records <-> text, JSON and tables.
 *
 * Owns: the text form of every record field (the one the CLI, CSV, JSON and
 * table output share), record construction by kind, and display-width
 * measurement of UTF-8 text.  Everything is driven by the protobuf-c
 * descriptors, so a field added to proto/records.proto is handled with no
 * code change here.
 *
 * Text forms:
 *   string   as-is; must be valid UTF-8
 *   enum     value name without the enum's prefix, lower-cased
 *            (SEX_MALE -> "male"); value 0 (*_UNSPECIFIED) reads as "";
 *            input also accepts the full name, any case, and a decimal number
 *   bool     "true" / "false" (input: any case)
 *   integer  decimal; junk, overflow and a sign on unsigned types rejected
 *   float    decimal (strtod), finite only
 *   bytes    "id" and names ending in "_id": 16-byte id as a UUID string;
 *            any other bytes field: lower-case hex
 *   ""       clears the field back to its proto3 default
 * Envelope: "id" (UUID), "kind" (kind name), "orgunit", "deleted",
 * "rev" ("gen.hlc", "" when unset), "created_ms", "updated_ms",
 * "changed_by" (hex).  Only "orgunit" of the envelope is settable here; the
 * others belong to the creator and the server.
 * Repeated and message-typed fields have no text form (only "" to clear
 * them) and are left out of ps_record_field_names; JSON carries repeated
 * scalars as arrays and messages as objects (read back: arrays only).
 */
#ifndef PS_RECORD_FMT_H
#define PS_RECORD_FMT_H

#include <stddef.h>
#include <stdint.h>
#include <stdint.h>
#include <stdio.h>

/* jansson's value type, declared rather than included: a module that
 * builds or reads JSON includes jansson.h itself. */
typedef struct json_t json_t;

#include "records.pb-c.h"

/** Kind from its name ("person", ..., "service_visit"); -1 when unknown. */
int ps_kind_from_name(const char *name);
/** Name of a kind; static string, NULL when the kind has no body type. */
const char *ps_kind_name(int kind);

/**
 * Allocates an envelope of the given kind with an empty body of that kind
 * (body oneof case set) and no id.  The caller owns *out and frees it with
 * ps_record_free.  PS_OK, PS_EINVAL (unknown kind) or PS_ENOMEM.
 */
int ps_record_new(Popsync__Record **out, int kind);
/**
 * Person references (person_id, mother_id, head_id) may be given as the
 * person's ID number where a resolver is set: it answers the record id of
 * the live person with that number (PS_OK) or PS_ENOTFOUND.  The CLI sets
 * one over its cache while it reads what a clerk typed; the server never
 * does (an ID number there is not a record id).  Per thread; fn NULL
 * removes it.
 */
typedef int (*ps_person_resolver_fn)(void *arg, const char *id_number, uint8_t id[16]);
void ps_record_set_person_resolver(ps_person_resolver_fn fn, void *arg);

/** Frees a record from ps_record_new or from protobuf unpacking; NULL is fine. */
void ps_record_free(Popsync__Record *r);

/**
 * Sets a body field, or the envelope's "orgunit", from its text form.  On
 * failure the field is unchanged and err (may be NULL) holds a message.
 * Any previous value is freed.  PS_OK, PS_EINVAL or PS_ENOMEM.
 */
int ps_record_set(Popsync__Record *r, const char *field, const char *value, char *err, size_t errlen);
/** As ps_record_set, from "field=value" (split at the first '='). */
int ps_record_set_kv(Popsync__Record *r, const char *kv, char *err, size_t errlen);

/**
 * Writes the text form of an envelope or body field into the caller's out
 * (always NUL-terminated when outlen > 0).  PS_OK, PS_EINVAL (unknown or
 * unsupported field), PS_ETOOBIG (truncated) or PS_ENOMEM.
 */
int ps_record_get_text(const Popsync__Record *r, const char *field, char *out, size_t outlen);

/**
 * Stores up to max names of kind's body fields that have a text form, in
 * field-number order, into names (static strings owned by the descriptors;
 * names may be NULL when max is 0).  Returns the total number of such
 * fields, which may exceed max; 0 for an unknown kind.
 */
size_t ps_record_field_names(int kind, const char **names, size_t max);

/**
 * 1 when a and b hold the same content: id, kind, orgunit, deleted, body
 * and unknown fields, ignoring the bookkeeping of who changed the record
 * and when (rev, created_ms, updated_ms, changed_by); else 0 (also on
 * ENOMEM, so a caller that skips writing equal records writes instead).
 * An edit or import whose result has the same content as the version it
 * starts from changes nothing and writes nothing (docs/sync.md §4).
 */
int ps_record_same_content(const Popsync__Record *a, const Popsync__Record *b);

/**
 * SHA-256 of r's content without its id (kind, orgunit, deleted, synthetic,
 * body, unknown fields): two records with the same digest say the same
 * thing.  An import keeps a row equal to a record it already holds from
 * being added twice (client/cmd_io.c).  PS_OK or PS_ENOMEM.
 */
int ps_record_content_digest(const Popsync__Record *r, uint8_t out[32]);

/**
 * A 64-bit integer as every JSON popsync writes it: a decimal string, as in
 * the protobuf JSON mapping (a JSON number above 2^53 is rounded by most
 * readers).  docs/data-model.md §4.1 says which values are written so.
 * New reference, or NULL on ENOMEM.
 */
json_t *ps_json_u64(uint64_t v);
json_t *ps_json_i64(int64_t v);

/**
 * The record as a JSON object: "id", "kind", "orgunit", every body field of
 * the kind by name (always present, "" / 0 / false when unset), "deleted",
 * "rev" ({"gen","hlc","node"} or null), then the remaining envelope fields.
 * 64-bit integers (rev.gen, rev.hlc, created_ms, updated_ms, amount_fen)
 * are decimal strings; 32-bit ones are numbers.
 * Returns a new reference the caller must json_decref, or NULL on ENOMEM.
 */
json_t *ps_record_to_json(const Popsync__Record *r);

/**
 * Sets every key of obj on r: "orgunit" and the body fields of r's kind.
 * Keys naming other envelope fields (id, kind, rev, deleted, ...) are
 * ignored; the caller handles those.  Strings, numbers, booleans and null
 * (= clear) are accepted where the text form allows, arrays for repeated
 * fields.  Unknown keys are PS_EINVAL naming the key.  Stops at the first bad
 * key, leaving earlier keys applied.  PS_OK, PS_EINVAL or PS_ENOMEM.
 */
int ps_record_from_json(Popsync__Record *r, const json_t *obj, char *err, size_t errlen);

/**
 * Prints recs as a table: a header row, then one row per record, columns
 * separated by two spaces and padded by display width (CJK counts 2).
 * columns may name envelope or body fields; a field a record lacks prints
 * empty.  With columns NULL or ncols 0: id, kind, orgunit and the body
 * fields of recs[0]'s kind.  Control characters print as spaces.
 */
void ps_record_print_table(FILE *out, Popsync__Record *const *recs, size_t n, const char *const *columns,
                           size_t ncols);

/** Display width of a NUL-terminated UTF-8 string (invalid bytes count 1). */
size_t ps_utf8_width(const char *s);
/** 1 if s[0..len) is strict UTF-8 (no overlongs, surrogates, > U+10FFFF), else 0. */
int ps_utf8_valid(const char *s, size_t len);

#endif
