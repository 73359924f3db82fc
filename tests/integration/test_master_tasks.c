/*
 * Master tasks across slaves, with real agents: a task targeted at slaves
 * and a group path replicates down, runs on exactly the targeted agents,
 * and its results come back up; `task status` counts them per slave with
 * the data age, and the reports across slaves (events, tasks, sync) answer
 * in table, JSON and CSV form. Withdrawing a task removes its commands an
 * offline agent has not taken. A master policy reaches the agents without an
 * operator command, and the compliance report counts who runs it. The
 * master refuses endpoint-level commands.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CUnit/Basic.h>
#include <jansson.h>

#include "harness_agent.h"
#include "harness_pg.h"
#include "harness_proc.h"

static struct hnode master, sa, sb;

struct agent {
	struct hnode *slave;
	const char *host, *group;
	char dir[600], log[700];
	pid_t pid;
};

static struct agent agents[] = {
	{ &sa, "desk-a1", "/branch/desks", "", "", 0 },
	{ &sa, "lab-a2", "/lab", "", "", 0 },
	{ &sb, "desk-b1", "/branch", "", "", 0 },
};
#define NAGENTS (sizeof(agents) / sizeof(agents[0]))

static void start_agent(struct agent *a)
{
	a->pid = hp_spawn_agent(a->log, "-v", "-s", a->dir, "run", NULL);
}

static int suite_init(void)
{
	if (hpg_require() != 0)
		return -1;
	if (hp_master_init(&master, "hq", NULL) != 0 || hp_start(&master) != 0)
		return -1;
	if (hp_slave_init(&sa, "site-a", master.port, 1800, NULL) != 0 || hp_start(&sa) != 0 ||
	    hp_enrol(&master, &sa) != 0)
		return -1;
	if (hp_slave_init(&sb, "site-b", master.port, 1800, NULL) != 0 || hp_start(&sb) != 0 ||
	    hp_enrol(&master, &sb) != 0)
		return -1;
	for (size_t i = 0; i < NAGENTS; i++) {
		snprintf(agents[i].dir, sizeof(agents[i].dir), "%s/%s", hp_root(), agents[i].host);
		snprintf(agents[i].log, sizeof(agents[i].log), "%s/%s.log", hp_root(),
			 agents[i].host);
	}
	return 0;
}

static int suite_clean(void)
{
	for (size_t i = 0; i < NAGENTS; i++)
		hp_stop_checked(&agents[i].pid, agents[i].log);
	hp_cleanup(&sa);
	hp_cleanup(&sb);
	hp_cleanup(&master);
	return 0;
}

static bool all_online(void *arg)
{
	return hp_query_ll(&sa, "SELECT count(*) FROM endpoints WHERE status = 'online'") == 2 &&
	       hp_query_ll(&sb, "SELECT count(*) FROM endpoints WHERE status = 'online'") == 1;
}

static void test_agents_online(void)
{
	for (size_t i = 0; i < NAGENTS; i++) {
		char *tok = ha_make_token(agents[i].slave, agents[i].group);
		CU_ASSERT_PTR_NOT_NULL_FATAL(tok);
		CU_ASSERT_EQUAL_FATAL(
		    ha_agent_enrol(agents[i].slave, agents[i].dir, tok, agents[i].host, NULL), 0);
		free(tok);
		start_agent(&agents[i]);
	}
	CU_ASSERT_TRUE(hp_wait(all_online, NULL, 30));
}

/* The row of `slave` in a --json table: an array of objects. */
static json_t *row_of(json_t *rows, const char *slave)
{
	size_t i;
	json_t *r;
	json_array_foreach (rows, i, r) {
		const char *s = json_string_value(json_object_get(r, "slave"));
		if (s && strcmp(s, slave) == 0)
			return r;
	}
	return NULL;
}

static long long num(json_t *row, const char *key)
{
	json_t *v = json_object_get(row, key);
	return json_is_integer(v) ? (long long)json_integer_value(v) : -1;
}

/* A {"columns", "rows"} table's rows as objects keyed by column, in place. */
static void rows_as_objects(json_t *tbl)
{
	json_t *cols = json_object_get(tbl, "columns"), *rows = json_object_get(tbl, "rows");
	json_t *objs = json_array();
	size_t i, c;
	json_t *row, *name;
	json_array_foreach (rows, i, row) {
		json_t *o = json_object();
		json_array_foreach (cols, c, name)
			json_object_set(o, json_string_value(name), json_array_get(row, c));
		json_array_append_new(objs, o);
	}
	json_object_set_new(tbl, "rows", objs);
}

/* `task status NAME --json` parsed ({"fields", "columns", "rows"}, rows as objects), or NULL. */
static json_t *task_status(const char *name)
{
	char *out = NULL;
	if (hp_ctl(&master, &out, "--json", "task", "status", name, NULL) != 0) {
		fprintf(stderr, "task status %s: %s\n", name, out ? out : "");
		free(out);
		return NULL;
	}
	json_t *j = json_loads(out, 0, NULL);
	free(out);
	if (j)
		rows_as_objects(j);
	return j;
}

static void test_create_refusals(void)
{
	char *out = NULL;
	CU_ASSERT_EQUAL(
	    hp_ctl(&master, &out, "task", "create", "bad-kind", "--kind", "reboot", NULL), 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(out ? out : "", "unknown task kind 'reboot'"));
	free(out);
	CU_ASSERT_EQUAL(hp_ctl(&master, &out, "task", "create", "bad-group", "--kind", "inventory",
			       "--group", "branch//x", NULL),
			1);
	CU_ASSERT_PTR_NOT_NULL(strstr(out ? out : "", "invalid group path 'branch//x'"));
	free(out);
	CU_ASSERT_EQUAL(hp_query_ll(&master, "SELECT count(*) FROM tasks"), 0);
	CU_ASSERT_EQUAL(hp_ctl(&master, &out, "task", "status", "no-such-task", NULL), 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(out ? out : "", "no task named 'no-such-task'"));
	free(out);
}

static bool slave_results(void *arg)
{
	/* Every targeted agent answered: 2 + 1 on site-a, 1 on site-b. */
	return hp_query_ll(
		   &sa, "SELECT count(*) FROM task_results r JOIN tasks t ON t.id = "
			"r.task_id WHERE t.owner = 'master:hq' AND r.status = 'succeeded'") == 3 &&
	       hp_query_ll(&sb,
			   "SELECT count(*) FROM task_results r JOIN tasks t ON t.id = "
			   "r.task_id WHERE t.owner = 'master:hq' AND r.status = 'succeeded'") == 1;
}

static void test_targeted_task_runs_and_reports(void)
{
	char *out = NULL;
	CU_ASSERT_EQUAL(hp_ctl(&master, &out, "task", "create", "inv-desks", "--kind", "inventory",
			       "--slaves", "site-a", "--group", "/branch", NULL),
			0);
	free(out);
	CU_ASSERT_EQUAL(
	    hp_ctl(&master, &out, "task", "create", "inv-all", "--kind", "inventory", NULL), 0);
	free(out);

	/* Before any slave has it: the targeted slaves are listed with zeros. */
	json_t *st = task_status("inv-desks");
	CU_ASSERT_PTR_NOT_NULL_FATAL(st);
	json_t *rows = json_object_get(st, "rows");
	CU_ASSERT_EQUAL(json_array_size(rows), 2); /* site-a and the total */
	CU_ASSERT_PTR_NOT_NULL(row_of(rows, "site-a"));
	CU_ASSERT_PTR_NULL(row_of(rows, "site-b"));
	CU_ASSERT_EQUAL(num(row_of(rows, "site-a"), "total"), 0);
	CU_ASSERT_STRING_EQUAL(
	    json_string_value(json_object_get(json_object_get(st, "fields"), "group")), "/branch");
	json_decref(st);

	CU_ASSERT_EQUAL(hp_sync(&sa), 0);
	CU_ASSERT_EQUAL(hp_sync(&sb), 0);
	CU_ASSERT_TRUE(hp_wait(slave_results, NULL, 30));
	/* Only the agent under /branch of site-a ran inv-desks. */
	CU_ASSERT_EQUAL(hp_query_ll(&sa, "SELECT count(*) FROM task_results r JOIN tasks t ON t.id "
					 "= r.task_id JOIN endpoints e ON e.id = r.endpoint_id "
					 "WHERE t.name = 'inv-desks' AND e.hostname = 'desk-a1'"),
			1);
	CU_ASSERT_EQUAL(hp_query_ll(&sa, "SELECT count(*) FROM task_results r JOIN tasks t ON t.id "
					 "= r.task_id WHERE t.name = 'inv-desks'"),
			1);
	CU_ASSERT_EQUAL(hp_query_ll(&sb, "SELECT count(*) FROM tasks WHERE name = 'inv-desks'"), 0);
	CU_ASSERT_EQUAL(hp_query_ll(&sa, "SELECT count(*) FROM tasks WHERE name = 'inv-desks' AND "
					 "target_group = '/branch'"),
			1);

	/* The results go up with the next sessions. */
	CU_ASSERT_EQUAL(hp_sync(&sa), 0);
	CU_ASSERT_EQUAL(hp_sync(&sb), 0);
	st = task_status("inv-all");
	CU_ASSERT_PTR_NOT_NULL_FATAL(st);
	rows = json_object_get(st, "rows");
	CU_ASSERT_EQUAL(num(row_of(rows, "site-a"), "succeeded"), 2);
	CU_ASSERT_EQUAL(num(row_of(rows, "site-b"), "succeeded"), 1);
	CU_ASSERT_EQUAL(num(row_of(rows, "(all)"), "succeeded"), 3);
	CU_ASSERT_EQUAL(num(row_of(rows, "(all)"), "pending"), 0);
	CU_ASSERT(num(row_of(rows, "site-a"), "data_age_s") >= 0);
	CU_ASSERT_TRUE(json_is_false(json_object_get(row_of(rows, "site-a"), "late")));
	json_decref(st);
	st = task_status("inv-desks");
	CU_ASSERT_PTR_NOT_NULL_FATAL(st);
	rows = json_object_get(st, "rows");
	CU_ASSERT_EQUAL(num(row_of(rows, "site-a"), "succeeded"), 1);
	CU_ASSERT_EQUAL(num(row_of(rows, "site-a"), "total"), 1);
	json_decref(st);
	CU_ASSERT_EQUAL(hp_query_ll(&master, "SELECT count(*) FROM task_results r JOIN tasks t ON "
					     "t.id = r.master_task_id WHERE t.name = 'inv-all'"),
			3);

	/* The same in a table for the operator. */
	CU_ASSERT_EQUAL(hp_ctl(&master, &out, "task", "status", "inv-all", NULL), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out ? out : "", "succeeded"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out ? out : "", "site-b"));
	free(out);
}

static void test_reports(void)
{
	char *out = NULL;
	/* Tasks: one row per task and slave, the master's tasks owned by "master". */
	CU_ASSERT_EQUAL(hp_ctl(&master, &out, "--csv", "report", "tasks", NULL), 0);
	CU_ASSERT_PTR_NOT_NULL(
	    strstr(out ? out : "", "task,owner,slave,pending,running,succeeded,failed,total"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out ? out : "", "inv-all,master,site-a,0,0,2,0,2"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out ? out : "", "inv-all,master,site-b,0,0,1,0,1"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out ? out : "", "slave,state,late,last_sync,data_age_s"));
	free(out);

	/* Events: the agents' status changes, counted by day, kind and severity. */
	CU_ASSERT_EQUAL(
	    hp_ctl(&master, &out, "--json", "report", "events", "--kind", "status", NULL), 0);
	json_t *j = json_loads(out ? out : "", 0, NULL);
	free(out);
	CU_ASSERT_PTR_NOT_NULL_FATAL(j);
	json_t *secs = json_object_get(j, "sections");
	CU_ASSERT_EQUAL(json_array_size(secs), 2);
	rows_as_objects(json_array_get(secs, 0));
	json_t *rows = json_object_get(json_array_get(secs, 0), "rows");
	long long events = 0;
	size_t i;
	json_t *r;
	json_array_foreach (rows, i, r) {
		CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(r, "kind")), "status");
		events += num(r, "events");
	}
	CU_ASSERT_EQUAL(events, hp_query_ll(&master, "SELECT count(*) FROM events WHERE kind = "
						     "'status'"));
	CU_ASSERT(events >= 3);
	json_t *age = json_object_get(json_array_get(secs, 1), "rows");
	CU_ASSERT_EQUAL(json_array_size(age), 2);
	json_decref(j);
	CU_ASSERT_EQUAL(hp_ctl(&master, &out, "report", "events", "--days", "0", NULL), 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(out ? out : "", "days must be a whole number from 1 to 366"));
	free(out);

	/* Sync health: both slaves active, not late. */
	CU_ASSERT_EQUAL(hp_ctl(&master, &out, "--json", "report", "sync", NULL), 0);
	j = json_loads(out ? out : "", 0, NULL);
	free(out);
	CU_ASSERT_PTR_NOT_NULL_FATAL(j);
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(row_of(j, "site-a"), "state")),
			       "active");
	CU_ASSERT_TRUE(json_is_false(json_object_get(row_of(j, "site-b"), "late")));
	CU_ASSERT_EQUAL(num(row_of(j, "site-a"), "interval_s"), 1800);
	json_decref(j);
}

static void test_late_slave_marked(void)
{
	/* A slave whose last sync is older than 2 intervals is degraded, and late. */
	CU_ASSERT_EQUAL(hp_query_ll(&master,
				    "WITH u AS (UPDATE slaves SET last_sync_at = now() - "
				    "interval '90 minutes' WHERE name = 'site-b' RETURNING "
				    "1) SELECT count(*) FROM u"),
			1);
	json_t *st = task_status("inv-all");
	CU_ASSERT_PTR_NOT_NULL_FATAL(st);
	json_t *b = row_of(json_object_get(st, "rows"), "site-b");
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(b, "state")), "degraded");
	CU_ASSERT_TRUE(json_is_true(json_object_get(b, "late")));
	CU_ASSERT(num(b, "data_age_s") >= 90 * 60);
	/* Its results still count. */
	CU_ASSERT_EQUAL(num(b, "succeeded"), 1);
	json_decref(st);
}

static void test_withdrawn_task_leaves_offline_agent(void)
{
	char *out = NULL;
	hp_stop_checked(&agents[2].pid, agents[2].log);
	CU_ASSERT_EQUAL(hp_ctl(&master, &out, "task", "create", "inv-later", "--kind", "inventory",
			       "--slaves", "site-b", NULL),
			0);
	free(out);
	CU_ASSERT_EQUAL(hp_sync(&sb), 0);
	CU_ASSERT_EQUAL(hp_query_ll(&sb, "SELECT count(*) FROM agent_commands c JOIN tasks t ON "
					 "t.id = (c.args->>'task_id')::bigint WHERE t.name = "
					 "'inv-later' AND c.acked_at IS NULL"),
			1);
	CU_ASSERT_EQUAL(hp_query_ll(&sb, "SELECT count(*) FROM task_results r JOIN tasks t ON t.id "
					 "= r.task_id WHERE t.name = 'inv-later' AND r.status = "
					 "'pending'"),
			1);
	CU_ASSERT_EQUAL(hp_ctl(&master, &out, "task", "delete", "inv-later", NULL), 0);
	free(out);
	CU_ASSERT_EQUAL(hp_sync(&sb), 0);
	CU_ASSERT_EQUAL(hp_query_ll(&sb, "SELECT count(*) FROM tasks WHERE name = 'inv-later'"), 0);
	CU_ASSERT_EQUAL(hp_query_ll(&sb, "SELECT count(*) FROM agent_commands WHERE kind = "
					 "'run_task' AND acked_at IS NULL"),
			0);
	CU_ASSERT_EQUAL(hp_query_ll(&sb, "SELECT count(*) FROM task_results WHERE status = "
					 "'pending'"),
			0);
	/* The finished results of the other tasks stay. */
	CU_ASSERT_EQUAL(hp_query_ll(&sb, "SELECT count(*) FROM task_results WHERE status = "
					 "'succeeded'"),
			1);
}

static bool site_a_applied(void *arg)
{
	return hp_query_ll(&sa, "SELECT count(*) FROM endpoints WHERE policy_target <> 0 AND "
				"policy_version = policy_target") == 2;
}

static bool site_b_applied(void *arg)
{
	return hp_query_ll(&sb, "SELECT count(*) FROM endpoints WHERE policy_target <> 0 AND "
				"policy_version = policy_target") == 1;
}

static void test_policy_reaches_agents_and_compliance(void)
{
	char *out = NULL;
	/* site-b's only agent is stopped (the test before): it will be behind. */
	CU_ASSERT_EQUAL(hp_ctl(&master, &out, "policy", "create", "beat-30", "--settings",
			       "{\"heartbeat\": 30}", NULL),
			0);
	free(out);
	CU_ASSERT_EQUAL(hp_sync(&sa), 0);
	CU_ASSERT_EQUAL(hp_sync(&sb), 0);
	/* No operator command: the download moved the targets and queued the fetches. */
	CU_ASSERT_TRUE(hp_wait(site_a_applied, NULL, 20));
	CU_ASSERT_EQUAL(hp_query_ll(&sa, "SELECT count(*) FROM agent_commands WHERE kind = "
					 "'apply_policy'"),
			2);
	CU_ASSERT_EQUAL(hp_query_ll(&sb, "SELECT count(*) FROM endpoints WHERE policy_target <> 0 "
					 "AND policy_version <> policy_target"),
			1);
	CU_ASSERT_EQUAL(hp_sync(&sa), 0);
	CU_ASSERT_EQUAL(hp_sync(&sb), 0);
	CU_ASSERT_EQUAL(hp_ctl(&master, &out, "--json", "report", "compliance", NULL), 0);
	json_t *j = json_loads(out ? out : "", 0, NULL);
	free(out);
	CU_ASSERT_PTR_NOT_NULL_FATAL(j);
	CU_ASSERT_EQUAL(num(row_of(j, "site-a"), "on_latest"), 2);
	CU_ASSERT_EQUAL(num(row_of(j, "site-a"), "behind"), 0);
	CU_ASSERT_EQUAL(num(row_of(j, "site-b"), "on_latest"), 0);
	CU_ASSERT_EQUAL(num(row_of(j, "site-b"), "behind"), 1);
	CU_ASSERT_EQUAL(num(row_of(j, "(all)"), "endpoints"), 3);
	CU_ASSERT_EQUAL(num(row_of(j, "(all)"), "on_latest"), 2);
	json_decref(j);

	/* The stopped agent catches up when it comes back, and the report follows. */
	start_agent(&agents[2]);
	CU_ASSERT_TRUE(hp_wait(site_b_applied, NULL, 30));
	CU_ASSERT_EQUAL(hp_sync(&sb), 0);
	CU_ASSERT_EQUAL(hp_ctl(&master, &out, "--csv", "report", "compliance", NULL), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out ? out : "", "site-b,active,false,1,1,0,100.0,"));
	if (!strstr(out ? out : "", "site-b,active,false,1,1,0,100.0,"))
		fprintf(stderr, "\n%s\n", out ? out : "");
	free(out);
}

static void test_master_refuses_endpoint_commands(void)
{
	char *out = NULL;
	CU_ASSERT_EQUAL(hp_ctl(&master, &out, "dp", "list", NULL), 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(out ? out : "", "the master has no endpoints"));
	free(out);
	CU_ASSERT_EQUAL(hp_ctl(&master, &out, "agent-token", "create", NULL), 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(out ? out : "", "the master has no endpoints"));
	free(out);
	CU_ASSERT_EQUAL(hp_ctl(&master, &out, "endpoint", "list", NULL), 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(out ? out : "", "is a slave command"));
	free(out);
}

/* Whether the --json output of a list holds an object whose member key is value. */
static bool listed(struct hnode *n, const char *what, const char *key, const char *value)
{
	char *out = NULL;
	bool found = false;
	if (hp_ctl(n, &out, "--json", what, "list", NULL) == 0) {
		json_t *j = json_loads(out, 0, NULL), *o;
		size_t i;
		json_array_foreach (j, i, o) {
			const char *v = json_string_value(json_object_get(o, key));
			found = found || (v && strcmp(v, value) == 0);
		}
		json_decref(j);
	}
	free(out);
	return found;
}

/* Names an operator or an agent supplies are data, never SQL: stored and shown as given. */
static void test_sql_metacharacters_verbatim(void)
{
	static const char policy_name[] = "p'); DROP TABLE slaves; --";
	static const char task_name[] = "t\"x' OR '1'='1";
	static const char local_name[] = "l'||(SELECT version())||'";
	static const char host[] = "desk'); DELETE FROM endpoints; --";
	char *out = NULL;
	CU_ASSERT_EQUAL(hp_ctl(&master, &out, "policy", "create", policy_name, "--settings",
			       "{\"heartbeat\": 90}", NULL),
			0);
	free(out);
	CU_ASSERT_TRUE(listed(&master, "policy", "name", policy_name));
	CU_ASSERT_EQUAL(hp_ctl(&master, &out, "task", "create", task_name, "--kind", "inventory",
			       "--slaves", "site-a", NULL),
			0);
	free(out);
	CU_ASSERT_TRUE(listed(&master, "task", "name", task_name));
	CU_ASSERT_EQUAL(hp_ctl(&master, &out, "--json", "task", "status", task_name, NULL), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out ? out : "", "OR '1'='1"));
	free(out);
	CU_ASSERT_EQUAL(hp_ctl(&sa, &out, "policy", "create", local_name, "--settings",
			       "{\"heartbeat\": 120}", "--group", "/lab", NULL),
			0);
	free(out);
	CU_ASSERT_TRUE(listed(&sa, "policy", "name", local_name));

	/* An agent's hostname, enrolled, listed on the slave, replicated to the master. */
	char dir[600];
	snprintf(dir, sizeof(dir), "%s/sql-host", hp_root());
	char *tok = ha_make_token(&sa, "/lab");
	CU_ASSERT_PTR_NOT_NULL_FATAL(tok);
	CU_ASSERT_EQUAL(ha_agent_enrol(&sa, dir, tok, host, NULL), 0);
	free(tok);
	CU_ASSERT_TRUE(listed(&sa, "endpoint", "hostname", host));
	CU_ASSERT_EQUAL(hp_sync(&sa), 0);
	CU_ASSERT_EQUAL(hp_sync(&sa), 0);
	CU_ASSERT_TRUE(listed(&sa, "policy", "name", policy_name));
	char *got =
	    hp_query1(&master, "SELECT hostname FROM endpoints WHERE hostname LIKE 'desk''%'");
	CU_ASSERT_STRING_EQUAL(got ? got : "", host);
	free(got);
	/* And nothing was dropped or deleted on the way. */
	CU_ASSERT_EQUAL(hp_query_ll(&master, "SELECT count(*) FROM slaves WHERE name IN "
					     "('site-a', 'site-b')"),
			2);
	CU_ASSERT_EQUAL(hp_query_ll(&sa, "SELECT count(*) FROM endpoints"), 3);
}

int main(void)
{
	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	CU_pSuite s = CU_add_suite("master_tasks", suite_init, suite_clean);
	CU_add_test(s, "agents enrol in groups on two slaves", test_agents_online);
	CU_add_test(s, "bad kind, group or name refused", test_create_refusals);
	CU_add_test(s, "targeted task runs on its agents, results per slave",
		    test_targeted_task_runs_and_reports);
	CU_add_test(s, "reports across slaves: tasks, events, sync", test_reports);
	CU_add_test(s, "a late slave is marked, its data still counted", test_late_slave_marked);
	CU_add_test(s, "withdrawn task leaves the offline agent's queue",
		    test_withdrawn_task_leaves_offline_agent);
	CU_add_test(s, "a master policy reaches the agents; compliance per slave",
		    test_policy_reaches_agents_and_compliance);
	CU_add_test(s, "master refuses endpoint-level commands",
		    test_master_refuses_endpoint_commands);
	CU_add_test(s, "SQL metacharacters in names are stored and shown verbatim",
		    test_sql_metacharacters_verbatim);
	return hp_run_suite();
}
