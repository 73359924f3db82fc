/*
 * Runs an untrusted payload through everything the receiving side does
 * with it: the first byte picks the decoder, the rest is the payload.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void decode_all(json_t *o)
{
	char err[256];
	struct msg_enrol e;
	struct msg_enrol_ok eo;
	struct msg_hello h;
	struct msg_upload_hdr u;
	struct msg_error r;
	if (proto_decode_enrol(o, &e, err, sizeof(err)) == 0 &&
	    (strlen(e.token) > 200 || strlen(e.name) > 63))
		abort();
	proto_decode_enrol_ok(o, &eo, err, sizeof(err));
	if (proto_decode_hello(o, &h, err, sizeof(err)) == 0 && h.proto < 1)
		abort();
	if (proto_decode_upload_hdr(o, &u, err, sizeof(err)) == 0 &&
	    (u.from < 0 || u.from > u.to || u.rows < 0))
		abort();
	proto_decode_error(o, &r, err, sizeof(err));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	uint8_t mode = data[0];
	data++;
	size--;
	char err[256];
	json_t *o;
	if (mode & 1) {
		const char *copy = NULL;
		size_t copy_len = 0;
		o = proto_parse_bulk(data, size, &copy, &copy_len, err, sizeof(err));
		if (o &&
		    (copy < (const char *)data || copy + copy_len != (const char *)data + size))
			abort();
	} else {
		o = proto_parse_json(data, size, err, sizeof(err));
	}
	if (!o)
		return 0;
	if (!json_is_object(o))
		abort();
	decode_all(o);
	(void)proto_allowed((enum proto_state)(mode >> 4), (uint16_t)(mode * 7));
	json_decref(o);
	return 0;
}
