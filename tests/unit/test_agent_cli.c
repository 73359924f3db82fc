#include <CUnit/Basic.h>

#include <string.h>

#include "cli.h"

#define MAXARGS 16

static void test_table(void)
{
	static const struct {
		const char *argv[MAXARGS];
		int rc;
		enum acli_cmd cmd;
		const char *host;
		int port;
		const char *mode;
		int poll;
	} cases[] = {
		{ { "a", "-s", "/d", "enrol", "--server", "h:7074", "--token", "t" },
		  0,
		  ACLI_ENROL,
		  "h",
		  7074,
		  "push",
		  ACLI_POLL_DEFAULT },
		{ { "a", "-s", "/d", "enrol", "--server", "[::1]:9", "--token", "t", "--mode",
		    "poll" },
		  0,
		  ACLI_ENROL,
		  "::1",
		  9,
		  "poll",
		  ACLI_POLL_DEFAULT },
		{ { "a", "-v", "-s", "/d", "run", "--poll-interval", "30" },
		  0,
		  ACLI_RUN,
		  "",
		  0,
		  "push",
		  30 },
		{ { "a", "-s", "/d", "run", "--scan-root", "/srv" },
		  0,
		  ACLI_RUN,
		  "",
		  0,
		  "push",
		  ACLI_POLL_DEFAULT },
		{ { "a", "run" }, -1, 0, NULL, 0, NULL, 0 },
		{ { "a", "-s", "/d" }, -1, 0, NULL, 0, NULL, 0 },
		{ { "a", "-s", "/d", "start" }, -1, 0, NULL, 0, NULL, 0 },
		{ { "a", "-s", "/d", "enrol", "--token", "t" }, -1, 0, NULL, 0, NULL, 0 },
		{ { "a", "-s", "/d", "enrol", "--server", "h", "--token", "t" },
		  -1,
		  0,
		  NULL,
		  0,
		  NULL,
		  0 },
		{ { "a", "-s", "/d", "enrol", "--server", "h:0", "--token", "t" },
		  -1,
		  0,
		  NULL,
		  0,
		  NULL,
		  0 },
		{ { "a", "-s", "/d", "enrol", "--server", "h:1", "--token", "t", "--mode", "pull" },
		  -1,
		  0,
		  NULL,
		  0,
		  NULL,
		  0 },
		{ { "a", "-s", "/d", "run", "--poll-interval", "0" }, -1, 0, NULL, 0, NULL, 0 },
		{ { "a", "-s", "/d", "run", "--poll-interval", "5x" }, -1, 0, NULL, 0, NULL, 0 },
		{ { "a", "-s", "/d", "run", "--server", "h:1" }, -1, 0, NULL, 0, NULL, 0 },
		{ { "a", "-s", "/d", "run", "--scan-root" }, -1, 0, NULL, 0, NULL, 0 },
		{ { "a", "-x" }, -1, 0, NULL, 0, NULL, 0 },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct acli o;
		char err[256] = "";
		int argc = 0;
		while (argc < MAXARGS && cases[i].argv[argc])
			argc++;
		int rc = acli_parse(argc, (char **)cases[i].argv, &o, err, sizeof(err));
		CU_ASSERT_EQUAL(rc, cases[i].rc);
		if (rc != cases[i].rc)
			fprintf(stderr, "case %zu: rc %d (%s)\n", i, rc, err);
		if (rc != 0) {
			CU_ASSERT(err[0] != '\0');
			continue;
		}
		CU_ASSERT_EQUAL(o.cmd, cases[i].cmd);
		CU_ASSERT_STRING_EQUAL(o.state_dir, "/d");
		CU_ASSERT_STRING_EQUAL(o.host, cases[i].host);
		CU_ASSERT_EQUAL(o.port, cases[i].port);
		CU_ASSERT_STRING_EQUAL(o.mode, cases[i].mode);
		CU_ASSERT_EQUAL(o.poll_interval, cases[i].poll);
	}
}

static void test_help(void)
{
	const char *argv[] = { "a", "-h" };
	struct acli o;
	char err[64];
	CU_ASSERT_EQUAL(acli_parse(2, (char **)argv, &o, err, sizeof(err)), 0);
	CU_ASSERT_TRUE(o.help);
}

int main(void)
{
	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	CU_pSuite s = CU_add_suite("agent cli", NULL, NULL);
	CU_add_test(s, "command lines accepted and refused", test_table);
	CU_add_test(s, "-h", test_help);
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	unsigned fails = CU_get_number_of_failures();
	CU_cleanup_registry();
	return fails ? 1 : 0;
}
