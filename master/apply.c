#include "apply.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "counts.h"
#include "log.h"

int apply_prepare(struct db *db, char *err, size_t errlen)
{
	for (size_t i = 0; stream_master_stage_setup[i]; i++)
		if (db_exec(db, stream_master_stage_setup[i], 0, NULL, err, errlen) != 0)
			return -1;
	return 0;
}

json_t *apply_watermarks(struct db *db, int slave_id, char *err, size_t errlen)
{
	char sid[16];
	snprintf(sid, sizeof(sid), "%d", slave_id);
	const char *p[] = { sid };
	PGresult *res = db_query(db, "SELECT stream, version FROM watermarks WHERE slave_id = $1::int",
				 1, p, err, errlen);
	if (!res)
		return NULL;
	json_t *o = json_object();
	for (size_t i = 0; i < stream_count; i++)
		json_object_set_new(o, stream_defs[i].name, json_integer(0));
	for (int r = 0; r < PQntuples(res); r++)
		json_object_set_new(o, PQgetvalue(res, r, 0),
				    json_integer(strtoll(PQgetvalue(res, r, 1), NULL, 10)));
	PQclear(res);
	return o;
}

/* Every COPY text row ends in '\n'; a lone "\." line would end the data early. */
static int check_copy_text(const struct upload_batch *b, char *err, size_t errlen)
{
	int64_t rows = 0;
	const char *p = b->copy, *end = b->copy + b->copy_len;
	if (b->copy_len > 0 && end[-1] != '\n') {
		snprintf(err, errlen, "%s batch: COPY text does not end with a newline",
			 b->stream->name);
		return -1;
	}
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		if (nl - p == 2 && p[0] == '\\' && p[1] == '.') {
			snprintf(err, errlen, "%s batch: end-of-data marker inside the rows",
				 b->stream->name);
			return -1;
		}
		rows++;
		p = nl + 1;
	}
	if (rows != b->rows) {
		snprintf(err, errlen, "%s batch: header says %" PRId64 " rows, COPY text has %" PRId64,
			 b->stream->name, b->rows, rows);
		return -1;
	}
	return 0;
}

static int apply_staged(struct db *db, const char *sid, const struct upload_batch *b, char *err,
			size_t errlen)
{
	if (db_copy_in(db, b->stream->master_stage, b->copy, b->copy_len, err, errlen) != 0)
		return -1;
	const char *p[] = { sid };
	return db_exec(db, b->stream->master_merge, 1, p, err, errlen);
}

int apply_batch(struct db *db, int slave_id, const struct upload_batch *b, bool try_direct,
		int64_t *watermark, char *err, size_t errlen)
{
	char sid[16], to[24], wm_s[24], dberr[1024];
	int64_t wm;
	snprintf(sid, sizeof(sid), "%d", slave_id);
	snprintf(to, sizeof(to), "%" PRId64, b->to);

	if (check_copy_text(b, err, errlen) != 0)
		return -1;
	if (db_begin(db, dberr, sizeof(dberr)) != 0)
		goto internal;
	const char *p1[] = { sid, b->stream->name };
	if (db_exec(db, "SELECT set_config('strata.slave_id', $1, true)", 1, p1, dberr,
		    sizeof(dberr)) != 0)
		goto internal;
	int rc = db_query_value(db,
				"SELECT version FROM watermarks WHERE slave_id = $1::int AND stream = $2 "
				"FOR UPDATE",
				2, p1, wm_s, sizeof(wm_s), dberr, sizeof(dberr));
	if (rc < 0)
		goto internal;
	if (rc == 1) {
		snprintf(dberr, sizeof(dberr), "no watermark row for stream %s", b->stream->name);
		goto internal;
	}
	wm = strtoll(wm_s, NULL, 10);
	if (b->to <= wm) {
		/* Already applied: a re-send after a lost acknowledgement. */
		db_rollback(db);
		*watermark = wm;
		log_info("apply: %s batch (%" PRId64 ", %" PRId64 "] is at or below the watermark "
			 "%" PRId64 "; nothing to do",
			 b->stream->name, b->from, b->to, wm);
		return 0;
	}
	if (b->from > wm) {
		db_rollback(db);
		snprintf(err, errlen,
			 "%s batch starts after version %" PRId64 " but the master has only %" PRId64
			 " (a gap)",
			 b->stream->name, b->from, wm);
		return -1;
	}

	bool done = false;
	if (b->rows > 0 && try_direct && b->stream->master_direct) {
		/* Counted here and copied into the partition itself, the batch skips
		 * the parent's counting triggers (counts.h); an unreadable row sends it
		 * through the parent, whose triggers count. */
		struct batch_counts *bc = NULL;
		char part_sql[1024];
		const char *direct_sql = b->stream->master_direct;
		if (counts_parse(b->stream, b->copy, b->copy_len, &bc) == COUNTS_OK &&
		    counts_partition_copy(b->stream, slave_id, part_sql, sizeof(part_sql)) == 0)
			direct_sql = part_sql;
		/* -2: ours (savepoint, counters); -1: the copy, judged below. */
		int crc = db_exec(db, "SAVEPOINT direct", 0, NULL, dberr, sizeof(dberr)) == 0 ? 0 : -2;
		if (crc == 0)
			crc = db_copy_in(db, direct_sql, b->copy, b->copy_len, dberr, sizeof(dberr));
		if (crc == 0 && direct_sql == part_sql)
			crc = counts_apply(db, slave_id, bc, dberr, sizeof(dberr)) == 0 ? 0 : -2;
		counts_free(bc);
		if (crc == 0) {
			done = true;
		} else if (crc == -2) {
			goto internal;
		} else if (strcmp(db_last_sqlstate(db), "23505") == 0) {
			/* Some rows are there already (a resumed first sync): merge. */
			if (db_exec(db, "ROLLBACK TO SAVEPOINT direct", 0, NULL, dberr,
				    sizeof(dberr)) != 0)
				goto internal;
		} else {
			goto copy_failed;
		}
	}
	if (!done && b->rows > 0 && apply_staged(db, sid, b, dberr, sizeof(dberr)) != 0)
		goto copy_failed;

	const char *p2[] = { sid, b->stream->name, to };
	if (db_exec(db, "UPDATE watermarks SET version = $3::bigint WHERE slave_id = $1::int "
			"AND stream = $2",
		    3, p2, dberr, sizeof(dberr)) != 0)
		goto internal;
	char rows_s[24];
	snprintf(rows_s, sizeof(rows_s), "%" PRId64, b->rows);
	const char *p3[] = { sid, rows_s };
	if (db_exec(db, "UPDATE slaves SET rows_received = rows_received + $2::bigint "
			"WHERE id = $1::int",
		    2, p3, dberr, sizeof(dberr)) != 0)
		goto internal;
	if (db_commit(db, dberr, sizeof(dberr)) != 0)
		goto internal;
	*watermark = b->to;
	return 0;

copy_failed:
	/* Cardinality (21xxx: a key twice in one batch), data (22xxx) and
	 * constraint (23xxx) errors come from the slave's rows; others are ours. */
	if (db_last_sqlstate(db)[0] == '2' &&
	    (db_last_sqlstate(db)[1] == '1' || db_last_sqlstate(db)[1] == '2' ||
	     db_last_sqlstate(db)[1] == '3')) {
		db_rollback(db);
		snprintf(err, errlen, "%s batch rejected: %s", b->stream->name, dberr);
		return -1;
	}
internal:
	db_rollback(db);
	snprintf(err, errlen, "%s", dberr);
	return -2;
}
