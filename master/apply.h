/*
 * apply: the master's side of one upload batch. The batch and the
 * stream's new watermark commit in one transaction, so a batch re-sent
 * after a crash or a cut link is either a no-op (at or below the
 * watermark) or merged without duplicates.
 */
#ifndef STRATA_MASTER_APPLY_H
#define STRATA_MASTER_APPLY_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "db.h"
#include "stream.h"

struct upload_batch {
	const struct stream_def *stream;
	int64_t from, to, rows;
	const char *copy;
	size_t copy_len;
};

/*
 * Returns 0 with *watermark (the stream's watermark after the batch),
 * -1 when the batch itself is bad (err for the peer), -2 on a database
 * failure (err for the log). try_direct: copy straight into the slave's
 * partition first (a fresh stream or an append-only one).
 */
__attribute__((warn_unused_result)) int apply_batch(struct db *db, int slave_id,
						    const struct upload_batch *b, bool try_direct,
						    int64_t *watermark, char *err, size_t errlen);

/* The slave's watermarks as {stream: version}; NULL with err. */
json_t *apply_watermarks(struct db *db, int slave_id, char *err, size_t errlen);

/* Creates the session-scoped staging tables on this connection. */
__attribute__((warn_unused_result)) int apply_prepare(struct db *db, char *err, size_t errlen);

#endif
