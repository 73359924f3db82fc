#include <CUnit/Basic.h>
#include <stdint.h>
#include <string.h>

#include "frame.h"

static void test_header_encode(void)
{
	static const struct {
		uint16_t type;
		uint32_t len;
		uint8_t bytes[FRAME_HEADER_LEN];
	} cases[] = {
		{ 0, 0, { 0, 0, 0, 0, 0, 0 } },
		{ 10, 5, { 0, 0, 0, 5, 0, 10 } },
		{ 0x1234, 0x01020304, { 1, 2, 3, 4, 0x12, 0x34 } },
		{ 0xffff, UINT32_MAX, { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff } },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint8_t hdr[FRAME_HEADER_LEN];
		frame_header_encode(hdr, cases[i].type, cases[i].len);
		CU_ASSERT_EQUAL(memcmp(hdr, cases[i].bytes, sizeof(hdr)), 0);
	}
}

static void test_peek(void)
{
	static const struct {
		const char *what;
		uint8_t buf[12];
		size_t len;
		uint32_t max;
		enum frame_status want;
		uint16_t type;
		uint32_t plen;
	} cases[] = {
		{ "empty", { 0 }, 0, 100, FRAME_NEED_MORE, 0, 0 },
		{ "3 length bytes", { 0, 0, 0 }, 3, 100, FRAME_NEED_MORE, 0, 0 },
		{ "length but no type", { 0, 0, 0, 2, 0 }, 5, 100, FRAME_NEED_MORE, 0, 0 },
		{ "header, partial payload",
		  { 0, 0, 0, 2, 0, 10, 'x' },
		  7,
		  100,
		  FRAME_NEED_MORE,
		  10,
		  2 },
		{ "empty payload", { 0, 0, 0, 0, 0, 43 }, 6, 100, FRAME_OK, 43, 0 },
		{ "whole frame", { 0, 0, 0, 2, 0, 10, 'h', 'i' }, 8, 100, FRAME_OK, 10, 2 },
		{ "whole frame then more",
		  { 0, 0, 0, 2, 0, 10, 'h', 'i', 0, 0 },
		  10,
		  100,
		  FRAME_OK,
		  10,
		  2 },
		{ "exactly the limit",
		  { 0, 0, 0, 4, 1, 2, 'a', 'b', 'c', 'd' },
		  10,
		  4,
		  FRAME_OK,
		  0x0102,
		  4 },
		{ "one over the limit, full",
		  { 0, 0, 0, 5, 0, 1, 'a', 'b', 'c', 'd', 'e' },
		  11,
		  4,
		  FRAME_TOO_BIG,
		  0,
		  5 },
		{ "over the limit, length only", { 0, 0, 1, 0 }, 4, 255, FRAME_TOO_BIG, 0, 256 },
		{ "max uint32",
		  { 0xff, 0xff, 0xff, 0xff },
		  4,
		  16u << 20,
		  FRAME_TOO_BIG,
		  0,
		  UINT32_MAX },
		{ "max uint32 with max limit",
		  { 0xff, 0xff, 0xff, 0xff, 0, 1 },
		  6,
		  UINT32_MAX,
		  FRAME_NEED_MORE,
		  1,
		  UINT32_MAX },
		{ "zero limit, empty payload", { 0, 0, 0, 0, 0, 1 }, 6, 0, FRAME_OK, 1, 0 },
		{ "zero limit, one byte", { 0, 0, 0, 1 }, 4, 0, FRAME_TOO_BIG, 0, 1 },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint16_t type = 0xdead;
		uint32_t plen = 0xdeadbeef;
		enum frame_status st =
			frame_peek(cases[i].buf, cases[i].len, cases[i].max, &type, &plen);
		if (st != cases[i].want)
			fprintf(stderr, "case '%s': status %d, want %d\n", cases[i].what, st,
				cases[i].want);
		CU_ASSERT_EQUAL(st, cases[i].want);
		/* A whole header is reported even when the payload is still missing. */
		if (cases[i].want == FRAME_OK ||
		    (cases[i].want == FRAME_NEED_MORE && cases[i].len >= FRAME_HEADER_LEN)) {
			CU_ASSERT_EQUAL(type, cases[i].type);
			CU_ASSERT_EQUAL(plen, cases[i].plen);
		} else if (cases[i].want == FRAME_TOO_BIG) {
			CU_ASSERT_EQUAL(plen, cases[i].plen);
		}
	}
}

static void test_round_trip(void)
{
	uint8_t buf[FRAME_HEADER_LEN + 3];
	frame_header_encode(buf, 0xbeef, 3);
	memcpy(buf + FRAME_HEADER_LEN, "abc", 3);
	for (size_t n = 0; n <= sizeof(buf); n++) {
		uint16_t type = 0;
		uint32_t plen = 0;
		enum frame_status st = frame_peek(buf, n, 3, &type, &plen);
		CU_ASSERT_EQUAL(st, n == sizeof(buf) ? FRAME_OK : FRAME_NEED_MORE);
		if (st == FRAME_OK) {
			CU_ASSERT_EQUAL(type, 0xbeef);
			CU_ASSERT_EQUAL(plen, 3);
		}
	}
}

int main(void)
{
	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	CU_pSuite s = CU_add_suite("frame", NULL, NULL);
	CU_add_test(s, "header encode", test_header_encode);
	CU_add_test(s, "peek table", test_peek);
	CU_add_test(s, "encode then peek at every prefix", test_round_trip);
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	unsigned fails = CU_get_number_of_failures();
	CU_cleanup_registry();
	return fails ? 1 : 0;
}
