/*
 * The agent against a fake push server in the same event loop: enrolment
 * with a pinned CA, A_AUTH checked with agentproto_verify, a policy, a
 * scan command whose detection and result survive a lost connection.
 */
#include <CUnit/Basic.h>

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/bufferevent_ssl.h>
#include <event2/listener.h>

#include "agentproto.h"
#include "chan.h"
#include "conn.h"
#include "enrol.h"
#include "proto.h"
#include "state.h"
#include "tls.h"

struct fake {
	struct event_base *base;
	SSL_CTX *ctx;
	char ca_pem[8192];
	char pubkey[65];
	char scan_dir[64];
	char bad_sha[65];
	bool ack_events;   /* false: the first session never acknowledges */
	int redirect_port; /* set: A_REDIRECT to 127.0.0.1 on this port instead of A_AUTH_OK */
	int auths, auth_fail, cmd_acks, events, results, policy_gets;
	int64_t last_seq;
	bool order_ok;
};

static void send_obj(struct chan *ch, uint16_t type, json_t *o)
{
	chan_send_json(ch, type, o);
	json_decref(o);
}

static void srv_message(struct chan *ch, uint16_t type, const uint8_t *payload, size_t len,
			void *arg)
{
	struct fake *f = arg;
	char err[256];
	json_t *o = proto_parse_json(payload, len, err, sizeof(err));
	CU_ASSERT_PTR_NOT_NULL_FATAL(o);
	if (type == A_ENROL) {
		struct amsg_enrol m;
		CU_ASSERT_EQUAL(agentproto_decode_enrol(o, &m, err, sizeof(err)), 0);
		CU_ASSERT_STRING_EQUAL(m.hostname, "pc-1");
		snprintf(f->pubkey, sizeof(f->pubkey), "%s", m.key);
		send_obj(ch, A_ENROL_OK,
			 json_pack("{s:s, s:s}", "agent_id", "agent-1", "ca", f->ca_pem));
		chan_close(ch, "enrolled");
	} else if (type == A_AUTH) {
		struct amsg_auth m;
		CU_ASSERT_EQUAL(agentproto_decode_auth(o, &m, err, sizeof(err)), 0);
		f->auths++;
		if (agentproto_verify(chan_ssl(ch), f->pubkey, m.sig) != 0) {
			f->auth_fail++;
			chan_send_error(ch, PROTO_ERR_UNREGISTERED, "bad signature");
		} else if (f->redirect_port) {
			send_obj(ch, A_REDIRECT,
				 json_pack("{s:s, s:i}", "address", "127.0.0.1", "port",
					   f->redirect_port));
			chan_close(ch, "redirected");
		} else {
			chan_set_max_frame(ch, ACONN_FRAME_MAX);
			send_obj(ch, A_AUTH_OK,
				 json_pack("{s:i, s:I}", "heartbeat", 30, "policy_version",
					   (json_int_t)5));
		}
	} else if (type == A_POLICY_GET) {
		f->policy_gets++;
		send_obj(ch, A_POLICY,
			 json_pack("{s:I, s:{s:[s]}}", "version", (json_int_t)5, "settings",
				   "block_sha256", f->bad_sha));
		if (f->auths == 1)
			send_obj(ch, A_COMMAND,
				 json_pack("{s:I, s:s, s:{s:I, s:s, s:{s:s}}}", "id", (json_int_t)9,
					   "kind", "run_task", "args", "task_id", (json_int_t)3,
					   "kind", "scan", "params", "path", f->scan_dir));
	} else if (type == A_EVENT || type == A_RESULT) {
		int64_t seq = json_integer_value(json_object_get(o, "seq"));
		if (type == A_EVENT) {
			struct amsg_event m;
			CU_ASSERT_EQUAL(agentproto_decode_event(o, &m, err, sizeof(err)), 0);
			f->events++;
		} else {
			struct amsg_result m;
			CU_ASSERT_EQUAL(agentproto_decode_result(o, &m, err, sizeof(err)), 0);
			CU_ASSERT_STRING_EQUAL(m.status, "succeeded");
			f->results++;
		}
		if (seq <= f->last_seq && f->ack_events)
			f->order_ok = false;
		f->last_seq = seq;
		if (f->ack_events)
			send_obj(ch, type == A_EVENT ? A_EVENT_ACK : A_RESULT_ACK,
				 json_pack("{s:I}", "seq", (json_int_t)seq));
	} else if (type == A_COMMAND_ACK) {
		f->cmd_acks++;
	}
	json_decref(o);
}

static void srv_close(struct chan *ch, const char *reason, void *arg) {}

static const struct chan_cbs srv_cbs = { .on_message = srv_message, .on_close = srv_close };

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen,
		      void *arg)
{
	struct fake *f = arg;
	struct bufferevent *bev = bufferevent_openssl_socket_new(
	    f->base, fd, SSL_new(f->ctx), BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
	CU_ASSERT_PTR_NOT_NULL_FATAL(
	    chan_new(f->base, bev, "agent", ACONN_FRAME_PREAUTH, &srv_cbs, f));
}

static struct evconnlistener *listen_any(struct fake *f, int *port)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	struct evconnlistener *l = evconnlistener_new_bind(
	    f->base, on_accept, f, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, 8,
	    (struct sockaddr *)&sin, sizeof(sin));
	if (!l)
		return NULL;
	socklen_t slen = sizeof(sin);
	getsockname(evconnlistener_get_fd(l), (struct sockaddr *)&sin, &slen);
	*port = ntohs(sin.sin_port);
	return l;
}

/* Runs the loop until *counter reaches want or 20 s pass. */
static void run_until(struct event_base *base, const int *counter, int want)
{
	time_t end = time(NULL) + 20;
	while (*counter < want && time(NULL) < end)
		event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
}

static void test_enrol_auth_command(void)
{
	char err[512], base_dir[64], state[96], path[160];
	struct fake f = { .order_ok = true };
	f.base = event_base_new();
	EVP_PKEY *ca_key = tls_key_generate(err, sizeof(err));
	X509 *ca = tls_ca_create(ca_key, "agent ca", err, sizeof(err));
	EVP_PKEY *srv_key = tls_key_generate(err, sizeof(err));
	X509_REQ *req = tls_csr_create(srv_key, "push", err, sizeof(err));
	X509 *cert = tls_sign_csr(ca, ca_key, req, "push", 1, "127.0.0.1", 30, err, sizeof(err));
	CU_ASSERT_PTR_NOT_NULL_FATAL(cert);
	f.ctx = tls_server_ctx(srv_key, cert, ca, err, sizeof(err));
	CU_ASSERT_PTR_NOT_NULL_FATAL(f.ctx);
	char *pem = tls_cert_to_pem(ca);
	snprintf(f.ca_pem, sizeof(f.ca_pem), "%s", pem);
	free(pem);
	char pin[65], token[256];
	struct enrol_token tok;
	tls_cert_pin(ca, pin);
	CU_ASSERT_EQUAL_FATAL(tls_token_make(pin, &tok, token, sizeof(token)), 0);

	struct sockaddr_in sin = { .sin_family = AF_INET };
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	struct evconnlistener *l = evconnlistener_new_bind(
	    f.base, on_accept, &f, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, 8,
	    (struct sockaddr *)&sin, sizeof(sin));
	CU_ASSERT_PTR_NOT_NULL_FATAL(l);
	socklen_t slen = sizeof(sin);
	getsockname(evconnlistener_get_fd(l), (struct sockaddr *)&sin, &slen);
	int port = ntohs(sin.sin_port);

	snprintf(base_dir, sizeof(base_dir), "/tmp/strata-ac-XXXXXX");
	CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(base_dir));
	snprintf(state, sizeof(state), "%s/state", base_dir);
	snprintf(f.scan_dir, sizeof(f.scan_dir), "%s", base_dir);
	snprintf(path, sizeof(path), "%s/evil.bin", base_dir);
	FILE *fp = fopen(path, "w");
	fputs("evil", fp);
	fclose(fp);
	tls_sha256_hex("evil", 4, f.bad_sha);

	struct aenrol_opts eo = { .state_dir = state,
				  .host = "127.0.0.1",
				  .port = port,
				  .token = token,
				  .mode = "push",
				  .hostname = "pc-1" };
	CU_ASSERT_EQUAL_FATAL(aenrol_run(f.base, &eo, err, sizeof(err)), 0);
	CU_ASSERT_TRUE(astate_enrolled(state));
	CU_ASSERT_EQUAL(aenrol_run(f.base, &eo, err, sizeof(err)), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "already enrolled"));

	/* First session: the command runs, nothing is acknowledged, the link drops. */
	struct aconn_opts co = { .state_dir = state, .poll_interval = 60 };
	struct aconn *c = aconn_new(f.base, &co, err, sizeof(err));
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	aconn_start(c);
	run_until(f.base, &f.cmd_acks, 1);
	CU_ASSERT_EQUAL(f.auth_fail, 0);
	CU_ASSERT_EQUAL(f.cmd_acks, 1);
	CU_ASSERT_EQUAL(f.events, 1);
	CU_ASSERT_EQUAL(f.results, 1);
	CU_ASSERT_EQUAL(astate_policy_version(state), 5);
	CU_ASSERT_EQUAL(aconn_queued(c), 2);
	aconn_free(c);
	event_base_loop(f.base, EVLOOP_NONBLOCK);

	/* A new process: both messages are resent in seq order and acknowledged. */
	f.ack_events = true;
	f.last_seq = 0;
	c = aconn_new(f.base, &co, err, sizeof(err));
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	CU_ASSERT_EQUAL(aconn_queued(c), 2);
	aconn_start(c);
	run_until(f.base, &f.results, 2);
	time_t end = time(NULL) + 20;
	while (aconn_queued(c) > 0 && time(NULL) < end)
		event_base_loop(f.base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
	CU_ASSERT_EQUAL(aconn_queued(c), 0);
	CU_ASSERT_EQUAL(f.events, 2);
	CU_ASSERT_TRUE(f.order_ok);
	CU_ASSERT_EQUAL(f.auths, 2);
	CU_ASSERT_EQUAL(f.policy_gets, 1); /* version 5 is already stored */
	aconn_stop(c);
	event_base_dispatch(f.base);
	aconn_free(c);

	/* The slave redirects to another push server (a second listener, whose
	 * certificate also names 127.0.0.1): the agent stores it and goes there. */
	struct fake dp = f;
	dp.auths = 0;
	int dp_port = 0;
	struct evconnlistener *dl = listen_any(&dp, &dp_port);
	CU_ASSERT_PTR_NOT_NULL_FATAL(dl);
	f.redirect_port = dp_port;
	int origin_auths = f.auths;
	c = aconn_new(f.base, &co, err, sizeof(err));
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	aconn_start(c);
	run_until(f.base, &dp.auths, 1);
	CU_ASSERT_EQUAL(f.auths, origin_auths + 1);
	CU_ASSERT_EQUAL(dp.auths, 1);
	CU_ASSERT_EQUAL(dp.auth_fail, 0);
	char host[256];
	int pport = 0;
	CU_ASSERT_EQUAL(astate_load_push(state, host, sizeof(host), &pport, err, sizeof(err)), 1);
	CU_ASSERT_STRING_EQUAL(host, "127.0.0.1");
	CU_ASSERT_EQUAL(pport, dp_port);
	aconn_stop(c);
	event_base_dispatch(f.base);
	aconn_free(c);

	/* A new process goes to the stored push server first; it has stopped,
	 * so the next attempt goes to the slave, which now takes the agent
	 * itself: the stored assignment is dropped. */
	evconnlistener_free(dl);
	f.redirect_port = 0;
	c = aconn_new(f.base, &co, err, sizeof(err));
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	aconn_start(c);
	origin_auths = f.auths;
	int want = origin_auths + 1;
	run_until(f.base, &f.auths, want);
	CU_ASSERT_EQUAL(f.auths, want);
	CU_ASSERT_EQUAL(dp.auths, 1);
	end = time(NULL) + 20;
	while (astate_load_push(state, host, sizeof(host), &pport, err, sizeof(err)) != 0 &&
	       time(NULL) < end)
		event_base_loop(f.base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
	CU_ASSERT_EQUAL(astate_load_push(state, host, sizeof(host), &pport, err, sizeof(err)), 0);
	aconn_stop(c);
	event_base_dispatch(f.base);
	aconn_free(c);

	evconnlistener_free(l);
	event_base_loop(f.base, EVLOOP_NONBLOCK);
	SSL_CTX_free(f.ctx);
	X509_free(cert);
	X509_REQ_free(req);
	X509_free(ca);
	EVP_PKEY_free(ca_key);
	EVP_PKEY_free(srv_key);
	event_base_free(f.base);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", base_dir);
	CU_ASSERT_EQUAL(system(cmd), 0);
}

int main(void)
{
	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	CU_pSuite s = CU_add_suite("agent conn", NULL, NULL);
	CU_add_test(s, "enrol, auth, command, resend after a lost link, redirect and fallback",
		    test_enrol_auth_command);
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	unsigned fails = CU_get_number_of_failures();
	CU_cleanup_registry();
	return fails ? 1 : 0;
}
