#include <stdio.h>

#include "log.h"

int main(void)
{
	log_init("strata-master", false, LOG_LVL_INFO);
	fprintf(stderr, "strata-master: not built yet\n");
	return 1;
}
