/*
 * The policy settings schema, lock checks and the effective policy of a
 * group path (inheritance, override, locks, later wins), table-driven.
 */
#include <CUnit/Basic.h>
#include <string.h>

#include "policy.h"

#define SHA_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"

static void test_settings_check(void)
{
	static const struct {
		const char *settings;
		const char *error; /* NULL: accepted; else a part of the message */
	} cases[] = {
		{ "{}", NULL },
		{ "{\"heartbeat\": 5}", NULL },
		{ "{\"heartbeat\": 86400}", NULL },
		{ "{\"heartbeat\": 60, \"block_sha256\": [\"" SHA_A "\"]}", NULL },
		{ "{\"block_sha256\": []}", NULL },
		{ "{\"heartbeat\": 4}",
		  "setting 'heartbeat': must be a whole number of seconds from 5 to 86400" },
		{ "{\"heartbeat\": 86401}", "setting 'heartbeat'" },
		{ "{\"heartbeat\": 30.0}", "setting 'heartbeat'" },
		{ "{\"heartbeat\": \"60\"}", "setting 'heartbeat'" },
		{ "{\"heartbeat\": null}", "setting 'heartbeat'" },
		{ "{\"hartbeat\": 60}", "unknown setting 'hartbeat'" },
		{ "{\"block_sha256\": \"" SHA_A "\"}", "setting 'block_sha256': must be an array" },
		{ "{\"block_sha256\": "
		  "[\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"]}",
		  "setting 'block_sha256': item 1" },
		{ "{\"block_sha256\": [\"" SHA_A "\", \"abc\"]}",
		  "setting 'block_sha256': item 2" },
		{ "{\"block_sha256\": [1]}", "setting 'block_sha256': item 1" },
		{ "[]", "settings must be a JSON object" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char err[256] = "";
		json_t *s = json_loads(cases[i].settings, JSON_DECODE_ANY, NULL);
		CU_ASSERT_PTR_NOT_NULL_FATAL(s);
		int rc = policy_settings_check(s, err, sizeof(err));
		if (cases[i].error) {
			CU_ASSERT_EQUAL(rc, -1);
			if (!strstr(err, cases[i].error))
				fprintf(stderr, "case %zu: '%s' lacks '%s'\n", i, err,
					cases[i].error);
			CU_ASSERT_PTR_NOT_NULL(strstr(err, cases[i].error));
		} else {
			if (rc != 0)
				fprintf(stderr, "case %zu: %s\n", i, err);
			CU_ASSERT_EQUAL(rc, 0);
		}
		json_decref(s);
	}
}

static void test_locks_check(void)
{
	static const struct {
		const char *settings, *locked, *error;
	} cases[] = {
		{ "{\"heartbeat\": 60}", "[\"heartbeat\"]", NULL },
		{ "{\"heartbeat\": 60}", "[]", NULL },
		{ "{\"heartbeat\": 60}", "[\"block_sha256\"]",
		  "cannot lock setting 'block_sha256': the policy does not set it" },
		{ "{\"heartbeat\": 60}", "[\"hartbeat\"]",
		  "cannot lock unknown setting 'hartbeat'" },
		{ "{\"heartbeat\": 60}", "[\"heartbeat\", \"heartbeat\"]", "locked twice" },
		{ "{\"heartbeat\": 60}", "[1]", "list of setting names" },
		{ "{\"heartbeat\": 60}", "\"heartbeat\"", "list of setting names" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char err[256] = "";
		json_t *s = json_loads(cases[i].settings, 0, NULL);
		json_t *l = json_loads(cases[i].locked, JSON_DECODE_ANY, NULL);
		int rc = policy_locks_check(s, l, err, sizeof(err));
		CU_ASSERT_EQUAL(rc, cases[i].error ? -1 : 0);
		if (cases[i].error)
			CU_ASSERT_PTR_NOT_NULL(strstr(err, cases[i].error));
		json_decref(s);
		json_decref(l);
	}
	CU_ASSERT_TRUE(policy_group_covers(NULL, "/a"));
	CU_ASSERT_TRUE(policy_group_covers("/", NULL));
	CU_ASSERT_TRUE(policy_group_covers("/a", "/a/b"));
	CU_ASSERT_TRUE(policy_group_covers("/a", "/a"));
	CU_ASSERT_FALSE(policy_group_covers("/a", "/ab"));
	CU_ASSERT_FALSE(policy_group_covers("/a/b", "/a"));
	CU_ASSERT_FALSE(policy_group_covers("/a", NULL));
}

/* A policy row of the merge tables. */
struct prow {
	int64_t id;
	const char *name, *owner, *group, *settings, *locked;
};

static size_t load(const struct prow *rows, struct policy_src *out)
{
	size_t n = 0;
	for (; rows[n].name; n++) {
		out[n] = (struct policy_src){
			.id = rows[n].id,
			.name = rows[n].name,
			.owner = rows[n].owner,
			.group = rows[n].group,
			.settings = json_loads(rows[n].settings, 0, NULL),
			.locked = rows[n].locked ? json_loads(rows[n].locked, 0, NULL) : NULL,
			.version = rows[n].id * 10,
		};
	}
	return n;
}

static void unload(struct policy_src *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		json_decref(p[i].settings);
		json_decref(p[i].locked);
	}
}

static const struct prow fleet[] = {
	{ 1, "base", "master:m", NULL, "{\"heartbeat\": 300, \"block_sha256\": []}",
	  "[\"block_sha256\"]" },
	{ 2, "site-a", "master:m", "/a", "{\"heartbeat\": 120}", "[\"heartbeat\"]" },
	{ 3, "local-root", "local", "/", "{\"heartbeat\": 60, \"block_sha256\": [\"" SHA_A "\"]}",
	  NULL },
	{ 4, "local-a", "local", "/a", "{\"heartbeat\": 30}", NULL },
	{ 5, "local-b", "local", "/b", "{\"heartbeat\": 20}", NULL },
	{ 6, "local-b2", "local", "/b", "{\"heartbeat\": 25}", NULL },
	{ 7, "master-ab", "master:m", "/a/b", "{\"heartbeat\": 10}", NULL },
	{ 8, "master-b", "master:m", "/b", "{\"heartbeat\": 15}", NULL },
	{ 0 },
};

static void test_effective(void)
{
	static const struct {
		const char *path;
		const char *setting;
		const char *value;  /* JSON */
		const char *policy; /* source */
		const char *group;
		bool locked;
	} cases[] = {
		/* The root: master first, the local one over it except where locked. */
		{ NULL, "heartbeat", "60", "local-root", "/", false },
		{ NULL, "block_sha256", "[]", "base", "/", true },
		/* Inheritance: a group without policies of its own gets the root's. */
		{ "/c", "heartbeat", "60", "local-root", "/", false },
		/* A deeper master lock overrides the root's local and holds below. */
		{ "/a", "heartbeat", "120", "site-a", "/a", true },
		{ "/a/b", "heartbeat", "120", "site-a", "/a", true },
		{ "/a/b/c", "block_sha256", "[]", "base", "/", true },
		/* Deeper overrides shallower; a later id wins within a kind;
		 * local over master at the same level. */
		{ "/b", "heartbeat", "25", "local-b2", "/b", false },
		{ "/b/x", "heartbeat", "25", "local-b2", "/b", false },
		/* A path that only shares a prefix is not a subgroup. */
		{ "/ab", "heartbeat", "60", "local-root", "/", false },
	};
	struct policy_src p[16];
	size_t n = load(fleet, p);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		json_t *eff = policy_effective(p, n, cases[i].path, NULL);
		json_t *s = json_object_get(eff, cases[i].setting);
		json_t *want = json_loads(cases[i].value, JSON_DECODE_ANY, NULL);
		CU_ASSERT_PTR_NOT_NULL_FATAL(s);
		if (!json_equal(json_object_get(s, "value"), want) ||
		    strcmp(json_string_value(json_object_get(s, "policy")), cases[i].policy) != 0) {
			char *d = json_dumps(eff, JSON_COMPACT);
			fprintf(stderr, "case %zu: %s\n", i, d);
			free(d);
		}
		CU_ASSERT_TRUE(json_equal(json_object_get(s, "value"), want));
		CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(s, "policy")),
				       cases[i].policy);
		CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(s, "group")),
				       cases[i].group);
		CU_ASSERT_EQUAL(json_is_true(json_object_get(s, "locked")), cases[i].locked);
		json_decref(want);
		json_decref(eff);
	}
	unload(p, n);
}

static void test_blocked_and_version(void)
{
	struct policy_src p[16];
	size_t n = load(fleet, p);
	json_t *blocked;
	/* At /a/b: local-a and master-ab change a locked heartbeat, local-root a
	 * locked block list; all three are held off. */
	json_t *eff = policy_effective(p, n, "/a/b", &blocked);
	CU_ASSERT_EQUAL(json_array_size(blocked), 3);
	const char *who[3] = { NULL };
	for (size_t i = 0; i < json_array_size(blocked) && i < 3; i++)
		who[i] = json_string_value(json_object_get(json_array_get(blocked, i), "policy"));
	CU_ASSERT_STRING_EQUAL(who[0], "local-root");
	CU_ASSERT_STRING_EQUAL(who[1], "local-a");
	CU_ASSERT_STRING_EQUAL(who[2], "master-ab");
	CU_ASSERT_STRING_EQUAL(
	    json_string_value(json_object_get(json_array_get(blocked, 1), "locked_by")), "site-a");
	json_t *plain = policy_effective_settings(eff);
	CU_ASSERT_EQUAL(json_integer_value(json_object_get(plain, "heartbeat")), 120);
	json_decref(plain);

	/* The version follows the content: same content, same version; an
	 * effective change, a new one; no policy, 0. */
	json_t *again = policy_effective(p, n, "/a/b/c", NULL);
	int64_t v1 = policy_effective_version(eff);
	CU_ASSERT_TRUE(v1 > 0 && v1 < (INT64_C(1) << 53));
	CU_ASSERT_EQUAL(policy_effective_version(again), v1);
	json_t *other = policy_effective(p, n, "/b", NULL);
	CU_ASSERT_NOT_EQUAL(policy_effective_version(other), v1);
	json_t *none = policy_effective(p, 0, "/b", NULL);
	CU_ASSERT_EQUAL(policy_effective_version(none), 0);
	json_decref(again);
	json_decref(other);
	json_decref(none);
	json_decref(blocked);
	json_decref(eff);
	unload(p, n);
}

static void test_local_check(void)
{
	static const struct {
		const char *group, *settings, *error;
	} cases[] = {
		{ "/", "{\"heartbeat\": 60}", NULL },
		{ "/", "{\"block_sha256\": []}",
		  "setting 'block_sha256' is locked by policy 'base' (master:m)" },
		{ "/a", "{\"heartbeat\": 60}",
		  "setting 'heartbeat' is locked by policy 'site-a' (master:m) at group /a" },
		{ "/a/b", "{\"heartbeat\": 60}", "policy 'site-a'" },
		{ "/b", "{\"heartbeat\": 60}", NULL },
		{ "/ab", "{\"heartbeat\": 60}", NULL },
	};
	struct policy_src p[16];
	size_t n = load(fleet, p);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char err[256] = "";
		json_t *s = json_loads(cases[i].settings, 0, NULL);
		int rc = policy_local_check(p, n, cases[i].group, s, err, sizeof(err));
		CU_ASSERT_EQUAL(rc, cases[i].error ? -1 : 0);
		if (cases[i].error) {
			if (!strstr(err, cases[i].error))
				fprintf(stderr, "case %zu: %s\n", i, err);
			CU_ASSERT_PTR_NOT_NULL(strstr(err, cases[i].error));
		}
		json_decref(s);
	}
	unload(p, n);
}

int main(void)
{
	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	CU_pSuite s = CU_add_suite("policy", NULL, NULL);
	CU_add_test(s, "settings schema", test_settings_check);
	CU_add_test(s, "locks and group coverage", test_locks_check);
	CU_add_test(s, "effective policy: inheritance, override, locks", test_effective);
	CU_add_test(s, "held-off changes and the effective version", test_blocked_and_version);
	CU_add_test(s, "a local policy against master locks", test_local_check);
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	unsigned fails = CU_get_number_of_failures();
	CU_cleanup_registry();
	return fails ? 1 : 0;
}
