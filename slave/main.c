#include <stdio.h>

#include "log.h"

int main(void)
{
	log_init("strata-slave", false, LOG_LVL_INFO);
	fprintf(stderr, "strata-slave: not built yet\n");
	return 1;
}
