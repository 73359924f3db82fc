#include <CUnit/Basic.h>
#include <string.h>

#include "counts.h"
#include "stream.h"

static void test_utc_day(void)
{
	static const struct {
		const char *ts, *day; /* day NULL: refused */
	} cases[] = {
		{ "2026-11-22 09:01:02+00", "2026-11-22" },
		{ "2026-11-22 09:01:02.123456+00", "2026-11-22" },
		{ "2026-11-22 23:30:00-02", "2026-11-23" },
		{ "2026-11-22 01:30:00+05:30", "2026-11-21" },
		{ "2026-12-31 23:59:59.9-01", "2027-01-01" },
		{ "2024-03-01 00:10:00+01", "2024-02-29" },
		{ "2026-01-01 00:00:00+00:00:30", "2025-12-31" },
		{ "2026-11-22T09:01:02+00", NULL },
		{ "2026-11-22 09:01:02", NULL },
		{ "2026-13-22 09:01:02+00", NULL },
		{ "2026-11-22 09:01:02+0", NULL },
		{ "2026-11-22 09:01:02+00 ", NULL },
		{ "infinity", NULL },
		{ "", NULL },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char day[11] = "";
		int rc = counts_utc_day(cases[i].ts, strlen(cases[i].ts), day);
		if (cases[i].day) {
			CU_ASSERT_EQUAL(rc, 0);
			CU_ASSERT_STRING_EQUAL(day, cases[i].day);
		} else {
			CU_ASSERT_EQUAL(rc, -1);
		}
	}
}

static const struct stream_def *def(const char *name)
{
	const struct stream_def *sd = stream_find(name);
	CU_ASSERT_PTR_NOT_NULL_FATAL(sd);
	return sd;
}

static void test_parse(void)
{
	struct batch_counts *c = NULL;
	/* events: id, endpoint_id, kind, severity, occurred_at, details, version */
	static const char events[] =
	    "1\t5\tdetection\thigh\t2026-11-22 10:00:00+00\t{}\t11\n"
	    "2\t5\tdetection\thigh\t2026-11-22 11:00:00+00\t{}\t12\n"
	    "3\t\\N\tst\\tatus\tinfo\t2026-11-22 23:30:00-02\t{\"a\": \"\\\\x\"}\t13\n";
	CU_ASSERT_EQUAL(counts_parse(def("events"), events, strlen(events), &c), COUNTS_OK);
	/* Two on one day, kind and severity; the escaped kind on the next UTC day. */
	CU_ASSERT_EQUAL(counts_rows(c), 3);
	CU_ASSERT_EQUAL(counts_keys(c), 2);
	counts_free(c);

	/* A row with a field missing, or a time that cannot be read: the parent counts. */
	static const char short_row[] = "1\t5\tdetection\thigh\t2026-11-22 10:00:00+00\t{}\n";
	CU_ASSERT_EQUAL(counts_parse(def("events"), short_row, strlen(short_row), &c),
			COUNTS_UNREADABLE);
	CU_ASSERT_PTR_NULL(c);
	static const char bad_time[] = "1\t5\tdetection\thigh\tyesterday\t{}\t11\n";
	CU_ASSERT_EQUAL(counts_parse(def("events"), bad_time, strlen(bad_time), &c),
			COUNTS_UNREADABLE);
	static const char null_kind[] = "1\t5\t\\N\thigh\t2026-11-22 10:00:00+00\t{}\t11\n";
	CU_ASSERT_EQUAL(counts_parse(def("events"), null_kind, strlen(null_kind), &c),
			COUNTS_UNREADABLE);

	/* Streams without counters. */
	static const char group[] = "1\t\\N\tg\t/g\t2026-11-22 10:00:00+00\t1\n";
	CU_ASSERT_EQUAL(counts_parse(def("groups"), group, strlen(group), &c), COUNTS_NONE);

	/* task_results: master_task_id may be NULL; task_id may not. */
	static const char results[] = "7\t1\tsucceeded\t{}\t2026-11-22 10:00:00+00\t\\N\t3\n"
				      "7\t2\tsucceeded\t{}\t2026-11-22 10:00:00+00\t\\N\t4\n"
				      "8\t2\tfailed\t{}\t2026-11-22 10:00:00+00\t42\t5\n";
	CU_ASSERT_EQUAL(counts_parse(def("task_results"), results, strlen(results), &c), COUNTS_OK);
	CU_ASSERT_EQUAL(counts_rows(c), 3);
	CU_ASSERT_EQUAL(counts_keys(c), 2);
	counts_free(c);
	/* endpoints: the key is status and whether policy_version = policy_target. */
	static const char eps[] =
	    "1\tu1\th1\t\\N\tos\t1\t10.0.0.1\tpush\tonline\t\\N\t2026-11-22 10:00:00+00\t5\t5\t9\n"
	    "2\tu2\th2\t\\N\tos\t1\t10.0.0.2\tpush\tonline\t\\N\t2026-11-22 10:00:00+00\t4\t5\t10\n"
	    "3\tu3\th3\t\\N\tos\t1\t10.0.0.3\tpush\tonline\t\\N\t2026-11-22 "
	    "10:00:00+00\t5\t5\t11\n";
	CU_ASSERT_EQUAL(counts_parse(def("endpoints"), eps, strlen(eps), &c), COUNTS_OK);
	CU_ASSERT_EQUAL(counts_rows(c), 3);
	CU_ASSERT_EQUAL(counts_keys(c), 2);
	counts_free(c);
	static const char no_task[] = "\\N\t1\tsucceeded\t{}\t2026-11-22 10:00:00+00\t\\N\t3\n";
	CU_ASSERT_EQUAL(counts_parse(def("task_results"), no_task, strlen(no_task), &c),
			COUNTS_UNREADABLE);
}

static void test_partition_copy(void)
{
	char sql[512];
	CU_ASSERT_EQUAL(counts_partition_copy(def("events"), 12, sql, sizeof(sql)), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(sql, "COPY events_s12 ("));
	CU_ASSERT_PTR_NOT_NULL(strstr(sql, ") FROM STDIN"));
	CU_ASSERT_EQUAL(counts_partition_copy(def("events"), 12, sql, 10), -1);
}

int main(void)
{
	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	CU_pSuite s = CU_add_suite("counts", NULL, NULL);
	CU_add_test(s, "UTC day of a timestamptz text", test_utc_day);
	CU_add_test(s, "a batch counted from its COPY text", test_parse);
	CU_add_test(s, "the copy into the slave's partition", test_partition_copy);
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	unsigned failed = CU_get_number_of_failures();
	CU_cleanup_registry();
	return failed ? 1 : 0;
}
