/*
 * Policies along the group tree, with a master, a slave and real agents
 * in /branch and /branch/lab: bad settings are refused with the setting's
 * name on both sides; a master policy at /branch locks "heartbeat"; a
 * local override of it is refused, and one that existed before the lock
 * arrived is held off and logged; an unlocked local override at the
 * subgroup applies there only; `policy show --effective` tells each
 * setting's source; each agent applies its own endpoint's effective
 * policy, whose version A_AUTH_OK and A_POLICY share.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <CUnit/Basic.h>
#include <jansson.h>

#include "agentproto.h"
#include "harness_agent.h"
#include "harness_faults.h"
#include "harness_pg.h"
#include "harness_proc.h"
#include "harness_tls.h"

#define SHA_LAB "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"

static struct hnode master, sa;

struct agent {
	const char *host, *group;
	char dir[600], log[700], uid[80];
	pid_t pid;
};

static struct agent agents[] = {
	{ "desk-1", "/branch", "", "", "", 0 },
	{ "lab-1", "/branch/lab", "", "", "", 0 },
};
#define NAGENTS (sizeof(agents) / sizeof(agents[0]))

static int suite_init(void)
{
	if (hpg_require() != 0)
		return -1;
	if (hp_master_init(&master, "hq", NULL) != 0 || hp_start(&master) != 0)
		return -1;
	if (hp_slave_init(&sa, "site-a", master.port, 1800, NULL) != 0 || hp_start(&sa) != 0 ||
	    hp_enrol(&master, &sa) != 0)
		return -1;
	for (size_t i = 0; i < NAGENTS; i++) {
		snprintf(agents[i].dir, sizeof(agents[i].dir), "%s/%s", hp_root(), agents[i].host);
		snprintf(agents[i].log, sizeof(agents[i].log), "%s/%s.log", hp_root(),
			 agents[i].host);
	}
	return 0;
}

static int suite_clean(void)
{
	for (size_t i = 0; i < NAGENTS; i++)
		hp_stop_checked(&agents[i].pid, agents[i].log);
	hp_cleanup(&sa);
	hp_cleanup(&master);
	return 0;
}

static bool all_online(void *arg)
{
	return hp_query_ll(&sa, "SELECT count(*) FROM endpoints WHERE status = 'online'") ==
	       (long long)NAGENTS;
}

static void test_agents_online(void)
{
	for (size_t i = 0; i < NAGENTS; i++) {
		char *tok = ha_make_token(&sa, agents[i].group);
		CU_ASSERT_PTR_NOT_NULL_FATAL(tok);
		CU_ASSERT_EQUAL_FATAL(ha_agent_enrol(&sa, agents[i].dir, tok, agents[i].host, NULL),
				      0);
		free(tok);
		agents[i].pid =
		    hp_spawn_agent(agents[i].log, "-v", "-s", agents[i].dir, "run", NULL);
		const char *p[] = { agents[i].host };
		char *uid = hf_value(&sa, "SELECT uid FROM endpoints WHERE hostname = $1", 1, p);
		CU_ASSERT_PTR_NOT_NULL_FATAL(uid);
		snprintf(agents[i].uid, sizeof(agents[i].uid), "%s", uid);
		free(uid);
	}
	CU_ASSERT_TRUE(hp_wait(all_online, NULL, 30));
}

/*
 * Runs strata-ctl on n with up to 10 words (NULL-terminated): 0/1 as
 * hp_ctl, -1 when the output lacks needle (NULL: anything goes).
 */
static int __attribute__((sentinel)) ctl_says(struct hnode *n, const char *needle, ...)
{
	const char *w[11] = { NULL };
	va_list ap;
	va_start(ap, needle);
	for (int i = 0; i < 10 && (w[i] = va_arg(ap, const char *)) != NULL; i++)
		;
	va_end(ap);
	char *out = NULL;
	int rc = hp_ctl(n, &out, w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7], w[8], w[9], NULL);
	if (needle && !strstr(out ? out : "", needle)) {
		fprintf(stderr, "expected '%s' in: %s\n", needle, out ? out : "");
		rc = -1;
	}
	free(out);
	return rc;
}

static void test_bad_settings_refused(void)
{
	CU_ASSERT_EQUAL(ctl_says(&master, "unknown setting 'hartbeat'", "policy", "create", "typo",
				 "--settings", "{\"hartbeat\": 30}", NULL, NULL),
			1);
	CU_ASSERT_EQUAL(ctl_says(&master,
				 "setting 'heartbeat': must be a whole number of seconds from 5 to "
				 "86400",
				 "policy", "create", "slow", "--settings", "{\"heartbeat\": 3}",
				 NULL, NULL),
			1);
	CU_ASSERT_EQUAL(ctl_says(&master, "cannot lock setting 'block_sha256'", "policy", "create",
				 "half", "--settings", "{\"heartbeat\": 30}", "--lock",
				 "block_sha256", NULL),
			1);
	CU_ASSERT_EQUAL(hp_query_ll(&master, "SELECT count(*) FROM policies"), 0);
	CU_ASSERT_EQUAL(ctl_says(&sa, "setting 'block_sha256': item 1", "policy", "create", "typo",
				 "--settings", "{\"block_sha256\": [\"nothex\"]}", NULL, NULL),
			1);
	CU_ASSERT_EQUAL(ctl_says(&sa, "unknown setting 'hartbeat'", "policy", "create", "typo",
				 "--settings", "{\"hartbeat\": 30}", NULL, NULL),
			1);
	CU_ASSERT_EQUAL(hp_query_ll(&sa, "SELECT count(*) FROM policies"), 0);
	/* The effective policy is a slave's. */
	CU_ASSERT_EQUAL(ctl_says(&master, "is a slave command", "policy", "show", "--effective",
				 agents[0].uid, NULL, NULL, NULL),
			1);
}

static void test_lock_holds_against_local(void)
{
	/* A local override that exists before the master's lock arrives. */
	CU_ASSERT_EQUAL(ctl_says(&sa, NULL, "policy", "create", "branch-beat", "--group", "/branch",
				 "--settings", "{\"heartbeat\": 20}", NULL),
			0);
	CU_ASSERT_EQUAL(ctl_says(&master, NULL, "policy", "create", "base", "--group", "/branch",
				 "--settings", "{\"heartbeat\": 30, \"block_sha256\": []}",
				 "--lock", "heartbeat", NULL),
			0);
	CU_ASSERT_EQUAL(hp_sync(&sa), 0);
	CU_ASSERT_EQUAL(hp_query_ll(&sa, "SELECT count(*) FROM policies WHERE owner = 'master:hq' "
					 "AND target_group = '/branch' AND locked = '{heartbeat}'"),
			1);
	CU_ASSERT_TRUE(
	    hp_wait_log(&sa,
			"policy 'branch-beat' (local) sets 'heartbeat', locked by policy "
			"'base' (master:hq): the lock wins",
			10));
	/* A new local override of the locked setting, at the group or below: refused. */
	CU_ASSERT_EQUAL(ctl_says(&sa,
				 "setting 'heartbeat' is locked by policy 'base' (master:hq) at "
				 "group /branch",
				 "policy", "create", "lab-beat", "--group", "/branch/lab",
				 "--settings", "{\"heartbeat\": 10}", NULL),
			1);
	CU_ASSERT_EQUAL(ctl_says(&sa, "locked by policy 'base'", "policy", "update", "branch-beat",
				 "--settings", "{\"heartbeat\": 15}", NULL, NULL),
			1);
	/* An unlocked setting may be overridden at the subgroup. */
	CU_ASSERT_EQUAL(ctl_says(&sa, NULL, "policy", "create", "lab-blocks", "--group",
				 "/branch/lab", "--settings",
				 "{\"block_sha256\": [\"" SHA_LAB "\"]}", NULL),
			0);
}

/* `policy show --effective UID --json` as an array of row objects, or NULL. */
static json_t *effective(const char *uid)
{
	char *out = NULL;
	if (hp_ctl(&sa, &out, "--json", "policy", "show", "--effective", uid, NULL) != 0) {
		fprintf(stderr, "policy show: %s\n", out ? out : "");
		free(out);
		return NULL;
	}
	json_t *j = json_loads(out ? out : "", 0, NULL);
	free(out);
	return j;
}

static json_t *setting_row(json_t *rows, const char *name)
{
	size_t i;
	json_t *r;
	json_array_foreach (rows, i, r) {
		const char *s = json_string_value(json_object_get(r, "setting"));
		if (s && strcmp(s, name) == 0)
			return r;
	}
	return NULL;
}

static const char *field(json_t *row, const char *key)
{
	const char *s = json_string_value(json_object_get(row, key));
	return s ? s : "";
}

static long long row_version(json_t *rows)
{
	json_t *v = json_object_get(json_array_get(rows, 0), "version");
	return json_is_integer(v) ? (long long)json_integer_value(v) : -1;
}

static void test_show_effective(void)
{
	json_t *lab = effective(agents[1].uid), *desk = effective(agents[0].uid);
	CU_ASSERT_PTR_NOT_NULL_FATAL(lab);
	CU_ASSERT_PTR_NOT_NULL_FATAL(desk);
	CU_ASSERT_EQUAL(json_array_size(lab), 2);
	json_t *hb = setting_row(lab, "heartbeat"), *bl = setting_row(lab, "block_sha256");
	CU_ASSERT_STRING_EQUAL(field(hb, "value"), "30");
	CU_ASSERT_STRING_EQUAL(field(hb, "policy"), "base");
	CU_ASSERT_STRING_EQUAL(field(hb, "owner"), "master:hq");
	CU_ASSERT_STRING_EQUAL(field(hb, "group"), "/branch");
	CU_ASSERT_STRING_EQUAL(field(hb, "locked"), "yes");
	CU_ASSERT_STRING_EQUAL(field(bl, "value"), "[\"" SHA_LAB "\"]");
	CU_ASSERT_STRING_EQUAL(field(bl, "policy"), "lab-blocks");
	CU_ASSERT_STRING_EQUAL(field(bl, "owner"), "local");
	CU_ASSERT_STRING_EQUAL(field(bl, "group"), "/branch/lab");
	CU_ASSERT_STRING_EQUAL(field(bl, "locked"), "no");
	/* The subgroup's override stays there: /branch keeps the master's list. */
	bl = setting_row(desk, "block_sha256");
	CU_ASSERT_STRING_EQUAL(field(bl, "value"), "[]");
	CU_ASSERT_STRING_EQUAL(field(bl, "policy"), "base");
	CU_ASSERT_STRING_EQUAL(field(setting_row(desk, "heartbeat"), "policy"), "base");
	CU_ASSERT(row_version(lab) > 0);
	CU_ASSERT(row_version(desk) > 0);
	CU_ASSERT_NOT_EQUAL(row_version(lab), row_version(desk));
	json_decref(lab);
	json_decref(desk);
}

struct applied {
	struct agent *a;
	long long version;
};

/* The agent stored the effective version and the slave recorded it. */
static bool policy_applied(void *arg)
{
	struct applied *w = arg;
	char path[700];
	snprintf(path, sizeof(path), "%s/policy.json", w->a->dir);
	json_t *p = json_load_file(path, 0, NULL);
	long long stored = json_integer_value(json_object_get(p, "version"));
	json_decref(p);
	const char *q[] = { w->a->uid };
	return stored == w->version &&
	       hf_ll(&sa, "SELECT policy_version FROM endpoints WHERE uid = $1", 1, q) ==
		   w->version;
}

static void test_agents_apply_their_policy(void)
{
	for (size_t i = 0; i < NAGENTS; i++) {
		json_t *eff = effective(agents[i].uid);
		CU_ASSERT_PTR_NOT_NULL_FATAL(eff);
		struct applied w = { &agents[i], row_version(eff) };
		json_decref(eff);
		CU_ASSERT_EQUAL(ctl_says(&sa, NULL, "endpoint", "command", agents[i].uid,
					 "apply_policy", NULL, NULL, NULL),
				0);
		CU_ASSERT_TRUE(hp_wait(policy_applied, &w, 30));
		/* The locked interval holds for both, over the local 20 s. */
		const char *q[] = { agents[i].uid };
		CU_ASSERT_EQUAL(hf_ll(&sa, "SELECT heartbeat FROM endpoints WHERE uid = $1", 1, q),
				30);
	}
	/* The lab agent's policy carries its own block list. */
	char path[700];
	snprintf(path, sizeof(path), "%s/policy.json", agents[1].dir);
	json_t *p = json_load_file(path, 0, NULL);
	json_t *bl = json_object_get(json_object_get(p, "settings"), "block_sha256");
	CU_ASSERT_STRING_EQUAL(json_string_value(json_array_get(bl, 0)), SHA_LAB);
	json_decref(p);

	/* A_AUTH_OK announces the same version to another endpoint of the lab,
	 * so an agent refetches only when its effective policy changed; A_POLICY
	 * carries it too, with the effective settings. */
	json_t *eff = effective(agents[1].uid);
	CU_ASSERT_PTR_NOT_NULL_FATAL(eff);
	long long lab_version = row_version(eff);
	json_decref(eff);
	struct hagent h = { 0 };
	char *tok = ha_make_token(&sa, "/branch/lab");
	CU_ASSERT_PTR_NOT_NULL_FATAL(tok);
	CU_ASSERT_TRUE_FATAL(ha_new(&h));
	CU_ASSERT_TRUE_FATAL(ha_enrol(&sa, &h, tok));
	SSL *ssl = ha_connect_pinned(&sa, tok);
	CU_ASSERT_PTR_NOT_NULL_FATAL(ssl);
	CU_ASSERT_EQUAL_FATAL(ha_send_json(ssl, A_AUTH, ha_auth_msg(ssl, &h)), 0);
	uint16_t type = 0;
	json_t *o = ha_recv_json(ssl, &type);
	CU_ASSERT_EQUAL(type, A_AUTH_OK);
	CU_ASSERT_EQUAL(json_integer_value(json_object_get(o, "policy_version")), lab_version);
	CU_ASSERT_EQUAL(json_integer_value(json_object_get(o, "heartbeat")), 30);
	json_decref(o);
	CU_ASSERT_EQUAL(ha_send_json(ssl, A_POLICY_GET, json_object()), 0);
	do {
		o = ha_recv_json(ssl, &type);
		if (type != A_POLICY)
			json_decref(o);
	} while (type != 0 && type != A_POLICY);
	CU_ASSERT_EQUAL_FATAL(type, A_POLICY);
	CU_ASSERT_EQUAL(json_integer_value(json_object_get(o, "version")), lab_version);
	json_t *st = json_object_get(o, "settings");
	CU_ASSERT_EQUAL(json_integer_value(json_object_get(st, "heartbeat")), 30);
	CU_ASSERT_STRING_EQUAL(
	    json_string_value(json_array_get(json_object_get(st, "block_sha256"), 0)), SHA_LAB);
	json_decref(o);
	ht_close(ssl);
	EVP_PKEY_free(h.key);
	free(tok);
}

int main(void)
{
	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	CU_pSuite s = CU_add_suite("policy_inheritance", suite_init, suite_clean);
	CU_add_test(s, "agents in two groups online", test_agents_online);
	CU_add_test(s, "bad settings refused with the setting's name", test_bad_settings_refused);
	CU_add_test(s, "a master lock holds against local policies", test_lock_holds_against_local);
	CU_add_test(s, "policy show --effective", test_show_effective);
	CU_add_test(s, "each agent applies its endpoint's effective policy",
		    test_agents_apply_their_policy);
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	unsigned fails = CU_get_number_of_failures();
	CU_cleanup_registry();
	return fails ? 1 : 0;
}
