/*
 * Runs an untrusted agent-channel payload through every decoder the push
 * server and the agent apply to it, and checks the promises the decoders
 * make about what they accept.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "agentproto.h"
#include "proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[256];
	json_t *o = proto_parse_json(data, size, err, sizeof(err));
	if (!o)
		return 0;
	struct amsg_enrol e;
	struct amsg_enrol_ok eo;
	struct amsg_auth a;
	struct amsg_auth_ok ao;
	struct amsg_event ev;
	struct amsg_command c;
	struct amsg_result r;
	struct amsg_policy p;
	int64_t v;
	if (agentproto_decode_enrol(o, &e, err, sizeof(err)) == 0 &&
	    (strlen(e.key) != 64 || strlen(e.token) > 200 || !*e.hostname))
		abort();
	agentproto_decode_enrol_ok(o, &eo, err, sizeof(err));
	if (agentproto_decode_auth(o, &a, err, sizeof(err)) == 0 && strlen(a.sig) != 128)
		abort();
	if (agentproto_decode_auth_ok(o, &ao, err, sizeof(err)) == 0 &&
	    (ao.heartbeat < 1 || ao.heartbeat > 86400))
		abort();
	if (agentproto_decode_event(o, &ev, err, sizeof(err)) == 0 &&
	    (ev.seq < 0 || !json_is_object(ev.details)))
		abort();
	agentproto_decode_command(o, &c, err, sizeof(err));
	if (agentproto_decode_result(o, &r, err, sizeof(err)) == 0 && r.task_id < 1)
		abort();
	agentproto_decode_policy(o, &p, err, sizeof(err));
	if (agentproto_decode_ack(o, "seq", &v, err, sizeof(err)) == 0 && v < 0)
		abort();
	json_decref(o);
	return 0;
}
