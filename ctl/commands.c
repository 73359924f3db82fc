#include "commands.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define CTL_TIMEOUT_DEFAULT 30
/* Registering runs a TLS enrolment with the master; unregistering revokes there. */
#define CTL_TIMEOUT_ENROL 120
/* The reply comes only when the whole sync session has ended. */
#define CTL_TIMEOUT_SYNC 900

static const struct ctl_option no_options[] = { { 0 } };

static const struct ctl_option slave_add_options[] = {
	{ "ttl", "ttl", CTL_OPT_INT, false, NULL, "SECONDS" },
	{ 0 },
};

static const struct ctl_option slave_remove_options[] = {
	{ "keep-data", "keep_data", CTL_OPT_BOOL, false, NULL, NULL },
	{ 0 },
};

static const struct ctl_option policy_create_options[] = {
	{ "settings", "settings", CTL_OPT_JSON_OBJECT, true, NULL, "JSON" },
	{ "slaves", "slaves", CTL_OPT_LIST, false, NULL, "A,B" },
	{ "group", "group", CTL_OPT_STRING, false, NULL, "PATH" },
	{ "lock", "lock", CTL_OPT_LIST, false, NULL, "A,B" },
	{ 0 },
};

static const struct ctl_option policy_update_options[] = {
	{ "settings", "settings", CTL_OPT_JSON_OBJECT, false, NULL, "JSON" },
	{ "slaves", "slaves", CTL_OPT_LIST, false, "all", "A,B" },
	{ "all", "all", CTL_OPT_FLAG, false, NULL, NULL },
	{ "group", "group", CTL_OPT_STRING, false, NULL, "PATH" },
	{ "lock", "lock", CTL_OPT_LIST, false, "unlock", "A,B" },
	{ "unlock", "unlock", CTL_OPT_FLAG, false, NULL, NULL },
	{ 0 },
};

static const struct ctl_option policy_show_options[] = {
	{ "effective", "effective", CTL_OPT_STRING, true, NULL, "ENDPOINT_UID" },
	{ 0 },
};

static const struct ctl_option license_keygen_options[] = {
	{ "out", "out", CTL_OPT_STRING, true, NULL, "DIR" },
	{ 0 },
};

static const struct ctl_option license_sign_options[] = {
	{ "key", "key", CTL_OPT_STRING, true, NULL, "FILE" },
	{ "id", "id", CTL_OPT_STRING, true, NULL, "ID" },
	{ "holder", "holder", CTL_OPT_STRING, true, NULL, "TEXT" },
	{ "seats", "seats", CTL_OPT_INT, true, NULL, "N" },
	{ "valid-from", "valid_from", CTL_OPT_STRING, true, NULL, "DATE" },
	{ "valid-until", "valid_until", CTL_OPT_STRING, true, NULL, "DATE" },
	{ "features", "features", CTL_OPT_LIST, false, NULL, "A,B" },
	{ "out", "out", CTL_OPT_STRING, false, NULL, "FILE" },
	{ 0 },
};

static const struct ctl_option task_create_options[] = {
	{ "kind", "kind", CTL_OPT_STRING, true, NULL, "KIND" },
	{ "params", "params", CTL_OPT_JSON, false, NULL, "JSON" },
	{ "slaves", "slaves", CTL_OPT_LIST, false, NULL, "A,B" },
	{ "group", "group", CTL_OPT_STRING, false, NULL, "PATH" },
	{ 0 },
};

static const struct ctl_option report_events_options[] = {
	{ "days", "days", CTL_OPT_INT, false, NULL, "N" },
	{ "kind", "kind", CTL_OPT_STRING, false, NULL, "KIND" },
	{ "severity", "severity", CTL_OPT_STRING, false, NULL, "SEVERITY" },
	{ 0 },
};

static const struct ctl_option register_options[] = {
	{ "master", "master", CTL_OPT_STRING, true, NULL, "HOST:PORT" },
	{ "token", "token", CTL_OPT_STRING, true, NULL, "TOKEN" },
	{ 0 },
};

static const struct ctl_option unregister_options[] = {
	{ "force", "force", CTL_OPT_BOOL, false, NULL, NULL },
	{ 0 },
};

static const struct ctl_option agent_token_options[] = {
	{ "group", "group", CTL_OPT_STRING, false, NULL, "PATH" },
	{ "expires", "expires", CTL_OPT_INT, false, NULL, "SECONDS" },
	{ 0 },
};

static const struct ctl_option endpoint_list_options[] = {
	{ "status", "status", CTL_OPT_STRING, false, NULL, "S" },
	{ "group", "group", CTL_OPT_STRING, false, NULL, "PATH" },
	{ 0 },
};

static const struct ctl_option endpoint_command_options[] = {
	{ "args", "args", CTL_OPT_JSON_OBJECT, false, NULL, "JSON" },
	{ 0 },
};

#define NAME_ARG                                                                                   \
	{                                                                                          \
		{                                                                                  \
			"name", "NAME"                                                             \
		}                                                                                  \
	}

static const struct ctl_command command_table[] = {
	{ "slave add", "slave.add", NAME_ARG, slave_add_options, CTL_TIMEOUT_DEFAULT,
	  "register a slave on the master and print its one-time enrolment token" },
	{ "slave list",
	  "slave.list",
	  { { 0 } },
	  no_options,
	  CTL_TIMEOUT_DEFAULT,
	  "list the slaves with their state and last sync" },
	{ "slave remove", "slave.remove", NAME_ARG, slave_remove_options, CTL_TIMEOUT_DEFAULT,
	  "unregister a slave and revoke its certificate (--keep-data archives its rows)" },
	{ "slave sync", "slave.sync", NAME_ARG, no_options, CTL_TIMEOUT_SYNC,
	  "ask a connected slave to sync now" },
	{ "policy create", "policy.create", NAME_ARG, policy_create_options, CTL_TIMEOUT_DEFAULT,
	  "create a policy (master: for all slaves unless --slaves is given; --lock A,B "
	  "locks settings); --group PATH applies it to that group and its subgroups" },
	{ "policy update", "policy.update", NAME_ARG, policy_update_options, CTL_TIMEOUT_DEFAULT,
	  "change a policy's settings or its target slaves" },
	{ "policy delete", "policy.delete", NAME_ARG, no_options, CTL_TIMEOUT_DEFAULT,
	  "delete a master-owned policy" },
	{ "policy list",
	  "policy.list",
	  { { 0 } },
	  no_options,
	  CTL_TIMEOUT_DEFAULT,
	  "list the policies" },
	{ "policy show",
	  "policy.show",
	  { { 0 } },
	  policy_show_options,
	  CTL_TIMEOUT_DEFAULT,
	  "(slave) the effective policy of an endpoint: each setting with its source and lock" },
	{ "task create", "task.create", NAME_ARG, task_create_options, CTL_TIMEOUT_DEFAULT,
	  "create a master-owned task (inventory or scan) for the endpoints of every slave, "
	  "or of --slaves, in --group PATH and its subgroups (default: all)" },
	{ "task delete", "task.delete", NAME_ARG, no_options, CTL_TIMEOUT_DEFAULT,
	  "delete a master-owned task" },
	{ "task list", "task.list", { { 0 } }, no_options, CTL_TIMEOUT_DEFAULT, "list the tasks" },
	{ "task status",
	  "task.status",
	  NAME_ARG,
	  no_options,
	  CTL_TIMEOUT_DEFAULT,
	  "a master task's results per slave: pending, running, succeeded, failed, data age" },
	{ "report endpoints",
	  "report.endpoints",
	  { { 0 } },
	  no_options,
	  CTL_TIMEOUT_DEFAULT,
	  "endpoint status across slaves, with each slave's data age" },
	{ "report compliance",
	  "report.compliance",
	  { { 0 } },
	  no_options,
	  CTL_TIMEOUT_DEFAULT,
	  "policy compliance across slaves: endpoints on their latest effective policy" },
	{ "report events",
	  "report.events",
	  { { 0 } },
	  report_events_options,
	  CTL_TIMEOUT_DEFAULT,
	  "events across slaves by day, kind and severity (last 7 days unless --days)" },
	{ "report tasks",
	  "report.tasks",
	  { { 0 } },
	  no_options,
	  CTL_TIMEOUT_DEFAULT,
	  "task results across slaves by task and slave" },
	{ "report sync",
	  "report.sync",
	  { { 0 } },
	  no_options,
	  CTL_TIMEOUT_DEFAULT,
	  "sync health of every slave: active, degraded, failed, with its data age" },
	{ "register",
	  "register",
	  { { 0 } },
	  register_options,
	  CTL_TIMEOUT_ENROL,
	  "enrol this slave with a master using a token from 'slave add'" },
	{ "unregister",
	  "unregister",
	  { { 0 } },
	  unregister_options,
	  CTL_TIMEOUT_ENROL,
	  "leave the master (--force when the master cannot be reached)" },
	{ "sync now",
	  "sync.now",
	  { { 0 } },
	  no_options,
	  CTL_TIMEOUT_SYNC,
	  "run a sync session with the master and wait for it to end" },
	{ "sync status",
	  "sync.status",
	  { { 0 } },
	  no_options,
	  CTL_TIMEOUT_DEFAULT,
	  "show the last sync sessions and the watermarks" },
	{ "agent-token create",
	  "agent-token.create",
	  { { 0 } },
	  agent_token_options,
	  CTL_TIMEOUT_DEFAULT,
	  "make a token agents enrol with on this slave (valid 86400 s unless --expires)" },
	{ "dp-token create",
	  "dp-token.create",
	  { { 0 } },
	  agent_token_options,
	  CTL_TIMEOUT_DEFAULT,
	  "make a single-use token a distribution point enrols with, serving --group PATH "
	  "and its subgroups (default: every group)" },
	{ "dp list",
	  "dp.list",
	  { { 0 } },
	  no_options,
	  CTL_TIMEOUT_DEFAULT,
	  "list the distribution points with their link status, agents and assignments" },
	{ "dp remove",
	  "dp.remove",
	  { { "name", "NAME" } },
	  no_options,
	  CTL_TIMEOUT_DEFAULT,
	  "remove a distribution point: its link is closed and its agents move on reconnect" },
	{ "endpoint list",
	  "endpoint.list",
	  { { 0 } },
	  endpoint_list_options,
	  CTL_TIMEOUT_DEFAULT,
	  "list this slave's endpoints with their status" },
	{ "endpoint command",
	  "endpoint.command",
	  { { "uid", "UID" }, { "kind", "KIND" } },
	  endpoint_command_options,
	  CTL_TIMEOUT_DEFAULT,
	  "queue a command (apply_policy, run_task, sync_now) for an endpoint's agent" },
	{ "endpoint revoke",
	  "endpoint.revoke",
	  { { "uid", "UID" } },
	  no_options,
	  CTL_TIMEOUT_DEFAULT,
	  "revoke an endpoint: its agent is refused and disconnected, its seat is freed" },
	{ "license keygen",
	  CTL_LOCAL_LICENSE_KEYGEN,
	  { { 0 } },
	  license_keygen_options,
	  CTL_TIMEOUT_DEFAULT,
	  "offline: make a licence signing key pair, DIR/licence.key (0600) and "
	  "DIR/licence.pub" },
	{ "license sign",
	  CTL_LOCAL_LICENSE_SIGN,
	  { { 0 } },
	  license_sign_options,
	  CTL_TIMEOUT_DEFAULT,
	  "offline: sign a licence (DATE: YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ, UTC) to stdout "
	  "or --out FILE" },
	{ "license install",
	  "license.install",
	  { { "file", "FILE" } },
	  no_options,
	  CTL_TIMEOUT_DEFAULT,
	  "install a licence file on this slave; a refused one leaves the old licence" },
	{ "license show",
	  "license.show",
	  { { 0 } },
	  no_options,
	  CTL_TIMEOUT_DEFAULT,
	  "show this slave's licence, seats used and expiry" },
	{ "license list",
	  "license.list",
	  { { 0 } },
	  no_options,
	  CTL_TIMEOUT_DEFAULT,
	  "every slave's licence and seats used, as last synced (master)" },
	{ "status",
	  "status",
	  { { 0 } },
	  no_options,
	  CTL_TIMEOUT_DEFAULT,
	  "show the daemon's role, version and health" },
	{ 0 },
};

const struct ctl_command *ctl_commands(void) { return command_table; }

/* Number of argv words the command's words take, or 0 when argv does not start with them. */
static int match_words(const char *words, int argc, char **argv)
{
	int n = 0;
	const char *w = words;
	while (*w) {
		size_t len = strcspn(w, " ");
		if (n >= argc || strlen(argv[n]) != len || strncmp(argv[n], w, len) != 0)
			return 0;
		n++;
		w += len;
		while (*w == ' ')
			w++;
	}
	return n;
}

static const struct ctl_option *find_option(const struct ctl_command *cmd, const char *name,
					    size_t len, int *index)
{
	for (int i = 0; cmd->options[i].name; i++) {
		if (strlen(cmd->options[i].name) == len &&
		    strncmp(cmd->options[i].name, name, len) == 0) {
			*index = i;
			return &cmd->options[i];
		}
	}
	return NULL;
}

static int parse_int(const char *text, json_int_t *out)
{
	if (!isdigit((unsigned char)text[0]) && text[0] != '-')
		return -1;
	char *end;
	errno = 0;
	long long v = strtoll(text, &end, 10);
	if (errno != 0 || *end != '\0' || end == text)
		return -1;
	*out = (json_int_t)v;
	return 0;
}

static json_t *parse_list(const char *text)
{
	json_t *list = json_array();
	const char *p = text;
	for (;;) {
		size_t len = strcspn(p, ",");
		const char *start = p;
		const char *end = p + len;
		while (start < end && isspace((unsigned char)*start))
			start++;
		while (end > start && isspace((unsigned char)end[-1]))
			end--;
		if (end == start) {
			json_decref(list);
			return NULL;
		}
		json_array_append_new(list, json_stringn(start, (size_t)(end - start)));
		if (p[len] == '\0')
			return list;
		p += len + 1;
	}
}

/* Converts one option value; returns the JSON value or NULL with err. */
static json_t *option_value(const struct ctl_command *cmd, const struct ctl_option *opt,
			    const char *value, char *err, size_t errlen)
{
	json_t *v = NULL;
	json_error_t jerr;
	json_int_t n;

	switch (opt->type) {
	case CTL_OPT_BOOL:
	case CTL_OPT_FLAG:
		return json_true();
	case CTL_OPT_STRING:
		if (value[0] == '\0') {
			snprintf(err, errlen, "%s: --%s may not be empty", cmd->words, opt->name);
			return NULL;
		}
		return json_string(value);
	case CTL_OPT_INT:
		if (parse_int(value, &n) < 0) {
			snprintf(err, errlen, "%s: --%s must be an integer, not '%s'", cmd->words,
				 opt->name, value);
			return NULL;
		}
		return json_integer(n);
	case CTL_OPT_LIST:
		v = parse_list(value);
		if (!v)
			snprintf(err, errlen, "%s: --%s has an empty item in '%s'", cmd->words,
				 opt->name, value);
		return v;
	case CTL_OPT_JSON:
	case CTL_OPT_JSON_OBJECT:
		v = json_loads(value, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &jerr);
		if (!v) {
			snprintf(err, errlen, "%s: --%s is not valid JSON: %s (line %d, column %d)",
				 cmd->words, opt->name, jerr.text, jerr.line, jerr.column);
			return NULL;
		}
		if (opt->type == CTL_OPT_JSON_OBJECT && !json_is_object(v)) {
			snprintf(err, errlen, "%s: --%s must be a JSON object", cmd->words,
				 opt->name);
			json_decref(v);
			return NULL;
		}
		return v;
	}
	snprintf(err, errlen, "%s: --%s has an unknown type", cmd->words, opt->name);
	return NULL;
}

static const struct ctl_command *find_command(int argc, char **argv, int *nwords)
{
	const struct ctl_command *best = NULL;
	*nwords = 0;
	for (const struct ctl_command *c = command_table; c->words; c++) {
		int n = match_words(c->words, argc, argv);
		if (n > *nwords) {
			*nwords = n;
			best = c;
		}
	}
	return best;
}

/* Operators often type "strata-ctl slave list --json"; the error then says where it belongs. */
static bool is_global_option(const char *arg, size_t len)
{
	static const char *const globals[] = { "-s",	 "-c",	  "--socket",  "--config",
					       "--json", "--csv", "--timeout", NULL };
	for (size_t i = 0; globals[i]; i++) {
		if (strlen(globals[i]) == len && strncmp(arg, globals[i], len) == 0)
			return true;
	}
	return false;
}

static bool takes_value(const struct ctl_option *opt)
{
	return opt->type != CTL_OPT_BOOL && opt->type != CTL_OPT_FLAG;
}

/* Parses positionals and options after the command words into args. */
static int parse_arguments(const struct ctl_command *cmd, int argc, char **argv, json_t *args,
			   char *err, size_t errlen)
{
	bool seen[CTL_MAX_OPTIONS] = { false };
	int npos = 0;
	bool options_ended = false;

	for (int i = 0; i < argc; i++) {
		const char *a = argv[i];
		if (!options_ended && strcmp(a, "--") == 0) {
			options_ended = true;
			continue;
		}
		if (!options_ended && (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0))
			return CTL_BUILD_HELP;
		if (options_ended || a[0] != '-' || a[1] == '\0') {
			if (npos >= CTL_MAX_POSITIONAL || !cmd->positional[npos].key) {
				snprintf(err, errlen, "%s: unexpected argument '%s'", cmd->words,
					 a);
				return CTL_BUILD_USAGE;
			}
			if (a[0] == '\0') {
				snprintf(err, errlen, "%s: %s may not be empty", cmd->words,
					 cmd->positional[npos].metavar);
				return CTL_BUILD_USAGE;
			}
			json_object_set_new(args, cmd->positional[npos].key, json_string(a));
			npos++;
			continue;
		}

		const char *name = a[1] == '-' ? a + 2 : a + 1;
		const char *eq = a[1] == '-' ? strchr(name, '=') : NULL;
		size_t len = eq ? (size_t)(eq - name) : strlen(name);
		int idx = -1;
		const struct ctl_option *opt =
		    a[1] == '-' ? find_option(cmd, name, len, &idx) : NULL;
		if (!opt) {
			int shown = (int)(eq ? (size_t)(eq - a) : strlen(a));
			snprintf(err, errlen, "%s: unknown option '%.*s'%s", cmd->words, shown, a,
				 is_global_option(a, (size_t)shown)
				     ? " (global options go before the command)"
				     : "");
			return CTL_BUILD_USAGE;
		}
		if (seen[idx]) {
			snprintf(err, errlen, "%s: --%s given twice", cmd->words, opt->name);
			return CTL_BUILD_USAGE;
		}
		seen[idx] = true;

		const char *value = NULL;
		if (!takes_value(opt)) {
			if (eq) {
				snprintf(err, errlen, "%s: --%s takes no value", cmd->words,
					 opt->name);
				return CTL_BUILD_USAGE;
			}
		} else if (eq) {
			value = eq + 1;
		} else if (i + 1 < argc) {
			value = argv[++i];
		} else {
			snprintf(err, errlen, "%s: --%s needs a value (%s)", cmd->words, opt->name,
				 opt->metavar);
			return CTL_BUILD_USAGE;
		}
		json_t *v = option_value(cmd, opt, value, err, errlen);
		if (!v)
			return CTL_BUILD_USAGE;
		json_object_set_new(args, opt->key, v);
	}

	if (npos < CTL_MAX_POSITIONAL && cmd->positional[npos].key) {
		snprintf(err, errlen, "%s: missing %s", cmd->words, cmd->positional[npos].metavar);
		return CTL_BUILD_USAGE;
	}
	for (int i = 0; cmd->options[i].name; i++) {
		const struct ctl_option *opt = &cmd->options[i];
		int other = -1;
		if (opt->required && !seen[i]) {
			snprintf(err, errlen, "%s: --%s is required", cmd->words, opt->name);
			return CTL_BUILD_USAGE;
		}
		if (opt->excludes && seen[i] &&
		    find_option(cmd, opt->excludes, strlen(opt->excludes), &other) && seen[other]) {
			snprintf(err, errlen, "%s: --%s and --%s cannot be used together",
				 cmd->words, opt->name, opt->excludes);
			return CTL_BUILD_USAGE;
		}
		if (opt->type == CTL_OPT_BOOL && !seen[i])
			json_object_set_new(args, opt->key, json_false());
	}
	return CTL_BUILD_OK;
}

const struct ctl_command *ctl_find_command(int argc, char **argv)
{
	int nwords;
	return find_command(argc, argv, &nwords);
}

int ctl_build_request(int argc, char **argv, json_t **args_out, const struct ctl_command **cmd_out,
		      char *err, size_t errlen)
{
	*args_out = NULL;
	*cmd_out = NULL;

	if (argc < 1) {
		snprintf(err, errlen, "no command given");
		return CTL_BUILD_USAGE;
	}
	int nwords;
	const struct ctl_command *cmd = find_command(argc, argv, &nwords);
	if (!cmd) {
		if (strcmp(argv[0], "help") == 0 || strcmp(argv[0], "-h") == 0 ||
		    strcmp(argv[0], "--help") == 0)
			return CTL_BUILD_HELP;
		if (argc > 1 && argv[1][0] != '-')
			snprintf(err, errlen, "unknown command '%s %s'", argv[0], argv[1]);
		else
			snprintf(err, errlen, "unknown command '%s'", argv[0]);
		return CTL_BUILD_USAGE;
	}
	*cmd_out = cmd;

	json_t *args = json_object();
	if (!args) {
		snprintf(err, errlen, "out of memory");
		return CTL_BUILD_USAGE;
	}
	int rc = parse_arguments(cmd, argc - nwords, argv + nwords, args, err, errlen);
	if (rc != CTL_BUILD_OK) {
		json_decref(args);
		return rc;
	}
	*args_out = args;
	return CTL_BUILD_OK;
}

static void usage_line(const struct ctl_command *cmd, char *buf, size_t len)
{
	FILE *f = fmemopen(buf, len, "w");
	if (!f) {
		snprintf(buf, len, "%s", cmd->words);
		return;
	}
	fputs(cmd->words, f);
	for (int i = 0; i < CTL_MAX_POSITIONAL && cmd->positional[i].key; i++)
		fprintf(f, " %s", cmd->positional[i].metavar);
	for (int i = 0; cmd->options[i].name; i++) {
		const struct ctl_option *opt = &cmd->options[i];
		bool excluded_by_earlier = false;
		for (int j = 0; j < i; j++) {
			const char *ex = cmd->options[j].excludes;
			if (ex && strcmp(ex, opt->name) == 0)
				excluded_by_earlier = true;
		}
		if (excluded_by_earlier)
			continue;
		fputs(opt->required ? " " : " [", f);
		fprintf(f, "--%s", opt->name);
		if (takes_value(opt))
			fprintf(f, " %s", opt->metavar);
		if (opt->excludes) {
			int other;
			const struct ctl_option *ex =
			    find_option(cmd, opt->excludes, strlen(opt->excludes), &other);
			if (ex) {
				fprintf(f, " | --%s", ex->name);
				if (takes_value(ex))
					fprintf(f, " %s", ex->metavar);
			}
		}
		if (!opt->required)
			fputc(']', f);
	}
	fclose(f);
	/* fmemopen writes no terminator when the line fills the buffer. */
	buf[len - 1] = '\0';
}

void ctl_print_usage(FILE *out, const struct ctl_command *cmd)
{
	char line[256];
	usage_line(cmd, line, sizeof(line));
	fprintf(out, "usage: strata-ctl [GLOBAL OPTIONS] %s\n", line);
}

void ctl_print_commands(FILE *out)
{
	char line[256];
	fputs("commands:\n", out);
	for (const struct ctl_command *c = command_table; c->words; c++) {
		usage_line(c, line, sizeof(line));
		fprintf(out, "  %s\n      %s\n", line, c->summary);
	}
}
