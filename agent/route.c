#include "route.h"

#include "cadence.h"

enum aroute_target aroute_target(const struct aroute *r)
{
	return r->assigned && !r->fallback ? AROUTE_ASSIGNED : AROUTE_ORIGIN;
}

enum aroute_redirect aroute_redirected(struct aroute *r)
{
	if (r->redirects >= AROUTE_REDIRECTS_MAX) {
		r->redirects = 0;
		return AROUTE_LOOP;
	}
	r->redirects++;
	r->assigned = true;
	r->fallback = false;
	return AROUTE_FOLLOW;
}

void aroute_failed(struct aroute *r, enum aroute_target target)
{
	r->redirects = 0;
	/* Alternate: a dead push server sends the agent to the slave to be routed
	 * again; an unreachable slave sends it back to the push server it had. */
	r->fallback = target == AROUTE_ASSIGNED;
}

bool aroute_authed(struct aroute *r, enum aroute_target target)
{
	bool stale = target == AROUTE_ORIGIN && r->assigned;
	r->redirects = 0;
	r->fallback = false;
	if (stale)
		r->assigned = false;
	return stale;
}

int aroute_retry_delay(int previous, int retry_max, int cap, uint32_t rnd)
{
	if (previous > 0)
		return cadence_backoff(previous, AROUTE_FIRST_RETRY_MIN, retry_max, cap);
	int d = AROUTE_FIRST_RETRY_MIN +
		(int)(rnd % (uint32_t)(AROUTE_FIRST_RETRY_MAX - AROUTE_FIRST_RETRY_MIN + 1));
	if (d > cap)
		d = cap;
	return d < 1 ? 1 : d;
}
