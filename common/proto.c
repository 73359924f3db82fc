#include "proto.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* Size limits of decoded members; documented in docs/PROTOCOL.md. */
#define PROTO_TOKEN_MAX 200
#define PROTO_NAME_MAX 63
#define PROTO_PEM_MAX (16 * 1024)
#define PROTO_STREAM_MAX 32
#define PROTO_CODE_MAX 32
#define PROTO_MESSAGE_MAX 1024

static const struct {
	uint16_t type;
	const char *name;
} msg_names[] = {
	{ MSG_ERROR, "ERROR" },
	{ MSG_ENROL, "ENROL" },
	{ MSG_ENROL_OK, "ENROL_OK" },
	{ MSG_HELLO, "HELLO" },
	{ MSG_WELCOME, "WELCOME" },
	{ MSG_UPLOAD_BATCH, "UPLOAD_BATCH" },
	{ MSG_UPLOAD_ACK, "UPLOAD_ACK" },
	{ MSG_UPLOAD_DONE, "UPLOAD_DONE" },
	{ MSG_DOWNLOAD, "DOWNLOAD" },
	{ MSG_DOWNLOAD_ACK, "DOWNLOAD_ACK" },
	{ MSG_BYE, "BYE" },
	{ MSG_BYE_OK, "BYE_OK" },
	{ MSG_SYNC_REQUEST, "SYNC_REQUEST" },
	{ MSG_PING, "PING" },
	{ MSG_PONG, "PONG" },
	{ MSG_UNREGISTER, "UNREGISTER" },
};

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

const char *proto_msg_name(uint16_t type)
{
	for (size_t i = 0; i < NELEM(msg_names); i++) {
		if (msg_names[i].type == type)
			return msg_names[i].name;
	}
	return "UNKNOWN";
}

static const char *const state_names[] = {
	[PST_MASTER_PREAUTH] = "master_preauth", [PST_MASTER_AUTHED] = "master_authed",
	[PST_MASTER_UPLOAD] = "master_upload",	 [PST_MASTER_DOWNLOAD] = "master_download",
	[PST_SLAVE_ENROL] = "slave_enrol",	 [PST_SLAVE_HELLO] = "slave_hello",
	[PST_SLAVE_UPLOAD] = "slave_upload",	 [PST_SLAVE_BYE] = "slave_bye",
	[PST_SLAVE_IDLE] = "slave_idle",
};

const char *proto_state_name(enum proto_state st)
{
	if ((unsigned)st >= NELEM(state_names))
		return "unknown";
	return state_names[st];
}

/*
 * The allow-list: which message types may arrive in each state. ERROR is
 * allowed everywhere because either side may give up at any point and the
 * receiver should log the peer's reason rather than a protocol violation.
 */
#define ALLOWED_MAX 4
static const uint16_t allowed[][ALLOWED_MAX] = {
	[PST_MASTER_PREAUTH] = { MSG_ENROL },
	[PST_MASTER_AUTHED] = { MSG_HELLO, MSG_PING, MSG_UNREGISTER },
	[PST_MASTER_UPLOAD] = { MSG_UPLOAD_BATCH, MSG_UPLOAD_DONE },
	[PST_MASTER_DOWNLOAD] = { MSG_DOWNLOAD_ACK, MSG_BYE },
	[PST_SLAVE_ENROL] = { MSG_ENROL_OK },
	/* A PONG (or the master's SYNC_REQUEST) sent while the link was idle may
	 * cross the slave's HELLO of a new session: ignored, not a violation. */
	[PST_SLAVE_HELLO] = { MSG_WELCOME, MSG_PONG, MSG_SYNC_REQUEST },
	[PST_SLAVE_UPLOAD] = { MSG_UPLOAD_ACK, MSG_DOWNLOAD, MSG_PONG },
	[PST_SLAVE_BYE] = { MSG_BYE_OK, MSG_PONG },
	[PST_SLAVE_IDLE] = { MSG_SYNC_REQUEST, MSG_PONG },
};

bool proto_allowed(enum proto_state st, uint16_t type)
{
	if ((unsigned)st >= NELEM(allowed))
		return false;
	if (type == MSG_ERROR)
		return true;
	for (size_t i = 0; i < ALLOWED_MAX; i++) {
		/* Zero is not a message type, so it ends a row. */
		if (allowed[st][i] == 0)
			break;
		if (allowed[st][i] == type)
			return true;
	}
	return false;
}

static void set_err(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
	if (!err || errlen == 0)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

json_t *proto_parse_json(const uint8_t *payload, size_t len, char *err, size_t errlen)
{
	if (len == 0) {
		set_err(err, errlen, "empty payload");
		return NULL;
	}
	if (len > INT_MAX) {
		set_err(err, errlen, "payload of %zu bytes is too large for JSON", len);
		return NULL;
	}
	const uint8_t *nul = memchr(payload, '\0', len);
	if (nul) {
		set_err(err, errlen, "NUL byte at offset %td", nul - payload);
		return NULL;
	}
	/* The EOF check is ours: jansson's would let trailing whitespace pass. */
	json_error_t je;
	json_t *o = json_loadb((const char *)payload, len,
			       JSON_REJECT_DUPLICATES | JSON_DISABLE_EOF_CHECK, &je);
	if (!o) {
		set_err(err, errlen, "invalid JSON at byte %d: %s", je.position, je.text);
		return NULL;
	}
	if (!json_is_object(o)) {
		set_err(err, errlen, "payload is not a JSON object");
		json_decref(o);
		return NULL;
	}
	if (je.position < 0 || (size_t)je.position != len) {
		set_err(err, errlen, "%zu trailing bytes after the JSON object",
			len - (size_t)(je.position < 0 ? 0 : je.position));
		json_decref(o);
		return NULL;
	}
	return o;
}

json_t *proto_parse_bulk(const uint8_t *payload, size_t len, const char **copy, size_t *copy_len,
			 char *err, size_t errlen)
{
	const uint8_t *nl = len ? memchr(payload, '\n', len) : NULL;
	if (!nl) {
		set_err(err, errlen, "bulk payload has no newline after its JSON header");
		return NULL;
	}
	char why[256];
	json_t *hdr = proto_parse_json(payload, (size_t)(nl - payload), why, sizeof(why));
	if (!hdr) {
		set_err(err, errlen, "bulk header: %s", why);
		return NULL;
	}
	*copy = (const char *)nl + 1;
	*copy_len = len - (size_t)(nl - payload) - 1;
	return hdr;
}

/*
 * Member checks run before json_unpack_ex so that the reason names the
 * member; jansson's own text does not say which member had the wrong type.
 */
enum member_kind { MK_STRING, MK_INT, MK_OBJECT };
struct member {
	const char *key;
	enum member_kind kind;
};

static int check_members(const char *msg, json_t *o, const struct member *spec, size_t n, char *err,
			 size_t errlen)
{
	if (!json_is_object(o)) {
		set_err(err, errlen, "%s: payload is not a JSON object", msg);
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		json_t *v = json_object_get(o, spec[i].key);
		if (!v) {
			set_err(err, errlen, "%s: missing member '%s'", msg, spec[i].key);
			return -1;
		}
		if (spec[i].kind == MK_STRING && !json_is_string(v)) {
			set_err(err, errlen, "%s: member '%s' must be a string", msg, spec[i].key);
			return -1;
		}
		if (spec[i].kind == MK_OBJECT && !json_is_object(v)) {
			set_err(err, errlen, "%s: member '%s' must be an object", msg, spec[i].key);
			return -1;
		}
		if (spec[i].kind == MK_INT && !json_is_integer(v)) {
			set_err(err, errlen, "%s: member '%s' must be an integer", msg,
				spec[i].key);
			return -1;
		}
	}
	const char *key;
	json_t *v;
	json_object_foreach (o, key, v) {
		size_t i = 0;
		while (i < n && strcmp(key, spec[i].key) != 0)
			i++;
		if (i == n) {
			set_err(err, errlen, "%s: unknown member '%s'", msg, key);
			return -1;
		}
	}
	return 0;
}

static int unpack_strict(const char *msg, json_t *o, char *err, size_t errlen, const char *fmt, ...)
{
	json_error_t je;
	va_list ap;
	va_start(ap, fmt);
	int rc = json_vunpack_ex(o, &je, JSON_STRICT, fmt, ap);
	va_end(ap);
	if (rc != 0)
		set_err(err, errlen, "%s: %s", msg, je.text);
	return rc;
}

static bool name_ok(const char *s, size_t max)
{
	size_t n = strlen(s);
	if (n == 0 || n > max)
		return false;
	return strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") == n;
}

static bool stream_ok(const char *s)
{
	size_t n = strlen(s);
	return n > 0 && n <= PROTO_STREAM_MAX && strspn(s, "abcdefghijklmnopqrstuvwxyz_") == n;
}

static int check_len(const char *msg, const char *key, const char *s, size_t max, char *err,
		     size_t errlen)
{
	size_t n = strlen(s);
	if (n == 0) {
		set_err(err, errlen, "%s: member '%s' is empty", msg, key);
		return -1;
	}
	if (n > max) {
		set_err(err, errlen, "%s: member '%s' is %zu bytes, more than %zu", msg, key, n,
			max);
		return -1;
	}
	return 0;
}

int proto_decode_enrol(json_t *o, struct msg_enrol *m, char *err, size_t errlen)
{
	static const struct member spec[] = { { "token", MK_STRING },
					      { "name", MK_STRING },
					      { "csr", MK_STRING } };
	if (check_members("ENROL", o, spec, NELEM(spec), err, errlen) != 0 ||
	    unpack_strict("ENROL", o, err, errlen, "{s:s, s:s, s:s !}", "token", &m->token, "name",
			  &m->name, "csr", &m->csr) != 0)
		return -1;
	if (check_len("ENROL", "token", m->token, PROTO_TOKEN_MAX, err, errlen) != 0 ||
	    check_len("ENROL", "csr", m->csr, PROTO_PEM_MAX, err, errlen) != 0)
		return -1;
	if (!name_ok(m->name, PROTO_NAME_MAX)) {
		set_err(err, errlen, "ENROL: member 'name' must be 1 to %d of A-Z a-z 0-9 . _ -",
			PROTO_NAME_MAX);
		return -1;
	}
	return 0;
}

int proto_decode_enrol_ok(json_t *o, struct msg_enrol_ok *m, char *err, size_t errlen)
{
	static const struct member spec[] = { { "cert", MK_STRING }, { "ca", MK_STRING } };
	if (check_members("ENROL_OK", o, spec, NELEM(spec), err, errlen) != 0 ||
	    unpack_strict("ENROL_OK", o, err, errlen, "{s:s, s:s !}", "cert", &m->cert, "ca",
			  &m->ca) != 0)
		return -1;
	if (check_len("ENROL_OK", "cert", m->cert, PROTO_PEM_MAX, err, errlen) != 0 ||
	    check_len("ENROL_OK", "ca", m->ca, PROTO_PEM_MAX, err, errlen) != 0)
		return -1;
	return 0;
}

int proto_decode_hello(json_t *o, struct msg_hello *m, char *err, size_t errlen)
{
	static const struct member spec[] = { { "proto", MK_INT },
					      { "slave", MK_STRING },
					      { "schema", MK_INT },
					      { "publication", MK_INT },
					      { "interval", MK_INT } };
	json_int_t proto, schema, publication, interval;
	if (check_members("HELLO", o, spec, NELEM(spec), err, errlen) != 0 ||
	    unpack_strict("HELLO", o, err, errlen, "{s:I, s:s, s:I, s:I, s:I !}", "proto", &proto,
			  "slave", &m->slave, "schema", &schema, "publication", &publication,
			  "interval", &interval) != 0)
		return -1;
	if (publication < 0) {
		set_err(err, errlen, "HELLO: member 'publication' must not be negative");
		return -1;
	}
	if (interval < 10 || interval > 604800) {
		set_err(err, errlen, "HELLO: member 'interval' must be between 10 and 604800");
		return -1;
	}
	if (proto < 1 || proto > INT_MAX) {
		set_err(err, errlen, "HELLO: member 'proto' must be between 1 and %d", INT_MAX);
		return -1;
	}
	if (schema < 0 || schema > INT_MAX) {
		set_err(err, errlen, "HELLO: member 'schema' must be between 0 and %d", INT_MAX);
		return -1;
	}
	if (!name_ok(m->slave, PROTO_NAME_MAX)) {
		set_err(err, errlen, "HELLO: member 'slave' must be 1 to %d of A-Z a-z 0-9 . _ -",
			PROTO_NAME_MAX);
		return -1;
	}
	m->proto = (int)proto;
	m->schema = (int)schema;
	m->publication = (int64_t)publication;
	m->interval = (int)interval;
	return 0;
}

int proto_decode_upload_hdr(json_t *o, struct msg_upload_hdr *m, char *err, size_t errlen)
{
	static const struct member spec[] = {
		{ "stream", MK_STRING }, { "from", MK_INT }, { "to", MK_INT }, { "rows", MK_INT }
	};
	json_int_t from, to, rows;
	if (check_members("UPLOAD_BATCH", o, spec, NELEM(spec), err, errlen) != 0 ||
	    unpack_strict("UPLOAD_BATCH", o, err, errlen, "{s:s, s:I, s:I, s:I !}", "stream",
			  &m->stream, "from", &from, "to", &to, "rows", &rows) != 0)
		return -1;
	if (!stream_ok(m->stream)) {
		set_err(err, errlen, "UPLOAD_BATCH: member 'stream' must be 1 to %d of a-z _",
			PROTO_STREAM_MAX);
		return -1;
	}
	if (from < 0 || to < 0) {
		set_err(err, errlen, "UPLOAD_BATCH: member '%s' is negative",
			from < 0 ? "from" : "to");
		return -1;
	}
	if (from > to) {
		set_err(err, errlen, "UPLOAD_BATCH: member 'from' (%lld) is above 'to' (%lld)",
			(long long)from, (long long)to);
		return -1;
	}
	if (rows < 0) {
		set_err(err, errlen, "UPLOAD_BATCH: member 'rows' is negative");
		return -1;
	}
	m->from = from;
	m->to = to;
	m->rows = rows;
	return 0;
}

int proto_decode_error(json_t *o, struct msg_error *m, char *err, size_t errlen)
{
	static const struct member spec[] = { { "code", MK_STRING }, { "message", MK_STRING } };
	if (check_members("ERROR", o, spec, NELEM(spec), err, errlen) != 0 ||
	    unpack_strict("ERROR", o, err, errlen, "{s:s, s:s !}", "code", &m->code, "message",
			  &m->message) != 0)
		return -1;
	if (check_len("ERROR", "code", m->code, PROTO_CODE_MAX, err, errlen) != 0)
		return -1;
	if (strlen(m->message) > PROTO_MESSAGE_MAX) {
		set_err(err, errlen, "ERROR: member 'message' is longer than %d bytes",
			PROTO_MESSAGE_MAX);
		return -1;
	}
	return 0;
}

int proto_decode_empty(json_t *o, uint16_t type, char *err, size_t errlen)
{
	return check_members(proto_msg_name(type), o, NULL, 0, err, errlen);
}

int proto_decode_bye(json_t *o, char *err, size_t errlen)
{
	static const struct member spec[] = { { "sent", MK_OBJECT }, { "received", MK_INT } };
	const char *key;
	json_t *v;
	if (check_members("BYE", o, spec, NELEM(spec), err, errlen) != 0)
		return -1;
	if (json_integer_value(json_object_get(o, "received")) < 0) {
		set_err(err, errlen, "BYE: member 'received' must not be negative");
		return -1;
	}
	json_object_foreach (json_object_get(o, "sent"), key, v) {
		if (!stream_ok(key) || !json_is_integer(v) || json_integer_value(v) < 0) {
			set_err(err, errlen, "BYE: 'sent' must map stream names to row counts");
			return -1;
		}
	}
	return 0;
}

bool proto_group_path_valid(const char *p)
{
	size_t n = strlen(p);
	if (n < 2 || n > 255 || p[0] != '/' || p[n - 1] == '/' || strstr(p, "//"))
		return false;
	for (size_t i = 1; i < n; i++) {
		char c = p[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == '-' || c == ' ' || c == '/'))
			return false;
	}
	return true;
}

int proto_group_arg(json_t *args, const char **group, char *err, size_t errlen)
{
	json_t *g = json_object_get(args, "group");
	*group = json_string_value(g);
	if (g && !*group) {
		set_err(err, errlen, "group must be a path");
		return -1;
	}
	if (*group && strcmp(*group, "/") == 0)
		*group = NULL;
	if (*group && !proto_group_path_valid(*group)) {
		set_err(err, errlen,
			"invalid group path '%s': use /NAME[/NAME...] with letters, digits, "
			"'.', '_', '-' and spaces",
			*group);
		return -1;
	}
	return 0;
}
