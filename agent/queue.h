/*
 * aqueue: the durable queue of A_EVENT and A_RESULT messages that the
 * server has not acknowledged yet.
 *
 * queue.jsonl in the state directory holds one line per pending message,
 * {"type": 112, "msg": {...}}, in seq order. Enqueueing appends a line and
 * fsyncs before it returns, so a message the agent has produced survives
 * a crash or a power cut. An acknowledgement removes the message from
 * memory and rewrites the file atomically (tmp + rename); acks are few
 * compared with a scan's cost, and a rewrite keeps the file free of
 * tombstones. A torn last line (a crash during an append) is dropped
 * with a warning when the queue is opened. The queue owns its messages.
 */
#ifndef STRATA_AGENT_QUEUE_H
#define STRATA_AGENT_QUEUE_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

struct aqueue;

/* Opens (or creates) dir/queue.jsonl and loads what is pending. */
struct aqueue *aqueue_open(const char *dir, char *err, size_t errlen);
void aqueue_free(struct aqueue *q);

/* Appends msg (which must carry an integer "seq" above every queued one). Takes no
 * reference of its own beyond one json_incref. */
__attribute__((warn_unused_result)) int aqueue_push(struct aqueue *q, uint16_t type, json_t *msg,
						    char *err, size_t errlen);
/* Removes the message of this type and seq; 1 when removed, 0 when unknown, -1 on error. */
int aqueue_ack(struct aqueue *q, uint16_t type, int64_t seq, char *err, size_t errlen);

size_t aqueue_count(const struct aqueue *q);
/* The i-th pending message in seq order (borrowed reference). */
json_t *aqueue_get(const struct aqueue *q, size_t i, uint16_t *type);

#endif
