/*
 * iprange: CIDR ranges of IPv4 and IPv6 addresses and the test "is this
 * address in one of these ranges". Pure functions, no allocation.
 *
 * Every address is kept as 16 bytes: an IPv4 address or range is stored
 * in its IPv4-mapped IPv6 form (::ffff:a.b.c.d, prefix + 96), so an IPv4
 * range also matches a peer that a dual-stack listener reports as
 * ::ffff:10.20.1.2, and the comparison is one code path.
 */
#ifndef STRATA_IPRANGE_H
#define STRATA_IPRANGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* "ffff:ffff:...:ffff/128" and its NUL fit; also the longest accepted input. */
#define IPRANGE_TEXT_MAX 64

struct iprange {
	uint8_t addr[16]; /* the network address, host bits zero */
	uint8_t prefix;	  /* 0..128, in the 16-byte form */
	bool v4;	  /* written as IPv4: printed back that way */
};

/*
 * Parses "ADDRESS/PREFIX" (IPv4 /0../32 or IPv6 /0../128). The prefix is
 * required and the host bits must be zero, so a typo such as 10.0.0.1/8
 * is refused rather than silently widened. 0, or -1 with the reason in
 * err ("'10.0.0.0/33' is not a valid CIDR: prefix above 32").
 */
__attribute__((warn_unused_result)) int iprange_parse(const char *text, struct iprange *out,
						      char *err, size_t errlen);

/* Parses a single IPv4 or IPv6 address into the 16-byte form; 0 or -1. */
__attribute__((warn_unused_result)) int iprange_addr(const char *text, uint8_t out[16]);

bool iprange_contains(const struct iprange *r, const uint8_t addr[16]);

/* True when the address text parses and is in one of the n ranges. */
bool iprange_list_contains(const struct iprange *list, size_t n, const char *address);

/* Canonical text: "10.20.0.0/16", "2001:db8::/32". */
void iprange_format(const struct iprange *r, char *buf, size_t len);

#endif
