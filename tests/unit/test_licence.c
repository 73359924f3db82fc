#include <CUnit/Basic.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "licence.h"
#include "log.h"
#include "tls.h"

static EVP_PKEY *key, *other;

static int suite_init(void)
{
	char err[256];
	log_init("test_licence", false, LOG_LVL_INFO);
	key = tls_key_generate(err, sizeof(err));
	other = tls_key_generate(err, sizeof(err));
	return key && other ? 0 : -1;
}

static int suite_clean(void)
{
	EVP_PKEY_free(key);
	EVP_PKEY_free(other);
	return 0;
}

static struct licence sample(void)
{
	struct licence l = { 0 };
	snprintf(l.id, sizeof(l.id), "LIC-1");
	snprintf(l.holder, sizeof(l.holder), "Example Corp");
	l.seats = 50;
	l.valid_from = 1735689600;  /* 2025-01-01 */
	l.valid_until = 1767225600; /* 2026-01-01 */
	l.n_features = 2;
	snprintf(l.features[0], LICENCE_FEATURE_MAX, "push");
	snprintf(l.features[1], LICENCE_FEATURE_MAX, "dp");
	return l;
}

/* A document with the given payload JSON, signed correctly with key. */
static char *signed_doc(const char *payload)
{
	size_t n = strlen(payload);
	unsigned char sig[64];
	size_t siglen = sizeof(sig);
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	CU_ASSERT_FATAL(EVP_DigestSignInit(md, NULL, NULL, NULL, key) == 1);
	CU_ASSERT_FATAL(EVP_DigestSign(md, sig, &siglen, (const unsigned char *)payload, n) == 1);
	EVP_MD_CTX_free(md);
	char *b64 = malloc((n + 2) / 3 * 4 + 1), hex[129];
	EVP_EncodeBlock((unsigned char *)b64, (const unsigned char *)payload, (int)n);
	for (size_t i = 0; i < 64; i++)
		snprintf(hex + 2 * i, 3, "%02x", sig[i]);
	json_t *o = json_pack("{s:s, s:s}", "payload", b64, "signature", hex);
	char *text = json_dumps(o, 0);
	json_decref(o);
	free(b64);
	return text;
}

static void expect_refused(const char *text, EVP_PKEY *pub, const char *want)
{
	struct licence l;
	char err[512] = "";
	CU_ASSERT_EQUAL(licence_parse(text, strlen(text), pub, &l, err, sizeof(err)), -1);
	if (!strstr(err, want))
		fprintf(stderr, "\nwanted '%s' in '%s'\n", want, err);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, want));
}

static void test_roundtrip(void)
{
	struct licence in = sample(), out;
	char err[256];
	char *text = licence_sign(&in, key, err, sizeof(err));
	CU_ASSERT_PTR_NOT_NULL_FATAL(text);
	CU_ASSERT_EQUAL(licence_parse(text, strlen(text), key, &out, err, sizeof(err)), 0);
	CU_ASSERT_STRING_EQUAL(out.id, "LIC-1");
	CU_ASSERT_STRING_EQUAL(out.holder, "Example Corp");
	CU_ASSERT_EQUAL(out.seats, 50);
	CU_ASSERT_EQUAL(out.valid_from, in.valid_from);
	CU_ASSERT_EQUAL(out.valid_until, in.valid_until);
	CU_ASSERT_EQUAL(out.n_features, 2);
	CU_ASSERT_STRING_EQUAL(out.features[1], "dp");
	/* The wrong key. */
	expect_refused(text, other, "signature does not verify");
	free(text);
}

static void test_tampered(void)
{
	struct licence in = sample();
	char err[256];
	char *text = licence_sign(&in, key, err, sizeof(err));
	CU_ASSERT_PTR_NOT_NULL_FATAL(text);
	json_t *o = json_loads(text, 0, NULL);
	/* Re-encode a payload with more seats under the old signature. */
	char *b64 = malloc(1024);
	const char *forged = "{\"id\":\"LIC-1\",\"holder\":\"Example Corp\",\"seats\":5000,"
			     "\"valid_from\":\"2025-01-01T00:00:00Z\",\"valid_until\":"
			     "\"2026-01-01T00:00:00Z\",\"features\":[]}";
	EVP_EncodeBlock((unsigned char *)b64, (const unsigned char *)forged, (int)strlen(forged));
	json_object_set_new(o, "payload", json_string(b64));
	char *bad = json_dumps(o, 0);
	expect_refused(bad, key, "signature does not verify");
	free(bad);
	/* A flipped signature bit. */
	json_decref(o);
	o = json_loads(text, 0, NULL);
	char sig[129];
	snprintf(sig, sizeof(sig), "%s", json_string_value(json_object_get(o, "signature")));
	sig[0] = sig[0] == '0' ? '1' : '0';
	json_object_set_new(o, "signature", json_string(sig));
	bad = json_dumps(o, 0);
	expect_refused(bad, key, "signature does not verify");
	free(bad);
	json_decref(o);
	free(b64);
	free(text);
}

static void test_garbage(void)
{
	struct licence in = sample();
	char err[256];
	char *text = licence_sign(&in, key, err, sizeof(err));
	CU_ASSERT_PTR_NOT_NULL_FATAL(text);
	struct licence l;
	/* Truncated anywhere: never accepted. */
	for (size_t n = 0; n < strlen(text) - 2; n += 7)
		CU_ASSERT_EQUAL(licence_parse(text, n, key, &l, err, sizeof(err)), -1);
	free(text);
	expect_refused("hello", key, "not a JSON object");
	expect_refused("[1,2]", key, "not a JSON object");
	expect_refused("{\"signature\":\"00\"}", key, "'payload' is missing");
	expect_refused("{\"payload\":5,\"signature\":\"00\"}", key, "'payload' is not a string");
	expect_refused("{\"payload\":\"YQ==\"}", key, "'signature' is missing");
	expect_refused("{\"payload\":\"YQ==\",\"signature\":\"00\"}", key, "not 128 hex digits");
	char doc[512];
	snprintf(doc, sizeof(doc), "{\"payload\":\"*not*\",\"signature\":\"%0128d\"}", 0);
	expect_refused(doc, key, "not base64");
	snprintf(doc, sizeof(doc), "{\"payload\":\"YQ==\",\"signature\":\"%0127dz\"}", 0);
	expect_refused(doc, key, "not hex");
}

struct field_case {
	const char *payload;
	const char *want;
};

static void test_fields(void)
{
	static const struct field_case cases[] = {
		{ "[]", "payload is not a JSON object" },
		{ "{\"holder\":\"h\",\"seats\":1,\"valid_from\":\"2025-01-01T00:00:00Z\","
		  "\"valid_until\":\"2026-01-01T00:00:00Z\"}",
		  "'id' is missing" },
		{ "{\"id\":7,\"holder\":\"h\",\"seats\":1,\"valid_from\":\"2025-01-01T00:00:00Z\","
		  "\"valid_until\":\"2026-01-01T00:00:00Z\"}",
		  "'id' must be a string" },
		{ "{\"id\":\"a\",\"seats\":1,\"valid_from\":\"2025-01-01T00:00:00Z\","
		  "\"valid_until\":\"2026-01-01T00:00:00Z\"}",
		  "'holder' is missing" },
		{ "{\"id\":\"a\",\"holder\":\"h\",\"valid_from\":\"2025-01-01T00:00:00Z\","
		  "\"valid_until\":\"2026-01-01T00:00:00Z\"}",
		  "'seats' is missing" },
		{ "{\"id\":\"a\",\"holder\":\"h\",\"seats\":\"10\",\"valid_from\":"
		  "\"2025-01-01T00:00:00Z\",\"valid_until\":\"2026-01-01T00:00:00Z\"}",
		  "'seats' must be an integer" },
		{ "{\"id\":\"a\",\"holder\":\"h\",\"seats\":0,\"valid_from\":"
		  "\"2025-01-01T00:00:00Z\",\"valid_until\":\"2026-01-01T00:00:00Z\"}",
		  "'seats' must be 1.." },
		{ "{\"id\":\"a\",\"holder\":\"h\",\"seats\":1,"
		  "\"valid_until\":\"2026-01-01T00:00:00Z\"}",
		  "'valid_from' is missing" },
		{ "{\"id\":\"a\",\"holder\":\"h\",\"seats\":1,\"valid_from\":\"yesterday\","
		  "\"valid_until\":\"2026-01-01T00:00:00Z\"}",
		  "'valid_from' is not a time" },
		{ "{\"id\":\"a\",\"holder\":\"h\",\"seats\":1,\"valid_from\":"
		  "\"2025-02-30T00:00:00Z\",\"valid_until\":\"2026-01-01T00:00:00Z\"}",
		  "'valid_from' is not a time" },
		{ "{\"id\":\"a\",\"holder\":\"h\",\"seats\":1,\"valid_from\":"
		  "\"2025-01-01T00:00:00Z\",\"valid_until\":20260101}",
		  "'valid_until' must be a string" },
		{ "{\"id\":\"a\",\"holder\":\"h\",\"seats\":1,\"valid_from\":"
		  "\"2026-01-01T00:00:00Z\",\"valid_until\":\"2025-01-01T00:00:00Z\"}",
		  "'valid_until' is not after 'valid_from'" },
		{ "{\"id\":\"a\",\"holder\":\"h\",\"seats\":1,\"valid_from\":"
		  "\"2025-01-01T00:00:00Z\",\"valid_until\":\"2026-01-01T00:00:00Z\","
		  "\"features\":\"push\"}",
		  "'features' must be a list" },
		{ "{\"id\":\"a\",\"holder\":\"h\",\"seats\":1,\"valid_from\":"
		  "\"2025-01-01T00:00:00Z\",\"valid_until\":\"2026-01-01T00:00:00Z\","
		  "\"features\":[1]}",
		  "'features' must be a list" },
		{ "{\"id\":\"a\",\"holder\":\"h\",\"seats\":1,\"valid_from\":"
		  "\"2025-01-01T00:00:00Z\",\"valid_until\":\"2026-01-01T00:00:00Z\","
		  "\"extra\":1}",
		  "unknown field 'extra'" },
		{ "{\"id\":\"a b\",\"holder\":\"h\",\"seats\":1,\"valid_from\":"
		  "\"2025-01-01T00:00:00Z\",\"valid_until\":\"2026-01-01T00:00:00Z\"}",
		  "'id' may hold only" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *doc = signed_doc(cases[i].payload);
		expect_refused(doc, key, cases[i].want);
		free(doc);
	}
	/* Without features: accepted, an empty list. */
	char *doc =
	    signed_doc("{\"id\":\"a\",\"holder\":\"h\",\"seats\":1,\"valid_from\":"
		       "\"2025-01-01T00:00:00Z\",\"valid_until\":\"2026-01-01T00:00:00Z\"}");
	struct licence l;
	char err[256];
	CU_ASSERT_EQUAL(licence_parse(doc, strlen(doc), key, &l, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(l.n_features, 0);
	free(doc);
}

static void test_time(void)
{
	struct licence l = sample();
	char err[256];
	CU_ASSERT_EQUAL(licence_check_time(&l, l.valid_from, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(licence_check_time(&l, l.valid_until - 1, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(licence_check_time(&l, l.valid_from - 1, err, sizeof(err)), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "not valid before 2025-01-01T00:00:00Z"));
	CU_ASSERT_EQUAL(licence_check_time(&l, l.valid_until, err, sizeof(err)), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "LIC-1 expired at 2026-01-01T00:00:00Z"));

	time_t t;
	CU_ASSERT_EQUAL(licence_parse_time("2025-01-01", &t), 0);
	CU_ASSERT_EQUAL(t, 1735689600);
	CU_ASSERT_EQUAL(licence_parse_time("2025-01-01T00:00:10Z", &t), 0);
	CU_ASSERT_EQUAL(t, 1735689610);
	CU_ASSERT_EQUAL(licence_parse_time("2025-13-01", &t), -1);
	CU_ASSERT_EQUAL(licence_parse_time("2025-01-01T00:00:10", &t), -1);
	CU_ASSERT_EQUAL(licence_parse_time("", &t), -1);
	/* valid-until before valid-from cannot even be signed. */
	l.valid_until = l.valid_from - 1;
	CU_ASSERT_PTR_NULL(licence_sign(&l, key, err, sizeof(err)));
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "'valid_until' is not after"));
}

int main(void)
{
	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	CU_pSuite s = CU_add_suite("licence", suite_init, suite_clean);
	CU_add_test(s, "sign and verify; wrong key", test_roundtrip);
	CU_add_test(s, "tampered payload or signature", test_tampered);
	CU_add_test(s, "truncated and garbage files", test_garbage);
	CU_add_test(s, "missing and wrongly typed fields", test_fields);
	CU_add_test(s, "validity in time", test_time);
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	unsigned failed = CU_get_number_of_failures();
	CU_cleanup_registry();
	return failed ? 1 : 0;
}
