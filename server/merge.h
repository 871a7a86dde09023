/* merge.h - three-way merge of record versions, field by field.
 *
 * Owns: deciding what a record becomes when a change based on an older
 * version meets the current one (docs/sync.md).  Pure: no storage, no
 * allocation that outlives ps_merge_free.  Driven by the protobuf-c
 * descriptors, so a field added to a body is merged with no code change.
 *
 * The merged record is shallow: its strings and bytes point into the inputs,
 * so pack it before freeing them, and never free it with protobuf-c.
 */
#ifndef PS_MERGE_H
#define PS_MERGE_H

#include <stddef.h>

#include "records.pb-c.h"

#define PS_MERGE_MAX_FIELDS 32

typedef enum ps_merge_outcome {
    PS_MERGE_APPLY = 0,     /**< merged holds the new version (maybe with a conflict) */
    PS_MERGE_KEEP_WHOLE     /**< nothing applied: the change is kept whole as a conflict */
} ps_merge_outcome_t;

typedef struct ps_merge {
    ps_merge_outcome_t outcome;
    Popsync__Record merged;          /**< shallow; valid while inputs live */
    void *_body;                     /**< merged body storage (owned) */
    const char *fields[PS_MERGE_MAX_FIELDS]; /**< fields in conflict (static names) */
    size_t nfields;
    int mine_won;                    /**< conflicting fields took mine's values */
    const char *reason;              /**< static English reason when nfields > 0 */
    size_t mine_changed;             /**< fields mine changed against base */
    const char *changed[PS_MERGE_MAX_FIELDS]; /**< names of the fields mine changed */
} ps_merge_t;

/**
 * Merges mine (the incoming change) into theirs (the current version) given
 * their common base (NULL: the record did not exist when mine was made).
 * mine_wins decides fields both sides changed differently (the caller
 * compares HLC then node).  Returns PS_OK or PS_ENOMEM.
 */
int ps_merge(const Popsync__Record *base, const Popsync__Record *theirs, const Popsync__Record *mine, int mine_wins,
             ps_merge_t *out);
void ps_merge_free(ps_merge_t *m);

/** Names of the body fields that differ between two versions of one kind (static names). */
size_t ps_merge_diff(const Popsync__Record *a, const Popsync__Record *b, const char **names, size_t max);

#endif
