#include "migrate.h"

#include <stdio.h>
#include <stdlib.h>

#include "db.h"
#include "log.h"

/*
 * Serialises schema changes between processes sharing one database. A
 * transaction-scoped lock cannot be leaked by a crashed process. The key is
 * distinct from the change-capture lock (7073001) of the slave schema.
 */
#define MIGRATE_LOCK_SQL "SELECT pg_advisory_xact_lock(7073000)"

/* Created under the lock too: two concurrent CREATE TABLE IF NOT EXISTS can still collide. */
static const char create_version_table_sql[] = "CREATE TABLE IF NOT EXISTS schema_version ("
					       " version int PRIMARY KEY,"
					       " name text NOT NULL,"
					       " applied_at timestamptz NOT NULL DEFAULT now())";

int migrate_latest(const struct migration *list)
{
	int latest = 0;
	for (const struct migration *m = list; m->name; m++)
		if (m->version > latest)
			latest = m->version;
	return latest;
}

int migrate_current(struct db *db, int *version, char *err, size_t errlen)
{
	char value[32];
	int rc = db_query_value(db, "SELECT to_regclass('schema_version') IS NOT NULL", 0, NULL,
				value, sizeof(value), err, errlen);
	if (rc != 0)
		return -1;
	if (value[0] != 't') {
		*version = 0;
		return 0;
	}
	rc = db_query_value(db, "SELECT coalesce(max(version), 0) FROM schema_version", 0, NULL,
			    value, sizeof(value), err, errlen);
	if (rc != 0)
		return -1;
	*version = atoi(value);
	return 0;
}

static int create_version_table(struct db *db, char *err, size_t errlen)
{
	if (db_begin(db, err, errlen) != 0)
		return -1;
	if (db_exec(db, MIGRATE_LOCK_SQL, 0, NULL, err, errlen) != 0 ||
	    db_exec(db, create_version_table_sql, 0, NULL, err, errlen) != 0 ||
	    db_commit(db, err, errlen) != 0) {
		db_rollback(db);
		return -1;
	}
	return 0;
}

/* 1 when applied now, 0 when another process had already applied it, -1 on error. */
static int apply_one(struct db *db, const struct migration *m, char *err, size_t errlen)
{
	char version[16];
	char found[8];
	char why[768];
	int rc;
	snprintf(version, sizeof(version), "%d", m->version);
	const char *const params[] = { version, m->name };

	if (db_begin(db, why, sizeof(why)) != 0)
		goto fail;
	if (db_exec(db, MIGRATE_LOCK_SQL, 0, NULL, why, sizeof(why)) != 0)
		goto fail;
	rc = db_query_value(db, "SELECT 1 FROM schema_version WHERE version = $1", 1, params, found,
			    sizeof(found), why, sizeof(why));
	if (rc < 0)
		goto fail;
	if (rc == 0) {
		db_rollback(db);
		return 0;
	}
	/* Schema files hold several statements and come from the binary, never from input. */
	if (db_exec_script(db, m->sql, why, sizeof(why)) != 0)
		goto fail;
	if (db_exec(db, "INSERT INTO schema_version (version, name) VALUES ($1, $2)", 2, params,
		    why, sizeof(why)) != 0)
		goto fail;
	if (db_commit(db, why, sizeof(why)) != 0)
		goto fail;
	return 1;
fail:
	db_rollback(db);
	snprintf(err, errlen, "schema %s: %s", m->name, why);
	return -1;
}

int migrate_run(struct db *db, const struct migration *list, char *err, size_t errlen)
{
	int latest = migrate_latest(list);
	int current = 0;

	if (create_version_table(db, err, errlen) != 0)
		return -1;
	if (migrate_current(db, &current, err, errlen) != 0)
		return -1;
	/* An older binary would run against tables it does not know: refuse before touching them.
	 */
	if (current > latest) {
		snprintf(err, errlen, "database schema version %d is newer than this binary (%d)",
			 current, latest);
		return -1;
	}
	for (const struct migration *m = list; m->name; m++) {
		int rc = apply_one(db, m, err, errlen);
		if (rc < 0)
			return -1;
		if (rc > 0)
			log_notice("schema: applied %s", m->name);
	}
	return 0;
}
