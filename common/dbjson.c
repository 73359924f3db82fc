#include "dbjson.h"

#include <stdlib.h>
#include <string.h>

/* Type OIDs from PostgreSQL's pg_type.dat; stable across versions. */
#define OID_BOOL 16
#define OID_INT8 20
#define OID_INT2 21
#define OID_INT4 23
#define OID_JSON 114
#define OID_FLOAT4 700
#define OID_FLOAT8 701
#define OID_NUMERIC 1700
#define OID_JSONB 3802

json_t *dbjson_cell(const PGresult *res, int row, int col)
{
	if (PQgetisnull(res, row, col))
		return json_null();
	const char *v = PQgetvalue(res, row, col);
	switch (PQftype(res, col)) {
	case OID_BOOL:
		return json_boolean(v[0] == 't');
	case OID_INT2:
	case OID_INT4:
	case OID_INT8:
		return json_integer(strtoll(v, NULL, 10));
	case OID_FLOAT4:
	case OID_FLOAT8:
	case OID_NUMERIC:
		return json_real(strtod(v, NULL));
	case OID_JSON:
	case OID_JSONB: {
		json_t *j = json_loads(v, JSON_DECODE_ANY, NULL);
		return j ? j : json_string(v);
	}
	default:
		return json_string(v);
	}
}

json_t *dbjson_row(const PGresult *res, int row)
{
	json_t *o = json_object();
	for (int c = 0; c < PQnfields(res); c++)
		json_object_set_new(o, PQfname(res, c), dbjson_cell(res, row, c));
	return o;
}

json_t *dbjson_table(const PGresult *res)
{
	json_t *cols = json_array(), *rows = json_array();
	for (int c = 0; c < PQnfields(res); c++)
		json_array_append_new(cols, json_string(PQfname(res, c)));
	for (int r = 0; r < PQntuples(res); r++) {
		json_t *row = json_array();
		for (int c = 0; c < PQnfields(res); c++)
			json_array_append_new(row, dbjson_cell(res, r, c));
		json_array_append_new(rows, row);
	}
	return json_pack("{s:o, s:o}", "columns", cols, "rows", rows);
}

json_t *dbjson_query(struct db *db, const char *sql, int nparams, const char *const *params,
		     char *err, size_t errlen)
{
	PGresult *res = db_query(db, sql, nparams, params, err, errlen);
	if (!res)
		return NULL;
	json_t *t = dbjson_table(res);
	PQclear(res);
	return t;
}
