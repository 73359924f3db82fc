#include <stdio.h>

#include "log.h"

int main(void)
{
	log_init("strata-ctl", false, LOG_LVL_INFO);
	fprintf(stderr, "strata-ctl: not built yet\n");
	return 1;
}
