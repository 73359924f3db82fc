/*
 * render: prints the "result" of an admin reply for the operator.
 *
 * A result comes in one of these shapes:
 *   {"columns": [names], "rows": [[values]]}      a table
 *   {"message": "..."}                            one line
 *   {"fields": {k: v}, optional columns/rows}     "key: value" lines, then a table
 *   {"sections": [{"title", "columns", "rows"}]}  titled tables, one after another
 *   anything else                                 pretty-printed JSON
 *
 * Text mode aligns tables (null is "-", booleans are yes/no, columns of
 * numbers are right-aligned). JSON mode prints a table as an array of
 * objects keyed by column name and every other shape unchanged. CSV mode
 * prints RFC 4180 records with a header line; sections are separated by
 * a blank line, fields become a "field,value" table. The functions are
 * pure: they only write to out.
 */
#ifndef STRATA_CTL_RENDER_H
#define STRATA_CTL_RENDER_H

#include <stddef.h>
#include <stdio.h>

#include <jansson.h>

enum render_format { RENDER_TEXT, RENDER_JSON, RENDER_CSV };

/* Writes result to out; returns 0, or -1 with err when out fails (a closed pipe, a full disk). */
__attribute__((warn_unused_result)) int
render_result(FILE *out, const json_t *result, enum render_format format, char *err, size_t errlen);

/* Writes one CSV field, quoted when it holds a comma, a quote, CR or LF. */
void render_csv_field(FILE *out, const char *text);

#endif
