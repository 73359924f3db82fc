/*
 * The agent's choice of push server: A_REDIRECT, the fallback to the
 * slave after a failed attempt at the assigned push server, the redirect
 * loop guard, and the retry delays.
 */
#include <CUnit/Basic.h>

#include <string.h>

#include "route.h"

/* One step of a scenario: an event at the current target, then what must hold. */
enum ev {
	EV_END,
	EV_REDIRECT,   /* A_REDIRECT followed */
	EV_LOOP,       /* A_REDIRECT refused as a loop */
	EV_FAIL,       /* the attempt failed before A_AUTH_OK */
	EV_AUTH,       /* A_AUTH_OK, the assignment kept */
	EV_AUTH_STALE, /* A_AUTH_OK at the origin, the assignment forgotten */
};

struct step {
	enum ev ev;
	enum aroute_target next; /* aroute_target afterwards */
};

#define O AROUTE_ORIGIN
#define A AROUTE_ASSIGNED

static const struct {
	const char *name;
	bool assigned; /* push.json was loaded at start */
	struct step steps[16];
} scenarios[] = {
	{ "never redirected: always the origin",
	  false,
	  { { EV_AUTH, O }, { EV_FAIL, O }, { EV_FAIL, O }, { EV_AUTH, O } } },
	{ "redirected once, then kept",
	  false,
	  { { EV_REDIRECT, A },
	    { EV_AUTH, A },
	    { EV_FAIL, O },
	    { EV_REDIRECT, A },
	    { EV_AUTH, A } } },
	{ "stored at start: the assigned one first", true, { { EV_AUTH, A }, { EV_AUTH, A } } },
	{ "assigned one dead: the origin routes again",
	  true,
	  { { EV_FAIL, O }, { EV_REDIRECT, A }, { EV_AUTH, A } } },
	{ "origin unreachable too: alternate",
	  true,
	  { { EV_FAIL, O }, { EV_FAIL, A }, { EV_FAIL, O }, { EV_FAIL, A } } },
	{ "origin takes the agent itself: assignment forgotten",
	  true,
	  { { EV_FAIL, O }, { EV_AUTH_STALE, O }, { EV_FAIL, O }, { EV_AUTH, O } } },
	{ "five redirects in a row are followed, the sixth is a loop",
	  false,
	  { { EV_REDIRECT, A },
	    { EV_REDIRECT, A },
	    { EV_REDIRECT, A },
	    { EV_REDIRECT, A },
	    { EV_REDIRECT, A },
	    { EV_LOOP, A },
	    { EV_FAIL, O },
	    /* counting starts again after the failed attempt */
	    { EV_REDIRECT, A },
	    { EV_REDIRECT, A },
	    { EV_REDIRECT, A },
	    { EV_REDIRECT, A },
	    { EV_REDIRECT, A },
	    { EV_AUTH, A } } },
	{ "an A_AUTH_OK between redirects resets the count",
	  false,
	  { { EV_REDIRECT, A },
	    { EV_REDIRECT, A },
	    { EV_REDIRECT, A },
	    { EV_REDIRECT, A },
	    { EV_AUTH, A },
	    { EV_FAIL, O },
	    { EV_REDIRECT, A },
	    { EV_REDIRECT, A },
	    { EV_REDIRECT, A },
	    { EV_REDIRECT, A },
	    { EV_REDIRECT, A },
	    { EV_LOOP, A } } },
	{ "a failed attempt between redirects resets the count",
	  false,
	  { { EV_REDIRECT, A },
	    { EV_REDIRECT, A },
	    { EV_REDIRECT, A },
	    { EV_FAIL, O },
	    { EV_REDIRECT, A },
	    { EV_REDIRECT, A },
	    { EV_REDIRECT, A },
	    { EV_REDIRECT, A },
	    { EV_REDIRECT, A },
	    { EV_LOOP, A } } },
};

static void test_scenarios(void)
{
	for (size_t i = 0; i < sizeof(scenarios) / sizeof(scenarios[0]); i++) {
		struct aroute r = { .assigned = scenarios[i].assigned };
		for (size_t j = 0; scenarios[i].steps[j].ev != EV_END; j++) {
			const struct step *s = &scenarios[i].steps[j];
			enum aroute_target at = aroute_target(&r);
			bool ok = true;
			switch (s->ev) {
			case EV_REDIRECT:
				ok = aroute_redirected(&r) == AROUTE_FOLLOW;
				break;
			case EV_LOOP:
				ok = aroute_redirected(&r) == AROUTE_LOOP;
				break;
			case EV_FAIL:
				aroute_failed(&r, at);
				break;
			case EV_AUTH:
				ok = !aroute_authed(&r, at);
				break;
			case EV_AUTH_STALE:
				ok = aroute_authed(&r, at);
				break;
			case EV_END:
				break;
			}
			if (!ok || aroute_target(&r) != s->next)
				fprintf(stderr, "\n%s: step %zu\n", scenarios[i].name, j);
			CU_ASSERT(ok);
			CU_ASSERT_EQUAL(aroute_target(&r), s->next);
		}
	}
}

static void test_retry_delay(void)
{
	static const struct {
		int previous, retry_max, cap;
		uint32_t rnd;
		int want;
	} cases[] = {
		{ 0, 60, 60, 0, 1 }, /* after a success: the low end */
		{ 0, 60, 60, 4, 5 }, /* the high end */
		{ 0, 60, 60, 5, 1 }, /* wraps */
		{ 0, 60, 60, 4000000002u, 3 },
		{ 0, 60, 3, 4, 3 },  /* a poll interval below 5 s caps it */
		{ 3, 60, 60, 4, 6 }, /* then doubling from the first delay */
		{ 5, 60, 60, 0, 10 },
		{ 40, 60, 60, 0, 60 }, /* up to retry-max */
		{ 60, 60, 60, 0, 60 },
		{ 20, 60, 30, 0, 30 }, /* and never above the poll interval */
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		CU_ASSERT_EQUAL(aroute_retry_delay(cases[i].previous, cases[i].retry_max,
						   cases[i].cap, cases[i].rnd),
				cases[i].want);
	/* Every random value stays within 1..5 s and both ends are reached. */
	int lo = 100, hi = 0;
	for (uint32_t r = 0; r < 1000; r++) {
		int d = aroute_retry_delay(0, 60, 60, r * 2654435761u);
		CU_ASSERT(d >= AROUTE_FIRST_RETRY_MIN && d <= AROUTE_FIRST_RETRY_MAX);
		lo = d < lo ? d : lo;
		hi = d > hi ? d : hi;
	}
	CU_ASSERT_EQUAL(lo, 1);
	CU_ASSERT_EQUAL(hi, 5);
}

int main(void)
{
	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	CU_pSuite s = CU_add_suite("agent_route", NULL, NULL);
	CU_add_test(s, "redirect, fallback and loop scenarios", test_scenarios);
	CU_add_test(s, "retry delays", test_retry_delay);
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	unsigned failures = CU_get_number_of_failures();
	CU_cleanup_registry();
	return failures > 0;
}
