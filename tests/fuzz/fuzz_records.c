/* fuzz_records.c - libFuzzer target: the CSV and JSON record readers
 * (popsync import).  Built twice (tests/fuzz/CMakeLists.txt): fuzz_csv with
 * PS_FUZZ_FORMAT=PS_RECIO_CSV and fuzz_json with PS_RECIO_JSON, each with
 * its own corpus.
 *
 * The first byte picks the kind (person .. service_visit, and 0 and 7 for
 * kinds the reader must refuse); the rest is the file (for JSON an array or
 * JSON Lines).  The bytes are copied into a buffer of exactly their length,
 * so a read past len is caught.  Each record the reader hands over is
 * validated, written back with the writer of the same format, and freed; a
 * row carries a record or errors, never both.
 */
#include "err.h"
#include "recio.h"
#include "record_fmt.h"
#include "validate.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef PS_FUZZ_FORMAT
#error "define PS_FUZZ_FORMAT as PS_RECIO_CSV or PS_RECIO_JSON"
#endif

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct fctx {
    ps_recio_writer_t w;
    int writing;
    size_t rows;
} fctx_t;

static int on_row(ps_recio_row_t *row, void *arg)
{
    fctx_t *f = arg;
    if ((row->rec != NULL) == (row->errs.n > 0) && !row->file_error)
        abort();
    if (row->rec) {
        ps_verrs_t v;
        memset(&v, 0, sizeof(v));
        ps_validate_record(row->rec, NULL, &v);
        if (f->writing)
            ps_recio_writer_put(&f->w, row->rec);
        ps_record_free(row->rec);
    }
    /* Stop now and then, to run the early-stop path too. */
    if (++f->rows == 5000)
        return PS_ECLOSED;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fctx_t f;
    char *copy;
    int kind;
    FILE *devnull;

    if (size < 1)
        return 0;
    kind = data[0] % 8; /* 1..6 are kinds; 0 and 7 are not */
    data++;
    size--;
    copy = malloc(size ? size : 1);
    if (!copy)
        return 0;
    if (size)
        memcpy(copy, data, size);
    memset(&f, 0, sizeof(f));
    devnull = fopen("/dev/null", "w");
    if (devnull && kind >= 1 && kind <= 6 && ps_recio_writer_begin(&f.w, devnull, PS_FUZZ_FORMAT, kind, 0) == PS_OK)
        f.writing = 1;
    ps_recio_read(PS_FUZZ_FORMAT, copy, size, kind, on_row, &f);
    if (f.writing)
        ps_recio_writer_end(&f.w);
    if (devnull)
        fclose(devnull);
    free(copy);
    return 0;
}
