/*
 * clk: the two clocks the daemons read. Monotonic milliseconds for
 * intervals and rate windows (never jumps with the wall clock), and wall
 * time in epoch seconds for what is stored (last_seen).
 */
#ifndef STRATA_CLK_H
#define STRATA_CLK_H

#include <stdint.h>

int64_t clk_mono_ms(void);
double clk_epoch(void);

#endif
