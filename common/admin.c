#include "admin.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/listener.h>

#include "clk.h"
#include "log.h"
#include "net.h"

/* A reply far beyond any report is a broken daemon, not something to buffer. */
#define ADMIN_MAX_REPLY (64 * 1024 * 1024)
#define ADMIN_READ_TIMEOUT_S 30
#define ADMIN_WRITE_TIMEOUT_S 30
#define ADMIN_BACKLOG 16

enum admin_req_state {
	ADMIN_REQ_READING,  /* waiting for the request line */
	ADMIN_REQ_PENDING,  /* handed to the handler, no reply yet */
	ADMIN_REQ_ORPHANED, /* the client hung up; the handler still holds req */
	ADMIN_REQ_FLUSHING, /* reply queued, close once it is written */
	ADMIN_REQ_CLOSING,  /* reclaimed by reap_ev after this loop pass */
};

static const char *const admin_req_state_names[] = { "reading", "pending", "orphaned", "flushing",
						     "closing" };

struct admin_req {
	struct admin_server *srv;
	unsigned id;
	enum admin_req_state state;
	struct bufferevent *bev; /* NULL once an orphaned connection is closed */
	struct event *reap_ev;	 /* frees outside the bufferevent's own callbacks */
	size_t scanned;		 /* input bytes already searched for '\n' */
	int uid;
	int pid;
	json_t *request;
	json_t *args;
	admin_done_fn done; /* set for admin_dispatch(): no connection, reply to done */
	void *done_arg;
	TAILQ_ENTRY(admin_req) entry;
};

struct admin_server {
	struct event_base *base;
	struct evconnlistener *listener;
	admin_handler handler;
	void *arg;
	unsigned next_id;
	TAILQ_HEAD(, admin_req) reqs;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
};

static void admin_req_enter(struct admin_req *req, enum admin_req_state state)
{
	log_debug("admin: #%u %s -> %s", req->id, admin_req_state_names[req->state],
		  admin_req_state_names[state]);
	req->state = state;
}

static int admin_sockaddr(const char *path, struct sockaddr_un *sun, char *err, size_t errlen)
{
	memset(sun, 0, sizeof(*sun));
	sun->sun_family = AF_UNIX;
	if (path[0] == '\0' || strlen(path) >= sizeof(sun->sun_path)) {
		snprintf(err, errlen, "%s: socket path empty or too long (at most %zu bytes)", path,
			 sizeof(sun->sun_path) - 1);
		return -1;
	}
	memcpy(sun->sun_path, path, strlen(path));
	return 0;
}

static void admin_req_free(struct admin_req *req)
{
	TAILQ_REMOVE(&req->srv->reqs, req, entry);
	if (req->bev)
		bufferevent_free(req->bev);
	if (req->reap_ev)
		event_free(req->reap_ev);
	json_decref(req->request);
	json_decref(req->args);
	free(req);
}

/* Reclaim after the current callback has returned: never free a bufferevent under its feet. */
static void admin_req_schedule_reap(struct admin_req *req)
{
	event_active(req->reap_ev, EV_TIMEOUT, 1);
}

static void admin_req_reap_cb(evutil_socket_t fd, short what, void *arg)
{
	struct admin_req *req = arg;

	if (req->state == ADMIN_REQ_ORPHANED) {
		/* The handler still holds req; only the connection goes. */
		if (req->bev) {
			bufferevent_free(req->bev);
			req->bev = NULL;
		}
		return;
	}
	admin_req_free(req);
}

/* Queues the reply line and closes once written; steals reply. */
static void admin_req_send(struct admin_req *req, json_t *reply)
{
	if (req->done) {
		req->done(reply, req->done_arg);
		json_decref(reply);
		admin_req_free(req);
		return;
	}
	char *text = json_dumps(reply, JSON_COMPACT);

	json_decref(reply);
	if (!text) {
		text = strdup("{\"ok\":false,\"error\":\"the reply could not be encoded\"}");
		if (!text)
			log_fatalx("admin: out of memory");
	}
	if (!req->bev) {
		free(text);
		admin_req_free(req);
		return;
	}
	struct timeval wt = { ADMIN_WRITE_TIMEOUT_S, 0 };
	admin_req_enter(req, ADMIN_REQ_FLUSHING);
	bufferevent_disable(req->bev, EV_READ);
	bufferevent_set_timeouts(req->bev, NULL, &wt);
	if (bufferevent_write(req->bev, text, strlen(text)) < 0 ||
	    bufferevent_write(req->bev, "\n", 1) < 0) {
		log_warnx("admin: #%u cannot queue the reply", req->id);
		admin_req_enter(req, ADMIN_REQ_CLOSING);
		admin_req_schedule_reap(req);
	}
	free(text);
}

static void admin_req_send_error(struct admin_req *req, const char *msg)
{
	json_t *reply = json_pack("{s:b,s:s}", "ok", 0, "error", msg);

	if (!reply)
		reply = json_pack("{s:b,s:s}", "ok", 0, "error", "error text is not valid UTF-8");
	admin_req_send(req, reply);
}

void admin_reply(struct admin_req *req, json_t *result)
{
	json_t *reply = json_object();

	json_object_set_new(reply, "ok", json_true());
	json_object_set_new(reply, "result", result ? result : json_null());
	if (req->state != ADMIN_REQ_PENDING && req->state != ADMIN_REQ_ORPHANED) {
		log_warnx("admin: #%u answered twice, second answer dropped", req->id);
		json_decref(reply);
		return;
	}
	if (req->state == ADMIN_REQ_ORPHANED) {
		json_decref(reply);
		admin_req_free(req);
		return;
	}
	admin_req_send(req, reply);
}

void admin_reply_error(struct admin_req *req, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (req->state != ADMIN_REQ_PENDING && req->state != ADMIN_REQ_ORPHANED) {
		log_warnx("admin: #%u answered twice, second answer dropped", req->id);
		return;
	}
	if (req->state == ADMIN_REQ_ORPHANED) {
		admin_req_free(req);
		return;
	}
	admin_req_send_error(req, msg);
}

void admin_request_clear(struct admin_request *r)
{
	json_decref(r->request);
	json_decref(r->args);
	r->request = r->args = NULL;
	r->cmd = NULL;
}

/* Checks the shape of one request line (without its '\n'). */
static int admin_parse_line(const char *line, size_t len, struct admin_request *out, char *err,
			    size_t errlen)
{
	json_error_t jerr;
	json_t *obj = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr);
	const char *key;
	json_t *value;

	if (!obj) {
		snprintf(err, errlen, "request is not valid JSON: %s (column %d)", jerr.text,
			 jerr.column);
		return -1;
	}
	out->request = obj;
	if (!json_is_object(obj)) {
		snprintf(err, errlen, "request must be a JSON object");
		return -1;
	}
	json_object_foreach (obj, key, value) {
		if (strcmp(key, "cmd") != 0 && strcmp(key, "args") != 0) {
			snprintf(err, errlen, "unknown member \"%.64s\" in request", key);
			return -1;
		}
	}
	json_t *cmd = json_object_get(obj, "cmd");
	if (!cmd) {
		snprintf(err, errlen, "request has no \"cmd\"");
		return -1;
	}
	if (!json_is_string(cmd) || json_string_length(cmd) == 0) {
		snprintf(err, errlen, "\"cmd\" must be a non-empty string");
		return -1;
	}
	/* cmd goes into the log verbatim, so it must not be able to forge lines. */
	const char *name = json_string_value(cmd);
	for (const char *c = name; *c; c++) {
		if ((unsigned char)*c < 0x20 || *c == 0x7f) {
			snprintf(err, errlen, "\"cmd\" must not contain control characters");
			return -1;
		}
	}
	json_t *args = json_object_get(obj, "args");
	if (args && !json_is_object(args)) {
		snprintf(err, errlen, "\"args\" must be an object");
		return -1;
	}
	/* Handlers always get an object, so they never test for a missing one. */
	out->args = args ? json_incref(args) : json_object();
	if (!out->args) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	out->cmd = name;
	return 1;
}

int admin_parse_request(const char *buf, size_t len, struct admin_request *out, char *err,
			size_t errlen)
{
	size_t window = len < (size_t)ADMIN_MAX_REQUEST + 1 ? len : (size_t)ADMIN_MAX_REQUEST + 1;
	const char *nl = memchr(buf, '\n', window);

	memset(out, 0, sizeof(*out));
	if (!nl) {
		if (len <= ADMIN_MAX_REQUEST)
			return 0;
		snprintf(err, errlen, "request larger than 1 MiB");
		return -1;
	}
	if (admin_parse_line(buf, (size_t)(nl - buf), out, err, errlen) < 0) {
		admin_request_clear(out);
		return -1;
	}
	return 1;
}

static void admin_read_cb(struct bufferevent *bev, void *arg)
{
	struct admin_req *req = arg;
	struct evbuffer *in = bufferevent_get_input(bev);

	if (req->state != ADMIN_REQ_READING) {
		/* One request per connection: anything after it is ignored. */
		evbuffer_drain(in, evbuffer_get_length(in));
		return;
	}

	struct evbuffer_ptr start;
	if (evbuffer_ptr_set(in, &start, req->scanned, EVBUFFER_PTR_SET) < 0)
		return;
	struct evbuffer_ptr eol = evbuffer_search_eol(in, &start, NULL, EVBUFFER_EOL_LF);
	if (eol.pos < 0) {
		req->scanned = evbuffer_get_length(in);
		if (req->scanned > ADMIN_MAX_REQUEST) {
			log_warnx("admin: #%u uid %d pid %d: request larger than 1 MiB", req->id,
				  req->uid, req->pid);
			admin_req_send_error(req, "request larger than 1 MiB");
		}
		return;
	}

	size_t len = (size_t)eol.pos;
	const char *line = (const char *)evbuffer_pullup(in, (ev_ssize_t)len + 1);
	char err[256];
	struct admin_request parsed;
	const char *cmd = NULL;
	if (!line) {
		snprintf(err, sizeof(err), "out of memory");
	} else if (admin_parse_request(line, len + 1, &parsed, err, sizeof(err)) == 1) {
		req->request = parsed.request;
		req->args = parsed.args;
		cmd = parsed.cmd;
	}
	evbuffer_drain(in, evbuffer_get_length(in));
	if (!cmd) {
		log_warnx("admin: #%u uid %d pid %d: %s", req->id, req->uid, req->pid, err);
		admin_req_send_error(req, err);
		return;
	}

	/* Reading stays on, without a timeout, only to notice the client hanging up. */
	bufferevent_set_timeouts(bev, NULL, NULL);
	admin_req_enter(req, ADMIN_REQ_PENDING);
	log_info("admin: #%u %s from uid %d pid %d", req->id, cmd, req->uid, req->pid);
	req->srv->handler(req, cmd, req->args, req->srv->arg);
}

static void admin_write_cb(struct bufferevent *bev, void *arg)
{
	struct admin_req *req = arg;

	if (req->state == ADMIN_REQ_FLUSHING &&
	    evbuffer_get_length(bufferevent_get_output(bev)) == 0) {
		admin_req_enter(req, ADMIN_REQ_CLOSING);
		admin_req_schedule_reap(req);
	}
}

/* A unix socket reports POLLHUP only once the peer closed both directions. */
static bool admin_peer_gone(evutil_socket_t fd)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };

	return poll(&pfd, 1, 0) == 1 && (pfd.revents & (POLLHUP | POLLERR));
}

static void admin_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct admin_req *req = arg;

	switch (req->state) {
	case ADMIN_REQ_READING:
		if (what & BEV_EVENT_TIMEOUT) {
			log_warnx("admin: #%u uid %d pid %d: no complete request within %d s",
				  req->id, req->uid, req->pid, ADMIN_READ_TIMEOUT_S);
			admin_req_send_error(req, "no complete request within 30 s");
			return;
		}
		admin_req_enter(req, ADMIN_REQ_CLOSING);
		admin_req_schedule_reap(req);
		return;
	case ADMIN_REQ_PENDING:
		/* A client that only shut down its sending side still waits for the reply. */
		if ((what & BEV_EVENT_EOF) && !admin_peer_gone(bufferevent_getfd(bev))) {
			bufferevent_disable(bev, EV_READ);
			return;
		}
		log_info("admin: #%u client went away before the reply", req->id);
		admin_req_enter(req, ADMIN_REQ_ORPHANED);
		admin_req_schedule_reap(req);
		return;
	case ADMIN_REQ_FLUSHING:
		if (what & BEV_EVENT_TIMEOUT)
			log_warnx("admin: #%u client did not take the reply within %d s", req->id,
				  ADMIN_WRITE_TIMEOUT_S);
		admin_req_enter(req, ADMIN_REQ_CLOSING);
		admin_req_schedule_reap(req);
		return;
	case ADMIN_REQ_ORPHANED:
	case ADMIN_REQ_CLOSING:
		return;
	}
}

static void admin_accept_cb(struct evconnlistener *lev, evutil_socket_t fd, struct sockaddr *sa,
			    int salen, void *arg)
{
	struct admin_server *srv = arg;
	struct ucred cred;
	socklen_t len = sizeof(cred);

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) {
		log_warn("admin: SO_PEERCRED");
		close(fd);
		return;
	}
	if (cred.uid != 0 && cred.uid != geteuid()) {
		log_warnx("admin: refused uid %d pid %d", (int)cred.uid, (int)cred.pid);
		close(fd);
		return;
	}

	struct admin_req *req = calloc(1, sizeof(*req));
	if (!req) {
		log_warnx("admin: out of memory, connection dropped");
		close(fd);
		return;
	}
	req->srv = srv;
	req->id = ++srv->next_id;
	req->state = ADMIN_REQ_READING;
	req->uid = (int)cred.uid;
	req->pid = (int)cred.pid;
	req->bev = bufferevent_socket_new(srv->base, fd, BEV_OPT_CLOSE_ON_FREE);
	req->reap_ev = event_new(srv->base, -1, 0, admin_req_reap_cb, req);
	if (!req->bev || !req->reap_ev) {
		log_warnx("admin: cannot set up a connection");
		if (req->bev)
			bufferevent_free(req->bev);
		else
			close(fd);
		if (req->reap_ev)
			event_free(req->reap_ev);
		free(req);
		return;
	}
	TAILQ_INSERT_TAIL(&srv->reqs, req, entry);

	struct timeval rt = { ADMIN_READ_TIMEOUT_S, 0 };
	bufferevent_setcb(req->bev, admin_read_cb, admin_write_cb, admin_event_cb, req);
	/* Reading stops one byte past the limit, so an oversized line never buffers more. */
	bufferevent_setwatermark(req->bev, EV_READ, 0, ADMIN_MAX_REQUEST + 1);
	bufferevent_set_timeouts(req->bev, &rt, NULL);
	bufferevent_enable(req->bev, EV_READ | EV_WRITE);
}

/* Removes a socket file left by a dead daemon; refuses if a live one answers on it. */
static int admin_clear_path(const char *path, const struct sockaddr_un *sun, char *err,
			    size_t errlen)
{
	struct stat st;

	if (lstat(path, &st) < 0) {
		if (errno == ENOENT)
			return 0;
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (!S_ISSOCK(st.st_mode)) {
		snprintf(err, errlen, "%s: exists and is not a socket", path);
		return -1;
	}
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return -1;
	}
	int rc = connect(fd, (const struct sockaddr *)sun, sizeof(*sun));
	int saved = errno;
	close(fd);
	/* EAGAIN: a full backlog is still a live daemon. */
	if (rc == 0 || saved == EAGAIN) {
		snprintf(err, errlen, "%s: another daemon is listening there", path);
		return -1;
	}
	if (saved != ECONNREFUSED) {
		snprintf(err, errlen, "%s: %s", path, strerror(saved));
		return -1;
	}
	if (unlink(path) < 0 && errno != ENOENT) {
		snprintf(err, errlen, "cannot remove stale socket %s: %s", path, strerror(errno));
		return -1;
	}
	return 0;
}

struct admin_server *admin_server_new(struct event_base *base, const char *path,
				      admin_handler handler, void *arg, char *err, size_t errlen)
{
	struct sockaddr_un sun;

	if (admin_sockaddr(path, &sun, err, errlen) < 0)
		return NULL;
	if (admin_clear_path(path, &sun, err, errlen) < 0)
		return NULL;

	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return NULL;
	}
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		snprintf(err, errlen, "cannot bind %s: %s", path, strerror(errno));
		close(fd);
		return NULL;
	}
	/* Before listen(), so no client can connect while the mode is still the umask's. */
	if (chmod(path, 0660) < 0) {
		snprintf(err, errlen, "cannot chmod %s: %s", path, strerror(errno));
		close(fd);
		unlink(path);
		return NULL;
	}

	struct admin_server *srv = calloc(1, sizeof(*srv));
	if (!srv) {
		snprintf(err, errlen, "out of memory");
		close(fd);
		unlink(path);
		return NULL;
	}
	srv->base = base;
	srv->handler = handler;
	srv->arg = arg;
	TAILQ_INIT(&srv->reqs);
	memcpy(srv->path, sun.sun_path, sizeof(srv->path));
	srv->listener = evconnlistener_new(base, admin_accept_cb, srv,
					   LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC,
					   ADMIN_BACKLOG, fd);
	if (!srv->listener) {
		snprintf(err, errlen, "cannot listen on %s: %s", path, strerror(errno));
		close(fd);
		unlink(path);
		free(srv);
		return NULL;
	}
	/* Out of descriptors, a queued client is closed rather than left to spin the loop. */
	net_listener_guard(srv->listener);
	return srv;
}

/*
 * The loop may never run again: push what the socket takes now. The
 * bufferevent keeps its output frozen against outside draining, so the
 * bytes are copied, not written with evbuffer_write().
 */
static void admin_req_flush_now(struct admin_req *req)
{
	struct evbuffer *out = bufferevent_get_output(req->bev);
	evutil_socket_t fd = bufferevent_getfd(req->bev);
	size_t len = evbuffer_get_length(out), off = 0;
	const char *data = (const char *)evbuffer_pullup(out, -1);

	while (data && off < len) {
		ssize_t w = send(fd, data + off, len - off, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w <= 0)
			break;
		off += (size_t)w;
	}
}

void admin_server_free(struct admin_server *srv)
{
	struct admin_req *req;

	if (!srv)
		return;
	evconnlistener_free(srv->listener);
	unlink(srv->path);
	while ((req = TAILQ_FIRST(&srv->reqs)) != NULL) {
		if (req->done) {
			/* Answers and frees it. */
			admin_req_send_error(req, "daemon shutting down");
			continue;
		}
		/* With a live connection this only queues, so req is still ours to free. */
		if (req->state == ADMIN_REQ_PENDING && req->bev)
			admin_req_send_error(req, "daemon shutting down");
		if (req->bev && req->state == ADMIN_REQ_FLUSHING)
			admin_req_flush_now(req);
		admin_req_free(req);
	}
	free(srv);
}

int admin_dispatch(struct admin_server *srv, const char *cmd, json_t *args, const char *origin,
		   admin_done_fn done, void *done_arg)
{
	struct admin_req *req = calloc(1, sizeof(*req));

	if (!req)
		return -1;
	req->srv = srv;
	req->id = ++srv->next_id;
	req->state = ADMIN_REQ_PENDING;
	req->uid = -1;
	req->pid = -1;
	req->done = done;
	req->done_arg = done_arg;
	req->request = json_string(cmd);
	req->args = args ? json_deep_copy(args) : json_object();
	if (!req->request || !req->args) {
		json_decref(req->request);
		json_decref(req->args);
		free(req);
		return -1;
	}
	TAILQ_INSERT_TAIL(&srv->reqs, req, entry);
	log_info("admin: #%u %s from %s", req->id, cmd, origin);
	srv->handler(req, json_string_value(req->request), req->args, srv->arg);
	return 0;
}

static char *admin_request_line(const char *cmd, json_t *args, size_t *len)
{
	json_t *obj = json_pack("{s:s}", "cmd", cmd);
	char *text;

	if (!obj)
		return NULL;
	if (args)
		json_object_set(obj, "args", args);
	text = json_dumps(obj, JSON_COMPACT);
	json_decref(obj);
	if (!text)
		return NULL;
	*len = strlen(text);
	char *line = realloc(text, *len + 2);
	if (!line) {
		free(text);
		return NULL;
	}
	line[(*len)++] = '\n';
	line[*len] = '\0';
	return line;
}

/* Sends line and reads until '\n' or EOF; returns the reply bytes (caller frees) or NULL. */
static char *admin_exchange(int fd, const char *path, const char *line, size_t len, int timeout_s,
			    size_t *replylen, char *err, size_t errlen)
{
	long deadline = (long)clk_mono_ms() + (long)timeout_s * 1000;
	size_t sent = 0, got = 0, cap = 4096;
	char *buf = malloc(cap);

	if (!buf) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	for (;;) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		int wait_ms = -1;

		if (sent < len)
			pfd.events |= POLLOUT;
		if (timeout_s > 0) {
			long left = deadline - (long)clk_mono_ms();
			if (left <= 0)
				goto timeout;
			wait_ms = (int)left;
		}
		int n = poll(&pfd, 1, wait_ms);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			snprintf(err, errlen, "poll: %s", strerror(errno));
			goto fail;
		}
		if (n == 0)
			goto timeout;
		if ((pfd.revents & POLLOUT) && sent < len) {
			ssize_t w = send(fd, line + sent, len - sent, MSG_NOSIGNAL);
			if (w >= 0) {
				sent += (size_t)w;
			} else if (errno == EPIPE || errno == ECONNRESET) {
				/* The daemon may have refused the request and answered why. */
				sent = len;
			} else if (errno != EAGAIN && errno != EINTR) {
				snprintf(err, errlen, "cannot send to %s: %s", path,
					 strerror(errno));
				goto fail;
			}
		}
		if (!(pfd.revents & (POLLIN | POLLHUP | POLLERR)))
			continue;
		if (got == cap) {
			if (cap >= ADMIN_MAX_REPLY) {
				snprintf(err, errlen, "answer from %s larger than %d MiB", path,
					 ADMIN_MAX_REPLY / (1024 * 1024));
				goto fail;
			}
			char *nbuf = realloc(buf, cap * 2);
			if (!nbuf) {
				snprintf(err, errlen, "out of memory");
				goto fail;
			}
			buf = nbuf;
			cap *= 2;
		}
		ssize_t r = recv(fd, buf + got, cap - got, 0);
		if (r < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		/* A daemon that closes on unread request bytes resets the connection. */
		if (r < 0 && errno == ECONNRESET)
			break;
		if (r < 0) {
			snprintf(err, errlen, "cannot read from %s: %s", path, strerror(errno));
			goto fail;
		}
		if (r == 0)
			break;
		char *nl = memchr(buf + got, '\n', (size_t)r);
		got += (size_t)r;
		if (nl) {
			got = (size_t)(nl - buf);
			break;
		}
	}
	if (got == 0) {
		snprintf(err, errlen, "%s closed the connection without an answer", path);
		goto fail;
	}
	*replylen = got;
	return buf;
timeout:
	snprintf(err, errlen, "no answer from %s within %d s", path, timeout_s);
fail:
	free(buf);
	return NULL;
}

json_t *admin_call(const char *path, const char *cmd, json_t *args, int timeout_s, char *err,
		   size_t errlen)
{
	struct sockaddr_un sun;
	size_t len, replylen;
	json_error_t jerr;

	if (admin_sockaddr(path, &sun, err, errlen) < 0)
		return NULL;
	char *line = admin_request_line(cmd, args, &len);
	if (!line) {
		snprintf(err, errlen, "cannot encode the request (is cmd valid UTF-8?)");
		return NULL;
	}
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		free(line);
		return NULL;
	}
	/* A blocking unix connect waits on a full backlog for at most the send timeout. */
	if (timeout_s > 0) {
		struct timeval tv = { timeout_s, 0 };
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	}
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		if (errno == EAGAIN)
			snprintf(err, errlen, "no answer from %s within %d s", path, timeout_s);
		else
			snprintf(err, errlen, "cannot connect to %s: %s; is the daemon running?",
				 path, strerror(errno));
		close(fd);
		free(line);
		return NULL;
	}
	int flags = fcntl(fd, F_GETFL);
	if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) {
		snprintf(err, errlen, "fcntl: %s", strerror(errno));
		close(fd);
		free(line);
		return NULL;
	}
	char *reply = admin_exchange(fd, path, line, len, timeout_s, &replylen, err, errlen);
	close(fd);
	free(line);
	if (!reply)
		return NULL;

	json_t *obj = json_loadb(reply, replylen, 0, &jerr);
	free(reply);
	if (!obj) {
		snprintf(err, errlen, "invalid answer from %s: %s", path, jerr.text);
		return NULL;
	}
	if (!json_is_object(obj) || !json_is_boolean(json_object_get(obj, "ok"))) {
		snprintf(err, errlen, "invalid answer from %s: not an object with a boolean \"ok\"",
			 path);
		json_decref(obj);
		return NULL;
	}
	return obj;
}

void admin_reply_result(struct admin_req *req, const char *cmd, json_t *result, const char *err)
{
	if (result) {
		admin_reply(req, result);
		return;
	}
	log_info("admin: %s failed: %s", cmd, err);
	admin_reply_error(req, "%s", err);
}
