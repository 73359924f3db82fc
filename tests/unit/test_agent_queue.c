#include <CUnit/Basic.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agentproto.h"
#include "queue.h"

static char dir[64];

static void make_dir(void)
{
	snprintf(dir, sizeof(dir), "/tmp/strata-aq-XXXXXX");
	CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(dir));
}

static void remove_dir(void)
{
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	CU_ASSERT_EQUAL(system(cmd), 0);
}

static void push(struct aqueue *q, uint16_t type, int64_t seq)
{
	char err[256];
	json_t *m = json_pack("{s:I, s:s}", "seq", (json_int_t)seq, "kind", "test");
	CU_ASSERT_EQUAL(aqueue_push(q, type, m, err, sizeof(err)), 0);
	json_decref(m);
}

static int64_t seq_at(struct aqueue *q, size_t i, uint16_t *type)
{
	json_t *m = aqueue_get(q, i, type);
	return m ? (int64_t)json_integer_value(json_object_get(m, "seq")) : -1;
}

static void test_push_ack_reload(void)
{
	char err[256];
	uint16_t type;
	make_dir();
	struct aqueue *q = aqueue_open(dir, err, sizeof(err));
	CU_ASSERT_PTR_NOT_NULL_FATAL(q);
	push(q, A_EVENT, 1);
	push(q, A_RESULT, 2);
	push(q, A_EVENT, 3);
	CU_ASSERT_EQUAL(aqueue_count(q), 3);
	/* An ack of the wrong type removes nothing. */
	CU_ASSERT_EQUAL(aqueue_ack(q, A_RESULT, 1, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(aqueue_ack(q, A_RESULT, 2, err, sizeof(err)), 1);
	CU_ASSERT_EQUAL(aqueue_count(q), 2);
	/* A crash: the process is gone, the files stay. */
	aqueue_free(q);
	q = aqueue_open(dir, err, sizeof(err));
	CU_ASSERT_PTR_NOT_NULL_FATAL(q);
	CU_ASSERT_EQUAL(aqueue_count(q), 2);
	CU_ASSERT_EQUAL(seq_at(q, 0, &type), 1);
	CU_ASSERT_EQUAL(type, A_EVENT);
	CU_ASSERT_EQUAL(seq_at(q, 1, &type), 3);
	CU_ASSERT_EQUAL(type, A_EVENT);
	/* Pushing below the last seq would break the resend order. */
	json_t *m = json_pack("{s:I}", "seq", (json_int_t)2);
	CU_ASSERT_EQUAL(aqueue_push(q, A_EVENT, m, err, sizeof(err)), -1);
	json_decref(m);
	CU_ASSERT_EQUAL(aqueue_ack(q, A_EVENT, 1, err, sizeof(err)), 1);
	CU_ASSERT_EQUAL(aqueue_ack(q, A_EVENT, 3, err, sizeof(err)), 1);
	aqueue_free(q);
	q = aqueue_open(dir, err, sizeof(err));
	CU_ASSERT_PTR_NOT_NULL_FATAL(q);
	CU_ASSERT_EQUAL(aqueue_count(q), 0);
	aqueue_free(q);
	remove_dir();
}

static void test_torn_last_line(void)
{
	char err[256], path[128];
	make_dir();
	struct aqueue *q = aqueue_open(dir, err, sizeof(err));
	CU_ASSERT_PTR_NOT_NULL_FATAL(q);
	push(q, A_EVENT, 1);
	push(q, A_RESULT, 2);
	aqueue_free(q);
	/* A crash in the middle of the third append. */
	snprintf(path, sizeof(path), "%s/queue.jsonl", dir);
	FILE *f = fopen(path, "a");
	CU_ASSERT_PTR_NOT_NULL_FATAL(f);
	fputs("{\"type\":112,\"msg\":{\"seq\":3,\"ki", f);
	fclose(f);
	q = aqueue_open(dir, err, sizeof(err));
	CU_ASSERT_PTR_NOT_NULL_FATAL(q);
	CU_ASSERT_EQUAL(aqueue_count(q), 2);
	CU_ASSERT_EQUAL(seq_at(q, 1, NULL), 2);
	/* The fragment is gone from the file, so the next append is read back whole. */
	push(q, A_EVENT, 3);
	aqueue_free(q);
	q = aqueue_open(dir, err, sizeof(err));
	CU_ASSERT_PTR_NOT_NULL_FATAL(q);
	CU_ASSERT_EQUAL(aqueue_count(q), 3);
	CU_ASSERT_EQUAL(seq_at(q, 2, NULL), 3);
	aqueue_free(q);
	remove_dir();
}

int main(void)
{
	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	CU_pSuite s = CU_add_suite("agent queue", NULL, NULL);
	CU_add_test(s, "push, ack and reload keep order", test_push_ack_reload);
	CU_add_test(s, "a torn last line is dropped", test_torn_last_line);
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	unsigned fails = CU_get_number_of_failures();
	CU_cleanup_registry();
	return fails ? 1 : 0;
}
