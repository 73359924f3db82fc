#include "cadence.h"

int cadence_jitter(int interval, int jitter_pct, uint32_t r)
{
	int64_t jitter = (int64_t)interval * jitter_pct / 100;
	int64_t delay = interval;
	if (jitter > 0)
		delay += (int64_t)(r % (uint32_t)(2 * jitter + 1)) - jitter;
	return delay < 1 ? 1 : (int)delay;
}

int cadence_backoff(int previous, int retry_min, int retry_max, int interval)
{
	int64_t next = previous > 0 ? (int64_t)previous * 2 : retry_min;
	if (next > retry_max)
		next = retry_max;
	if (next > interval)
		next = interval;
	return next < 1 ? 1 : (int)next;
}
