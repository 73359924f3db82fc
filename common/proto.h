/*
 * proto: message types of the sync channel (port 7073), their allow-list
 * per peer state, and typed encoders/decoders.
 *
 * Control payloads are JSON objects. Decoders reject unknown members,
 * missing members, wrong types and trailing bytes, and say which. Bulk
 * payloads (UPLOAD_BATCH) are a JSON header, one '\n', then PostgreSQL
 * COPY text for the header's declared columns.
 */
#ifndef STRATA_PROTO_H
#define STRATA_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#define PROTO_VERSION 1

enum msg_type {
	MSG_ERROR = 1,		/* either way: {code, message} then close */
	MSG_ENROL = 2,		/* slave -> master, pre-auth: {token, name, csr} */
	MSG_ENROL_OK = 3,	/* master -> slave: {cert, ca} */
	MSG_HELLO = 10,		/* slave -> master: {proto, slave, schema, publication, interval} */
	MSG_WELCOME = 11,	/* master -> slave: {watermarks{stream:v}, publication} */
	MSG_UPLOAD_BATCH = 20,	/* slave -> master: bulk {stream, from, to, rows} + COPY text */
	MSG_UPLOAD_ACK = 21,	/* master -> slave: {stream, watermark} */
	MSG_UPLOAD_DONE = 22,	/* slave -> master: {} (all streams sent) */
	MSG_DOWNLOAD = 30,	/* master -> slave: {version, policies[], tasks[]} */
	MSG_DOWNLOAD_ACK = 31,	/* slave -> master: {version} */
	MSG_BYE = 40,		/* slave -> master: {sent{stream:n}, received} */
	MSG_BYE_OK = 41,	/* master -> slave: {} ; the connection then idles */
	MSG_SYNC_REQUEST = 42,	/* master -> slave on an idle connection: {} */
	MSG_PING = 43,		/* slave -> master on an idle connection: {} */
	MSG_PONG = 44,		/* master -> slave: {} */
	MSG_UNREGISTER = 45,	/* slave -> master: {} ; master revokes and answers BYE_OK */
};

/* Error codes carried in MSG_ERROR.code. */
#define PROTO_ERR_PROTOCOL "protocol"	    /* malformed or unexpected message */
#define PROTO_ERR_TOKEN "token"		    /* enrolment token wrong/expired/used */
#define PROTO_ERR_UNREGISTERED "unregistered" /* certificate revoked or unknown */
#define PROTO_ERR_INTERNAL "internal"	    /* master-side failure; retry later */
#define PROTO_ERR_BUSY "busy"		    /* too many sessions; retry later */
#define PROTO_ERR_VERSION "version"	    /* protocol or schema version mismatch */

const char *proto_msg_name(uint16_t type); /* "HELLO", or "UNKNOWN" */

/* States of a sync-channel peer as seen by the receiver. */
enum proto_state {
	PST_MASTER_PREAUTH,	/* master side, TLS without client cert: ENROL only */
	PST_MASTER_AUTHED,	/* master side, mutual TLS: HELLO, PING, UNREGISTER */
	PST_MASTER_UPLOAD,	/* master side, after WELCOME: UPLOAD_BATCH, UPLOAD_DONE */
	PST_MASTER_DOWNLOAD,	/* master side, after DOWNLOAD: DOWNLOAD_ACK, BYE */
	PST_SLAVE_ENROL,	/* slave side, ENROL sent: ENROL_OK, ERROR */
	PST_SLAVE_HELLO,	/* slave side, HELLO sent: WELCOME, ERROR */
	PST_SLAVE_UPLOAD,	/* slave side: UPLOAD_ACK, DOWNLOAD, ERROR */
	PST_SLAVE_BYE,		/* slave side, BYE sent: BYE_OK, ERROR */
	PST_SLAVE_IDLE,		/* slave side, idle: SYNC_REQUEST, PONG, ERROR */
};
const char *proto_state_name(enum proto_state st);
/* true when a message of this type may arrive in this state; ERROR may
 * arrive in every state. */
bool proto_allowed(enum proto_state st, uint16_t type);

/*
 * Parses a control payload into a JSON object. Returns NULL with a reason
 * in err when it is not exactly one JSON object (trailing bytes, NUL
 * bytes, not an object). The caller owns the result.
 */
json_t *proto_parse_json(const uint8_t *payload, size_t len, char *err, size_t errlen);

/*
 * Splits a bulk payload into its JSON header (caller owns) and the COPY
 * text that follows the first '\n' (points into payload).
 */
json_t *proto_parse_bulk(const uint8_t *payload, size_t len, const char **copy, size_t *copy_len,
			 char *err, size_t errlen);

/* Typed decoders: 0 on success, -1 with err naming the bad member. */
struct msg_enrol { const char *token, *name, *csr; };
struct msg_enrol_ok { const char *cert, *ca; };
struct msg_hello {
	int proto;
	const char *slave;
	int schema;
	int64_t publication; /* the slave's applied publication version */
	int interval;	     /* the slave's replication interval, seconds */
};
struct msg_upload_hdr { const char *stream; int64_t from, to; int64_t rows; };
struct msg_error { const char *code, *message; };
/* Strings point into the json_t they were decoded from. */
int proto_decode_enrol(json_t *o, struct msg_enrol *m, char *err, size_t errlen);
int proto_decode_enrol_ok(json_t *o, struct msg_enrol_ok *m, char *err, size_t errlen);
int proto_decode_hello(json_t *o, struct msg_hello *m, char *err, size_t errlen);
int proto_decode_upload_hdr(json_t *o, struct msg_upload_hdr *m, char *err, size_t errlen);
int proto_decode_error(json_t *o, struct msg_error *m, char *err, size_t errlen);
/* Messages without members (UPLOAD_DONE, PING, PONG, ...) must be exactly {}. */
int proto_decode_empty(json_t *o, uint16_t type, char *err, size_t errlen);
/* BYE {sent: {stream: rows}, received: items}. */
int proto_decode_bye(json_t *o, char *err, size_t errlen);

/* A group path "/a/b": components of letters, digits, '.', '_', '-' and spaces. */
bool proto_group_path_valid(const char *p);
/*
 * An operator's args.group: *group gets NULL for none or "/" (every
 * endpoint), else the checked path (borrowed from args). 0, or -1 with
 * the reason in err.
 */
int proto_group_arg(json_t *args, const char **group, char *err, size_t errlen);

#endif
