/*
 * backlog: what a slave has not yet delivered to its master, per upload
 * stream, and how fast it drains.
 *
 * - size: rows above the stream's acknowledged watermark, counted over the
 *   stream's version index (backlog_count_sql, $1 = the watermark), so the
 *   cost follows the backlog, not the table; callers count at most once per
 *   BACKLOG_CACHE_MS.
 * - age: a successful session ships everything committed before it
 *   started, so with a backlog the oldest unsent change is at most as old
 *   as the start of the last successful session (backlog_age).
 * - rate: rows the master acknowledged per second of a session's upload.
 */
#ifndef STRATA_BACKLOG_H
#define STRATA_BACKLOG_H

#include <stdbool.h>
#include <stdint.h>

#define BACKLOG_CACHE_MS 2000

/* SELECT count(*) of the stream's rows above $1::bigint; NULL for an unknown stream. */
const char *backlog_count_sql(const char *stream);

/* rows per second over elapsed_ms (at least 1 ms); NAN when either is negative. */
double backlog_rate(int64_t rows, int64_t elapsed_ms);

/*
 * Seconds the master has lacked this stream's changes: 0 without a
 * backlog, now - caught_up with one (epoch seconds, never below 0), NAN
 * with a backlog and no successful session yet (caught_up NAN).
 */
double backlog_age(int64_t pending, double now, double caught_up);

/* True while a figure counted at at_ms may still be served at now_ms. */
bool backlog_fresh(int64_t now_ms, int64_t at_ms, int64_t max_ms);

#endif
