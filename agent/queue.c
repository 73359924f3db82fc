#include "queue.h"

#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "state.h"

struct aqueue_item {
	uint16_t type;
	int64_t seq;
	json_t *msg;
};

struct aqueue {
	char path[4096];
	struct aqueue_item *items;
	size_t n, cap;
};

static int grow(struct aqueue *q)
{
	if (q->n < q->cap)
		return 0;
	size_t cap = q->cap ? q->cap * 2 : 16;
	struct aqueue_item *it = realloc(q->items, cap * sizeof(*it));
	if (!it)
		return -1;
	q->items = it;
	q->cap = cap;
	return 0;
}

static json_t *line_json(uint16_t type, json_t *msg)
{
	return json_pack("{s:i, s:O}", "type", (int)type, "msg", msg);
}

/* Rewrites the whole file from memory. */
static int rewrite(struct aqueue *q, char *err, size_t errlen)
{
	size_t cap = 4096, len = 0;
	char *buf = malloc(cap);
	if (!buf)
		goto oom;
	for (size_t i = 0; i < q->n; i++) {
		json_t *l = line_json(q->items[i].type, q->items[i].msg);
		char *s = l ? json_dumps(l, JSON_COMPACT) : NULL;
		json_decref(l);
		if (!s)
			goto oom;
		size_t sl = strlen(s);
		if (len + sl + 1 > cap) {
			while (len + sl + 1 > cap)
				cap *= 2;
			char *nb = realloc(buf, cap);
			if (!nb) {
				free(s);
				goto oom;
			}
			buf = nb;
		}
		memcpy(buf + len, s, sl);
		buf[len + sl] = '\n';
		len += sl + 1;
		free(s);
	}
	int rc = astate_write_atomic(q->path, buf, len, 0600, err, errlen);
	free(buf);
	return rc;
oom:
	free(buf);
	snprintf(err, errlen, "%s: out of memory", q->path);
	return -1;
}

static int add_item(struct aqueue *q, uint16_t type, json_t *msg)
{
	json_t *seq = json_object_get(msg, "seq");
	if (!json_is_integer(seq) || grow(q) != 0)
		return -1;
	q->items[q->n].type = type;
	q->items[q->n].seq = (int64_t)json_integer_value(seq);
	q->items[q->n].msg = json_incref(msg);
	q->n++;
	return 0;
}

/* One line of the file; -1 when it is not a queued message. */
static int load_line(struct aqueue *q, const char *line)
{
	json_error_t e;
	int type;
	json_t *msg;
	json_t *o = json_loads(line, JSON_REJECT_DUPLICATES, &e);
	if (!o)
		return -1;
	int rc = -1;
	if (json_unpack(o, "{s:i, s:o}", "type", &type, "msg", &msg) == 0 && type > 0 &&
	    type < 65536 && json_is_object(msg))
		rc = add_item(q, (uint16_t)type, msg);
	json_decref(o);
	return rc;
}

static int load(struct aqueue *q, char *err, size_t errlen)
{
	FILE *f = fopen(q->path, "re");
	if (!f) {
		if (errno == ENOENT)
			return 0;
		snprintf(err, errlen, "%s: %s", q->path, strerror(errno));
		return -1;
	}
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	int lineno = 0;
	bool dropped = false;
	while ((n = getline(&line, &cap, f)) > 0) {
		lineno++;
		bool complete = line[n - 1] == '\n';
		if (complete)
			line[n - 1] = '\0';
		/* Only an append can be cut short, so only the last line may be torn. */
		if (!complete || load_line(q, line) != 0) {
			log_warnx("queue: %s line %d is %s; dropped", q->path, lineno,
				  complete ? "not a queued message" : "torn (incomplete write)");
			dropped = true;
		}
	}
	free(line);
	fclose(f);
	for (size_t i = 1; i < q->n; i++)
		if (q->items[i].seq <= q->items[i - 1].seq)
			log_warnx("queue: %s is out of seq order at seq %lld", q->path,
				  (long long)q->items[i].seq);
	/* Rewrite so the next append does not land after a torn fragment. */
	return dropped ? rewrite(q, err, errlen) : 0;
}

struct aqueue *aqueue_open(const char *dir, char *err, size_t errlen)
{
	struct aqueue *q = calloc(1, sizeof(*q));
	if (!q) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	if (astate_path(dir, "queue.jsonl", q->path, sizeof(q->path)) != 0) {
		snprintf(err, errlen, "%s: path too long", dir);
		free(q);
		return NULL;
	}
	if (load(q, err, errlen) != 0) {
		aqueue_free(q);
		return NULL;
	}
	return q;
}

void aqueue_free(struct aqueue *q)
{
	if (!q)
		return;
	for (size_t i = 0; i < q->n; i++)
		json_decref(q->items[i].msg);
	free(q->items);
	free(q);
}

int aqueue_push(struct aqueue *q, uint16_t type, json_t *msg, char *err, size_t errlen)
{
	json_t *seq = json_object_get(msg, "seq");
	if (!json_is_integer(seq) || (q->n && json_integer_value(seq) <= q->items[q->n - 1].seq)) {
		snprintf(err, errlen, "queue: a message needs a seq above the last queued one");
		return -1;
	}
	json_t *l = line_json(type, msg);
	char *s = l ? json_dumps(l, JSON_COMPACT) : NULL;
	json_decref(l);
	if (!s) {
		snprintf(err, errlen, "queue: out of memory");
		return -1;
	}
	size_t len = strlen(s);
	s[len] = '\n';
	int fd = open(q->path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	int rc = -1;
	off_t end = fd >= 0 ? lseek(fd, 0, SEEK_END) : -1;
	if (end >= 0 && write(fd, s, len + 1) == (ssize_t)(len + 1) && fsync(fd) == 0)
		rc = 0;
	if (rc != 0) {
		snprintf(err, errlen, "%s: %s", q->path, strerror(errno));
		/* A partial line would swallow the next append when the file is read back. */
		if (end >= 0 && ftruncate(fd, end) != 0)
			log_warn("queue: %s", q->path);
	}
	if (fd >= 0)
		close(fd);
	free(s);
	if (rc == 0 && add_item(q, type, msg) != 0) {
		snprintf(err, errlen, "queue: out of memory");
		rc = -1;
	}
	return rc;
}

int aqueue_ack(struct aqueue *q, uint16_t type, int64_t seq, char *err, size_t errlen)
{
	for (size_t i = 0; i < q->n; i++) {
		if (q->items[i].type != type || q->items[i].seq != seq)
			continue;
		json_decref(q->items[i].msg);
		memmove(&q->items[i], &q->items[i + 1], (q->n - i - 1) * sizeof(q->items[0]));
		q->n--;
		return rewrite(q, err, errlen) == 0 ? 1 : -1;
	}
	return 0;
}

size_t aqueue_count(const struct aqueue *q)
{
	return q->n;
}

json_t *aqueue_get(const struct aqueue *q, size_t i, uint16_t *type)
{
	if (i >= q->n)
		return NULL;
	if (type)
		*type = q->items[i].type;
	return q->items[i].msg;
}
