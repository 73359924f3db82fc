/*
 * frame: the wire frame of both channels, as a pure codec.
 *
 * A frame is a 4-byte big-endian payload length, a 2-byte big-endian
 * message type, then the payload. The length counts the payload only.
 */
#ifndef STRATA_FRAME_H
#define STRATA_FRAME_H

#include <stddef.h>
#include <stdint.h>

#define FRAME_HEADER_LEN 6

enum frame_status {
	FRAME_OK,	 /* a whole frame is in the buffer */
	FRAME_NEED_MORE, /* not yet a whole frame */
	FRAME_TOO_BIG,	 /* the announced length exceeds max_payload */
};

/*
 * Looks at the front of buf. On FRAME_OK *type and *payload_len are set
 * and the frame occupies FRAME_HEADER_LEN + *payload_len bytes. On
 * FRAME_TOO_BIG *payload_len holds the announced length (for the log).
 * On FRAME_NEED_MORE with the whole header present, *type and
 * *payload_len are set too, so a reader can look at the header alone.
 */
enum frame_status frame_peek(const uint8_t *buf, size_t len, uint32_t max_payload,
			     uint16_t *type, uint32_t *payload_len);

void frame_header_encode(uint8_t hdr[FRAME_HEADER_LEN], uint16_t type, uint32_t payload_len);

#endif
