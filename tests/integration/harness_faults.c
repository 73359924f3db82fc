#include "harness_faults.h"

#include <signal.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int hf_exec(struct hnode *n, const char *sql, int nparams, const char *const *params)
{
	PGconn *c = hp_db(n);
	if (!c)
		return -1;
	PGresult *r = PQexecParams(c, sql, nparams, NULL, params, NULL, NULL, 0);
	int ok = PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK;
	if (!ok)
		fprintf(stderr, "faults: %s: %s", sql, PQresultErrorMessage(r));
	PQclear(r);
	PQfinish(c);
	return ok ? 0 : -1;
}

int hf_script(struct hnode *n, const char *sql)
{
	PGconn *c = hp_db(n);
	if (!c)
		return -1;
	/* Test scripts hold several statements: the simple query protocol. */
	int ok = PQsendQuery(c, sql);
	PGresult *r;
	while ((r = PQgetResult(c))) {
		if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK) {
			fprintf(stderr, "faults: %s", PQresultErrorMessage(r));
			ok = 0;
		}
		PQclear(r);
	}
	PQfinish(c);
	return ok ? 0 : -1;
}

char *hf_value(struct hnode *n, const char *sql, int nparams, const char *const *params)
{
	PGconn *c = hp_db(n);
	char *v = NULL;
	if (!c)
		return NULL;
	PGresult *r = PQexecParams(c, sql, nparams, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) > 0 && !PQgetisnull(r, 0, 0))
		v = strdup(PQgetvalue(r, 0, 0));
	else if (PQresultStatus(r) != PGRES_TUPLES_OK)
		fprintf(stderr, "faults: %s: %s", sql, PQresultErrorMessage(r));
	PQclear(r);
	PQfinish(c);
	return v;
}

long long hf_ll(struct hnode *n, const char *sql, int nparams, const char *const *params)
{
	char *v = hf_value(n, sql, nparams, params);
	long long r = v ? strtoll(v, NULL, 10) : -1;
	free(v);
	return r;
}

int hf_slave_id(struct hnode *master, const char *name)
{
	const char *p[] = { name };
	return (int)hf_ll(
	    master, "SELECT id FROM slaves WHERE name = $1 AND state <> 'unregistered'", 1, p);
}

pid_t hf_spawn(const char *bin, const char *cfg, const char *log)
{
	pid_t pid = fork();
	if (pid == 0) {
		int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
		dup2(fd, 1);
		dup2(fd, 2);
		close(fd);
		execl(bin, bin, "-c", cfg, (char *)NULL);
		_exit(127);
	}
	return pid;
}

int hf_wait_exit(pid_t pid, int timeout_s)
{
	int st;
	for (int i = 0; i < timeout_s * 10; i++) {
		if (waitpid(pid, &st, WNOHANG) == pid)
			return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
		usleep(100000);
	}
	return -1;
}

int hf_file_count(const char *path, const char *needle)
{
	FILE *f = fopen(path, "r");
	char line[8192];
	int n = 0;
	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		n += strstr(line, needle) != NULL;
	fclose(f);
	return n;
}

bool hf_file_contains(const char *path, const char *needle)
{
	return hf_file_count(path, needle) > 0;
}

int hf_sync_retry(struct hnode *slave, int timeout_s)
{
	time_t end = time(NULL) + timeout_s;
	for (;;) {
		char *out = NULL;
		int rc = hp_ctl(slave, &out, "sync", "now", NULL);
		if (rc == 0 || time(NULL) >= end) {
			if (rc != 0)
				fprintf(stderr, "faults: sync now on %s: %s\n", slave->name, out);
			free(out);
			return rc;
		}
		free(out);
		sleep(1);
	}
}

#define SUM_SELECT(expr) "SELECT count(*) || '/' || coalesce(sum(hashtext(" expr ")), 0) FROM "
#define SUM(stream, expr)                                                                          \
	{                                                                                          \
		stream, SUM_SELECT(expr) stream,                                                   \
		    SUM_SELECT(expr) stream " WHERE slave_id = $1::int"                            \
	}
/* A stream whose tables differ in name or need a condition. */
#define SUM2(stream, expr, slave_from, master_from)                                                \
	{                                                                                          \
		stream, SUM_SELECT(expr) slave_from, SUM_SELECT(expr) master_from                  \
	}
const struct hf_stream hf_streams[] = {
	SUM("groups", "id::text || '/' || path || '/' || version::text"),
	SUM("endpoints", "id::text || uid || hostname || status || version::text"),
	SUM("events", "id::text || kind || severity || details::text || version::text"),
	SUM("task_results",
	    "task_id::text || '/' || endpoint_id::text || status || result::text || version::text"),
	SUM2("policies", "id::text || '/' || name || settings::text || version::text",
	     "policies WHERE owner = 'local'", "slave_policies WHERE slave_id = $1::int"),
	SUM2("tasks", "id::text || '/' || name || kind || params::text || version::text",
	     "tasks WHERE owner = 'local'", "slave_tasks WHERE slave_id = $1::int"),
};
#undef SUM
#undef SUM2
#undef SUM_SELECT
const size_t hf_nstreams = sizeof(hf_streams) / sizeof(hf_streams[0]);

long long hf_compare(struct hnode *master, struct hnode *slave, int sid, const struct hf_stream *s,
		     size_t n, bool report)
{
	char sid_s[16];
	long long rows = 0;
	bool same = true;
	snprintf(sid_s, sizeof(sid_s), "%d", sid);
	const char *p[] = { sid_s };
	for (size_t i = 0; i < n && (same || report); i++) {
		char *want =
		    hf_value(slave, s[i].slave_sql, strstr(s[i].slave_sql, "$1") ? 1 : 0, p);
		char *got =
		    hf_value(master, s[i].master_sql, strstr(s[i].master_sql, "$1") ? 1 : 0, p);
		bool ok = want && got && strcmp(want, got) == 0;
		if (!ok && report)
			fprintf(stderr, "stream %s: slave %s, master %s\n", s[i].stream,
				want ? want : "(error)", got ? got : "(error)");
		rows += want ? strtoll(want, NULL, 10) : 0;
		same = same && ok;
		free(want);
		free(got);
	}
	return same ? rows : -1;
}

bool hf_rows_same(struct hnode *master, struct hnode *slave, int sid, bool report)
{
	return hf_compare(master, slave, sid, hf_streams, hf_nstreams, report) >= 0;
}
