#include <CUnit/Basic.h>
#include <string.h>

#include "proto.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

static json_t *parse(const char *text, char *err, size_t errlen)
{
	return proto_parse_json((const uint8_t *)text, strlen(text), err, errlen);
}

static void test_parse_json(void)
{
	static const struct {
		const char *text;
		size_t len;	 /* 0: strlen */
		const char *err; /* NULL: accepted */
	} cases[] = {
		{ "{}", 0, NULL },
		{ "{\"a\":1}", 0, NULL },
		{ " {\"a\":[1,2]}", 0, NULL },
		{ "", 0, "empty payload" },
		{ "{}\0", 3, "NUL byte at offset 2" },
		{ "{\"a\":\"\\u0000\"}", 0, "invalid JSON" },
		{ "{\"a\":\"\xff\"}", 0, "invalid JSON" },
		{ "{\"a\":\"\xc3\"}", 0, "invalid JSON" },
		{ "{\"a\":", 0, "invalid JSON" },
		{ "{} ", 0, "1 trailing bytes" },
		{ "{}\n", 0, "1 trailing bytes" },
		{ "{}{}", 0, "2 trailing bytes" },
		{ "{\"a\":1,\"a\":2}", 0, "duplicate" },
		{ "[1]", 0, "not a JSON object" },
		{ "1", 0, "invalid JSON" },
		{ "\"s\"", 0, "invalid JSON" },
		{ "null", 0, "invalid JSON" },
	};
	for (size_t i = 0; i < NELEM(cases); i++) {
		char err[256] = "";
		size_t len = cases[i].len ? cases[i].len : strlen(cases[i].text);
		json_t *o = proto_parse_json((const uint8_t *)cases[i].text, len, err, sizeof(err));
		if (!cases[i].err) {
			CU_ASSERT_PTR_NOT_NULL(o);
			CU_ASSERT_TRUE(json_is_object(o));
		} else {
			CU_ASSERT_PTR_NULL(o);
			if (!strstr(err, cases[i].err))
				fprintf(stderr, "case %zu: err '%s', want '%s'\n", i, err,
					cases[i].err);
			CU_ASSERT_PTR_NOT_NULL(strstr(err, cases[i].err));
		}
		json_decref(o);
	}
}

static void test_parse_bulk(void)
{
	static const struct {
		const char *text;
		const char *copy; /* NULL: rejected */
		const char *err;
	} cases[] = {
		{ "{\"a\":1}\n1\tx\n2\ty\n", "1\tx\n2\ty\n", NULL },
		{ "{}\n", "", NULL },
		{ "{}\n\n", "\n", NULL },
		{ "{}", NULL, "no newline" },
		{ "", NULL, "no newline" },
		{ "\n1\tx\n", NULL, "bulk header: empty payload" },
		{ "{} \n", NULL, "bulk header: 1 trailing bytes" },
		{ "[]\nx", NULL, "bulk header: payload is not a JSON object" },
		{ "{\"a\":\n1}\n", NULL, "bulk header: invalid JSON" },
	};
	for (size_t i = 0; i < NELEM(cases); i++) {
		char err[256] = "";
		const char *copy = NULL;
		size_t copy_len = 99;
		json_t *h = proto_parse_bulk((const uint8_t *)cases[i].text, strlen(cases[i].text),
					     &copy, &copy_len, err, sizeof(err));
		if (cases[i].copy) {
			CU_ASSERT_PTR_NOT_NULL(h);
			CU_ASSERT_EQUAL(copy_len, strlen(cases[i].copy));
			if (copy)
				CU_ASSERT_EQUAL(memcmp(copy, cases[i].copy, copy_len), 0);
		} else {
			CU_ASSERT_PTR_NULL(h);
			if (!strstr(err, cases[i].err))
				fprintf(stderr, "bulk case %zu: err '%s', want '%s'\n", i, err,
					cases[i].err);
			CU_ASSERT_PTR_NOT_NULL(strstr(err, cases[i].err));
		}
		json_decref(h);
	}
}

union any_msg {
	struct msg_enrol enrol;
	struct msg_enrol_ok enrol_ok;
	struct msg_hello hello;
	struct msg_upload_hdr upload;
	struct msg_error error;
};

typedef int (*decoder)(json_t *, union any_msg *, char *, size_t);

static int dec_enrol(json_t *o, union any_msg *m, char *e, size_t n)
{
	return proto_decode_enrol(o, &m->enrol, e, n);
}
static int dec_enrol_ok(json_t *o, union any_msg *m, char *e, size_t n)
{
	return proto_decode_enrol_ok(o, &m->enrol_ok, e, n);
}
static int dec_hello(json_t *o, union any_msg *m, char *e, size_t n)
{
	return proto_decode_hello(o, &m->hello, e, n);
}
static int dec_upload(json_t *o, union any_msg *m, char *e, size_t n)
{
	return proto_decode_upload_hdr(o, &m->upload, e, n);
}
static int dec_error(json_t *o, union any_msg *m, char *e, size_t n)
{
	return proto_decode_error(o, &m->error, e, n);
}

static int dec_empty(json_t *o, union any_msg *m, char *e, size_t n)
{
	return proto_decode_empty(o, MSG_PING, e, n);
}

static int dec_bye(json_t *o, union any_msg *m, char *e, size_t n)
{
	return proto_decode_bye(o, e, n);
}

struct decode_case {
	decoder dec;
	const char *json;
	const char *err; /* NULL: accepted */
};

static void run_decode_cases(const struct decode_case *cases, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		char err[256] = "";
		json_t *o = parse(cases[i].json, err, sizeof(err));
		CU_ASSERT_PTR_NOT_NULL_FATAL(o);
		union any_msg m;
		memset(&m, 0, sizeof(m));
		int rc = cases[i].dec(o, &m, err, sizeof(err));
		if (cases[i].err == NULL) {
			if (rc != 0)
				fprintf(stderr, "case %s: unexpected '%s'\n", cases[i].json, err);
			CU_ASSERT_EQUAL(rc, 0);
		} else {
			CU_ASSERT_EQUAL(rc, -1);
			if (!strstr(err, cases[i].err))
				fprintf(stderr, "case %s: err '%s', want '%s'\n", cases[i].json,
					err, cases[i].err);
			CU_ASSERT_PTR_NOT_NULL(strstr(err, cases[i].err));
		}
		json_decref(o);
	}
}

static void test_decode_table(void)
{
	static const struct decode_case cases[] = {
		/* ENROL */
		{ dec_enrol, "{\"token\":\"t\",\"name\":\"a.b_c-1\",\"csr\":\"PEM\"}", NULL },
		{ dec_enrol, "{\"name\":\"n\",\"csr\":\"c\"}", "missing member 'token'" },
		{ dec_enrol, "{\"token\":\"t\",\"name\":\"n\",\"csr\":\"c\",\"x\":1}",
		  "unknown member 'x'" },
		{ dec_enrol, "{\"token\":1,\"name\":\"n\",\"csr\":\"c\"}",
		  "member 'token' must be a string" },
		{ dec_enrol, "{\"token\":\"t\",\"name\":\"a b\",\"csr\":\"c\"}", "member 'name'" },
		{ dec_enrol, "{\"token\":\"t\",\"name\":\"\",\"csr\":\"c\"}", "member 'name'" },
		{ dec_enrol, "{\"token\":\"t\",\"name\":\"n/../x\",\"csr\":\"c\"}",
		  "member 'name'" },
		{ dec_enrol, "{\"token\":\"\",\"name\":\"n\",\"csr\":\"c\"}", "'token' is empty" },
		/* ENROL_OK */
		{ dec_enrol_ok, "{\"cert\":\"C\",\"ca\":\"A\"}", NULL },
		{ dec_enrol_ok, "{\"cert\":\"C\"}", "missing member 'ca'" },
		{ dec_enrol_ok, "{\"cert\":\"C\",\"ca\":\"A\",\"key\":\"K\"}",
		  "unknown member 'key'" },
		{ dec_enrol_ok, "{\"cert\":[],\"ca\":\"A\"}", "member 'cert' must be a string" },
		/* HELLO */
		{ dec_hello, "{\"proto\":1,\"slave\":\"s1\",\"schema\":7,\"publication\":0,\"interval\":1800}", NULL },
		{ dec_empty, "{}", NULL },
		{ dec_empty, "{\"x\":1}", "PING: unknown member 'x'" },
		{ dec_bye, "{\"sent\":{\"events\":3,\"endpoints\":0},\"received\":2}", NULL },
		{ dec_bye, "{\"sent\":{},\"received\":0}", NULL },
		{ dec_bye, "{\"sent\":{\"events\":-1},\"received\":0}", "row counts" },
		{ dec_bye, "{\"sent\":{\"Bad Name\":1},\"received\":0}", "row counts" },
		{ dec_bye, "{\"sent\":{\"events\":\"3\"},\"received\":0}", "row counts" },
		{ dec_bye, "{\"sent\":[],\"received\":0}", "member 'sent' must be an object" },
		{ dec_bye, "{\"sent\":{},\"received\":-4}", "'received' must not be negative" },
		{ dec_bye, "{\"sent\":{}}", "missing member 'received'" },
		{ dec_hello, "{\"proto\":1,\"schema\":7,\"publication\":0,\"interval\":1800}", "missing member 'slave'" },
		{ dec_hello, "{\"proto\":1,\"slave\":\"s1\",\"schema\":7,\"publication\":-1,\"interval\":1800}",
		  "member 'publication'" },
		{ dec_hello, "{\"proto\":1,\"slave\":\"s1\",\"schema\":7,\"publication\":0,\"interval\":5}",
		  "member 'interval'" },
		{ dec_hello, "{\"proto\":1,\"slave\":\"s1\",\"schema\":7,\"interval\":60}",
		  "missing member 'publication'" },
		{ dec_hello, "{\"proto\":1,\"slave\":\"s1\",\"schema\":7,\"publication\":0,\"interval\":1800,\"z\":null}",
		  "unknown member 'z'" },
		{ dec_hello, "{\"proto\":\"1\",\"slave\":\"s1\",\"schema\":7,\"publication\":0,\"interval\":1800}",
		  "member 'proto' must be an integer" },
		{ dec_hello, "{\"proto\":1.0,\"slave\":\"s1\",\"schema\":7,\"publication\":0,\"interval\":1800}",
		  "member 'proto' must be an integer" },
		{ dec_hello, "{\"proto\":0,\"slave\":\"s1\",\"schema\":7,\"publication\":0,\"interval\":1800}", "member 'proto'" },
		{ dec_hello, "{\"proto\":4294967297,\"slave\":\"s1\",\"schema\":7,\"publication\":0,\"interval\":1800}",
		  "member 'proto'" },
		{ dec_hello, "{\"proto\":1,\"slave\":\"s1\",\"schema\":-1,\"publication\":0,\"interval\":1800}", "member 'schema'" },
		/* UPLOAD_BATCH header */
		{ dec_upload, "{\"stream\":\"task_results\",\"from\":0,\"to\":9,\"rows\":3}",
		  NULL },
		{ dec_upload, "{\"stream\":\"events\",\"from\":5,\"to\":5,\"rows\":0}", NULL },
		{ dec_upload, "{\"stream\":\"events\",\"from\":1,\"to\":9}",
		  "missing member 'rows'" },
		{ dec_upload,
		  "{\"stream\":\"events\",\"from\":1,\"to\":9,\"rows\":1,\"slave_id\":4}",
		  "unknown member 'slave_id'" },
		{ dec_upload, "{\"stream\":\"events\",\"from\":true,\"to\":9,\"rows\":1}",
		  "member 'from' must be an integer" },
		{ dec_upload, "{\"stream\":\"Events\",\"from\":1,\"to\":9,\"rows\":1}",
		  "member 'stream'" },
		{ dec_upload, "{\"stream\":\"\",\"from\":1,\"to\":9,\"rows\":1}",
		  "member 'stream'" },
		{ dec_upload,
		  "{\"stream\":\"abcdefghijklmnopqrstuvwxyzabcdefg\",\"from\":1,\"to\":9,\"rows\":"
		  "1}",
		  "member 'stream'" },
		{ dec_upload, "{\"stream\":\"events\",\"from\":-1,\"to\":9,\"rows\":1}",
		  "member 'from' is negative" },
		{ dec_upload, "{\"stream\":\"events\",\"from\":10,\"to\":9,\"rows\":1}",
		  "'from' (10) is above 'to' (9)" },
		{ dec_upload, "{\"stream\":\"events\",\"from\":1,\"to\":9,\"rows\":-2}",
		  "member 'rows' is negative" },
		/* ERROR */
		{ dec_error, "{\"code\":\"busy\",\"message\":\"too many sessions\"}", NULL },
		{ dec_error, "{\"code\":\"busy\",\"message\":\"\"}", NULL },
		{ dec_error, "{\"message\":\"m\"}", "missing member 'code'" },
		{ dec_error, "{\"code\":\"c\",\"message\":\"m\",\"retry\":5}",
		  "unknown member 'retry'" },
		{ dec_error, "{\"code\":\"c\",\"message\":false}",
		  "member 'message' must be a string" },
	};
	run_decode_cases(cases, NELEM(cases));
}

static void test_decode_values(void)
{
	char err[256];
	json_t *o = parse("{\"stream\":\"events\",\"from\":4294967296,\"to\":9007199254740993,"
			  "\"rows\":12}",
			  err, sizeof(err));
	CU_ASSERT_PTR_NOT_NULL_FATAL(o);
	struct msg_upload_hdr u;
	CU_ASSERT_EQUAL_FATAL(proto_decode_upload_hdr(o, &u, err, sizeof(err)), 0);
	CU_ASSERT_STRING_EQUAL(u.stream, "events");
	CU_ASSERT_EQUAL(u.from, 4294967296LL);
	CU_ASSERT_EQUAL(u.to, 9007199254740993LL);
	CU_ASSERT_EQUAL(u.rows, 12);
	CU_ASSERT_PTR_EQUAL(u.stream, json_string_value(json_object_get(o, "stream")));
	json_decref(o);

	o = parse("{\"schema\":12,\"slave\":\"branch-7\",\"proto\":1,\"publication\":42,\"interval\":60}", err, sizeof(err));
	CU_ASSERT_PTR_NOT_NULL_FATAL(o);
	struct msg_hello h;
	CU_ASSERT_EQUAL_FATAL(proto_decode_hello(o, &h, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(h.proto, 1);
	CU_ASSERT_EQUAL(h.schema, 12);
	CU_ASSERT_EQUAL(h.publication, 42);
	CU_ASSERT_EQUAL(h.interval, 60);
	CU_ASSERT_STRING_EQUAL(h.slave, "branch-7");
	json_decref(o);

	json_t *arr = json_array();
	struct msg_error e;
	CU_ASSERT_EQUAL(proto_decode_error(arr, &e, err, sizeof(err)), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "not a JSON object"));
	json_decref(arr);
}

static void test_size_limits(void)
{
	char token[202], name[66], big[16 * 1024 + 2];
	memset(token, 't', sizeof(token) - 1);
	token[sizeof(token) - 1] = '\0';
	memset(name, 'n', sizeof(name) - 1);
	name[sizeof(name) - 1] = '\0';
	memset(big, 'c', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	static const struct {
		size_t token, name, csr;
		int rc;
	} cases[] = {
		{ 200, 63, 16384, 0 },
		{ 201, 63, 16384, -1 },
		{ 200, 64, 16384, -1 },
		{ 200, 63, 16385, -1 },
	};
	for (size_t i = 0; i < NELEM(cases); i++) {
		json_t *o = json_pack("{s:s%, s:s%, s:s%}", "token", token, cases[i].token, "name",
				      name, cases[i].name, "csr", big, cases[i].csr);
		CU_ASSERT_PTR_NOT_NULL_FATAL(o);
		struct msg_enrol m;
		char err[256] = "";
		CU_ASSERT_EQUAL(proto_decode_enrol(o, &m, err, sizeof(err)), cases[i].rc);
		json_decref(o);
	}
}

static void test_allow_list(void)
{
	static const struct {
		enum proto_state st;
		uint16_t allowed[4];
	} rows[] = {
		{ PST_MASTER_PREAUTH, { MSG_ENROL } },
		{ PST_MASTER_AUTHED, { MSG_HELLO, MSG_PING, MSG_UNREGISTER } },
		{ PST_MASTER_UPLOAD, { MSG_UPLOAD_BATCH, MSG_UPLOAD_DONE } },
		{ PST_MASTER_DOWNLOAD, { MSG_DOWNLOAD_ACK, MSG_BYE } },
		{ PST_SLAVE_ENROL, { MSG_ENROL_OK } },
		{ PST_SLAVE_HELLO, { MSG_WELCOME, MSG_PONG, MSG_SYNC_REQUEST } },
		{ PST_SLAVE_UPLOAD, { MSG_UPLOAD_ACK, MSG_DOWNLOAD, MSG_PONG } },
		{ PST_SLAVE_BYE, { MSG_BYE_OK, MSG_PONG } },
		{ PST_SLAVE_IDLE, { MSG_SYNC_REQUEST, MSG_PONG } },
	};
	/* Every type from 0 to 99 plus extremes, against every state. */
	for (size_t r = 0; r < NELEM(rows); r++) {
		for (unsigned t = 0; t <= 100; t++) {
			uint16_t type = t == 100 ? 0xffff : (uint16_t)t;
			bool want = type == MSG_ERROR;
			for (size_t k = 0; k < 4; k++)
				want = want ||
				       (rows[r].allowed[k] != 0 && rows[r].allowed[k] == type);
			if (proto_allowed(rows[r].st, type) != want)
				fprintf(stderr, "state %s type %u: want %d\n",
					proto_state_name(rows[r].st), type, want);
			CU_ASSERT_EQUAL(proto_allowed(rows[r].st, type), want);
		}
	}
	CU_ASSERT_FALSE(proto_allowed((enum proto_state)99, MSG_ERROR));
	CU_ASSERT_FALSE(proto_allowed(PST_MASTER_PREAUTH, MSG_HELLO));
	CU_ASSERT_FALSE(proto_allowed(PST_MASTER_AUTHED, MSG_UPLOAD_BATCH));
	CU_ASSERT_FALSE(proto_allowed(PST_SLAVE_IDLE, MSG_WELCOME));
}

static void test_names(void)
{
	CU_ASSERT_STRING_EQUAL(proto_msg_name(MSG_HELLO), "HELLO");
	CU_ASSERT_STRING_EQUAL(proto_msg_name(MSG_UPLOAD_BATCH), "UPLOAD_BATCH");
	CU_ASSERT_STRING_EQUAL(proto_msg_name(MSG_UNREGISTER), "UNREGISTER");
	CU_ASSERT_STRING_EQUAL(proto_msg_name(0), "UNKNOWN");
	CU_ASSERT_STRING_EQUAL(proto_msg_name(12), "UNKNOWN");
	CU_ASSERT_STRING_EQUAL(proto_state_name(PST_SLAVE_IDLE), "slave_idle");
	CU_ASSERT_STRING_EQUAL(proto_state_name((enum proto_state)42), "unknown");
}

static void test_group_paths(void)
{
	static const struct {
		const char *args; /* the operator's args */
		int rc;
		const char *group; /* what comes out, NULL for every endpoint */
		const char *err;   /* part of the error */
	} cases[] = {
		{ "{}", 0, NULL, NULL },
		{ "{\"group\": \"/\"}", 0, NULL, NULL },
		{ "{\"group\": \"/branch/lab 2\"}", 0, "/branch/lab 2", NULL },
		{ "{\"group\": \"branch\"}", -1, NULL, "invalid group path 'branch'" },
		{ "{\"group\": \"/branch/\"}", -1, NULL, "invalid group path '/branch/'" },
		{ "{\"group\": \"/a//b\"}", -1, NULL, "invalid group path '/a//b'" },
		{ "{\"group\": \"/a;b\"}", -1, NULL, "invalid group path '/a;b'" },
		{ "{\"group\": 7}", -1, NULL, "group must be a path" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		json_t *args = json_loads(cases[i].args, 0, NULL);
		const char *group = "unset";
		char err[256] = "";
		CU_ASSERT_PTR_NOT_NULL_FATAL(args);
		CU_ASSERT_EQUAL(proto_group_arg(args, &group, err, sizeof(err)), cases[i].rc);
		if (cases[i].rc == 0 && cases[i].group) {
			CU_ASSERT_STRING_EQUAL(group ? group : "(null)", cases[i].group);
		} else if (cases[i].rc == 0) {
			CU_ASSERT_PTR_NULL(group);
		} else {
			CU_ASSERT_PTR_NOT_NULL(strstr(err, cases[i].err));
		}
		json_decref(args);
	}
}

int main(void)
{
	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	CU_pSuite s = CU_add_suite("proto", NULL, NULL);
	CU_add_test(s, "parse_json accepts one object only", test_parse_json);
	CU_add_test(s, "parse_bulk splits at the first newline", test_parse_bulk);
	CU_add_test(s, "decoders: good, missing, extra, wrong type, range", test_decode_table);
	CU_add_test(s, "decoders: values and string ownership", test_decode_values);
	CU_add_test(s, "decoders: size limits", test_size_limits);
	CU_add_test(s, "allow-list per state", test_allow_list);
	CU_add_test(s, "names", test_names);
	CU_add_test(s, "group paths", test_group_paths);
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	unsigned fails = CU_get_number_of_failures();
	CU_cleanup_registry();
	return fails ? 1 : 0;
}
