/*
 * The memory an idle chan adds to its bufferevent, and the limits on the
 * two strings it keeps. A push server holds tens of thousands of idle
 * chans, so their size is part of the contract (bench/chanmem.sh measures
 * the whole connection).
 */
#include <CUnit/Basic.h>
#include <malloc.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/bufferevent.h>
#include <event2/event.h>

#include "chan.h"

#define NCHANS	     64
#define DEADLINE_SEC 20
/*
 * Bytes a chan may allocate while idle: its struct with a "a.b.c.d:port"
 * peer and the reaper event, about 250 bytes. The fixed 96-byte peer,
 * 256-byte reason and the second timer made it over 700; the bound sits
 * between, with room for a field or two.
 */
#define CHAN_IDLE_BYTES_MAX 384

#ifdef __SANITIZE_ADDRESS__
size_t __sanitizer_get_current_allocated_bytes(void);
static size_t heap_in_use(void)
{
	return __sanitizer_get_current_allocated_bytes();
}
#else
static size_t heap_in_use(void)
{
	struct mallinfo2 mi = mallinfo2();
	return mi.uordblks + mi.hblkhd;
}
#endif

struct fixture {
	int closes;
	char reason[512];
	char peer[256];
};

static void on_message(struct chan *ch, uint16_t type, const uint8_t *p, size_t len, void *arg) {}

static void on_close(struct chan *ch, const char *reason, void *arg)
{
	struct fixture *f = arg;
	f->closes++;
	snprintf(f->reason, sizeof(f->reason), "%s", reason);
	snprintf(f->peer, sizeof(f->peer), "%s", chan_peer(ch));
}

static const struct chan_cbs cbs = { on_message, NULL, NULL, on_close };

static bool deadline_hit;

static void deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	deadline_hit = true;
	event_base_loopbreak(arg);
}

static void run_until(struct event_base *base, const int *counter, int want)
{
	struct timeval tv = { DEADLINE_SEC, 0 };
	struct event *deadline = evtimer_new(base, deadline_cb, base);
	deadline_hit = false;
	evtimer_add(deadline, &tv);
	while (*counter < want && !deadline_hit)
		event_base_loop(base, EVLOOP_ONCE);
	event_free(deadline);
	CU_ASSERT_FALSE(deadline_hit);
}

static void test_idle_chan_bytes(void)
{
	struct event_base *base = event_base_new();
	struct bufferevent *bev[NCHANS];
	struct chan *ch[NCHANS];
	int peer_fd[NCHANS];
	struct fixture f = { 0 };
	for (int i = 0; i < NCHANS; i++) {
		int sv[2];
		CU_ASSERT_EQUAL_FATAL(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
		evutil_make_socket_nonblocking(sv[1]);
		bev[i] = bufferevent_socket_new(base, sv[1], BEV_OPT_CLOSE_ON_FREE);
		CU_ASSERT_PTR_NOT_NULL_FATAL(bev[i]);
		peer_fd[i] = sv[0];
	}
	size_t before = heap_in_use();
	for (int i = 0; i < NCHANS; i++) {
		ch[i] = chan_new(base, bev[i], "203.0.113.200:65535", 65536, &cbs, &f);
		CU_ASSERT_PTR_NOT_NULL_FATAL(ch[i]);
		chan_set_timeout(ch[i], 600);
	}
	size_t per_chan = (heap_in_use() - before) / NCHANS;
	CU_ASSERT(per_chan > 0);
	CU_ASSERT(per_chan <= CHAN_IDLE_BYTES_MAX);
	if (per_chan > CHAN_IDLE_BYTES_MAX)
		fprintf(stderr, "an idle chan allocates %zu bytes (limit %d)\n", per_chan,
			CHAN_IDLE_BYTES_MAX);
	for (int i = 0; i < NCHANS; i++)
		chan_close(ch[i], "test done");
	run_until(base, &f.closes, NCHANS);
	CU_ASSERT_EQUAL(f.closes, NCHANS);
	CU_ASSERT_STRING_EQUAL(f.reason, "test done");
	CU_ASSERT_STRING_EQUAL(f.peer, "203.0.113.200:65535");
	for (int i = 0; i < NCHANS; i++)
		close(peer_fd[i]);
	event_base_free(base);
}

/* Long strings are cut where the fixed arrays used to cut them. */
static void test_string_limits(void)
{
	static const struct {
		size_t peer_len, reason_len, want_peer, want_reason;
	} cases[] = {
		{ 0, 0, 0, 0 },	      { 1, 1, 1, 1 },	     { 95, 255, 95, 255 },
		{ 96, 256, 95, 255 }, { 300, 400, 95, 255 },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct event_base *base = event_base_new();
		int sv[2];
		CU_ASSERT_EQUAL_FATAL(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
		struct bufferevent *bev =
		    bufferevent_socket_new(base, sv[1], BEV_OPT_CLOSE_ON_FREE);
		char peer[512], reason[512];
		memset(peer, 'p', cases[i].peer_len);
		peer[cases[i].peer_len] = '\0';
		memset(reason, 'r', cases[i].reason_len);
		reason[cases[i].reason_len] = '\0';
		struct fixture f = { 0 };
		struct chan *ch = chan_new(base, bev, peer, 100, &cbs, &f);
		CU_ASSERT_PTR_NOT_NULL_FATAL(ch);
		CU_ASSERT_EQUAL(strlen(chan_peer(ch)), cases[i].want_peer);
		chan_close(ch, reason);
		run_until(base, &f.closes, 1);
		CU_ASSERT_EQUAL(f.closes, 1);
		CU_ASSERT_EQUAL(strlen(f.reason), cases[i].want_reason);
		CU_ASSERT_EQUAL(strncmp(f.reason, reason, cases[i].want_reason), 0);
		close(sv[0]);
		event_base_free(base);
	}
}

/* A NULL peer and a NULL reason have stand-ins. */
static void test_null_strings(void)
{
	struct event_base *base = event_base_new();
	int sv[2];
	CU_ASSERT_EQUAL_FATAL(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	struct bufferevent *bev = bufferevent_socket_new(base, sv[1], BEV_OPT_CLOSE_ON_FREE);
	struct fixture f = { 0 };
	struct chan *ch = chan_new(base, bev, NULL, 100, &cbs, &f);
	CU_ASSERT_PTR_NOT_NULL_FATAL(ch);
	CU_ASSERT_STRING_EQUAL(chan_peer(ch), "?");
	chan_close(ch, NULL);
	run_until(base, &f.closes, 1);
	CU_ASSERT_STRING_EQUAL(f.reason, "closed");
	close(sv[0]);
	event_base_free(base);
}

int main(void)
{
	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	CU_pSuite s = CU_add_suite("chan_footprint", NULL, NULL);
	CU_add_test(s, "an idle chan stays small", test_idle_chan_bytes);
	CU_add_test(s, "peer and reason length limits", test_string_limits);
	CU_add_test(s, "NULL peer and reason", test_null_strings);
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	unsigned fails = CU_get_number_of_failures();
	CU_cleanup_registry();
	return fails ? 1 : 0;
}
