/*
 * faultpoint: named places where a test may have the process killed.
 *
 * A test hook, inert unless the environment variable STRATA_FAULTPOINT
 * is set when the daemon starts: STRATA_FAULTPOINT=name[:n] makes the
 * n-th pass (default 1) through the point called name raise SIGKILL on
 * the process, after one line on stderr that names the point. The
 * variable is read once, by faultpoint_init(); when it is unset, a point
 * costs one test of a read-only flag. Every point name is listed in
 * faultpoint.c (and in docs/ARCHITECTURE.md); an unknown name in the
 * variable stops the daemon at start.
 */
#ifndef STRATA_FAULTPOINT_H
#define STRATA_FAULTPOINT_H

#include <stdbool.h>
#include <stddef.h>

/* True once faultpoint_init() has found STRATA_FAULTPOINT set; read-only after. */
extern bool faultpoint_armed;

/*
 * Reads STRATA_FAULTPOINT. Returns 0 (armed or not), or -1 with a message
 * in err when the variable is malformed or names no known point.
 */
int faultpoint_init(char *err, size_t errlen) __attribute__((warn_unused_result));

/* Counts a pass through the point; true when this is the pass that must kill. */
bool faultpoint_due(const char *name);
/* Says which point fired on stderr and raises SIGKILL; does not return. */
__attribute__((noreturn)) void faultpoint_kill(const char *name);

/* Kills the process here when STRATA_FAULTPOINT names this point and its pass has come. */
#define FAULTPOINT(name)                                                                           \
	do {                                                                                       \
		if (faultpoint_armed && faultpoint_due(name))                                      \
			faultpoint_kill(name);                                                     \
	} while (0)

/* The known point names, NULL-terminated (for tests and messages). */
extern const char *const faultpoint_names[];

#endif
