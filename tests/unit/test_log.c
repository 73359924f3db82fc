#include <CUnit/Basic.h>

#include "log.h"

static void test_level_parse(void)
{
	static const struct {
		const char *name;
		int ok;
		enum log_level level;
	} cases[] = {
		{ "error", 0, LOG_LVL_ERROR }, { "warn", 0, LOG_LVL_WARN },
		{ "notice", 0, LOG_LVL_NOTICE }, { "info", 0, LOG_LVL_INFO },
		{ "debug", 0, LOG_LVL_DEBUG }, { "DEBUG", -1, 0 }, { "", -1, 0 }, { "trace", -1, 0 },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		enum log_level lvl = LOG_LVL_ERROR;
		CU_ASSERT_EQUAL(log_level_parse(cases[i].name, &lvl), cases[i].ok);
		if (cases[i].ok == 0) {
			CU_ASSERT_EQUAL(lvl, cases[i].level);
			CU_ASSERT_STRING_EQUAL(log_level_name(lvl), cases[i].name);
		}
	}
}

static void test_enabled(void)
{
	log_init("test", false, LOG_LVL_NOTICE);
	CU_ASSERT_TRUE(log_enabled(LOG_LVL_ERROR));
	CU_ASSERT_TRUE(log_enabled(LOG_LVL_NOTICE));
	CU_ASSERT_FALSE(log_enabled(LOG_LVL_INFO));
	log_set_level(LOG_LVL_DEBUG);
	CU_ASSERT_TRUE(log_enabled(LOG_LVL_DEBUG));
}

int main(void)
{
	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	CU_pSuite s = CU_add_suite("log", NULL, NULL);
	CU_add_test(s, "level names parse and print", test_level_parse);
	CU_add_test(s, "level filter", test_enabled);
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	unsigned fails = CU_get_number_of_failures();
	CU_cleanup_registry();
	return fails ? 1 : 0;
}
