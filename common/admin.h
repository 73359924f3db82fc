/*
 * admin: the daemons' operator socket (a unix socket) and its client.
 *
 * One request per connection: a JSON object {"cmd": "...", "args": {...}}
 * terminated by '\n' (at most 1 MiB). The reply is one JSON object
 * {"ok": true, "result": ...} or {"ok": false, "error": "..."} and '\n',
 * then the server closes. The peer's uid (SO_PEERCRED) must be 0 or the
 * daemon's own uid; others are refused and logged. The socket file is
 * created mode 0660 (its directory must exist).
 *
 * The handler may answer at once or later (admin_reply from any later
 * callback of the same event loop), e.g. after a sync session ends. It
 * answers every request exactly once; req is invalid afterwards. A client
 * that hangs up meanwhile does not invalidate req. The daemon must ignore
 * SIGPIPE (libevent writes without MSG_NOSIGNAL).
 */
#ifndef STRATA_ADMIN_H
#define STRATA_ADMIN_H

#include <stddef.h>

#include <event2/event.h>
#include <jansson.h>

struct admin_server;
struct admin_req;

/* args is owned by the request (valid until admin_reply*). */
typedef void (*admin_handler)(struct admin_req *req, const char *cmd, json_t *args, void *arg);

struct admin_server *admin_server_new(struct event_base *base, const char *path,
				      admin_handler handler, void *arg, char *err, size_t errlen);
/*
 * Closes the socket and unlinks the path; pending requests are answered with
 * an error and every req pointer becomes invalid. Call it outside the
 * handler (e.g. after the loop ends); queued replies are flushed as far as
 * the socket takes them.
 */
void admin_server_free(struct admin_server *srv);

/* Answers with {"ok":true,"result":result}; steals result (may be NULL -> null). */
void admin_reply(struct admin_req *req, json_t *result);
/* Answers with {"ok":false,"error":"..."}. */
void admin_reply_error(struct admin_req *req, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Answers with result when it is non-NULL (stolen), else with err as the
 * error; a failure is also logged with the command's name. */
void admin_reply_result(struct admin_req *req, const char *cmd, json_t *result, const char *err);

/*
 * Another front end of the same commands (the HTTP API): runs the server's
 * handler on cmd and args (not stolen; a copy is kept) as if they had come
 * over the socket, and gives the reply object ({"ok": true, "result": ...}
 * or {"ok": false, "error": "..."}) to done(reply, done_arg) instead of a
 * socket. reply is borrowed for the call. done runs exactly once, maybe
 * from a later callback; admin_server_free() answers a request still
 * pending with "daemon shutting down", so whatever done_arg points to must
 * outlive the admin server. origin names the caller in the log line.
 * 0, or -1 (out of memory) and done is never called.
 */
typedef void (*admin_done_fn)(json_t *reply, void *done_arg);
int admin_dispatch(struct admin_server *srv, const char *cmd, json_t *args, const char *origin,
		   admin_done_fn done, void *done_arg);

/* An operator command and whether it only reads (the HTTP API's GET). */
struct admin_command {
	const char *name;
	int read_only;
};

/*
 * The request decoder the server uses, pure so it can be tested and fuzzed
 * without a socket. buf holds the bytes received so far (len of them); the
 * request is the first line, its '\n' included. Returns 1 with *out filled
 * (free with admin_request_clear), 0 when no '\n' has come yet and the
 * line is still within ADMIN_MAX_REQUEST, or -1 with err naming the fault:
 * a line over the limit, not JSON or not an object, unknown members, "cmd"
 * missing, empty, not a string or with control characters, "args" not an
 * object. Bytes after the '\n' are ignored.
 */
#define ADMIN_MAX_REQUEST (1024 * 1024) /* one request line, without its '\n' */

struct admin_request {
	json_t *request; /* the whole object */
	json_t *args;	 /* always an object (empty when the request had none); own reference */
	const char *cmd; /* valid while request lives */
};

__attribute__((warn_unused_result)) int admin_parse_request(const char *buf, size_t len,
							    struct admin_request *out, char *err,
							    size_t errlen);
/* Releases what admin_parse_request() set; *r may be zeroed or half-filled. */
void admin_request_clear(struct admin_request *r);

/*
 * Client: sends {"cmd":cmd,"args":args} (args not stolen, may be NULL) and
 * waits up to timeout_s (<= 0: without limit) for the reply. Returns the
 * whole reply object, ok true or false (caller decrefs), or NULL with err
 * ("cannot connect to /run/...: No such file").
 */
json_t *admin_call(const char *path, const char *cmd, json_t *args, int timeout_s, char *err,
		   size_t errlen);

#endif
