#include "counts.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KEY_FIELDS 3
#define MAX_COLS   32

enum counter { C_ENDPOINTS, C_EVENTS, C_RESULTS };

/* Which columns make a counter's key, by stream. */
static const struct {
	const char *stream;
	enum counter kind;
	const char *cols[KEY_FIELDS];
} specs[] = {
	{ "endpoints", C_ENDPOINTS, { "status", "policy_version", "policy_target" } },
	{ "events", C_EVENTS, { "occurred_at", "kind", "severity" } },
	{ "task_results", C_RESULTS, { "task_id", "status", "master_task_id" } },
};

/* One counter of the batch: its key fields (NULL for SQL NULL) and rows. */
struct slot {
	char *f[KEY_FIELDS];
	long long n;
	uint64_t hash;
	bool used;
};

struct batch_counts {
	enum counter kind;
	struct slot *slots;
	size_t cap, used;
};

void counts_free(struct batch_counts *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->cap; i++)
		for (int k = 0; k < KEY_FIELDS; k++)
			free(c->slots[i].f[k]);
	free(c->slots);
	free(c);
}

long long counts_rows(const struct batch_counts *c)
{
	long long n = 0;
	for (size_t i = 0; c && i < c->cap; i++)
		n += c->slots[i].used ? c->slots[i].n : 0;
	return n;
}

size_t counts_keys(const struct batch_counts *c)
{
	return c ? c->used : 0;
}

/* The column names of "COPY t (a, b, c) FROM STDIN", in order; their number or -1. */
static int column_list(const char *sql, char names[MAX_COLS][64])
{
	const char *p = strchr(sql, '('), *end = p ? strchr(p, ')') : NULL;
	int n = 0;
	if (!p || !end)
		return -1;
	for (p++; p < end && n < MAX_COLS;) {
		while (p < end && (*p == ' ' || *p == ','))
			p++;
		size_t len = strcspn(p, ", )");
		if (len == 0 || len >= 64)
			return -1;
		memcpy(names[n], p, len);
		names[n++][len] = '\0';
		p += len;
	}
	return n;
}

/* Undoes COPY text escaping; NULL for \N. The result is malloc'd. */
static char *unescape(const char *s, size_t len, bool *oom)
{
	if (len == 2 && s[0] == '\\' && s[1] == 'N')
		return NULL;
	char *out = malloc(len + 1), *o = out;
	if (!out) {
		*oom = true;
		return NULL;
	}
	for (size_t i = 0; i < len; i++) {
		if (s[i] != '\\' || i + 1 == len) {
			*o++ = s[i];
			continue;
		}
		char c = s[++i];
		switch (c) {
		case 'b':
			*o++ = '\b';
			break;
		case 'f':
			*o++ = '\f';
			break;
		case 'n':
			*o++ = '\n';
			break;
		case 'r':
			*o++ = '\r';
			break;
		case 't':
			*o++ = '\t';
			break;
		case 'v':
			*o++ = '\v';
			break;
		case 'x': {
			int v = 0, d = 0;
			while (d < 2 && i + 1 < len && strchr("0123456789abcdefABCDEF", s[i + 1]) &&
			       s[i + 1]) {
				char h = s[++i];
				v = v * 16 + (h <= '9' ? h - '0' : (h | 0x20) - 'a' + 10);
				d++;
			}
			*o++ = d ? (char)v : 'x';
			break;
		}
		default:
			if (c >= '0' && c <= '7') {
				int v = c - '0', d = 1;
				while (d < 3 && i + 1 < len && s[i + 1] >= '0' && s[i + 1] <= '7') {
					v = v * 8 + (s[++i] - '0');
					d++;
				}
				*o++ = (char)v;
			} else {
				*o++ = c;
			}
		}
	}
	*o = '\0';
	return out;
}

static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
	y -= m <= 2;
	const int64_t era = (y >= 0 ? y : y - 399) / 400;
	const unsigned yoe = (unsigned)(y - era * 400);
	const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
	z += 719468;
	const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
	const unsigned doe = (unsigned)(z - era * 146097);
	const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	const unsigned mp = (5 * doy + 2) / 153;
	*d = doy - (153 * mp + 2) / 5 + 1;
	*m = mp < 10 ? mp + 3 : mp - 9;
	*y = (int64_t)yoe + era * 400 + (*m <= 2);
}

/* n digits at s as a number, or -1. */
static int digits(const char *s, int n)
{
	int v = 0;
	for (int i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	return v;
}

int counts_utc_day(const char *ts, size_t len, char day[11])
{
	/* "YYYY-MM-DD HH:MM:SS[.ffffff]{+|-}HH[:MM[:SS]]": the ISO output style. */
	if (len < 22 || ts[4] != '-' || ts[7] != '-' || ts[10] != ' ' || ts[13] != ':' ||
	    ts[16] != ':')
		return -1;
	int y = digits(ts, 4), mo = digits(ts + 5, 2), d = digits(ts + 8, 2);
	int h = digits(ts + 11, 2), mi = digits(ts + 14, 2), s = digits(ts + 17, 2);
	if (y < 1 || mo < 1 || mo > 12 || d < 1 || d > 31 || h < 0 || h > 23 || mi < 0 || mi > 59 ||
	    s < 0 || s > 60)
		return -1;
	size_t i = 19;
	if (i < len && ts[i] == '.') {
		i++;
		while (i < len && ts[i] >= '0' && ts[i] <= '9')
			i++;
	}
	if (i + 3 > len || (ts[i] != '+' && ts[i] != '-'))
		return -1;
	int sign = ts[i] == '-' ? -1 : 1, off = digits(ts + i + 1, 2) * 3600;
	i += 3;
	if (off < 0)
		return -1;
	for (int part = 0; part < 2 && i < len; part++) {
		int v = i + 3 <= len && ts[i] == ':' ? digits(ts + i + 1, 2) : -1;
		if (v < 0)
			return -1;
		off += part == 0 ? v * 60 : v;
		i += 3;
	}
	if (i != len)
		return -1;
	/* Local seconds of the day minus the offset gives UTC. */
	int64_t secs = days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400 + h * 3600 + mi * 60 +
		       s - sign * off;
	int64_t z = secs >= 0 ? secs / 86400 : -((-secs + 86399) / 86400);
	int64_t yy;
	unsigned mm, dd;
	civil_from_days(z, &yy, &mm, &dd);
	if (yy < 1 || yy > 9999)
		return -1;
	snprintf(day, 11, "%04d-%02u-%02u", (int)yy, mm % 100, dd % 100);
	return 0;
}

static uint64_t fnv(const char *s, uint64_t h)
{
	for (; s && *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	return (h ^ (s ? 0x1f : 0x00)) * 1099511628211ULL;
}

static bool same(const char *a, const char *b)
{
	return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static int grow(struct batch_counts *c);

/* Adds one row with key f (taken over); 0 or -1 when out of memory. */
static int add(struct batch_counts *c, char *f[KEY_FIELDS])
{
	if ((c->used + 1) * 2 > c->cap && grow(c) != 0)
		return -1;
	uint64_t h = 1469598103934665603ULL;
	for (int k = 0; k < KEY_FIELDS; k++)
		h = fnv(f[k], h);
	size_t i = (size_t)h & (c->cap - 1);
	while (c->slots[i].used) {
		struct slot *s = &c->slots[i];
		if (s->hash == h && same(s->f[0], f[0]) && same(s->f[1], f[1]) &&
		    same(s->f[2], f[2])) {
			s->n++;
			for (int k = 0; k < KEY_FIELDS; k++)
				free(f[k]);
			return 0;
		}
		i = (i + 1) & (c->cap - 1);
	}
	struct slot *s = &c->slots[i];
	s->used = true;
	s->hash = h;
	s->n = 1;
	for (int k = 0; k < KEY_FIELDS; k++)
		s->f[k] = f[k];
	c->used++;
	return 0;
}

static int grow(struct batch_counts *c)
{
	size_t cap = c->cap ? c->cap * 2 : 64;
	struct slot *old = c->slots;
	size_t oldcap = c->cap;
	c->slots = calloc(cap, sizeof(*c->slots));
	if (!c->slots) {
		c->slots = old;
		return -1;
	}
	c->cap = cap;
	c->used = 0;
	for (size_t i = 0; i < oldcap; i++) {
		if (!old[i].used)
			continue;
		size_t j = (size_t)old[i].hash & (cap - 1);
		while (c->slots[j].used)
			j = (j + 1) & (cap - 1);
		c->slots[j] = old[i];
		c->used++;
	}
	free(old);
	return 0;
}

/*
 * Turns a row's key columns into its counter's key, in place: endpoints
 * (status, "t"/"f" whether policy_version = policy_target), events (UTC
 * day, kind, severity), results as they are. -1 when a column that
 * cannot be NULL is, or the time cannot be read, or out of memory.
 */
static int key_of(enum counter kind, char *f[KEY_FIELDS])
{
	switch (kind) {
	case C_ENDPOINTS: {
		if (!f[0] || !f[1] || !f[2])
			return -1;
		bool compliant = strcmp(f[1], f[2]) == 0;
		free(f[1]);
		free(f[2]);
		f[2] = NULL;
		f[1] = strdup(compliant ? "t" : "f");
		return f[1] ? 0 : -1;
	}
	case C_EVENTS: {
		char day[11];
		if (!f[0] || !f[1] || !f[2] || counts_utc_day(f[0], strlen(f[0]), day) != 0)
			return -1;
		free(f[0]);
		f[0] = strdup(day);
		return f[0] ? 0 : -1;
	}
	case C_RESULTS:
		return f[0] && f[1] ? 0 : -1;
	}
	return -1;
}

enum counts_status counts_parse(const struct stream_def *sd, const char *copy, size_t len,
				struct batch_counts **out)
{
	char names[MAX_COLS][64];
	int col[KEY_FIELDS], ncols;
	size_t si = 0;
	*out = NULL;
	while (si < sizeof(specs) / sizeof(specs[0]) && strcmp(specs[si].stream, sd->name) != 0)
		si++;
	if (si == sizeof(specs) / sizeof(specs[0]) || !sd->master_direct)
		return COUNTS_NONE;
	if ((ncols = column_list(sd->master_direct, names)) < 0)
		return COUNTS_UNREADABLE;
	for (int k = 0; k < KEY_FIELDS; k++) {
		col[k] = -1;
		for (int j = 0; j < ncols; j++)
			if (strcmp(names[j], specs[si].cols[k]) == 0)
				col[k] = j;
		if (col[k] < 0)
			return COUNTS_UNREADABLE;
	}
	struct batch_counts *c = calloc(1, sizeof(*c));
	if (!c || grow(c) != 0) {
		counts_free(c);
		return COUNTS_UNREADABLE;
	}
	c->kind = specs[si].kind;
	const char *p = copy, *end = copy + len;
	while (p < end) {
		const char *eol = memchr(p, '\n', (size_t)(end - p));
		if (!eol)
			eol = end;
		const char *fs[MAX_COLS];
		size_t fl[MAX_COLS];
		int nf = 0;
		for (const char *q = p; nf < MAX_COLS;) {
			const char *tab = memchr(q, '\t', (size_t)(eol - q));
			fs[nf] = q;
			fl[nf++] = (size_t)((tab ? tab : eol) - q);
			if (!tab)
				break;
			q = tab + 1;
		}
		if (nf != ncols)
			goto unreadable;
		char *f[KEY_FIELDS] = { NULL, NULL, NULL };
		bool oom = false;
		for (int k = 0; k < KEY_FIELDS; k++)
			f[k] = unescape(fs[col[k]], fl[col[k]], &oom);
		if (oom || key_of(c->kind, f) != 0 || add(c, f) != 0) {
			for (int k = 0; k < KEY_FIELDS; k++)
				free(f[k]);
			goto unreadable;
		}
		p = eol + 1;
	}
	*out = c;
	return COUNTS_OK;
unreadable:
	counts_free(c);
	return COUNTS_UNREADABLE;
}

/* Appends v to a PostgreSQL array literal being built in buf ("{" so far
 * for the first one); NULL as NULL. 0, or -1 when out of memory. */
static int array_add(char **buf, size_t *len, size_t *cap, const char *v)
{
	/* Each byte escaped at worst, quotes, comma, and room for "}" + NUL. */
	size_t need = *len + (v ? 2 * strlen(v) + 2 : 4) + 1 + 2;
	if (need > *cap) {
		size_t cap2 = need * 2;
		char *b = realloc(*buf, cap2);
		if (!b)
			return -1;
		*buf = b;
		*cap = cap2;
	}
	char *o = *buf + *len;
	if (*len > 1)
		*o++ = ',';
	if (!v) {
		memcpy(o, "NULL", 4);
		o += 4;
	} else {
		*o++ = '"';
		for (; *v; v++) {
			if (*v == '"' || *v == '\\')
				*o++ = '\\';
			*o++ = *v;
		}
		*o++ = '"';
	}
	*len = (size_t)(o - *buf);
	return 0;
}

int counts_apply(struct db *db, int slave_id, const struct batch_counts *c, char *err,
		 size_t errlen)
{
	static const char *const sql[] = {
		[C_ENDPOINTS] = "INSERT INTO endpoint_counts AS c (slave_id, status, compliant, n) "
				"SELECT $1::int, a, b::boolean, n FROM unnest($2::text[], "
				"$3::text[], $4::text[], $5::bigint[]) AS u(a, b, x, n) "
				"ON CONFLICT (slave_id, status, compliant) DO UPDATE "
				"SET n = c.n + EXCLUDED.n",
		[C_EVENTS] = "INSERT INTO event_counts AS c (slave_id, day, kind, severity, n) "
			     "SELECT $1::int, a::date, b, x, n FROM unnest($2::text[], $3::text[], "
			     "$4::text[], $5::bigint[]) AS u(a, b, x, n) "
			     "ON CONFLICT (day, kind, severity, slave_id) DO UPDATE "
			     "SET n = c.n + EXCLUDED.n",
		[C_RESULTS] =
		    "INSERT INTO task_result_counts AS c (slave_id, task_id, status, "
		    "master_task_id, n) SELECT $1::int, a::bigint, b, x::bigint, n "
		    "FROM unnest($2::text[], $3::text[], $4::text[], $5::bigint[]) "
		    "AS u(a, b, x, n) ON CONFLICT (slave_id, task_id, status) DO UPDATE "
		    "SET n = c.n + EXCLUDED.n, "
		    "master_task_id = coalesce(EXCLUDED.master_task_id, c.master_task_id)",
	};
	if (!c || c->used == 0)
		return 0;
	char *a[4] = { NULL, NULL, NULL, NULL };
	size_t len[4] = { 1, 1, 1, 1 }, cap[4] = { 0, 0, 0, 0 };
	int rc = -1;
	for (int k = 0; k < 4; k++) {
		a[k] = malloc(64);
		if (!a[k])
			goto out;
		cap[k] = 64;
		a[k][0] = '{';
	}
	for (size_t i = 0; i < c->cap; i++) {
		const struct slot *s = &c->slots[i];
		char n[24];
		if (!s->used)
			continue;
		snprintf(n, sizeof(n), "%lld", s->n);
		for (int k = 0; k < KEY_FIELDS; k++)
			if (array_add(&a[k], &len[k], &cap[k], s->f[k]) != 0)
				goto out;
		if (array_add(&a[3], &len[3], &cap[3], n) != 0)
			goto out;
	}
	for (int k = 0; k < 4; k++) {
		a[k][len[k]] = '}';
		a[k][len[k] + 1] = '\0';
	}
	char sid[16];
	snprintf(sid, sizeof(sid), "%d", slave_id);
	const char *p[] = { sid, a[0], a[1], a[2], a[3] };
	rc = db_exec(db, sql[c->kind], 5, p, err, errlen);
out:
	if (rc != 0 && !a[3])
		snprintf(err, errlen, "out of memory counting a batch");
	for (int k = 0; k < 4; k++)
		free(a[k]);
	return rc;
}

int counts_partition_copy(const struct stream_def *sd, int slave_id, char *out, size_t outlen)
{
	const char *sql = sd->master_direct;
	if (!sql || strncmp(sql, "COPY ", 5) != 0)
		return -1;
	size_t tlen = strcspn(sql + 5, " (");
	int n =
	    snprintf(out, outlen, "COPY %.*s_s%d%s", (int)tlen, sql + 5, slave_id, sql + 5 + tlen);
	return n < 0 || (size_t)n >= outlen ? -1 : 0;
}
