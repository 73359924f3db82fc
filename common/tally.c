#include "tally.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

struct tally {
	struct event *timer;
	int period_s;
	unsigned long count;
	char *prefix;
	char *what;
};

static void tally_log(struct tally *t)
{
	if (t->count == 0)
		return;
	log_info("%s: %lu %s in the last %d s", t->prefix, t->count, t->what, t->period_s);
	t->count = 0;
}

static void tally_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	tally_log(arg);
}

struct tally *tally_new(struct event_base *base, int period_s, const char *prefix, const char *what)
{
	struct tally *t = calloc(1, sizeof(*t));

	if (!t)
		return NULL;
	t->period_s = period_s > 0 ? period_s : 1;
	t->prefix = strdup(prefix);
	t->what = strdup(what);
	t->timer = evtimer_new(base, tally_timer_cb, t);
	if (!t->prefix || !t->what || !t->timer) {
		tally_free(t);
		return NULL;
	}
	return t;
}

void tally_add(struct tally *t)
{
	if (!t)
		return;
	if (t->count++ == 0 && !evtimer_pending(t->timer, NULL)) {
		struct timeval tv = { t->period_s, 0 };
		evtimer_add(t->timer, &tv);
	}
}

unsigned long tally_pending(const struct tally *t)
{
	return t ? t->count : 0;
}

void tally_free(struct tally *t)
{
	if (!t)
		return;
	if (t->timer) {
		tally_log(t);
		event_free(t->timer);
	}
	free(t->prefix);
	free(t->what);
	free(t);
}
