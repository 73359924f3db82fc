#include "metrics.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>

void metrics_escape(struct evbuffer *out, const char *s, int quote)
{
	for (const char *p = s; *p; p++) {
		if (*p == '\\')
			evbuffer_add(out, "\\\\", 2);
		else if (*p == '\n')
			evbuffer_add(out, "\\n", 2);
		else if (*p == '"' && quote)
			evbuffer_add(out, "\\\"", 2);
		else
			evbuffer_add(out, p, 1);
	}
}

void metrics_family(struct evbuffer *out, const char *name, enum metrics_type type,
		    const char *help)
{
	evbuffer_add_printf(out, "# HELP %s ", name);
	metrics_escape(out, help, 0);
	evbuffer_add_printf(out, "\n# TYPE %s %s\n", name,
			    type == METRICS_COUNTER ? "counter" : "gauge");
}

static void metrics_value(struct evbuffer *out, double v)
{
	if (isnan(v))
		evbuffer_add_printf(out, "NaN");
	else if (isinf(v))
		evbuffer_add_printf(out, "%s", v > 0 ? "+Inf" : "-Inf");
	else if (v == floor(v) && fabs(v) < 9007199254740992.0)
		evbuffer_add_printf(out, "%.0f", v);
	else
		evbuffer_add_printf(out, "%.17g", v);
}

void metrics_sample(struct evbuffer *out, const char *name, double value, ...)
{
	va_list ap;
	const char *key;
	int n = 0;

	evbuffer_add_printf(out, "%s", name);
	va_start(ap, value);
	while ((key = va_arg(ap, const char *)) != NULL) {
		const char *val = va_arg(ap, const char *);
		evbuffer_add_printf(out, "%s%s=\"", n++ ? "," : "{", key);
		metrics_escape(out, val ? val : "", 1);
		evbuffer_add(out, "\"", 1);
	}
	va_end(ap);
	if (n)
		evbuffer_add(out, "}", 1);
	evbuffer_add(out, " ", 1);
	metrics_value(out, value);
	evbuffer_add(out, "\n", 1);
}
