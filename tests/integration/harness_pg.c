#include "harness_pg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libpq-fe.h>

static const char *env(const char *name)
{
	const char *v = getenv(name);
	return v && v[0] ? v : NULL;
}

int hpg_require(void)
{
	if (env("STRATA_TEST_PGHOST") && env("STRATA_TEST_PGPORT"))
		return 0;
	fprintf(stderr, "integration tests need a throwaway PostgreSQL: set STRATA_TEST_PGHOST "
			"and STRATA_TEST_PGPORT (scripts/test.sh does), e.g.\n"
			"  d=$(mktemp -d); scripts/pg.sh start $d 25432\n"
			"  STRATA_TEST_PGHOST=$d STRATA_TEST_PGPORT=25432 ctest\n");
	return -1;
}

/* Databases hpg_place moved to another cluster. */
#define HPG_PLACED_MAX 16
static struct {
	char dbname[128], host[512], port[16];
} placed[HPG_PLACED_MAX];
static int nplaced;

int hpg_place(const char *dbname, const char *host, int port)
{
	if (nplaced == HPG_PLACED_MAX || strlen(dbname) >= sizeof(placed[0].dbname) ||
	    strlen(host) >= sizeof(placed[0].host))
		return -1;
	snprintf(placed[nplaced].dbname, sizeof(placed[0].dbname), "%s", dbname);
	snprintf(placed[nplaced].host, sizeof(placed[0].host), "%s", host);
	snprintf(placed[nplaced].port, sizeof(placed[0].port), "%d", port);
	nplaced++;
	return 0;
}

/* The conninfo of database dbname on the cluster that holds database owner. */
static char *conninfo_on(const char *owner, const char *dbname)
{
	char *s = NULL;
	const char *host = env("STRATA_TEST_PGHOST");
	const char *port = env("STRATA_TEST_PGPORT");
	for (int i = 0; i < nplaced; i++)
		if (strcmp(placed[i].dbname, owner) == 0) {
			host = placed[i].host;
			port = placed[i].port;
		}
	if (asprintf(&s, "host=%s port=%s user=postgres dbname=%s", host ? host : "",
		     port ? port : "", dbname) < 0)
		return NULL;
	return s;
}

char *hpg_conninfo(const char *dbname)
{
	return conninfo_on(dbname, dbname);
}

/* Database names cannot be parameters; these come from the test, quoted anyway. */
static int admin_exec(const char *verb, const char *name, const char *suffix)
{
	char *ci = conninfo_on(name, "postgres");
	PGconn *conn = PQconnectdb(ci);
	free(ci);
	int rc = -1;
	if (PQstatus(conn) != CONNECTION_OK) {
		fprintf(stderr, "harness: cannot connect: %s", PQerrorMessage(conn));
		PQfinish(conn);
		return -1;
	}
	char *ident = PQescapeIdentifier(conn, name, strlen(name));
	char *sql = NULL;
	if (ident && asprintf(&sql, "%s %s%s", verb, ident, suffix) >= 0) {
		PGresult *res = PQexecParams(conn, sql, 0, NULL, NULL, NULL, NULL, 0);
		if (PQresultStatus(res) == PGRES_COMMAND_OK)
			rc = 0;
		else
			fprintf(stderr, "harness: %s: %s", sql, PQerrorMessage(conn));
		PQclear(res);
	}
	free(sql);
	PQfreemem(ident);
	PQfinish(conn);
	return rc;
}

char *hpg_create_db(const char *prefix)
{
	/* Per process; test programs create their databases from one thread. */
	static unsigned counter;
	char *name = NULL;
	if (asprintf(&name, "%s_%ld_%u", prefix, (long)getpid(), ++counter) < 0)
		return NULL;
	if (admin_exec("CREATE DATABASE", name, "") != 0) {
		free(name);
		return NULL;
	}
	return name;
}

void hpg_drop_db(const char *name)
{
	if (name)
		(void)admin_exec("DROP DATABASE IF EXISTS", name, " WITH (FORCE)");
}
