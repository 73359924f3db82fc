/*
 * http: the pure parts of the HTTP API (token file and check, routes,
 * query arguments) and admin_dispatch(), the bridge to the commands.
 */
#include <CUnit/Basic.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>
#include <openssl/sha.h>

#include "admin.h"
#include "http.h"
#include "log.h"

static char tmpdir[] = "/tmp/strata-test-http.XXXXXX";

static int suite_init(void)
{
	log_init("test_http", false, LOG_LVL_ERROR);
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int suite_clean(void)
{
	char cmd[256];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

static void write_file(const char *name, const char *text, mode_t mode, char *path, size_t len)
{
	snprintf(path, len, "%s/%s", tmpdir, name);
	unlink(path);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	CU_ASSERT_FATAL(fd >= 0);
	CU_ASSERT_FATAL(write(fd, text, strlen(text)) == (ssize_t)strlen(text));
	close(fd);
	CU_ASSERT_FATAL(chmod(path, mode) == 0);
}

static void test_token_load(void)
{
	unsigned char sha[32], want[32];
	char path[512], err[512];

	write_file("good", "s3cret\n", 0600, path, sizeof(path));
	CU_ASSERT_EQUAL_FATAL(http_token_load(path, sha, err, sizeof(err)), 0);
	SHA256((const unsigned char *)"s3cret", 6, want);
	CU_ASSERT_EQUAL(memcmp(sha, want, 32), 0);

	write_file("readonly", "s3cret", 0400, path, sizeof(path));
	CU_ASSERT_EQUAL(http_token_load(path, sha, err, sizeof(err)), 0);

	write_file("group", "s3cret\n", 0640, path, sizeof(path));
	CU_ASSERT_EQUAL(http_token_load(path, sha, err, sizeof(err)), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "accessible by group or others (mode 0640)"));

	write_file("world", "s3cret\n", 0604, path, sizeof(path));
	CU_ASSERT_EQUAL(http_token_load(path, sha, err, sizeof(err)), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "group or others"));

	write_file("empty", "", 0600, path, sizeof(path));
	CU_ASSERT_EQUAL(http_token_load(path, sha, err, sizeof(err)), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "empty"));

	write_file("blank", " \n\n", 0600, path, sizeof(path));
	CU_ASSERT_EQUAL(http_token_load(path, sha, err, sizeof(err)), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "empty"));

	snprintf(path, sizeof(path), "%s/missing", tmpdir);
	CU_ASSERT_EQUAL(http_token_load(path, sha, err, sizeof(err)), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "No such file"));

	CU_ASSERT_EQUAL(http_token_load(tmpdir, sha, err, sizeof(err)), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "not a regular file"));

	char *big = malloc(HTTP_TOKEN_MAX + 2);
	memset(big, 'a', HTTP_TOKEN_MAX + 1);
	big[HTTP_TOKEN_MAX + 1] = '\0';
	write_file("big", big, 0600, path, sizeof(path));
	free(big);
	CU_ASSERT_EQUAL(http_token_load(path, sha, err, sizeof(err)), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "longer than"));
}

static void test_token_check(void)
{
	unsigned char sha[32];
	SHA256((const unsigned char *)"s3cret", 6, sha);

	CU_ASSERT_TRUE(http_token_check(sha, "Bearer s3cret"));
	CU_ASSERT_TRUE(http_token_check(sha, "bearer s3cret"));
	CU_ASSERT_TRUE(http_token_check(sha, "Bearer  s3cret "));
	CU_ASSERT_FALSE(http_token_check(sha, "Bearer s3cre"));
	CU_ASSERT_FALSE(http_token_check(sha, "Bearer s3cret2"));
	CU_ASSERT_FALSE(http_token_check(sha, "Bearer S3CRET"));
	CU_ASSERT_FALSE(http_token_check(sha, "Basic s3cret"));
	CU_ASSERT_FALSE(http_token_check(sha, "s3cret"));
	CU_ASSERT_FALSE(http_token_check(sha, "Bearer "));
	CU_ASSERT_FALSE(http_token_check(sha, ""));
	CU_ASSERT_FALSE(http_token_check(sha, NULL));
}

static const struct admin_command commands[] = {
	{ "slave.list", 1 },	     { "slave.add", 0 }, { "report.endpoints", 1 },
	{ "agent-token.create", 0 }, { NULL, 0 },
};

static void test_routes(void)
{
	static const struct {
		enum evhttp_cmd_type method;
		const char *path;
		int status;
		enum http_route_kind kind;
		const char *cmd;
	} cases[] = {
		{ EVHTTP_REQ_GET, "/livez", 0, HTTP_ROUTE_LIVEZ, NULL },
		{ EVHTTP_REQ_GET, "/readyz", 0, HTTP_ROUTE_READYZ, NULL },
		{ EVHTTP_REQ_GET, "/metrics", 0, HTTP_ROUTE_METRICS, NULL },
		{ EVHTTP_REQ_POST, "/metrics", 405, HTTP_ROUTE_METRICS, NULL },
		{ EVHTTP_REQ_GET, "/api/v1/slave.list", 0, HTTP_ROUTE_COMMAND, "slave.list" },
		{ EVHTTP_REQ_GET, "/api/v1/slave/list", 0, HTTP_ROUTE_COMMAND, "slave.list" },
		{ EVHTTP_REQ_POST, "/api/v1/slave/list", 405, HTTP_ROUTE_COMMAND, "slave.list" },
		{ EVHTTP_REQ_POST, "/api/v1/slave.add", 0, HTTP_ROUTE_COMMAND, "slave.add" },
		{ EVHTTP_REQ_GET, "/api/v1/slave.add", 405, HTTP_ROUTE_COMMAND, "slave.add" },
		{ EVHTTP_REQ_DELETE, "/api/v1/slave.add", 405, HTTP_ROUTE_COMMAND, "slave.add" },
		{ EVHTTP_REQ_GET, "/api/v1/report/endpoints", 0, HTTP_ROUTE_COMMAND,
		  "report.endpoints" },
		{ EVHTTP_REQ_POST, "/api/v1/agent-token/create", 0, HTTP_ROUTE_COMMAND,
		  "agent-token.create" },
		{ EVHTTP_REQ_GET, "/api/v1/slave", 404, 0, NULL },
		{ EVHTTP_REQ_GET, "/api/v1/", 404, 0, NULL },
		{ EVHTTP_REQ_GET, "/api/v1/Slave.List", 404, 0, NULL },
		{ EVHTTP_REQ_GET, "/api/v1/slave.list/", 404, 0, NULL },
		{ EVHTTP_REQ_GET, "/api/v2/slave.list", 404, 0, NULL },
		{ EVHTTP_REQ_GET, "/api/v1/slave list", 404, 0, NULL },
		{ EVHTTP_REQ_GET, "/livez/", 404, 0, NULL },
		{ EVHTTP_REQ_GET, "/", 404, 0, NULL },
		{ EVHTTP_REQ_GET, "", 404, 0, NULL },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct http_route r;
		http_route(commands, cases[i].method, cases[i].path, &r);
		if (r.status != cases[i].status)
			fprintf(stderr, "\n%s: status %d, want %d\n", cases[i].path, r.status,
				cases[i].status);
		CU_ASSERT_EQUAL(r.status, cases[i].status);
		if (cases[i].status == 404)
			continue;
		CU_ASSERT_EQUAL(r.kind, cases[i].kind);
		if (cases[i].cmd) {
			CU_ASSERT_PTR_NOT_NULL_FATAL(r.cmd);
			CU_ASSERT_STRING_EQUAL(r.cmd->name, cases[i].cmd);
		}
		if (cases[i].status == 405) {
			/* slave.add is the only command here that changes something. */
			bool post = cases[i].cmd && strcmp(cases[i].cmd, "slave.add") == 0;
			CU_ASSERT_STRING_EQUAL(r.allow, post ? "POST" : "GET");
		}
	}
	/* A name longer than any command is not looked up. */
	char longpath[256];
	snprintf(longpath, sizeof(longpath), "/api/v1/%0200d", 0);
	struct http_route r;
	http_route(commands, EVHTTP_REQ_GET, longpath, &r);
	CU_ASSERT_EQUAL(r.status, 404);
}

static void test_query_args(void)
{
	char err[256];
	json_t *a = http_query_args("name=paris&limit=20&force=true&neg=-3&s=a%20b&big="
				    "123456789012345678901234",
				    err, sizeof(err));
	CU_ASSERT_PTR_NOT_NULL_FATAL(a);
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(a, "name")), "paris");
	CU_ASSERT_EQUAL(json_integer_value(json_object_get(a, "limit")), 20);
	CU_ASSERT_TRUE(json_is_true(json_object_get(a, "force")));
	CU_ASSERT_EQUAL(json_integer_value(json_object_get(a, "neg")), -3);
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(a, "s")), "a b");
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(a, "big")),
			       "123456789012345678901234");
	json_decref(a);

	a = http_query_args(NULL, err, sizeof(err));
	CU_ASSERT_TRUE(json_is_object(a) && json_object_size(a) == 0);
	json_decref(a);

	CU_ASSERT_PTR_NULL(http_query_args("a=1&a=2", err, sizeof(err)));
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "given twice"));
	CU_ASSERT_PTR_NULL(http_query_args("=1", err, sizeof(err)));
	CU_ASSERT_PTR_NULL(http_query_args("a=%ff%fe", err, sizeof(err)));
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "UTF-8"));
}

/* ---- admin_dispatch ---- */

static struct admin_req *held;
static int done_calls;
static json_t *last_reply;

static void handler(struct admin_req *req, const char *cmd, json_t *args, void *arg)
{
	if (strcmp(cmd, "echo") == 0)
		admin_reply(req, json_deep_copy(args));
	else if (strcmp(cmd, "later") == 0)
		held = req;
	else
		admin_reply_error(req, "unknown command '%s'", cmd);
}

static void done(json_t *reply, void *arg)
{
	CU_ASSERT_PTR_EQUAL(arg, &done_calls);
	done_calls++;
	json_decref(last_reply);
	last_reply = json_incref(reply);
}

static void test_dispatch(void)
{
	char path[512], err[256];
	struct event_base *base = event_base_new();
	snprintf(path, sizeof(path), "%s/admin.sock", tmpdir);
	struct admin_server *srv = admin_server_new(base, path, handler, NULL, err, sizeof(err));
	CU_ASSERT_PTR_NOT_NULL_FATAL(srv);

	json_t *args = json_pack("{s:s}", "name", "paris");
	CU_ASSERT_EQUAL(admin_dispatch(srv, "echo", args, "test", done, &done_calls), 0);
	CU_ASSERT_EQUAL(done_calls, 1);
	CU_ASSERT_TRUE(json_is_true(json_object_get(last_reply, "ok")));
	CU_ASSERT_TRUE(json_equal(json_object_get(last_reply, "result"), args));
	json_decref(args);

	CU_ASSERT_EQUAL(admin_dispatch(srv, "nope", NULL, "test", done, &done_calls), 0);
	CU_ASSERT_EQUAL(done_calls, 2);
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(last_reply, "error")),
			       "unknown command 'nope'");

	/* Answered later, from another callback. */
	CU_ASSERT_EQUAL(admin_dispatch(srv, "later", NULL, "test", done, &done_calls), 0);
	CU_ASSERT_EQUAL(done_calls, 2);
	CU_ASSERT_PTR_NOT_NULL_FATAL(held);
	admin_reply(held, json_string("done"));
	held = NULL;
	CU_ASSERT_EQUAL(done_calls, 3);
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(last_reply, "result")), "done");

	/* Still pending when the server goes: answered, never lost. */
	CU_ASSERT_EQUAL(admin_dispatch(srv, "later", NULL, "test", done, &done_calls), 0);
	admin_server_free(srv);
	CU_ASSERT_EQUAL(done_calls, 4);
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(last_reply, "error")),
			       "daemon shutting down");
	json_decref(last_reply);
	last_reply = NULL;
	event_base_free(base);
}

int main(void)
{
	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	CU_pSuite s = CU_add_suite("http", suite_init, suite_clean);
	CU_add_test(s, "token file", test_token_load);
	CU_add_test(s, "token check", test_token_check);
	CU_add_test(s, "paths to commands", test_routes);
	CU_add_test(s, "query arguments", test_query_args);
	CU_add_test(s, "admin_dispatch", test_dispatch);
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	unsigned fails = CU_get_number_of_failures();
	CU_cleanup_registry();
	return fails ? 1 : 0;
}
