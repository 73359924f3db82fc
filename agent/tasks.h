/*
 * tasks: what the agent does for a run_task command. Each task returns its
 * result object (owned by the caller) or NULL with the reason in err.
 */
#ifndef STRATA_AGENT_TASKS_H
#define STRATA_AGENT_TASKS_H

#include <stddef.h>

#include <jansson.h>

/* "uname -sr", or PRETTY_NAME from /etc/os-release when there is one. */
void tasks_os_name(char *out, size_t outlen);

/* {hostname, os, addresses: [non-loopback IPv4/IPv6], agent_version}. */
json_t *tasks_inventory(const char *hostname, char *err, size_t errlen);

/*
 * Walks path without following symbolic links and hashes every regular
 * file (SHA-256). Each file whose hash is in block_sha256 (an array of
 * hex strings, or NULL) is appended to *detections as {path, sha256}
 * (*detections is a new array owned by the caller, also on failure).
 * Result: {files, bytes, detections}.
 */
json_t *tasks_scan(const char *path, json_t *block_sha256, json_t **detections, char *err,
		   size_t errlen);

#endif
