#include "faultpoint.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Where each point is: keep docs/ARCHITECTURE.md in step. */
const char *const faultpoint_names[] = {
	"slave.session.start",	    /* slave/link.c send_hello: before HELLO is queued */
	"slave.upload.midframe",    /* slave/link.c pump_upload: half an UPLOAD_BATCH written */
	"master.session.start",	    /* master/session.c on_hello: before WELCOME */
	"master.batch.committed",   /* master/session.c: batch committed, UPLOAD_ACK not sent */
	"slave.ack.received",	    /* slave/link.c on_upload_ack: before anything is recorded */
	"master.download.midframe", /* master/session.c send_download: half a DOWNLOAD written */
	"slave.download.received",  /* slave/link.c on_download: before it is applied */
	"slave.download.committed", /* slave/link.c on_download: committed, DOWNLOAD_ACK not sent */
	"master.download.acked",    /* master/session.c on_download_ack: before it is recorded */
	"master.session.end",	    /* master/session.c on_bye: before the session is recorded */
	"slave.session.end",	    /* slave/link.c on BYE_OK: before the session is recorded */
	NULL,
};

bool faultpoint_armed;
static char fp_name[64];
static long fp_at = 1;
static long fp_passes;

int faultpoint_init(char *err, size_t errlen)
{
	const char *v = getenv("STRATA_FAULTPOINT");
	faultpoint_armed = false;
	if (!v || !*v)
		return 0;
	const char *colon = strchr(v, ':');
	size_t len = colon ? (size_t)(colon - v) : strlen(v);
	long at = 1;
	if (colon) {
		char *end;
		at = strtol(colon + 1, &end, 10);
		if (colon[1] == '\0' || *end != '\0' || at < 1 || at > 1000000) {
			snprintf(err, errlen,
				 "STRATA_FAULTPOINT: '%s' is not a pass number 1..1000000",
				 colon + 1);
			return -1;
		}
	}
	bool known = false;
	for (size_t i = 0; faultpoint_names[i] && !known; i++)
		known =
		    strlen(faultpoint_names[i]) == len && strncmp(faultpoint_names[i], v, len) == 0;
	if (!known || len >= sizeof(fp_name)) {
		snprintf(err, errlen, "STRATA_FAULTPOINT: unknown point '%.*s'", (int)len, v);
		return -1;
	}
	memcpy(fp_name, v, len);
	fp_name[len] = '\0';
	fp_at = at;
	fp_passes = 0;
	faultpoint_armed = true;
	return 0;
}

bool faultpoint_due(const char *name)
{
	if (!faultpoint_armed || strcmp(name, fp_name) != 0)
		return false;
	return ++fp_passes == fp_at;
}

void faultpoint_kill(const char *name)
{
	char line[128];
	int n =
	    snprintf(line, sizeof(line), "faultpoint %s: SIGKILL (pass %ld)\n", name, fp_passes);
	/* Unbuffered, so the line is in the log before the process is gone. */
	if (n > 0 && write(STDERR_FILENO, line, (size_t)n) < 0)
		n = 0;
	raise(SIGKILL);
	abort();
}
