#include <CUnit/Basic.h>
#include <stdlib.h>
#include <string.h>

/* strata-ctl's modules are not in libstrata-common; the pure one is compiled in here. */
#include "render.h"

/* Renders the JSON text result in format into a string the caller frees. */
static char *render(const char *result_json, enum render_format format)
{
	json_error_t jerr;
	json_t *result = json_loads(result_json, JSON_DECODE_ANY, &jerr);
	if (!result) {
		fprintf(stderr, "\nbad test input %s: %s\n", result_json, jerr.text);
		return strdup("");
	}
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	char err[128];
	CU_ASSERT_EQUAL(render_result(f, result, format, err, sizeof(err)), 0);
	fclose(f);
	json_decref(result);
	return buf;
}

struct render_case {
	const char *name;
	const char *result;
	enum render_format format;
	const char *want;
};

#define SLAVES_TABLE                                                                               \
	"{\"columns\": [\"name\", \"state\", \"endpoints\", \"licensed\"],"                        \
	" \"rows\": [[\"alpha\", \"active\", 1200, true],"                                         \
	"           [\"b\", \"degraded\", 7, false],"                                              \
	"           [\"gamma\", null, null, null]]}"

static const struct render_case cases[] = {
	/* tables */
	{ "aligned text table, numbers right-aligned, null and booleans", SLAVES_TABLE, RENDER_TEXT,
	  "name   state     endpoints  licensed\n"
	  "alpha  active         1200  yes\n"
	  "b      degraded          7  no\n"
	  "gamma  -                 -  -\n" },
	{ "a wide header sets the width; reals keep 15 digits",
	  "{\"columns\": [\"x\", \"data_age_seconds\"], \"rows\": [[\"a\", 0.1], [\"bb\", -2]]}",
	  RENDER_TEXT,
	  "x   data_age_seconds\n"
	  "a                0.1\n"
	  "bb                -2\n" },
	{ "characters, not bytes, are counted",
	  "{\"columns\": [\"site\", \"n\"], \"rows\": [[\"z\\u00fcrich\", \"x\"], [\"bern\", "
	  "\"y\"]]}",
	  RENDER_TEXT,
	  "site    n\n"
	  "z\xc3\xbcrich  x\n"
	  "bern    y\n" },
	{ "control characters do not break lines",
	  "{\"columns\": [\"a\", \"b\"], \"rows\": [[\"one\\ntwo\", \"tab\\there\"]]}", RENDER_TEXT,
	  "a        b\n"
	  "one two  tab here\n" },
	{ "objects and arrays in cells are compact JSON",
	  "{\"columns\": [\"k\", \"v\"], \"rows\": [[\"s\", {\"a\": [1, 2]}]]}", RENDER_TEXT,
	  "k  v\n"
	  "s  {\"a\":[1,2]}\n" },
	{ "empty table prints the header", "{\"columns\": [\"name\", \"state\"], \"rows\": []}",
	  RENDER_TEXT, "name  state\n" },
	{ "CSV with header, nulls empty, booleans true/false", SLAVES_TABLE, RENDER_CSV,
	  "name,state,endpoints,licensed\n"
	  "alpha,active,1200,true\n"
	  "b,degraded,7,false\n"
	  "gamma,,,\n" },
	{ "CSV quotes commas, quotes, CR and LF",
	  "{\"columns\": [\"name\", \"note, more\"],"
	  " \"rows\": [[\"a,b\", \"say \\\"hi\\\"\"], [\"line\\nbreak\", \"cr\\rhere\"],"
	  " [\"plain\", \"\"]]}",
	  RENDER_CSV,
	  "name,\"note, more\"\n"
	  "\"a,b\",\"say \"\"hi\"\"\"\n"
	  "\"line\nbreak\",\"cr\rhere\"\n"
	  "plain,\n" },
	{ "JSON table is an array of objects keyed by column",
	  "{\"columns\": [\"name\", \"n\", \"ok\"], \"rows\": [[\"a\", 1, null], [\"b\", 2.5, "
	  "true]]}",
	  RENDER_JSON,
	  "[\n"
	  "  {\n"
	  "    \"name\": \"a\",\n"
	  "    \"n\": 1,\n"
	  "    \"ok\": null\n"
	  "  },\n"
	  "  {\n"
	  "    \"name\": \"b\",\n"
	  "    \"n\": 2.5,\n"
	  "    \"ok\": true\n"
	  "  }\n"
	  "]\n" },
	{ "JSON of an empty table is an empty array", "{\"columns\": [\"a\"], \"rows\": []}",
	  RENDER_JSON, "[]\n" },

	/* message */
	{ "message line", "{\"message\": \"slave alpha added\"}", RENDER_TEXT,
	  "slave alpha added\n" },
	{ "message in CSV mode is the line", "{\"message\": \"done\"}", RENDER_CSV, "done\n" },
	{ "message in JSON mode is the whole object", "{\"message\": \"done\"}", RENDER_JSON,
	  "{\n  \"message\": \"done\"\n}\n" },

	/* fields */
	{ "fields with aligned keys",
	  "{\"fields\": {\"role\": \"master\", \"uptime_s\": 42, \"degraded\": false,"
	  " \"note\": null}}",
	  RENDER_TEXT,
	  "role:     master\n"
	  "uptime_s: 42\n"
	  "degraded: no\n"
	  "note:     -\n" },
	{ "fields then a table",
	  "{\"fields\": {\"slave\": \"alpha\"},"
	  " \"columns\": [\"stream\", \"watermark\"], \"rows\": [[\"endpoints\", 1024]]}",
	  RENDER_TEXT,
	  "slave: alpha\n"
	  "\n"
	  "stream     watermark\n"
	  "endpoints       1024\n" },
	{ "fields in CSV",
	  "{\"fields\": {\"a\": \"x,y\", \"b\": true},"
	  " \"columns\": [\"c\"], \"rows\": [[1]]}",
	  RENDER_CSV,
	  "field,value\n"
	  "a,\"x,y\"\n"
	  "b,true\n"
	  "\n"
	  "c\n"
	  "1\n" },
	{ "fields in JSON mode are the whole object", "{\"fields\": {\"a\": 1}}", RENDER_JSON,
	  "{\n  \"fields\": {\n    \"a\": 1\n  }\n}\n" },

	/* sections */
	{ "sections with titles",
	  "{\"sections\": ["
	  " {\"title\": \"Endpoints by status\", \"columns\": [\"status\", \"count\"],"
	  "  \"rows\": [[\"online\", 10], [\"offline\", 2]]},"
	  " {\"title\": \"Data age\", \"columns\": [\"slave\", \"age_s\"],"
	  "  \"rows\": [[\"alpha\", 30]]}]}",
	  RENDER_TEXT,
	  "Endpoints by status\n"
	  "status   count\n"
	  "online      10\n"
	  "offline      2\n"
	  "\n"
	  "Data age\n"
	  "slave  age_s\n"
	  "alpha     30\n" },
	{ "sections in CSV are separated by a blank line",
	  "{\"sections\": ["
	  " {\"title\": \"A\", \"columns\": [\"x\"], \"rows\": [[1]]},"
	  " {\"title\": \"B\", \"columns\": [\"y\"], \"rows\": [[\"q,r\"]]}]}",
	  RENDER_CSV,
	  "x\n"
	  "1\n"
	  "\n"
	  "y\n"
	  "\"q,r\"\n" },
	{ "sections in JSON mode are the whole object",
	  "{\"sections\": [{\"title\": \"A\", \"columns\": [\"x\"], \"rows\": [[1]]}]}",
	  RENDER_JSON,
	  "{\n"
	  "  \"sections\": [\n"
	  "    {\n"
	  "      \"title\": \"A\",\n"
	  "      \"columns\": [\n"
	  "        \"x\"\n"
	  "      ],\n"
	  "      \"rows\": [\n"
	  "        [\n"
	  "          1\n"
	  "        ]\n"
	  "      ]\n"
	  "    }\n"
	  "  ]\n"
	  "}\n" },

	/* anything else */
	{ "other objects are pretty JSON", "{\"token\": \"abc\", \"expires\": 3600}", RENDER_TEXT,
	  "{\n  \"token\": \"abc\",\n  \"expires\": 3600\n}\n" },
	{ "a row of the wrong length is not a table",
	  "{\"columns\": [\"a\", \"b\"], \"rows\": [[1]]}", RENDER_TEXT,
	  "{\n  \"columns\": [\n    \"a\",\n    \"b\"\n  ],\n  \"rows\": [\n    [\n      1\n    ]\n"
	  "  ]\n}\n" },
	{ "a message with more keys is not a message", "{\"message\": \"m\", \"id\": 3}",
	  RENDER_TEXT, "{\n  \"message\": \"m\",\n  \"id\": 3\n}\n" },
	{ "a section without a title is not a section",
	  "{\"sections\": [{\"columns\": [\"x\"], \"rows\": []}]}", RENDER_CSV,
	  "{\n  \"sections\": [\n    {\n      \"columns\": [\n        \"x\"\n      ],\n"
	  "      \"rows\": []\n    }\n  ]\n}\n" },
	{ "a bare array", "[1, \"a\"]", RENDER_TEXT, "[\n  1,\n  \"a\"\n]\n" },
	{ "a bare string", "\"hello\"", RENDER_TEXT, "\"hello\"\n" },
	{ "null prints nothing", "null", RENDER_TEXT, "" },
	{ "null prints nothing in CSV", "null", RENDER_CSV, "" },
	{ "null is null in JSON mode", "null", RENDER_JSON, "null\n" },
};

static void test_render_cases(void)
{
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *got = render(cases[i].result, cases[i].format);
		CU_ASSERT_STRING_EQUAL(got, cases[i].want);
		if (strcmp(got, cases[i].want) != 0)
			fprintf(stderr, "\ncase '%s':\n--- got\n%s--- want\n%s---\n", cases[i].name,
				got, cases[i].want);
		free(got);
	}
}

/* The JSON form must read back as the same rows, whatever the cell types. */
static void test_json_table_round_trip(void)
{
	char *got = render(SLAVES_TABLE, RENDER_JSON);
	json_t *parsed = json_loads(got, 0, NULL);
	json_t *want =
	    json_loads("[{\"name\": \"alpha\", \"state\": \"active\", \"endpoints\": 1200,"
		       "  \"licensed\": true},"
		       " {\"name\": \"b\", \"state\": \"degraded\", \"endpoints\": 7,"
		       "  \"licensed\": false},"
		       " {\"name\": \"gamma\", \"state\": null, \"endpoints\": null,"
		       "  \"licensed\": null}]",
		       0, NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(parsed);
	CU_ASSERT_TRUE(json_equal(parsed, want));
	json_decref(parsed);
	json_decref(want);
	free(got);
}

static void test_csv_field(void)
{
	static const struct {
		const char *in;
		const char *out;
	} fields[] = {
		{ "plain", "plain" },	    { "", "" },
		{ "a,b", "\"a,b\"" },	    { "say \"hi\"", "\"say \"\"hi\"\"\"" },
		{ "\"", "\"\"\"\"" },	    { "two\nlines", "\"two\nlines\"" },
		{ "cr\r", "\"cr\r\"" },	    { "semi;colon", "semi;colon" },
		{ " spaced ", " spaced " },
	};
	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
		char *buf = NULL;
		size_t len = 0;
		FILE *f = open_memstream(&buf, &len);
		render_csv_field(f, fields[i].in);
		fclose(f);
		CU_ASSERT_STRING_EQUAL(buf, fields[i].out);
		free(buf);
	}
}

static void test_write_error(void)
{
	FILE *f = fopen("/dev/full", "w");
	if (!f) {
		CU_PASS("no /dev/full here");
		return;
	}
	json_t *result = json_loads(SLAVES_TABLE, 0, NULL);
	char err[128] = "";
	CU_ASSERT_EQUAL(render_result(f, result, RENDER_TEXT, err, sizeof(err)), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "cannot write the output"));
	fclose(f);
	json_decref(result);
}

int main(void)
{
	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	CU_pSuite s = CU_add_suite("ctl_render", NULL, NULL);
	CU_add_test(s, "result shapes in text, CSV and JSON", test_render_cases);
	CU_add_test(s, "JSON table reads back", test_json_table_round_trip);
	CU_add_test(s, "CSV field quoting", test_csv_field);
	CU_add_test(s, "a failing output is reported", test_write_error);
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	unsigned fails = CU_get_number_of_failures();
	CU_cleanup_registry();
	return fails ? 1 : 0;
}
