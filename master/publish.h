/*
 * publish: master-owned policies and tasks, targeted at all slaves or at
 * named slaves, and the DOWNLOAD chunks that carry their changes to a
 * slave. A chunk holds every change above the slave's applied version up
 * to a cut-off version, so applying chunks in order never skips one.
 */
#ifndef STRATA_MASTER_PUBLISH_H
#define STRATA_MASTER_PUBLISH_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "db.h"

/* Items per DOWNLOAD message. */
#define PUBLISH_CHUNK_ITEMS 500

/*
 * Next DOWNLOAD payload for slave `name` after version `after`:
 * {version, more, policies: [...], tasks: [...]}. Items the slave is not
 * (or no longer) targeted by carry only {id, present: false}.
 */
json_t *publish_chunk(struct db *db, const char *name, int64_t after, int64_t *version,
		      bool *more, int *items, char *err, size_t errlen);

/* Admin commands: args as sent by strata-ctl; result or NULL with err. */
json_t *publish_create(struct db *db, bool is_task, json_t *args, char *err, size_t errlen);
json_t *publish_update(struct db *db, bool is_task, json_t *args, char *err, size_t errlen);
json_t *publish_delete(struct db *db, bool is_task, json_t *args, char *err, size_t errlen);
json_t *publish_list(struct db *db, bool is_task, char *err, size_t errlen);

#endif
