#include <CUnit/Basic.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tasks.h"
#include "tls.h"

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	CU_ASSERT_PTR_NOT_NULL_FATAL(f);
	fputs(text, f);
	fclose(f);
}

static void test_scan(void)
{
	char dir[64], p[160], bad_sha[TLS_PIN_HEX_LEN + 1], err[256];
	snprintf(dir, sizeof(dir), "/tmp/strata-at-XXXXXX");
	CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(dir));
	snprintf(p, sizeof(p), "%s/sub", dir);
	CU_ASSERT_EQUAL(mkdir(p, 0700), 0);
	snprintf(p, sizeof(p), "%s/sub/deeper", dir);
	CU_ASSERT_EQUAL(mkdir(p, 0700), 0);
	snprintf(p, sizeof(p), "%s/a.txt", dir);
	write_file(p, "harmless");
	snprintf(p, sizeof(p), "%s/sub/deeper/evil.bin", dir);
	write_file(p, "malware-sample");
	/* A symlink to the bad file must not be followed (and counted twice). */
	char link[160];
	snprintf(link, sizeof(link), "%s/sub/link", dir);
	CU_ASSERT_EQUAL(symlink(p, link), 0);
	tls_sha256_hex("malware-sample", strlen("malware-sample"), bad_sha);

	json_t *block = json_pack(
	    "[s, s]", bad_sha, "0000000000000000000000000000000000000000000000000000000000000000");
	json_t *det = NULL;
	json_t *r = tasks_scan(dir, block, &det, err, sizeof(err));
	CU_ASSERT_PTR_NOT_NULL_FATAL(r);
	CU_ASSERT_EQUAL(json_integer_value(json_object_get(r, "files")), 2);
	CU_ASSERT_EQUAL(json_integer_value(json_object_get(r, "bytes")),
			(json_int_t)(strlen("harmless") + strlen("malware-sample")));
	CU_ASSERT_EQUAL(json_integer_value(json_object_get(r, "detections")), 1);
	CU_ASSERT_EQUAL_FATAL(json_array_size(det), 1);
	json_t *d = json_array_get(det, 0);
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(d, "path")), p);
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(d, "sha256")), bad_sha);
	json_decref(r);
	json_decref(det);

	/* No block list: nothing detected. */
	r = tasks_scan(dir, NULL, &det, err, sizeof(err));
	CU_ASSERT_PTR_NOT_NULL(r);
	CU_ASSERT_EQUAL(json_array_size(det), 0);
	json_decref(r);
	json_decref(det);

	/* A missing root fails the task with the reason. */
	snprintf(p, sizeof(p), "%s/none", dir);
	r = tasks_scan(p, block, &det, err, sizeof(err));
	CU_ASSERT_PTR_NULL(r);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "none"));
	json_decref(det);
	json_decref(block);

	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	CU_ASSERT_EQUAL(system(cmd), 0);
}

static void test_inventory(void)
{
	char err[256];
	json_t *r = tasks_inventory(NULL, err, sizeof(err));
	CU_ASSERT_PTR_NOT_NULL_FATAL(r);
	const char *h = json_string_value(json_object_get(r, "hostname"));
	CU_ASSERT_PTR_NOT_NULL(h);
	CU_ASSERT(h && strlen(h) > 0);
	CU_ASSERT_TRUE(json_is_array(json_object_get(r, "addresses")));
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(r, "agent_version")),
			       STRATA_VERSION);
	CU_ASSERT_PTR_NOT_NULL(json_string_value(json_object_get(r, "os")));
	size_t i;
	json_t *a;
	json_array_foreach (json_object_get(r, "addresses"), i, a) {
		CU_ASSERT_STRING_NOT_EQUAL(json_string_value(a), "127.0.0.1");
		CU_ASSERT_STRING_NOT_EQUAL(json_string_value(a), "::1");
	}
	json_decref(r);
	r = tasks_inventory("pc-42", err, sizeof(err));
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(r, "hostname")), "pc-42");
	json_decref(r);
}

int main(void)
{
	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	CU_pSuite s = CU_add_suite("agent tasks", NULL, NULL);
	CU_add_test(s, "scan finds exactly the blocked file", test_scan);
	CU_add_test(s, "inventory", test_inventory);
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	unsigned fails = CU_get_number_of_failures();
	CU_cleanup_registry();
	return fails ? 1 : 0;
}
