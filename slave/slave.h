/* The slave daemon's context, passed to every slave module. */
#ifndef STRATA_SLAVE_H
#define STRATA_SLAVE_H

#include "daemon.h"

struct link;

struct slave {
	struct daemon d;
	struct link *link; /* the connection to the master */
};

#endif
