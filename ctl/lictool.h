/*
 * lictool: the offline licence commands of strata-ctl (no daemon):
 * "license keygen" and "license sign", and reading a licence file for
 * "license install". The args objects come from ctl_build_request.
 */
#ifndef STRATA_CTL_LICTOOL_H
#define STRATA_CTL_LICTOOL_H

#include <stddef.h>
#include <stdio.h>

#include <jansson.h>

/* {out: DIR}: writes DIR/licence.key (0600, refused if it exists) and DIR/licence.pub. */
__attribute__((warn_unused_result)) int lictool_keygen(json_t *args, FILE *out, char *err,
						       size_t errlen);

/* {key, id, holder, seats, valid_from, valid_until, [features], [out]}: writes the licence. */
__attribute__((warn_unused_result)) int lictool_sign(json_t *args, FILE *out, char *err,
						     size_t errlen);

/* Replaces args' "file" (a path) with "document" (the file's text). 0 or -1. */
__attribute__((warn_unused_result)) int lictool_read_document(json_t *args, char *err,
							      size_t errlen);

#endif
