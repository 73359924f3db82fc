#include "iprange.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const uint8_t v4_mapped_prefix[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

int iprange_addr(const char *text, uint8_t out[16])
{
	struct in_addr a4;
	struct in6_addr a6;
	if (inet_pton(AF_INET, text, &a4) == 1) {
		memcpy(out, v4_mapped_prefix, sizeof(v4_mapped_prefix));
		memcpy(out + 12, &a4, 4);
		return 0;
	}
	if (inet_pton(AF_INET6, text, &a6) == 1) {
		memcpy(out, &a6, 16);
		return 0;
	}
	return -1;
}

/* Whether a and b agree on their first prefix bits. */
static bool same_prefix(const uint8_t a[16], const uint8_t b[16], unsigned prefix)
{
	unsigned whole = prefix / 8, rest = prefix % 8;
	if (memcmp(a, b, whole) != 0)
		return false;
	if (rest == 0)
		return true;
	uint8_t mask = (uint8_t)(0xff << (8 - rest));
	return (a[whole] & mask) == (b[whole] & mask);
}

static bool host_bits_zero(const uint8_t a[16], unsigned prefix)
{
	uint8_t masked[16];
	memcpy(masked, a, 16);
	for (unsigned bit = prefix; bit < 128; bit++)
		masked[bit / 8] &= (uint8_t) ~(0x80 >> (bit % 8));
	return memcmp(masked, a, 16) == 0;
}

int iprange_parse(const char *text, struct iprange *out, char *err, size_t errlen)
{
	char addr[IPRANGE_TEXT_MAX];
	const char *slash = strchr(text, '/');
	struct in_addr a4;
	struct in6_addr a6;
	const char *why = NULL;
	memset(out, 0, sizeof(*out));
	if (strlen(text) >= IPRANGE_TEXT_MAX) {
		why = "too long";
		goto bad;
	}
	if (!slash) {
		why = "the /PREFIX is missing";
		goto bad;
	}
	snprintf(addr, sizeof(addr), "%.*s", (int)(slash - text), text);
	const char *p = slash + 1;
	if (*p < '0' || *p > '9' || strlen(p) > 3 || strspn(p, "0123456789") != strlen(p)) {
		why = "the prefix is not a number";
		goto bad;
	}
	unsigned prefix = (unsigned)atoi(p);
	if (inet_pton(AF_INET, addr, &a4) == 1) {
		if (prefix > 32) {
			why = "prefix above 32";
			goto bad;
		}
		out->v4 = true;
		memcpy(out->addr, v4_mapped_prefix, sizeof(v4_mapped_prefix));
		memcpy(out->addr + 12, &a4, 4);
		out->prefix = (uint8_t)(prefix + 96);
	} else if (inet_pton(AF_INET6, addr, &a6) == 1) {
		if (prefix > 128) {
			why = "prefix above 128";
			goto bad;
		}
		memcpy(out->addr, &a6, 16);
		out->prefix = (uint8_t)prefix;
	} else {
		why = "not an IPv4 or IPv6 address";
		goto bad;
	}
	if (!host_bits_zero(out->addr, out->prefix)) {
		why = "bits are set after the prefix";
		goto bad;
	}
	return 0;
bad:
	snprintf(err, errlen, "'%s' is not a valid CIDR: %s", text, why);
	return -1;
}

bool iprange_contains(const struct iprange *r, const uint8_t addr[16])
{
	return same_prefix(r->addr, addr, r->prefix);
}

bool iprange_list_contains(const struct iprange *list, size_t n, const char *address)
{
	uint8_t a[16];
	if (n == 0 || iprange_addr(address, a) != 0)
		return false;
	for (size_t i = 0; i < n; i++)
		if (iprange_contains(&list[i], a))
			return true;
	return false;
}

void iprange_format(const struct iprange *r, char *buf, size_t len)
{
	char text[INET6_ADDRSTRLEN];
	if (r->v4)
		inet_ntop(AF_INET, r->addr + 12, text, sizeof(text));
	else
		inet_ntop(AF_INET6, r->addr, text, sizeof(text));
	snprintf(buf, len, "%s/%u", text, r->v4 ? r->prefix - 96u : r->prefix);
}
