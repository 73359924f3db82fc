/* faultpoint: parsing STRATA_FAULTPOINT and counting passes (the kill itself is exercised by
 * integration/test_faults_kill). */
#include <CUnit/Basic.h>

#include <stdlib.h>
#include <string.h>

#include "faultpoint.h"

static int init_with(const char *value, char *err, size_t errlen)
{
	if (value)
		setenv("STRATA_FAULTPOINT", value, 1);
	else
		unsetenv("STRATA_FAULTPOINT");
	err[0] = '\0';
	return faultpoint_init(err, errlen);
}

static void test_unset_is_inert(void)
{
	char err[256];
	CU_ASSERT_EQUAL(init_with(NULL, err, sizeof(err)), 0);
	CU_ASSERT_FALSE(faultpoint_armed);
	CU_ASSERT_EQUAL(init_with("", err, sizeof(err)), 0);
	CU_ASSERT_FALSE(faultpoint_armed);
	for (int i = 0; i < 3; i++)
		CU_ASSERT_FALSE(faultpoint_due("master.batch.committed"));
	/* The macro passes without killing. */
	FAULTPOINT("master.batch.committed");
}

static void test_refused(void)
{
	static const struct {
		const char *value, *says;
	} cases[] = {
		{ "no.such.point", "unknown point 'no.such.point'" },
		{ "master.batch", "unknown point 'master.batch'" },
		{ "master.batch.committed.x", "unknown point" },
		{ ":2", "unknown point ''" },
		{ "master.batch.committed:", "is not a pass number" },
		{ "master.batch.committed:0", "'0' is not a pass number" },
		{ "master.batch.committed:-1", "is not a pass number" },
		{ "master.batch.committed:2x", "'2x' is not a pass number" },
		{ "master.batch.committed:99999999999999999999", "is not a pass number" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char err[256];
		CU_ASSERT_EQUAL(init_with(cases[i].value, err, sizeof(err)), -1);
		CU_ASSERT_FALSE(faultpoint_armed);
		CU_ASSERT_PTR_NOT_NULL(strstr(err, cases[i].says));
		CU_ASSERT_PTR_NOT_NULL(strstr(err, "STRATA_FAULTPOINT"));
	}
}

static void test_nth_pass(void)
{
	char err[256];
	CU_ASSERT_EQUAL_FATAL(init_with("slave.ack.received:3", err, sizeof(err)), 0);
	CU_ASSERT_TRUE(faultpoint_armed);
	CU_ASSERT_FALSE(faultpoint_due("master.batch.committed"));
	CU_ASSERT_FALSE(faultpoint_due("slave.ack.received"));
	CU_ASSERT_FALSE(faultpoint_due("slave.ack.received"));
	CU_ASSERT_FALSE(faultpoint_due("slave.session.end"));
	CU_ASSERT_TRUE(faultpoint_due("slave.ack.received"));
	/* Once only. */
	CU_ASSERT_FALSE(faultpoint_due("slave.ack.received"));

	CU_ASSERT_EQUAL_FATAL(init_with("slave.session.end", err, sizeof(err)), 0);
	CU_ASSERT_TRUE(faultpoint_due("slave.session.end"));
	CU_ASSERT_FALSE(faultpoint_due("slave.session.end"));
}

static void test_every_name_accepted(void)
{
	char err[256];
	size_t n = 0;
	for (; faultpoint_names[n]; n++) {
		CU_ASSERT_EQUAL(init_with(faultpoint_names[n], err, sizeof(err)), 0);
		CU_ASSERT_TRUE(faultpoint_due(faultpoint_names[n]));
	}
	CU_ASSERT_TRUE(n >= 11);
	unsetenv("STRATA_FAULTPOINT");
}

int main(void)
{
	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	CU_pSuite s = CU_add_suite("faultpoint", NULL, NULL);
	CU_add_test(s, "unset: inert", test_unset_is_inert);
	CU_add_test(s, "malformed or unknown: refused", test_refused);
	CU_add_test(s, "the n-th pass, once", test_nth_pass);
	CU_add_test(s, "every listed name", test_every_name_accepted);
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	unsigned fails = CU_get_number_of_failures();
	CU_cleanup_registry();
	return fails ? 1 : 0;
}
