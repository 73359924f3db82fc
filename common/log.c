#include "log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

/* Written at start-up and by the context setter of the single event loop. */
static struct {
	char ident[32];
	bool use_syslog;
	enum log_level level;
	char context[128];
} logger = { "strata", false, LOG_LVL_INFO, "" };

static const char *const level_names[] = { "error", "warn", "notice", "info", "debug" };
static const int syslog_prio[] = { LOG_ERR, LOG_WARNING, LOG_NOTICE, LOG_INFO, LOG_DEBUG };

void log_init(const char *ident, bool use_syslog, enum log_level level)
{
	snprintf(logger.ident, sizeof(logger.ident), "%s", ident);
	logger.use_syslog = use_syslog;
	logger.level = level;
	if (use_syslog)
		openlog(logger.ident, LOG_PID | LOG_NDELAY, LOG_DAEMON);
}

void log_set_level(enum log_level level) { logger.level = level; }
enum log_level log_get_level(void) { return logger.level; }

int log_level_parse(const char *name, enum log_level *out)
{
	for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
		if (strcmp(name, level_names[i]) == 0) {
			*out = (enum log_level)i;
			return 0;
		}
	}
	return -1;
}

const char *log_level_name(enum log_level level)
{
	if ((unsigned)level >= sizeof(level_names) / sizeof(level_names[0]))
		return "?";
	return level_names[level];
}

void log_set_context(const char *ctx)
{
	snprintf(logger.context, sizeof(logger.context), "%s", ctx ? ctx : "");
}

bool log_enabled(enum log_level level) { return level <= logger.level; }

void log_vemit(enum log_level level, bool with_errno, const char *fmt, va_list ap)
{
	int saved = errno;
	char msg[2048];
	if (!log_enabled(level))
		return;
	int n = vsnprintf(msg, sizeof(msg), fmt, ap);
	if (n < 0)
		n = 0;
	if (with_errno && (size_t)n < sizeof(msg))
		snprintf(msg + n, sizeof(msg) - (size_t)n, ": %s", strerror(saved));
	const char *sep = logger.context[0] ? ": " : "";
	if (logger.use_syslog) {
		syslog(syslog_prio[level], "%s%s%s", logger.context, sep, msg);
	} else {
		struct timespec ts;
		struct tm tm;
		char stamp[32];
		clock_gettime(CLOCK_REALTIME, &ts);
		gmtime_r(&ts.tv_sec, &tm);
		strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
		fprintf(stderr, "%s.%03ldZ %s[%d] %s: %s%s%s\n", stamp, ts.tv_nsec / 1000000,
			logger.ident, (int)getpid(), level_names[level], logger.context, sep, msg);
	}
	errno = saved;
}

void log_emit(enum log_level level, bool with_errno, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_vemit(level, with_errno, fmt, ap);
	va_end(ap);
}

void log_fatal(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_vemit(LOG_LVL_ERROR, true, fmt, ap);
	va_end(ap);
	exit(1);
}

void log_fatalx(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_vemit(LOG_LVL_ERROR, false, fmt, ap);
	va_end(ap);
	exit(1);
}
