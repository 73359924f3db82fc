#include "frame.h"

/* Offsets inside the header; the length comes first so that an oversized
 * frame is refused from its first four bytes. */
#define FRAME_LEN_BYTES 4

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

enum frame_status frame_peek(const uint8_t *buf, size_t len, uint32_t max_payload, uint16_t *type,
			     uint32_t *payload_len)
{
	if (len < FRAME_LEN_BYTES)
		return FRAME_NEED_MORE;
	uint32_t plen = be32(buf);
	if (plen > max_payload) {
		*payload_len = plen;
		return FRAME_TOO_BIG;
	}
	if (len < FRAME_HEADER_LEN)
		return FRAME_NEED_MORE;
	*type = (uint16_t)((unsigned)buf[4] << 8 | buf[5]);
	*payload_len = plen;
	return len - FRAME_HEADER_LEN < plen ? FRAME_NEED_MORE : FRAME_OK;
}

void frame_header_encode(uint8_t hdr[FRAME_HEADER_LEN], uint16_t type, uint32_t payload_len)
{
	hdr[0] = (uint8_t)(payload_len >> 24);
	hdr[1] = (uint8_t)(payload_len >> 16);
	hdr[2] = (uint8_t)(payload_len >> 8);
	hdr[3] = (uint8_t)payload_len;
	hdr[4] = (uint8_t)(type >> 8);
	hdr[5] = (uint8_t)type;
}
