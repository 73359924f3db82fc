/* commands: the slave's admin-socket commands (see strata-ctl). */
#ifndef STRATA_SLAVE_COMMANDS_H
#define STRATA_SLAVE_COMMANDS_H

#include "admin.h"

/* Every command commands_handle() knows, for the HTTP API; ended by a NULL name. */
extern const struct admin_command commands_table[];

void commands_handle(struct admin_req *req, const char *cmd, json_t *args, void *arg);

#endif
