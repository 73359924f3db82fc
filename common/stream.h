/*
 * stream: the upload streams of a sync session and the SQL each side runs
 * for them. One table serves both sides, so the slave's COPY output and
 * the master's COPY input always name the same columns in the same order.
 *
 * Every slave query ends its column list with version, so the sync client
 * reads a batch's highest version from the last field of its last row.
 * The slave side's queries read the settings strata.from (exclusive lower
 * version) and strata.limit (rows), which the caller sets through
 * set_config() with parameters; the master side's default for slave_id
 * reads strata.slave_id the same way. No SQL is ever built from input.
 */
#ifndef STRATA_STREAM_H
#define STRATA_STREAM_H

#include <stdbool.h>
#include <stddef.h>

struct stream_def {
	const char *name;	  /* wire name: "endpoints" */
	const char *slave_copy;	  /* COPY (SELECT ... ORDER BY version LIMIT ...) TO STDOUT */
	const char *master_direct; /* COPY table (cols) FROM STDIN, into the partition */
	const char *master_stage;  /* COPY stage table (cols) FROM STDIN */
	const char *master_merge;  /* staged rows -> table; $1 = slave id */
	/* Rows are never updated on the slave once written, so a batch
	 * above the watermark is new and can always go straight in. */
	bool append_only;
};

/* Upload order: parents first, the deletions stream last. */
extern const struct stream_def stream_defs[];
extern const size_t stream_count;

const struct stream_def *stream_find(const char *name);

/* Statements creating the session's temporary staging tables (master side), NULL-terminated. */
extern const char *const stream_master_stage_setup[];

#define STREAM_DELETIONS "deletions"

#endif
