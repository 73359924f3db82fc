/*
 * tally: many events, one line per period with their count; what is still
 * counted when the tally is freed is logged then. The log goes to stderr,
 * which the test points at a file to read the lines back.
 */
#include <CUnit/Basic.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "log.h"
#include "tally.h"

static char path[] = "/tmp/test_tally.XXXXXX";
static int saved_stderr = -1;

/* How many lines of the captured log contain needle. */
static int lines_with(const char *needle)
{
	char line[512];
	int n = 0;
	FILE *f;

	fflush(stderr);
	f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (strstr(line, needle))
			n++;
	fclose(f);
	return n;
}

static void test_counts_per_period(void)
{
	struct event_base *base = event_base_new();
	CU_ASSERT_PTR_NOT_NULL_FATAL(base);
	struct tally *t = tally_new(base, 1, "push", "connections cut");
	CU_ASSERT_PTR_NOT_NULL_FATAL(t);

	for (int i = 0; i < 3; i++)
		tally_add(t);
	CU_ASSERT_EQUAL(tally_pending(t), 3);
	CU_ASSERT_EQUAL(lines_with("connections cut"), 0);
	/* The timer is the only event: the loop ends once it has logged. */
	event_base_dispatch(base);
	CU_ASSERT_EQUAL(tally_pending(t), 0);
	CU_ASSERT_EQUAL(lines_with("push: 3 connections cut in the last 1 s"), 1);

	/* A quiet period logs nothing; the next event starts a new one. */
	event_base_dispatch(base);
	CU_ASSERT_EQUAL(lines_with("connections cut"), 1);
	tally_add(t);
	tally_add(t);
	event_base_dispatch(base);
	CU_ASSERT_EQUAL(lines_with("push: 2 connections cut in the last 1 s"), 1);

	/* Freed with events counted: they are logged, not lost. */
	tally_add(t);
	tally_free(t);
	CU_ASSERT_EQUAL(lines_with("push: 1 connections cut in the last 1 s"), 1);
	CU_ASSERT_EQUAL(lines_with("connections cut"), 3);

	/* A tally already gone counts nothing and does not crash. */
	tally_add(NULL);
	CU_ASSERT_EQUAL(tally_pending(NULL), 0);
	event_base_free(base);
}

static int setup(void)
{
	int fd = mkstemp(path);
	if (fd < 0)
		return -1;
	fflush(stderr);
	saved_stderr = dup(STDERR_FILENO);
	if (saved_stderr < 0 || dup2(fd, STDERR_FILENO) < 0)
		return -1;
	close(fd);
	return 0;
}

static int teardown(void)
{
	fflush(stderr);
	if (saved_stderr >= 0) {
		dup2(saved_stderr, STDERR_FILENO);
		close(saved_stderr);
	}
	unlink(path);
	return 0;
}

int main(void)
{
	log_init("test_tally", false, LOG_LVL_INFO);
	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	CU_pSuite s = CU_add_suite("tally", setup, teardown);
	CU_add_test(s, "one line per period with the count", test_counts_per_period);
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	unsigned fails = CU_get_number_of_failures();
	CU_cleanup_registry();
	return fails ? 1 : 0;
}
