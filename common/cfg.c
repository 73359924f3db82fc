#include "cfg.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libxml/SAX2.h>
#include <libxml/parser.h>
#include <libxml/parserInternals.h>
#include <libxml/tree.h>
#include <libxml/xmlerror.h>
#include <libxml/xmlschemas.h>

/* conf/server.xsd, compiled in by cmake/EmbedGen.cmake. */
extern const unsigned char embed_server_xsd[];
extern const size_t embed_server_xsd_len;

#define CFG_FILE_MAX ((size_t)1 << 20)
/* Enough for an operator to see what is wrong without flooding a log line. */
#define CFG_MAX_ERRORS 10

enum cfg_type { CFG_INT, CFG_STRING, CFG_BOOL, CFG_LOGLEVEL };

#define ROLE_MASTER (1u << CFG_ROLE_MASTER)
#define ROLE_SLAVE (1u << CFG_ROLE_SLAVE)
#define ROLE_DP (1u << CFG_ROLE_DP)
#define ROLE_BOTH (ROLE_MASTER | ROLE_SLAVE)
#define ROLE_ALL (ROLE_MASTER | ROLE_SLAVE | ROLE_DP)
#define ROLE_PUSH (ROLE_SLAVE | ROLE_DP)

/* An element of <server> and the roles it belongs to. */
struct cfg_element {
	const char *name;
	unsigned roles;
};

static const struct cfg_element cfg_elements[] = {
	{ "data-dir", ROLE_ALL }, { "log", ROLE_ALL },	  { "database", ROLE_BOTH },
	{ "admin", ROLE_BOTH },	  { "sync-listen", ROLE_MASTER }, { "enrolment", ROLE_MASTER },
	{ "limits", ROLE_ALL },	  { "master", ROLE_SLAVE },	  { "replication", ROLE_SLAVE },
	{ "push", ROLE_PUSH },	  { "licence", ROLE_SLAVE },	  { "unreachable-ranges", ROLE_SLAVE },
	{ "slave", ROLE_DP },	  { "http", ROLE_BOTH },
};

/*
 * One setting. For CFG_STRING, min and max bound the length in bytes and
 * def_str / def_str_slave give the default (def_str_slave NULL: same for
 * both roles); the other types use def.
 */
struct cfg_setting {
	const char *element;
	const char *attribute; /* NULL: the element's text */
	enum cfg_type type;
	size_t offset;
	size_t size;
	long long def;
	const char *def_str;
	const char *def_str_slave;
	long long min;
	long long max;
	bool reloadable;
	unsigned roles;
};

#define FIELD(f) offsetof(struct cfg, f), sizeof(((struct cfg *)0)->f)
/* clang-format off */
#define INT(el, at, f, d, lo, hi, rel, roles) \
	{ el, at, CFG_INT, FIELD(f), d, NULL, NULL, lo, hi, rel, roles }
#define STR(el, at, f, d, dslave, lo, hi, roles) \
	{ el, at, CFG_STRING, FIELD(f), 0, d, dslave, lo, hi, false, roles }
#define BOOL(el, at, f, d, roles) \
	{ el, at, CFG_BOOL, FIELD(f), d, NULL, NULL, 0, 1, false, roles }
#define LEVEL(el, at, f, d, rel, roles) \
	{ el, at, CFG_LOGLEVEL, FIELD(f), d, NULL, NULL, 0, 0, rel, roles }
/* clang-format on */

/* The sun_path of a struct sockaddr_un holds 108 bytes with the NUL. */
#define SOCKET_PATH_MAX 107

static const struct cfg_setting cfg_settings[] = {
	STR("data-dir", NULL, data_dir, "/var/lib/strata", NULL, 1, PATH_MAX - 1, ROLE_ALL),
	LEVEL("log", "level", log_level, LOG_LVL_INFO, true, ROLE_ALL),
	BOOL("log", "syslog", log_syslog, false, ROLE_ALL),
	STR("database", "conninfo", db_conninfo, "dbname=strata", NULL, 1, 1023, ROLE_BOTH),
	INT("database", "retry-interval", db_retry_interval, 5, 1, 3600, false, ROLE_BOTH),
	INT("database", "connect-attempts", db_connect_attempts, 0, 0, 1000000, false, ROLE_BOTH),
	STR("admin", "socket", admin_socket, "/run/strata/master.sock", "/run/strata/slave.sock", 1,
	    SOCKET_PATH_MAX, ROLE_BOTH),
	STR("sync-listen", "address", listen_address, "0.0.0.0", NULL, 1, 255, ROLE_MASTER),
	INT("sync-listen", "port", listen_port, 7073, 1, 65535, false, ROLE_MASTER),
	STR("sync-listen", "hosts", cert_hosts, "localhost,127.0.0.1", NULL, 1, 511, ROLE_MASTER),
	INT("enrolment", "token-ttl", token_ttl, 86400, 60, 2592000, true, ROLE_MASTER),
	INT("limits", "max-sessions", max_sessions, 256, 1, 1000000, true, ROLE_MASTER),
	INT("limits", "frame-max-preauth", frame_max_preauth, 65536, 1024, 1048576, false,
	    ROLE_ALL),
	INT("limits", "frame-max", frame_max, 16777216, 65536, 67108864, false, ROLE_ALL),
	INT("limits", "handshake-timeout", handshake_timeout, 10, 1, 300, true, ROLE_ALL),
	INT("limits", "session-timeout", session_timeout, 120, 5, 3600, true, ROLE_BOTH),
	STR("master", "host", master_host, "", NULL, 1, 255, ROLE_SLAVE),
	INT("master", "port", master_port, 7073, 1, 65535, false, ROLE_SLAVE),
	STR("master", "token", master_token, "", NULL, 1, 511, ROLE_SLAVE),
	INT("replication", "interval", repl_interval, 1800, 10, 604800, true, ROLE_SLAVE),
	INT("replication", "jitter", repl_jitter, 10, 0, 50, true, ROLE_SLAVE),
	INT("replication", "batch-rows", repl_batch_rows, 20000, 100, 1000000, true, ROLE_SLAVE),
	INT("replication", "retry-min", repl_retry_min, 10, 1, 3600, true, ROLE_SLAVE),
	INT("replication", "retry-max", repl_retry_max, 600, 1, 86400, true, ROLE_SLAVE),
	STR("push", "address", push_address, "0.0.0.0", NULL, 1, 255, ROLE_PUSH),
	INT("push", "port", push_port, 7074, 0, 65535, false, ROLE_PUSH),
	STR("push", "hosts", push_hosts, "localhost,127.0.0.1", NULL, 1, 511, ROLE_PUSH),
	INT("push", "max-connections", push_max_connections, 20000, 1, 1000000, true, ROLE_PUSH),
	INT("push", "heartbeat", heartbeat_interval, 60, 5, 86400, true, ROLE_SLAVE),
	INT("push", "workers", push_workers, 1, 1, 64, false, ROLE_SLAVE),
	INT("licence", "seats", seats, 1000, 0, 10000000, true, ROLE_SLAVE),
	STR("licence", "public-key", licence_public_key, "", NULL, 1, PATH_MAX - 1, ROLE_SLAVE),
	STR("slave", "host", slave_host, "", NULL, 1, 255, ROLE_DP),
	INT("slave", "port", slave_port, 7074, 1, 65535, false, ROLE_DP),
	STR("slave", "token", slave_token, "", NULL, 1, 511, ROLE_DP),
	/* The HTTP API: loopback unless the operator opens it further. */
	STR("http", "address", http_address, "127.0.0.1", NULL, 1, 255, ROLE_BOTH),
	INT("http", "port", http_port, 7075, 1, 65535, false, ROLE_BOTH),
	STR("http", "token-file", http_token_file, "", NULL, 0, PATH_MAX - 1, ROLE_BOTH),
	STR("http", "client-ca", http_client_ca, "", NULL, 0, PATH_MAX - 1, ROLE_BOTH),
	INT("http", "max-body", http_max_body, 65536, 1024, 16777216, false, ROLE_BOTH),
	INT("http", "timeout", http_timeout, 30, 1, 3600, false, ROLE_BOTH),
};

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* Collects every error of one load as "PATH:LINE: message" lines in err. */
struct cfg_errors {
	const char *path;
	char *buf;
	size_t len;
	size_t used;
	int count;
	bool doctype;
	int doctype_line;
};

static void cfg_error(struct cfg_errors *e, int line, const char *fmt, ...) LOG_PRINTF(3, 4);

static void cfg_error(struct cfg_errors *e, int line, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	e->count++;
	if (e->count > CFG_MAX_ERRORS || e->len == 0 || e->used + 1 >= e->len)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	/* libxml2 ends its messages with a newline; the caller decides on line breaks. */
	size_t n = strlen(msg);
	while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
		msg[--n] = '\0';

	const char *sep = e->used ? "\n" : "";
	int w;
	if (line > 0)
		w = snprintf(e->buf + e->used, e->len - e->used, "%s%s:%d: %s", sep, e->path, line,
			     msg);
	else
		w = snprintf(e->buf + e->used, e->len - e->used, "%s%s: %s", sep, e->path, msg);
	if (w > 0)
		e->used += (size_t)w < e->len - e->used ? (size_t)w : e->len - e->used - 1;
}

/* Structured handler for the parser and the schema: keeps libxml2 off stderr. */
static void cfg_xml_error(void *ctx, xmlErrorPtr xe)
{
	struct cfg_errors *e = ctx;

	if (xe->level < XML_ERR_ERROR)
		return;
	/* Stopping the parser on a DOCTYPE is reported once, by cfg_parse(). */
	if (e->doctype)
		return;
	cfg_error(e, xe->line, "%s", xe->message ? xe->message : "XML error");
}

static void cfg_parser_error(void *ctx, xmlErrorPtr xe)
{
	xmlParserCtxtPtr ctxt = ctx;

	cfg_xml_error(ctxt->_private, xe);
}

/*
 * Called as soon as "<!DOCTYPE name ...>" has been read, before any
 * internal subset: stopping here means no entity is ever declared, so
 * neither entity expansion nor an external entity can happen.
 */
static void cfg_doctype_seen(void *ctx, const xmlChar *name, const xmlChar *external_id,
			     const xmlChar *system_id)
{
	xmlParserCtxtPtr ctxt = ctx;
	struct cfg_errors *e = ctxt->_private;

	e->doctype = true;
	e->doctype_line = xmlSAX2GetLineNumber(ctxt);
	xmlStopParser(ctxt);
}

static xmlDocPtr cfg_parse(const char *buf, size_t len, struct cfg_errors *e)
{
	xmlParserCtxtPtr ctxt = xmlCreateMemoryParserCtxt(buf, (int)len);
	xmlDocPtr doc;

	if (ctxt == NULL) {
		cfg_error(e, 0, "out of memory");
		return NULL;
	}
	ctxt->_private = e;
	ctxt->sax->serror = cfg_parser_error;
	ctxt->sax->error = NULL;
	ctxt->sax->warning = NULL;
	ctxt->sax->internalSubset = cfg_doctype_seen;
	ctxt->vctxt.error = NULL;
	ctxt->vctxt.warning = NULL;
	/* No NOENT, DTDLOAD or DTDATTR: entities stay unexpanded and no DTD is read. */
	xmlCtxtUseOptions(ctxt, XML_PARSE_NONET | XML_PARSE_NOWARNING | XML_PARSE_BIG_LINES);
	xmlParseDocument(ctxt);
	doc = ctxt->myDoc;
	ctxt->myDoc = NULL;
	if (e->doctype) {
		cfg_error(e, e->doctype_line, "DOCTYPE is not allowed");
		xmlFreeDoc(doc);
		doc = NULL;
	} else if (doc != NULL && (!ctxt->wellFormed || doc->intSubset || doc->extSubset)) {
		if (e->count == 0)
			cfg_error(e, 0, "not a well-formed XML document");
		xmlFreeDoc(doc);
		doc = NULL;
	} else if (doc == NULL && e->count == 0) {
		cfg_error(e, 0, "not a well-formed XML document");
	}
	xmlFreeParserCtxt(ctxt);
	return doc;
}

static int cfg_validate(xmlDocPtr doc, struct cfg_errors *e)
{
	xmlSchemaParserCtxtPtr pctxt;
	xmlSchemaPtr schema = NULL;
	xmlSchemaValidCtxtPtr vctxt = NULL;
	int rc = -1;

	pctxt = xmlSchemaNewMemParserCtxt((const char *)embed_server_xsd,
					  (int)embed_server_xsd_len);
	if (pctxt == NULL) {
		cfg_error(e, 0, "out of memory");
		return -1;
	}
	/* A schema error is a build defect; it must still not reach stderr. */
	struct cfg_errors xsd_errors = { .path = "server.xsd" };
	xmlSchemaSetParserStructuredErrors(pctxt, cfg_xml_error, &xsd_errors);
	schema = xmlSchemaParse(pctxt);
	xmlSchemaFreeParserCtxt(pctxt);
	if (schema == NULL) {
		cfg_error(e, 0, "the built-in schema does not compile (%d errors)",
			  xsd_errors.count);
		return -1;
	}
	vctxt = xmlSchemaNewValidCtxt(schema);
	if (vctxt == NULL) {
		cfg_error(e, 0, "out of memory");
		goto out;
	}
	xmlSchemaSetValidStructuredErrors(vctxt, cfg_xml_error, e);
	int vrc = xmlSchemaValidateDoc(vctxt, doc);
	if (vrc == 0)
		rc = 0;
	else if (e->count == 0)
		cfg_error(e, 0, "does not match the schema (libxml2 code %d)", vrc);
out:
	xmlSchemaFreeValidCtxt(vctxt);
	xmlSchemaFree(schema);
	return rc;
}

static void *cfg_field(struct cfg *c, const struct cfg_setting *s)
{
	return (char *)c + s->offset;
}

static const void *cfg_cfield(const struct cfg *c, const struct cfg_setting *s)
{
	return (const char *)c + s->offset;
}

static void cfg_setting_name(const struct cfg_setting *s, char *buf, size_t len)
{
	if (s->attribute)
		snprintf(buf, len, "%s/@%s", s->element, s->attribute);
	else
		snprintf(buf, len, "%s", s->element);
}

static bool cfg_is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* XSD integers allow surrounding whitespace and a sign; accept the same. */
static int cfg_parse_int(const char *text, long long *out, bool *overflow)
{
	const char *p = text;
	char *end;
	long long v;

	*overflow = false;
	while (cfg_is_space(*p))
		p++;
	if (*p == '+' || *p == '-')
		p++;
	if (*p < '0' || *p > '9')
		return -1;
	errno = 0;
	v = strtoll(text, &end, 10);
	while (cfg_is_space(*end))
		end++;
	if (*end != '\0')
		return -1;
	if (errno == ERANGE || v < INT_MIN || v > INT_MAX) {
		*overflow = true;
		return -1;
	}
	*out = v;
	return 0;
}

/* Copies text without the surrounding whitespace into a new string. */
static char *cfg_trim(const char *text)
{
	while (cfg_is_space(*text))
		text++;
	size_t n = strlen(text);
	while (n > 0 && cfg_is_space(text[n - 1]))
		n--;
	return strndup(text, n);
}

static void cfg_set(struct cfg *c, const struct cfg_setting *s, const char *raw, int line,
		    struct cfg_errors *e)
{
	char name[96];
	char *text = cfg_trim(raw);
	long long v;
	bool overflow;
	enum log_level level;

	cfg_setting_name(s, name, sizeof(name));
	if (text == NULL) {
		cfg_error(e, line, "%s: out of memory", name);
		return;
	}
	switch (s->type) {
	case CFG_INT:
		if (cfg_parse_int(text, &v, &overflow) < 0) {
			if (overflow)
				cfg_error(e, line, "%s: %s is out of range %lld..%lld", name, text,
					  s->min, s->max);
			else
				cfg_error(e, line, "%s: '%s' is not an integer", name, text);
		} else if (v < s->min) {
			cfg_error(e, line, "%s: %lld is below the minimum %lld", name, v, s->min);
		} else if (v > s->max) {
			cfg_error(e, line, "%s: %lld is above the maximum %lld", name, v, s->max);
		} else {
			*(int *)cfg_field(c, s) = (int)v;
		}
		break;
	case CFG_STRING: {
		size_t n = strlen(text);
		if ((long long)n < s->min)
			cfg_error(e, line, "%s: must not be empty", name);
		else if ((long long)n > s->max || n >= s->size)
			cfg_error(e, line, "%s: value is longer than %lld bytes", name, s->max);
		else
			memcpy(cfg_field(c, s), text, n + 1);
		break;
	}
	case CFG_BOOL:
		if (strcmp(text, "true") == 0 || strcmp(text, "1") == 0)
			*(bool *)cfg_field(c, s) = true;
		else if (strcmp(text, "false") == 0 || strcmp(text, "0") == 0)
			*(bool *)cfg_field(c, s) = false;
		else
			cfg_error(e, line, "%s: '%s' is not true or false", name, text);
		break;
	case CFG_LOGLEVEL:
		if (log_level_parse(text, &level) < 0)
			cfg_error(e, line,
				  "%s: '%s' is not one of error, warn, notice, info, debug", name,
				  text);
		else
			*(enum log_level *)cfg_field(c, s) = level;
		break;
	}
	free(text);
}

static const struct cfg_setting *cfg_find(const char *element, const char *attribute)
{
	for (size_t i = 0; i < NELEM(cfg_settings); i++) {
		const struct cfg_setting *s = &cfg_settings[i];
		if (strcmp(s->element, element) != 0)
			continue;
		if (attribute == NULL
			    ? s->attribute == NULL
			    : s->attribute != NULL && strcmp(s->attribute, attribute) == 0)
			return s;
	}
	return NULL;
}

static const struct cfg_element *cfg_find_element(const char *name)
{
	for (size_t i = 0; i < NELEM(cfg_elements); i++)
		if (strcmp(cfg_elements[i].name, name) == 0)
			return &cfg_elements[i];
	return NULL;
}

static const char *cfg_roles_name(unsigned roles)
{
	switch (roles) {
	case ROLE_MASTER:
		return "master";
	case ROLE_SLAVE:
		return "slave";
	case ROLE_DP:
		return "distribution point";
	case ROLE_BOTH:
		return "master and slave";
	default:
		return "slave and distribution point";
	}
}

/*
 * <unreachable-ranges>: a list, which the table of single settings cannot
 * describe, so it is read here: each <range cidr="..."/> is parsed into
 * c->unreachable.
 */
static void cfg_read_ranges(struct cfg *c, xmlNodePtr node, struct cfg_errors *e)
{
	for (xmlAttrPtr a = node->properties; a; a = a->next)
		cfg_error(e, (int)xmlGetLineNo(node), "unknown attribute unreachable-ranges/@%s",
			  (const char *)a->name);
	for (xmlNodePtr r = node->children; r; r = r->next) {
		int line = (int)xmlGetLineNo(r);
		char err[256];
		if (r->type != XML_ELEMENT_NODE)
			continue;
		if (r->ns || strcmp((const char *)r->name, "range") != 0) {
			cfg_error(e, line, "unknown element <unreachable-ranges/%s>",
				  (const char *)r->name);
			continue;
		}
		for (xmlAttrPtr a = r->properties; a; a = a->next)
			if (a->ns || strcmp((const char *)a->name, "cidr") != 0)
				cfg_error(e, line, "unknown attribute unreachable-ranges/range/@%s",
					  (const char *)a->name);
		xmlChar *v = xmlGetNoNsProp(r, (const xmlChar *)"cidr");
		char *text = v ? cfg_trim((const char *)v) : NULL;
		if (!v)
			cfg_error(e, line, "unreachable-ranges/range/@cidr is missing");
		else if (!text)
			cfg_error(e, line, "unreachable-ranges/range/@cidr: out of memory");
		else if (c->n_unreachable >= CFG_RANGES_MAX)
			cfg_error(e, line, "unreachable-ranges: more than %d ranges", CFG_RANGES_MAX);
		else if (iprange_parse(text, &c->unreachable[c->n_unreachable], err,
				       sizeof(err)) != 0)
			cfg_error(e, line, "unreachable-ranges/range/@cidr: %s", err);
		else
			c->n_unreachable++;
		free(text);
		xmlFree(v);
	}
}

static void cfg_read_element(struct cfg *c, xmlNodePtr node, struct cfg_errors *e)
{
	const char *el = (const char *)node->name;
	int line = (int)xmlGetLineNo(node);
	unsigned role = 1u << c->role;
	const struct cfg_element *def = node->ns ? NULL : cfg_find_element(el);

	if (def == NULL) {
		cfg_error(e, line, "unknown element <%s>", el);
		return;
	}
	if (!(def->roles & role)) {
		cfg_error(e, line, "<%s> is a %s setting; this file is for role %s", el,
			  cfg_roles_name(def->roles), cfg_role_name(c->role));
		return;
	}
	if (strcmp(el, "unreachable-ranges") == 0) {
		cfg_read_ranges(c, node, e);
		return;
	}
	/* <http> has no required attribute: its presence turns the API on. */
	if (strcmp(el, "http") == 0)
		c->http_enabled = true;
	const struct cfg_setting *text = cfg_find(el, NULL);
	if (text != NULL) {
		xmlChar *v = xmlNodeGetContent(node);
		cfg_set(c, text, v ? (const char *)v : "", line, e);
		xmlFree(v);
	} else {
		for (xmlNodePtr child = node->children; child; child = child->next) {
			if (child->type == XML_ELEMENT_NODE)
				cfg_error(e, (int)xmlGetLineNo(child), "unknown element <%s/%s>",
					  el, (const char *)child->name);
		}
	}
	for (xmlAttrPtr a = node->properties; a; a = a->next) {
		const char *at = (const char *)a->name;
		const struct cfg_setting *s = a->ns ? NULL : cfg_find(el, at);
		if (s == NULL || s->attribute == NULL) {
			cfg_error(e, line, "unknown attribute %s/@%s", el, at);
			continue;
		}
		if (!(s->roles & role)) {
			cfg_error(e, line, "%s/@%s is a %s setting; this file is for role %s", el,
				  at, cfg_roles_name(s->roles), cfg_role_name(c->role));
			continue;
		}
		xmlChar *v = xmlNodeListGetString(node->doc, a->children, 1);
		cfg_set(c, s, v ? (const char *)v : "", line, e);
		xmlFree(v);
	}
}

static bool cfg_name_valid(const char *name)
{
	size_t n = strlen(name);

	if (n < 1 || n > 63)
		return false;
	return strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") ==
	       n;
}

/* Root attributes: role decides the defaults, so it is read first. */
static int cfg_read_root(xmlNodePtr root, enum cfg_role expect_role, struct cfg *c,
			 struct cfg_errors *e)
{
	int line = (int)xmlGetLineNo(root);
	xmlChar *role = xmlGetNoNsProp(root, (const xmlChar *)"role");
	xmlChar *name = xmlGetNoNsProp(root, (const xmlChar *)"name");
	enum cfg_role r;
	int rc = -1;

	if (root->ns != NULL || strcmp((const char *)root->name, "server") != 0) {
		cfg_error(e, line, "the root element must be <server>");
		goto out;
	}
	if (role != NULL && strcmp((const char *)role, "master") == 0) {
		r = CFG_ROLE_MASTER;
	} else if (role != NULL && strcmp((const char *)role, "slave") == 0) {
		r = CFG_ROLE_SLAVE;
	} else if (role != NULL && strcmp((const char *)role, "dp") == 0) {
		r = CFG_ROLE_DP;
	} else {
		cfg_error(e, line, "server/@role must be master, slave or dp");
		goto out;
	}
	if (r != expect_role) {
		cfg_error(e, line, "this file is for role %s; strata-%s needs role %s",
			  cfg_role_name(r), cfg_role_name(expect_role), cfg_role_name(expect_role));
		goto out;
	}
	if (name == NULL || !cfg_name_valid((const char *)name)) {
		cfg_error(e, line, "server/@name must be 1 to 63 of A-Z a-z 0-9 . _ -");
		goto out;
	}
	cfg_defaults(c, r);
	snprintf(c->name, sizeof(c->name), "%s", (const char *)name);
	rc = 0;
	for (xmlAttrPtr a = root->properties; a; a = a->next) {
		if (a->ns == NULL && (strcmp((const char *)a->name, "role") == 0 ||
				      strcmp((const char *)a->name, "name") == 0))
			continue;
		cfg_error(e, line, "unknown attribute server/@%s", (const char *)a->name);
		rc = -1;
	}
out:
	xmlFree(role);
	xmlFree(name);
	return rc;
}

static int cfg_element_line(xmlNodePtr root, const char *name)
{
	for (xmlNodePtr n = root->children; n; n = n->next)
		if (n->type == XML_ELEMENT_NODE && strcmp((const char *)n->name, name) == 0)
			return (int)xmlGetLineNo(n);
	return (int)xmlGetLineNo(root);
}

/* Rules that involve more than one setting. */
static void cfg_check(const struct cfg *c, xmlNodePtr root, struct cfg_errors *e)
{
	if (c->role == CFG_ROLE_DP) {
		if (c->slave_host[0] == '\0')
			cfg_error(e, cfg_element_line(root, "slave"),
				  "slave/@host is needed: the slave this distribution point serves");
		if (c->push_port == 0)
			cfg_error(e, cfg_element_line(root, "push"),
				  "push/@port: a distribution point needs a port for its agents");
		return;
	}
	if (c->role != CFG_ROLE_SLAVE)
		return;
	if (c->repl_retry_max < c->repl_retry_min)
		cfg_error(e, cfg_element_line(root, "replication"),
			  "replication/@retry-max: %d is below retry-min %d", c->repl_retry_max,
			  c->repl_retry_min);
	if (c->master_token[0] != '\0' && c->master_host[0] == '\0')
		cfg_error(e, cfg_element_line(root, "master"),
			  "master/@token is set but master/@host is not");
}

static int cfg_load_buffer(const char *buf, size_t len, enum cfg_role expect_role, struct cfg *out,
			   struct cfg_errors *e)
{
	struct cfg c;
	xmlDocPtr doc;
	xmlNodePtr root;

	xmlInitParser();
	doc = cfg_parse(buf, len, e);
	if (doc == NULL)
		return -1;
	if (cfg_validate(doc, e) < 0)
		goto fail;
	root = xmlDocGetRootElement(doc);
	if (root == NULL) {
		cfg_error(e, 0, "no root element");
		goto fail;
	}
	if (cfg_read_root(root, expect_role, &c, e) < 0)
		goto fail;
	for (xmlNodePtr n = root->children; n; n = n->next) {
		if (n->type != XML_ELEMENT_NODE)
			continue;
		cfg_read_element(&c, n, e);
	}
	cfg_check(&c, root, e);
	if (e->count > 0)
		goto fail;
	xmlFreeDoc(doc);
	*out = c;
	return 0;
fail:
	xmlFreeDoc(doc);
	return -1;
}

static void cfg_finish_errors(struct cfg_errors *e)
{
	if (e->count > CFG_MAX_ERRORS && e->len > e->used + 1) {
		snprintf(e->buf + e->used, e->len - e->used, "\n%s: %d more errors", e->path,
			 e->count - CFG_MAX_ERRORS);
	}
}

int cfg_load(const char *path, enum cfg_role expect_role, struct cfg *out, char *err, size_t errlen)
{
	struct cfg_errors e = { .path = path, .buf = err, .len = errlen };
	struct stat st;
	char *buf = NULL;
	size_t len = 0;
	int fd;
	int rc = -1;

	if (errlen > 0)
		err[0] = '\0';
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		cfg_error(&e, 0, "cannot open: %s", strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) < 0) {
		cfg_error(&e, 0, "cannot stat: %s", strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		cfg_error(&e, 0, "not a regular file");
		goto out;
	}
	if (st.st_size > (off_t)CFG_FILE_MAX) {
		cfg_error(&e, 0, "file is larger than 1 MiB");
		goto out;
	}
	/* One byte more than allowed, to notice a file that grew after fstat(). */
	buf = malloc(CFG_FILE_MAX + 1);
	if (buf == NULL) {
		cfg_error(&e, 0, "out of memory");
		goto out;
	}
	while (len <= CFG_FILE_MAX) {
		ssize_t n = read(fd, buf + len, CFG_FILE_MAX + 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			cfg_error(&e, 0, "cannot read: %s", strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	if (len > CFG_FILE_MAX) {
		cfg_error(&e, 0, "file is larger than 1 MiB");
		goto out;
	}
	if (len == 0) {
		cfg_error(&e, 0, "file is empty");
		goto out;
	}
	rc = cfg_load_buffer(buf, len, expect_role, out, &e);
out:
	if (rc < 0)
		cfg_finish_errors(&e);
	free(buf);
	close(fd);
	return rc;
}

void cfg_defaults(struct cfg *out, enum cfg_role role)
{
	memset(out, 0, sizeof(*out));
	out->role = role;
	for (size_t i = 0; i < NELEM(cfg_settings); i++) {
		const struct cfg_setting *s = &cfg_settings[i];
		void *f = cfg_field(out, s);
		const char *str;

		switch (s->type) {
		case CFG_INT:
			*(int *)f = (int)s->def;
			break;
		case CFG_BOOL:
			*(bool *)f = s->def != 0;
			break;
		case CFG_LOGLEVEL:
			*(enum log_level *)f = (enum log_level)s->def;
			break;
		case CFG_STRING:
			str = role == CFG_ROLE_SLAVE && s->def_str_slave ? s->def_str_slave
									 : s->def_str;
			snprintf(f, s->size, "%s", str);
			break;
		}
	}
}

static void cfg_format(const struct cfg *c, const struct cfg_setting *s, char *buf, size_t len)
{
	const void *f = cfg_cfield(c, s);

	switch (s->type) {
	case CFG_INT:
		snprintf(buf, len, "%d", *(const int *)f);
		break;
	case CFG_BOOL:
		snprintf(buf, len, "%s", *(const bool *)f ? "true" : "false");
		break;
	case CFG_LOGLEVEL:
		snprintf(buf, len, "%s", log_level_name(*(const enum log_level *)f));
		break;
	case CFG_STRING:
		snprintf(buf, len, "%s", (const char *)f);
		break;
	}
}

static bool cfg_differs(const struct cfg *a, const struct cfg *b, const struct cfg_setting *s)
{
	if (s->type == CFG_STRING)
		return strcmp(cfg_cfield(a, s), cfg_cfield(b, s)) != 0;
	return memcmp(cfg_cfield(a, s), cfg_cfield(b, s), s->size) != 0;
}

void cfg_reload(struct cfg *cur, const struct cfg *next)
{
	char name[96];
	char before[64];
	char after[64];

	if (strcmp(cur->name, next->name) != 0)
		log_warnx("setting server/@name changed: restart needed");
	if (cur->http_enabled != next->http_enabled)
		log_warnx("setting http changed: restart needed");
	for (size_t i = 0; i < NELEM(cfg_settings); i++) {
		const struct cfg_setting *s = &cfg_settings[i];

		if (!cfg_differs(cur, next, s))
			continue;
		cfg_setting_name(s, name, sizeof(name));
		if (!s->reloadable) {
			/* Secrets such as the enrolment token must not reach the log. */
			log_warnx("setting %s changed: restart needed", name);
			continue;
		}
		cfg_format(cur, s, before, sizeof(before));
		cfg_format(next, s, after, sizeof(after));
		log_info("setting %s: %s -> %s", name, before, after);
		memcpy(cfg_field(cur, s), cfg_cfield(next, s), s->size);
	}
	if (cur->n_unreachable != next->n_unreachable ||
	    memcmp(cur->unreachable, next->unreachable,
		   (size_t)next->n_unreachable * sizeof(next->unreachable[0])) != 0) {
		log_info("setting unreachable-ranges: %d -> %d ranges", cur->n_unreachable,
			 next->n_unreachable);
		memcpy(cur->unreachable, next->unreachable, sizeof(cur->unreachable));
		cur->n_unreachable = next->n_unreachable;
	}
}

const char *cfg_role_name(enum cfg_role role)
{
	return role == CFG_ROLE_SLAVE ? "slave" : role == CFG_ROLE_DP ? "dp" : "master";
}
