/* iprange: CIDR parsing and membership, IPv4, IPv6 and IPv4-mapped IPv6. */
#include <CUnit/Basic.h>

#include <stdio.h>
#include <string.h>

#include "iprange.h"

static void test_parse_valid(void)
{
	static const struct {
		const char *text;
		const char *canonical;
		unsigned prefix; /* in the 16-byte form */
	} cases[] = {
		{ "10.20.0.0/16", "10.20.0.0/16", 112 },
		{ "0.0.0.0/0", "0.0.0.0/0", 96 },
		{ "192.168.1.7/32", "192.168.1.7/32", 128 },
		{ "2001:db8::/32", "2001:db8::/32", 32 },
		{ "::/0", "::/0", 0 },
		{ "2001:DB8::1/128", "2001:db8::1/128", 128 },
		{ "fe80::/10", "fe80::/10", 10 },
		{ "::ffff:0:0/96", "::ffff:0.0.0.0/96", 96 },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct iprange r;
		char err[256] = "", text[IPRANGE_TEXT_MAX];
		int rc = iprange_parse(cases[i].text, &r, err, sizeof(err));
		if (rc != 0)
			fprintf(stderr, "\n%s: %s\n", cases[i].text, err);
		CU_ASSERT_EQUAL_FATAL(rc, 0);
		CU_ASSERT_EQUAL(r.prefix, cases[i].prefix);
		iprange_format(&r, text, sizeof(text));
		CU_ASSERT_STRING_EQUAL(text, cases[i].canonical);
	}
}

static void test_parse_invalid(void)
{
	static const struct {
		const char *text;
		const char *why;
	} cases[] = {
		{ "10.0.0.0/33", "prefix above 32" },
		{ "2001:db8::/129", "prefix above 128" },
		{ "10.0.0.0", "the /PREFIX is missing" },
		{ "10.0.0.0/", "the prefix is not a number" },
		{ "10.0.0.0/-1", "the prefix is not a number" },
		{ "10.0.0.0/8x", "the prefix is not a number" },
		{ "10.0.0.0/0008", "the prefix is not a number" },
		{ "10.0.0.1/8", "bits are set after the prefix" },
		{ "2001:db8::1/64", "bits are set after the prefix" },
		{ "10.0.0.256/24", "not an IPv4 or IPv6 address" },
		{ "10.0.0/24", "not an IPv4 or IPv6 address" },
		{ "host.example/24", "not an IPv4 or IPv6 address" },
		{ "/24", "not an IPv4 or IPv6 address" },
		{ "", "the /PREFIX is missing" },
		{ " 10.0.0.0/8", "not an IPv4 or IPv6 address" },
		{ "1111:2222:3333:4444:5555:6666:7777:8888:9999:aaaa:bbbb:cccc:dddd/128",
		  "too long" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct iprange r;
		char err[256] = "", want[256];
		CU_ASSERT_EQUAL(iprange_parse(cases[i].text, &r, err, sizeof(err)), -1);
		snprintf(want, sizeof(want), "'%s' is not a valid CIDR: %s", cases[i].text,
			 cases[i].why);
		if (strcmp(err, want) != 0)
			fprintf(stderr, "\nwanted \"%s\"\n   got \"%s\"\n", want, err);
		CU_ASSERT_STRING_EQUAL(err, want);
	}
}

static void test_contains(void)
{
	static const struct {
		const char *range;
		const char *address;
		bool in;
	} cases[] = {
		{ "10.20.0.0/16", "10.20.0.1", true },
		{ "10.20.0.0/16", "10.20.255.255", true },
		{ "10.20.0.0/16", "10.21.0.0", false },
		{ "10.20.0.0/16", "10.19.255.255", false },
		{ "10.20.0.0/16", "::ffff:10.20.3.4", true }, /* v4-mapped peer, v4 range */
		{ "10.20.0.0/16", "::ffff:10.21.3.4", false },
		{ "10.20.0.0/16", "::a14:304", false }, /* IPv4-compatible is not mapped */
		{ "172.16.0.0/12", "172.31.255.255", true },
		{ "172.16.0.0/12", "172.32.0.0", false },
		{ "0.0.0.0/0", "255.255.255.255", true },
		{ "0.0.0.0/0", "2001:db8::1", false }, /* all of IPv4 is not all of IPv6 */
		{ "192.168.1.7/32", "192.168.1.7", true },
		{ "192.168.1.7/32", "192.168.1.6", false },
		{ "::/0", "2001:db8::1", true },
		{ "::/0", "127.0.0.1", true }, /* every address, the mapped ones included */
		{ "2001:db8::/32", "2001:db8:ffff::1", true },
		{ "2001:db8::/32", "2001:db9::1", false },
		{ "2001:db8::1/128", "2001:db8::1", true },
		{ "2001:db8::1/128", "2001:db8::2", false },
		{ "fe80::/10", "febf::1", true },
		{ "fe80::/10", "fec0::1", false },
		{ "::ffff:0:0/96", "8.8.8.8", true }, /* a v6 range of all mapped addresses */
		{ "127.0.0.0/8", "127.0.0.1", true },
		{ "127.0.0.0/8", "::1", false },
		{ "127.0.0.0/8", "not-an-address", false },
		{ "127.0.0.0/8", "", false },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct iprange r;
		char err[256];
		CU_ASSERT_EQUAL_FATAL(iprange_parse(cases[i].range, &r, err, sizeof(err)), 0);
		bool in = iprange_list_contains(&r, 1, cases[i].address);
		if (in != cases[i].in)
			fprintf(stderr, "\n%s in %s: got %d\n", cases[i].address, cases[i].range,
				in);
		CU_ASSERT_EQUAL(in, cases[i].in);
	}
}

static void test_list(void)
{
	struct iprange list[3];
	char err[256];
	CU_ASSERT_EQUAL_FATAL(iprange_parse("10.0.0.0/8", &list[0], err, sizeof(err)), 0);
	CU_ASSERT_EQUAL_FATAL(iprange_parse("192.168.0.0/16", &list[1], err, sizeof(err)), 0);
	CU_ASSERT_EQUAL_FATAL(iprange_parse("fd00::/8", &list[2], err, sizeof(err)), 0);
	CU_ASSERT_TRUE(iprange_list_contains(list, 3, "10.1.2.3"));
	CU_ASSERT_TRUE(iprange_list_contains(list, 3, "192.168.9.9"));
	CU_ASSERT_TRUE(iprange_list_contains(list, 3, "fd12::1"));
	CU_ASSERT_FALSE(iprange_list_contains(list, 3, "172.16.0.1"));
	CU_ASSERT_FALSE(iprange_list_contains(list, 3, "fe80::1"));
	/* An empty list holds nothing. */
	CU_ASSERT_FALSE(iprange_list_contains(list, 0, "10.1.2.3"));
}

int main(void)
{
	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	CU_pSuite s = CU_add_suite("iprange", NULL, NULL);
	CU_add_test(s, "valid CIDRs and their canonical text", test_parse_valid);
	CU_add_test(s, "invalid CIDRs with their reason", test_parse_invalid);
	CU_add_test(s, "membership table", test_contains);
	CU_add_test(s, "a list of ranges", test_list);
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	unsigned fails = CU_get_number_of_failures();
	CU_cleanup_registry();
	return fails ? 1 : 0;
}
