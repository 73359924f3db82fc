/*
 * astate: the agent's state directory.
 *
 * STATE_DIR (0700) holds the identity made at enrolment (agent.key 0600,
 * agent.json {agent_id, host, port, mode, hostname}, ca.crt: the slave's
 * agent CA), the last policy received (policy.json {version, settings}),
 * the sequence counter of events and results (seq), the durable queue
 * (queue.jsonl, see queue.h) and the push server the slave assigned with
 * A_REDIRECT (push.json {host, port}; agent.json keeps the enrolment's
 * host and port, the origin the agent falls back to). Every file is replaced atomically (written
 * to a temporary name, fsync'd, renamed), so a crash leaves the old or
 * the new content, never a mix.
 */
#ifndef STRATA_AGENT_STATE_H
#define STRATA_AGENT_STATE_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#define ASTATE_WUR __attribute__((warn_unused_result))

struct astate_identity {
	char agent_id[65];
	char host[256];
	int port;
	char mode[8]; /* "push" or "poll" */
	char hostname[254];
};

/* "dir/name" into out; -1 when it does not fit. */
ASTATE_WUR int astate_path(const char *dir, const char *name, char *out, size_t outlen);
/* Creates dir with mode 0700 when missing; refuses one accessible by others. */
ASTATE_WUR int astate_prepare_dir(const char *dir, char *err, size_t errlen);
/* true when an identity (agent.key or agent.json) exists in dir. */
int astate_enrolled(const char *dir);
/* Writes data to path through a temporary file, fsync and rename. */
ASTATE_WUR int astate_write_atomic(const char *path, const char *data, size_t len, int mode,
				   char *err, size_t errlen);

/* Saves key, agent.json and ca.crt (ca_pem as received). */
ASTATE_WUR int astate_save_identity(const char *dir, const struct astate_identity *id,
				    EVP_PKEY *key, const char *ca_pem, char *err, size_t errlen);
/* Loads all three; the caller frees *key and *ca. A key readable by others is refused. */
ASTATE_WUR int astate_load_identity(const char *dir, struct astate_identity *id, EVP_PKEY **key,
				    X509 **ca, char *err, size_t errlen);

/* policy.json: {version, settings}. Load returns NULL when none was stored yet. */
ASTATE_WUR int astate_save_policy(const char *dir, int64_t version, json_t *settings, char *err,
				  size_t errlen);
json_t *astate_load_policy(const char *dir);
/* The stored policy's version, -1 when there is none. */
int64_t astate_policy_version(const char *dir);

/*
 * push.json: the assigned push server. Load: 1 with host and port, 0 when
 * none is stored, -1 with err when the file is unreadable or invalid.
 * Forget removes it (none stored is fine).
 */
ASTATE_WUR int astate_save_push(const char *dir, const char *host, int port, char *err,
				size_t errlen);
ASTATE_WUR int astate_load_push(const char *dir, char *host, size_t hostlen, int *port, char *err,
				size_t errlen);
ASTATE_WUR int astate_forget_push(const char *dir, char *err, size_t errlen);

/* Takes the next sequence number (1, 2, ...) and stores it before returning. */
ASTATE_WUR int astate_next_seq(const char *dir, int64_t *seq, char *err, size_t errlen);

/*
 * tasks.done: the ids of the last ASTATE_TASKS_KEPT run_task commands the
 * agent ran. A command is sent again until the server has recorded its
 * acknowledgement, which a server crash may lose; one found here is only
 * acknowledged, so its task runs and reports once.
 */
#define ASTATE_TASKS_KEPT 1024
/* 1 when the command is recorded, 0 when not (or the file is unreadable). */
int astate_task_ran(const char *dir, int64_t command_id);
ASTATE_WUR int astate_task_record(const char *dir, int64_t command_id, char *err, size_t errlen);

#endif
