/* cli.h - the popsync command line: shared state of the subcommands.
 *
 * Owns: global options (--data), exit codes, and the table of subcommands.
 * Exit codes are part of the interface scripts rely on (docs/operations.md):
 */
#ifndef PS_CLI_H
#define PS_CLI_H

#include <stdio.h>

#include <stddef.h>
#include <stdint.h>

#include "late.h"
#include "xlsx.h"
#include "records.pb-c.h"

#define PS_EXIT_OK 0        /**< success */
#define PS_EXIT_FAIL 1      /**< the command failed (message on stderr) */
#define PS_EXIT_USAGE 2     /**< bad command line */
#define PS_EXIT_SYNC 3      /**< the server could not be reached or the sync did not complete */
#define PS_EXIT_INVALID 4   /**< the record(s) given were invalid; nothing was stored for them */
#define PS_EXIT_NOTFOUND 5  /**< no such record */
#define PS_EXIT_REFUSED 6   /**< sync completed, but the server refused some changes or kept them as conflicts */

typedef struct ps_cli {
    const char *data_dir; /**< --data or $POPSYNC_DATA */
    int json;             /**< --json: machine-readable output where offered */
} ps_cli_t;

/* Each takes argv with argv[0] = the subcommand name. */
int ps_cmd_init(ps_cli_t *cli, int argc, char **argv);
int ps_cmd_sync(ps_cli_t *cli, int argc, char **argv);
int ps_cmd_status(ps_cli_t *cli, int argc, char **argv);
int ps_cmd_add(ps_cli_t *cli, int argc, char **argv);
int ps_cmd_edit(ps_cli_t *cli, int argc, char **argv);
int ps_cmd_delete(ps_cli_t *cli, int argc, char **argv);
int ps_cmd_restore(ps_cli_t *cli, int argc, char **argv);
int ps_cmd_show(ps_cli_t *cli, int argc, char **argv);
int ps_cmd_list(ps_cli_t *cli, int argc, char **argv);
int ps_cmd_generate(ps_cli_t *cli, int argc, char **argv);
int ps_cmd_import(ps_cli_t *cli, int argc, char **argv);
int ps_cmd_stats(ps_cli_t *cli, int argc, char **argv);
int ps_cmd_verify(ps_cli_t *cli, int argc, char **argv);
int ps_cmd_conflicts(ps_cli_t *cli, int argc, char **argv);
int ps_cmd_export(ps_cli_t *cli, int argc, char **argv);
int ps_cmd_query(ps_cli_t *cli, int argc, char **argv);  /* report.c */
int ps_cmd_report(ps_cli_t *cli, int argc, char **argv); /* report.c */
int ps_cmd_find(ps_cli_t *cli, int argc, char **argv);     /* cmd_find.c */
int ps_cmd_config(ps_cli_t *cli, int argc, char **argv);   /* cmd_config.c */
int ps_cmd_migrations(ps_cli_t *cli, int argc, char **argv); /* cmd_migrations.c */
/** The other place of a migration may set only submitted_date and
 *  feedback_date, and never deletes or restores it: refuses (printing the
 *  server's wording) a change from before to after that breaks this, as
 *  PS_EXIT_INVALID; PS_EXIT_OK otherwise (cmd_migrations.c). */
struct ps_cache;
int ps_other_place_refuse(struct ps_cache *c, const char *cmd, const Popsync__Record *before, const Popsync__Record *after);
/** The same rule without printing: calls fn(field, reason, arg) for each
 *  change from before to after that the other place may not make (the
 *  server's wording; field "deleted" for a delete or restore) and returns
 *  how many; 0 when this cache is not the migration's other place.  The
 *  web interface's save path shows each next to its field. */
int ps_other_place_check(struct ps_cache *c, const Popsync__Record *before, const Popsync__Record *after,
                         void (*fn)(const char *field, const char *reason, void *arg), void *arg);
/** This place's open migration cases as `popsync migrations --json` lists
 *  them (await: 0 all, 1 awaiting submission, 2 awaiting feedback), into a
 *  new JSON array *out (cmd_migrations.c; the web interface's page). */
struct json_t;
int ps_migrations_json(struct ps_cache *c, int await, struct json_t **out);
int ps_cmd_fields(ps_cli_t *cli, int argc, char **argv);   /* cmd_fields.c; needs no cache */
int ps_cmd_template(ps_cli_t *cli, int argc, char **argv); /* cmd_fields.c; needs no cache */
int ps_cmd_refused(ps_cli_t *cli, int argc, char **argv); /* cmd_refused.c */
int ps_cmd_history(ps_cli_t *cli, int argc, char **argv); /* cmd_history.c */

/* The import of `popsync import` on an open cache (cmd_io.c): the command
 * and the web interface's import page both go through it. */
typedef struct ps_import_opts {
    int kind, format;    /**< record kind; PS_RECIO_CSV, _JSON or _XLSX */
    int dry_run, update; /**< --dry-run, --update */
    int zh;              /**< reasons in Chinese */
    int write_rejects;   /**< write FILE.rejected.csv (.jsonl) */
    struct json_t *errors; /**< not NULL: each error line goes here, not to stderr */
    const char *sheet;   /**< a workbook's sheet (--sheet NAME|N); NULL: the first with a header row */
} ps_import_opts_t;
#define PS_IMPORT_LATE_MAX 8
typedef struct ps_import_result {
    unsigned long rows, imported, unchanged, rejected, rejects_written;
    int file_refused;      /**< the file itself was refused (header, CSV syntax): no row was read */
    unsigned long titles;  /**< rows above the header skipped as the sheet's title */
    unsigned long repeats; /**< rows equal to a record held or an earlier row (among unchanged) */
    char rejects_path[4096];
    unsigned long late_rows;             /**< accepted rows that change an approved month (late.h) */
    ps_late_t late[PS_IMPORT_LATE_MAX];  /**< those months, each once */
    size_t nlate;
    ps_xlsx_sheets_t sheets; /**< a workbook: which sheet was read (xlsx.h) */
} ps_import_result_t;
/** Imports data (UTF-8, or a workbook), read as file names it.  Returns
 *  PS_EXIT_OK, PS_EXIT_INVALID (rows refused) or PS_EXIT_FAIL (told on
 *  stderr); res says what happened.  Leaves the person resolver unset. */
struct ps_cache;
int ps_import_data(struct ps_cache *c, const char *file, const char *data, size_t len, const ps_import_opts_t *o,
                   ps_import_result_t *res);
int ps_cmd_duplicates(ps_cli_t *cli, int argc, char **argv); /* cmd_dups.c */
int ps_cmd_merge(ps_cli_t *cli, int argc, char **argv);      /* cmd_dups.c */
int ps_cmd_ui(ps_cli_t *cli, int argc, char **argv);         /* cmd_ui.c: the web interface */
int ps_cmd_publish(ps_cli_t *cli, int argc, char **argv);    /* publish.c */
int ps_cmd_spotcheck(ps_cli_t *cli, int argc, char **argv);  /* cmd_spotcheck.c */
int ps_cmd_benefits(ps_cli_t *cli, int argc, char **argv);   /* cmd_benefits.c */

/* Shared by edit and `refused edit` (cmd_records.c).  MAX_SETS bounds sets. */
#define PS_CLI_MAX_SETS 128
struct ps_cache;
/** Parses --set FIELD=VALUE (into sets) and --json OBJECT; PS_EXIT_USAGE when bad. */
int ps_cli_parse_edit_opts(int argc, char **argv, char **sets, size_t *nsets, const char **json);
/** Applies them to r; reports the first bad one (PS_EXIT_INVALID). */
int ps_cli_apply_edits(const char *cmd, Popsync__Record *r, char **sets, size_t nsets, const char *json);
/** When record id has refused changes kept (a refused new record is not in
 *  the record view), says so on stderr and where to see them. */
void ps_cli_refused_hint(struct ps_cache *c, const uint8_t *id, const char *idtext);
/** The record id of the live person of this cache with ID number text
 *  (normalized first), or PS_ENOTFOUND (cmd_records.c). */
int ps_cli_person_by_number(struct ps_cache *c, const char *text, uint8_t id[16]);
/** Validates r locally (current: the version it replaces, or NULL); reports every error (PS_EXIT_INVALID). */
int ps_cli_validate_or_report(const char *cmd, struct ps_cache *c, const Popsync__Record *r,
                              const Popsync__Record *current);

/** `popsync COMMAND [SUB] --help` from the help table (help.c): 1 when it
 *  knew the command. */
int ps_cli_help(const char *cmd, const char *sub, FILE *f);
/** The list of commands (`popsync --help`). */
void ps_cli_usage(FILE *f);

/** Takes this cache's sync lock (DIR/sync.lock), waiting while another
 *  process holds it; returns the fd to keep open, or -1 (told). */
int ps_cli_sync_lock(const char *dir, const char *cmd);

/** Prints "popsync: ..." to stderr. */
void ps_cli_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
