#include "commands.h"

#include <stdio.h>
#include <string.h>

#include "log.h"
#include "master.h"
#include "publish.h"
#include "registry.h"
#include "report.h"
#include "session.h"

static const char *arg_str(json_t *args, const char *key)
{
	return json_string_value(json_object_get(args, key));
}

static json_t *cmd_slave_add(struct master *m, json_t *args, char *err, size_t errlen)
{
	const char *name = arg_str(args, "name");
	json_t *ttl_j = json_object_get(args, "ttl");
	int ttl = m->d.cfg.token_ttl;
	char token[160];
	if (!name) {
		snprintf(err, errlen, "slave add: NAME is required");
		return NULL;
	}
	if (ttl_j) {
		if (!json_is_integer(ttl_j) || json_integer_value(ttl_j) < 60 ||
		    json_integer_value(ttl_j) > 30 * 86400) {
			snprintf(err, errlen, "slave add: --ttl must be 60 to 2592000 seconds");
			return NULL;
		}
		ttl = (int)json_integer_value(ttl_j);
	}
	if (reg_slave_add(m->d.db, &m->pki, name, ttl, token, sizeof(token), err, errlen) != 0)
		return NULL;
	return json_pack("{s:{s:s, s:s, s:i, s:s}}", "fields", "slave", name, "token", token,
			 "expires_in_s", ttl, "register_with",
			 "strata-ctl register --master HOST:PORT --token TOKEN (on the slave)");
}

static json_t *cmd_slave_remove(struct master *m, json_t *args, char *err, size_t errlen)
{
	const char *name = arg_str(args, "name");
	bool keep = json_is_true(json_object_get(args, "keep_data"));
	int id;
	if (!name) {
		snprintf(err, errlen, "slave remove: NAME is required");
		return NULL;
	}
	if (reg_slave_remove(m->d.db, name, keep, &id, err, errlen) != 0)
		return NULL;
	session_kick(m, id, "this slave was unregistered by the master's operator");
	return json_pack("{s:s++}", "message", "slave removed: ", name,
			 keep ? " (replicated rows kept)" : " (replicated rows dropped)");
}

static json_t *cmd_slave_sync(struct master *m, json_t *args, char *err, size_t errlen)
{
	const char *name = arg_str(args, "name");
	struct slave_ref ref;
	if (!name) {
		snprintf(err, errlen, "slave sync: NAME is required");
		return NULL;
	}
	if (reg_find(m->d.db, name, &ref, err, errlen) != 0)
		return NULL;
	switch (session_request_sync(m, ref.id)) {
	case 2:
		return json_pack("{s:s++}", "message", "slave ", name, " is syncing now");
	case 1:
		return json_pack("{s:s++}", "message", "sync requested from slave ", name,
				 " over its open connection");
	default:
		return json_pack("{s:s++}", "message", "slave ", name,
				 " is not connected; it syncs at its next session (on its timer)");
	}
}

static json_t *cmd_status(struct master *m, char *err, size_t errlen)
{
	return json_pack("{s:{s:s, s:s, s:s, s:s+, s:i}}", "fields", "role", "master", "name",
			 m->d.cfg.name, "version", STRATA_VERSION, "ca_pin", "sha256:", m->pki.pin,
			 "open_sessions", m->nsessions);
}

/* Keep in step with commands_handle(): the HTTP API answers 404 for what is not here. */
const struct admin_command commands_table[] = {
	{ "slave.add", 0 },
	{ "slave.list", 1 },
	{ "slave.remove", 0 },
	{ "slave.sync", 0 },
	{ "policy.create", 0 },
	{ "policy.update", 0 },
	{ "policy.delete", 0 },
	{ "policy.list", 1 },
	{ "task.create", 0 },
	{ "task.delete", 0 },
	{ "task.list", 1 },
	{ "task.status", 1 },
	{ "report.endpoints", 1 },
	{ "report.compliance", 1 },
	{ "report.events", 1 },
	{ "report.tasks", 1 },
	{ "report.sync", 1 },
	{ "license.list", 1 },
	{ "status", 1 },
	{ NULL, 0 },
};

void commands_handle(struct admin_req *req, const char *cmd, json_t *args, void *arg)
{
	struct master *m = arg;
	char err[1024] = "";
	json_t *res = NULL;
	bool known = true;

	if (daemon_db_ensure(&m->d) != 0) {
		admin_reply_error(req, "the master's database is not reachable; see the log");
		return;
	}

	if (strcmp(cmd, "slave.add") == 0)
		res = cmd_slave_add(m, args, err, sizeof(err));
	else if (strcmp(cmd, "slave.list") == 0)
		res = reg_slave_list(m->d.db, err, sizeof(err));
	else if (strcmp(cmd, "slave.remove") == 0)
		res = cmd_slave_remove(m, args, err, sizeof(err));
	else if (strcmp(cmd, "slave.sync") == 0)
		res = cmd_slave_sync(m, args, err, sizeof(err));
	else if (strcmp(cmd, "policy.create") == 0)
		res = publish_create(m->d.db, false, args, err, sizeof(err));
	else if (strcmp(cmd, "policy.update") == 0)
		res = publish_update(m->d.db, false, args, err, sizeof(err));
	else if (strcmp(cmd, "policy.delete") == 0)
		res = publish_delete(m->d.db, false, args, err, sizeof(err));
	else if (strcmp(cmd, "policy.list") == 0)
		res = publish_list(m->d.db, false, err, sizeof(err));
	else if (strcmp(cmd, "task.create") == 0)
		res = publish_create(m->d.db, true, args, err, sizeof(err));
	else if (strcmp(cmd, "task.delete") == 0)
		res = publish_delete(m->d.db, true, args, err, sizeof(err));
	else if (strcmp(cmd, "task.list") == 0)
		res = publish_list(m->d.db, true, err, sizeof(err));
	else if (strcmp(cmd, "task.status") == 0)
		res = report_task_status(m->d.db, args, err, sizeof(err));
	else if (strcmp(cmd, "report.endpoints") == 0)
		res = report_endpoints(m->d.db, err, sizeof(err));
	else if (strcmp(cmd, "report.compliance") == 0)
		res = report_compliance(m->d.db, err, sizeof(err));
	else if (strcmp(cmd, "report.events") == 0)
		res = report_events(m->d.db, args, err, sizeof(err));
	else if (strcmp(cmd, "report.tasks") == 0)
		res = report_tasks(m->d.db, err, sizeof(err));
	else if (strcmp(cmd, "report.sync") == 0)
		res = report_sync(m->d.db, err, sizeof(err));
	else if (strcmp(cmd, "license.list") == 0)
		res = report_licences(m->d.db, err, sizeof(err));
	else if (strcmp(cmd, "status") == 0)
		res = cmd_status(m, err, sizeof(err));
	else
		known = false;

	if (!known) {
		if (strcmp(cmd, "register") == 0 || strcmp(cmd, "unregister") == 0 ||
		    strncmp(cmd, "sync.", 5) == 0 || strncmp(cmd, "endpoint", 8) == 0 ||
		    strncmp(cmd, "agent", 5) == 0 || strncmp(cmd, "dp", 2) == 0 ||
		    strcmp(cmd, "license.install") == 0 || strcmp(cmd, "license.show") == 0 ||
		    strcmp(cmd, "policy.show") == 0)
			admin_reply_error(req,
					  "'%s' is a slave command; the master has no endpoints "
					  "and no master of its own",
					  cmd);
		else
			admin_reply_error(req, "unknown command '%s'", cmd);
		return;
	}
	admin_reply_result(req, cmd, res, err);
}
