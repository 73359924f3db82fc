/*
 * cadence: when a slave syncs next. Pure functions, so the schedule is
 * tested without clocks or daemons.
 */
#ifndef STRATA_CADENCE_H
#define STRATA_CADENCE_H

#include <stdint.h>

/*
 * The interval with jitter: uniformly within interval +/- jitter_pct
 * percent, driven by the random value r; never below 1 s. Spreading the
 * slaves' sessions keeps them from arriving at the master together.
 */
int cadence_jitter(int interval, int jitter_pct, uint32_t r);

/*
 * The delay before retrying after a failed session, given the previous
 * delay (0 after a success): retry_min first, then doubling, capped at
 * retry_max and at the interval itself.
 */
int cadence_backoff(int previous, int retry_min, int retry_max, int interval);

#endif
