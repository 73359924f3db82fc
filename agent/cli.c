#include "cli.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int acli_split_hostport(const char *s, char *host, size_t hostlen, int *port)
{
	const char *colon, *h = s;
	size_t hl;
	if (s[0] == '[') {
		const char *end = strchr(s, ']');
		if (!end || end[1] != ':')
			return -1;
		h = s + 1;
		hl = (size_t)(end - h);
		colon = end + 1;
	} else {
		colon = strrchr(s, ':');
		if (!colon || strchr(s, ':') != colon)
			return -1;
		hl = (size_t)(colon - s);
	}
	if (hl == 0 || hl >= hostlen)
		return -1;
	char *endp;
	long p = strtol(colon + 1, &endp, 10);
	if (!colon[1] || *endp || p < 1 || p > 65535)
		return -1;
	memcpy(host, h, hl);
	host[hl] = '\0';
	*port = (int)p;
	return 0;
}

__attribute__((format(printf, 3, 4))) static int fail(char *err, size_t errlen, const char *fmt,
						      ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return -1;
}

static int parse_int(const char *s, long min, long max, int *out)
{
	char *end;
	long v = strtol(s, &end, 10);
	if (!*s || *end || v < min || v > max)
		return -1;
	*out = (int)v;
	return 0;
}

/* The simulator's own options; true when opt was one of them (then *bad says if its value was). */
static bool sim_option(struct acli *o, bool enrol, const char *opt, const char *val, char *err,
		       size_t errlen, bool *bad)
{
	static const struct {
		const char *name;
		bool enrol, run;
		long min, max;
		size_t off;
	} table[] = {
		{ "--procs", true, true, 1, 1024, offsetof(struct acli, procs) },
		{ "--inflight", true, true, 1, 100000, offsetof(struct acli, inflight) },
		{ "--rate", false, true, 1, 1000000, offsetof(struct acli, rate) },
		{ "--duration", false, true, 1, 86400 * 365, offsetof(struct acli, duration) },
		{ "--fast-heartbeat", false, true, 1, 3600, offsetof(struct acli, fast_heartbeat) },
		{ "--events-per-min", false, true, 0, 600, offsetof(struct acli, events_per_min) },
	};
	if (strcmp(opt, "--sources") == 0) {
		o->sources = val;
		return true;
	}
	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
		if (strcmp(opt, table[i].name) != 0 || !(enrol ? table[i].enrol : table[i].run))
			continue;
		if (parse_int(val, table[i].min, table[i].max, (int *)((char *)o + table[i].off)) !=
		    0) {
			fail(err, errlen, "%s %s: must be %ld to %ld", opt, val, table[i].min,
			     table[i].max);
			*bad = true;
			return false;
		}
		return true;
	}
	return false;
}

int acli_parse(int argc, char **argv, struct acli *o, char *err, size_t errlen)
{
	const char *server = NULL;
	memset(o, 0, sizeof(*o));
	o->mode = "push";
	o->poll_interval = ACLI_POLL_DEFAULT;
	int i = 1;
	for (; i < argc && argv[i][0] == '-'; i++) {
		if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
			o->help = true;
			return 0;
		} else if (strcmp(argv[i], "-v") == 0) {
			o->verbose = true;
		} else if (strcmp(argv[i], "-s") == 0 && i + 1 < argc) {
			o->state_dir = argv[++i];
		} else if (strcmp(argv[i], "--simulate") == 0 && i + 1 < argc) {
			if (parse_int(argv[++i], 1, 10000000, &o->simulate) != 0)
				return fail(err, errlen,
					    "--simulate %s: must be 1 to 10000000 agents", argv[i]);
		} else {
			return fail(err, errlen, "unknown or incomplete option %s", argv[i]);
		}
	}
	if (i >= argc)
		return fail(err, errlen, "%s", "a command is required: enrol or run");
	if (strcmp(argv[i], "enrol") == 0)
		o->cmd = ACLI_ENROL;
	else if (strcmp(argv[i], "run") == 0)
		o->cmd = ACLI_RUN;
	else
		return fail(err, errlen, "unknown command %s", argv[i]);
	for (i++; i < argc; i++) {
		const char *opt = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
		bool enrol = o->cmd == ACLI_ENROL, bad = false;
		if (strcmp(opt, "-h") == 0 || strcmp(opt, "--help") == 0) {
			o->help = true;
			return 0;
		}
		if (strcmp(opt, "-v") == 0) {
			o->verbose = true;
			continue;
		}
		if (!val)
			return fail(err, errlen, "unknown option or missing value: %s", opt);
		if (enrol && strcmp(opt, "--server") == 0)
			server = val;
		else if (enrol && strcmp(opt, "--token") == 0)
			o->token = val;
		else if (enrol && strcmp(opt, "--mode") == 0)
			o->mode = val;
		else if (enrol && strcmp(opt, "--hostname") == 0)
			o->hostname = val;
		else if (!enrol && strcmp(opt, "--poll-interval") == 0) {
			char *end;
			long v = strtol(val, &end, 10);
			if (!*val || *end || v < 1 || v > 86400)
				return fail(err, errlen,
					    "--poll-interval %s: must be 1 to 86400 seconds", val);
			o->poll_interval = (int)v;
		} else if (!enrol && strcmp(opt, "--scan-root") == 0)
			o->scan_root = val;
		else if (o->simulate && sim_option(o, enrol, opt, val, err, errlen, &bad))
			;
		else if (bad)
			return -1;
		else
			return fail(err, errlen, "unknown option %s", opt);
		i++;
	}
	if (!o->state_dir)
		return fail(err, errlen, "%s", "-s STATE_DIR is required");
	if (o->cmd == ACLI_ENROL) {
		if (!server || !o->token)
			return fail(err, errlen, "%s",
				    "enrol needs --server HOST:PORT and --token TOKEN");
		if (acli_split_hostport(server, o->host, sizeof(o->host), &o->port) != 0)
			return fail(err, errlen, "--server %s: expected HOST:PORT", server);
		if (o->simulate && strcmp(o->mode, "push") != 0)
			return fail(err, errlen, "%s", "simulated agents are push agents");
		if (strcmp(o->mode, "push") != 0 && strcmp(o->mode, "poll") != 0)
			return fail(err, errlen, "--mode %s: must be push or poll", o->mode);
		if (o->hostname && (!*o->hostname || strlen(o->hostname) > 253))
			return fail(err, errlen, "%s", "--hostname must be 1 to 253 characters");
	}
	return 0;
}
