#include <CUnit/Basic.h>
#include <string.h>

/* strata-ctl's modules are not in libstrata-common; the pure one is compiled in here. */
#include "commands.h"

#define MAX_ARGV 10

struct build_case {
	const char *argv[MAX_ARGV]; /* NULL-terminated */
	int status;
	const char *cmd;  /* admin command name, or NULL when not recognised */
	const char *args; /* expected args as JSON, for CTL_BUILD_OK */
	const char *err;  /* substring of the message, for CTL_BUILD_USAGE */
	int timeout_s;	  /* 0: not checked */
};

#define OK(cmd_, args_) .status = CTL_BUILD_OK, .cmd = (cmd_), .args = (args_)
#define HELP(cmd_) .status = CTL_BUILD_HELP, .cmd = (cmd_)
#define USAGE(cmd_, err_) .status = CTL_BUILD_USAGE, .cmd = (cmd_), .err = (err_)

static const struct build_case cases[] = {
	/* every command */
	{ { "slave", "add", "alpha" }, OK("slave.add", "{\"name\":\"alpha\"}"), .timeout_s = 30 },
	{ { "slave", "add", "alpha", "--ttl", "3600" },
	  OK("slave.add", "{\"name\":\"alpha\",\"ttl\":3600}") },
	{ { "slave", "add", "--ttl=60", "alpha" },
	  OK("slave.add", "{\"name\":\"alpha\",\"ttl\":60}") },
	{ { "slave", "list" }, OK("slave.list", "{}") },
	{ { "slave", "remove", "alpha" },
	  OK("slave.remove", "{\"name\":\"alpha\",\"keep_data\":false}") },
	{ { "slave", "remove", "alpha", "--keep-data" },
	  OK("slave.remove", "{\"name\":\"alpha\",\"keep_data\":true}") },
	{ { "slave", "sync", "alpha" }, OK("slave.sync", "{\"name\":\"alpha\"}") },
	{ { "policy", "create", "av", "--settings", "{\"scan\": {\"daily\": true}}" },
	  OK("policy.create", "{\"name\":\"av\",\"settings\":{\"scan\":{\"daily\":true}}}") },
	{ { "policy", "create", "av", "--settings", "{}", "--slaves", "a,b" },
	  OK("policy.create", "{\"name\":\"av\",\"settings\":{},\"slaves\":[\"a\",\"b\"]}") },
	{ { "policy", "update", "av" }, OK("policy.update", "{\"name\":\"av\"}") },
	{ { "policy", "update", "av", "--settings", "{\"x\":1}", "--all" },
	  OK("policy.update", "{\"name\":\"av\",\"settings\":{\"x\":1},\"all\":true}") },
	{ { "policy", "create", "av", "--settings", "{\"heartbeat\": 60}", "--group", "/a",
	    "--lock", "heartbeat" },
	  OK("policy.create", "{\"name\":\"av\",\"settings\":{\"heartbeat\":60},"
			      "\"group\":\"/a\",\"lock\":[\"heartbeat\"]}") },
	{ { "policy", "show", "--effective", "abc" },
	  OK("policy.show", "{\"effective\":\"abc\"}") },
	{ { "policy", "update", "av", "--slaves", " a , b ,c" },
	  OK("policy.update", "{\"name\":\"av\",\"slaves\":[\"a\",\"b\",\"c\"]}") },
	{ { "policy", "update", "av", "--slaves", "solo" },
	  OK("policy.update", "{\"name\":\"av\",\"slaves\":[\"solo\"]}") },
	{ { "policy", "delete", "av" }, OK("policy.delete", "{\"name\":\"av\"}") },
	{ { "policy", "list" }, OK("policy.list", "{}") },
	{ { "task", "create", "scan1", "--kind", "scan" },
	  OK("task.create", "{\"name\":\"scan1\",\"kind\":\"scan\"}") },
	{ { "task", "create", "scan1", "--kind", "scan", "--params", "[1,2]", "--slaves", "a" },
	  OK("task.create",
	     "{\"name\":\"scan1\",\"kind\":\"scan\",\"params\":[1,2],\"slaves\":[\"a\"]}") },
	{ { "task", "delete", "scan1" }, OK("task.delete", "{\"name\":\"scan1\"}") },
	{ { "task", "list" }, OK("task.list", "{}") },
	{ { "task", "create", "inv", "--kind", "inventory", "--group", "/branch/desks" },
	  OK("task.create", "{\"name\":\"inv\",\"kind\":\"inventory\",\"group\":\"/branch/desks\"}") },
	{ { "task", "status", "inv" }, OK("task.status", "{\"name\":\"inv\"}") },
	{ { "task", "status" }, USAGE("task.status", "missing NAME") },
	{ { "report", "endpoints" }, OK("report.endpoints", "{}") },
	{ { "report", "events" }, OK("report.events", "{}") },
	{ { "report", "events", "--days", "30", "--kind", "detection", "--severity", "high" },
	  OK("report.events", "{\"days\":30,\"kind\":\"detection\",\"severity\":\"high\"}") },
	{ { "report", "events", "--days", "many" }, USAGE("report.events", "--days") },
	{ { "report", "tasks" }, OK("report.tasks", "{}") },
	{ { "report", "compliance" }, OK("report.compliance", "{}") },
	{ { "report", "sync" }, OK("report.sync", "{}") },
	{ { "endpoint", "command", "abc", "sync_now", "--args", "{\"a\":1}" },
	  OK("endpoint.command", "{\"uid\":\"abc\",\"kind\":\"sync_now\",\"args\":{\"a\":1}}") },
	{ { "endpoint", "revoke", "abc" }, OK("endpoint.revoke", "{\"uid\":\"abc\"}") },
	{ { "endpoint", "revoke" }, USAGE("endpoint.revoke", "missing UID") },
	{ { "agent-token", "create", "--group", "/lab", "--expires", "600" },
	  OK("agent-token.create", "{\"group\":\"/lab\",\"expires\":600}") },
	{ { "register", "--master", "m.example:7073", "--token", "abc.def" },
	  OK("register", "{\"master\":\"m.example:7073\",\"token\":\"abc.def\"}"),
	  .timeout_s = 120 },
	{ { "unregister" }, OK("unregister", "{\"force\":false}"), .timeout_s = 120 },
	{ { "unregister", "--force" }, OK("unregister", "{\"force\":true}") },
	{ { "sync", "now" }, OK("sync.now", "{}"), .timeout_s = 900 },
	{ { "sync", "status" }, OK("sync.status", "{}"), .timeout_s = 30 },
	{ { "status" }, OK("status", "{}") },
	/* "--" ends the options: a name may start with a dash */
	{ { "slave", "add", "--", "-odd" }, OK("slave.add", "{\"name\":\"-odd\"}") },

	/* help */
	{ { "slave", "add", "-h" }, HELP("slave.add") },
	{ { "policy", "update", "av", "--help" }, HELP("policy.update") },
	{ { "help" }, HELP(NULL) },

	/* missing positional, extra arguments */
	{ { "slave", "add" }, USAGE("slave.add", "missing NAME") },
	{ { "slave", "add", "" }, USAGE("slave.add", "NAME may not be empty") },
	{ { "slave", "sync", "a", "b" }, USAGE("slave.sync", "unexpected argument 'b'") },
	{ { "status", "now" }, USAGE("status", "unexpected argument 'now'") },

	/* unknown command or option */
	{ { "frobnicate" }, USAGE(NULL, "unknown command 'frobnicate'") },
	{ { "slave", "explode" }, USAGE(NULL, "unknown command 'slave explode'") },
	{ { "slave" }, USAGE(NULL, "unknown command 'slave'") },
	{ { "slave", "add", "a", "--tll", "5" }, USAGE("slave.add", "unknown option '--tll'") },
	{ { "slave", "add", "a", "--nope=5" }, USAGE("slave.add", "unknown option '--nope'") },
	{ { "slave", "add", "a", "-t" }, USAGE("slave.add", "unknown option '-t'") },
	{ { "slave", "list", "--keep-data" }, USAGE("slave.list", "unknown option '--keep-data'") },
	{ { "slave", "list", "--json" },
	  USAGE("slave.list", "unknown option '--json' (global options go before the command)") },
	{ { "status", "--timeout=5" },
	  USAGE("status", "unknown option '--timeout' (global options go before the command)") },

	/* option values */
	{ { "slave", "add", "a", "--ttl" }, USAGE("slave.add", "--ttl needs a value (SECONDS)") },
	{ { "slave", "add", "a", "--ttl", "ten" },
	  USAGE("slave.add", "--ttl must be an integer, not 'ten'") },
	{ { "slave", "add", "a", "--ttl", "12s" }, USAGE("slave.add", "must be an integer") },
	{ { "slave", "add", "a", "--ttl", "" }, USAGE("slave.add", "must be an integer") },
	{ { "slave", "add", "a", "--ttl", " 5" }, USAGE("slave.add", "must be an integer") },
	{ { "slave", "add", "a", "--ttl", "99999999999999999999" },
	  USAGE("slave.add", "must be an integer") },
	{ { "slave", "add", "a", "--ttl", "1", "--ttl", "2" },
	  USAGE("slave.add", "--ttl given twice") },
	{ { "slave", "remove", "a", "--keep-data=yes" },
	  USAGE("slave.remove", "--keep-data takes no value") },
	{ { "policy", "create", "av", "--settings", "{\"a\":" },
	  USAGE("policy.create", "--settings is not valid JSON: ") },
	{ { "policy", "create", "av", "--settings", "[1]" },
	  USAGE("policy.create", "--settings must be a JSON object") },
	{ { "policy", "create", "av", "--settings", "{\"a\":1,\"a\":2}" },
	  USAGE("policy.create", "duplicate object key") },
	{ { "policy", "create", "av" }, USAGE("policy.create", "--settings is required") },
	{ { "task", "create", "t", "--kind", "scan", "--params", "nope" },
	  USAGE("task.create", "--params is not valid JSON: ") },
	{ { "task", "create", "t" }, USAGE("task.create", "--kind is required") },
	{ { "task", "create", "t", "--kind", "" },
	  USAGE("task.create", "--kind may not be empty") },
	{ { "register", "--master", "m:7073" }, USAGE("register", "--token is required") },

	/* comma lists */
	{ { "policy", "update", "av", "--slaves", "a,,b" },
	  USAGE("policy.update", "--slaves has an empty item in 'a,,b'") },
	{ { "policy", "update", "av", "--slaves", "a," }, USAGE("policy.update", "empty item") },
	{ { "policy", "update", "av", "--slaves", "" }, USAGE("policy.update", "empty item") },

	/* --all vs --slaves, in either order */
	{ { "policy", "update", "av", "--slaves", "a", "--all" },
	  USAGE("policy.update", "--slaves and --all cannot be used together") },
	{ { "policy", "update", "av", "--all", "--slaves", "a" },
	  USAGE("policy.update", "--slaves and --all cannot be used together") },
	{ { "policy", "create", "av", "--settings", "{}", "--all" },
	  USAGE("policy.create", "unknown option '--all'") },
};

static void test_build_request(void)
{
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct build_case *c = &cases[i];
		char *argv[MAX_ARGV] = { NULL };
		int argc = 0;
		while (argc < MAX_ARGV && c->argv[argc]) {
			argv[argc] = (char *)c->argv[argc];
			argc++;
		}
		json_t *args = (json_t *)&args; /* must be reset by the call */
		const struct ctl_command *cmd = (const struct ctl_command *)&cmd;
		char err[256] = "";

		int rc = ctl_build_request(argc, argv, &args, &cmd, err, sizeof(err));
		CU_ASSERT_EQUAL(rc, c->status);
		if (rc != c->status)
			fprintf(stderr, "\ncase %zu (%s ...): status %d, err '%s'\n", i, c->argv[0],
				rc, err);

		if (c->cmd) {
			CU_ASSERT_PTR_NOT_NULL_FATAL(cmd);
			CU_ASSERT_STRING_EQUAL(cmd->cmd, c->cmd);
		} else {
			CU_ASSERT_PTR_NULL(cmd);
		}
		if (c->timeout_s)
			CU_ASSERT_EQUAL(cmd->timeout_s, c->timeout_s);

		if (c->status == CTL_BUILD_OK) {
			json_t *want = json_loads(c->args, 0, NULL);
			CU_ASSERT_PTR_NOT_NULL_FATAL(want);
			CU_ASSERT_PTR_NOT_NULL_FATAL(args);
			CU_ASSERT_TRUE(json_equal(args, want));
			if (!json_equal(args, want)) {
				char *got = json_dumps(args, JSON_COMPACT);
				fprintf(stderr, "\ncase %zu: args %s, want %s\n", i, got, c->args);
				free(got);
			}
			json_decref(want);
			json_decref(args);
		} else {
			CU_ASSERT_PTR_NULL(args);
		}
		if (c->err) {
			CU_ASSERT_PTR_NOT_NULL(strstr(err, c->err));
			if (!strstr(err, c->err))
				fprintf(stderr, "\ncase %zu: err '%s', want '%s'\n", i, err,
					c->err);
		}
	}
}

static void test_no_arguments(void)
{
	json_t *args = NULL;
	const struct ctl_command *cmd = NULL;
	char err[128] = "";
	CU_ASSERT_EQUAL(ctl_build_request(0, NULL, &args, &cmd, err, sizeof(err)), CTL_BUILD_USAGE);
	CU_ASSERT_PTR_NULL(args);
	CU_ASSERT_STRING_EQUAL(err, "no command given");
}

/* Keeps the table sane as it grows: unique words, dotted names, a summary, a timeout. */
static void test_table_consistency(void)
{
	int n = 0;
	for (const struct ctl_command *c = ctl_commands(); c->words; c++, n++) {
		CU_ASSERT_PTR_NOT_NULL(c->summary);
		CU_ASSERT_TRUE(c->timeout_s > 0);
		for (const struct ctl_command *d = c + 1; d->words; d++) {
			CU_ASSERT_STRING_NOT_EQUAL(c->words, d->words);
			CU_ASSERT_STRING_NOT_EQUAL(c->cmd, d->cmd);
		}
		for (int i = 0; c->options[i].name; i++) {
			CU_ASSERT_TRUE(i < CTL_MAX_OPTIONS);
			if (c->options[i].type != CTL_OPT_BOOL &&
			    c->options[i].type != CTL_OPT_FLAG)
				CU_ASSERT_PTR_NOT_NULL(c->options[i].metavar);
		}
	}
	CU_ASSERT_EQUAL(n, 35);
}

static void test_find_command(void)
{
	char *slave_add[] = { "slave", "add", "alpha" };
	char *slave_only[] = { "slave" };
	char *status[] = { "status", "--x" };
	const struct ctl_command *c = ctl_find_command(3, slave_add);
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	CU_ASSERT_STRING_EQUAL(c->cmd, "slave.add");
	CU_ASSERT_PTR_NULL(ctl_find_command(1, slave_only));
	c = ctl_find_command(2, status);
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	CU_ASSERT_STRING_EQUAL(c->cmd, "status");
	CU_ASSERT_PTR_NULL(ctl_find_command(0, NULL));
}

static char *capture_usage(const char *words)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	for (const struct ctl_command *c = ctl_commands(); c->words; c++) {
		if (strcmp(c->words, words) == 0)
			ctl_print_usage(f, c);
	}
	fclose(f);
	return buf;
}

static void test_usage_lines(void)
{
	static const struct {
		const char *words;
		const char *usage;
	} want[] = {
		{ "slave add",
		  "usage: strata-ctl [GLOBAL OPTIONS] slave add NAME [--ttl SECONDS]\n" },
		{ "policy update", "usage: strata-ctl [GLOBAL OPTIONS] policy update NAME "
				   "[--settings JSON] [--slaves A,B | --all] [--group PATH] "
				   "[--lock A,B | --unlock]\n" },
		{ "policy show", "usage: strata-ctl [GLOBAL OPTIONS] policy show "
				 "--effective ENDPOINT_UID\n" },
		{ "register", "usage: strata-ctl [GLOBAL OPTIONS] register --master HOST:PORT "
			      "--token TOKEN\n" },
		{ "unregister", "usage: strata-ctl [GLOBAL OPTIONS] unregister [--force]\n" },
		{ "sync now", "usage: strata-ctl [GLOBAL OPTIONS] sync now\n" },
	};
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		char *got = capture_usage(want[i].words);
		CU_ASSERT_STRING_EQUAL(got, want[i].usage);
		free(got);
	}
}

static void test_command_list(void)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	ctl_print_commands(f);
	fclose(f);
	CU_ASSERT_PTR_NOT_NULL(strstr(buf, "commands:\n"));
	CU_ASSERT_PTR_NOT_NULL(strstr(buf, "  task create NAME --kind KIND [--params JSON] "
					   "[--slaves A,B] [--group PATH]\n      create a master-owned task"));
	for (const struct ctl_command *c = ctl_commands(); c->words; c++)
		CU_ASSERT_PTR_NOT_NULL(strstr(buf, c->summary));
	free(buf);
}

int main(void)
{
	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	CU_pSuite s = CU_add_suite("ctl_commands", NULL, NULL);
	CU_add_test(s, "command lines become requests", test_build_request);
	CU_add_test(s, "empty command line", test_no_arguments);
	CU_add_test(s, "command table is consistent", test_table_consistency);
	CU_add_test(s, "command lookup by words", test_find_command);
	CU_add_test(s, "usage lines", test_usage_lines);
	CU_add_test(s, "command list", test_command_list);
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	unsigned fails = CU_get_number_of_failures();
	CU_cleanup_registry();
	return fails ? 1 : 0;
}
