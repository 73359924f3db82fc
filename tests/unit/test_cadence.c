#include <CUnit/Basic.h>

#include "cadence.h"

static void test_jitter_bounds(void)
{
	static const struct {
		int interval, pct;
		uint32_t r;
		int want;
	} cases[] = {
		{ 1800, 0, 12345, 1800 },  /* no jitter */
		{ 1800, 10, 0, 1620 },	   /* r = 0: the low end */
		{ 1800, 10, 180, 1800 },   /* the middle */
		{ 1800, 10, 360, 1980 },   /* the high end */
		{ 1800, 10, 361, 1620 },   /* wraps */
		{ 10, 50, 0, 5 },
		{ 10, 50, 10, 15 },
		{ 604800, 50, 604800, 907200 },
		{ 1, 50, 0, 1 },	   /* never below 1 s */
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		CU_ASSERT_EQUAL(cadence_jitter(cases[i].interval, cases[i].pct, cases[i].r),
				cases[i].want);
}

static void test_jitter_spread(void)
{
	/* Every r lands inside the window, and both ends are reached. */
	int lo = 1 << 30, hi = 0;
	for (uint32_t r = 0; r < 5000; r++) {
		int d = cadence_jitter(1800, 10, r * 2654435761u);
		CU_ASSERT(d >= 1620 && d <= 1980);
		lo = d < lo ? d : lo;
		hi = d > hi ? d : hi;
	}
	CU_ASSERT_EQUAL(lo, 1620);
	CU_ASSERT_EQUAL(hi, 1980);
}

static void test_backoff_sequence(void)
{
	static const int want[] = { 10, 20, 40, 80, 160, 320, 600, 600, 600 };
	int d = 0;
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		d = cadence_backoff(d, 10, 600, 1800);
		CU_ASSERT_EQUAL(d, want[i]);
	}
	/* Capped by the interval when that is shorter than retry-max. */
	CU_ASSERT_EQUAL(cadence_backoff(0, 10, 600, 30), 10);
	CU_ASSERT_EQUAL(cadence_backoff(20, 10, 600, 30), 30);
	CU_ASSERT_EQUAL(cadence_backoff(30, 10, 600, 30), 30);
	/* After a success the next failure starts over at retry-min. */
	CU_ASSERT_EQUAL(cadence_backoff(0, 1, 5, 1800), 1);
	/* No overflow from a huge previous delay. */
	CU_ASSERT_EQUAL(cadence_backoff(2000000000, 1, 86400, 604800), 86400);
}

int main(void)
{
	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	CU_pSuite s = CU_add_suite("cadence", NULL, NULL);
	CU_add_test(s, "jitter table", test_jitter_bounds);
	CU_add_test(s, "jitter covers its window", test_jitter_spread);
	CU_add_test(s, "backoff doubles up to its caps", test_backoff_sequence);
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	unsigned fails = CU_get_number_of_failures();
	CU_cleanup_registry();
	return fails ? 1 : 0;
}
