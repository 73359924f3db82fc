#include "backlog.h"

#include <math.h>
#include <stddef.h>
#include <string.h>

/* Each range is served by the table's version index (schema/slave/0002_tables.sql). */
static const struct {
	const char *stream;
	const char *sql;
} counts[] = {
	{ "groups", "SELECT count(*) FROM groups WHERE version > $1::bigint" },
	{ "endpoints", "SELECT count(*) FROM endpoints WHERE version > $1::bigint" },
	{ "policies",
	  "SELECT count(*) FROM policies WHERE version > $1::bigint AND owner = 'local'" },
	{ "tasks", "SELECT count(*) FROM tasks WHERE version > $1::bigint AND owner = 'local'" },
	{ "task_results", "SELECT count(*) FROM task_results WHERE version > $1::bigint" },
	{ "events", "SELECT count(*) FROM events WHERE version > $1::bigint" },
	{ "licence", "SELECT count(*) FROM licence WHERE version > $1::bigint" },
	{ "deletions", "SELECT count(*) FROM repl_tombstones WHERE version > $1::bigint" },
};

const char *backlog_count_sql(const char *stream)
{
	for (size_t i = 0; stream && i < sizeof(counts) / sizeof(counts[0]); i++)
		if (strcmp(counts[i].stream, stream) == 0)
			return counts[i].sql;
	return NULL;
}

double backlog_rate(int64_t rows, int64_t elapsed_ms)
{
	if (rows < 0 || elapsed_ms < 0)
		return NAN;
	/* A session on a fast link can end within the clock's millisecond. */
	return (double)rows * 1000.0 / (double)(elapsed_ms > 0 ? elapsed_ms : 1);
}

double backlog_age(int64_t pending, double now, double caught_up)
{
	if (pending <= 0)
		return 0;
	if (isnan(caught_up))
		return NAN;
	return now > caught_up ? now - caught_up : 0;
}

bool backlog_fresh(int64_t now_ms, int64_t at_ms, int64_t max_ms)
{
	return at_ms > 0 && now_ms >= at_ms && now_ms - at_ms < max_ms;
}
