/*
 * A batch's COPY text as the master receives it from a slave (untrusted),
 * through the counting of direct copies: the first byte picks the stream,
 * the rest is the text. A batch that is counted must count every row.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "counts.h"
#include "stream.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const streams[] = { "endpoints", "events", "task_results", "groups" };
	if (size < 1)
		return 0;
	const struct stream_def *sd = stream_find(streams[data[0] % 4]);
	const char *text = (const char *)data + 1;
	size_t len = size - 1;
	struct batch_counts *c = NULL;
	enum counts_status st = counts_parse(sd, text, len, &c);
	if (st == COUNTS_OK) {
		/* One row a line; a last line without '\n' is a row too. */
		long long rows = 0;
		for (size_t i = 0; i < len; i++)
			rows += text[i] == '\n';
		if (len > 0 && text[len - 1] != '\n')
			rows++;
		if (counts_rows(c) != rows || counts_keys(c) > (size_t)rows)
			abort();
	} else if (c) {
		abort();
	}
	counts_free(c);
	char day[11];
	if (counts_utc_day(text, len, day) == 0 && (strlen(day) != 10 || day[4] != '-'))
		abort();
	return 0;
}
