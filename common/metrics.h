/*
 * metrics: the Prometheus text exposition format, version 0.0.4, built in
 * an evbuffer. Each family is announced once with metrics_family() (its
 * HELP and TYPE lines), then its samples follow with metrics_sample().
 * Label values are escaped (backslash, double quote, newline), HELP text
 * too (backslash, newline); values are printed as integers when they are
 * whole numbers, NaN and infinities as the format spells them.
 */
#ifndef STRATA_METRICS_H
#define STRATA_METRICS_H

#include <event2/buffer.h>

enum metrics_type { METRICS_COUNTER, METRICS_GAUGE };

/* "# HELP name help" and "# TYPE name counter|gauge". */
void metrics_family(struct evbuffer *out, const char *name, enum metrics_type type,
		    const char *help);

/*
 * One sample line: name{k1="v1",...} value. The labels are name/value
 * pairs after value, ended by NULL; a NULL value is rendered as "".
 */
void metrics_sample(struct evbuffer *out, const char *name, double value, ...)
    __attribute__((sentinel));

/* Appends s to out with the escapes of a label value (quote = 1) or HELP text. */
void metrics_escape(struct evbuffer *out, const char *s, int quote);

#endif
