/*
 * counts: the report counters (migrations 0007, 0009) of a batch that is
 * copied straight into a slave's partition, counted from the batch's COPY
 * text as it arrived.
 *
 * Every other change keeps the counters through the statement triggers
 * of the partitioned tables, which capture and group each statement's
 * rows. A COPY into the partition itself does not fire them, and the
 * master has read the rows already; so a first sync (and every events
 * batch, the stream being append-only) pays for one pass over text in
 * memory instead of a transition table. A row that cannot be read here
 * makes the caller copy through the parent table, whose triggers count.
 */
#ifndef STRATA_MASTER_COUNTS_H
#define STRATA_MASTER_COUNTS_H

#include <stddef.h>

#include "db.h"
#include "stream.h"

struct batch_counts;

enum counts_status {
	COUNTS_OK,	   /* *out holds the batch's counts */
	COUNTS_NONE,	   /* the stream keeps no counters */
	COUNTS_UNREADABLE, /* a row is not as expected: copy through the parent */
};

/* Counts the rows of copy (COPY text, one row a line) for sd's counters. */
enum counts_status counts_parse(const struct stream_def *sd, const char *copy, size_t len,
				struct batch_counts **out);
/* Adds the counts to the slave's counters; in the batch's transaction. 0 or -1 with err. */
int counts_apply(struct db *db, int slave_id, const struct batch_counts *c, char *err,
		 size_t errlen);
void counts_free(struct batch_counts *c);
/* The rows counted, and the counters they fall in. */
long long counts_rows(const struct batch_counts *c);
size_t counts_keys(const struct batch_counts *c);

/*
 * "COPY table_sID (cols) FROM STDIN" from sd's master_direct: the same
 * copy into the slave's partition. 0, or -1 when it does not fit.
 */
int counts_partition_copy(const struct stream_def *sd, int slave_id, char *out, size_t outlen);

/* The UTC day of a timestamptz in PostgreSQL's text output
 * ("2026-11-22 23:30:00.5-02"): "2026-11-23" into day; 0 or -1. */
int counts_utc_day(const char *ts, size_t len, char day[11]);

#endif
