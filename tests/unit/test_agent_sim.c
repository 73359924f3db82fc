#include <CUnit/Basic.h>

#include <string.h>

#include "cli.h"
#include "sim.h"

static void test_sources(void)
{
	static const struct {
		const char *text;
		int rc;
		uint32_t first, count;
	} cases[] = {
		{ "127.0.0.2", 0, 0x7f000002u, 1 },
		{ "127.0.0.2-127.0.0.50", 0, 0x7f000002u, 49 },
		{ "127.0.0.255-127.0.1.1", 0, 0x7f0000ffu, 3 },
		{ "10.0.0.1-10.0.255.255", 0, 0x0a000001u, 65535 },
		{ "10.0.0.0-10.1.0.0", -1, 0, 0 },    /* 65537 addresses */
		{ "127.0.0.50-127.0.0.2", -1, 0, 0 }, /* reversed */
		{ "127.0.0.2-", -1, 0, 0 },
		{ "-127.0.0.2", -1, 0, 0 },
		{ "", -1, 0, 0 },
		{ "localhost", -1, 0, 0 },
		{ "::1", -1, 0, 0 },
		{ "127.0.0.256", -1, 0, 0 },
		{ "127.0.0.1-127.0.0.2-127.0.0.3", -1, 0, 0 },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct sim_sources s = { 0, 0 };
		char err[256] = "";
		int rc = sim_sources_parse(cases[i].text, &s, err, sizeof(err));
		CU_ASSERT_EQUAL(rc, cases[i].rc);
		if (rc == 0) {
			CU_ASSERT_EQUAL(s.first, cases[i].first);
			CU_ASSERT_EQUAL(s.count, cases[i].count);
		} else {
			CU_ASSERT(strstr(err, "--sources") != NULL);
		}
	}
}

static void test_sources_round_robin(void)
{
	struct sim_sources s = { 0x7f000002u, 3 };
	static const uint32_t want[] = { 0x7f000002u, 0x7f000003u, 0x7f000004u, 0x7f000002u,
					 0x7f000003u };
	for (uint64_t i = 0; i < 5; i++)
		CU_ASSERT_EQUAL(sim_sources_at(&s, i), want[i]);
	CU_ASSERT_EQUAL(sim_sources_at(&s, 3000000001ull), 0x7f000003u); /* 3e9 + 1 */
}

static void test_default_procs(void)
{
	static const int cases[][2] = { { 1, 1 },     { 14999, 1 }, { 15000, 1 },
					{ 15001, 2 }, { 50000, 4 }, { 60000, 4 } };
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		CU_ASSERT_EQUAL(sim_default_procs(cases[i][0]), cases[i][1]);
}

/* Every agent lands in exactly one share, in order, and shares differ by at most one. */
static void test_share(void)
{
	static const int cases[][2] = { { 50000, 4 }, { 10, 3 },    { 7, 7 },
					{ 1, 1 },     { 15001, 2 }, { 2000000, 1000 } };
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int n = cases[i][0], procs = cases[i][1], next = 0, min = n, max = 0;
		for (int p = 0; p < procs; p++) {
			int start, count;
			sim_share(n, procs, p, &start, &count);
			CU_ASSERT_EQUAL(start, next);
			next = start + count;
			min = count < min ? count : min;
			max = count > max ? count : max;
		}
		CU_ASSERT_EQUAL(next, n);
		CU_ASSERT(max - min <= 1);
	}
	int start, count;
	sim_share(10, 3, 0, &start, &count);
	CU_ASSERT(start == 0 && count == 3);
	sim_share(10, 3, 2, &start, &count);
	CU_ASSERT(start == 6 && count == 4);
}

/* Event numbers: in-order acks, refused acks, the pending range kept across a close. */
static void test_evseq(void)
{
	struct sim_evseq s = { 0, 0 };
	uint32_t from = 99, to = 99;
	CU_ASSERT_EQUAL(sim_evseq_ack(&s, 1), -1); /* nothing sent yet */
	CU_ASSERT_EQUAL(sim_evseq_pending(&s, &from, &to), 0);
	CU_ASSERT_EQUAL(from, 99);
	CU_ASSERT_EQUAL(sim_evseq_next(&s), 1);
	CU_ASSERT_EQUAL(sim_evseq_next(&s), 2);
	CU_ASSERT_EQUAL(sim_evseq_next(&s), 3);
	CU_ASSERT_EQUAL(sim_evseq_ack(&s, 2), -1); /* out of order */
	CU_ASSERT_EQUAL(sim_evseq_ack(&s, 0), -1);
	CU_ASSERT_EQUAL(sim_evseq_ack(&s, 1), 0);
	CU_ASSERT_EQUAL(sim_evseq_ack(&s, 1), -1); /* twice */
	CU_ASSERT_EQUAL(s.acked, 1);
	/* The connection closes: 2..3 stay pending, asking twice changes nothing. */
	CU_ASSERT_EQUAL(sim_evseq_pending(&s, &from, &to), 2);
	CU_ASSERT_EQUAL(from, 2);
	CU_ASSERT_EQUAL(to, 3);
	CU_ASSERT_EQUAL(sim_evseq_pending(&s, &from, &to), 2);
	CU_ASSERT(from == 2 && to == 3);
	/* Resent after the reconnect, acknowledged in order; new events continue after 3. */
	CU_ASSERT_EQUAL(sim_evseq_ack(&s, 2), 0);
	CU_ASSERT_EQUAL(sim_evseq_next(&s), 4);
	CU_ASSERT_EQUAL(sim_evseq_ack(&s, 4), -1); /* 3 first */
	CU_ASSERT_EQUAL(sim_evseq_ack(&s, 3), 0);
	CU_ASSERT_EQUAL(sim_evseq_ack(&s, 4), 0);
	CU_ASSERT_EQUAL(sim_evseq_ack(&s, 5), -1); /* not sent */
	CU_ASSERT_EQUAL(sim_evseq_pending(&s, &from, &to), 0);
}

/* At most SIM_EV_WINDOW events wait for their ack; one ack makes room for one more. */
static void test_evseq_window(void)
{
	struct sim_evseq s = { 0, 0 };
	uint32_t from = 0, to = 0;
	for (uint32_t i = 1; i <= SIM_EV_WINDOW; i++)
		CU_ASSERT_EQUAL(sim_evseq_next(&s), i);
	CU_ASSERT_EQUAL(sim_evseq_next(&s), 0);
	CU_ASSERT_EQUAL(sim_evseq_next(&s), 0);
	CU_ASSERT_EQUAL(s.sent, SIM_EV_WINDOW);
	CU_ASSERT_EQUAL(sim_evseq_pending(&s, &from, &to), SIM_EV_WINDOW);
	CU_ASSERT(from == 1 && to == SIM_EV_WINDOW);
	CU_ASSERT_EQUAL(sim_evseq_ack(&s, 1), 0);
	CU_ASSERT_EQUAL(sim_evseq_next(&s), SIM_EV_WINDOW + 1);
	CU_ASSERT_EQUAL(sim_evseq_next(&s), 0);
	CU_ASSERT_EQUAL(sim_evseq_pending(&s, &from, &to), SIM_EV_WINDOW);
	CU_ASSERT(from == 2 && to == SIM_EV_WINDOW + 1);
}

/* occurred_at: base + (seq - 1) minute / per_min, in milliseconds, the same every time. */
static void test_event_time(void)
{
	static const struct {
		int64_t base_ms;
		int per_min;
		uint32_t seq;
		const char *want;
	} cases[] = {
		{ 1795353000123LL, 1, 1, "2026-11-22T13:10:00.123Z" },
		{ 1795353000123LL, 1, 2, "2026-11-22T13:11:00.123Z" },
		{ 1795353000123LL, 600, 11, "2026-11-22T13:10:01.123Z" },
		{ 1795353000999LL, 7, 2, "2026-11-22T13:10:09.570Z" }, /* 8571 ms later */
		{ 1795353000000LL, 0, 3, "2026-11-22T13:12:00.000Z" }, /* 0: as 1 a minute */
		{ 1795353000000LL, 1, 0, "2026-11-22T13:10:00.000Z" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char a[40] = "", b[40] = "";
		CU_ASSERT_EQUAL(
		    sim_event_time(cases[i].base_ms, cases[i].per_min, cases[i].seq, a, sizeof(a)),
		    0);
		CU_ASSERT_STRING_EQUAL(a, cases[i].want);
		CU_ASSERT_EQUAL(
		    sim_event_time(cases[i].base_ms, cases[i].per_min, cases[i].seq, b, sizeof(b)),
		    0);
		CU_ASSERT_STRING_EQUAL(a, b);
	}
	char small[20];
	CU_ASSERT_EQUAL(sim_event_time(1795353000000LL, 1, 1, small, sizeof(small)), -1);
}

/* The rate: count * per_min events a minute, fractions carried, nothing when per_min is 0. */
static void test_events_due(void)
{
	double credit = 0;
	long total = 0;
	for (int t = 0; t < 6000; t++) /* one minute of 10 ms ticks */
		total += sim_events_due(&credit, 1000, 3, 10);
	CU_ASSERT(total >= 2999 && total <= 3000);
	CU_ASSERT(credit >= 0 && credit < 1);
	credit = 0;
	CU_ASSERT_EQUAL(sim_events_due(&credit, 10, 1, 10), 0);
	CU_ASSERT(credit > 0);
	credit = 0;
	CU_ASSERT_EQUAL(sim_events_due(&credit, 100000, 0, 10), 0);
	CU_ASSERT_EQUAL(sim_events_due(&credit, 60000, 60, 1000), 60000);
}

static void test_cli(void)
{
	struct acli o;
	char err[256];
	char *ok_run[] = { "a",	     "-s",	"/d",	      "--simulate", "50000",
			   "run",    "--procs", "4",	      "--sources",  "127.0.0.2-127.0.0.9",
			   "--rate", "500",	"--duration", "60",	    "--fast-heartbeat",
			   "3" };
	CU_ASSERT_EQUAL(acli_parse(16, ok_run, &o, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(o.simulate, 50000);
	CU_ASSERT_EQUAL(o.procs, 4);
	CU_ASSERT_EQUAL(o.rate, 500);
	CU_ASSERT_EQUAL(o.duration, 60);
	CU_ASSERT_EQUAL(o.fast_heartbeat, 3);
	CU_ASSERT_STRING_EQUAL(o.sources, "127.0.0.2-127.0.0.9");

	char *ok_enrol[] = { "a",	 "-s",	   "/d",      "--simulate", "10",	  "enrol",
			     "--server", "h:7074", "--token", "t",	    "--inflight", "32" };
	CU_ASSERT_EQUAL(acli_parse(12, ok_enrol, &o, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(o.cmd, ACLI_ENROL);
	CU_ASSERT_EQUAL(o.inflight, 32);
	CU_ASSERT_STRING_EQUAL(o.host, "h");

	/* Refused: zero agents, a run-only option on enrol, simulator options without --simulate.
	 */
	char *bad1[] = { "a", "-s", "/d", "--simulate", "0", "run" };
	char *bad2[] = { "a",	     "-s",  "/d",      "--simulate", "5",      "enrol",
			 "--server", "h:1", "--token", "t",	     "--rate", "10" };
	char *bad3[] = { "a", "-s", "/d", "run", "--procs", "2" };
	char *bad4[] = { "a", "-s", "/d", "--simulate", "5", "run", "--procs", "0" };
	char *bad5[] = { "a",	     "-s",  "/d",      "--simulate", "5",      "enrol",
			 "--server", "h:1", "--token", "t",	     "--mode", "poll" };
	CU_ASSERT_EQUAL(acli_parse(6, bad1, &o, err, sizeof(err)), -1);
	CU_ASSERT_EQUAL(acli_parse(12, bad2, &o, err, sizeof(err)), -1);
	CU_ASSERT_EQUAL(acli_parse(6, bad3, &o, err, sizeof(err)), -1);
	CU_ASSERT_EQUAL(acli_parse(8, bad4, &o, err, sizeof(err)), -1);
	CU_ASSERT(strstr(err, "--procs") != NULL);
	CU_ASSERT_EQUAL(acli_parse(12, bad5, &o, err, sizeof(err)), -1);

	char *ev_ok[] = { "a", "-s", "/d", "--simulate", "5", "run", "--events-per-min", "6" };
	char *ev_big[] = { "a", "-s", "/d", "--simulate", "5", "run", "--events-per-min", "601" };
	char *ev_enrol[] = { "a",   "-s",      "/d", "--simulate",	 "5", "enrol", "--server",
			     "h:1", "--token", "t",  "--events-per-min", "1" };
	CU_ASSERT_EQUAL(acli_parse(8, ev_ok, &o, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(o.events_per_min, 6);
	CU_ASSERT_EQUAL(acli_parse(8, ev_big, &o, err, sizeof(err)), -1);
	CU_ASSERT(strstr(err, "--events-per-min") != NULL);
	CU_ASSERT_EQUAL(acli_parse(12, ev_enrol, &o, err, sizeof(err)), -1);
}

int main(void)
{
	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	CU_pSuite s = CU_add_suite("agent_sim", NULL, NULL);
	CU_add_test(s, "source address ranges", test_sources);
	CU_add_test(s, "source addresses round-robin", test_sources_round_robin);
	CU_add_test(s, "processes by default", test_default_procs);
	CU_add_test(s, "shares of the agents", test_share);
	CU_add_test(s, "event numbers and acks", test_evseq);
	CU_add_test(s, "pending events at most a window", test_evseq_window);
	CU_add_test(s, "event times", test_event_time);
	CU_add_test(s, "events due per tick", test_events_due);
	CU_add_test(s, "simulator command lines", test_cli);
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	unsigned failures = CU_get_number_of_failures();
	CU_cleanup_registry();
	return failures > 0 ? 1 : 0;
}
