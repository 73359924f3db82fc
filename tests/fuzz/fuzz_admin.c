/*
 * The admin socket from both ends. The first byte picks what the rest is:
 *
 *   even: bytes as a client sends them to a daemon's socket; the decoder
 *         must refuse them or hand over a request a handler can trust.
 *   odd:  a strata-ctl command line (words separated by NUL bytes); when
 *         ctl accepts it, the request line it sends must decode on the
 *         daemon's side to the same command and the same arguments.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "admin.h"
#include "commands.h"

#define FUZZ_MAX_ARGS 32

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* What every handler relies on from a decoded request. */
static void check_request(const struct admin_request *r)
{
	if (!json_is_object(r->request) || !json_is_object(r->args) || !r->cmd || !*r->cmd)
		abort();
	if (json_object_size(r->request) > 2 ||
	    json_string_value(json_object_get(r->request, "cmd")) != r->cmd)
		abort();
	for (const char *c = r->cmd; *c; c++)
		if ((unsigned char)*c < 0x20 || *c == 0x7f)
			abort();
}

static void fuzz_socket_bytes(const char *buf, size_t len)
{
	struct admin_request r;
	char err[256];
	int rc = admin_parse_request(buf, len, &r, err, sizeof(err));

	if (rc == 1)
		check_request(&r);
	else if (r.request || r.args || r.cmd)
		abort();
	if (rc == 0 && (memchr(buf, '\n', len) || len > ADMIN_MAX_REQUEST))
		abort();
	if (rc == -1 && err[0] == '\0')
		abort();
	admin_request_clear(&r);
}

/* The same line admin_call() writes: {"cmd":...,"args":...} and '\n'. */
static void fuzz_command_line(const char *buf, size_t len)
{
	char *copy = malloc(len + 1);
	char *argv[FUZZ_MAX_ARGS];
	int argc = 0;

	if (!copy)
		return;
	memcpy(copy, buf, len);
	copy[len] = '\0';
	for (size_t i = 0; i <= len && argc < FUZZ_MAX_ARGS; i++) {
		argv[argc++] = copy + i;
		i += strlen(copy + i);
	}

	json_t *args = NULL;
	const struct ctl_command *cmd = NULL;
	char err[512];
	int rc = ctl_build_request(argc, argv, &args, &cmd, err, sizeof(err));
	if (rc != CTL_BUILD_OK) {
		if (args)
			abort();
		free(copy);
		return;
	}
	if (!cmd || !json_is_object(args))
		abort();
	json_t *req = json_pack("{s:s,s:O}", "cmd", cmd->cmd, "args", args);
	char *text = req ? json_dumps(req, JSON_COMPACT) : NULL;
	if (text) {
		size_t n = strlen(text);
		char *line = malloc(n + 1);
		if (line) {
			memcpy(line, text, n);
			line[n] = '\n';
			struct admin_request r;
			if (admin_parse_request(line, n + 1, &r, err, sizeof(err)) != 1)
				abort();
			check_request(&r);
			if (strcmp(r.cmd, cmd->cmd) != 0 || !json_equal(r.args, args))
				abort();
			admin_request_clear(&r);
			free(line);
		}
	}
	free(text);
	json_decref(req);
	json_decref(args);
	free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	if (data[0] & 1)
		fuzz_command_line((const char *)data + 1, size - 1);
	else
		fuzz_socket_bytes((const char *)data + 1, size - 1);
	return 0;
}
