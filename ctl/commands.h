/*
 * commands: the table of strata-ctl commands and the translation of a
 * command line into an admin request.
 *
 * Each entry maps one or two CLI words ("slave add") to the admin command
 * name ("slave.add"), its positional arguments and its options, and
 * carries the default reply timeout. ctl_build_request() is pure: it
 * reads argv (the words after the global options) and produces the
 * request's "args" object, so every command can be tested without a
 * daemon.
 */
#ifndef STRATA_CTL_COMMANDS_H
#define STRATA_CTL_COMMANDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include <jansson.h>

#define CTL_MAX_POSITIONAL 2

/* Commands strata-ctl runs itself, without a daemon (see ctl/lictool.h). */
#define CTL_LOCAL_LICENSE_KEYGEN "local:license.keygen"
#define CTL_LOCAL_LICENSE_SIGN "local:license.sign"
/* Options one command may declare. */
#define CTL_MAX_OPTIONS 32

enum ctl_opt_type {
	CTL_OPT_BOOL,	     /* flag; the key is always sent, true or false */
	CTL_OPT_FLAG,	     /* flag; the key is sent (true) only when given */
	CTL_OPT_STRING,	     /* --opt VALUE -> "VALUE" */
	CTL_OPT_INT,	     /* --opt 60 -> 60 */
	CTL_OPT_LIST,	     /* --opt A,B -> ["A","B"] */
	CTL_OPT_JSON,	     /* --opt '<any JSON value>' */
	CTL_OPT_JSON_OBJECT, /* --opt '{...}' */
};

struct ctl_option {
	const char *name; /* without the leading "--" */
	const char *key;  /* key in the request's args */
	enum ctl_opt_type type;
	bool required;
	const char *excludes; /* name of an option that may not be given with this one */
	const char *metavar;  /* shown in usage for options that take a value */
};

struct ctl_positional {
	const char *key;     /* key in the request's args */
	const char *metavar; /* shown in usage */
};

struct ctl_command {
	const char *words; /* "slave add" */
	const char *cmd;   /* "slave.add" */
	struct ctl_positional positional[CTL_MAX_POSITIONAL];
	const struct ctl_option *options; /* terminated by an entry with name NULL */
	int timeout_s;
	const char *summary;
};

enum ctl_build_status {
	CTL_BUILD_OK = 0,
	CTL_BUILD_HELP = 1,   /* -h/--help was given; *cmd_out is the command or NULL */
	CTL_BUILD_USAGE = -1, /* err says why; *cmd_out is the command when it was recognised */
};

/*
 * Translates argv (command words, positionals and options) into the args
 * object of the request. On CTL_BUILD_OK, *args_out is a new reference the
 * caller decrefs and *cmd_out points into the static table. On any other
 * status *args_out is NULL.
 */
__attribute__((warn_unused_result)) int ctl_build_request(int argc, char **argv, json_t **args_out,
							  const struct ctl_command **cmd_out,
							  char *err, size_t errlen);

/* The command whose words start argv ("slave add alpha" -> slave add), or NULL. */
const struct ctl_command *ctl_find_command(int argc, char **argv);

/* Every command, in help order; the entry after the last has words NULL. */
const struct ctl_command *ctl_commands(void);

/* "slave add NAME [--ttl SECONDS]" */
void ctl_print_usage(FILE *out, const struct ctl_command *cmd);
/* Every command's usage with its one-line summary. */
void ctl_print_commands(FILE *out);

#endif
