/*
 * dbjson: query results as the admin socket's table shape,
 * {"columns": [...], "rows": [[...], ...]}. Integers, booleans and
 * numerics become JSON numbers and booleans, json/jsonb columns are
 * embedded as JSON, SQL NULL becomes null, everything else a string.
 */
#ifndef STRATA_DBJSON_H
#define STRATA_DBJSON_H

#include <jansson.h>
#include <libpq-fe.h>

#include "db.h"

json_t *dbjson_table(const PGresult *res);
/* Runs the query and returns its rows as a table; NULL with err. */
json_t *dbjson_query(struct db *db, const char *sql, int nparams, const char *const *params,
		     char *err, size_t errlen);
/* One row as an object keyed by column name (row must exist). */
json_t *dbjson_row(const PGresult *res, int row);
/* One cell converted as above. */
json_t *dbjson_cell(const PGresult *res, int row, int col);

#endif
