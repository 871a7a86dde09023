/* help.c - the one table of popsync's commands as a person reads them:
 * `popsync --help`, `popsync COMMAND --help` and `popsync COMMAND SUB
 * --help` all print from it, so every command and subcommand explains
 * itself with an example.  Adding a command is a row here (and its entry
 * in main.c's dispatch table). */
#include "cli.h"

#include <stdio.h>
#include <string.h>

typedef struct help {
    const char *name;     /* "init", "report monthly" */
    const char *synopsis; /* the arguments (continuation lines start with spaces) */
    const char *summary;  /* one line for the list of commands */
    const char *detail;   /* what it does, what it needs, what it prints */
    const char *example;
} help_t;

static const help_t helps[] = {
    {"init", "--server HOST:PORT --ca FILE --cert FILE --key FILE [--server-name NAME] [--orgunits FILE] "
             "[--key-file FILE]",
     "make the local cache of this device",
     "Makes an encrypted cache in --data DIR for the certificate given (its role and unit decide what the\n"
     "cache may see).  The passphrase is asked on the terminal (or POPSYNC_PASSPHRASE; at least 10\n"
     "characters), or --key-file protects it.  --server-name is the name on the server's certificate\n"
     "(default popsyncd); `popsync config set` changes these later without losing anything.",
     "popsync --data ~/popsync init --server district.example:7443 --ca ca.crt --cert town1.crt --key town1.key"},
    {"config", "show | set server|server_name|ca|cert|key|ui_timeout|ui_retry_after VALUE",
     "how this cache reaches its server",
     "Shows or changes the server address, the name its certificate must carry, and this cache's CA,\n"
     "certificate and key files.  A new certificate must keep the cache's role and unit.\n"
     "ui_timeout: the seconds a page of 'popsync ui' waits for the server (1-300; 0: 10);\n"
     "ui_retry_after: then the seconds its pages show the cache without asking again (1-3600; 0: 60).",
     "popsync config set server_name popsyncd-2"},
    {"add", "KIND --set FIELD=VALUE ... | --json '{...}' [--update] [--child-name NAME [--child-id-number N]]",
     "add a record offline; prints its id",
     "FIELD is the English name or the Chinese label (popsync fields KIND).  Dates as 1990-03-07,\n"
     "1990/3/7, 19900307 or 1990年3月7日; sex and birth date of a person come from the ID number; a\n"
     "person reference (mother_id, person_id, head_id) may be the person's ID number.  A person whose ID\n"
     "number is registered is refused unless --update.  add birth --child-name registers the child too.",
     "popsync add person --set 姓名=张三 --set 身份证号=110105199003071234"},
    {"edit", "ID --set FIELD=VALUE ... | --json '{...}'", "change fields of a record",
     "ID is a record id, or for a person her ID number.  \"\" clears a field.  A change that leaves\n"
     "the record as it was writes nothing.",
     "popsync edit 110105199003071239 --set 联系电话=13800000000"},
    {"delete", "ID [--cascade | --force]", "mark a record deleted (synced as a tombstone)",
     "Refused while other records refer to it (they are listed), unless --cascade (delete them too) or\n"
     "--force (leave them; the quality report flags them).  `popsync restore ID` undoes it.\n"
     "ID is a record id, or for a live person her ID number.",
     "popsync delete 0199c1e2-6b7a-7c1d-9a31-5f2e1b0c4d11"},
    {"restore", "ID", "undo a delete", "The record comes back as a new revision, synced like any edit.",
     "popsync restore 0199c1e2-6b7a-7c1d-9a31-5f2e1b0c4d11"},
    {"migrations", "[--awaiting feedback|submission] [--json] [--lang zh|en] [--deadline-urgent DAYS] "
                   "[--deadline-normal DAYS]",
     "this place's open migration cases, with deadlines (offline)",
     "The cases this township registered and those naming it as the other place, until the feedback\n"
     "date is set: the migrant (name, sex, birth date, masked ID number), the other place with its name,\n"
     "the start, submitted and feedback dates, who acts, the deadline (urgent 15 days, others 30, from\n"
     "the start for the submission and from the submission for the feedback) and days left or overdue.",
     "popsync migrations --awaiting feedback --lang zh"},
    {"show", "ID [--format json|table]", "one record", "ID is a record id, or for a person her ID number.",
     "popsync show 110105199003071239"},
    {"history", "ID [--json]", "a record's versions: who changed it and when (asks the server)",
     "ID is a record id, or for a person her ID number.  Lists every version the server keeps (the latest 100)\n"
     "with the server's time of the change, the certificate (name, role, unit) and device that sent it, the action\n"
     "and the fields it changed.  Versions made while the record was outside this cache's scope are counted,\n"
     "not shown.  Offline it says so (exit 3) and prints what the cache knows: the latest version only.",
     "popsync history 110105199003071239"},
    {"list", "[--kind KIND] [--orgunit CODE] [--format table|json|csv] [--deleted]", "the records of this cache",
     "", "popsync list --kind birth --orgunit 130203001000"},
    {"find", "TEXT [--limit N] [--lang zh|en] [--json]", "find persons by what people know (offline)",
     "TEXT is an ID number (whole, or its last 4 or 6 characters), a name or its first one or two\n"
     "characters, a name and a birth date, or the pinyin initials of a name (zs finds 张三 and\n"
     "张三丰; a family name also by its surname reading: stf finds 单田芳).  Exits 5 when nothing\n"
     "is found.",
     "popsync find \"王芳 1990/3/7\""},
    {"ui", "[--listen ADDR:PORT] [--lang zh|en]", "the web interface of this cache, in the browser",
     "Serves this cache (offline, exactly what its certificate may see) to the browser on 127.0.0.1\n"
     "and prints the one address to open, with a secret token (docs/ui.md).  Chinese unless --lang en.\n"
     "--listen on another address serves over TLS with this cache's certificate, which a browser accepts\n"
     "when it was issued with `popsync pki issue --ui-address ADDR` (docs/security.md section 10).",
     "popsync --data ~/popsync ui"},
    {"duplicates", "[--json]", "pairs of persons that may be one person (offline)",
     "Lists pairs of live persons of this cache with the same ID number, or the same name and\n"
     "birth date, with both record ids, units and the fields that differ.  Join a pair with merge.",
     "popsync duplicates --json"},
    {"merge", "KEEP_ID OTHER_ID [--prefer keep|other] [--force]", "join two records of one person",
     "KEEP takes OTHER's values where its own are empty (--prefer other: wherever OTHER has one);\n"
     "every birth, migration, benefit, service visit and household that refers to OTHER is changed\n"
     "to refer to KEEP, and OTHER is deleted: edits in one step, pushed by the next sync.  Refused\n"
     "unless both are live persons; two different ID numbers need --force.",
     "popsync merge 0199c1e2-6b7a-7c1d-9a31-5f2e1b0c4d11 0199c1e2-7d01-7a2b-8c3d-4e5f60718293"},
    {"fields", "KIND [--lang zh|en] [--json]", "the fields of a kind, their Chinese labels and values", "",
     "popsync fields person --lang zh"},
    {"template", "KIND [--lang zh|en] --out FILE.csv", "an empty import file with the header row",
     "", "popsync template person --lang zh --out 人员导入模板.csv"},
    {"import", "FILE --kind KIND [--format csv|json|xlsx] [--dry-run] [--encoding utf-8|gbk] [--update] "
               "[--lang zh|en] [--sheet NAME|N]",
     "add or update records from a CSV, JSON or Excel file",
     "Columns by English name or Chinese label; UTF-8 or GBK found by itself.  Bad rows are told by line\n"
     "and field and written to FILE.rejected.csv to fix and import again; the good rows land.\n"
     "An .xlsx: its first sheet with a header row is read (a 填表说明 sheet before it is skipped);\n"
     "--sheet NAME or N (from 1) picks another.",
     "popsync import 人员.xlsx --kind person --dry-run"},
    {"export", "--kind KIND --format csv|json|xlsx [--out FILE] [--orgunit CODE] [--lang zh|en] [--no-bom]\n"
               "        [--pending]",
     "write the records of a kind to a file",
     "Files are readable by their owner only.  Use .xlsx for Excel: a CSV's ID numbers turn into numbers.\n"
     "--pending: only the records with changes not yet synced (to move them to a new cache).",
     "popsync export --kind person --format xlsx --lang zh --out 人员.xlsx"},
    {"sync", "[--quiet] [--json] [--batch N] [--timeout MS]", "push local changes, then pull everyone else's",
     "Exit 0 when every change was accepted and the pull completed; 6 when some were refused or kept as\n"
     "conflicts (popsync refused list, popsync conflicts list); 3 when the server could not be reached or\n"
     "the sync was cut (run it again: nothing is lost or sent twice).",
     "popsync sync"},
    {"status", "[--all] [--json]", "what happened: last sync, pending, refused, conflicts",
     "--all (admin, online): every node that has synced, how far behind, its open conflicts.",
     "popsync status"},
    {"stats", "[--json] | --check-counters", "records held, per township and kind",
     "--check-counters recounts the report counters this cache keeps (for `report monthly` offline)\n"
     "from its records and says whether they match.",
     "popsync stats"},
    {"verify", "[--json]", "compare with the server and repair differences",
     "Syncs, then compares digests of every record with the server's and fetches what differs.",
     "popsync verify"},
    {"refused list", "[--json]", "changes the server refused, kept whole with its reasons", "",
     "popsync refused list"},
    {"refused show", "ID [--json]", "one refused change and why", "", "popsync refused show 0199c1e2-..."},
    {"refused edit", "ID [--set FIELD=VALUE ...] [--json '{...}']", "correct a refused change",
     "The corrected change is pushed by the next sync.", "popsync refused edit 0199c1e2-... --set visit_date=2026-12-01"},
    {"refused discard", "ID", "drop a refused change for good", "", "popsync refused discard 0199c1e2-..."},
    {"conflicts list", "[--all] [--json]", "edits that lost a race, both values side by side", "",
     "popsync conflicts list"},
    {"conflicts resolve", "ID --keep mine|theirs|kept|lost|FILE", "settle a conflict",
     "mine: this cache's edit; theirs: the other side's (a cache that made neither edit says kept: the record "
     "as it stands, or lost: the values that lost); FILE: a JSON object of the values to keep.",
     "popsync conflicts resolve 0199c1e2-... --keep mine"},
    {"query", "--kind KIND [--orgunit CODE] [--date-field F [--from D] [--to D]] [--where FIELD=VALUE]...\n"
              "        [--group-by a,b,...] [--sum FIELD] [--list [--limit N] [--page-size N]] [--deleted]\n"
              "        [--format table|csv|json] [--lang zh|en] [--local]",
     "count, sum or list records (on the server; from the cache with --local or when it is unreachable)",
     "--limit caps the rows printed; --page-size the records asked per page.  --local, or a server that\n"
     "cannot be reached, answers from this cache, stamped \"as of the last sync, TIME\".",
     "popsync query --kind birth --date-field birth_date --from 2026-01-01 --group-by township,child_sex"},
    {"report monthly", "--month YYYY-MM [--orgunit CODE] [--lang zh|en] [--format table|csv|json|xlsx]\n"
                       "        [--out FILE.xlsx] [--deadline-urgent DAYS] [--deadline-normal DAYS] [--local]",
     "the monthly statistical report",
     "The table fits 100 columns (in panels).  --format xlsx --out FILE.xlsx writes a workbook (mode 0600).\n"
     "--local, or a server that cannot be reached, computes it from the counters this cache keeps,\n"
     "stamped \"as of the last sync, TIME\" (the close state is the server's and is not shown).",
     "popsync report monthly --month 2026-10 --lang zh"},
    {"report quality", "[--orgunit CODE] [--lang zh|en] [--format table|csv|json|xlsx] [--out FILE.xlsx]\n"
                       "        [--details] [--local]",
     "the data-quality report",
     "Counts per check and township; --details lists each record (JSON always does).\n"
     "--format xlsx --out FILE.xlsx writes a workbook (mode 0600).  --local, or a server that cannot be\n"
     "reached, runs the same checks over this cache, stamped \"as of the last sync, TIME\".",
     "popsync report quality --lang zh --details"},
    {"report submit", "--month YYYY-MM [--orgunit CODE]", "a township submits its month", "",
     "popsync report submit --month 2026-10"},
    {"report status", "--month YYYY-MM [--orgunit CODE]", "where the monthly close stands", "",
     "popsync report status --month 2026-10"},
    {"report approve", "--month YYYY-MM --orgunit CODE [--note TEXT]", "the district approves a township's month",
     "", "popsync report approve --month 2026-10 --orgunit 130203001000"},
    {"report return", "--month YYYY-MM --orgunit CODE --note TEXT", "the district returns a month with a note", "",
     "popsync report return --month 2026-10 --orgunit 130203001000 --note \"出生数与医院不符\""},
    {"publish", "--month YYYY-MM --out DIR [--lang zh|en]", "write the public statistics site (aggregates only)",
     "Writes a static site (index.html, charts drawn with Chart.js, indicators.csv, trend.csv) of the\n"
     "district's monthly indicators per township and the last 12 months.  Every cell counting fewer than\n"
     "5 people shows as \"<5\", with complementary suppression (\"x\") so that no hidden cell can be worked\n"
     "out from the totals (docs/publish.md).  Needs the district administrator's cache; online.",
     "popsync publish --month 2026-10 --out /srv/www/stats"},
    {"spotcheck draw", "--month YYYY-MM [--orgunit CODE] [--size N | --margin 0.05 --confidence 0.95]",
     "draw the month's statistical spot check (district administrator)",
     "Draws persons per township from this cache (the administrator's holds all): the seed comes from the\n"
     "operating system's random source at this moment and is stored with the method in every spot-check\n"
     "record, so anyone can draw the same sample again.  Without --size the sample size follows from the\n"
     "margin and confidence (p = 0.5, finite-population correction; docs/benefits.md).  Push with sync.",
     "popsync spotcheck draw --month 2026-10 --margin 0.05 --confidence 0.95"},
    {"spotcheck redraw", "--seed HEX --month YYYY-MM [--orgunit CODE] [--size N | --margin M --confidence C]",
     "draw a sample again from a seed, without storing it", "Prints each township's frame size, digest and sample.",
     "popsync spotcheck redraw --seed 9f86d081884c7d659a2feaa0c55ad015 --month 2026-10 --size 20"},
    {"spotcheck verify", "DRAW_ID", "check that a recorded draw follows from its seed",
     "Draws every township of the draw again from the recorded seed, method and frame (persons registered\n"
     "before the draw) and says whether the same persons come out; exit 1 when not.",
     "popsync spotcheck verify 0199c1e2-6b7a-7c1d-9a31-5f2e1b0c4d11"},
    {"spotcheck list", "[--month YYYY-MM] [--draw DRAW_ID] [--pending] [--json] [--lang zh|en]",
     "the persons to check, with their results", "", "popsync spotcheck list --month 2026-10 --pending"},
    {"spotcheck check", "ID (--matches | --differs --set FIELD=VALUE ...) [--note TEXT] [--date YYYY-MM-DD]",
     "record what the field check found",
     "--differs records the corrected person fields and applies them to the person as an ordinary edit,\n"
     "in the same step.",
     "popsync spotcheck check 0199c1e2-6b7a-7c1d-9a31-5f2e1b0c4d11 --differs --set 住址=幸福路8号 --note 已搬家"},
    {"spotcheck results", "[--month YYYY-MM] [--orgunit CODE] [--confidence 0.95] [--json] [--lang zh|en]",
     "accuracy per township and per field, with Wilson intervals", "",
     "popsync spotcheck results --month 2026-10 --lang zh"},
    {"benefits schemes", "[--schemes FILE] [--json]", "the benefit scheme table in use",
     "The rules, amounts and periods benefits are computed with: the file named by --schemes, else\n"
     "$POPSYNC_SCHEMES, else the table shipped with popsync (docs/benefits.md).",
     "popsync benefits schemes"},
    {"benefits due", "--period YYYY-MM|YYYY [--orgunit CODE] [--schemes FILE] [--all] [--json] [--lang zh|en]",
     "who is entitled and not (fully) paid for a period (offline)",
     "--all lists the paid ones too.", "popsync benefits due --period 2026"},
    {"benefits arrears", "[--since YYYY] [--as-of YYYY-MM-DD] [--orgunit CODE] [--schemes FILE] [--json]",
     "what each family is owed from earlier periods",
     "Every period from --since (default: five years back) that ended before --as-of (default today).",
     "popsync benefits arrears --since 2022"},
    {"benefits batch", "--period YYYY-MM|YYYY | --arrears [--since YYYY] --out FILE.xlsx [--orgunit CODE]",
     "a payment batch of what is owed, to approve",
     "One row per entitlement owed, with the ID number as text and a column 批准 (approved) to set to\n"
     "否 for rows not to pay.  The file is made readable by its owner only.",
     "popsync benefits batch --period 2026 --out batch-2026.xlsx"},
    {"benefits pay", "--batch FILE.xlsx [--paid-date YYYY-MM-DD] [--strict]",
     "record an approved batch as paid, in one step",
     "Each approved row becomes a benefit record (status paid) linked to its entitlement (person,\n"
     "scheme, period) and the batch.  A row paid already is refused; a row not entitled is flagged,\n"
     "and with --strict refused.  Nothing is stored unless every row is accepted.",
     "popsync benefits pay --batch batch-2026.xlsx --paid-date 2026-12-20"},
    {"generate", "--persons N [--seed S] [--orgunit CODE] [--orgunits FILE] [--stats]",
     "synthetic test data (for trials, never for a real district)",
     "Adds N invented persons with households, births, migrations, benefits and visits, marked synthetic:\n"
     "only a test server (popsyncd --allow-synthetic) takes them, and generate refuses to run for a cache\n"
     "whose server is known not to.",
     "popsync generate --persons 1000"},
    {"pki init-ca", "--dir PKI [--name NAME]", "make the district's CA", "", "popsync pki init-ca --dir pki"},
    {"pki issue", "--dir PKI --role server|admin|township|collector|viewer --orgunit CODE --name NAME [--days N]\n"
                  "          [--ui-address ADDR]...",
     "issue a certificate",
     "--ui-address (a cache's certificate): the IP address or host name at which its `popsync ui --listen`\n"
     "serves browsers; the certificate is then for serverAuth too and names it (docs/security.md section 10).",
     "popsync pki issue --dir pki --role township --orgunit 130203001000 --name town1"},
    {"pki revoke", "--dir PKI (--name NAME | --serial HEX) [--reason R] [--crl-days N]",
     "revoke a certificate and rewrite PKI/ca.crl", "Copy ca.crl to the server and send popsyncd SIGHUP.",
     "popsync pki revoke --dir pki --name town1"},
    {"pki crl", "--dir PKI [--crl-days N]", "(re)write the revocation list PKI/ca.crl", "", "popsync pki crl --dir pki"},
};

#define NHELPS (sizeof(helps) / sizeof(helps[0]))

static void print_one(const help_t *h, FILE *f)
{
    fprintf(f, "usage: popsync %s %s\n  %s.\n", h->name, h->synopsis, h->summary);
    if (*h->detail)
        fprintf(f, "\n%s\n", h->detail);
    fprintf(f, "\nexample:\n  %s\n", h->example);
}

int ps_cli_help(const char *cmd, const char *sub, FILE *f)
{
    char both[64];
    int found = 0;

    snprintf(both, sizeof(both), "%s %s", cmd, sub ? sub : "");
    for (size_t i = 0; i < NHELPS; i++)
        if (sub && strcmp(helps[i].name, both) == 0) {
            print_one(&helps[i], f);
            return 1;
        }
    for (size_t i = 0; i < NHELPS; i++)
        if (strcmp(helps[i].name, cmd) == 0) {
            print_one(&helps[i], f);
            return 1;
        }
    /* A command with subcommands: all of them. */
    for (size_t i = 0; i < NHELPS; i++) {
        size_t n = strlen(cmd);
        if (strncmp(helps[i].name, cmd, n) == 0 && helps[i].name[n] == ' ') {
            fprintf(f, "%s%s", found ? "\n" : "", "");
            print_one(&helps[i], f);
            found = 1;
        }
    }
    return found;
}

void ps_cli_usage(FILE *f)
{
    fprintf(f, "usage: popsync [--data DIR] [--json] [--log-level LEVEL] COMMAND [ARGS]\n\ncommands:\n");
    for (size_t i = 0; i < NHELPS; i++)
        fprintf(f, "  %-18s %s\n", helps[i].name, helps[i].summary);
    fprintf(f, "\n`popsync COMMAND --help` shows a command's arguments and an example.\n"
               "KIND is person, household, birth, migration, benefit, service_visit or spotcheck.\n"
               "--data defaults to $POPSYNC_DATA.  Exit codes: 0 ok, 1 failed, 2 usage,\n"
               "3 sync incomplete, 4 invalid record, 5 not found, 6 sync completed but the\n"
               "server refused some changes or kept them as conflicts (counts printed).\n");
}
