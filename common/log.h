/*
 * log: the one logging API of every Strata binary.
 *
 * Levels from error to debug; a message below the current level is not
 * formatted at all. Output goes to stderr (with a timestamp) or syslog.
 * A context prefix (the slave name, a connection id) set with
 * log_set_context() is put in front of every line until cleared.
 * log_warn() appends strerror(errno); log_warnx() does not. log_fatal()
 * and log_fatalx() log and exit(1).
 */
#ifndef STRATA_LOG_H
#define STRATA_LOG_H

#include <stdbool.h>
#include <stdarg.h>

enum log_level {
	LOG_LVL_ERROR = 0,
	LOG_LVL_WARN,
	LOG_LVL_NOTICE,
	LOG_LVL_INFO,
	LOG_LVL_DEBUG,
};

#define LOG_PRINTF(a, b) __attribute__((format(printf, a, b)))

void log_init(const char *ident, bool use_syslog, enum log_level level);
void log_set_level(enum log_level level);
enum log_level log_get_level(void);
/* Parses "error", "warn", "notice", "info", "debug"; returns 0 or -1. */
int log_level_parse(const char *name, enum log_level *out);
const char *log_level_name(enum log_level level);
/* Context prefix for later lines; NULL clears it. The string is copied. */
void log_set_context(const char *ctx);

bool log_enabled(enum log_level level);
void log_emit(enum log_level level, bool with_errno, const char *fmt, ...) LOG_PRINTF(3, 4);
void log_vemit(enum log_level level, bool with_errno, const char *fmt, va_list ap)
	LOG_PRINTF(3, 0);

#define log_error(...) log_emit(LOG_LVL_ERROR, false, __VA_ARGS__)
#define log_warn(...) log_emit(LOG_LVL_WARN, true, __VA_ARGS__)
#define log_warnx(...) log_emit(LOG_LVL_WARN, false, __VA_ARGS__)
#define log_notice(...)                                                        \
	do {                                                                   \
		if (log_enabled(LOG_LVL_NOTICE))                               \
			log_emit(LOG_LVL_NOTICE, false, __VA_ARGS__);          \
	} while (0)
#define log_info(...)                                                          \
	do {                                                                   \
		if (log_enabled(LOG_LVL_INFO))                                 \
			log_emit(LOG_LVL_INFO, false, __VA_ARGS__);            \
	} while (0)
#define log_debug(...)                                                         \
	do {                                                                   \
		if (log_enabled(LOG_LVL_DEBUG))                                \
			log_emit(LOG_LVL_DEBUG, false, __VA_ARGS__);           \
	} while (0)

__attribute__((noreturn)) void log_fatal(const char *fmt, ...) LOG_PRINTF(1, 2);
__attribute__((noreturn)) void log_fatalx(const char *fmt, ...) LOG_PRINTF(1, 2);

#endif
