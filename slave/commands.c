#include "commands.h"

#include <stdio.h>
#include <string.h>

#include "agents.h"
#include "dps.h"
#include "effective.h"
#include "licstore.h"
#include "link.h"
#include "log.h"
#include "slave.h"
#include "store.h"

static const char *arg_str(json_t *args, const char *key)
{
	return json_string_value(json_object_get(args, key));
}

static json_t *cmd_status(struct slave *sl)
{
	return json_pack("{s:{s:s, s:s, s:s}}", "fields", "role", "slave", "name", sl->d.cfg.name,
			 "version", STRATA_VERSION);
}

/* The kind comes from the command, never from the request's arguments. */
static json_t *token_create(struct slave *sl, json_t *args, const char *kind, char *err,
			    size_t errlen)
{
	json_t *a = json_is_object(args) ? json_deep_copy(args) : json_object();
	if (!a || json_object_set_new(a, "kind", json_string(kind)) != 0) {
		json_decref(a);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	json_t *res = agents_token_create(sl->d.db, sl->agent_pki.pin, a, err, errlen);
	json_decref(a);
	return res;
}

/* Keep in step with commands_handle(): the HTTP API answers 404 for what is not here. */
const struct admin_command commands_table[] = {
	{ "register", 0 },	  { "unregister", 0 },
	{ "sync.now", 0 },	  { "sync.status", 1 },
	{ "policy.create", 0 },	  { "policy.update", 0 },
	{ "policy.delete", 0 },	  { "policy.list", 1 },
	{ "policy.show", 1 },
	{ "task.create", 0 },	  { "task.delete", 0 },
	{ "task.list", 1 },	  { "agent-token.create", 0 },
	{ "dp-token.create", 0 }, { "dp.list", 1 },
	{ "dp.remove", 0 },	  { "endpoint.list", 1 },
	{ "endpoint.revoke", 0 }, { "endpoint.command", 0 },
	{ "license.install", 0 }, { "license.show", 1 },
	{ "status", 1 },	  { NULL, 0 },
};

/*
 * After a local policy change (res: its result, passed through): every
 * endpoint's target version follows, and the agents whose effective
 * policy moved are told to fetch it. The change itself is done; a failure
 * here is logged and caught up at the next sync session.
 */
static json_t *policy_changed(struct db *db, json_t *res)
{
	char err[512];
	long long moved;
	if (!res)
		return NULL;
	if (effective_targets(db, &moved, err, sizeof(err)) != 0)
		log_warnx("policy: endpoints' policy targets not updated: %s", err);
	else if (moved > 0)
		log_info("policy: %lld endpoint(s) told to fetch their new effective policy", moved);
	return res;
}

void commands_handle(struct admin_req *req, const char *cmd, json_t *args, void *arg)
{
	struct slave *sl = arg;
	struct db *db = sl->d.db;
	char err[1024] = "";
	json_t *res = NULL;

	if (daemon_db_ensure(&sl->d) != 0) {
		admin_reply_error(req, "the slave's database is not reachable; see the log");
		return;
	}

	/* Commands answered later, when the exchange with the master ends. */
	if (strcmp(cmd, "register") == 0) {
		const char *master = arg_str(args, "master"), *token = arg_str(args, "token");
		if (!master || !token) {
			admin_reply_error(req,
					  "register needs --master HOST:PORT and --token TOKEN");
			return;
		}
		link_register(sl->link, req, master, token);
		return;
	}
	if (strcmp(cmd, "unregister") == 0) {
		link_unregister(sl->link, req, json_is_true(json_object_get(args, "force")));
		return;
	}
	if (strcmp(cmd, "sync.now") == 0) {
		link_sync_now(sl->link, req);
		return;
	}

	if (strcmp(cmd, "sync.status") == 0)
		res = link_status(sl->link, err, sizeof(err));
	else if (strcmp(cmd, "policy.create") == 0)
		res = policy_changed(db, store_create(db, false, args, err, sizeof(err)));
	else if (strcmp(cmd, "policy.update") == 0)
		res = policy_changed(db, store_update(db, false, args, err, sizeof(err)));
	else if (strcmp(cmd, "policy.delete") == 0)
		res = policy_changed(db, store_delete(db, false, args, err, sizeof(err)));
	else if (strcmp(cmd, "policy.list") == 0)
		res = store_list(db, false, err, sizeof(err));
	else if (strcmp(cmd, "policy.show") == 0)
		res = effective_show(db, args, err, sizeof(err));
	else if (strcmp(cmd, "task.create") == 0)
		res = store_create(db, true, args, err, sizeof(err));
	else if (strcmp(cmd, "task.delete") == 0)
		res = store_delete(db, true, args, err, sizeof(err));
	else if (strcmp(cmd, "task.list") == 0)
		res = store_list(db, true, err, sizeof(err));
	else if (strcmp(cmd, "agent-token.create") == 0)
		res = token_create(sl, args, "agent", err, sizeof(err));
	else if (strcmp(cmd, "dp-token.create") == 0)
		res = token_create(sl, args, "dp", err, sizeof(err));
	else if (strcmp(cmd, "dp.list") == 0)
		res = dps_list(db, err, sizeof(err));
	else if (strcmp(cmd, "dp.remove") == 0)
		res = dps_remove(db, args, err, sizeof(err));
	else if (strcmp(cmd, "endpoint.list") == 0)
		res = agents_endpoint_list(db, args, err, sizeof(err));
	else if (strcmp(cmd, "endpoint.revoke") == 0)
		res = agents_endpoint_revoke(db, args, err, sizeof(err));
	else if (strcmp(cmd, "endpoint.command") == 0)
		res = agents_command_create(db, args, err, sizeof(err));
	else if (strcmp(cmd, "license.install") == 0)
		res = licstore_install(db, sl->d.cfg.licence_public_key, args, err, sizeof(err));
	else if (strcmp(cmd, "license.show") == 0)
		res = licstore_show(db, sl->d.cfg.seats, err, sizeof(err));
	else if (strcmp(cmd, "status") == 0)
		res = cmd_status(sl);
	else if (strncmp(cmd, "slave.", 6) == 0 || strncmp(cmd, "report.", 7) == 0 ||
		 strcmp(cmd, "license.list") == 0) {
		admin_reply_error(req, "'%s' is a master command; this daemon is a slave", cmd);
		return;
	} else {
		admin_reply_error(req, "unknown command '%s'", cmd);
		return;
	}
	admin_reply_result(req, cmd, res, err);
}
