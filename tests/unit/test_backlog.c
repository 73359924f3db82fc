#include <CUnit/Basic.h>

#include <math.h>
#include <string.h>

#include "backlog.h"
#include "stream.h"

/* Every upload stream has a count; a new stream without one fails here. */
static void test_count_every_stream(void)
{
	for (size_t i = 0; i < stream_count; i++) {
		const char *sql = backlog_count_sql(stream_defs[i].name);
		CU_ASSERT_PTR_NOT_NULL_FATAL(sql);
		CU_ASSERT_PTR_NOT_NULL(strstr(sql, "version > $1::bigint"));
		CU_ASSERT_PTR_NULL(strchr(sql, ';'));
	}
	CU_ASSERT_PTR_NULL(backlog_count_sql("no_such_stream"));
	CU_ASSERT_PTR_NULL(backlog_count_sql(""));
	CU_ASSERT_PTR_NULL(backlog_count_sql(NULL));
	/* Master-owned copies never go up, so they are no backlog. */
	CU_ASSERT_PTR_NOT_NULL(strstr(backlog_count_sql("policies"), "owner = 'local'"));
	CU_ASSERT_PTR_NOT_NULL(strstr(backlog_count_sql("tasks"), "owner = 'local'"));
}

static void test_rate(void)
{
	static const struct {
		int64_t rows, ms;
		double want;
	} cases[] = {
		{ 1000, 1000, 1000.0 }, { 1000, 4000, 250.0 }, { 0, 5000, 0.0 },
		{ 3, 2, 1500.0 },	{ 7, 1, 7000.0 },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		CU_ASSERT_DOUBLE_EQUAL(backlog_rate(cases[i].rows, cases[i].ms), cases[i].want,
				       1e-9);
	CU_ASSERT_DOUBLE_EQUAL(backlog_rate(10, 0), 10000.0, 1e-9);
	CU_ASSERT_DOUBLE_EQUAL(backlog_rate(0, 0), 0.0, 1e-9);
	CU_ASSERT_TRUE(isnan(backlog_rate(10, -5)));
	CU_ASSERT_TRUE(isnan(backlog_rate(-1, 1000)));
}

static void test_age(void)
{
	CU_ASSERT_DOUBLE_EQUAL(backlog_age(0, 1000.0, 400.0), 0.0, 1e-9);
	CU_ASSERT_DOUBLE_EQUAL(backlog_age(0, 1000.0, NAN), 0.0, 1e-9);
	CU_ASSERT_DOUBLE_EQUAL(backlog_age(5, 1000.0, 400.0), 600.0, 1e-9);
	/* A wall clock stepped back never gives a negative age. */
	CU_ASSERT_DOUBLE_EQUAL(backlog_age(5, 1000.0, 1200.0), 0.0, 1e-9);
	CU_ASSERT_TRUE(isnan(backlog_age(1, 1000.0, NAN)));
}

static void test_fresh(void)
{
	CU_ASSERT_FALSE(backlog_fresh(5000, 0, BACKLOG_CACHE_MS)); /* never counted */
	CU_ASSERT_TRUE(backlog_fresh(5000, 5000, BACKLOG_CACHE_MS));
	CU_ASSERT_TRUE(backlog_fresh(5000 + BACKLOG_CACHE_MS - 1, 5000, BACKLOG_CACHE_MS));
	CU_ASSERT_FALSE(backlog_fresh(5000 + BACKLOG_CACHE_MS, 5000, BACKLOG_CACHE_MS));
	CU_ASSERT_FALSE(backlog_fresh(4000, 5000, BACKLOG_CACHE_MS)); /* clock went back */
}

int main(void)
{
	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	CU_pSuite s = CU_add_suite("backlog", NULL, NULL);
	CU_add_test(s, "a count for every upload stream", test_count_every_stream);
	CU_add_test(s, "upload rate", test_rate);
	CU_add_test(s, "backlog age", test_age);
	CU_add_test(s, "cache freshness", test_fresh);
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	unsigned fails = CU_get_number_of_failures();
	CU_cleanup_registry();
	return fails ? 1 : 0;
}
