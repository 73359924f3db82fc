/*
 * strata-ctl: the operator CLI. It sends one request to a daemon's admin
 * socket and prints the result.
 *
 * Exit status: 0 done; 1 the daemon refused (ok=false) or the output
 * could not be written; 2 usage error; 3 the daemon cannot be reached.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libxml/parser.h>
#include <libxml/tree.h>

#include "admin.h"
#include "commands.h"
#include "lictool.h"
#include "render.h"

enum { CTL_EXIT_OK = 0, CTL_EXIT_REFUSED = 1, CTL_EXIT_USAGE = 2, CTL_EXIT_UNREACHABLE = 3 };

#define CTL_MASTER_SOCKET "/run/strata/master.sock"
#define CTL_SLAVE_SOCKET "/run/strata/slave.sock"
#define CTL_TIMEOUT_MAX 86400

struct ctl_options {
	const char *socket;
	const char *config;
	enum render_format format;
	int timeout_s; /* 0: the command's default */
};

static void print_global_usage(FILE *out)
{
	fputs("usage: strata-ctl [-s SOCKET] [-c SERVER_XML] [--json | --csv] [--timeout S] "
	      "COMMAND [ARGS...]\n"
	      "\n"
	      "  -s, --socket SOCKET   admin socket of the daemon (default: $STRATA_ADMIN_SOCKET,\n"
	      "                        then <admin socket> of -c, then " CTL_MASTER_SOCKET
	      " when it\n"
	      "                        exists, then " CTL_SLAVE_SOCKET ")\n"
	      "  -c, --config FILE     read the admin socket from this server.xml\n"
	      "      --json            print results as JSON\n"
	      "      --csv             print tables as CSV\n"
	      "      --timeout S       wait at most S seconds for the reply\n"
	      "  -h, --help            print this help; 'strata-ctl help COMMAND' for one command\n"
	      "\n",
	      out);
	ctl_print_commands(out);
	fputs("\nexit status: 0 done, 1 the daemon refused, 2 usage error, 3 daemon unreachable\n",
	      out);
}

/*
 * Reads only <admin socket="..."/> (or the role's default path) from
 * server.xml: the CLI must not need the daemon's keys or database settings
 * to find its socket. No network, no DTD loading, no entity expansion.
 */
static int socket_from_config(const char *path, char *out, size_t outlen, char *err, size_t errlen)
{
	int rc = -1;
	/* libxml2 words a missing file as "failed to load external entity". */
	if (access(path, R_OK) < 0) {
		snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
		return -1;
	}
	xmlDocPtr doc =
	    xmlReadFile(path, NULL, XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
	if (!doc) {
		const xmlError *e = xmlGetLastError();
		snprintf(err, errlen, "%s: %s", path,
			 e && e->message ? e->message : "cannot parse\n");
		err[strcspn(err, "\n")] = '\0';
		return -1;
	}
	xmlNodePtr root = xmlDocGetRootElement(doc);
	if (!root || xmlStrcmp(root->name, BAD_CAST "server") != 0) {
		snprintf(err, errlen, "%s: the root element is not <server>", path);
		goto out;
	}
	for (xmlNodePtr n = root->children; n; n = n->next) {
		if (n->type != XML_ELEMENT_NODE || xmlStrcmp(n->name, BAD_CAST "admin") != 0)
			continue;
		xmlChar *sock = xmlGetNoNsProp(n, BAD_CAST "socket");
		if (sock && sock[0]) {
			snprintf(out, outlen, "%s", (const char *)sock);
			rc = 0;
		}
		xmlFree(sock);
		if (rc == 0)
			goto out;
	}
	xmlChar *role = xmlGetNoNsProp(root, BAD_CAST "role");
	if (role &&
	    (xmlStrcmp(role, BAD_CAST "master") == 0 || xmlStrcmp(role, BAD_CAST "slave") == 0)) {
		snprintf(out, outlen, "/run/strata/%s.sock", (const char *)role);
		rc = 0;
	} else {
		snprintf(err, errlen, "%s: <server role> must be master or slave", path);
	}
	xmlFree(role);
out:
	xmlFreeDoc(doc);
	return rc;
}

static int resolve_socket(const struct ctl_options *opt, char *out, size_t outlen, char *err,
			  size_t errlen)
{
	const char *env = getenv("STRATA_ADMIN_SOCKET");
	if (opt->socket)
		snprintf(out, outlen, "%s", opt->socket);
	else if (env && env[0])
		snprintf(out, outlen, "%s", env);
	else if (opt->config)
		return socket_from_config(opt->config, out, outlen, err, errlen);
	else if (access(CTL_MASTER_SOCKET, F_OK) == 0)
		snprintf(out, outlen, "%s", CTL_MASTER_SOCKET);
	else
		snprintf(out, outlen, "%s", CTL_SLAVE_SOCKET);
	return 0;
}

/* Returns the index of the first command word, or -1 after printing why. */
static int parse_global_options(int argc, char **argv, struct ctl_options *opt)
{
	enum { OPT_JSON = 256, OPT_CSV, OPT_TIMEOUT };
	static const struct option longopts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "config", required_argument, NULL, 'c' },
		{ "json", no_argument, NULL, OPT_JSON },
		{ "csv", no_argument, NULL, OPT_CSV },
		{ "timeout", required_argument, NULL, OPT_TIMEOUT },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	bool json = false, csv = false;
	int c;
	char *end;
	long v;

	/* "+": stop at the command word, so its options are left to the command table. */
	while ((c = getopt_long(argc, argv, "+s:c:h", longopts, NULL)) != -1) {
		switch (c) {
		case 's':
			opt->socket = optarg;
			break;
		case 'c':
			opt->config = optarg;
			break;
		case OPT_JSON:
			json = true;
			break;
		case OPT_CSV:
			csv = true;
			break;
		case OPT_TIMEOUT:
			v = strtol(optarg, &end, 10);
			if (end == optarg || *end != '\0' || v < 1 || v > CTL_TIMEOUT_MAX) {
				fprintf(stderr,
					"strata-ctl: --timeout must be 1..%d seconds, not '%s'\n",
					CTL_TIMEOUT_MAX, optarg);
				return -1;
			}
			opt->timeout_s = (int)v;
			break;
		case 'h':
			print_global_usage(stdout);
			exit(CTL_EXIT_OK);
		default:
			print_global_usage(stderr);
			return -1;
		}
	}
	if (json && csv) {
		fputs("strata-ctl: --json and --csv cannot be used together\n", stderr);
		return -1;
	}
	opt->format = json ? RENDER_JSON : csv ? RENDER_CSV : RENDER_TEXT;
	if (optind >= argc) {
		fputs("strata-ctl: no command given\n", stderr);
		print_global_usage(stderr);
		return -1;
	}
	return optind;
}

static int print_help(int argc, char **argv)
{
	const struct ctl_command *cmd = ctl_find_command(argc, argv);
	if (cmd) {
		ctl_print_usage(stdout, cmd);
		printf("%s\n", cmd->summary);
	} else {
		print_global_usage(stdout);
	}
	return CTL_EXIT_OK;
}

static int call_daemon(const struct ctl_options *opt, const struct ctl_command *cmd, json_t *args)
{
	char path[PATH_MAX];
	char err[512];

	if (resolve_socket(opt, path, sizeof(path), err, sizeof(err)) < 0) {
		fprintf(stderr, "strata-ctl: %s\n", err);
		return CTL_EXIT_USAGE;
	}
	int timeout_s = opt->timeout_s > 0 ? opt->timeout_s : cmd->timeout_s;
	json_t *reply = admin_call(path, cmd->cmd, args, timeout_s, err, sizeof(err));
	if (!reply) {
		fprintf(stderr, "strata-ctl: %s\n", err);
		return CTL_EXIT_UNREACHABLE;
	}

	int status;
	const json_t *ok = json_object_get(reply, "ok");
	if (!json_is_boolean(ok)) {
		fprintf(stderr, "strata-ctl: %s: malformed reply (no \"ok\")\n", path);
		status = CTL_EXIT_UNREACHABLE;
	} else if (!json_is_true(ok)) {
		const char *msg = json_string_value(json_object_get(reply, "error"));
		fprintf(stderr, "strata-ctl: ERROR: %s\n", msg ? msg : "(no reason given)");
		status = CTL_EXIT_REFUSED;
	} else if (render_result(stdout, json_object_get(reply, "result"), opt->format, err,
				 sizeof(err)) < 0) {
		fprintf(stderr, "strata-ctl: %s\n", err);
		status = CTL_EXIT_REFUSED;
	} else {
		status = CTL_EXIT_OK;
	}
	json_decref(reply);
	return status;
}

/* The offline licence commands run here; everything else goes to the daemon. */
static int run_command(const struct ctl_options *opt, const struct ctl_command *cmd, json_t *args)
{
	char err[512];
	int rc = 0;
	if (strcmp(cmd->cmd, CTL_LOCAL_LICENSE_KEYGEN) == 0)
		rc = lictool_keygen(args, stdout, err, sizeof(err));
	else if (strcmp(cmd->cmd, CTL_LOCAL_LICENSE_SIGN) == 0)
		rc = lictool_sign(args, stdout, err, sizeof(err));
	else if (strcmp(cmd->cmd, "license.install") == 0 &&
		 lictool_read_document(args, err, sizeof(err)) != 0)
		rc = -1;
	else
		return call_daemon(opt, cmd, args);
	if (rc != 0) {
		fprintf(stderr, "strata-ctl: %s\n", err);
		return CTL_EXIT_REFUSED;
	}
	return CTL_EXIT_OK;
}

int main(int argc, char **argv)
{
	struct ctl_options opt = { .format = RENDER_TEXT };
	int first = parse_global_options(argc, argv, &opt);
	if (first < 0)
		return CTL_EXIT_USAGE;
	argc -= first;
	argv += first;

	if (strcmp(argv[0], "help") == 0)
		return print_help(argc - 1, argv + 1);

	json_t *args = NULL;
	const struct ctl_command *cmd = NULL;
	char err[512];
	int status;
	switch (ctl_build_request(argc, argv, &args, &cmd, err, sizeof(err))) {
	case CTL_BUILD_OK:
		status = run_command(&opt, cmd, args);
		break;
	case CTL_BUILD_HELP:
		status = print_help(argc, argv);
		break;
	default:
		fprintf(stderr, "strata-ctl: %s\n", err);
		if (cmd)
			ctl_print_usage(stderr, cmd);
		else
			ctl_print_commands(stderr);
		status = CTL_EXIT_USAGE;
		break;
	}
	json_decref(args);
	xmlCleanupParser();
	return status;
}
