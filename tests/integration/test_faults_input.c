/*
 * Faults from the outside: malformed frames and non-TLS bytes on the sync
 * port, bad enrolment tokens, a certificate from another CA, a replayed
 * batch, a bad server.xml, a busy port, an unreachable database. Each
 * test asserts what the daemon does about it and that the master still
 * serves its registered slave afterwards.
 */
#include <CUnit/Basic.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>

#include "harness_faults.h"
#include "harness_pg.h"
#include "harness_proc.h"
#include "harness_tls.h"

#define MASTER_BIN STRATA_BINARY_DIR "/strata-master"
#define SLAVE_BIN STRATA_BINARY_DIR "/strata-slave"

/* One master with one registered slave that every test checks is still served. */
static struct hnode master, slave;
/* A pending slave that enrols only in the reuse test. */
static struct hnode pend;

static const char seed_sql[] =
	"INSERT INTO groups (name, path) VALUES ('servers', '/servers');"
	"INSERT INTO endpoints (uid, hostname, group_id) "
	"SELECT 'uid-' || g, 'host-' || g, 1 FROM generate_series(1, 200) g;"
	"INSERT INTO events (endpoint_id, kind, details) "
	"SELECT g % 200 + 1, 'detection', jsonb_build_object('n', g) "
	"FROM generate_series(1, 1000) g";

static int suite_clean(void);

static int suite_setup(void)
{
	if (hpg_require() != 0)
		return -1;
	if (hp_master_init(&master, "fin-master", NULL) != 0 || hp_start(&master) != 0)
		return -1;
	if (hp_slave_init(&slave, "fin-slave", master.port, 1800, NULL) != 0 ||
	    hp_start(&slave) != 0)
		return -1;
	/* Seeded before registering so the first sync carries everything. */
	if (hf_script(&slave, seed_sql) != 0 || hp_enrol(&master, &slave) != 0)
		return -1;
	if (hp_slave_init(&pend, "fin-pend", master.port, 1800, NULL) != 0 || hp_start(&pend) != 0)
		return -1;
	return hf_sync_retry(&slave, 30) == 0 ? 0 : -1;
}

/* CUnit skips the cleanup when the init fails: stop what did start. */
static int suite_init(void)
{
	if (suite_setup() == 0)
		return 0;
	suite_clean();
	return -1;
}

static int suite_clean(void)
{
	hp_cleanup(&pend);
	hp_cleanup(&slave);
	hp_cleanup(&master);
	return 0;
}

static bool master_alive(void)
{
	int st;
	return master.pid > 0 && waitpid(master.pid, &st, WNOHANG) == 0;
}

/* After any attack: the master process lives and the real slave still syncs. */
static void assert_master_serves(void)
{
	CU_ASSERT_TRUE(master_alive());
	CU_ASSERT_EQUAL(hf_sync_retry(&slave, 30), 0);
}

/* ---- malformed frames before authentication ---- */

struct frame_fault {
	uint16_t type;
	const char *payload;
	const char *log_needle; /* what the master's log must name */
};

static void frame_fault_run(const struct frame_fault *f)
{
	bool saw_error;
	SSL *ssl = ht_connect(master.port, NULL, NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(ssl);
	CU_ASSERT_EQUAL(ht_send_str(ssl, f->type, f->payload), 0);
	CU_ASSERT_TRUE(ht_wait_closed(ssl, &saw_error));
	CU_ASSERT_TRUE(saw_error);
	ht_close(ssl);
	CU_ASSERT_TRUE(hp_wait_log(&master, f->log_needle, 10));
	assert_master_serves();
}

static void test_frame_not_an_object(void)
{
	static const struct frame_fault f = { 2, "[1,2,3]", "ENROL: payload is not a JSON object" };
	frame_fault_run(&f);
}

static void test_frame_unknown_type(void)
{
	static const struct frame_fault f = { 999, "{}", "(type 999) is not allowed" };
	frame_fault_run(&f);
}

static void test_frame_trailing_bytes(void)
{
	static const struct frame_fault f = { 2, "{\"token\":\"x\",\"name\":\"a\",\"csr\":\"y\"} x",
					      "2 trailing bytes after the JSON object" };
	frame_fault_run(&f);
}

static void test_frame_hello_preauth(void)
{
	static const struct frame_fault f = {
		10,
		"{\"proto\":1,\"slave\":\"fin-slave\",\"schema\":2,\"publication\":0,\"interval\":"
		"1800}",
		"HELLO (type 10) is not allowed in state master_preauth"
	};
	frame_fault_run(&f);
}

static void test_frame_oversized(void)
{
	/* Only the header: the master must close without waiting for 70000 bytes. */
	static const uint8_t hdr[6] = { 0x00, 0x01, 0x11, 0x70, 0x00, 0x02 }; /* 70000, ENROL */
	SSL *ssl = ht_connect(master.port, NULL, NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(ssl);
	CU_ASSERT_EQUAL(ht_write(ssl, hdr, sizeof(hdr)), 0);
	CU_ASSERT_TRUE(ht_wait_closed(ssl, NULL));
	ht_close(ssl);
	CU_ASSERT_TRUE(hp_wait_log(&master, "frame of 70000 bytes exceeds the limit of 65536", 10));
	assert_master_serves();
}

static void test_not_tls(void)
{
	static const char http[] = "GET / HTTP/1.0\r\n\r\n";
	CU_ASSERT_TRUE(ht_plain_closed_after(master.port, http, sizeof(http) - 1));
	assert_master_serves();
}

/* ---- enrolment tokens ---- */

static char *new_token(void)
{
	char *out = NULL;
	if (hp_ctl(&master, &out, "--json", "slave", "add", pend.name, NULL) != 0) {
		free(out);
		return NULL;
	}
	char *tok = strstr(out, "stk1.");
	char *copy = tok ? strndup(tok, strcspn(tok, "\"\n ")) : NULL;
	free(out);
	return copy;
}

/* state and certificate serial of the pending slave as the master has it */
static char *pend_state(void)
{
	const char *p[] = { pend.name };
	return hf_value(&master,
			"SELECT state || '/' || coalesce(cert_serial, '-') FROM slaves "
			"WHERE name = $1 AND state <> 'unregistered'",
			1, p);
}

static int register_with(struct hnode *n, int port, const char *token, char **out)
{
	char addr[64];
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
	return hp_ctl(n, out, "register", "--master", addr, "--token", token, NULL);
}

/* Registers pend with token; asserts refusal naming `reason` and no change on the master. */
static void assert_refused(const char *token, const char *reason)
{
	char *before = pend_state(), *out = NULL;
	CU_ASSERT_PTR_NOT_NULL_FATAL(before);
	CU_ASSERT_NOT_EQUAL(register_with(&pend, master.port, token, &out), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out ? out : "", reason));
	if (!strstr(out ? out : "", reason))
		fprintf(stderr, "register said: %s\n", out);
	char *after = pend_state();
	CU_ASSERT_STRING_EQUAL(after ? after : "", before);
	free(before);
	free(after);
	free(out);
}

static void test_token_wrong_secret(void)
{
	char *tok = new_token();
	CU_ASSERT_PTR_NOT_NULL_FATAL(tok);
	/* stk1.ID.SECRET.PIN: replace every secret character, keeping the shape. */
	char *secret = strchr(strchr(tok, '.') + 1, '.') + 1;
	for (char *c = secret; *c != '.'; c++)
		*c = *c == 'a' ? 'b' : 'a';
	assert_refused(tok, "unknown enrolment token");
	char *state = pend_state();
	CU_ASSERT_STRING_EQUAL(state ? state : "", "pending/-");
	free(state);
	free(tok);
}

static void test_token_expired(void)
{
	char *tok = new_token();
	CU_ASSERT_PTR_NOT_NULL_FATAL(tok);
	const char *p[] = { pend.name };
	CU_ASSERT_EQUAL(hf_exec(&master,
				"UPDATE enrol_tokens SET expires_at = now() - interval '1 hour' "
				"WHERE slave_id = (SELECT id FROM slaves WHERE name = $1 "
				"AND state = 'pending')",
				1, p),
			0);
	assert_refused(tok, "expired");
	free(tok);
}

static void test_token_pin_altered(void)
{
	char *tok = new_token();
	CU_ASSERT_PTR_NOT_NULL_FATAL(tok);
	size_t n = strlen(tok);
	tok[n - 1] = tok[n - 1] == '0' ? '1' : '0';
	assert_refused(tok, "does not match the token's pin");
	const char *p[] = { pend.name };
	CU_ASSERT_EQUAL(
		hf_ll(&master,
		      "SELECT count(*) FROM enrol_tokens t JOIN slaves s ON s.id = t.slave_id "
		      "WHERE s.name = $1 AND t.used_at IS NOT NULL",
		      1, p),
		0);
	CU_ASSERT_TRUE(hp_log_contains(&pend, "does not match the token's pin"));
	free(tok);
}

static void test_token_reused(void)
{
	char *tok = new_token(), *out = NULL;
	CU_ASSERT_PTR_NOT_NULL_FATAL(tok);
	CU_ASSERT_EQUAL_FATAL(register_with(&pend, master.port, tok, &out), 0);
	free(out);
	out = NULL;
	CU_ASSERT_EQUAL(hp_ctl(&pend, &out, "unregister", "--force", NULL), 0);
	free(out);
	/* The slave is active now; a second use must not touch it. */
	assert_refused(tok, "already used");
	free(tok);
}

/* ---- a slave certified by another master ---- */

static void test_foreign_ca(void)
{
	struct hnode other, stray;
	char xml[512];
	CU_ASSERT_EQUAL_FATAL(hp_master_init(&other, "fin-other", NULL), 0);
	CU_ASSERT_EQUAL_FATAL(hp_start(&other), 0);
	CU_ASSERT_EQUAL_FATAL(hp_slave_init(&stray, "fin-stray", other.port, 1800, NULL), 0);
	CU_ASSERT_EQUAL_FATAL(hp_start(&stray), 0);
	CU_ASSERT_EQUAL_FATAL(hp_enrol(&other, &stray), 0);
	CU_ASSERT_EQUAL(hf_sync_retry(&stray, 30), 0);
	long long history = hp_query_ll(&master, "SELECT count(*) FROM sync_history");

	/* Re-point it at our master: neither side trusts the other's CA. */
	CU_ASSERT_EQUAL(hp_stop(&stray), 0);
	snprintf(xml, sizeof(xml),
		 "  <master host=\"127.0.0.1\" port=\"%d\"/>\n"
		 "  <replication interval=\"1800\" retry-min=\"1\" retry-max=\"5\"/>",
		 master.port);
	CU_ASSERT_EQUAL(hp_write_config(&stray, xml), 0);
	CU_ASSERT_EQUAL_FATAL(hp_start(&stray), 0);
	char *out = NULL;
	CU_ASSERT_NOT_EQUAL(hp_ctl(&stray, &out, "sync", "now", NULL), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out ? out : "", "certificate verify failed"));
	if (!strstr(out ? out : "", "certificate verify failed"))
		fprintf(stderr, "sync now said: %s\n", out);
	free(out);
	CU_ASSERT_TRUE(hp_wait_log(&master, "alert unknown ca", 10));
	CU_ASSERT_EQUAL(hp_query_ll(&master, "SELECT count(*) FROM sync_history"), history);
	CU_ASSERT_EQUAL(hf_slave_id(&master, stray.name), -1);
	hp_cleanup(&stray);
	hp_cleanup(&other);
	assert_master_serves();
}

/* ---- a replayed batch and a gap, from the slave's own identity ---- */

static SSL *slave_session(long long *events_wm)
{
	char key[700], crt[700], hello[256];
	uint16_t type;
	char *payload;
	size_t len;
	snprintf(key, sizeof(key), "%s/slave.key", slave.dir);
	snprintf(crt, sizeof(crt), "%s/slave.crt", slave.dir);
	SSL *ssl = ht_connect(master.port, key, crt);
	if (!ssl)
		return NULL;
	long long schema = hp_query_ll(&slave, "SELECT max(version) FROM schema_version");
	long long pub = hp_query_ll(&slave, "SELECT publication_version FROM sync_state");
	snprintf(hello, sizeof(hello),
		 "{\"proto\":1,\"slave\":\"%s\",\"schema\":%lld,\"publication\":%lld,"
		 "\"interval\":1800}",
		 slave.name, schema, pub);
	if (ht_send_str(ssl, 10, hello) != 0 || ht_recv(ssl, &type, &payload, &len) != 0 ||
	    type != 11) {
		fprintf(stderr, "faults: no WELCOME\n");
		ht_close(ssl);
		return NULL;
	}
	json_t *o = json_loads(payload, 0, NULL);
	*events_wm =
		json_integer_value(json_object_get(json_object_get(o, "watermarks"), "events"));
	json_decref(o);
	free(payload);
	return ssl;
}

static const char events_sum_sql[] =
	"SELECT count(*) || '/' || coalesce(sum(hashtext(id::text || kind || details::text)), 0) "
	"FROM events";

static void test_replayed_batch(void)
{
	long long wm = 0;
	char batch[512], *payload;
	uint16_t type;
	size_t len;
	char *before = hp_query1(&master, events_sum_sql);
	SSL *ssl = slave_session(&wm);
	CU_ASSERT_PTR_NOT_NULL_FATAL(ssl);
	CU_ASSERT_TRUE(wm > 0);
	/* A changed row inside an applied range: applying it would alter event 1. */
	int n = snprintf(batch, sizeof(batch),
			 "{\"stream\":\"events\",\"from\":0,\"to\":%lld,\"rows\":1}\n"
			 "1\t1\treplayed\tinfo\t2020-01-01 00:00:00+00\t{\"forged\": true}\t%lld\n",
			 wm, wm);
	CU_ASSERT_EQUAL(ht_send(ssl, 20, batch, (size_t)n), 0);
	CU_ASSERT_EQUAL_FATAL(ht_recv(ssl, &type, &payload, &len), 0);
	CU_ASSERT_EQUAL(type, 21);
	json_t *ack = json_loads(payload, 0, NULL);
	CU_ASSERT_EQUAL(json_integer_value(json_object_get(ack, "watermark")), wm);
	json_decref(ack);
	free(payload);
	char *after = hp_query1(&master, events_sum_sql);
	CU_ASSERT_STRING_EQUAL(after ? after : "", before ? before : "?");
	free(after);

	/* A batch that starts above the watermark would leave a hole. */
	n = snprintf(batch, sizeof(batch),
		     "{\"stream\":\"events\",\"from\":%lld,\"to\":%lld,\"rows\":0}\n", wm + 5,
		     wm + 10);
	CU_ASSERT_EQUAL(ht_send(ssl, 20, batch, (size_t)n), 0);
	CU_ASSERT_EQUAL_FATAL(ht_recv(ssl, &type, &payload, &len), 0);
	CU_ASSERT_EQUAL(type, 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(payload, "gap"));
	free(payload);
	CU_ASSERT_TRUE(ht_wait_closed(ssl, NULL));
	ht_close(ssl);
	after = hp_query1(&master, events_sum_sql);
	CU_ASSERT_STRING_EQUAL(after ? after : "", before ? before : "?");
	CU_ASSERT_EQUAL(
		hp_query_ll(&master,
			    "SELECT version FROM watermarks WHERE stream = 'events' "
			    "AND slave_id = (SELECT id FROM slaves WHERE name = 'fin-slave' "
			    "AND state <> 'unregistered')"),
		wm);
	free(after);
	free(before);
	assert_master_serves();
}

/* ---- configuration, port and database at start ---- */

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	CU_ASSERT_PTR_NOT_NULL_FATAL(f);
	fputs(text, f);
	fclose(f);
}

static void test_invalid_config(void)
{
	char dir[600], cfg[700], log[700], xml[2048], *out = NULL;
	snprintf(dir, sizeof(dir), "%s/badcfg", hp_root());
	mkdir(dir, 0700);
	snprintf(cfg, sizeof(cfg), "%s/bad.xml", dir);
	snprintf(log, sizeof(log), "%s/daemon.log", dir);
	/* Line 4 (reported as FILE:4:) carries a log level the schema does not know. */
	snprintf(xml, sizeof(xml),
		 "<?xml version=\"1.0\"?>\n"
		 "<server role=\"master\" name=\"bad\">\n"
		 "  <data-dir>%s</data-dir>\n"
		 "  <log level=\"chatty\"/>\n"
		 "  <database conninfo=\"dbname=none\"/>\n"
		 "  <admin socket=\"%s/admin.sock\"/>\n"
		 "</server>\n",
		 dir, dir);
	write_file(cfg, xml);
	CU_ASSERT_NOT_EQUAL(hp_run(&out, MASTER_BIN, "-T", "-c", cfg, NULL), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out ? out : "", "bad.xml:4:"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out ? out : "", "chatty"));
	if (!strstr(out ? out : "", "bad.xml:4:"))
		fprintf(stderr, "-T said: %s\n", out);
	free(out);
	pid_t pid = hf_spawn(MASTER_BIN, cfg, log);
	int st = hf_wait_exit(pid, 20);
	if (st == -1) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
	}
	CU_ASSERT_TRUE(st > 0 && st < 128);
	CU_ASSERT_TRUE(hf_file_contains(log, "bad.xml:4:"));
}

static void test_port_in_use(void)
{
	struct hnode busy;
	char needle[64];
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t alen = sizeof(a);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	CU_ASSERT_EQUAL_FATAL(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	CU_ASSERT_EQUAL_FATAL(listen(fd, 4), 0);
	getsockname(fd, (struct sockaddr *)&a, &alen);
	CU_ASSERT_EQUAL_FATAL(hp_master_init(&busy, "fin-busy", NULL), 0);
	busy.port = ntohs(a.sin_port);
	CU_ASSERT_EQUAL_FATAL(hp_write_config(&busy, NULL), 0);
	pid_t pid = hf_spawn(MASTER_BIN, busy.cfg, busy.log);
	int st = hf_wait_exit(pid, 30);
	if (st == -1) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
	}
	CU_ASSERT_TRUE(st > 0 && st < 128);
	snprintf(needle, sizeof(needle), "cannot listen on 127.0.0.1:%d", busy.port);
	CU_ASSERT_TRUE(hp_log_contains(&busy, needle));
	close(fd);
	hp_cleanup(&busy);
}

/* A slave config whose database port has nobody listening. */
static void write_dead_db_config(const char *dir, const char *cfg, int attempts)
{
	char xml[2048];
	mkdir(dir, 0700);
	snprintf(xml, sizeof(xml),
		 "<?xml version=\"1.0\"?>\n"
		 "<server role=\"slave\" name=\"nodb\">\n"
		 "  <data-dir>%s</data-dir>\n"
		 "  <log level=\"info\"/>\n"
		 "  <database conninfo=\"host=127.0.0.1 port=%d user=postgres dbname=none "
		 "connect_timeout=2\" connect-attempts=\"%d\" retry-interval=\"1\"/>\n"
		 "  <admin socket=\"%s/admin.sock\"/>\n"
		 "</server>\n",
		 dir, hp_free_port(), attempts, dir);
	write_file(cfg, xml);
}

static void test_db_unreachable_gives_up(void)
{
	char dir[600], cfg[700], log[700];
	snprintf(dir, sizeof(dir), "%s/nodb3", hp_root());
	snprintf(cfg, sizeof(cfg), "%s/server.xml", dir);
	snprintf(log, sizeof(log), "%s/daemon.log", dir);
	write_dead_db_config(dir, cfg, 3);
	pid_t pid = hf_spawn(SLAVE_BIN, cfg, log);
	int st = hf_wait_exit(pid, 30);
	if (st == -1) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
	}
	CU_ASSERT_TRUE(st > 0 && st < 128);
	CU_ASSERT_EQUAL(hf_file_count(log, "cannot connect (attempt "), 3);
	CU_ASSERT_TRUE(hf_file_contains(log, "cannot connect (attempt 3)"));
}

static void test_db_unreachable_retries_forever(void)
{
	char dir[600], cfg[700], log[700];
	snprintf(dir, sizeof(dir), "%s/nodb0", hp_root());
	snprintf(cfg, sizeof(cfg), "%s/server.xml", dir);
	snprintf(log, sizeof(log), "%s/daemon.log", dir);
	write_dead_db_config(dir, cfg, 0);
	pid_t pid = hf_spawn(SLAVE_BIN, cfg, log);
	/* Still trying after 3 s and several attempts. */
	CU_ASSERT_EQUAL(hf_wait_exit(pid, 3), -1);
	for (int i = 0; i < 100 && !hf_file_contains(log, "cannot connect (attempt 3)"); i++)
		usleep(100000);
	CU_ASSERT_TRUE(hf_file_contains(log, "cannot connect (attempt 3)"));
	CU_ASSERT_EQUAL(hf_wait_exit(pid, 0), -1);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
}

int main(void)
{
	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	CU_pSuite s = CU_add_suite("faults: input", suite_init, suite_clean);
	CU_add_test(s, "pre-auth frame that is not a JSON object", test_frame_not_an_object);
	CU_add_test(s, "unknown message type 999", test_frame_unknown_type);
	CU_add_test(s, "frame over the 64 KiB pre-auth limit", test_frame_oversized);
	CU_add_test(s, "trailing bytes after the JSON object", test_frame_trailing_bytes);
	CU_add_test(s, "HELLO without a certificate", test_frame_hello_preauth);
	CU_add_test(s, "plain TCP that is not TLS", test_not_tls);
	CU_add_test(s, "certificate from another CA", test_foreign_ca);
	CU_add_test(s, "replayed batch and a gap", test_replayed_batch);
	CU_add_test(s, "invalid server.xml", test_invalid_config);
	CU_add_test(s, "sync port already in use", test_port_in_use);
	CU_add_test(s, "database unreachable, 3 attempts", test_db_unreachable_gives_up);
	CU_add_test(s, "database unreachable, retry forever", test_db_unreachable_retries_forever);
	CU_add_test(s, "enrolment token with a wrong secret", test_token_wrong_secret);
	CU_add_test(s, "expired enrolment token", test_token_expired);
	CU_add_test(s, "enrolment token with an altered CA pin", test_token_pin_altered);
	CU_add_test(s, "enrolment token used twice", test_token_reused);
	return hp_run_suite();
}
