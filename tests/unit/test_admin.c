#include <CUnit/Basic.h>

#include <errno.h>
#include <grp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "admin.h"
#include "log.h"

#define MiB (1024 * 1024)
/* setup() cannot fail a test, so each test checks that its server came up. */
#define REQUIRE_SERVER() CU_ASSERT_PTR_NOT_NULL_FATAL(fx.srv)

/*
 * The server runs in this process's event loop; each client runs in a
 * forked child, which writes its outcome to a pipe and exits. The loop
 * stops once the child is done and no request is held by the handler.
 */
struct fixture {
	struct event_base *base;
	struct admin_server *srv;
	struct event *timer;	/* answers or shuts down for a held request */
	struct event *pipe_ev;	/* the child's outcome */
	struct admin_req *held; /* request the handler answers later */
	bool shutdown_on_timer;
	bool child_done;
	int calls;
	int min_calls; /* the loop also waits for this many handler calls */
	struct evbuffer *out;
	char dir[64];
	char path[128];
};

static struct fixture fx;

static void maybe_stop(void)
{
	if (fx.child_done && !fx.held && fx.calls >= fx.min_calls)
		event_base_loopbreak(fx.base);
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
	if (fx.shutdown_on_timer) {
		admin_server_free(fx.srv);
		fx.srv = NULL;
	} else {
		admin_reply(fx.held, json_pack("{s:b}", "deferred", 1));
	}
	fx.held = NULL;
	maybe_stop();
}

static void handler(struct admin_req *req, const char *cmd, json_t *args, void *arg)
{
	struct timeval later = { 0, 100 * 1000 };

	fx.calls++;
	CU_ASSERT_PTR_EQUAL(arg, &fx);
	CU_ASSERT_TRUE(json_is_object(args));
	if (strcmp(cmd, "echo") == 0) {
		admin_reply(req, json_deep_copy(args));
	} else if (strcmp(cmd, "size") == 0) {
		json_t *blob = json_object_get(args, "blob");
		admin_reply(req,
			    json_pack("{s:I}", "blob_len", (json_int_t)json_string_length(blob)));
	} else if (strcmp(cmd, "twice") == 0) {
		admin_reply(req, json_string("first"));
		admin_reply_error(req, "second");
	} else if (strcmp(cmd, "fail") == 0) {
		admin_reply_error(req, "refused: %s",
				  json_string_value(json_object_get(args, "why")));
	} else if (strcmp(cmd, "defer") == 0 || strcmp(cmd, "hold") == 0) {
		fx.held = req;
		fx.shutdown_on_timer = strcmp(cmd, "hold") == 0;
		evtimer_add(fx.timer, &later);
	} else {
		admin_reply_error(req, "unknown command %s", cmd);
	}
}

static void setup(void)
{
	char err[256];

	memset(&fx, 0, sizeof(fx));
	snprintf(fx.dir, sizeof(fx.dir), "/tmp/strata-admin-XXXXXX");
	if (!mkdtemp(fx.dir)) {
		fprintf(stderr, "mkdtemp: %s\n", strerror(errno));
		return;
	}
	snprintf(fx.path, sizeof(fx.path), "%s/admin.sock", fx.dir);
	fx.base = event_base_new();
	fx.timer = evtimer_new(fx.base, timer_cb, NULL);
	fx.out = evbuffer_new();
	fx.srv = admin_server_new(fx.base, fx.path, handler, &fx, err, sizeof(err));
	if (!fx.srv)
		fprintf(stderr, "admin_server_new: %s\n", err);
}

static void teardown(void)
{
	admin_server_free(fx.srv);
	event_free(fx.timer);
	evbuffer_free(fx.out);
	event_base_free(fx.base);
	unlink(fx.path);
	rmdir(fx.dir);
}

static void pipe_cb(evutil_socket_t fd, short what, void *arg)
{
	int n = evbuffer_read(fx.out, fd, 65536);

	if (n > 0)
		return;
	fx.child_done = true;
	event_del(fx.pipe_ev);
	maybe_stop();
}

/* Test paths are short (under /tmp); a longer one fails the bind or connect. */
static struct sockaddr_un unix_addr(const char *path)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	size_t len = strlen(path);

	if (len < sizeof(sun.sun_path))
		memcpy(sun.sun_path, path, len);
	return sun;
}

/* Returns the outcome as a malloc'd string. */
typedef char *(*child_fn)(const void *arg);

/* Runs fn in a child while the loop serves; returns the child's outcome (caller frees). */
static char *run_child(child_fn fn, const void *arg)
{
	int pfd[2];
	struct timeval guard = { 20, 0 };

	if (pipe(pfd) < 0)
		return strdup("ERR pipe");
	pid_t pid = fork();
	if (pid < 0)
		return strdup("ERR fork");
	if (pid == 0) {
		close(pfd[0]);
		char *outcome = fn(arg);
		size_t len = outcome ? strlen(outcome) : 0, off = 0;
		while (off < len) {
			ssize_t w = write(pfd[1], outcome + off, len - off);
			if (w <= 0)
				break;
			off += (size_t)w;
		}
		/* Outcomes are malloc'd: a leak checker sees the child too. */
		free(outcome);
		_exit(0);
	}
	close(pfd[1]);
	fx.child_done = false;
	evbuffer_drain(fx.out, evbuffer_get_length(fx.out));
	fx.pipe_ev = event_new(fx.base, pfd[0], EV_READ | EV_PERSIST, pipe_cb, NULL);
	event_add(fx.pipe_ev, NULL);
	/* Only a safety net against a hung test, never a measured time. */
	event_base_loopexit(fx.base, &guard);
	event_base_dispatch(fx.base);
	event_free(fx.pipe_ev);
	close(pfd[0]);
	int status;
	waitpid(pid, &status, 0);
	CU_ASSERT_TRUE(fx.child_done);
	CU_ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);

	size_t len = evbuffer_get_length(fx.out);
	char *s = malloc(len + 1);
	evbuffer_remove(fx.out, s, len);
	s[len] = '\0';
	return s;
}

struct call_spec {
	const char *path;
	const char *cmd;
	json_t *args;
	int timeout_s;
	bool as_nobody;
};

static char *call_child(const void *arg)
{
	const struct call_spec *c = arg;
	char err[512];
	char *s;

	if (c->as_nobody && (setgroups(0, NULL) < 0 || setgid(65534) < 0 || setuid(65534) < 0))
		return strdup("ERR cannot become uid 65534");
	json_t *reply = admin_call(c->path, c->cmd, c->args, c->timeout_s, err, sizeof(err));
	if (!reply) {
		if (asprintf(&s, "ERR %s", err) < 0)
			return strdup("ERR asprintf");
		return s;
	}
	char *text = json_dumps(reply, JSON_COMPACT);
	json_decref(reply);
	int n = asprintf(&s, "OK %s", text);
	free(text);
	return n < 0 ? strdup("ERR asprintf") : s;
}

enum raw_mode {
	RAW_WAIT,	/* send, then read the answer */
	RAW_HALF_CLOSE, /* send, shut down the sending side, read the answer */
	RAW_HANG_UP,	/* send and close at once */
};

struct raw_spec {
	const char *path;
	const char *bytes;
	size_t len;
	enum raw_mode mode;
};

static char *raw_child(const void *arg)
{
	const struct raw_spec *r = arg;
	struct sockaddr_un sun = unix_addr(r->path);
	char reply[4096];
	size_t got = 0;
	char *s;

	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0)
		return strdup("ERR connect");
	for (size_t off = 0; off < r->len;) {
		ssize_t w = send(fd, r->bytes + off, r->len - off, MSG_NOSIGNAL);
		if (w <= 0)
			break;
		off += (size_t)w;
	}
	if (r->mode == RAW_HANG_UP) {
		close(fd);
		return strdup("SENT");
	}
	if (r->mode == RAW_HALF_CLOSE)
		shutdown(fd, SHUT_WR);
	for (;;) {
		ssize_t n = read(fd, reply + got, sizeof(reply) - 1 - got);
		if (n <= 0 || got + (size_t)n == sizeof(reply) - 1)
			break;
		got += (size_t)n;
	}
	reply[got] = '\0';
	close(fd);
	if (asprintf(&s, "RAW %s", reply) < 0)
		return strdup("ERR asprintf");
	return s;
}

/* Parses "OK {...}" or "RAW {...}\n" into the reply object; NULL otherwise. */
static json_t *outcome_reply(const char *outcome)
{
	const char *json;

	if (strncmp(outcome, "OK ", 3) == 0)
		json = outcome + 3;
	else if (strncmp(outcome, "RAW ", 4) == 0)
		json = outcome + 4;
	else
		return NULL;
	return json_loads(json, JSON_DISABLE_EOF_CHECK, NULL);
}

/* Asserts a reply with ok=false whose error contains want. */
static void assert_error_reply(const char *outcome, const char *want)
{
	json_t *reply = outcome_reply(outcome);

	if (!reply)
		fprintf(stderr, "no reply: %s\n", outcome);
	CU_ASSERT_PTR_NOT_NULL_FATAL(reply);
	CU_ASSERT_TRUE(json_is_false(json_object_get(reply, "ok")));
	const char *error = json_string_value(json_object_get(reply, "error"));
	CU_ASSERT_PTR_NOT_NULL(error);
	if (error && !strstr(error, want)) {
		fprintf(stderr, "error \"%s\" lacks \"%s\"\n", error, want);
		CU_FAIL("unexpected error text");
	}
	json_decref(reply);
}

static void test_round_trip(void)
{
	REQUIRE_SERVER();
	static const struct {
		const char *cmd;
		const char *args;
		bool ok;
		const char *want; /* result as JSON, or a piece of the error */
	} cases[] = {
		{ "echo", "{\"name\":\"s1\",\"n\":3,\"nested\":{\"a\":[1,2]}}", true,
		  "{\"name\":\"s1\",\"n\":3,\"nested\":{\"a\":[1,2]}}" },
		{ "echo", NULL, true, "{}" },
		{ "twice", NULL, true, "\"first\"" },
		{ "fail", "{\"why\":\"because\"}", false, "refused: because" },
		{ "nosuch", NULL, false, "unknown command nosuch" },
	};
	struct stat st;

	CU_ASSERT_EQUAL_FATAL(stat(fx.path, &st), 0);
	CU_ASSERT_TRUE(S_ISSOCK(st.st_mode));
	CU_ASSERT_EQUAL(st.st_mode & 0777, 0660);

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		json_t *args = cases[i].args ? json_loads(cases[i].args, 0, NULL) : NULL;
		struct call_spec c = { fx.path, cases[i].cmd, args, 5, false };
		char *out = run_child(call_child, &c);
		if (cases[i].ok) {
			json_t *reply = outcome_reply(out);
			json_t *want = json_loads(cases[i].want, JSON_DECODE_ANY, NULL);
			CU_ASSERT_PTR_NOT_NULL_FATAL(reply);
			CU_ASSERT_TRUE(json_is_true(json_object_get(reply, "ok")));
			CU_ASSERT_TRUE(json_equal(json_object_get(reply, "result"), want));
			json_decref(want);
			json_decref(reply);
		} else {
			assert_error_reply(out, cases[i].want);
		}
		free(out);
		json_decref(args);
	}
	CU_ASSERT_EQUAL(fx.calls, 5);
}

static void test_deferred_reply(void)
{
	REQUIRE_SERVER();
	struct call_spec c = { fx.path, "defer", NULL, 5, false };
	char *out = run_child(call_child, &c);
	json_t *reply = outcome_reply(out);

	CU_ASSERT_PTR_NOT_NULL_FATAL(reply);
	CU_ASSERT_TRUE(json_is_true(json_object_get(reply, "ok")));
	CU_ASSERT_TRUE(json_is_true(json_object_get(json_object_get(reply, "result"), "deferred")));
	CU_ASSERT_EQUAL(fx.calls, 1);
	CU_ASSERT_PTR_NULL(fx.held);
	json_decref(reply);
	free(out);
}

static void test_bad_requests(void)
{
	REQUIRE_SERVER();
	static const struct {
		const char *line;
		const char *want;
	} cases[] = {
		{ "{\"args\":{}}\n", "no \"cmd\"" },
		{ "{\"cmd\":42}\n", "\"cmd\" must be a non-empty string" },
		{ "{\"cmd\":\"\"}\n", "\"cmd\" must be a non-empty string" },
		{ "{\"cmd\":\"echo\\nforged\"}\n", "must not contain control characters" },
		{ "{\"cmd\":\"echo\\u0000\"}\n", "not valid JSON" },
		{ "{\"cmd\":\"echo\",\"args\":[1]}\n", "\"args\" must be an object" },
		{ "{\"cmd\":\"echo\",\"args\":null}\n", "\"args\" must be an object" },
		{ "{\"cmd\":\"echo\",\"extra\":1}\n", "unknown member \"extra\"" },
		{ "[\"echo\"]\n", "must be a JSON object" },
		{ "{\"cmd\":\"echo\"\n", "not valid JSON" },
		{ "{\"cmd\":\"echo\"} trailing\n", "not valid JSON" },
		{ "{\"cmd\":\"echo\",\"cmd\":\"fail\"}\n", "not valid JSON" },
		{ "\n", "not valid JSON" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct raw_spec r = { fx.path, cases[i].line, strlen(cases[i].line), RAW_WAIT };
		char *out = run_child(raw_child, &r);
		assert_error_reply(out, cases[i].want);
		free(out);
	}
	CU_ASSERT_EQUAL(fx.calls, 0);
}

#define SIZE_HEAD "{\"cmd\":\"size\",\"args\":{\"blob\":\""
#define SIZE_TAIL "\"}}"
#define SIZE_OVERHEAD (sizeof(SIZE_HEAD) - 1 + sizeof(SIZE_TAIL) - 1)

/* A "size" request line of exactly len bytes (without '\n'), then '\n'. */
static char *request_of_size(size_t len)
{
	static const char head[] = SIZE_HEAD;
	static const char tail[] = SIZE_TAIL;
	char *s = malloc(len + 2);

	memcpy(s, head, sizeof(head) - 1);
	memset(s + sizeof(head) - 1, 'x', len - (sizeof(head) - 1) - (sizeof(tail) - 1));
	memcpy(s + len - (sizeof(tail) - 1), tail, sizeof(tail) - 1);
	s[len] = '\n';
	s[len + 1] = '\0';
	return s;
}

static void test_size_limit(void)
{
	REQUIRE_SERVER();
	static const struct {
		size_t len;
		bool ok;
	} cases[] = { { MiB, true }, { MiB + 1, false } };

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *line = request_of_size(cases[i].len);
		struct raw_spec r = { fx.path, line, cases[i].len + 1, RAW_WAIT };
		char *out = run_child(raw_child, &r);
		if (cases[i].ok) {
			json_t *reply = outcome_reply(out);
			json_t *result = json_object_get(reply, "result");
			CU_ASSERT_PTR_NOT_NULL(reply);
			CU_ASSERT_TRUE(json_is_true(json_object_get(reply, "ok")));
			CU_ASSERT_EQUAL(json_integer_value(json_object_get(result, "blob_len")),
					(json_int_t)(cases[i].len - SIZE_OVERHEAD));
			json_decref(reply);
		} else {
			assert_error_reply(out, "request larger than 1 MiB");
		}
		free(out);
		free(line);
	}
	CU_ASSERT_EQUAL(fx.calls, 1);

	/* The client keeps reading after the daemon stops taking its request. */
	char *blob = malloc(2 * MiB + 1);
	memset(blob, 'y', 2 * MiB);
	blob[2 * MiB] = '\0';
	json_t *args = json_pack("{s:s}", "blob", blob);
	struct call_spec c = { fx.path, "echo", args, 5, false };
	char *out = run_child(call_child, &c);
	assert_error_reply(out, "request larger than 1 MiB");
	CU_ASSERT_EQUAL(fx.calls, 1);
	free(out);
	json_decref(args);
	free(blob);
}

static void test_peer_cred_refused(void)
{
	REQUIRE_SERVER();
	if (geteuid() != 0) {
		CU_PASS("not running as root: peer-credential refusal not exercised");
		fprintf(stderr, "\n  skipped: peer-credential refusal needs root\n");
		return;
	}
	/* Open the file permissions so that only the SO_PEERCRED check stands in the way. */
	CU_ASSERT_EQUAL_FATAL(chmod(fx.dir, 0711), 0);
	CU_ASSERT_EQUAL_FATAL(chmod(fx.path, 0666), 0);
	struct call_spec c = { fx.path, "echo", NULL, 5, true };
	char *out = run_child(call_child, &c);
	CU_ASSERT_EQUAL(strncmp(out, "ERR ", 4), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "closed the connection without an answer"));
	CU_ASSERT_EQUAL(fx.calls, 0);
	free(out);

	/* The owner is still served. */
	c.as_nobody = false;
	out = run_child(call_child, &c);
	CU_ASSERT_EQUAL(strncmp(out, "OK ", 3), 0);
	CU_ASSERT_EQUAL(fx.calls, 1);
	free(out);
}

static void test_second_server_refused(void)
{
	REQUIRE_SERVER();
	char err[256], want[256];

	struct admin_server *second =
		admin_server_new(fx.base, fx.path, handler, &fx, err, sizeof(err));
	CU_ASSERT_PTR_NULL(second);
	admin_server_free(second);
	snprintf(want, sizeof(want), "%s: another daemon is listening there", fx.path);
	CU_ASSERT_STRING_EQUAL(err, want);

	/* The live daemon keeps its socket. */
	struct call_spec c = { fx.path, "echo", NULL, 5, false };
	char *out = run_child(call_child, &c);
	CU_ASSERT_EQUAL(strncmp(out, "OK ", 3), 0);
	free(out);
}

enum leftover { LEFT_STALE_SOCKET, LEFT_REGULAR_FILE };

static void make_leftover(const char *path, enum leftover kind)
{
	if (kind == LEFT_STALE_SOCKET) {
		struct sockaddr_un sun = unix_addr(path);
		int fd = socket(AF_UNIX, SOCK_STREAM, 0);
		CU_ASSERT_EQUAL(bind(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
		close(fd);
	} else {
		FILE *f = fopen(path, "w");
		CU_ASSERT_PTR_NOT_NULL_FATAL(f);
		fputs("not a socket\n", f);
		fclose(f);
	}
}

static void test_leftover_path(void)
{
	REQUIRE_SERVER();
	static const struct {
		enum leftover kind;
		bool ok;
		const char *want;
	} cases[] = {
		{ LEFT_STALE_SOCKET, true, NULL },
		{ LEFT_REGULAR_FILE, false, "exists and is not a socket" },
	};
	char err[256];

	admin_server_free(fx.srv);
	fx.srv = NULL;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		make_leftover(fx.path, cases[i].kind);
		fx.srv = admin_server_new(fx.base, fx.path, handler, &fx, err, sizeof(err));
		if (!cases[i].ok) {
			struct stat st;
			CU_ASSERT_PTR_NULL(fx.srv);
			CU_ASSERT_PTR_NOT_NULL(strstr(err, cases[i].want));
			CU_ASSERT_EQUAL(stat(fx.path, &st), 0);
			CU_ASSERT_TRUE(S_ISREG(st.st_mode));
			unlink(fx.path);
			continue;
		}
		CU_ASSERT_PTR_NOT_NULL_FATAL(fx.srv);
		struct call_spec c = { fx.path, "echo", NULL, 5, false };
		char *out = run_child(call_child, &c);
		CU_ASSERT_EQUAL(strncmp(out, "OK ", 3), 0);
		free(out);
		admin_server_free(fx.srv);
		fx.srv = NULL;
	}
}

static void test_shutdown_answers_pending(void)
{
	REQUIRE_SERVER();
	struct call_spec c = { fx.path, "hold", NULL, 5, false };
	char *out = run_child(call_child, &c);
	struct stat st;

	assert_error_reply(out, "daemon shutting down");
	CU_ASSERT_PTR_NULL(fx.srv);
	CU_ASSERT_EQUAL(stat(fx.path, &st), -1);
	CU_ASSERT_EQUAL(errno, ENOENT);
	free(out);
}

static void test_client_gone(void)
{
	REQUIRE_SERVER();
	static const char line[] = "{\"cmd\":\"defer\"}\n";

	/* The handler answers a client that hung up; ASan checks nothing freed is touched. */
	struct raw_spec r = { fx.path, line, sizeof(line) - 1, RAW_HANG_UP };
	fx.min_calls = 1;
	char *out = run_child(raw_child, &r);
	CU_ASSERT_STRING_EQUAL(out, "SENT");
	CU_ASSERT_EQUAL(fx.calls, 1);
	CU_ASSERT_PTR_NULL(fx.held);
	free(out);

	/* A client that only shut down its sending side still gets the answer. */
	r.mode = RAW_HALF_CLOSE;
	fx.min_calls = 2;
	out = run_child(raw_child, &r);
	json_t *reply = outcome_reply(out);
	CU_ASSERT_PTR_NOT_NULL(reply);
	CU_ASSERT_TRUE(json_is_true(json_object_get(reply, "ok")));
	CU_ASSERT_EQUAL(fx.calls, 2);
	json_decref(reply);
	free(out);
}

static void test_client_errors(void)
{
	REQUIRE_SERVER();
	char err[512], want[512];
	char missing[160];

	snprintf(missing, sizeof(missing), "%s/missing.sock", fx.dir);
	CU_ASSERT_PTR_NULL(admin_call(missing, "echo", NULL, 5, err, sizeof(err)));
	snprintf(want, sizeof(want),
		 "cannot connect to %s: No such file or directory; is the daemon running?",
		 missing);
	CU_ASSERT_STRING_EQUAL(err, want);

	/* A socket that accepts but never answers. */
	char mute[160];
	snprintf(mute, sizeof(mute), "%s/mute.sock", fx.dir);
	struct sockaddr_un sun = unix_addr(mute);
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	CU_ASSERT_EQUAL_FATAL(bind(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	CU_ASSERT_EQUAL_FATAL(listen(fd, 4), 0);
	CU_ASSERT_PTR_NULL(admin_call(mute, "echo", NULL, 1, err, sizeof(err)));
	snprintf(want, sizeof(want), "no answer from %s within 1 s", mute);
	CU_ASSERT_STRING_EQUAL(err, want);
	close(fd);
	unlink(mute);
}

/* The decoder alone: what the server answers above, without a socket. */
static void test_parse_table(void)
{
	static const struct {
		const char *buf;
		int want; /* 1 parsed, 0 incomplete, -1 refused */
		const char *cmd_or_err;
		const char *args; /* the args the handler gets, as compact JSON */
	} cases[] = {
		{ "{\"cmd\":\"status\"}\n", 1, "status", "{}" },
		{ "{\"cmd\":\"slave.add\",\"args\":{\"name\":\"a\"}}\n", 1, "slave.add",
		  "{\"name\": \"a\"}" },
		{ "{\"args\":{},\"cmd\":\"x\"}\nignored after the line", 1, "x", "{}" },
		{ "{\"cmd\":\"status\"}", 0, "", NULL },
		{ "", 0, "", NULL },
		{ "{\"args\":{}}\n", -1, "request has no \"cmd\"", NULL },
		{ "{\"cmd\":42}\n", -1, "\"cmd\" must be a non-empty string", NULL },
		{ "{\"cmd\":null}\n", -1, "\"cmd\" must be a non-empty string", NULL },
		{ "{\"cmd\":\"\"}\n", -1, "\"cmd\" must be a non-empty string", NULL },
		{ "{\"cmd\":\"a\\tb\"}\n", -1, "\"cmd\" must not contain control characters",
		  NULL },
		{ "{\"cmd\":\"a\\u007f\"}\n", -1, "\"cmd\" must not contain control characters",
		  NULL },
		{ "{\"cmd\":\"x\",\"args\":[]}\n", -1, "\"args\" must be an object", NULL },
		{ "{\"cmd\":\"x\",\"args\":\"a=b\"}\n", -1, "\"args\" must be an object", NULL },
		{ "{\"cmd\":\"x\",\"args\":null}\n", -1, "\"args\" must be an object", NULL },
		{ "{\"cmd\":\"x\",\"id\":1}\n", -1, "unknown member \"id\" in request", NULL },
		{ "\"status\"\n", -1, "'[' or '{' expected", NULL },
		{ "[]\n", -1, "request must be a JSON object", NULL },
		{ "42\n", -1, "'[' or '{' expected", NULL },
		{ "{\"cmd\":\"x\",\"cmd\":\"y\"}\n", -1, "request is not valid JSON", NULL },
		{ "{\"cmd\":\"x\"}{}\n", -1, "request is not valid JSON", NULL },
		{ "\xff\n", -1, "request is not valid JSON", NULL },
		{ "\n", -1, "request is not valid JSON", NULL },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct admin_request r;
		char err[256] = "";
		int rc =
		    admin_parse_request(cases[i].buf, strlen(cases[i].buf), &r, err, sizeof(err));
		CU_ASSERT_EQUAL(rc, cases[i].want);
		if (rc != cases[i].want)
			fprintf(stderr, "case %zu: rc %d err '%s'\n", i, rc, err);
		if (rc == 1) {
			CU_ASSERT_STRING_EQUAL(r.cmd, cases[i].cmd_or_err);
			char *args = json_dumps(r.args, JSON_SORT_KEYS);
			CU_ASSERT_STRING_EQUAL(args, cases[i].args);
			free(args);
		} else {
			CU_ASSERT_PTR_NULL(r.request);
			CU_ASSERT_PTR_NULL(r.args);
		}
		if (rc == -1 && !strstr(err, cases[i].cmd_or_err)) {
			fprintf(stderr, "case %zu: err '%s'\n", i, err);
			CU_FAIL("wrong reason");
		}
		admin_request_clear(&r);
	}
}

/* The limit counts the line without its '\n'; a longer line is refused
 * whether or not its '\n' has come. */
static void test_parse_size_limit(void)
{
	struct admin_request r;
	char err[256];
	char *line = request_of_size(MiB);

	CU_ASSERT_EQUAL(admin_parse_request(line, MiB + 1, &r, err, sizeof(err)), 1);
	admin_request_clear(&r);
	/* Without its '\n' the same bytes are still incomplete. */
	CU_ASSERT_EQUAL(admin_parse_request(line, MiB, &r, err, sizeof(err)), 0);
	free(line);

	line = request_of_size(MiB + 1);
	CU_ASSERT_EQUAL(admin_parse_request(line, MiB + 2, &r, err, sizeof(err)), -1);
	CU_ASSERT_STRING_EQUAL(err, "request larger than 1 MiB");
	CU_ASSERT_EQUAL(admin_parse_request(line, MiB + 1, &r, err, sizeof(err)), -1);
	CU_ASSERT_STRING_EQUAL(err, "request larger than 1 MiB");
	free(line);
}

int main(void)
{
	/* libevent writes with plain write(); a vanished client must not kill the server. */
	signal(SIGPIPE, SIG_IGN);
	log_init("test_admin", false, LOG_LVL_WARN);
	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	CU_pSuite s = CU_add_suite_with_setup_and_teardown("admin", NULL, NULL, setup, teardown);
	CU_add_test(s, "round trip with args, errors from the handler", test_round_trip);
	CU_add_test(s, "deferred reply from a timer", test_deferred_reply);
	CU_add_test(s, "malformed requests answered with a reason", test_bad_requests);
	CU_add_test(s, "1 MiB request limit", test_size_limit);
	CU_add_test(s, "foreign uid refused by peer credentials", test_peer_cred_refused);
	CU_add_test(s, "second server on a live path refused", test_second_server_refused);
	CU_add_test(s, "stale socket replaced, other files kept", test_leftover_path);
	CU_add_test(s, "shutdown answers a pending request", test_shutdown_answers_pending);
	CU_add_test(s, "client gone or half-closed before a deferred reply", test_client_gone);
	CU_add_test(s, "client connect and timeout errors", test_client_errors);
	CU_pSuite p = CU_add_suite("admin_parse_request", NULL, NULL);
	CU_add_test(p, "requests accepted, incomplete and refused", test_parse_table);
	CU_add_test(p, "1 MiB line limit with and without the newline", test_parse_size_limit);
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	unsigned fails = CU_get_number_of_failures();
	CU_cleanup_registry();
	return fails ? 1 : 0;
}
