/* metrics: the Prometheus text format, its escapes and its numbers. */
#include <CUnit/Basic.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "metrics.h"

/* The buffer's text, malloc'd; the buffer is freed. */
static char *text_of(struct evbuffer *b)
{
	size_t n = evbuffer_get_length(b);
	char *s = malloc(n + 1);
	evbuffer_remove(b, s, n);
	s[n] = '\0';
	evbuffer_free(b);
	return s;
}

static void test_family_and_samples(void)
{
	struct evbuffer *b = evbuffer_new();
	metrics_family(b, "strata_x_total", METRICS_COUNTER, "Things counted.");
	metrics_sample(b, "strata_x_total", 3, NULL);
	metrics_sample(b, "strata_x_total", 4, "slave", "paris", "status", "online", NULL);
	metrics_family(b, "strata_y", METRICS_GAUGE, "A level.");
	metrics_sample(b, "strata_y", 0.25, NULL);
	char *s = text_of(b);
	CU_ASSERT_STRING_EQUAL(s, "# HELP strata_x_total Things counted.\n"
				  "# TYPE strata_x_total counter\n"
				  "strata_x_total 3\n"
				  "strata_x_total{slave=\"paris\",status=\"online\"} 4\n"
				  "# HELP strata_y A level.\n"
				  "# TYPE strata_y gauge\n"
				  "strata_y 0.25\n");
	free(s);
}

static void test_label_escapes(void)
{
	struct evbuffer *b = evbuffer_new();
	metrics_sample(b, "m", 1, "slave", "a\"b\\c\nd", "empty", NULL, NULL);
	char *s = text_of(b);
	CU_ASSERT_STRING_EQUAL(s, "m{slave=\"a\\\"b\\\\c\\nd\",empty=\"\"} 1\n");
	free(s);
}

static void test_help_escapes(void)
{
	struct evbuffer *b = evbuffer_new();
	/* In HELP a quote stays as it is; backslash and newline are escaped. */
	metrics_family(b, "m", METRICS_GAUGE, "say \"hi\"\\\nnext");
	char *s = text_of(b);
	CU_ASSERT_STRING_EQUAL(s, "# HELP m say \"hi\"\\\\\\nnext\n# TYPE m gauge\n");
	free(s);
}

static void test_values(void)
{
	static const struct {
		double v;
		const char *want;
	} cases[] = {
		{ 0, "m 0\n" },
		{ -7, "m -7\n" },
		{ 1234567890123.0, "m 1234567890123\n" },
		{ 1.5, "m 1.5\n" },
		{ 1e300, "m 1.0000000000000001e+300\n" },
		{ NAN, "m NaN\n" },
		{ INFINITY, "m +Inf\n" },
		{ -INFINITY, "m -Inf\n" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct evbuffer *b = evbuffer_new();
		metrics_sample(b, "m", cases[i].v, NULL);
		char *s = text_of(b);
		if (strcmp(s, cases[i].want) != 0)
			fprintf(stderr, "\nvalue %zu: got \"%s\"\n", i, s);
		CU_ASSERT_STRING_EQUAL(s, cases[i].want);
		free(s);
	}
}

int main(void)
{
	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	CU_pSuite s = CU_add_suite("metrics", NULL, NULL);
	CU_add_test(s, "families and samples", test_family_and_samples);
	CU_add_test(s, "label values are escaped", test_label_escapes);
	CU_add_test(s, "HELP text is escaped", test_help_escapes);
	CU_add_test(s, "numbers, NaN and infinities", test_values);
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	unsigned fails = CU_get_number_of_failures();
	CU_cleanup_registry();
	return fails ? 1 : 0;
}
