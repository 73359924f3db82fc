#include <CUnit/Basic.h>
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>

#include "chan.h"
#include "frame.h"
#include "proto.h"

#define MAX_MSGS 16
#define MIB (1024 * 1024)
/* A deadline so that a broken chan fails the test instead of hanging it. */
#define DEADLINE_SEC 20

struct side {
	struct chan *ch;
	int msgs;
	uint16_t types[MAX_MSGS];
	size_t lens[MAX_MSGS];
	uint8_t *payloads[MAX_MSGS];
	int closes;
	char reason[256];
	int connected;
	int drains;
	size_t pending_at_drain;
	bool close_in_message;
	bool on_close_ran_inside_message;
	int send_after_close;
};

static void side_reset(struct side *s)
{
	for (int i = 0; i < s->msgs && i < MAX_MSGS; i++)
		free(s->payloads[i]);
	memset(s, 0, sizeof(*s));
}

static void on_message(struct chan *ch, uint16_t type, const uint8_t *payload, size_t len,
		       void *arg)
{
	struct side *s = arg;
	if (s->msgs < MAX_MSGS) {
		s->types[s->msgs] = type;
		s->lens[s->msgs] = len;
		s->payloads[s->msgs] = malloc(len ? len : 1);
		memcpy(s->payloads[s->msgs], payload, len);
	}
	s->msgs++;
	if (s->close_in_message) {
		chan_close(ch, "closed from on_message");
		s->on_close_ran_inside_message = s->closes > 0;
		s->send_after_close = chan_send(ch, MSG_PING, NULL, 0);
	}
}

static void on_connected(struct chan *ch, void *arg)
{
	struct side *s = arg;
	s->connected++;
}

static void on_drain(struct chan *ch, void *arg)
{
	struct side *s = arg;
	s->drains++;
	s->pending_at_drain = chan_output_pending(ch);
}

static void on_close(struct chan *ch, const char *reason, void *arg)
{
	struct side *s = arg;
	s->closes++;
	snprintf(s->reason, sizeof(s->reason), "%s", reason);
	s->ch = NULL;
}

static const struct chan_cbs cbs = { on_message, on_connected, on_drain, on_close };

static bool deadline_hit;

static void deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	deadline_hit = true;
	event_base_loopbreak(arg);
}

/* Runs the loop until *counter reaches want or the deadline passes. */
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

static struct chan *make_chan(struct event_base *base, int fd, uint32_t max, struct side *s)
{
	evutil_make_socket_nonblocking(fd);
	struct bufferevent *bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
	s->ch = chan_new(base, bev, "test", max, &cbs, s);
	return s->ch;
}

/* Two chans joined by a socketpair. */
static void make_pair(struct event_base *base, uint32_t max, struct side *a, struct side *b)
{
	int sv[2];
	CU_ASSERT_EQUAL_FATAL(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(make_chan(base, sv[0], max, a));
	CU_ASSERT_PTR_NOT_NULL_FATAL(make_chan(base, sv[1], max, b));
}

/* One chan; the other end stays a raw socket for byte-level control. */
static int make_raw(struct event_base *base, uint32_t max, struct side *s)
{
	int sv[2];
	CU_ASSERT_EQUAL_FATAL(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(make_chan(base, sv[1], max, s));
	return sv[0];
}

static void close_all(struct event_base *base, struct side *a, struct side *b)
{
	if (a && a->ch)
		chan_close(a->ch, "test done");
	if (b && b->ch)
		chan_close(b->ch, "test done");
	if (a)
		run_until(base, &a->closes, 1);
	if (b)
		run_until(base, &b->closes, 1);
}

static void test_round_trip(void)
{
	struct event_base *base = event_base_new();
	struct side a = { 0 }, b = { 0 };
	make_pair(base, 2 * MIB, &a, &b);
	uint8_t *big = malloc(MIB);
	for (size_t i = 0; i < MIB; i++)
		big[i] = (uint8_t)(i * 7 + 3);
	CU_ASSERT_EQUAL(chan_send(a.ch, MSG_HELLO, "hello", 5), 0);
	CU_ASSERT_EQUAL(chan_send(a.ch, MSG_PING, NULL, 0), 0);
	CU_ASSERT_EQUAL(chan_send(a.ch, MSG_UPLOAD_BATCH, big, MIB), 0);
	json_t *o = json_pack("{s:s, s:i}", "k", "v", "n", 5);
	CU_ASSERT_EQUAL(chan_send_json(a.ch, MSG_WELCOME, o), 0);
	CU_ASSERT_EQUAL(chan_send_bulk(a.ch, MSG_UPLOAD_BATCH, o, "1\tx\n", 4), 0);
	json_decref(o);
	run_until(base, &b.msgs, 5);
	CU_ASSERT_EQUAL(b.msgs, 5);
	CU_ASSERT_EQUAL(b.types[0], MSG_HELLO);
	CU_ASSERT_EQUAL(b.lens[0], 5);
	CU_ASSERT_EQUAL(memcmp(b.payloads[0], "hello", 5), 0);
	CU_ASSERT_EQUAL(b.types[1], MSG_PING);
	CU_ASSERT_EQUAL(b.lens[1], 0);
	CU_ASSERT_EQUAL(b.types[2], MSG_UPLOAD_BATCH);
	CU_ASSERT_EQUAL_FATAL(b.lens[2], MIB);
	CU_ASSERT_EQUAL(memcmp(b.payloads[2], big, MIB), 0);
	CU_ASSERT_EQUAL(b.types[3], MSG_WELCOME);
	CU_ASSERT_EQUAL(b.lens[3], strlen("{\"k\":\"v\",\"n\":5}"));
	CU_ASSERT_EQUAL(memcmp(b.payloads[3], "{\"k\":\"v\",\"n\":5}", b.lens[3]), 0);
	const char *copy = NULL;
	size_t copy_len = 0;
	char err[128];
	json_t *hdr =
		proto_parse_bulk(b.payloads[4], b.lens[4], &copy, &copy_len, err, sizeof(err));
	CU_ASSERT_PTR_NOT_NULL(hdr);
	CU_ASSERT_EQUAL(copy_len, 4);
	CU_ASSERT_EQUAL(memcmp(copy, "1\tx\n", 4), 0);
	json_decref(hdr);
	CU_ASSERT_EQUAL(a.msgs, 0);
	close_all(base, &a, &b);
	CU_ASSERT_EQUAL(a.closes, 1);
	CU_ASSERT_EQUAL(b.closes, 1);
	free(big);
	side_reset(&a);
	side_reset(&b);
	event_base_free(base);
}

static void test_one_byte_at_a_time(void)
{
	struct event_base *base = event_base_new();
	struct side b = { 0 };
	int fd = make_raw(base, 64, &b);
	uint8_t wire[64];
	size_t n = 0, ends[3];
	static const char *const payloads[] = { "abc", "", "0123456789" };
	for (size_t i = 0; i < 3; i++) {
		size_t len = strlen(payloads[i]);
		frame_header_encode(wire + n, (uint16_t)(100 + i), (uint32_t)len);
		memcpy(wire + n + FRAME_HEADER_LEN, payloads[i], len);
		n += FRAME_HEADER_LEN + len;
		ends[i] = n;
	}
	int complete = 0;
	for (size_t i = 0; i < n; i++) {
		CU_ASSERT_EQUAL_FATAL(write(fd, wire + i, 1), 1);
		event_base_loop(base, EVLOOP_ONCE);
		if (complete < 3 && i + 1 == ends[complete])
			complete++;
		CU_ASSERT_EQUAL(b.msgs, complete);
	}
	CU_ASSERT_EQUAL_FATAL(b.msgs, 3);
	for (int i = 0; i < 3; i++) {
		CU_ASSERT_EQUAL(b.types[i], 100 + i);
		CU_ASSERT_EQUAL(b.lens[i], strlen(payloads[i]));
		CU_ASSERT_EQUAL(memcmp(b.payloads[i], payloads[i], b.lens[i]), 0);
	}
	CU_ASSERT_EQUAL(b.closes, 0);
	close(fd);
	run_until(base, &b.closes, 1);
	CU_ASSERT_STRING_EQUAL(b.reason, "connection closed by peer");
	side_reset(&b);
	event_base_free(base);
}

static void test_oversized_frame(void)
{
	struct event_base *base = event_base_new();
	struct side b = { 0 };
	int fd = make_raw(base, 100, &b);
	uint8_t hdr[FRAME_HEADER_LEN];
	/* Only the length is sent: the chan must not wait for the payload. */
	frame_header_encode(hdr, MSG_HELLO, 101);
	CU_ASSERT_EQUAL(write(fd, hdr, 4), 4);
	run_until(base, &b.closes, 1);
	CU_ASSERT_EQUAL(b.msgs, 0);
	CU_ASSERT_STRING_EQUAL(b.reason, "frame of 101 bytes exceeds the limit of 100");
	char c;
	CU_ASSERT_EQUAL(read(fd, &c, 1), 0);
	close(fd);
	side_reset(&b);
	event_base_free(base);
}

static void test_raised_limit(void)
{
	struct event_base *base = event_base_new();
	struct side a = { 0 }, b = { 0 };
	make_pair(base, 8, &a, &b);
	chan_set_max_frame(a.ch, 1000);
	CU_ASSERT_EQUAL(chan_send(b.ch, MSG_HELLO, "0123456789", 10), 0);
	run_until(base, &a.msgs, 1);
	CU_ASSERT_EQUAL(a.lens[0], 10);
	CU_ASSERT_EQUAL(chan_send(a.ch, MSG_WELCOME, "0123456789", 10), 0);
	run_until(base, &b.closes, 1);
	CU_ASSERT_STRING_EQUAL(b.reason, "frame of 10 bytes exceeds the limit of 8");
	run_until(base, &a.closes, 1);
	CU_ASSERT_STRING_EQUAL(a.reason, "connection closed by peer");
	side_reset(&a);
	side_reset(&b);
	event_base_free(base);
}

static void test_peer_close_once(void)
{
	struct event_base *base = event_base_new();
	struct side a = { 0 }, b = { 0 };
	make_pair(base, 100, &a, &b);
	chan_close(a.ch, "local reason");
	CU_ASSERT_EQUAL(a.closes, 0);
	run_until(base, &b.closes, 1);
	run_until(base, &a.closes, 1);
	/* Extra passes give a second report the chance to show up. */
	for (int i = 0; i < 5; i++)
		event_base_loop(base, EVLOOP_NONBLOCK);
	CU_ASSERT_EQUAL(a.closes, 1);
	CU_ASSERT_EQUAL(b.closes, 1);
	CU_ASSERT_STRING_EQUAL(a.reason, "local reason");
	CU_ASSERT_STRING_EQUAL(b.reason, "connection closed by peer");
	side_reset(&a);
	side_reset(&b);
	event_base_free(base);
}

static void test_close_inside_message(void)
{
	struct event_base *base = event_base_new();
	struct side a = { 0 }, b = { 0 };
	make_pair(base, 100, &a, &b);
	b.close_in_message = true;
	struct chan *bch = b.ch;
	CU_ASSERT_EQUAL(chan_send(a.ch, MSG_HELLO, "one", 3), 0);
	CU_ASSERT_EQUAL(chan_send(a.ch, MSG_PING, "two", 3), 0);
	CU_ASSERT_EQUAL(chan_send(a.ch, MSG_PING, "three", 5), 0);
	run_until(base, &b.closes, 1);
	CU_ASSERT_EQUAL(b.msgs, 1);
	CU_ASSERT_FALSE(b.on_close_ran_inside_message);
	CU_ASSERT_EQUAL(b.send_after_close, -1);
	CU_ASSERT_STRING_EQUAL(b.reason, "closed from on_message");
	CU_ASSERT_PTR_NOT_NULL(bch);
	run_until(base, &a.closes, 1);
	CU_ASSERT_STRING_EQUAL(a.reason, "connection closed by peer");
	side_reset(&a);
	side_reset(&b);
	event_base_free(base);
}

static void test_close_flushes_output(void)
{
	struct event_base *base = event_base_new();
	struct side a = { 0 }, b = { 0 };
	make_pair(base, 2 * MIB, &a, &b);
	uint8_t *big = malloc(MIB);
	memset(big, 0x5a, MIB);
	CU_ASSERT_EQUAL(chan_send(a.ch, MSG_UPLOAD_BATCH, big, MIB), 0);
	CU_ASSERT_EQUAL(chan_output_pending(a.ch), MIB + FRAME_HEADER_LEN);
	chan_close(a.ch, "sent everything");
	CU_ASSERT_TRUE(chan_is_closed(a.ch));
	CU_ASSERT_EQUAL(chan_send(a.ch, MSG_PING, NULL, 0), -1);
	run_until(base, &b.closes, 1);
	run_until(base, &a.closes, 1);
	CU_ASSERT_EQUAL_FATAL(b.msgs, 1);
	CU_ASSERT_EQUAL_FATAL(b.lens[0], MIB);
	CU_ASSERT_EQUAL(memcmp(b.payloads[0], big, MIB), 0);
	CU_ASSERT_STRING_EQUAL(a.reason, "sent everything");
	CU_ASSERT_STRING_EQUAL(b.reason, "connection closed by peer");
	free(big);
	side_reset(&a);
	side_reset(&b);
	event_base_free(base);
}

static void test_send_error(void)
{
	struct event_base *base = event_base_new();
	struct side a = { 0 }, b = { 0 };
	make_pair(base, 100, &a, &b);
	chan_send_error(a.ch, PROTO_ERR_BUSY, "too many sessions (%d)", 12);
	run_until(base, &b.msgs, 1);
	run_until(base, &a.closes, 1);
	CU_ASSERT_STRING_EQUAL(a.reason, "too many sessions (12)");
	CU_ASSERT_EQUAL_FATAL(b.msgs, 1);
	CU_ASSERT_EQUAL(b.types[0], MSG_ERROR);
	char err[128];
	json_t *o = proto_parse_json(b.payloads[0], b.lens[0], err, sizeof(err));
	CU_ASSERT_PTR_NOT_NULL_FATAL(o);
	struct msg_error m;
	CU_ASSERT_EQUAL(proto_decode_error(o, &m, err, sizeof(err)), 0);
	CU_ASSERT_STRING_EQUAL(m.code, "busy");
	CU_ASSERT_STRING_EQUAL(m.message, "too many sessions (12)");
	json_decref(o);
	run_until(base, &b.closes, 1);
	side_reset(&a);
	side_reset(&b);
	event_base_free(base);
}

static void test_read_timeout(void)
{
	struct event_base *base = event_base_new();
	struct side b = { 0 };
	int fd = make_raw(base, 100, &b);
	chan_set_timeout(b.ch, 1);
	run_until(base, &b.closes, 1);
	CU_ASSERT_STRING_EQUAL(b.reason, "no data for 1 s");
	close(fd);
	side_reset(&b);
	event_base_free(base);
}

static void test_drain(void)
{
	struct event_base *base = event_base_new();
	struct side a = { 0 }, b = { 0 };
	make_pair(base, 4 * MIB, &a, &b);
	chan_set_drain(a.ch, 4096);
	uint8_t *big = calloc(1, 2 * MIB);
	CU_ASSERT_EQUAL(chan_send(a.ch, MSG_UPLOAD_BATCH, big, 2 * MIB), 0);
	run_until(base, &a.drains, 1);
	CU_ASSERT_TRUE(a.pending_at_drain <= 4096);
	run_until(base, &b.msgs, 1);
	CU_ASSERT_EQUAL(b.lens[0], 2 * MIB);
	free(big);
	close_all(base, &a, &b);
	side_reset(&a);
	side_reset(&b);
	event_base_free(base);
}

static void test_client_connect(void)
{
	struct event_base *base = event_base_new();
	int lfd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sin = { .sin_family = AF_INET };
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t slen = sizeof(sin);
	CU_ASSERT_EQUAL_FATAL(bind(lfd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	CU_ASSERT_EQUAL_FATAL(listen(lfd, 1), 0);
	CU_ASSERT_EQUAL_FATAL(getsockname(lfd, (struct sockaddr *)&sin, &slen), 0);

	struct side a = { 0 };
	struct bufferevent *bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
	CU_ASSERT_EQUAL_FATAL(bufferevent_socket_connect(bev, (struct sockaddr *)&sin, sizeof(sin)),
			      0);
	a.ch = chan_new(base, bev, "127.0.0.1", 100, &cbs, &a);
	CU_ASSERT_PTR_NOT_NULL_FATAL(a.ch);
	run_until(base, &a.connected, 1);
	CU_ASSERT_EQUAL(a.connected, 1);
	int cfd = accept(lfd, NULL, NULL);
	CU_ASSERT_TRUE(cfd >= 0);
	close(cfd);
	run_until(base, &a.closes, 1);
	CU_ASSERT_STRING_EQUAL(a.reason, "connection closed by peer");

	/* Nobody listens any more: the connect fails with the socket's error. */
	close(lfd);
	struct side c = { 0 };
	bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
	bufferevent_socket_connect(bev, (struct sockaddr *)&sin, sizeof(sin));
	c.ch = chan_new(base, bev, "127.0.0.1", 100, &cbs, &c);
	run_until(base, &c.closes, 1);
	CU_ASSERT_EQUAL(c.connected, 0);
	CU_ASSERT_STRING_EQUAL(c.reason, strerror(ECONNREFUSED));
	side_reset(&a);
	side_reset(&c);
	event_base_free(base);
}

int main(void)
{
	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	CU_pSuite s = CU_add_suite("chan", NULL, NULL);
	CU_add_test(s, "round trip incl. a 1 MiB frame", test_round_trip);
	CU_add_test(s, "delivery one byte at a time", test_one_byte_at_a_time);
	CU_add_test(s, "oversized frame closes from its header", test_oversized_frame);
	CU_add_test(s, "raised limit applies to the next frame", test_raised_limit);
	CU_add_test(s, "peer close reported once", test_peer_close_once);
	CU_add_test(s, "chan_close inside on_message", test_close_inside_message);
	CU_add_test(s, "close flushes pending output", test_close_flushes_output);
	CU_add_test(s, "send_error sends ERROR then closes", test_send_error);
	CU_add_test(s, "read timeout", test_read_timeout);
	CU_add_test(s, "drain watermark", test_drain);
	CU_add_test(s, "client connect and refused connect", test_client_connect);
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	unsigned fails = CU_get_number_of_failures();
	CU_cleanup_registry();
	return fails ? 1 : 0;
}
