#include "render.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* A validated {"columns": [...], "rows": [[...]]} pair. */
struct render_table {
	const json_t *columns;
	const json_t *rows;
	size_t ncolumns;
};

static bool table_from(const json_t *obj, struct render_table *t)
{
	t->ncolumns = 0;
	t->columns = json_object_get(obj, "columns");
	t->rows = json_object_get(obj, "rows");
	if (!json_is_array(t->columns) || !json_is_array(t->rows))
		return false;
	t->ncolumns = json_array_size(t->columns);
	for (size_t i = 0; i < t->ncolumns; i++) {
		if (!json_is_string(json_array_get(t->columns, i)))
			return false;
	}
	size_t r;
	const json_t *row;
	json_array_foreach (t->rows, r, row) {
		if (!json_is_array(row) || json_array_size(row) != t->ncolumns)
			return false;
	}
	return t->ncolumns > 0;
}

/* True when obj has no key outside the NULL-terminated allowed list. */
static bool only_keys(const json_t *obj, const char *const *allowed)
{
	const char *key;
	const json_t *v;
	json_object_foreach ((json_t *)obj, key, v) {
		bool ok = false;
		for (size_t i = 0; allowed[i]; i++)
			ok = ok || strcmp(key, allowed[i]) == 0;
		if (!ok)
			return false;
	}
	return true;
}

static bool is_table(const json_t *result, struct render_table *t)
{
	static const char *const keys[] = { "columns", "rows", NULL };
	return json_is_object(result) && only_keys(result, keys) && table_from(result, t);
}

static bool is_message(const json_t *result)
{
	return json_is_object(result) && json_object_size(result) == 1 &&
	       json_is_string(json_object_get(result, "message"));
}

/* Fields, and the table that follows them when has_table is set. */
static bool is_fields(const json_t *result, struct render_table *t, bool *has_table)
{
	static const char *const keys[] = { "fields", "columns", "rows", NULL };
	if (!json_is_object(result) || !json_is_object(json_object_get(result, "fields")) ||
	    !only_keys(result, keys))
		return false;
	*has_table = json_object_get(result, "columns") || json_object_get(result, "rows");
	return !*has_table || table_from(result, t);
}

static bool is_sections(const json_t *result)
{
	static const char *const keys[] = { "sections", NULL };
	static const char *const section_keys[] = { "title", "columns", "rows", NULL };
	const json_t *sections = json_object_get(result, "sections");
	if (!json_is_object(result) || !only_keys(result, keys) || !json_is_array(sections))
		return false;
	size_t i;
	const json_t *s;
	struct render_table t;
	json_array_foreach (sections, i, s) {
		if (!json_is_object(s) || !only_keys(s, section_keys) ||
		    !json_is_string(json_object_get(s, "title")) || !table_from(s, &t))
			return false;
	}
	return true;
}

/*
 * The text of one cell; the caller frees it. text_mode shows null as "-"
 * and booleans as yes/no for people; CSV keeps null empty and booleans
 * as true/false for programs.
 */
static char *cell_text(const json_t *v, bool text_mode)
{
	switch (json_typeof(v)) {
	case JSON_STRING:
		return strdup(json_string_value(v));
	case JSON_NULL:
		return strdup(text_mode ? "-" : "");
	case JSON_TRUE:
		return strdup(text_mode ? "yes" : "true");
	case JSON_FALSE:
		return strdup(text_mode ? "no" : "false");
	default:
		/* 15 digits: 0.1 reads as 0.1; --json keeps the exact value. */
		return json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(15));
	}
}

/* Columns are measured in characters, not bytes, so UTF-8 names line up. */
static size_t display_width(const char *s)
{
	size_t n = 0;
	for (; *s; s++) {
		if (((unsigned char)*s & 0xC0) != 0x80)
			n++;
	}
	return n;
}

/* A control character would break the table's lines; it is shown as a space. */
static void put_text(FILE *out, const char *s)
{
	for (; *s; s++)
		fputc((unsigned char)*s < 0x20 || *s == 0x7f ? ' ' : *s, out);
}

static void put_padded(FILE *out, const char *s, size_t width, bool right, bool last)
{
	size_t pad = width - display_width(s);
	if (right)
		fprintf(out, "%*s", (int)pad, "");
	put_text(out, s);
	if (!right && !last)
		fprintf(out, "%*s", (int)pad, "");
}

static void text_table(FILE *out, const struct render_table *t)
{
	size_t nrows = json_array_size(t->rows);
	size_t *width = calloc(t->ncolumns, sizeof(*width));
	bool *right = calloc(t->ncolumns, sizeof(*right));
	char **cells = calloc((nrows + 1) * t->ncolumns, sizeof(*cells));
	if (!width || !right || !cells)
		goto out;

	for (size_t c = 0; c < t->ncolumns; c++) {
		cells[c] = strdup(json_string_value(json_array_get(t->columns, c)));
		bool numbers = false, others = false;
		for (size_t r = 0; r < nrows; r++) {
			const json_t *v = json_array_get(json_array_get(t->rows, r), c);
			cells[(r + 1) * t->ncolumns + c] = cell_text(v, true);
			if (json_is_number(v))
				numbers = true;
			else if (!json_is_null(v))
				others = true;
		}
		right[c] = numbers && !others;
	}
	for (size_t i = 0; i < (nrows + 1) * t->ncolumns; i++) {
		if (!cells[i])
			goto out;
		size_t w = display_width(cells[i]);
		if (w > width[i % t->ncolumns])
			width[i % t->ncolumns] = w;
	}
	for (size_t r = 0; r <= nrows; r++) {
		for (size_t c = 0; c < t->ncolumns; c++) {
			if (c > 0)
				fputs("  ", out);
			put_padded(out, cells[r * t->ncolumns + c], width[c], right[c],
				   c + 1 == t->ncolumns);
		}
		fputc('\n', out);
	}
out:
	if (cells) {
		for (size_t i = 0; i < (nrows + 1) * t->ncolumns; i++)
			free(cells[i]);
	}
	free(cells);
	free(right);
	free(width);
}

void render_csv_field(FILE *out, const char *text)
{
	if (strpbrk(text, ",\"\r\n") == NULL) {
		fputs(text, out);
		return;
	}
	fputc('"', out);
	for (const char *p = text; *p; p++) {
		if (*p == '"')
			fputc('"', out);
		fputc(*p, out);
	}
	fputc('"', out);
}

static void csv_record(FILE *out, const json_t *values, bool header)
{
	size_t i;
	const json_t *v;
	json_array_foreach (values, i, v) {
		if (i > 0)
			fputc(',', out);
		char *s = header ? strdup(json_string_value(v)) : cell_text(v, false);
		if (s)
			render_csv_field(out, s);
		free(s);
	}
	fputc('\n', out);
}

static void csv_table(FILE *out, const struct render_table *t)
{
	csv_record(out, t->columns, true);
	size_t r;
	const json_t *row;
	json_array_foreach (t->rows, r, row)
		csv_record(out, row, false);
}

static void json_print(FILE *out, const json_t *v)
{
	json_dumpf(v, out, JSON_INDENT(2) | JSON_ENCODE_ANY);
	fputc('\n', out);
}

/* A table as an array of objects keyed by column name, for jq and scripts. */
static void json_table(FILE *out, const struct render_table *t)
{
	json_t *list = json_array();
	size_t r;
	const json_t *row;
	json_array_foreach (t->rows, r, row) {
		json_t *obj = json_object();
		for (size_t c = 0; c < t->ncolumns; c++)
			json_object_set(obj, json_string_value(json_array_get(t->columns, c)),
					json_array_get(row, c));
		json_array_append_new(list, obj);
	}
	json_print(out, list);
	json_decref(list);
}

static void text_fields(FILE *out, const json_t *fields)
{
	size_t width = 0;
	const char *key;
	const json_t *v;
	json_object_foreach ((json_t *)fields, key, v) {
		if (display_width(key) > width)
			width = display_width(key);
	}
	json_object_foreach ((json_t *)fields, key, v) {
		char *s = cell_text(v, true);
		put_text(out, key);
		fprintf(out, ":%*s ", (int)(width - display_width(key)), "");
		if (s)
			put_text(out, s);
		fputc('\n', out);
		free(s);
	}
}

static void csv_fields(FILE *out, const json_t *fields)
{
	const char *key;
	const json_t *v;
	fputs("field,value\n", out);
	json_object_foreach ((json_t *)fields, key, v) {
		char *s = cell_text(v, false);
		render_csv_field(out, key);
		fputc(',', out);
		if (s)
			render_csv_field(out, s);
		fputc('\n', out);
		free(s);
	}
}

static void render_sections(FILE *out, const json_t *sections, enum render_format format)
{
	size_t i;
	const json_t *s;
	json_array_foreach (sections, i, s) {
		struct render_table t;
		if (!table_from(s, &t))
			continue; /* is_sections() has already checked every section */
		if (i > 0)
			fputc('\n', out);
		if (format == RENDER_CSV) {
			csv_table(out, &t);
		} else {
			put_text(out, json_string_value(json_object_get(s, "title")));
			fputc('\n', out);
			text_table(out, &t);
		}
	}
}

static void render_any(FILE *out, const json_t *result, enum render_format format)
{
	struct render_table t;
	bool has_table;

	if (json_is_null(result)) {
		/* A command with nothing to say prints nothing, except to a JSON reader. */
		if (format == RENDER_JSON)
			json_print(out, result);
		return;
	}
	if (is_table(result, &t)) {
		if (format == RENDER_JSON)
			json_table(out, &t);
		else if (format == RENDER_CSV)
			csv_table(out, &t);
		else
			text_table(out, &t);
		return;
	}
	if (format == RENDER_JSON) {
		json_print(out, result);
		return;
	}
	if (is_message(result)) {
		fputs(json_string_value(json_object_get(result, "message")), out);
		fputc('\n', out);
	} else if (is_fields(result, &t, &has_table)) {
		const json_t *fields = json_object_get(result, "fields");
		if (format == RENDER_CSV)
			csv_fields(out, fields);
		else
			text_fields(out, fields);
		if (has_table) {
			fputc('\n', out);
			if (format == RENDER_CSV)
				csv_table(out, &t);
			else
				text_table(out, &t);
		}
	} else if (is_sections(result)) {
		render_sections(out, json_object_get(result, "sections"), format);
	} else {
		json_print(out, result);
	}
}

int render_result(FILE *out, const json_t *result, enum render_format format, char *err,
		  size_t errlen)
{
	if (!result)
		result = json_null();
	render_any(out, result, format);
	if (fflush(out) != 0 || ferror(out)) {
		snprintf(err, errlen, "cannot write the output: %s", strerror(errno));
		return -1;
	}
	return 0;
}
