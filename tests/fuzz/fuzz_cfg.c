/*
 * libFuzzer target for cfg_load(): the bytes become the content of
 * server.xml. They go through a memfd, so the real file path of cfg_load()
 * (size limit, read loop) is exercised without touching the disk.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "cfg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int memfd = -1;
static char memfd_path[64];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cfg c;
	char err[4096];

	if (memfd < 0) {
		memfd = memfd_create("fuzz_cfg", MFD_CLOEXEC);
		if (memfd < 0)
			abort();
		snprintf(memfd_path, sizeof(memfd_path), "/proc/self/fd/%d", memfd);
	}
	if (ftruncate(memfd, 0) < 0)
		abort();
	if (size > 0 && pwrite(memfd, data, size, 0) != (ssize_t)size)
		abort();
	/* Both roles: the role checks run after validation and take other paths. */
	for (int role = CFG_ROLE_MASTER; role <= CFG_ROLE_SLAVE; role++) {
		if (cfg_load(memfd_path, (enum cfg_role)role, &c, err, sizeof(err)) == 0) {
			/* A file that loads must make a struct the daemons can trust. */
			if (c.name[0] == '\0' || c.repl_retry_max < c.repl_retry_min)
				abort();
		}
	}
	return 0;
}
