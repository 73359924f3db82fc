#include <CUnit/Basic.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "state.h"
#include "tls.h"

static void rm_rf(const char *dir)
{
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	CU_ASSERT_EQUAL(system(cmd), 0);
}

static char *make_ca_pem(void)
{
	char err[256];
	EVP_PKEY *k = tls_key_generate(err, sizeof(err));
	X509 *ca = k ? tls_ca_create(k, "test ca", err, sizeof(err)) : NULL;
	char *pem = ca ? tls_cert_to_pem(ca) : NULL;
	X509_free(ca);
	EVP_PKEY_free(k);
	return pem;
}

static void test_identity_roundtrip(void)
{
	char base[64], dir[96], err[512], path[160];
	snprintf(base, sizeof(base), "/tmp/strata-as-XXXXXX");
	CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(base));
	snprintf(dir, sizeof(dir), "%s/state", base);
	CU_ASSERT_FALSE(astate_enrolled(dir));
	EVP_PKEY *key = tls_key_generate(err, sizeof(err));
	char *pem = make_ca_pem();
	CU_ASSERT_PTR_NOT_NULL_FATAL(key);
	CU_ASSERT_PTR_NOT_NULL_FATAL(pem);
	struct astate_identity id = { .agent_id = "a-17",
				      .host = "slave.example",
				      .port = 7074,
				      .mode = "poll",
				      .hostname = "pc-1" };
	CU_ASSERT_EQUAL_FATAL(astate_save_identity(dir, &id, key, pem, err, sizeof(err)), 0);
	CU_ASSERT_TRUE(astate_enrolled(dir));
	struct stat st;
	CU_ASSERT_EQUAL(stat(dir, &st), 0);
	CU_ASSERT_EQUAL(st.st_mode & 0777, 0700);

	struct astate_identity got;
	EVP_PKEY *k2;
	X509 *ca;
	CU_ASSERT_EQUAL_FATAL(astate_load_identity(dir, &got, &k2, &ca, err, sizeof(err)), 0);
	CU_ASSERT_STRING_EQUAL(got.agent_id, "a-17");
	CU_ASSERT_STRING_EQUAL(got.host, "slave.example");
	CU_ASSERT_EQUAL(got.port, 7074);
	CU_ASSERT_STRING_EQUAL(got.mode, "poll");
	CU_ASSERT_STRING_EQUAL(got.hostname, "pc-1");
	CU_ASSERT_EQUAL(EVP_PKEY_eq(key, k2), 1);
	EVP_PKEY_free(k2);
	X509_free(ca);

	/* A key others can read is refused, with the reason. */
	snprintf(path, sizeof(path), "%s/agent.key", dir);
	CU_ASSERT_EQUAL(chmod(path, 0644), 0);
	CU_ASSERT_EQUAL(astate_load_identity(dir, &got, &k2, &ca, err, sizeof(err)), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "chmod 600"));
	CU_ASSERT_PTR_NULL(k2);
	CU_ASSERT_PTR_NULL(ca);

	EVP_PKEY_free(key);
	free(pem);
	rm_rf(base);
}

static void test_policy_and_seq(void)
{
	char dir[64], err[256];
	int64_t seq = 0;
	snprintf(dir, sizeof(dir), "/tmp/strata-as-XXXXXX");
	CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(dir));
	CU_ASSERT_EQUAL(astate_policy_version(dir), -1);
	json_t *settings = json_pack("{s:[s]}", "block_sha256", "00ff");
	CU_ASSERT_EQUAL(astate_save_policy(dir, 42, settings, err, sizeof(err)), 0);
	json_decref(settings);
	CU_ASSERT_EQUAL(astate_policy_version(dir), 42);
	json_t *p = astate_load_policy(dir);
	CU_ASSERT_STRING_EQUAL(
	    json_string_value(
		json_array_get(json_object_get(json_object_get(p, "settings"), "block_sha256"), 0)),
	    "00ff");
	json_decref(p);
	for (int64_t want = 1; want <= 3; want++) {
		CU_ASSERT_EQUAL(astate_next_seq(dir, &seq, err, sizeof(err)), 0);
		CU_ASSERT_EQUAL(seq, want);
	}
	rm_rf(dir);
}

static void write_file(const char *dir, const char *name, const char *text)
{
	char p[128];
	snprintf(p, sizeof(p), "%s/%s", dir, name);
	FILE *f = fopen(p, "w");
	CU_ASSERT_PTR_NOT_NULL_FATAL(f);
	fputs(text, f);
	fclose(f);
}

static void test_push_server(void)
{
	char dir[64], err[256], host[256];
	int port = 0;
	snprintf(dir, sizeof(dir), "/tmp/strata-as-XXXXXX");
	CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(dir));
	CU_ASSERT_EQUAL(astate_load_push(dir, host, sizeof(host), &port, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(astate_save_push(dir, "dp1.example", 7075, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(astate_load_push(dir, host, sizeof(host), &port, err, sizeof(err)), 1);
	CU_ASSERT_STRING_EQUAL(host, "dp1.example");
	CU_ASSERT_EQUAL(port, 7075);
	/* A later redirect replaces it. */
	CU_ASSERT_EQUAL(astate_save_push(dir, "10.0.0.9", 7074, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(astate_load_push(dir, host, sizeof(host), &port, err, sizeof(err)), 1);
	CU_ASSERT_STRING_EQUAL(host, "10.0.0.9");
	CU_ASSERT_EQUAL(port, 7074);
	CU_ASSERT_EQUAL(astate_forget_push(dir, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(astate_load_push(dir, host, sizeof(host), &port, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(astate_forget_push(dir, err, sizeof(err)), 0);

	static const struct {
		const char *text, *reason;
	} bad[] = {
		{ "{\"host\": \"a b\", \"port\": 7074}", "host" },
		{ "{\"host\": \"dp1\", \"port\": 0}", "port" },
		{ "{\"host\": \"dp1\", \"port\": 70000}", "port" },
		{ "{\"host\": \"dp1\"}", "port" },
		{ "{\"host\": \"dp1\", \"port\": 7074, \"x\": 1}", "x" },
		{ "[1]", "object" },
		{ "{", "push.json" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		write_file(dir, "push.json", bad[i].text);
		err[0] = '\0';
		CU_ASSERT_EQUAL(astate_load_push(dir, host, sizeof(host), &port, err, sizeof(err)),
				-1);
		CU_ASSERT_PTR_NOT_NULL(strstr(err, bad[i].reason));
	}
	/* A host longer than the caller's buffer is refused, not cut. */
	write_file(dir, "push.json", "{\"host\": \"dp-long.example\", \"port\": 7074}");
	CU_ASSERT_EQUAL(astate_load_push(dir, host, 8, &port, err, sizeof(err)), -1);
	rm_rf(dir);
}

static void test_tasks_ran(void)
{
	char dir[64], err[256];
	snprintf(dir, sizeof(dir), "/tmp/strata-as-XXXXXX");
	CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(dir));
	CU_ASSERT_EQUAL(astate_task_ran(dir, 1), 0);
	CU_ASSERT_EQUAL(astate_task_record(dir, 7, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(astate_task_record(dir, 9, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(astate_task_ran(dir, 7), 1);
	CU_ASSERT_EQUAL(astate_task_ran(dir, 9), 1);
	CU_ASSERT_EQUAL(astate_task_ran(dir, 8), 0);
	/* Only the newest ASTATE_TASKS_KEPT are kept: the oldest make room. */
	for (int64_t id = 100; id < 100 + ASTATE_TASKS_KEPT; id++)
		CU_ASSERT_EQUAL_FATAL(astate_task_record(dir, id, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(astate_task_ran(dir, 7), 0);
	CU_ASSERT_EQUAL(astate_task_ran(dir, 9), 0);
	CU_ASSERT_EQUAL(astate_task_ran(dir, 100), 1);
	CU_ASSERT_EQUAL(astate_task_ran(dir, 99 + ASTATE_TASKS_KEPT), 1);
	/* A line that is not a command id is skipped, not taken for one. */
	write_file(dir, "tasks.done", "junk\n-3\n12\n");
	CU_ASSERT_EQUAL(astate_task_ran(dir, 12), 1);
	CU_ASSERT_EQUAL(astate_task_ran(dir, -3), 0);
	rm_rf(dir);
}

static void test_open_dir_refused(void)
{
	char dir[64], err[256];
	snprintf(dir, sizeof(dir), "/tmp/strata-as-XXXXXX");
	CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(dir));
	CU_ASSERT_EQUAL(chmod(dir, 0755), 0);
	CU_ASSERT_EQUAL(astate_prepare_dir(dir, err, sizeof(err)), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "chmod 700"));
	rm_rf(dir);
}

int main(void)
{
	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	CU_pSuite s = CU_add_suite("agent state", NULL, NULL);
	CU_add_test(s, "identity saved and loaded; open key refused", test_identity_roundtrip);
	CU_add_test(s, "policy and seq counter persist", test_policy_and_seq);
	CU_add_test(s, "assigned push server stored, replaced, forgotten; bad files refused",
		    test_push_server);
	CU_add_test(s, "a state dir others can read is refused", test_open_dir_refused);
	CU_add_test(s, "run_task commands that ran are remembered, the newest kept",
		    test_tasks_ran);
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	unsigned fails = CU_get_number_of_failures();
	CU_cleanup_registry();
	return fails ? 1 : 0;
}
