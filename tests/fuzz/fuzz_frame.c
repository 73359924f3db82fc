/*
 * Feeds arbitrary bytes to the frame codec the way a reader does: peek,
 * consume whole frames, stop on NEED_MORE or TOO_BIG. The first two input
 * bytes choose the limit so that both small and large limits are explored.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "frame.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	uint32_t max = (uint32_t)data[0] << 8 | data[1];
	data += 2;
	size -= 2;
	size_t off = 0;
	for (;;) {
		uint16_t type = 0;
		uint32_t plen = 0;
		enum frame_status st = frame_peek(data + off, size - off, max, &type, &plen);
		if (st == FRAME_TOO_BIG) {
			if (plen <= max)
				abort();
			break;
		}
		if (st == FRAME_NEED_MORE) {
			if (size - off >= FRAME_HEADER_LEN && size - off - FRAME_HEADER_LEN >= plen)
				abort();
			break;
		}
		if (plen > max || size - off < FRAME_HEADER_LEN + (size_t)plen)
			abort();
		/* The encoder must reproduce the header it just decoded. */
		uint8_t hdr[FRAME_HEADER_LEN];
		frame_header_encode(hdr, type, plen);
		if (memcmp(hdr, data + off, FRAME_HEADER_LEN) != 0)
			abort();
		off += FRAME_HEADER_LEN + (size_t)plen;
	}
	return 0;
}
