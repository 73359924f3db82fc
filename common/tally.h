/*
 * tally: one log line for many like events. A flood of 10,000 silent
 * connections cut by their timeout is one line with a count, not 10,000.
 *
 * tally_add() counts an event; the first one after a quiet spell arms a
 * timer, and when it fires one line is logged at info level:
 * "PREFIX: N WHAT in the last S s". The tally belongs to the caller's event
 * loop; tally_free() logs what is still counted.
 */
#ifndef STRATA_TALLY_H
#define STRATA_TALLY_H

#include <event2/event.h>

struct tally;

/* prefix and what are copied. NULL when out of memory. */
struct tally *tally_new(struct event_base *base, int period_s, const char *prefix,
			const char *what);
/* t may be NULL (a tally already freed): nothing is counted. */
void tally_add(struct tally *t);
/* Events counted since the last line. */
unsigned long tally_pending(const struct tally *t);
void tally_free(struct tally *t);

#endif
