/*
 * cfg: server.xml, the one configuration file of both daemons.
 *
 * The file is parsed with libxml2 with no network access, no DTD loading
 * and no entity expansion, validated against conf/server.xsd (compiled
 * into the binary), and then read through a declarative table of settings
 * (name, type, default, min, max, reloadable) into a struct cfg. Errors
 * name the file, the line and the reason. SIGHUP handling calls
 * cfg_load() into a fresh struct and, on success, cfg_reload() to copy
 * only the reloadable settings.
 */
#ifndef STRATA_CFG_H
#define STRATA_CFG_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>

#include "iprange.h"
#include "log.h"

/* Most <unreachable-ranges><range/> entries one file may list. */
#define CFG_RANGES_MAX 256

enum cfg_role { CFG_ROLE_MASTER, CFG_ROLE_SLAVE, CFG_ROLE_DP };

struct cfg {
	enum cfg_role role;		/* <server role="master|slave|dp"> */
	char name[64];			/* <server name="...">: [A-Za-z0-9._-]{1,63} */
	char data_dir[PATH_MAX];	/* <data-dir>: keys, certificates, state */

	enum log_level log_level;	/* <log level="info"/> (reloadable) */
	bool log_syslog;		/* <log syslog="false"/> */

	char db_conninfo[1024];		/* <database conninfo="..."/> */
	int db_retry_interval;		/* <database retry-interval="5"/> s, 1..3600 */
	int db_connect_attempts;	/* <database connect-attempts="0"/> 0 = forever */

	char admin_socket[PATH_MAX];	/* <admin socket="/run/strata/ROLE.sock"/> */

	/* master only */
	char listen_address[256];	/* <sync-listen address="0.0.0.0"/> */
	int listen_port;		/* <sync-listen port="7073"/> 1..65535 */
	char cert_hosts[512];		/* <sync-listen hosts="localhost,127.0.0.1"/>: SANs of the master cert */
	int token_ttl;			/* <enrolment token-ttl="86400"/> s, 60..30 days (reloadable) */
	int max_sessions;		/* <limits max-sessions="256"/> 1..1000000 (reloadable) */

	/* slave only */
	char master_host[256];		/* <master host="..." port="7073" token="..."/> */
	int master_port;
	char master_token[512];		/* used on first start when not yet registered */
	int repl_interval;		/* <replication interval="1800"/> s, 10..604800 (reloadable) */
	int repl_jitter;		/* <replication jitter="10"/> percent 0..50 (reloadable) */
	int repl_batch_rows;		/* <replication batch-rows="20000"/> 100..1000000 (reloadable) */
	int repl_retry_min;		/* <replication retry-min="10"/> s (reloadable) */
	int repl_retry_max;		/* <replication retry-max="600"/> s (reloadable) */
	char push_address[256];		/* <push address="0.0.0.0"/>: the agent port's address */
	int push_port;			/* <push port="7074"/> 0..65535, 0 = no push server */
	char push_hosts[512];		/* <push hosts="localhost,127.0.0.1"/>: SANs agents connect to */
	int push_max_connections;	/* <push max-connections="20000"/> 1..1000000 (reloadable) */
	int heartbeat_interval;		/* <push heartbeat="60"/> s, 5..86400 (reloadable) */
	int push_workers;		/* <push workers="1"/> 1..64 push server processes; max-connections applies to each */
	/* <unreachable-ranges><range cidr="10.20.0.0/16"/></unreachable-ranges> (reloadable):
	 * agents connecting from these are 'unreachable', never 'online' */
	struct iprange unreachable[CFG_RANGES_MAX];
	int n_unreachable;
	int seats;			/* <licence seats="1000"/> 0..10000000 endpoints (reloadable) */
	char licence_public_key[PATH_MAX]; /* <licence public-key="FILE"/>: verifies installed licences; "" none */
	/* push address, port, hosts and max-connections also apply to a dp:
	 * its first host is the address agents are sent to */

	/* distribution point only */
	char slave_host[256];		/* <slave host="..." port="7074" token="..."/>: the slave's push port */
	int slave_port;
	char slave_token[512];		/* "strata-ctl dp-token create" on the slave; first start only */

	/* both */
	int frame_max_preauth;		/* <limits frame-max-preauth="65536"/> bytes, 1 KiB..1 MiB */
	int frame_max;			/* <limits frame-max="16777216"/> bytes, 64 KiB..64 MiB */
	int handshake_timeout;		/* <limits handshake-timeout="10"/> s, 1..300 (reloadable) */
	int session_timeout;		/* <limits session-timeout="120"/> s, 5..3600: no frame for that long ends a session (reloadable) */

	/* master and slave: the HTTP API (common/http.h), off without <http> */
	bool http_enabled;		/* the element is present */
	char http_address[256];		/* <http address="127.0.0.1"/> */
	int http_port;			/* <http port="7075"/> 1..65535 */
	char http_token_file[PATH_MAX];	/* <http token-file=""/>: bearer token, mode 0600 or stricter */
	char http_client_ca[PATH_MAX];	/* <http client-ca=""/>: CA of accepted client certificates */
	int http_max_body;		/* <http max-body="65536"/> bytes, 1 KiB..16 MiB */
	int http_timeout;		/* <http timeout="30"/> s, 1..3600: read/write of one request */
};

/* Fills *out with defaults for the role (used before any file is read). */
void cfg_defaults(struct cfg *out, enum cfg_role role);

/*
 * Loads and validates path into *out. Returns 0, or -1 with a message in
 * err ("server.xml:12: replication/@interval: 5 is below the minimum 10").
 * expect_role: the binary's role; a file for the other role is an error.
 */
__attribute__((warn_unused_result)) int cfg_load(const char *path, enum cfg_role expect_role,
						 struct cfg *out, char *err, size_t errlen);

/* Copies the reloadable settings of next into cur; logs each change. */
void cfg_reload(struct cfg *cur, const struct cfg *next);

const char *cfg_role_name(enum cfg_role role);

#endif
